"""Market data rebuilt from a ledger: the snapshots decisions used and the funding that settled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from aggregates.errors import StoreError
from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger
from ledger.demo import run_demo
from ledger.marketdata import DataError, FundingPoint, MarketData, load_event_log

T0 = datetime(2024, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)
BUY = {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "1", "wallet": "spot"}
SHORT = {"kind": "SHORT", "instrument": "ETH/USDT:USDT", "side": "sell", "amount": "1", "wallet": "unified"}


def write_log(url: str) -> None:
    """Two venues, snapshots at three times (two at T0, one of them a session observation), funding."""
    ledger = Ledger.open(url, create=True)
    session = Session.start("md-test", "backtest", "{}", "-", "synthetic(seed=1)", "-", 1, "test", T0)
    ledger.start_session(session)
    binance = VenueLedger.open("main", "binance", "cex", T0)
    bybit = VenueLedger.open("main", "bybit", "cex", T0)
    binance.record_accepted("i1", BUY, {"eth_usd_price": D("3000"), "binance_eth_spot_price": D("3000.5")},
                            T0)
    bybit.record_accepted("i2", SHORT, {"eth_usd_price": D("3001"), "bybit_eth_perp_price": D("3010")}, T0)
    ledger.save(binance, bybit)
    session.record_market({"eth_usd_price": D("3020"), "gas_price_gwei": D("12.5")}, T0 + H)
    ledger.save(session)
    bybit.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), D("3015"), D("-1"),
                         D("-0.3015"), T0 + 8 * H)
    binance.record_funding("BTC/USDT:USDT", "futures", "USDT", D("-0.00002"), D("60000"), D("0"), D("0"),
                           T0 + 8 * H)
    binance.record_accepted("i3", BUY, {"eth_usd_price": D("3030")}, T0 + 8 * H)
    ledger.save(bybit, binance)
    ledger.end_session("done", T0 + 9 * H)
    ledger.close()


def test_rows_merge_snapshots_per_time_later_notification_wins(tmp_path: Path) -> None:
    """Snapshots at one ts merge key by key in notification order; rows come out by time."""
    url = f"sqlite:///{tmp_path}/log.db"
    write_log(url)
    data = load_event_log(url)
    assert data.source == f"event log {url}"
    assert data.times == (T0, T0 + H, T0 + 8 * H)
    assert data.rows[0] == {"eth_usd_price": D("3001"), "binance_eth_spot_price": D("3000.5"),
                            "bybit_eth_perp_price": D("3010")}
    assert data.rows[1] == {"eth_usd_price": D("3020"), "gas_price_gwei": D("12.5")}
    assert data.rows[2] == {"eth_usd_price": D("3030")}


def test_funding_takes_the_venue_of_its_stream(tmp_path: Path) -> None:
    """FundingSettled becomes a FundingPoint with the stream's venue and the instrument's base."""
    url = f"sqlite:///{tmp_path}/log.db"
    write_log(url)
    data = load_event_log(url)
    assert data.funding == (FundingPoint(T0 + 8 * H, "binance", "BTC", D("-0.00002")),
                            FundingPoint(T0 + 8 * H, "bybit", "ETH", D("0.0001")))


def test_digest_is_the_content_digest(tmp_path: Path) -> None:
    """The digest equals that of the same content built directly, so it can be compared to a data file."""
    url = f"sqlite:///{tmp_path}/log.db"
    write_log(url)
    data = load_event_log(url)
    assert data.digest == MarketData.build("other", data.times, data.rows, reversed(data.funding)).digest
    assert load_event_log(url).digest == data.digest


def test_the_demo_log_loads(tmp_path: Path) -> None:
    """The scripted demo session: one snapshot time (its instructions share it) and 9 bybit settlements."""
    url = f"sqlite:///{tmp_path}/demo.db"
    ledger = Ledger.open(url, create=True)
    run_demo(ledger, days=3)
    ledger.close()
    data = load_event_log(url)
    assert data.times == (T0,)
    assert data.rows[0]["bybit_perp_price"] == D("3010")
    assert len(data.funding) == 9 and {(p.venue, p.base) for p in data.funding} == {("bybit", "ETH")}


def test_a_log_without_market_data_is_a_data_error(tmp_path: Path) -> None:
    """A ledger that recorded no snapshots and no funding cannot serve as market data."""
    url = f"sqlite:///{tmp_path}/bare.db"
    ledger = Ledger.open(url, create=True)
    ledger.save(VenueLedger.open("main", "okx", "cex", T0))
    ledger.close()
    with pytest.raises(DataError, match=r"event log .*bare.db: the log holds no market snapshots"):
        load_event_log(url)


def test_a_missing_database_is_a_store_error(tmp_path: Path) -> None:
    """Opening is read-only: a missing database is refused, not created."""
    with pytest.raises(StoreError):
        load_event_log(f"sqlite:///{tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()
