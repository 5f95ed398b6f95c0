"""Given-when-then tests of the VenueLedger aggregate: guards, lifecycle and idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from aggregates import DuplicateError, IllegalTransitionError, InstructionError, State, VenueLedger
from aggregates.ids import client_order_id, venue_ledger_id

T0 = datetime(2024, 6, 1, tzinfo=UTC)
BUY = {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "1", "wallet": "spot"}


def given_accepted(amount: str = "1") -> VenueLedger:
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_accepted("i1", {**BUY, "amount": amount}, {"eth_usd_price": D("3000")}, T0)
    return v


def names(v: VenueLedger) -> list[str]:
    return [type(e).__name__ for e in v.collect_events()]


def test_id_is_uuid5_of_account_and_venue() -> None:
    """The same account and venue always give the same stream id."""
    v = VenueLedger.open("main", "binance", "cex", T0)
    assert v.id == venue_ledger_id("main", "binance")
    assert venue_ledger_id("main", "bybit") != v.id


def test_store_timestamp_is_injected_not_wall_clock() -> None:
    """Events carry the given market time as both ts_event and store timestamp."""
    v = given_accepted()
    events = v.collect_events()
    assert all(e.timestamp == T0 and e.ts_event == T0 for e in events)
    later = T0 + timedelta(seconds=5)
    v.record_submitted("i1", "c1", T0, now=later)
    (submitted,) = v.collect_events()
    assert submitted.ts_event == T0 and submitted.timestamp == later


def test_accept_submit_fill_moves_through_the_lifecycle() -> None:
    """Given an accepted instruction, when submitted and fully filled, it is FILLED."""
    v = given_accepted()
    v.record_submitted("i1", client_order_id("i1"), T0)
    assert v.state_of("i1") is State.SUBMITTED
    v.record_acknowledged("i1", "venue-1", T0)
    v.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("0.4"), D("3000"), D("0"), "USDT", T0)
    assert v.state_of("i1") is State.PARTIALLY_FILLED
    v.record_fill("i1", "t2", "spot", "ETH/USDT", "buy", D("0.6"), D("3001"), D("0"), "USDT", T0)
    assert v.state_of("i1") is State.FILLED
    assert names(v)[-3:] == ["OrderAcknowledged", "OrderFilled", "OrderFilled"]


def test_duplicate_fill_changes_nothing() -> None:
    """Given a recorded trade, recording the same trade id again emits no event."""
    v = given_accepted()
    v.record_submitted("i1", "c1", T0)
    assert v.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"), "USDT", T0)
    version = v.version
    assert not v.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"),
                             "USDT", T0)
    assert v.version == version


def test_same_trade_id_in_another_market_type_is_a_different_fill() -> None:
    """Binance numbers trades per symbol and separately for spot and perps (SPEC §12.2)."""
    v = given_accepted("2")
    v.record_submitted("i1", "c1", T0)
    assert v.record_fill("i1", "7", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"), "USDT", T0)
    assert v.record_fill("i1", "7", "perp", "ETH/USDT:USDT", "buy", D("1"), D("3000"), D("0"),
                         "USDT", T0)


def test_deposit_is_idempotent_by_id() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    assert v.record_deposit("d1", "spot", "USDT", D("100"), T0)
    assert not v.record_deposit("d1", "spot", "USDT", D("100"), T0)


@pytest.mark.parametrize("intent", ["submit", "cancel", "transfer", "unknown"])
def test_illegal_intents_raise_and_emit_nothing(intent: str) -> None:
    """Given a FILLED instruction, no further intent is allowed."""
    v = given_accepted()
    v.record_submitted("i1", "c1", T0)
    v.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"), "USDT", T0)
    version = v.version
    with pytest.raises(IllegalTransitionError, match="not allowed from state FILLED"):
        if intent == "submit":
            v.record_submitted("i1", "c2", T0)
        elif intent == "cancel":
            v.record_cancel_requested("i1", T0)
        elif intent == "transfer":
            v.record_transfer_sent("i1", "x", "USDT", D("1"), D("0"), "spot", "bybit", "unified", T0)
        else:
            v.record_outcome_unknown("i1", "timeout", T0)
    assert v.version == version


def test_submit_before_accept_is_illegal() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    with pytest.raises(IllegalTransitionError):
        v.record_submitted("nope", "c1", T0)


def test_instruction_id_cannot_be_accepted_twice() -> None:
    v = given_accepted()
    with pytest.raises(DuplicateError):
        v.record_accepted("i1", BUY, {}, T0)


def test_late_fill_after_cancel_is_appended_as_a_fact() -> None:
    """A venue fill after OrderCancelled is a fact: recorded, never refused (SPEC §12.1)."""
    v = given_accepted("2")
    v.record_submitted("i1", "c1", T0)
    v.record_cancel_requested("i1", T0)
    v.record_cancelled("i1", "user", T0)
    assert v.record_fill("i1", "late", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"), "USDT", T0)
    assert v.state_of("i1") is State.CANCELLED


def test_unknown_outcome_resolves_through_reconciliation() -> None:
    v = given_accepted()
    v.record_submitted("i1", client_order_id("i1", 1), T0)
    v.record_outcome_unknown("i1", "timeout", T0)
    assert v.state_of("i1") is State.UNKNOWN
    v.record_reconciled("i1", "not_found", "", T0)
    assert v.state_of("i1") is State.NOT_PLACED
    v.record_submitted("i1", client_order_id("i1", v.next_attempt("i1")), T0)
    assert v.attempts["i1"] == 2


def test_client_order_id_is_compact_and_never_reused() -> None:
    first, second = client_order_id("i1", 1), client_order_id("i1", 2)
    assert first != second and len(first) == 32 and first.isalnum()
    v = given_accepted()
    v.record_submitted("i1", first, T0)
    v.record_outcome_unknown("i1", "timeout", T0)
    v.record_reconciled("i1", "not_found", "", T0)
    with pytest.raises(DuplicateError):
        v.record_submitted("i1", first, T0)


def test_bad_amounts_name_the_field() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    with pytest.raises(InstructionError, match="amount: must be positive"):
        v.record_deposit("d", "spot", "USDT", D("-1"), T0)
    given = given_accepted()
    given.record_submitted("i1", "c", T0)
    with pytest.raises(InstructionError, match="side"):
        given.record_fill("i1", "t", "spot", "ETH/USDT", "hold", D("1"), D("1"), D("0"), "USDT", T0)


def test_transaction_lifecycle_with_reorg_and_reconfirmation() -> None:
    """A reorged confirmation can be confirmed again in another block, once."""
    v = VenueLedger.open("main", "ethereum", "onchain", T0)
    v.record_accepted("s1", {"kind": "AAVE_SUPPLY", "asset": "USDT", "amount": "10", "wallet": "0xa"},
                      {}, T0)
    v.record_tx_submitted("s1", "0x1", 0, 10, 1, 21000, "supply", T0)
    v.record_tx_mined("s1", "0x1", 5, "0xb5", T0)
    effects = [{"kind": "supplied", "asset": "USDT", "amount": "10", "wallet": "0xa"}]
    assert v.record_tx_confirmed("s1", "0x1", 5, "0xb5", 21000, 10, D("0.00021"), effects, T0)
    assert not v.record_tx_confirmed("s1", "0x1", 5, "0xb5", 21000, 10, D("0.00021"), effects, T0)
    assert v.record_tx_reorged("s1", "0x1", "0xb5", T0)
    assert v.state_of("s1") is State.TX_PENDING
    assert v.record_tx_confirmed("s1", "0x1", 6, "0xb6", 21000, 10, D("0.00021"), effects, T0)
    assert v.state_of("s1") is State.TX_CONFIRMED
    v.record_completed("s1", T0)
    assert v.state_of("s1") is State.COMPLETED


def test_snapshot_round_trips_the_aggregate() -> None:
    v = given_accepted()
    v.record_submitted("i1", "c1", T0)
    v.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("0"), "USDT", T0)
    snapshot = VenueLedger.Snapshot.take(v)
    assert snapshot.timestamp == T0
    restored = snapshot.mutate(None)
    assert restored.snapshot_state() == v.snapshot_state()
    assert restored.version == v.version and restored.id == v.id
