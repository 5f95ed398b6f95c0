"""Start and stop a real anvil node on a free loopback port, and drive its test-only RPCs.

`AnvilNode` owns the process (sync, no web3 needed). `AnvilControl` wraps the anvil/evm RPCs for an
``AsyncWeb3`` client: snapshots, mining, automine, timestamps, balances, dropping transactions and
reorgs, with guards for the traps listed in tests/chain/README.md.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from tests.chain.toolpaths import anvil_binary

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
CHAIN_ID = 31337
# A fixed genesis time plus a fixed step per block (`anvil_setBlockTimestampInterval`) makes every
# block timestamp a function of the block history alone, never of the wall clock; `evm_revert`
# restores it too. Tests that need a given time set it with `set_next_block_timestamp`.
GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_S = 12
STARTUP_TIMEOUT_S = 15.0

_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")

if sys.platform.startswith("linux"):
    # Loaded in the parent: the child after fork() only calls the already-resolved symbol.
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
else:  # pragma: no cover - the project's machines are Linux
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked child: ask the kernel to SIGTERM anvil if the Python process dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class AnvilError(RuntimeError):
    """anvil failed to start, exited, or answered an RPC with an error."""


class ReorgBelowSnapshotError(AnvilError):
    """A reorg would replace blocks at or below the last snapshot, which breaks `evm_revert`."""


@dataclass(frozen=True)
class DevAccounts:
    """The node's prefunded accounts (anvil's default mnemonic), as signing accounts."""

    accounts: tuple[LocalAccount, ...]

    def __getitem__(self, index: int) -> LocalAccount:
        return self.accounts[index]

    def __len__(self) -> int:
        return len(self.accounts)


def dev_accounts(count: int = DEV_ACCOUNT_COUNT) -> DevAccounts:
    """Derive anvil's prefunded accounts from the dev mnemonic (m/44'/60'/0'/0/i)."""
    Account.enable_unaudited_hdwallet_features()
    return DevAccounts(
        tuple(
            Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            for i in range(count)
        )
    )


class AnvilNode:
    """One anvil process listening on an OS-chosen free port on 127.0.0.1."""

    def __init__(
        self,
        *,
        binary: Path | None = None,
        genesis_timestamp: int = GENESIS_TIMESTAMP,
        block_interval: int | None = BLOCK_INTERVAL_S,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.binary = binary
        self.genesis_timestamp = genesis_timestamp
        self.block_interval = block_interval
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=300)
        self._port_found = threading.Event()

    # ---- lifecycle ----

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.rpc_url.replace("http://", "ws://", 1)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> AnvilNode:
        """Launch anvil with `--port 0`, learn the port from its log, wait until RPC answers."""
        if self._proc is not None:
            raise AnvilError("anvil already started")
        binary = self.binary or anvil_binary()
        # `-q` would hide the "Listening on" line, the only place the chosen port is reported.
        cmd = [
            str(binary),
            "--host", "127.0.0.1",
            "--port", "0",
            "--chain-id", str(CHAIN_ID),
            "--mnemonic", DEV_MNEMONIC,
            "--accounts", str(DEV_ACCOUNT_COUNT),
            "--timestamp", str(self.genesis_timestamp),
            *self.extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent,  # only calls prctl, which takes no locks in the child
        )
        atexit.register(self.stop)
        self._reader = threading.Thread(target=self._drain, name="anvil-log", daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _drain(self) -> None:
        """Keep reading anvil's log so its pipe never fills; remember the tail for errors."""
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._log.append(line.rstrip("\n"))
            if self.port is None and (match := _LISTENING.search(line)):
                self.port = int(match.group(1))
                self._port_found.set()
        self._port_found.set()  # EOF: unblock a waiter; it then sees the process has exited

    def _wait_ready(self) -> None:
        # Start-up takes ~50 ms; a monotonic deadline bounds it without depending on wall time.
        deadline = time.monotonic() + self.startup_timeout
        if not self._port_found.wait(self.startup_timeout) or self.port is None:
            raise AnvilError(f"anvil did not report its port:\n{self.log_tail()}")
        while time.monotonic() < deadline:
            if not self.is_running():
                raise AnvilError(f"anvil exited early:\n{self.log_tail()}")
            try:
                ready = int(self.rpc("eth_chainId"), 16) == CHAIN_ID
            except (OSError, AnvilError):
                ready = False
            if ready:
                if self.block_interval is not None:
                    # Without this, timestamps follow the wall clock: a second boundary between
                    # gas estimation and mining changes Aave's interest-accrual path (and gas).
                    self.rpc("anvil_setBlockTimestampInterval", [self.block_interval])
                return
            time.sleep(0.01)
        raise AnvilError(f"anvil did not answer eth_chainId in time:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL) and reap it; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=2)
        if proc.stdout is not None:
            proc.stdout.close()
        self.port = None

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(list(self._log)[-lines:])

    # ---- raw JSON-RPC (sync, for start-up checks and session fixtures) ----

    def rpc(self, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
        """One JSON-RPC call over HTTP; raises `AnvilError` on an error response."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        request = urllib.request.Request(
            self.rpc_url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AnvilError(f"{method}: HTTP {exc.code}") from exc
        if "error" in payload:
            raise AnvilError(f"{method}: {payload['error']}")
        return payload.get("result")


class AnvilControl:
    """anvil's test RPCs for an `AsyncWeb3` connected to the node."""

    def __init__(self, w3: AsyncWeb3) -> None:
        self.w3 = w3
        # Height at the most recent snapshot; reorgs must not reach it (see `reorg`).
        self.snapshot_height: int | None = None

    async def request(self, method: str, params: list[Any] | None = None) -> Any:
        """Send any RPC; errors surface as web3's `Web3RPCError`."""
        return await self.w3.manager.coro_request(RPCEndpoint(method), params or [])

    # ---- snapshots ----

    async def snapshot(self) -> str:
        """`evm_snapshot`; the id is single-use (reverting consumes it)."""
        snapshot_id: str = await self.request("evm_snapshot")
        self.snapshot_height = await self.w3.eth.block_number
        return snapshot_id

    async def revert(self, snapshot_id: str) -> None:
        if not await self.request("evm_revert", [snapshot_id]):
            raise AnvilError(f"evm_revert({snapshot_id}) returned false (id already used?)")
        self.snapshot_height = None

    # ---- mining and time ----

    async def mine(self, blocks: int = 1) -> None:
        """Mine `blocks` blocks. (`w3.testing.mine(n)` is broken on anvil: n is read as a time.)"""
        if blocks < 1:
            raise ValueError("blocks must be >= 1")
        await self.request("anvil_mine", [hex(blocks)])

    async def set_automine(self, enabled: bool) -> None:
        await self.request("evm_setAutomine", [enabled])

    async def automine(self) -> bool:
        return bool(await self.request("anvil_getAutomine"))

    async def set_next_block_timestamp(self, timestamp: int) -> None:
        await self.request("evm_setNextBlockTimestamp", [timestamp])

    async def increase_time(self, seconds: int) -> None:
        await self.request("evm_increaseTime", [seconds])

    async def latest_timestamp(self) -> int:
        block = await self.w3.eth.get_block("latest")
        return int(block["timestamp"])

    async def mine_at(self, timestamp: int) -> None:
        """Mine one (empty) block with exactly this timestamp.

        `eth_call` and `eth_estimateGas` evaluate at the latest block's timestamp and ignore
        `evm_setNextBlockTimestamp`; mining first makes a pre-flight see the new time.
        """
        await self.set_next_block_timestamp(timestamp)
        await self.request("evm_mine")

    # ---- accounts ----

    async def set_balance(self, address: str, wei: int) -> None:
        await self.request("anvil_setBalance", [address, hex(wei)])

    async def set_nonce(self, address: str, nonce: int) -> None:
        await self.request("anvil_setNonce", [address, hex(nonce)])

    async def set_next_block_base_fee(self, wei: int) -> None:
        await self.request("anvil_setNextBlockBaseFeePerGas", [hex(wei)])

    # ---- mempool ----

    async def drop_transaction(self, tx_hash: bytes | str) -> None:
        """Remove a pending transaction from the pool; its nonce becomes free again."""
        await self.request("anvil_dropTransaction", [HexBytes(tx_hash).to_0x_hex()])

    async def drop_all_transactions(self) -> None:
        await self.request("anvil_dropAllTransactions")

    async def txpool_status(self) -> dict[str, int]:
        status = await self.request("txpool_status")
        return {key: int(value, 16) for key, value in status.items()}

    # ---- reorgs ----

    async def reorg(self, depth: int, replay: list[tuple[bytes | str, int]] | None = None) -> None:
        """Replace the last `depth` blocks, keeping the height; transactions in them are gone.

        `replay` lists (raw signed tx, offset) to include in the new blocks; offset 0 is the first
        replaced block (head - depth + 1). anvil re-executes from the state at head - depth, so
        `anvil_setBalance` calls made after that point are lost.
        """
        if depth < 1:
            raise ValueError("depth must be >= 1")
        head = await self.w3.eth.block_number
        if self.snapshot_height is not None and head - depth < self.snapshot_height:
            # A reorg below the snapshot point makes `evm_revert` fail and leaves anvil broken.
            raise ReorgBelowSnapshotError(
                f"reorg depth {depth} at head {head} reaches below the snapshot taken at "
                f"{self.snapshot_height}; mine at least {self.snapshot_height + depth - head} "
                "more blocks first"
            )
        pairs = [[HexBytes(raw).to_0x_hex(), offset] for raw, offset in replay or []]
        await self.request("anvil_reorg", [depth, pairs])

    async def rollback(self, depth: int) -> None:
        """Remove the last `depth` blocks (the head goes down)."""
        await self.request("anvil_rollback", [depth])
