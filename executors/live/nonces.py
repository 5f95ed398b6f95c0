"""The wallet's nonce allocator and what the ledger remembers about our transactions.

The next nonce is never the node's pending count alone: it is the larger of the ledger's highest
nonce still holding a transaction (+1) and the chain's mined count, after every submitted but
unresolved transaction has been looked at. Allocation, signing, the write-ahead append and the
broadcast happen under one lock, so a nonce handed out and not broadcast can be taken back without
leaving a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

# Statuses (`VenueLedger.txs`) after which a transaction no longer holds its nonce.
RELEASED = frozenset({"dropped", "replaced"})
UNRESOLVED = frozenset({"pending", "mined"})


@dataclass
class KnownTx:
    """One of our transactions as the ledger's events tell it."""

    instruction_id: str
    tx_hash: str
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int
    purpose: str
    wallet: str
    status: str = "pending"
    block_number: int = 0
    block_hash: str = ""
    effects: tuple[dict[str, str], ...] = ()


@dataclass
class LedgerMemory:
    """Transactions, instruction wallets and states folded from the chain venue's stream."""

    txs: dict[str, KnownTx] = field(default_factory=dict)
    wallets: dict[str, str] = field(default_factory=dict)  # instruction id -> wallet
    instructions: dict[str, dict[str, str]] = field(default_factory=dict)  # as accepted
    completed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def of_wallet(self, wallet: str) -> list[KnownTx]:
        return [t for t in self.txs.values() if t.wallet == wallet]

    def next_nonce(self, wallet: str) -> int:
        """Highest nonce of a transaction that still holds one, plus one (0 with none)."""
        held = [t.nonce for t in self.of_wallet(wallet) if t.status not in RELEASED]
        return max(held) + 1 if held else 0

    def last_tx(self, instruction_id: str) -> KnownTx | None:
        mine = [t for t in self.txs.values() if t.instruction_id == instruction_id]
        return max(mine, key=lambda t: t.nonce) if mine else None

    def unresolved(self, wallet: str) -> list[KnownTx]:
        return sorted((t for t in self.of_wallet(wallet) if t.status in UNRESOLVED), key=lambda t: t.nonce)


def remember(events: Iterable[Any]) -> LedgerMemory:
    """Fold a venue stream's events into what the live backend needs after a restart."""
    memory = LedgerMemory()
    for event in events:
        name = type(event).__name__
        iid = getattr(event, "instruction_id", "")
        if name == "InstructionAccepted":
            memory.wallets[iid] = str(event.instruction.get("wallet", ""))
            memory.instructions[iid] = dict(event.instruction)
        elif name == "InstructionCompleted":
            memory.completed.add(iid)
        elif name == "OrderFailed":
            memory.failed.add(iid)
        elif name == "TransactionSubmitted":
            memory.txs[event.tx_hash] = KnownTx(
                iid, event.tx_hash, event.nonce, event.max_fee_per_gas, event.max_priority_fee_per_gas,
                event.gas_limit, event.purpose, memory.wallets.get(iid, ""),
            )  # fmt: skip
        elif name == "TransactionReplaced":
            old = memory.txs.get(event.old_tx_hash)
            if old is not None:
                old.status = "replaced"
                memory.txs[event.tx_hash] = KnownTx(
                    iid, event.tx_hash, old.nonce, event.max_fee_per_gas, event.max_priority_fee_per_gas,
                    old.gas_limit, old.purpose, old.wallet,
                )  # fmt: skip
        elif name in _TX_STATUS and event.tx_hash in memory.txs:
            tx = memory.txs[event.tx_hash]
            tx.status = _TX_STATUS[name]
            if name in ("TransactionMined", "TransactionConfirmed"):
                tx.block_number, tx.block_hash = event.block_number, event.block_hash
            if name == "TransactionConfirmed":
                tx.effects = tuple(event.effects)
    return memory


def final_purpose(operation: str, asset: str) -> str:
    """The purpose of the last transaction of an instruction's plan (the one that completes it)."""
    if operation in ("AAVE_WITHDRAW", "AAVE_BORROW"):
        return "UNWRAP" if asset == "ETH" else operation
    if operation == "TRANSFER":
        return "TRANSFER_ETH" if asset == "ETH" else "TRANSFER_ERC20"
    if operation == "UNSTAKE":
        return "CLAIM"
    return operation


_TX_STATUS = {
    "TransactionMined": "mined",
    "TransactionConfirmed": "confirmed",
    "TransactionReverted": "reverted",
    "TransactionDropped": "dropped",
    "TransactionReorged": "pending",
}


class NonceAllocator:
    """Hands out one wallet's nonces in order; `seed` must run (after recovery) before `reserve`."""

    def __init__(self) -> None:
        self._next: int | None = None
        self._lock = asyncio.Lock()

    @property
    def seeded(self) -> bool:
        return self._next is not None

    @property
    def next(self) -> int | None:
        return self._next

    def seed(self, ledger_next: int, chain_mined: int) -> int:
        """Start from the larger of the ledger's next nonce and the chain's mined transaction count."""
        self._next = max(ledger_next, chain_mined, self._next or 0)
        return self._next

    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[Reservation]:
        """Hold the lock and one nonce; it is used up unless the holder calls `release()`."""
        async with self._lock:
            if self._next is None:
                raise RuntimeError("nonce allocator used before it was seeded")
            reservation = Reservation(self._next)
            try:
                yield reservation
            finally:
                if not reservation.released:
                    self._next = reservation.nonce + 1


@dataclass
class Reservation:
    nonce: int
    released: bool = False

    def release(self) -> None:
        """The transaction never reached the node: give the nonce back (no gap is left)."""
        self.released = True
