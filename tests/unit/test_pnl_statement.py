"""The valuation model and the one P&L statement (README "Valuation"), against hand-computed figures.

Every scenario checks the statement's lines one by one and that they add up exactly (Decimal, no
tolerance) to the change in equity net of external flows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext
from typing import Any

import pytest
from hypothesis import given, settings

from aggregates import VenueLedger
from aggregates.session import Session
from aggregates.values import MONEY
from ledger import testing
from ledger.engine import EventDrivenStrategyEngine, apy
from projections import fold
from projections.folds import apply
from projections.reports import (
    RiskParameters,
    equity,
    equity_series,
    margin_use,
    pnl,
    position,
    revaluation,
    statement,
)
from projections.state import EXACT, LedgerState

T0 = datetime(2024, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)


class Desk:
    """Aggregates recorded in one time order; `state()` folds what was recorded so far."""

    def __init__(self) -> None:
        self.session = Session.start("s", "backtest", "{}", "d", "none", "-", 0, "test", T0)
        self.venues: dict[str, VenueLedger] = {}
        self.log: list[Any] = list(self.session.collect_events())

    def venue(self, name: str, kind: str = "cex") -> VenueLedger:
        if name not in self.venues:
            self.venues[name] = VenueLedger.open("main", name, kind, T0)
        return self.venues[name]

    def sync(self) -> None:
        for agg in (self.session, *self.venues.values()):
            self.log.extend(agg.collect_events())

    def market(self, ts: datetime, **prices: Any) -> None:
        self.sync()
        self.session.record_market({k: D(str(v)) for k, v in prices.items()}, ts)
        self.sync()

    def do(self, venue: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.sync()
        getattr(self.venue(venue), method)(*args, **kwargs)
        self.sync()

    def state(self) -> LedgerState:
        self.sync()
        return fold(self.log)


def reconciles(s: LedgerState) -> D:
    """The statement's total, checked against final - initial - external flows after the funding."""
    st = statement(s)
    lines = st["pnl"]
    with localcontext(EXACT):  # room for every digit: no sum below rounds
        assert lines["total"] == sum((v for k, v in lines.items() if k != "total"), D(0))
        assert lines["total"] == st["final_equity"] - st["external_flows"]
    assert st["final_equity"] == equity(s)
    return lines["total"]


def accept(desk: Desk, venue: str, iid: str, kind: str = "BUY", ts: datetime = T0, **extra: str) -> None:
    desk.do(venue, "record_accepted", iid, {"kind": kind, "amount": "1", "wallet": "spot", **extra}, {}, ts)


def spot(desk: Desk, venue: str, iid: str, side: str, qty: str, price: str, fee: str, fee_asset: str = "USDT",
         ts: datetime = T0) -> None:
    accept(desk, venue, iid, side.upper(), ts, instrument="ETH/USDT", side=side)
    desk.do(venue, "record_submitted", iid, f"c{iid}", ts)
    desk.do(venue, "record_fill", iid, f"t{iid}", "spot", "ETH/USDT", side, D(qty), D(price), D(fee),
            fee_asset, ts)


def test_selling_pre_held_eth_is_not_a_short() -> None:
    """Deposit 10 ETH at 3000 (30,000), sell 5 at 3000 paying 7.5 USDT (5 bps), ETH to 3300:
    equity 5 * 3300 + 14,992.5 = 31,492.5, +1,492.5 = revaluation 5 * 300 - fees 7.5; realised 0
    (sold at the average cost); the ETH/USDT position is the 5 ETH held, never -5."""
    desk = Desk()
    desk.do("binance", "record_deposit", "d", "spot", "ETH", D(10), T0)
    desk.market(T0, eth_usd_price=3000)
    spot(desk, "binance", "s", "sell", "5", "3000", "7.5")
    desk.market(T0 + H, eth_usd_price=3300)
    s = desk.state()
    lines = pnl(s)
    assert (lines["realised"], lines["revaluation"], lines["fees"]) == (0, 1500, D("-7.5"))
    assert reconciles(s) == D("1492.5") and equity(s) == D("31492.5")
    assert statement(s)["initial_equity"] == 30000
    assert position(s, "ETH/USDT", "binance") == 5


