"""The pieces of live transfers that need no venue: the aggregate's transfer facts, the lifecycle of a
chain leg, and reading ccxt's withdrawal and deposit answers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from aggregates import State, VenueLedger
from executors.live.transfer_match import deposit_matching, withdrawal_of
from projections.folds import fold

T0 = datetime(2024, 6, 1, tzinfo=UTC)
LEG = {
    "kind": "TRANSFER",
    "venue_type": "transfer",
    "instrument": "USDT",
    "asset": "USDT",
    "amount": "50",
    "wallet": "0xabc",
    "to_venue": "binance",
    "to_wallet": "spot",
    "route": "deposit",
}


def test_a_chain_leg_is_sent_once_its_transaction_is_confirmed() -> None:
    """accepted -> tx submitted -> confirmed (effect books nothing) -> TransferSent books the move."""
    v = VenueLedger.open("main", "ethereum", "onchain", T0)
    v.record_accepted("t1", LEG, {}, T0)
    v.record_tx_submitted("t1", "0x01", 0, 10, 1, 60_000, "TRANSFER_ERC20", T0)
    v.record_tx_confirmed(
        "t1",
        "0x01",
        5,
        "0xb5",
        50_000,
        5,
        D("0.00025"),
        ({"kind": "transfer_out", "asset": "USDT", "amount": "50", "wallet": "0xabc"},),
        T0,
    )
    v.record_transfer_sent("t1", "tid", "USDT", D(50), D(0), "0xabc", "binance", "spot", T0)
    assert v.state_of("t1") is State.IN_TRANSIT
    state = fold(v.collect_events())
    assert state.balances[("ethereum", "0xabc", "USDT")] == D(-50)  # once, by TransferSent
    assert state.balances[("ethereum", "0xabc", "ETH")] == D("-0.00025")  # the gas
    assert state.transit["tid"].amount == D(50)


def test_transfer_observations_are_recorded_once_and_change_no_state() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_accepted("t1", {**LEG, "wallet": "spot", "to_venue": "ethereum"}, {}, T0)
    v.record_transfer_sent("t1", "tid", "USDT", D(10), D(1), "spot", "ethereum", "0xabc", T0)
    assert v.record_transfer_observed("t1", "tid", "withdrawal", "w-1", "", "pending", "0xabc", T0)
    assert not v.record_transfer_observed("t1", "tid", "withdrawal", "w-1", "", "pending", "0xabc", T0)
    assert v.record_transfer_observed("t1", "tid", "broadcast", "w-1", "0xfeed", "ok", "0xabc", T0)
    assert v.state_of("t1") is State.IN_TRANSIT
    names = [type(e).__name__ for e in v.collect_events()]
    assert names.count("TransferObserved") == 2


def test_withdrawal_answers_are_read_per_venue() -> None:
    binance = {
        "id": "7213fea8e94b4a5593d507237e5a555b",
        "txid": None,
        "status": "pending",
        "amount": 100.0,
        "fee": {"currency": "USDT", "cost": 1.0},
        "info": {"id": "7213fea8e94b4a5593d507237e5a555b", "withdrawOrderId": "abc"},
    }
    okx = {
        "id": "67485",
        "txid": "0xfeed",
        "status": "ok",
        "amount": "2",
        "fee": {"cost": "0.001"},
        "info": {"wdId": "67485", "clientId": "def"},
    }
    w = withdrawal_of(binance)
    assert w == {
        "id": "7213fea8e94b4a5593d507237e5a555b",
        "client_id": "abc",
        "txid": "",
        "status": "pending",
        "fee": D(1),
        "amount": D(100),
    }
    assert withdrawal_of(okx)["client_id"] == "def" and withdrawal_of(okx)["txid"] == "0xfeed"
    assert withdrawal_of({"status": "cancelled"})["status"] == "canceled"


def test_a_deposit_matches_by_txid_only_when_credited() -> None:
    deposits = [
        {"id": "d1", "txid": "0xAA", "status": "pending", "amount": 5},
        {"id": "d2", "txid": "0xbb", "status": "ok", "amount": "7.5"},
    ]
    assert deposit_matching(deposits, "0xaa") is None
    assert deposit_matching(deposits, "0xBB") == (D("7.5"), "d2")
    assert deposit_matching(deposits, "0xcc") is None
