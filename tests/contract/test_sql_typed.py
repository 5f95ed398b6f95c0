"""Typed SQL views on SQLite and PostgreSQL: numbers SQL can compare, order and sum, USD values per
balance and position row, AAVE books in view_balances, and the P&L statement as a view.

Hand figures (ETH at 3000, 3400, then 3200; WETH counts as ETH at rate 1):
  binance spot 7.33 ETH and 20,870 USDT, bybit unified 50,000 USDT, aave supplied 1.5 WETH,
  aave borrowed 500 USDT  ->  equity = 70,370 + 8.83 x P = 96,860 / 100,392 / 98,626.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, Text

from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger
from projections import SQLProjection, fold, reports

T0 = datetime(2024, 6, 1, tzinfo=UTC)
PRICES = (D("3000"), D("3400"), D("3200"))


def _session(ledger: Ledger) -> None:
    ledger.start_session(Session.start("typed-views", "backtest", "{}", "-", "-", "-", 1, "test", T0))


def _quote(venue: VenueLedger, i: int, market: dict[str, D], ts: datetime) -> None:
    """A market observation: an accepted instruction carries the prices it saw."""
    venue.record_accepted(f"q-{i}", {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy",
                                     "amount": "0.1", "wallet": "spot"}, market, ts)


def write_book(ledger: Ledger) -> None:
    _session(ledger)
    binance = VenueLedger.open("main", "binance", "cex", T0)
    bybit = VenueLedger.open("main", "bybit", "cex", T0)
    aave = VenueLedger.open("main", "aave", "onchain", T0)
    binance.record_deposit("d1", "spot", "ETH", D("7.33"), T0)
    binance.record_deposit("d2", "spot", "USDT", D("20870"), T0)
    bybit.record_deposit("d3", "unified", "USDT", D("50000"), T0)
    aave.record_interest("i1", "WETH", "supplied", D("1.5"), D("1"), T0)
    aave.record_interest("i2", "USDT", "borrowed", D("500"), D("1"), T0)
    ledger.save(binance, bybit, aave)
    for hour, price in enumerate(PRICES):
        _quote(binance, hour, {"eth_usd_price": price}, T0 + timedelta(hours=hour + 1))
    ledger.save(binance)
    ledger.end_session("done", T0 + timedelta(hours=3, minutes=30))


@pytest.fixture
def ledger(store_url: str) -> Ledger:
    return Ledger.open(store_url, create=True)


def _view(ledger: Ledger) -> SQLProjection:
    view = SQLProjection.for_ledger(ledger)
    view.run(ledger, batch=1)  # one commit per event: rows no event touched follow the marks
    return view


def query(view: SQLProjection, sql: str) -> list[tuple[Any, ...]]:
    """Raw SQL as a person would type it (the PostgreSQL tables live in the test's schema)."""
    schema = view.metadata.schema
    if schema:
        sql = sql.replace("view_", f'"{schema}".view_')
    with view.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def test_max_equity_is_the_numeric_maximum(ledger: Ledger) -> None:
    write_book(ledger)
    view = _view(ledger)
    exact = [D(str(x)) for (x,) in query(view, "SELECT equity FROM view_equity ORDER BY ts")]
    assert set(exact) == {D("96860"), D("100392"), D("98626")}
    assert query(view, "SELECT max(equity_num) FROM view_equity") == [(max(exact),)]
    assert query(view, "SELECT min(equity_num) FROM view_equity") == [(D("96860"),)]
    if view.engine.dialect.name == "sqlite":  # why the copy exists: the exact text compares as text
        assert query(view, "SELECT max(equity) FROM view_equity") == [("98626.00",)]
    else:  # on PostgreSQL the exact column is NUMERIC itself
        assert query(view, "SELECT max(equity) FROM view_equity") == [(D("100392"),)]


def test_order_by_amount_is_numeric_and_the_text_stays_exact(ledger: Ledger) -> None:
    write_book(ledger)
    view = _view(ledger)
    rows = query(view, "SELECT venue, asset, amount FROM view_balances WHERE amount_num IS NOT NULL "
                       "ORDER BY amount_num DESC")
    assert [(v, a, D(str(x))) for v, a, x in rows] == [
        ("bybit", "USDT", D("50000")), ("binance", "USDT", D("20870")), ("binance", "ETH", D("7.33"))]
    # the exact column is read back unrounded (the REAL copy of 7.33 is not)
    assert view.state.balances[("binance", "spot", "ETH")] == D("7.33")
    assert query(view, "SELECT max(amount_num) FROM view_lending") == [(D("500"),)]


def test_usd_value_per_balance_row_and_the_aave_books(ledger: Ledger) -> None:
    write_book(ledger)
    view = _view(ledger)
    rows = query(view, "SELECT venue, wallet, asset, amount, supplied, borrowed, usd_value "
                       "FROM view_balances ORDER BY venue, wallet, asset")
    as_dec = [tuple(None if x is None else D(str(x)) if i >= 3 else x for i, x in enumerate(r)) for r in rows]
    # at ETH 3200: 7.33 x 3200 = 23,456; 1.5 WETH x 3200 = 4,800; 500 USDT borrowed = -500
    assert as_dec == [
        ("aave", "", "USDT", None, None, D("500"), D("-500")),
        ("aave", "", "WETH", None, D("1.5"), None, D("4800")),
        ("binance", "spot", "ETH", D("7.33"), None, None, D("23456")),
        ("binance", "spot", "USDT", D("20870"), None, None, D("20870")),
        ("bybit", "unified", "USDT", D("50000"), None, None, D("50000")),
    ]
    assert query(view, "SELECT sum(usd_value_num) FROM view_balances") == [(D("98626"),)]
    assert query(view, "SELECT sum(amount_num) FROM view_balances WHERE asset = 'USDT'") == [(D("70870"),)]
    # the rows written one event at a time are the rows a rebuild writes
    incremental = query(view, "SELECT * FROM view_balances ORDER BY venue, wallet, asset")
    view.rebuild(ledger)
    assert query(view, "SELECT * FROM view_balances ORDER BY venue, wallet, asset") == incremental


def test_usd_value_per_position_row(ledger: Ledger) -> None:
    _session(ledger)
    bybit = VenueLedger.open("main", "bybit", "cex", T0)
    bybit.record_deposit("d1", "unified", "USDT", D("10000"), T0)
    market = {"eth_usd_price": D("3400"), "bybit_eth_perp_price": D("3400")}
    bybit.record_accepted("s1", {"kind": "SHORT", "instrument": "ETH/USDT:USDT", "side": "sell",
                                 "amount": "2", "wallet": "unified"}, market, T0)
    bybit.record_submitted("s1", "c-s1", T0)
    bybit.record_fill("s1", "x1", "perp", "ETH/USDT:USDT", "sell", D("2"), D("3400"), D("0.5"), "USDT",
                      T0, wallet="unified")
    t1 = T0 + timedelta(hours=1)
    bybit.record_accepted("s2", {"kind": "SHORT", "instrument": "ETH/USDT:USDT", "side": "sell",
                                 "amount": "1", "wallet": "unified"},
                          {"eth_usd_price": D("3200"), "bybit_eth_perp_price": D("3210.25")}, t1)
    ledger.save(bybit)
    view = _view(ledger)
    rows = query(view, "SELECT instrument, quantity, mark, usd_value, usd_value_num FROM view_positions")
    # -2 x 3210.25 = -6,420.5 (exactly representable, so the REAL copy equals it too)
    assert [tuple(D(str(x)) if i else x for i, x in enumerate(r)) for r in rows] == [
        ("ETH/USDT:USDT", D("-2"), D("3210.25"), D("-6420.5"), D("-6420.5"))]


def test_the_pnl_statement_is_a_view_line_by_line(ledger: Ledger) -> None:
    write_book(ledger)
    view = _view(ledger)
    statement = reports.pnl(fold(e for _, e in ledger.iter_events()))
    rows = query(view, "SELECT line, amount FROM view_pnl_statement ORDER BY seq")
    assert [(line, D(str(x))) for line, x in rows] == list(statement.items())
    assert len(rows) > 2 and rows[-1][0] == "total"
    total = query(view, "SELECT sum(amount_num) FROM view_pnl_statement WHERE line <> 'total'")
    assert total == [(statement["total"],)]


def test_views_of_an_older_layout_are_rewritten(ledger: Ledger) -> None:
    """A ledger whose views were written before the typed columns existed gets them on the next run."""
    write_book(ledger)
    old = SQLProjection.for_ledger(ledger)
    schema = old.metadata.schema
    old.metadata.drop_all(old.engine)
    md = MetaData(schema=schema)
    Table("view_balances", md, Column("venue", String(200), primary_key=True),
          Column("wallet", String(200), primary_key=True), Column("asset", String(200), primary_key=True),
          Column("amount", Text))
    md.create_all(old.engine)
    old.close()
    view = _view(ledger)
    assert view.position == ledger.max_notification_id()
    assert query(view, "SELECT sum(usd_value_num) FROM view_balances") == [(D("98626"),)]