def test_realised_at_the_average_cost_pooled_across_venues() -> None:
    """Buy 1 ETH at 2000 on binance and 1 at 3000 on okx (average 2500 for the desk); sell 1 on okx at
    3200: realised 3200 - 2500 = 700; the ETH left (1 at 3200) is revalued 3200 - 2500 = 700."""
    desk = Desk()
    desk.do("binance", "record_deposit", "d1", "spot", "USDT", D(5000), T0)
    desk.do("okx", "record_deposit", "d2", "spot", "USDT", D(5000), T0)
    desk.market(T0, eth_usd_price=2000)
    spot(desk, "binance", "b1", "buy", "1", "2000", "0")
    desk.market(T0 + H, eth_usd_price=3000)
    spot(desk, "okx", "b2", "buy", "1", "3000", "0", ts=T0 + H)
    spot(desk, "okx", "s1", "sell", "1", "3200", "0", ts=T0 + 2 * H)
    s = desk.state()
    lines = pnl(s)
    assert lines["realised"] == 700 and lines["revaluation"] == 700
    # equity: 3000 + 2000 + 3200 USDT and 1 ETH at 3200 (the fill is the newest price) = 11,400
    assert reconciles(s) == 1400 and equity(s) == 11400


def test_eth_bought_then_half_sent_on_chain_and_the_price_moves() -> None:
    """10,000 USDT; buy 2 ETH at 2000 (fee 2 USDT); send 1 ETH to the chain wallet (withdrawal fee 0.01
    ETH at 2000 = 20 USD); it arrives; ETH to 2200. Held 1.99 ETH: revaluation 1.99 * 200 = 398;
    equity 5,998 + 1.99 * 2200 = 10,376 = 10,000 + 398 - 2 - 20."""
    desk = Desk()
    desk.do("binance", "record_deposit", "d", "spot", "USDT", D(10000), T0)
    desk.market(T0, eth_usd_price=2000)
    spot(desk, "binance", "b", "buy", "2", "2000", "2")
    accept(desk, "binance", "t", "TRANSFER", T0 + 10 * timedelta(minutes=1))
    desk.do("binance", "record_transfer_sent", "t", "x1", "ETH", D(1), D("0.01"), "spot", "ethereum", "0xa",
            T0 + 10 * timedelta(minutes=1))
    mid = desk.state()
    assert equity(mid) == D(10000) - 2 - 20 and reconciles(mid) == -22  # in transit: still held
    desk.do("ethereum", "record_transfer_received", "x1", "binance", "0xa", "ETH", D(1),
            T0 + 30 * timedelta(minutes=1))
    desk.market(T0 + H, eth_usd_price=2200)
    s = desk.state()
    lines = pnl(s)
    assert (lines["revaluation"], lines["fees"], lines["withdrawal_fees"]) == (398, -2, -20)
    assert reconciles(s) == 376 and equity(s) == 10376


@pytest.fixture
def make() -> Iterator[Any]:
    built: list[EventDrivenStrategyEngine] = []

    def factory(balances: dict[str, Any]) -> EventDrivenStrategyEngine:
        engine = EventDrivenStrategyEngine({
            "execution_mode": "backtest", "ledger": {"url": "memory:", "views": False},
            "initial_balances": balances, "execution_costs": {"default_bps": 0},
            "fees": {"binance": {"taker": "0.001", "maker": "0.001"}, "bybit": {"taker": "0", "maker": "0"}},
        })
        built.append(engine)
        return engine

    yield factory
    for engine in built:
        engine.ledger.close()


async def test_hedged_book_with_only_the_usd_price_moving(make: Any) -> None:
    """Long 1 ETH spot (binance, fee 0.1% = 3 USDT), short 1 ETH perp on bybit (no fee), both at 3000;
    only eth_usd_price moves to 3300: the perp is marked at 3300 (a fill price is never newer than the
    data), so its revaluation is -300 against +300 on the ETH: equity change -3, the fee."""
    engine = make({"binance": {"USDT": 10000}, "bybit": {"USDT": 10000}})
    market = {"eth_usd_price": D(3000)}
    await engine.advance_to(T0, market)
    buy = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
           "amount": 1}
    short = {"venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETHUSDT-PERP",
             "side": "SHORT", "amount": 1}
    assert (await engine.execute_trade_with_interface(buy))["price"] == 3000
    assert (await engine.execute_trade_with_interface(short))["price"] == 3000
    await engine.advance_to(T0 + H, {"eth_usd_price": D(3300)})
    summary = engine.summary()
    s = engine.projection.state
    per_holding = revaluation(s)
    assert per_holding["ETH"] == 300 and per_holding["perp:bybit:ETH/USDT:USDT"] == -300
    assert summary["pnl"]["revaluation"] == 0 and summary["pnl"]["fees"] == -3
    assert summary["initial_equity"] == 20000 and summary["final_equity"] == 19997
    assert reconciles(s) == -3
    # margin use reads the same mark: 1 * 3300 * 0.1 over 10,000 - 300
    assert margin_use(s, "bybit", RiskParameters()) == MONEY.divide(D(330), D(9700))


