"""The `ledger.testing` checkers catch what they promise to: each is shown a broken log or view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given

from aggregates.venue import VenueLedger
from ledger import testing
from ledger.app import Ledger
from ledger.engine import EventDrivenStrategyEngine
from projections import fold

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MEMORY = {"url": "memory:", "views": False}


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    opened = Ledger.open("memory:", create=True)
    yield opened
    opened.close()


def venue(ledger: Ledger, name: str = "binance") -> VenueLedger:
    agg = VenueLedger.open("main", name, "cex", T0)
    agg.record_deposit("d1", "spot", "USDT", D(1000), T0)
    ledger.save(agg)
    return agg


def filled_order(agg: VenueLedger, iid: str = "i1") -> None:
    agg.record_accepted(iid, {"kind": "ORDER", "instrument": "ETH/USDT", "side": "buy", "amount": "0.1",
                              "wallet": "spot"}, {"eth_usd_price": D(3000)}, T0)
    agg.record_submitted(iid, f"c{iid}", T0)
    agg.record_fill(iid, f"t{iid}", "spot", "ETH/USDT", "buy", D("0.1"), D(3000), D(0), "USDT", T0)


def test_a_clean_ledger_passes_every_check(ledger: Ledger) -> None:
    """A deposit and one filled order satisfy all checkers (the baseline for the tests below)."""
    agg = venue(ledger)
    filled_order(agg)
    ledger.save(agg)
    books = testing.check_conservation(ledger)
    assert books.holdings() == {"USDT": D(700), "ETH": D("0.1")}
    assert books.flows["USDT"] == {"deposits": D(1000), "trades": D(-300)}
    assert testing.check_no_floats(ledger) == 5  # opened, deposit, accepted, submitted, filled
    assert testing.check_lifecycle(ledger) == {"i1": "FILLED"}


def test_no_floats_catches_a_json_float(ledger: Ledger) -> None:
    """A float that slipped into a payload (a market snapshot is stored as given) is reported."""
    agg = venue(ledger)
    agg.record_accepted("i1", {"kind": "ORDER", "amount": "1"}, {"eth_usd_price": 1.5}, T0)  # type: ignore[dict-item]
    ledger.save(agg)
    float_in_market = r"InstructionAccepted.market.eth_usd_price: JSON float 1.5"
    with pytest.raises(testing.InvariantError, match=float_in_market):
        testing.check_no_floats(ledger)


def test_no_floats_catches_a_nan_number(ledger: Ledger) -> None:
    """Decimal NaN in a market snapshot is stored as text "NaN": reported too."""
    agg = venue(ledger)
    agg.record_accepted("i1", {"kind": "ORDER", "amount": "1"}, {"eth_usd_price": D("NaN")}, T0)
    ledger.save(agg)
    with pytest.raises(testing.InvariantError, match="non-finite number 'NaN'"):
        testing.check_no_floats(ledger)


def test_no_floats_accepts_nan_text_in_what_a_rejection_received(ledger: Ledger) -> None:
    """The repr of a NaN that arrived is kept as text in `received` (SPEC §12.17), which is allowed."""
    agg = venue(ledger)
    agg.record_rejected("i1", "invalid_amount", "amount: expected a finite number, got nan",
                        {"amount": "nan"}, T0)
    ledger.save(agg)
    testing.check_no_floats(ledger)


def test_conservation_catches_an_overdraft(ledger: Ledger) -> None:
    """Withdrawing more than was deposited drives a wallet below zero."""
    agg = venue(ledger)
    agg.record_withdrawal("w1", "spot", "USDT", D(1200), T0)
    ledger.save(agg)
    with pytest.raises(testing.InvariantError, match=r"balance binance/spot USDT went negative \(-200\)"):
        testing.check_conservation(ledger)


def test_conservation_catches_a_projection_that_disagrees(ledger: Ledger) -> None:
    """A view whose balance differs from the events is reported with both numbers."""
    venue(ledger)
    state = fold(e for _n, e in ledger.iter_events())
    state.balances[("binance", "spot", "USDT")] += 1
    with pytest.raises(testing.InvariantError, match="events say 1000, projection says 1001"):
        testing.check_conservation(ledger, state)


def test_conservation_catches_funds_made_in_transit(ledger: Ledger) -> None:
    """A transfer that arrives with more than was sent, or that was never sent, is reported."""
    src = venue(ledger)
    dst = VenueLedger.open("main", "bybit", "cex", T0)
    src.record_accepted("s1", {"kind": "TRANSFER", "asset": "USDT", "amount": "100", "wallet": "spot"},
                        {}, T0)
    src.record_transfer_sent("s1", "tr1", "USDT", D(100), D(0), "spot", "bybit", "spot", T0)
    dst.record_transfer_received("tr1", "binance", "spot", "USDT", D(150), T0)
    dst.record_transfer_received("tr-never-sent", "okx", "spot", "USDT", D(5), T0)
    ledger.save(src, dst)
    with pytest.raises(testing.InvariantError) as raised:
        testing.check_conservation(ledger)
    assert any("sent 100 USDT, received 150 USDT" in p for p in raised.value.problems)
    assert any("tr-never-sent arrived or failed but was never sent" in p for p in raised.value.problems)


def test_lifecycle_catches_activity_after_a_rejection(ledger: Ledger) -> None:
    """A fill recorded for a rejected instruction is reported."""
    agg = venue(ledger)
    agg.record_rejected("i1", "insufficient_balance", "amount: too much", {}, T0)
    agg.record_fill("i1", "t1", "spot", "ETH/USDT", "buy", D("0.1"), D(3000), D(0), "USDT", T0)
    ledger.save(agg)
    with pytest.raises(testing.InvariantError, match="OrderFilled recorded for rejected instruction i1"):
        testing.check_lifecycle(ledger)


def test_lifecycle_catches_an_unfinished_instruction(ledger: Ledger) -> None:
    """An instruction accepted but never sent ends in ACCEPTED, which a backtest must not leave."""
    agg = venue(ledger)
    agg.record_accepted("i1", {"kind": "ORDER", "amount": "1"}, {}, T0)
    ledger.save(agg)
    with pytest.raises(testing.InvariantError, match="instruction i1 ended in ACCEPTED"):
        testing.check_lifecycle(ledger)


def test_lifecycle_catches_an_illegal_move_across_venues(ledger: Ledger) -> None:
    """The same instruction id accepted again at a second venue after it filled is an illegal move."""
    a = venue(ledger, "binance")
    filled_order(a, "i1")
    b = VenueLedger.open("main", "okx", "cex", T0)
    b.record_accepted("i1", {"kind": "ORDER", "amount": "1"}, {}, T0)
    ledger.save(a, b)
    with pytest.raises(testing.InvariantError, match="InstructionAccepted is not allowed from state FILLED"):
        testing.check_lifecycle(ledger)


def test_lifecycle_catches_a_projection_status_that_disagrees(ledger: Ledger) -> None:
    """A view that shows a different order status from the events is reported."""
    agg = venue(ledger)
    filled_order(agg)
    ledger.save(agg)
    state = fold(e for _n, e in ledger.iter_events())
    state.orders["i1"].status = "CANCELLED"
    with pytest.raises(testing.InvariantError, match="events end in FILLED, projection says CANCELLED"):
        testing.check_lifecycle(ledger, state=state)


def test_rebuild_check_catches_a_live_view_that_drifted() -> None:
    """A live projection that no longer equals a rebuild of the store is reported by part."""
    engine = EventDrivenStrategyEngine({"initial_capital": 1000, "ledger": MEMORY})
    try:
        testing.check_rebuild_equals(engine)
        engine.projection.state.balances[("binance", "spot", "USDT")] += 1
        with pytest.raises(testing.InvariantError, match="balances: rebuilt"):
            testing.check_rebuild_equals(engine)
    finally:
        engine.ledger.close()


@given(testing.malformed_instructions())
def test_malformed_instructions_are_refused(instruction: Any) -> None:
    """Every draw of `malformed_instructions` is refused: REJECTED with a code, or InstructionError."""
    from aggregates.errors import InstructionError

    engine = EventDrivenStrategyEngine({"initial_capital": 1000, "ledger": MEMORY})
    try:
        try:
            result = asyncio.run(engine.execute_trade_with_interface(instruction, {"eth_usd_price": 3000}))
        except InstructionError:
            return
        assert result["status"] == "REJECTED" and result["code"], result
    finally:
        engine.ledger.close()


@given(testing.market_data(floats=False))
def test_market_data_has_the_seed_keys(market: dict[str, Any]) -> None:
    """Snapshots carry the ETH index, every venue's spot and perp, gas, staking rate and AAVE indexes."""
    assert {"eth_usd_price", "gas_price_gwei", "weeth_eth_rate", "aave_weth_supply_index"} <= set(market)
    for v in testing.CEX_VENUES:
        assert {f"{v}_eth_spot_price", f"{v}_eth_perp_price"} & set(market) or \
            {f"{v}_spot_price", f"{v}_perp_price"} <= set(market)
    assert all(type(x) is D and x > 0 for x in market.values())


def test_play_moves_time_and_reports_each_outcome() -> None:
    """`play` advances the clock by each step and returns one outcome per instruction."""
    engine = EventDrivenStrategyEngine({"initial_capital": 100_000, "ledger": MEMORY})
    run = [testing.Step(0, {"eth_usd_price": 3000}, ({"venue_type": "cex", "venue": "binance",
                                                     "pair": "ETH/USDT", "side": "BUY", "amount": 1},)),
           testing.Step(90, {"eth_usd_price": 3100}, ("not a dict",), cancel_all=True)]
    try:
        outcomes = asyncio.run(testing.play(engine, run))
        assert outcomes[0]["price"] == D("3001.5")
        assert type(outcomes[1]).__name__ == "InstructionError"
        assert outcomes[2]["status"] == "COMPLETED"
        assert engine.event_logger.now() == T0 + timedelta(minutes=90)
        testing.check_all(engine)
    finally:
        engine.ledger.close()
