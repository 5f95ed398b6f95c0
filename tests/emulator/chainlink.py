"""The emulator's link to a real local chain (anvil JSON-RPC over HTTP on 127.0.0.1).

Withdrawals are sent from a hot wallet (ETH value transfers or ERC-20 ``transfer``), signed with
eth_account and submitted with ``eth_sendRawTransaction``; deposits are found by scanning new blocks
(``eth_getLogs`` for ERC-20 ``Transfer`` to a deposit address, full blocks for plain ETH transfers).
Plain synchronous JSON-RPC (urllib): the emulator's handlers run in its own thread.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from eth_account import Account

if TYPE_CHECKING:
    from .engine import VenueEngine

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
DECIMALS_SELECTOR = "0x313ce567"  # decimals()
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ChainError(RuntimeError):
    pass


def _pad_address(address: str) -> str:
    return "0x" + address.lower().removeprefix("0x").rjust(64, "0")


class ChainLink:
    """One JSON-RPC endpoint, a hot wallet and the ERC-20 tokens the venues list (asset -> contract)."""

    def __init__(self, rpc_url: str, tokens: dict[str, str], hot_wallet_key: str, confirmations: int,
                 engines: dict[str, VenueEngine]) -> None:
        host = urlparse(rpc_url).hostname or ""
        if host not in LOOPBACK:
            raise ValueError(f"the chain link only talks to a loopback node, not {host!r}")
        if confirmations < 1:
            raise ValueError("confirmations must be >= 1")
        self.rpc_url = rpc_url
        self.tokens = {asset.upper(): addr for asset, addr in tokens.items()}
        self.account = Account.from_key(hot_wallet_key)
        self.confirmations = confirmations
        self.engines = engines
        self._lock = threading.RLock()
        self._rpc_id = 0
        self._decimals: dict[str, int] = {}
        self.chain_id = int(self.rpc("eth_chainId", []), 16)
        # only blocks mined after attaching are scanned
        self.scanned_to = self.block_number()

    @property
    def hot_wallet(self) -> str:
        return str(self.account.address)

    # ----------------------------------------------------------------- JSON-RPC
    def rpc(self, method: str, params: list[Any]) -> Any:
        with self._lock:
            self._rpc_id += 1
            payload = json.dumps({"jsonrpc": "2.0", "id": self._rpc_id, "method": method,
                                  "params": params}).encode()
        req = urllib.request.Request(self.rpc_url, data=payload,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("error"):
            raise ChainError(f"{method}: {body['error']}")
        return body.get("result")

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def decimals(self, asset: str) -> int:
        asset = asset.upper()
        if asset == "ETH":
            return 18
        if asset not in self._decimals:
            out = self.rpc("eth_call", [{"to": self.tokens[asset], "data": DECIMALS_SELECTOR}, "latest"])
            self._decimals[asset] = int(out, 16)
        return self._decimals[asset]

    def to_units(self, asset: str, amount: Decimal) -> int:
        units = amount.scaleb(self.decimals(asset))
        if units != units.to_integral_value():
            raise ChainError(f"{amount} {asset} has more decimals than the token")
        return int(units)

    # ----------------------------------------------------------------- withdrawals
    def send(self, asset: str, to: str, amount: Decimal) -> str:
        """Send ``amount`` of ``asset`` from the hot wallet to ``to``; returns the tx hash."""
        asset = asset.upper()
        with self._lock:
            if asset == "ETH":
                tx: dict[str, Any] = {"to": to, "value": self.to_units(asset, amount), "data": b""}
            elif asset in self.tokens:
                data = (TRANSFER_SELECTOR + to.lower().removeprefix("0x").rjust(64, "0")
                        + format(self.to_units(asset, amount), "064x"))
                tx = {"to": self.tokens[asset], "value": 0, "data": bytes.fromhex(data)}
            else:
                raise ChainError(f"no token contract configured for {asset}")
            nonce = int(self.rpc("eth_getTransactionCount", [self.hot_wallet, "pending"]), 16)
            estimate = {"from": self.hot_wallet, "to": tx["to"], "value": hex(tx["value"]),
                        "data": "0x" + tx["data"].hex()}
            gas = int(self.rpc("eth_estimateGas", [estimate]), 16)
            gas_price = int(self.rpc("eth_gasPrice", []), 16)
            full = {**tx, "nonce": nonce, "gas": gas * 5 // 4 + 1000, "gasPrice": gas_price * 2,
                    "chainId": self.chain_id}
            full["to"] = _checksum(full["to"])
            signed = self.account.sign_transaction(full)
            raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
            return str(self.rpc("eth_sendRawTransaction", ["0x" + bytes(raw).hex()]))

    def tx_state(self, txid: str, wait_s: float = 2.0) -> str:
        """'ok' (mined, succeeded, enough confirmations), 'failed' (reverted) or 'pending'."""
        deadline = time.monotonic() + wait_s
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [txid])
            if receipt is not None:
                if int(receipt["status"], 16) != 1:
                    return "failed"
                depth = self.block_number() - int(receipt["blockNumber"], 16) + 1
                if depth >= self.confirmations:
                    return "ok"
                return "pending"
            if time.monotonic() >= deadline:
                return "pending"
            time.sleep(0.005)  # anvil's automine is asynchronous

    # ----------------------------------------------------------------- deposits
    def scan(self) -> int:
        """Credit transfers to any venue's deposit address in blocks with enough confirmations."""
        found: list[tuple[str, str, Decimal, str, str]] = []  # venue, asset, amount, txid, to
        with self._lock:
            head = self.block_number()
            if head < self.scanned_to:  # the node was reverted below what we saw
                self.scanned_to = head
            last = head - self.confirmations + 1
            first = self.scanned_to + 1
            if last < first:
                return 0
            owners: dict[str, list[tuple[str, set[str]]]] = {}
            for venue, engine in self.engines.items():
                for addr, assets in engine.all_deposit_addresses().items():
                    owners.setdefault(addr, []).append((venue, assets))
            if self.tokens and owners:
                logs = self.rpc("eth_getLogs", [{
                    "fromBlock": hex(first), "toBlock": hex(last),
                    "address": list(self.tokens.values()),
                    "topics": [TRANSFER_TOPIC, None, [_pad_address(a) for a in owners]],
                }])
                by_contract = {addr.lower(): asset for asset, addr in self.tokens.items()}
                for log in logs or []:
                    asset = by_contract.get(log["address"].lower())
                    if asset is None or len(log["topics"]) < 3:
                        continue
                    to = "0x" + log["topics"][2][-40:]
                    amount = Decimal(int(log["data"], 16)).scaleb(-self.decimals(asset))
                    found.extend((venue, asset, amount, log["transactionHash"], to)
                                 for venue, assets in owners.get(to.lower(), [])
                                 if "*" in assets or asset in assets)
            for number in range(first, last + 1):
                block = self.rpc("eth_getBlockByNumber", [hex(number), True])
                for tx in (block or {}).get("transactions", []):
                    to = (tx.get("to") or "").lower()
                    value = int(tx.get("value") or "0x0", 16)
                    if value <= 0 or to not in owners:
                        continue
                    receipt = self.rpc("eth_getTransactionReceipt", [tx["hash"]])
                    if receipt is None or int(receipt["status"], 16) != 1:
                        continue
                    amount = Decimal(value).scaleb(-18)
                    found.extend((venue, "ETH", amount, tx["hash"], to)
                                 for venue, assets in owners[to] if "*" in assets or "ETH" in assets)
            self.scanned_to = last
        # credit outside the link lock (each engine takes its own lock)
        for venue, asset, amount, txid, to in found:
            self.engines[venue].credit_deposit(asset, amount, txid, network="ETH", address=_checksum(to))
        return len(found)


def _checksum(address: str) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address(address))