def perp(desk: Desk, iid: str, side: str, qty: str, price: str, ts: datetime) -> None:
    accept(desk, "bybit", iid, "PERP", ts, instrument="ETH/USDT:USDT", side=side)
    desk.do("bybit", "record_submitted", iid, f"c{iid}", ts)
    desk.do("bybit", "record_fill", iid, f"t{iid}", "perp", "ETH/USDT:USDT", side, D(qty), D(price), D(0),
            "USDT", ts, wallet="futures")


def test_perp_marked_to_the_venue_mark_and_its_funding() -> None:
    """At T0 the data has usd 3000, bybit perp 3010 and bybit mark 3005: long 1 filled at 3010 is marked
    at 3005 (venue mark beats venue price beats usd price beats the fill at equal times): -5. At 8h
    funding at mark 3002 (rate 1e-4, long pays 0.3002 USDT): equity 10,000 - 8 - 0.3002."""
    desk = Desk()
    desk.do("bybit", "record_deposit", "d", "futures", "USDT", D(10000), T0)
    desk.market(T0, eth_usd_price=3000, bybit_eth_perp_price=3010, bybit_eth_perp_mark_price=3005)
    perp(desk, "p", "buy", "1", "3010", T0)
    s = desk.state()
    assert equity(s) == 9995 and pnl(s)["revaluation"] == -5 and reconciles(s) == -5
    desk.do("bybit", "record_funding", "ETH/USDT:USDT", "futures", "USDT", D("0.0001"), D(3002), D(1),
            D("-0.3002"), T0 + 8 * H)
    s = desk.state()
    lines = pnl(s)
    assert (lines["funding"], lines["revaluation"]) == (D("-0.3002"), -8)
    assert reconciles(s) == D("-8.3002") and equity(s) == D("9991.6998")


def aave(desk: Desk, iid: str, effects: list[dict[str, str]], gas: str, ts: datetime) -> None:
    accept(desk, "ethereum", iid, "AAVE", ts, wallet="0xa")
    desk.do("ethereum", "record_tx_submitted", iid, f"0x{iid}", 0, 1, 1, 1, "aave", ts)
    desk.do("ethereum", "record_tx_confirmed", iid, f"0x{iid}", 1, f"0xb{iid}", 100_000, 10**10, D(gas),
            effects, ts)


def aave_desk(borrow: list[dict[str, str]], gas: str) -> Desk:
    """10 WETH and 1 ETH deposited at 3000; 10 WETH supplied with `borrow` in the same transaction."""
    desk = Desk()
    desk.do("ethereum", "record_deposit", "d1", "0xa", "WETH", D(10), T0)
    desk.do("ethereum", "record_deposit", "d2", "0xa", "ETH", D(1), T0)
    desk.market(T0, eth_usd_price=3000)
    aave(desk, "s", [{"kind": "supplied", "asset": "WETH", "amount": "10"}, *borrow], gas, T0)
    return desk


