"""kill -9 of a live on-chain process between `TransactionSubmitted` and the receipt (issue 7, point 5):
a child process (tests/reliability/chain_child.py) sends a transaction with anvil's automine off and is
killed once the ledger file holds its intent and the node holds the transaction; the block is mined;
a restarted engine on the same ledger resolves it exactly once and sends nothing again.

The kill after the write-ahead but before the broadcast is covered in-process by
`tests/integration/test_live_chain.py::test_crash_between_write_ahead_and_broadcast_frees_the_nonce`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account

from aggregates.transitions import State
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing.checkers import check_conservation, check_lifecycle, check_no_floats, check_rebuild_equals
from tests.chain import abi
from tests.chain.harness import ETHER, USDT_UNIT, Chain
from tests.chain.tx import actor_key
from tests.integration.test_live_chain import FUNDED_ETH, FUNDED_USDT, LIVE_FINAL, VENUE, desk_config

pytest_plugins = ["tests.chain.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("chain_child.py")
SUBMITTED = "ledger:VenueLedger.TransactionSubmitted"
WAIT_S = 30.0


def _submitted_count(db: Path) -> int:
    """`TransactionSubmitted` rows in the ledger file, read as a separate read-only connection."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    except sqlite3.OperationalError:
        return 0
    try:
        (count,) = con.execute("SELECT COUNT(*) FROM stored_events WHERE topic = ?", (SUBMITTED,)).fetchone()
        return int(count)
    except sqlite3.OperationalError:  # the child has not created the table yet
        return 0
    finally:
        con.close()


class ChainChild:
    """The child process, its stdout lines collected as they arrive."""

    def __init__(self, spec: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(spec)], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def line(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), WAIT_S)
        text = raw.decode().strip()
        if not text.startswith(prefix):
            self.proc.kill()
            errors = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"child said {text!r}, expected {prefix}: {errors[-2000:]}")
        return text

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL
        errors = self.proc.stderr.read().decode() if self.proc.stderr else ""
        assert "Traceback" not in errors, errors


async def _run_and_kill(chain: Chain, tmp_path: Path, label: str, instruction: dict[str, Any],
                        prepare: list[dict[str, Any]]) -> tuple[dict[str, Any], Path, int]:
    """Fund an actor, run the child until its transaction is in the ledger file and the mempool, kill
    it; returns the config, the ledger path and how many transactions the child had submitted."""
    key = actor_key(label)
    address = Account.from_key(key).address
    await chain.control.set_balance(address, FUNDED_ETH * ETHER)
    await chain.admin.transact(chain.usdt.functions.mint(address, FUNDED_USDT * USDT_UNIT))
    db = tmp_path / "ledger.db"
    config = desk_config(chain.node, key, db, chain.market, session={"key": f"{label}-1"},
                         approval="unlimited", confirm_timeout_s=600, accrual_poll_s=0)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"config": config, "instruction": instruction, "prepare": prepare}))
    child = ChainChild(spec)
    try:
        await child.line("READY")
        before = _submitted_count(db)
        await chain.control.set_automine(False)
        child.go()
        await child.line(f"SENDING {instruction['instruction_id']}")
        deadline = time.monotonic() + WAIT_S
        while _submitted_count(db) == before or (await chain.control.txpool_status())["pending"] == 0:
            assert time.monotonic() < deadline, "the child never submitted its transaction"
            await asyncio.sleep(0.005)
        assert await chain.w3.eth.get_transaction_count(address, "latest") == before  # not mined
    finally:
        child.kill9()
    return config, db, before + 1


def _events(engine: EventDrivenStrategyEngine, *names: str) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events() if type(e).__name__ in names]


async def _restart(config: dict[str, Any], label: str) -> EventDrivenStrategyEngine:
    """A fresh engine on the same ledger file, in this process: the live start-up reconciliation
    (`ledger.live.reconcile`: the chain backend's recovery, then `BalanceObserved` per asset) resolves
    what was sent, and an advance runs the accrual poller."""
    from ledger.live import reconcile

    engine = EventDrivenStrategyEngine({**config, "session": {"key": f"{label}-2"}})
    report = (await reconcile(engine))[engine.execution_interfaces["onchain"].chain_venue]
    assert report["unresolved"] == [] and report["error"] == "", report
    assert all(row["difference"] == 0 for row in report["balances"]), report
    await engine.advance_to(datetime.now(UTC), {"eth_usd_price": "3000"})
    return engine


async def _close(engine: EventDrivenStrategyEngine) -> None:
    await engine.execution_interfaces["onchain"].backend.client.close()
    engine.close(views=False)


