"""The VenueLedger aggregate: one stream per (account, venue) holding every instruction and fill there.

Command methods (`record_*`) check their guards, then emit exactly one event, or emit nothing when
a venue fact was already recorded (fills, deposits and settlements are idempotent by their keys).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.errors import DuplicateError, InstructionError
from aggregates.ids import venue_ledger_id
from aggregates.snapshots import LedgerSnapshot
from aggregates.transitions import State, next_state
from aggregates.values import (
    AMOUNT,
    BALANCE,
    INDEX,
    PRICE,
    RATE,
    SIGNED_AMOUNT,
    ZERO,
    MarketType,
    parse_instrument,
    shown,
)

Fields = dict[str, Any]


class VenueLedger(Aggregate):
    """All instructions, orders, transactions, fills and balance movements of one account at one venue."""

    TOPIC = "ledger:VenueLedger"
    Snapshot = LedgerSnapshot

    class Event(Aggregate.Event):
        TOPIC = "ledger:VenueLedger.Event"
        ts_event: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate._on(self)

    class Opened(Event, Aggregate.Created):
        TOPIC = "ledger:VenueLedger.Opened"
        account: str
        venue: str
        venue_type: str

    class FundsDeposited(Event):
        TOPIC = "ledger:VenueLedger.FundsDeposited"
        deposit_id: str
        wallet: str
        asset: str
        amount: Decimal

    class FundsWithdrawn(Event):
        TOPIC = "ledger:VenueLedger.FundsWithdrawn"
        withdrawal_id: str
        wallet: str
        asset: str
        amount: Decimal

    class BalanceAdjusted(Event):
        TOPIC = "ledger:VenueLedger.BalanceAdjusted"
        adjustment_id: str
        wallet: str
        asset: str
        delta: Decimal
        reason: str

    class InstructionAccepted(Event):
        TOPIC = "ledger:VenueLedger.InstructionAccepted"
        instruction_id: str
        instruction: dict[str, str]
        market: dict[str, Decimal]

    class InstructionRejected(Event):
        TOPIC = "ledger:VenueLedger.InstructionRejected"
        instruction_id: str
        code: str
        reason: str
        received: dict[str, str]

    class InstructionCompleted(Event):
        TOPIC = "ledger:VenueLedger.InstructionCompleted"
        instruction_id: str

    class OrderSubmitted(Event):
        TOPIC = "ledger:VenueLedger.OrderSubmitted"
        instruction_id: str
        client_order_id: str
        attempt: int

    class OrderAcknowledged(Event):
        TOPIC = "ledger:VenueLedger.OrderAcknowledged"
        instruction_id: str
        venue_order_id: str

    class OrderFilled(Event):
        TOPIC = "ledger:VenueLedger.OrderFilled"
        instruction_id: str
        trade_id: str
        market_type: str
        instrument: str
        side: str
        quantity: Decimal
        price: Decimal
        fee: Decimal
        fee_asset: str
        liquidity: str
        wallet: str
        reference_price: Decimal | None
        slippage_bps: Decimal | None

    class CancelRequested(Event):
        TOPIC = "ledger:VenueLedger.CancelRequested"
        instruction_id: str

    class OrderCancelled(Event):
        TOPIC = "ledger:VenueLedger.OrderCancelled"
        instruction_id: str
        reason: str

    class OrderFailed(Event):
        TOPIC = "ledger:VenueLedger.OrderFailed"
        instruction_id: str
        code: str
        reason: str

    class OrderOutcomeUnknown(Event):
        TOPIC = "ledger:VenueLedger.OrderOutcomeUnknown"
        instruction_id: str
        reason: str

    class OrderReconciled(Event):
        TOPIC = "ledger:VenueLedger.OrderReconciled"
        instruction_id: str
        outcome: str
        venue_order_id: str

    class TransactionSubmitted(Event):
        TOPIC = "ledger:VenueLedger.TransactionSubmitted"
        instruction_id: str
        tx_hash: str
        nonce: int
        max_fee_per_gas: int
        max_priority_fee_per_gas: int
        gas_limit: int
        purpose: str

    class TransactionMined(Event):
        TOPIC = "ledger:VenueLedger.TransactionMined"
        instruction_id: str
        tx_hash: str
        block_number: int
        block_hash: str

    class TransactionConfirmed(Event):
        TOPIC = "ledger:VenueLedger.TransactionConfirmed"
        instruction_id: str
        tx_hash: str
        block_number: int
        block_hash: str
        gas_used: int
        effective_gas_price: int
        gas_fee: Decimal
        effects: tuple[dict[str, str], ...]

    class TransactionReverted(Event):
        TOPIC = "ledger:VenueLedger.TransactionReverted"
        instruction_id: str
        tx_hash: str
        reason: str
        gas_fee: Decimal

    class TransactionReplaced(Event):
        TOPIC = "ledger:VenueLedger.TransactionReplaced"
        instruction_id: str
        old_tx_hash: str
        tx_hash: str
        max_fee_per_gas: int
        max_priority_fee_per_gas: int

    class TransactionDropped(Event):
        TOPIC = "ledger:VenueLedger.TransactionDropped"
        instruction_id: str
        tx_hash: str

    class TransactionReorged(Event):
        TOPIC = "ledger:VenueLedger.TransactionReorged"
        instruction_id: str
        tx_hash: str
        old_block_hash: str

    class FundingSettled(Event):
        TOPIC = "ledger:VenueLedger.FundingSettled"
        instrument: str
        wallet: str
        asset: str
        rate: Decimal
        mark_price: Decimal
        position: Decimal
        amount: Decimal

    class InterestAccrued(Event):
        TOPIC = "ledger:VenueLedger.InterestAccrued"
        accrual_id: str
        asset: str
        side: str
        amount: Decimal
        index: Decimal

    class RewardAccrued(Event):
        TOPIC = "ledger:VenueLedger.RewardAccrued"
        accrual_id: str
        wallet: str
        asset: str
        amount: Decimal
        kind: str

    class TransferSent(Event):
        TOPIC = "ledger:VenueLedger.TransferSent"
        instruction_id: str
        transfer_id: str
        asset: str
        amount: Decimal
        fee: Decimal
        from_wallet: str
        to_venue: str
        to_wallet: str

    class TransferReceived(Event):
        TOPIC = "ledger:VenueLedger.TransferReceived"
        transfer_id: str
        from_venue: str
        wallet: str
        asset: str
        amount: Decimal

    class TransferObserved(Event):
        """What a venue or the chain reports about a live transfer: the withdrawal id, the txid once
        broadcast, the deposit that matched it, or a status change."""

        TOPIC = "ledger:VenueLedger.TransferObserved"
        observation_id: str
        instruction_id: str
        transfer_id: str
        stage: str
        external_id: str
        txid: str
        status: str
        address: str

    class TransferFailed(Event):
        TOPIC = "ledger:VenueLedger.TransferFailed"
        instruction_id: str
        transfer_id: str
        reason: str
        refunded: Decimal

    class BalanceObserved(Event):
        """v2 added `difference`; v1 rows are upcast by computing it."""

        TOPIC = "ledger:VenueLedger.BalanceObserved"
        class_version = 2
        wallet: str
        asset: str
        observed: Decimal
        ledger: Decimal
        difference: Decimal

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["difference"] = str(Decimal(state["observed"]) - Decimal(state["ledger"]))

    # ---- construction and identity -------------------------------------------------------------

    def __init__(self, account: str, venue: str, venue_type: str, ts_event: datetime) -> None:
        self.account = account
        self.venue = venue
        self.venue_type = venue_type
        self.instructions: dict[str, State] = {}
        self.amounts: dict[str, Decimal] = {}
        self.filled: dict[str, Decimal] = {}
        self.attempts: dict[str, int] = {}
        self.client_ids: dict[str, str] = {}
        self.keys: dict[str, None] = {}  # insertion-ordered: snapshots need no sort
        self.txs: dict[str, str] = {}

    @staticmethod
    def create_id(account: str, venue: str) -> Any:
        return venue_ledger_id(account, venue)

    @classmethod
    def open(
        cls, account: str, venue: str, venue_type: str, ts: datetime, now: datetime | None = None
    ) -> VenueLedger:
        return cls._create(
            cls.Opened, account=account, venue=venue, venue_type=venue_type, ts_event=ts,
            timestamp=now or ts,
        )

    # ---- the one place events change state -----------------------------------------------------

    def _on(self, event: VenueLedger.Event) -> None:
        handler = _APPLY.get(type(event).__name__)
        if handler is not None:
            handler(self, event)

    def _emit(self, cls: type[VenueLedger.Event], ts: datetime, now: datetime | None, **f: Any) -> None:
        """Like `trigger_event`, without the dataclass __init__ on the hot path: the payload keys
        follow the class's declared field order, so stored bytes do not depend on call sites."""
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(x.name for x in dataclasses.fields(cls))[4:]
        if len(f) != len(names):
            raise TypeError(f"{cls.__name__} takes {names}, got {tuple(f)}")
        stamp = now or ts
        state = {"originator_id": self._id, "originator_version": self._version + 1,
                 "timestamp": stamp, "ts_event": ts}
        for name in names:
            state[name] = f[name]
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        self._on(event)
        self._version += 1
        self._modified_on = stamp
        self._pending_events.append(event)

    def state_of(self, instruction_id: str) -> State | None:
        return self.instructions.get(instruction_id)

    def _require(self, instruction_id: str, event: str) -> None:
        next_state(instruction_id, self.instructions.get(instruction_id), event)

    def _known(self, instruction_id: str) -> None:
        if instruction_id not in self.instructions:
            raise InstructionError("instruction_id", f"unknown instruction {instruction_id} at {self.venue}")

    # ---- balance movements ---------------------------------------------------------------------

    def record_deposit(
        self, deposit_id: str, wallet: str, asset: str, amount: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        """Record funds arriving from outside the ledger; a repeated deposit id changes nothing."""
        key = f"deposit:{deposit_id}"
        if key in self.keys:
            return False
        AMOUNT.require(amount, "amount")
        self._emit(self.FundsDeposited, ts, now, deposit_id=deposit_id, wallet=wallet, asset=asset,
                   amount=amount)
        return True

    def record_withdrawal(
        self, withdrawal_id: str, wallet: str, asset: str, amount: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        key = f"withdrawal:{withdrawal_id}"
        if key in self.keys:
            return False
        AMOUNT.require(amount, "amount")
        self._emit(self.FundsWithdrawn, ts, now, withdrawal_id=withdrawal_id, wallet=wallet,
                   asset=asset, amount=amount)
        return True

    def record_adjustment(
        self, adjustment_id: str, wallet: str, asset: str, delta: Decimal, reason: str,
        ts: datetime, now: datetime | None = None,
    ) -> bool:
        key = f"adjustment:{adjustment_id}"
        if key in self.keys:
            return False
        if not reason:
            raise InstructionError("reason", "a balance adjustment needs a reason")
        SIGNED_AMOUNT.require(delta, "delta")
        self._emit(self.BalanceAdjusted, ts, now, adjustment_id=adjustment_id, wallet=wallet,
                   asset=asset, delta=delta, reason=reason)
        return True

    # ---- our intents ---------------------------------------------------------------------------

    def record_accepted(
        self, instruction_id: str, instruction: dict[str, str], market: dict[str, Decimal],
        ts: datetime, now: datetime | None = None,
    ) -> None:
        if instruction_id in self.instructions:
            raise DuplicateError(f"instruction {instruction_id} already recorded at {self.venue}")
        self._require(instruction_id, "InstructionAccepted")
        self._emit(self.InstructionAccepted, ts, now, instruction_id=instruction_id,
                   instruction=dict(instruction), market=dict(market))

    def record_rejected(
        self, instruction_id: str, code: str, reason: str, received: dict[str, str],
        ts: datetime, now: datetime | None = None,
    ) -> None:
        self._require(instruction_id, "InstructionRejected")
        self._emit(self.InstructionRejected, ts, now, instruction_id=instruction_id, code=code,
                   reason=reason, received=dict(received))

    def record_submitted(
        self, instruction_id: str, client_order_id: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        """The order intent, written before any network call."""
        self._require(instruction_id, "OrderSubmitted")
        attempt = self.attempts.get(instruction_id, 0) + 1
        if client_order_id in self.client_ids:
            raise DuplicateError(f"client order id {client_order_id} already used at {self.venue}")
        self._emit(self.OrderSubmitted, ts, now, instruction_id=instruction_id,
                   client_order_id=client_order_id, attempt=attempt)

    def next_attempt(self, instruction_id: str) -> int:
        return self.attempts.get(instruction_id, 0) + 1

    def record_cancel_requested(self, instruction_id: str, ts: datetime, now: datetime | None = None) -> None:
        self._require(instruction_id, "CancelRequested")
        self._emit(self.CancelRequested, ts, now, instruction_id=instruction_id)

    def record_outcome_unknown(
        self, instruction_id: str, reason: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._require(instruction_id, "OrderOutcomeUnknown")
        self._emit(self.OrderOutcomeUnknown, ts, now, instruction_id=instruction_id, reason=reason)

    def record_completed(self, instruction_id: str, ts: datetime, now: datetime | None = None) -> None:
        self._require(instruction_id, "InstructionCompleted")
        self._emit(self.InstructionCompleted, ts, now, instruction_id=instruction_id)

    def record_tx_submitted(
        self, instruction_id: str, tx_hash: str, nonce: int, max_fee_per_gas: int,
        max_priority_fee_per_gas: int, gas_limit: int, purpose: str, ts: datetime,
        now: datetime | None = None,
    ) -> None:
        """The signed transaction, written before broadcast."""
        self._require(instruction_id, "TransactionSubmitted")
        if tx_hash in self.txs:
            raise DuplicateError(f"transaction {tx_hash} already recorded at {self.venue}")
        self._emit(self.TransactionSubmitted, ts, now, instruction_id=instruction_id, tx_hash=tx_hash,
                   nonce=nonce, max_fee_per_gas=max_fee_per_gas,
                   max_priority_fee_per_gas=max_priority_fee_per_gas, gas_limit=gas_limit,
                   purpose=purpose)

    def record_tx_replaced(
        self, instruction_id: str, old_tx_hash: str, tx_hash: str, max_fee_per_gas: int,
        max_priority_fee_per_gas: int, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._require(instruction_id, "TransactionReplaced")
        self._emit(self.TransactionReplaced, ts, now, instruction_id=instruction_id,
                   old_tx_hash=old_tx_hash, tx_hash=tx_hash, max_fee_per_gas=max_fee_per_gas,
                   max_priority_fee_per_gas=max_priority_fee_per_gas)

    def record_transfer_sent(
        self, instruction_id: str, transfer_id: str, asset: str, amount: Decimal, fee: Decimal,
        from_wallet: str, to_venue: str, to_wallet: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._require(instruction_id, "TransferSent")
        AMOUNT.require(amount, "amount")
        BALANCE.require(fee, "fee")
        self._emit(self.TransferSent, ts, now, instruction_id=instruction_id, transfer_id=transfer_id,
                   asset=asset, amount=amount, fee=fee, from_wallet=from_wallet, to_venue=to_venue,
                   to_wallet=to_wallet)

    # ---- venue and chain facts (never refused, idempotent where they carry an id) --------------

    def record_acknowledged(
        self, instruction_id: str, venue_order_id: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        self._emit(self.OrderAcknowledged, ts, now, instruction_id=instruction_id,
                   venue_order_id=venue_order_id)

    def record_fill(
        self, instruction_id: str, trade_id: str, market_type: str, instrument: str, side: str,
        quantity: Decimal, price: Decimal, fee: Decimal, fee_asset: str, ts: datetime,
        liquidity: str = "taker", wallet: str = "spot", reference_price: Decimal | None = None,
        slippage_bps: Decimal | None = None, now: datetime | None = None,
    ) -> bool:
        """Record one venue trade; the same (market type, instrument, trade id) twice changes nothing."""
        key = fill_key(market_type, instrument, trade_id)
        if key in self.keys:
            return False
        self._known(instruction_id)
        AMOUNT.require(quantity, "quantity")
        PRICE.require(price, "price")
        SIGNED_AMOUNT.require(fee, "fee")  # a maker rebate is negative
        if reference_price is not None:
            PRICE.require(reference_price, "reference_price")
        if slippage_bps is not None:
            RATE.require(slippage_bps, "slippage_bps")
        if side not in ("buy", "sell"):
            raise InstructionError("side", f"expected buy or sell, got {side!r}")
        self._emit(self.OrderFilled, ts, now, instruction_id=instruction_id, trade_id=trade_id,
                   market_type=market_type, instrument=instrument, side=side, quantity=quantity,
                   price=price, fee=fee, fee_asset=fee_asset, liquidity=liquidity, wallet=wallet,
                   reference_price=reference_price, slippage_bps=slippage_bps)
        return True

    def record_cancelled(
        self, instruction_id: str, reason: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        self._emit(self.OrderCancelled, ts, now, instruction_id=instruction_id, reason=reason)

    def record_failed(
        self, instruction_id: str, code: str, reason: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        self._emit(self.OrderFailed, ts, now, instruction_id=instruction_id, code=code, reason=reason)

    def record_reconciled(
        self, instruction_id: str, outcome: str, venue_order_id: str, ts: datetime,
        now: datetime | None = None,
    ) -> None:
        if outcome not in ("open", "filled", "cancelled", "not_found"):
            raise InstructionError("outcome", f"unknown reconciliation outcome {outcome!r}")
        self._known(instruction_id)
        self._emit(self.OrderReconciled, ts, now, instruction_id=instruction_id, outcome=outcome,
                   venue_order_id=venue_order_id)

    def record_tx_mined(
        self, instruction_id: str, tx_hash: str, block_number: int, block_hash: str, ts: datetime,
        now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        self._emit(self.TransactionMined, ts, now, instruction_id=instruction_id, tx_hash=tx_hash,
                   block_number=block_number, block_hash=block_hash)

    def record_tx_confirmed(
        self, instruction_id: str, tx_hash: str, block_number: int, block_hash: str, gas_used: int,
        effective_gas_price: int, gas_fee: Decimal, effects: list[dict[str, str]], ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        """A transaction counts once, whatever block confirms it: its key is the tx hash, the block
        hash is kept beside it on the event. Only a recorded reorg (which drops the key) lets a
        later confirmation, in the new block, count again."""
        if tx_key(tx_hash) in self.keys:
            return False
        BALANCE.require(gas_fee, "gas_fee")
        self._known(instruction_id)
        self._emit(self.TransactionConfirmed, ts, now, instruction_id=instruction_id, tx_hash=tx_hash,
                   block_number=block_number, block_hash=block_hash, gas_used=gas_used,
                   effective_gas_price=effective_gas_price, gas_fee=gas_fee,
                   effects=tuple(dict(e) for e in effects))
        return True

    def record_tx_reverted(
        self, instruction_id: str, tx_hash: str, reason: str, gas_fee: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        BALANCE.require(gas_fee, "gas_fee")
        self._emit(self.TransactionReverted, ts, now, instruction_id=instruction_id, tx_hash=tx_hash,
                   reason=reason, gas_fee=gas_fee)

    def record_tx_dropped(
        self, instruction_id: str, tx_hash: str, ts: datetime, now: datetime | None = None,
    ) -> None:
        self._known(instruction_id)
        self._emit(self.TransactionDropped, ts, now, instruction_id=instruction_id, tx_hash=tx_hash)

    def record_tx_reorged(
        self, instruction_id: str, tx_hash: str, old_block_hash: str, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        if self.txs.get(tx_hash) != "confirmed":
            return False
        self._emit(self.TransactionReorged, ts, now, instruction_id=instruction_id, tx_hash=tx_hash,
                   old_block_hash=old_block_hash)
        return True

    def record_funding(
        self, instrument: str, wallet: str, asset: str, rate: Decimal, mark_price: Decimal,
        position: Decimal, amount: Decimal, ts: datetime, now: datetime | None = None,
    ) -> bool:
        """Funding paid (negative) or received (positive) on the margin asset, once per instrument
        and time."""
        key = f"funding:{instrument}:{ts.isoformat()}"
        if key in self.keys:
            return False
        # The venue's own settlement: a rate implied by what it paid is a fact, so the band of
        # FUNDING_RATE (checked on market data and files) is not applied here, only a rate's bound.
        RATE.require(rate, "rate")
        PRICE.require(mark_price, "mark_price")
        SIGNED_AMOUNT.require(position, "position")
        SIGNED_AMOUNT.require(amount, "amount")
        self._emit(self.FundingSettled, ts, now, instrument=instrument, wallet=wallet, asset=asset,
                   rate=rate, mark_price=mark_price, position=position, amount=amount)
        return True

    def record_interest(
        self, accrual_id: str, asset: str, side: str, amount: Decimal, index: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        key = f"interest:{accrual_id}"
        if key in self.keys:
            return False
        if side not in ("supplied", "borrowed"):
            raise InstructionError("side", f"expected supplied or borrowed, got {side!r}")
        SIGNED_AMOUNT.require(amount, "amount")
        INDEX.require(index, "index")
        self._emit(self.InterestAccrued, ts, now, accrual_id=accrual_id, asset=asset, side=side,
                   amount=amount, index=index)
        return True

    def record_reward(
        self, accrual_id: str, wallet: str, asset: str, amount: Decimal, kind: str, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        key = f"reward:{accrual_id}"
        if key in self.keys:
            return False
        SIGNED_AMOUNT.require(amount, "amount")
        self._emit(self.RewardAccrued, ts, now, accrual_id=accrual_id, wallet=wallet, asset=asset,
                   amount=amount, kind=kind)
        return True

    def record_transfer_received(
        self, transfer_id: str, from_venue: str, wallet: str, asset: str, amount: Decimal,
        ts: datetime, now: datetime | None = None,
    ) -> bool:
        key = f"received:{transfer_id}"
        if key in self.keys:
            return False
        AMOUNT.require(amount, "amount")
        self._emit(self.TransferReceived, ts, now, transfer_id=transfer_id, from_venue=from_venue,
                   wallet=wallet, asset=asset, amount=amount)
        return True

    def record_transfer_observed(
        self, instruction_id: str, transfer_id: str, stage: str, external_id: str, txid: str,
        status: str, address: str, ts: datetime, now: datetime | None = None,
    ) -> bool:
        """A venue's or the chain's report on a transfer, once per (transfer, stage, status, txid)."""
        observation_id = f"{transfer_id}:{stage}:{status}:{txid}"
        if f"transfer_observed:{observation_id}" in self.keys:
            return False
        self._emit(self.TransferObserved, ts, now, observation_id=observation_id,
                   instruction_id=instruction_id, transfer_id=transfer_id, stage=stage,
                   external_id=external_id, txid=txid, status=status, address=address)
        return True

    def record_transfer_failed(
        self, instruction_id: str, transfer_id: str, reason: str, refunded: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> bool:
        key = f"transfer_failed:{transfer_id}"
        if key in self.keys:
            return False
        BALANCE.require(refunded, "refunded")
        self._known(instruction_id)
        self._emit(self.TransferFailed, ts, now, instruction_id=instruction_id,
                   transfer_id=transfer_id, reason=reason, refunded=refunded)
        return True

    def record_balance_observed(
        self, wallet: str, asset: str, observed: Decimal, ledger: Decimal, ts: datetime,
        now: datetime | None = None,
    ) -> None:
        SIGNED_AMOUNT.require(observed, "observed")
        SIGNED_AMOUNT.require(ledger, "ledger")
        self._emit(self.BalanceObserved, ts, now, wallet=wallet, asset=asset, observed=observed,
                   ledger=ledger, difference=observed - ledger)

    # ---- snapshots -----------------------------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """A JSON-safe, canonical form of this aggregate's state (sorted, Decimals as strings)."""
        return {
            "account": self.account,
            "venue": self.venue,
            "venue_type": self.venue_type,
            "created_on": self.created_on.isoformat(),
            "modified_on": self.modified_on.isoformat(),
            "instructions": {k: str(v) for k, v in self.instructions.items()},
            "amounts": {k: str(v) for k, v in self.amounts.items()},
            "filled": {k: str(v) for k, v in self.filled.items()},
            "attempts": dict(self.attempts),
            "client_ids": dict(self.client_ids),
            "keys": list(self.keys),
            "txs": dict(self.txs),
        }

    @classmethod
    def from_snapshot_state(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "account": state["account"],
            "venue": state["venue"],
            "venue_type": state["venue_type"],
            "_created_on": datetime.fromisoformat(state["created_on"]),
            "_modified_on": datetime.fromisoformat(state["modified_on"]),
            "instructions": {k: State(v) for k, v in state["instructions"].items()},
            "amounts": {k: Decimal(v) for k, v in state["amounts"].items()},
            "filled": {k: Decimal(v) for k, v in state["filled"].items()},
            "attempts": dict(state["attempts"]),
            "client_ids": dict(state["client_ids"]),
            "keys": _keys_of(state),
            "txs": dict(state["txs"]),
        }


_FIELDS: dict[type, tuple[str, ...]] = {}


def fill_key(market_type: str, instrument: str, trade_id: str) -> str:
    """The idempotency key of a fill within its venue (SPEC §12.2), on the canonical ccxt symbol:
    `ETHUSDT`, `ETH/USDT` and `eth/usdt` are one instrument, so one trade id is one fill."""
    kind = next((k for k in MarketType if k.value == market_type), None)
    try:
        symbol = parse_instrument(instrument, kind).symbol
    except InstructionError:
        raise InstructionError("instrument", f"cannot read an instrument from {shown(instrument)}") from None
    return f"fill:{market_type}:{symbol}:{trade_id}"


def _keys_of(state: dict[str, Any]) -> dict[str, None]:
    """A snapshot's keys; one taken when a confirmation's key held its block hash (`tx:HASH:BLOCK`)
    is read with the hash-only key, so an old snapshot does not let a confirmation count twice."""
    return dict.fromkeys(
        tx_key(k.split(":")[1]) if k.startswith("tx:") and k.count(":") == 2 else k for k in state["keys"]
    )


def tx_key(tx_hash: str) -> str:
    """The idempotency key of a transaction's confirmation: the hash alone, not the block."""
    return f"tx:{tx_hash}"


# ---- how each event changes the aggregate (pure, no guards: guards ran in the commands) ---------

def _move(agg: VenueLedger, instruction_id: str, event: str) -> None:
    agg.instructions[instruction_id] = next_state(  # type: ignore[assignment]
        instruction_id, agg.instructions.get(instruction_id), event
    )


def _accepted(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, "InstructionAccepted")
    amount = e.instruction.get("amount")
    agg.amounts[e.instruction_id] = Decimal(amount) if amount else ZERO


def _submitted(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, "OrderSubmitted")
    agg.attempts[e.instruction_id] = e.attempt
    agg.client_ids[e.client_order_id] = e.instruction_id


def _filled(agg: VenueLedger, e: Any) -> None:
    agg.keys[fill_key(e.market_type, e.instrument, e.trade_id)] = None
    total = agg.filled.get(e.instruction_id, ZERO) + e.quantity
    agg.filled[e.instruction_id] = total
    amount = agg.amounts.get(e.instruction_id, ZERO)
    kind = "OrderFilled.complete" if amount and total >= amount else "OrderFilled.partial"
    _move(agg, e.instruction_id, kind)


def _reconciled(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, f"OrderReconciled.{e.outcome}")


def _keyed(prefix: str, attr: str) -> Any:
    def apply(agg: VenueLedger, e: Any) -> None:
        agg.keys[f"{prefix}:{getattr(e, attr)}"] = None
    return apply


def _lifecycle(name: str) -> Any:
    def apply(agg: VenueLedger, e: Any) -> None:
        _move(agg, e.instruction_id, name)
    return apply


def _tx(name: str, status: str) -> Any:
    def apply(agg: VenueLedger, e: Any) -> None:
        _move(agg, e.instruction_id, name)
        agg.txs[e.tx_hash] = status
        if name == "TransactionConfirmed":
            agg.keys[tx_key(e.tx_hash)] = None
    return apply


def _replaced(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, "TransactionReplaced")
    agg.txs[e.old_tx_hash] = "replaced"
    agg.txs[e.tx_hash] = "pending"


def _reorged(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, "TransactionReorged")
    agg.txs[e.tx_hash] = "reorged"
    agg.keys.pop(tx_key(e.tx_hash), None)


def _funding(agg: VenueLedger, e: Any) -> None:
    agg.keys[f"funding:{e.instrument}:{e.ts_event.isoformat()}"] = None


def _transfer_failed(agg: VenueLedger, e: Any) -> None:
    _move(agg, e.instruction_id, "TransferFailed")
    agg.keys[f"transfer_failed:{e.transfer_id}"] = None


_APPLY: dict[str, Any] = {
    "FundsDeposited": _keyed("deposit", "deposit_id"),
    "FundsWithdrawn": _keyed("withdrawal", "withdrawal_id"),
    "BalanceAdjusted": _keyed("adjustment", "adjustment_id"),
    "InstructionAccepted": _accepted,
    "InstructionRejected": _lifecycle("InstructionRejected"),
    "InstructionCompleted": _lifecycle("InstructionCompleted"),
    "OrderSubmitted": _submitted,
    "OrderAcknowledged": _lifecycle("OrderAcknowledged"),
    "OrderFilled": _filled,
    "CancelRequested": _lifecycle("CancelRequested"),
    "OrderCancelled": _lifecycle("OrderCancelled"),
    "OrderFailed": _lifecycle("OrderFailed"),
    "OrderOutcomeUnknown": _lifecycle("OrderOutcomeUnknown"),
    "OrderReconciled": _reconciled,
    "TransactionSubmitted": _tx("TransactionSubmitted", "pending"),
    "TransactionMined": _tx("TransactionMined", "mined"),
    "TransactionConfirmed": _tx("TransactionConfirmed", "confirmed"),
    "TransactionReverted": _tx("TransactionReverted", "reverted"),
    "TransactionDropped": _tx("TransactionDropped", "dropped"),
    "TransactionReplaced": _replaced,
    "TransactionReorged": _reorged,
    "TransferSent": _lifecycle("TransferSent"),
    "TransferReceived": _keyed("received", "transfer_id"),
    "TransferFailed": _transfer_failed,
    "TransferObserved": _keyed("transfer_observed", "observation_id"),
    "FundingSettled": _funding,
    "InterestAccrued": _keyed("interest", "accrual_id"),
    "RewardAccrued": _keyed("reward", "accrual_id"),
}

ALL_EVENTS: tuple[type[VenueLedger.Event], ...] = tuple(
    obj for obj in vars(VenueLedger).values()
    if isinstance(obj, type) and issubclass(obj, VenueLedger.Event) and obj is not VenueLedger.Event
)