def test_aave_borrow_interest_with_the_price_moving() -> None:
    """10 WETH + 1 ETH at 3000 (33,000). Supply 10 WETH, borrow 2 WETH (gas 0.001 ETH = 3 USD). ETH to
    3100; 0.01 WETH interest accrues on the debt (-31). ETH to 3300. Revaluation: 10.999 net ETH units
    * 100 + 10.989 * 200 = 3,297.7; equity 10.989 * 3300 = 36,263.7 = 33,000 - 3 - 31 + 3,297.7."""
    desk = aave_desk([{"kind": "borrowed", "asset": "WETH", "amount": "2"}], "0.001")
    desk.market(T0 + 24 * H, eth_usd_price=3100)
    desk.do("ethereum", "record_interest", "i", "WETH", "borrowed", D("0.01"), D("1.005"), T0 + 24 * H)
    desk.market(T0 + 48 * H, eth_usd_price=3300)
    s = desk.state()
    lines = pnl(s)
    assert (lines["gas"], lines["borrow_cost"], lines["supply_interest"]) == (-3, -31, 0)
    assert lines["revaluation"] == D("3297.7")
    assert reconciles(s) == D("3263.7") and equity(s) == D("36263.7")


def test_staking_rewards_booked_then_revalued() -> None:
    """32 ETH and 10 stETH (rate 1) at 3000: 126,000. A 0.01 ETH reward at 3000 (+30) and the stETH rate
    to 1.001 (10 * 0.001 ETH at 3000 = +30); then ETH to 3300: revaluation (32.01 + 10.01) * 300 =
    12,606. Equity 32.01 * 3300 + 10 * 1.001 * 3300 = 138,666 = 126,000 + 60 + 12,606."""
    desk = Desk()
    desk.do("ethereum", "record_deposit", "d1", "0xa", "ETH", D(32), T0)
    desk.do("ethereum", "record_deposit", "d2", "0xa", "STETH", D(10), T0)
    desk.market(T0, eth_usd_price=3000, steth_eth_rate=1)
    desk.do("ethereum", "record_reward", "r", "0xa", "ETH", D("0.01"), "staking", T0 + H)
    desk.market(T0 + H, steth_eth_rate="1.001")
    assert pnl(desk.state())["rewards"] == 60 and pnl(desk.state())["revaluation"] == 0
    desk.market(T0 + 2 * H, eth_usd_price=3300)
    s = desk.state()
    lines = pnl(s)
    assert (lines["rewards"], lines["revaluation"]) == (60, 12606)
    assert reconciles(s) == 12666 and equity(s) == 138666


def test_a_fee_in_bnb_without_a_bnb_price_is_noted_not_zeroed() -> None:
    """10,000 USDT and 1 BNB; no BNB price. Buy 1 ETH at 3000 paying 0.005 BNB: equity 10,000 (BNB left
    out), the fee is listed unpriced in BNB. BNB priced at 600 later: its 0.995 enter through
    revaluation (+597), the fee stays unpriced (it had no price at its time)."""
    desk = Desk()
    desk.do("binance", "record_deposit", "d1", "spot", "USDT", D(10000), T0)
    desk.do("binance", "record_deposit", "d2", "spot", "BNB", D(1), T0)
    desk.market(T0, eth_usd_price=3000)
    spot(desk, "binance", "b", "buy", "1", "3000", "0.005", "BNB")
    s = desk.state()
    st = statement(s)
    assert st["unpriced"] == {"held BNB": D("0.995"), "fees BNB": D("-0.005")}
    assert st["pnl"]["fees"] == 0 and equity(s) == 10000 and reconciles(s) == 0
    desk.market(T0 + H, eth_usd_price=3000, bnb_usd_price=600)
    s = desk.state()
    st = statement(s)
    assert st["unpriced"] == {"fees BNB": D("-0.005")}
    assert st["pnl"]["revaluation"] == 597 and reconciles(s) == 597 and equity(s) == 10597


def test_a_fee_in_bnb_with_a_bnb_price() -> None:
    """Same with BNB at 600 from the start: initial 10,600; the fee is 0.005 * 600 = 3 USD."""
    desk = Desk()
    desk.do("binance", "record_deposit", "d1", "spot", "USDT", D(10000), T0)
    desk.do("binance", "record_deposit", "d2", "spot", "BNB", D(1), T0)
    desk.market(T0, eth_usd_price=3000, bnb_usd_price=600)
    spot(desk, "binance", "b", "buy", "1", "3000", "0.005", "BNB")
    s = desk.state()
    st = statement(s)
    assert st["initial_equity"] == 10600 and st["unpriced"] == {}
    assert st["pnl"]["fees"] == -3 and reconciles(s) == -3 and equity(s) == 10597