async def _erc20(chain: Chain, token: str, who: str) -> Decimal:
    contract = chain.w3.eth.contract(address=token, abi=abi.ERC20)
    decimals = await contract.functions.decimals().call()
    return Decimal(await contract.functions.balanceOf(who).call()).scaleb(-decimals)


async def _assert_resolved_once(chain: Chain, engine: EventDrivenStrategyEngine, iid: str, sent: int) -> str:
    """The killed transaction is confirmed once, its instruction completed, nothing sent again, and
    the projection equals a rebuild; returns the transaction hash."""
    (submitted,) = [e for e in _events(engine, "TransactionSubmitted") if e.instruction_id == iid]
    confirmed = [e for e in _events(engine, "TransactionConfirmed") if e.tx_hash == submitted.tx_hash]
    assert len(confirmed) == 1
    assert [e.instruction_id for e in _events(engine, "InstructionCompleted")].count(iid) == 1
    assert _events(engine, "TransactionDropped", "TransactionReplaced", "OrderFailed") == []
    wallet = engine.execution_interfaces["onchain"].backend.address
    all_sent = _events(engine, "TransactionSubmitted")
    assert len(all_sent) == sent
    assert await chain.w3.eth.get_transaction_count(wallet, "latest") == sent
    assert (await chain.control.txpool_status())["pending"] == 0
    states = check_lifecycle(engine, LIVE_FINAL)
    assert states[iid] is State.COMPLETED
    check_conservation(engine)
    check_no_floats(engine)
    check_rebuild_equals(engine)
    mon = engine.position_monitor
    assert mon.balance("ETH", VENUE, wallet) == Decimal(await chain.w3.eth.get_balance(wallet)).scaleb(-18)
    assert mon.balance("USDT", VENUE, wallet) == await _erc20(chain, chain.market.usdt, wallet)
    return str(submitted.tx_hash)


async def test_kill9_with_an_erc20_transfer_in_the_mempool_resolves_it_once(
    chain: Chain, tmp_path: Path
) -> None:
    """USDT transfer: the child dies with its transaction pending; after mining, the restarted engine
    records it mined and confirmed once, completes the instruction, and the wallet's nonce advanced
    by exactly the one transaction ever sent; balances equal the chain's."""
    to = chain.accounts[7].address
    received_before = await _erc20(chain, chain.market.usdt, to)
    iid = "kill9-transfer"
    instruction = {"venue_type": "onchain", "operation": "TRANSFER", "token": "USDT", "amount": "123.45",
                   "to": to, "instruction_id": iid}
    config, _db, sent = await _run_and_kill(chain, tmp_path, "kill9-transfer", instruction, [])
    await chain.control.mine()
    await chain.control.set_automine(True)
    engine = await _restart(config, "kill9-transfer")
    try:
        await _assert_resolved_once(chain, engine, iid, sent)
        assert sent == 1
        assert await _erc20(chain, chain.market.usdt, to) == received_before + Decimal("123.45")
        # Trading resumes on the next nonce.
        again = await engine.execute_trade_with_interface(
            {"venue_type": "onchain", "operation": "TRANSFER", "token": "ETH", "amount": "1", "to": to})
        assert again["status"] == "CONFIRMED", again
        assert [e.nonce for e in _events(engine, "TransactionSubmitted")] == [0, 1]
    finally:
        await _close(engine)


async def test_kill9_with_an_aave_supply_in_the_mempool_resolves_it_once(
    chain: Chain, tmp_path: Path
) -> None:
    """AAVE supply (the allowance already given, so one transaction): killed while pending, mined,
    resolved once by the restart; the supplied book equals the aToken balance and no transaction
    beyond the preparation's two and this one reached the node."""
    iid = "kill9-supply"
    prepare = [{"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "USDT", "amount": "1",
                "instruction_id": "kill9-prepare"}]
    instruction = {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "USDT", "amount": "5000",
                   "instruction_id": iid}
    config, _db, sent = await _run_and_kill(chain, tmp_path, "kill9-supply", instruction, prepare)
    assert sent == 3  # APPROVE + AAVE_SUPPLY of the preparation, then this one
    await chain.control.mine()
    await chain.control.set_automine(True)
    engine = await _restart(config, "kill9-supply")
    try:
        await _assert_resolved_once(chain, engine, iid, sent)
        pool_data = chain.w3.eth.contract(address=chain.market.data_provider, abi=abi.POOL_DATA_PROVIDER)
        a_token, _stable, _variable = await pool_data.functions.getReserveTokensAddresses(
            chain.market.usdt).call()
        wallet = engine.execution_interfaces["onchain"].backend.address
        assert engine.position_monitor.supplied(VENUE, "USDT") == await _erc20(chain, a_token, wallet)
        assert engine.position_monitor.supplied(VENUE, "USDT") >= Decimal(5001)
    finally:
        await _close(engine)

