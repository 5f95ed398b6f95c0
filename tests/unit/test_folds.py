"""Accounting rules of SPEC §4, each checked against numbers computed by hand from the inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from aggregates import VenueLedger
from aggregates.values import MONEY
from projections import RiskParameters, balances, equity, exposure, fold, pnl, position, risk
from projections.reports import health_factor, in_transit

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def perp(v: VenueLedger, iid: str, side: str, qty: str, price: str, fee: str = "0") -> None:
    v.record_accepted(iid, {"kind": "PERP", "instrument": "ETH/USDT:USDT", "side": side,
                            "amount": qty, "wallet": "futures"}, {}, T0)
    v.record_submitted(iid, f"c{iid}", T0)
    v.record_fill(iid, f"t{iid}", "perp", "ETH/USDT:USDT", side, D(qty), D(price), D(fee), "USDT",
                  T0, wallet="futures")


def test_spot_buy_adds_base_and_removes_quote_and_fee() -> None:
    """1 ETH at 3001.5 with a 0.30015 USDT fee: +1 ETH, -3001.80015 USDT."""
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_deposit("d", "spot", "USDT", D("10000"), T0)
    v.record_accepted("b", {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "1",
                            "wallet": "spot"}, {"eth_usd_price": D("3000")}, T0)
    v.record_submitted("b", "cb", T0)
    v.record_fill("b", "1", "spot", "ETH/USDT", "buy", D("1"), D("3001.5"), D("0.30015"), "USDT", T0)
    s = fold(v.collect_events())
    assert balances(s) == {"ETH": D("1"), "USDT": D("6998.19985")}
    assert pnl(s)["fees"] == D("-0.30015")
    assert s.orders["b"].status == "FILLED" and s.orders["b"].avg_price == D("3001.5")


def test_perp_average_entry_realised_pnl_and_flip() -> None:
    """Long 2 @100 and 2 @110 (avg 105); sell 5 @120: realise 4*15=60, flip to short 1 @120."""
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_deposit("d", "futures", "USDT", D("1000"), T0)
    perp(v, "a", "buy", "2", "100")
    perp(v, "b", "buy", "2", "110")
    s = fold(v.collect_events())
    assert s.positions[("binance", "ETH/USDT:USDT")].avg_entry == D("105")
    perp(v, "c", "sell", "5", "120", fee="0.6")
    s = fold(v.collect_events(), s)
    p = s.positions[("binance", "ETH/USDT:USDT")]
    assert (p.quantity, p.avg_entry, p.realised) == (D("-1"), D("120"), D("60"))
    assert balances(s) == {"USDT": D("1059.4")}  # margin asset: +60 realised -0.6 fee
    assert position(s, "ETHUSDT-PERP") == D("-1")


def test_funding_is_rate_times_mark_notional_on_the_margin_asset() -> None:
    """Short 10 ETH, rate 0.0001, mark 3010: receive 10*3010*0.0001 = 3.01 USDT."""
    v = VenueLedger.open("main", "bybit", "cex", T0)
    amount = D("10") * D("3010") * D("0.0001")
    v.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), D("3010"), D("-10"), amount,
                     T0 + timedelta(hours=8))
    assert not v.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), D("3010"),
                                D("-10"), amount, T0 + timedelta(hours=8))
    s = fold(v.collect_events())
    assert balances(s) == {"USDT": D("3.01")} and pnl(s)["funding"] == D("3.01")


def test_aave_supply_interest_borrow_and_health_factor() -> None:
    """Supply 10 WETH at 3000 (lt 0.83), borrow 15000 USDT: HF = 30000*0.83/15000 = 1.66."""
    v = VenueLedger.open("main", "ethereum", "onchain", T0)
    v.record_deposit("d", "0xa", "WETH", D("10"), T0)
    v.record_deposit("g", "0xa", "ETH", D("1"), T0)
    v.record_accepted("s", {"kind": "AAVE_SUPPLY", "asset": "WETH", "amount": "10", "wallet": "0xa"},
                      {"eth_usd_price": D("3000")}, T0)
    v.record_tx_submitted("s", "0x1", 0, 1, 1, 1, "supply", T0)
    v.record_tx_confirmed("s", "0x1", 1, "0xb1", 100_000, 10**10, D("0.001"),
                          [{"kind": "supplied", "asset": "WETH", "amount": "10"},
                           {"kind": "borrowed", "asset": "USDT", "amount": "15000"}], T0)
    v.record_interest("i1", "WETH", "supplied", D("0.01"), D("1.001"), T0 + timedelta(days=1))
    s = fold(v.collect_events())
    assert s.supplied[("ethereum", "WETH")] == D("10.01")
    assert balances(s) == {"ETH": D("0.999"), "USDT": D("15000")}
    hf = health_factor(s, "ethereum", RiskParameters())
    assert hf == D("10.01") * 3000 * D("0.83") / 15000
    assert pnl(s)["gas"] == D("-3.000") and pnl(s)["supply_interest"] == D("30.00")
    # exposure counts the supplied WETH once, as ETH
    assert exposure(s)["ETH"] == D("0.999") + D("10.01")


def test_reorg_undoes_effects_and_reconfirmation_redoes_them() -> None:
    v = VenueLedger.open("main", "ethereum", "onchain", T0)
    v.record_deposit("d", "0xa", "USDT", D("100"), T0)
    v.record_deposit("g", "0xa", "ETH", D("1"), T0)
    v.record_accepted("s", {"kind": "AAVE_SUPPLY", "asset": "USDT", "amount": "100", "wallet": "0xa"},
                      {}, T0)
    v.record_tx_submitted("s", "0x1", 0, 1, 1, 1, "supply", T0)
    effects = [{"kind": "supplied", "asset": "USDT", "amount": "100"}]
    v.record_tx_confirmed("s", "0x1", 1, "0xb1", 1, 1, D("0.01"), effects, T0)
    v.record_tx_reorged("s", "0x1", "0xb1", T0)
    s = fold(v.collect_events())
    assert balances(s) == {"USDT": D("100"), "ETH": D("1")} and not any(s.supplied.values())
    v.record_tx_confirmed("s", "0x1", 2, "0xb2", 1, 1, D("0.01"), effects, T0)
    s = fold(v.collect_events(), s)
    assert balances(s) == {"ETH": D("0.99")} and s.supplied[("ethereum", "USDT")] == D("100")


def test_transfer_is_in_transit_until_received_and_conserves_funds() -> None:
    """Send 5000 with a 1 USDT fee: source -5001, 5000 in transit, then +5000 at the destination."""
    a = VenueLedger.open("main", "binance", "cex", T0)
    b = VenueLedger.open("main", "bybit", "cex", T0)
    a.record_deposit("d", "spot", "USDT", D("6000"), T0)
    a.record_accepted("x", {"kind": "TRANSFER", "asset": "USDT", "amount": "5000", "wallet": "spot"},
                      {}, T0)
    a.record_transfer_sent("x", "tx1", "USDT", D("5000"), D("1"), "spot", "bybit", "unified", T0)
    s = fold(a.collect_events() + b.collect_events())
    assert balances(s) == {"USDT": D("999")} and in_transit(s) == {"USDT": D("5000")}
    assert exposure(s)["USD"] == D("5999")
    b.record_transfer_received("tx1", "binance", "unified", "USDT", D("5000"), T0 + timedelta(hours=1))
    s = fold(b.collect_events(), s)
    assert balances(s) == {"USDT": D("5999")} and in_transit(s) == {}
    assert s.orders["x"].status == "COMPLETED"


def test_failed_transfer_refunds_the_source() -> None:
    a = VenueLedger.open("main", "binance", "cex", T0)
    a.record_deposit("d", "spot", "USDT", D("100"), T0)
    a.record_accepted("x", {"kind": "TRANSFER", "asset": "USDT", "amount": "50", "wallet": "spot"},
                      {}, T0)
    a.record_transfer_sent("x", "tx1", "USDT", D("50"), D("1"), "spot", "bybit", "unified", T0)
    a.record_transfer_failed("x", "tx1", "address not whitelisted", D("50"), T0)
    s = fold(a.collect_events())
    assert balances(s) == {"USDT": D("99")} and in_transit(s) == {}


def test_equity_is_marked_and_risk_reports_margin_and_breaches() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_deposit("d", "futures", "USDT", D("1000"), T0)
    v.record_accepted("m", {"kind": "MARK"}, {"binance_eth_perp_price": D("110"),
                                              "eth_usd_price": D("110")}, T0)
    perp(v, "a", "sell", "2", "100")
    s = fold(v.collect_events())
    # the venue's perp price (110) and the fill (100) have the same time: the venue's data wins
    assert equity(s) == D("1000") + D("-2") * (D("110") - D("100"))
    v.record_accepted("m2", {"kind": "MARK"}, {"binance_eth_perp_price": D("110")}, T0)
    s = fold(v.collect_events(), s)
    assert equity(s) == D("980")  # short 2 from 100, marked at 110
    report = risk(s, RiskParameters(exposure_limits={"ETH": D("1")}))
    assert report["margin_use"]["binance"] == MONEY.divide(D("2") * D("110") * D("0.1"), D("980"))
    assert report["breaches"] == ["exposure ETH -2 > 1"]