def test_a_liquidation_loss() -> None:
    """10 WETH + 1 ETH at 3000 (33,000); supply 10 WETH, borrow 15,000 USDT. ETH to 2000 (11 ETH units:
    -11,000). A liquidator repays 7,500 USDT and takes 3.9375 WETH (3.75 + 5% bonus = 7,875 USD): loss
    -375. Equity 6.0625 * 2000 + 2000 + 7,500 net USDT = 21,625 = 33,000 - 11,000 - 375."""
    desk = aave_desk([{"kind": "borrowed", "asset": "USDT", "amount": "15000"}], "0")
    desk.market(T0 + H, eth_usd_price=2000)
    aave(desk, "l", [{"kind": "liquidated", "asset": "USDT", "amount": "7500", "receipt_asset": "WETH",
                      "receipt_amount": "3.9375"}], "0", T0 + H)
    s = desk.state()
    lines = pnl(s)
    assert (lines["liquidation"], lines["revaluation"]) == (-375, -11000)
    assert reconciles(s) == -11375 and equity(s) == 21625


def test_equity_samples_close_each_hour_and_the_curve_ends_at_the_final_equity() -> None:
    """Samples are stamped at the end of each hour with all of that hour's events folded (a funding at
    01:00 is in the 01:00 sample); the series starts at the funded equity and ends at the equity now."""
    desk = Desk()
    desk.do("bybit", "record_deposit", "d", "futures", "USDT", D(10000), T0)
    desk.market(T0, eth_usd_price=3000)
    perp(desk, "p", "buy", "1", "3000", T0 + timedelta(minutes=20))
    desk.do("bybit", "record_funding", "ETH/USDT:USDT", "futures", "USDT", D("0.0001"), D(3000), D(1),
            D("-0.3"), T0 + H)
    desk.market(T0 + 90 * timedelta(minutes=1), eth_usd_price=3100)
    s = desk.state()
    assert s.equity == [((T0).isoformat(), D(10000)), ((T0 + H).isoformat(), D("9999.7"))]
    assert equity_series(s)[0] == (T0.isoformat(), D(10000))
    assert equity_series(s)[-1] == ((T0 + 90 * timedelta(minutes=1)).isoformat(), D("10099.7"))


def test_apy_only_for_windows_of_seven_days_and_never_raises() -> None:
    """+10% over 6 hours or 2 days: no APY. +10% over 73 days: 1.1^5 - 1 = 0.61051. A growth too large
    to compound gives None rather than an error."""
    assert apy(D(100), D(110), D("0.25")) is None and apy(D(100), D(110), D(2)) is None
    assert apy(D(100), D(110), D(73)) == D("0.61051")
    assert apy(D(1), D("1e30"), D(7)) is None
    assert apy(D(0), D(1), D(30)) is None


PROPERTY_CONFIG: dict[str, Any] = {
    "execution_mode": "backtest", "ledger": {"url": "memory:", "views": False},
    "initial_balances": {"binance": {"USDT": 100_000, "ETH": 5}, "bybit": {"USDT": 50_000},
                         "okx": {"USDT": 50_000}, "ethereum": {"ETH": 10, "USDT": 10_000}},
    "fees": {"binance": {"maker": "0.0002", "taker": "0.001"}, "bybit": {"taker": "0.00055"}},
    "transfers": {"withdrawal_fees": {"binance": {"USDT": 1, "ETH": "0.0005"}}},
}


@settings(max_examples=25, deadline=None)
@given(testing.steps(malformed=False))
def test_the_statement_reconciles_after_every_event_of_random_runs(run: list[testing.Step]) -> None:
    """Random instructions and price paths: after every event of the log (so at every hourly sample,
    at any `--as-of`, and at the end) the lines add up exactly to the equity change net of external
    flows, and each hourly sample is the equity of everything up to its hour."""
    engine = EventDrivenStrategyEngine(PROPERTY_CONFIG)
    try:
        asyncio.run(testing.play(engine, run))
        engine.event_logger.flush()
        state = LedgerState()
        at_hour: dict[str, D] = {}
        for _nid, event in engine.ledger.iter_events():
            due = state.equity_due
            if due is not None and event.ts_event > due:
                at_hour[due.isoformat()] = equity(state)
            apply(state, event)
            reconciles(state)
        assert dict(state.equity) == at_hour
        assert statement(state)["pnl"] == engine.summary()["pnl"]
    finally:
        engine.ledger.close()
