"""Sign and send EIP-1559 transactions from local keys with web3.py 8 `AsyncWeb3`.

Signing is local (`Account.sign_transaction` + `send_raw_transaction`), as a production executor
would do; receipts are polled every few milliseconds because anvil's automine is asynchronous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractFunction
from web3.types import TxReceipt

from tests.chain.anvil import CHAIN_ID

GWEI = 10**9
DEFAULT_TIP = 1 * GWEI
RECEIPT_POLL_S = 0.005
RECEIPT_TIMEOUT_S = 10.0
# geth's txpool rejects a same-nonce replacement unless both fee fields rise by >= 10% (its
# default price bump); 12.5%, the largest per-block base-fee rise, clears that with margin.
# anvil itself accepts a 1-wei bump, so tests assert the bump rather than rely on a rejection.
REPLACEMENT_BUMP = Fraction(1125, 1000)
# eth_estimateGas runs at the latest block's timestamp; the mined block is later, and Aave then
# takes its interest-accrual path (treasury mint, index updates), which costs more gas.
GAS_MARGIN = Fraction(5, 4)


def with_gas_margin(estimate: int) -> int:
    """A gas limit with headroom over an estimate."""
    return math.ceil(estimate * GAS_MARGIN)


class TxFailedError(RuntimeError):
    """A transaction was mined with status 0; `reason` is the replayed revert, if recovered."""

    def __init__(self, receipt: TxReceipt, reason: str | None = None) -> None:
        tx_hash = receipt["transactionHash"].to_0x_hex()
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"transaction {tx_hash} reverted in block {receipt['blockNumber']}{detail}"
        )
        self.receipt = receipt
        self.reason = reason


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee fields in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def bumped(self, factor: Fraction = REPLACEMENT_BUMP) -> Fees:
        """Both fields multiplied by `factor`, rounded up so the bump is never short by a wei."""
        return Fees(
            max_fee_per_gas=math.ceil(self.max_fee_per_gas * factor),
            max_priority_fee_per_gas=math.ceil(self.max_priority_fee_per_gas * factor),
        )

    def as_params(self) -> dict[str, int]:
        return {
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas,
        }


def actor_key(label: str) -> bytes:
    """A deterministic private key for a named test actor (no randomness between runs)."""
    return keccak(text=f"execution-ledger/tests/chain/{label}")


class AsyncSender:
    """Builds, signs, sends and confirms transactions for one local account."""

    def __init__(self, w3: AsyncWeb3, account: LocalAccount, tip: int = DEFAULT_TIP) -> None:
        self.w3 = w3
        self.account = account
        self.tip = tip

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def fees(self) -> Fees:
        """Tip plus twice the latest base fee: enough for several blocks of base-fee growth."""
        block = await self.w3.eth.get_block("latest")
        return Fees(2 * int(block["baseFeePerGas"]) + self.tip, self.tip)

    async def pending_nonce(self) -> int:
        return await self.w3.eth.get_transaction_count(self.account.address, "pending")

    async def build(
        self,
        call: AsyncContractFunction | dict[str, Any],
        *,
        value: int = 0,
        nonce: int | None = None,
        fees: Fees | None = None,
        gas: int | None = None,
    ) -> dict[str, Any]:
        """A complete type-2 transaction dict. Without `gas`, estimation runs the call first, so
        a revert raises web3's `ContractLogicError` here, before anything is signed."""
        base: dict[str, Any] = {
            "type": 2,
            "chainId": CHAIN_ID,
            "from": self.account.address,
            "value": value,
            "nonce": await self.pending_nonce() if nonce is None else nonce,
            **(fees or await self.fees()).as_params(),
        }
        if isinstance(call, dict):
            tx = {**base, **call}
            if "gas" not in tx:
                tx["gas"] = gas or with_gas_margin(await self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            return tx
        base["gas"] = gas or with_gas_margin(await call.estimate_gas(base))  # type: ignore[arg-type]
        return dict(await call.build_transaction(base))  # type: ignore[arg-type]

    def sign(self, tx: dict[str, Any]) -> SignedTransaction:
        unsigned = {k: v for k, v in tx.items() if k != "from"}
        return self.account.sign_transaction(unsigned)

    async def send_raw(self, raw: bytes) -> HexBytes:
        return HexBytes(await self.w3.eth.send_raw_transaction(raw))

    async def send(self, tx: dict[str, Any]) -> tuple[HexBytes, SignedTransaction]:
        """Sign and broadcast; returns the hash and the signed transaction (for rebroadcasts)."""
        signed = self.sign(tx)
        return await self.send_raw(signed.raw_transaction), signed

    async def wait(self, tx_hash: bytes, timeout: float = RECEIPT_TIMEOUT_S) -> TxReceipt:
        return await self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=timeout, poll_latency=RECEIPT_POLL_S
        )

    async def transact(
        self,
        call: AsyncContractFunction | dict[str, Any],
        *,
        value: int = 0,
        gas: int | None = None,
        require_success: bool = True,
    ) -> TxReceipt:
        """Build, sign, send and wait; raise `TxFailedError` on status 0 unless told not to."""
        tx = await self.build(call, value=value, gas=gas)
        tx_hash, _ = await self.send(tx)
        receipt = await self.wait(tx_hash)
        if require_success and receipt["status"] != 1:
            raise TxFailedError(receipt, await self.replay_revert(receipt))
        return receipt

    async def replay_revert(self, receipt: TxReceipt) -> str | None:
        """Re-run a mined, reverted tx with eth_call on its parent block's state to get the
        revert reason (receipts carry none). Later txs in the same block are not replayed."""
        tx = await self.w3.eth.get_transaction(receipt["transactionHash"])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            await self.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except Exception as exc:  # any revert flavour (logic, custom, panic) is the answer
            return repr(exc)
        return None
