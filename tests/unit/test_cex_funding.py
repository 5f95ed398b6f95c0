"""The funding poller's parsing and bookkeeping on ccxt-shaped funding-history entries (as ccxt 4.5.90
returns them for Binance income, Bybit funding executions and OKX bills), and the feed's ticker keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from aggregates.venue import VenueLedger
from executors.costs import ConfigError
from executors.live.cex_funding import (
    FundingPoller,
    funding_key,
    mark_key,
    ms_to_utc,
    payment,
    payments,
    poll_interval,
    to_ms,
)
from ledger.live_feed import ticker_values
from projections.state import Position

D = Decimal
PERP = "ETH/USDT:USDT"
T0 = 1_800_000_000_123  # ms
OPENED = datetime(2027, 1, 15, tzinfo=UTC)  # before T0's date (2027-01-15T08:00:00.123Z)


def binance_entry(amount: float, ts: int = T0, entry_id: str = "9001") -> dict[str, Any]:
    info = {"symbol": "ETHUSDT", "incomeType": "FUNDING_FEE", "income": str(amount), "asset": "USDT",
            "time": ts, "tranId": entry_id}  # fmt: skip
    return {"info": info, "symbol": PERP, "code": "USDT", "timestamp": ts, "id": entry_id, "amount": amount}


def bybit_entry(exec_fee: float, rate: str = "0.0001", mark: str = "2001.5") -> dict[str, Any]:
    info = {"symbol": "ETHUSDT", "execFee": str(exec_fee), "execId": "b-1", "execType": "Funding",
            "feeRate": rate, "markPrice": mark, "execPrice": mark, "execTime": str(T0)}  # fmt: skip
    return {"info": info, "symbol": PERP, "code": "USDT", "timestamp": T0, "id": "b-1", "amount": exec_fee}


def test_binance_and_okx_amounts_keep_their_sign_bybit_fees_are_flipped() -> None:
    """Binance income and OKX balChg are + received (the ledger's sign); Bybit's execFee is + paid."""
    received = payment("binance", binance_entry(0.2))
    assert received is not None and received.amount == D("0.2") and type(received.amount) is Decimal
    okx = payment("okx", {**binance_entry(-0.42), "id": "bill-7"})
    assert okx is not None and (okx.amount, okx.entry_id) == (D("-0.42"), "bill-7")
    paid = payment("bybit", bybit_entry(0.2))
    assert paid is not None and paid.amount == D("-0.2")


def test_bybit_reports_rate_and_mark_the_others_leave_them_to_the_feed() -> None:
    """Bybit's execution row carries feeRate and markPrice; Binance income carries neither."""
    bybit = payment("bybit", bybit_entry(-0.1, rate="-0.00005", mark="1999.9"))
    assert bybit is not None and (bybit.rate, bybit.mark) == (D("-0.00005"), D("1999.9"))
    binance = payment("binance", binance_entry(0.2))
    assert binance is not None and (binance.rate, binance.mark) == (None, None)


def test_timestamps_are_exact_milliseconds() -> None:
    """The payment time is part of the idempotency key: no float rounding on the way."""
    ts = ms_to_utc(T0)
    assert ts is not None and ts.isoformat() == "2027-01-15T08:00:00.123000+00:00"
    assert to_ms(ts) == T0
    assert ms_to_utc(None) is None and ms_to_utc(0) is None and ms_to_utc("x") is None


def test_entries_without_amount_or_time_are_skipped_and_others_sorted() -> None:
    """Incomplete rows are not payments; rows of another symbol are dropped; oldest first."""
    rows = [
        binance_entry(0.3, T0 + 2, "c"),
        {**binance_entry(0.1), "amount": None},
        {**binance_entry(0.1), "timestamp": None},
        {**binance_entry(0.5, T0 + 1, "b"), "symbol": "BTC/USDT:USDT"},
        binance_entry(0.2, T0 + 1, "a"),
    ]
    assert [(p.entry_id, p.amount) for p in payments("binance", rows, PERP)] == [
        ("a", D("0.2")),
        ("c", D("0.3")),
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 60.0), (0, 0.0), ("5", 5.0), (2.5, 2.5)]
)  # fmt: skip
def test_poll_interval_from_config(value: Any, expected: float) -> None:
    """`[live] funding_poll_s`, 60 seconds when not given."""
    live = {} if value is None else {"funding_poll_s": value}
    assert poll_interval({"live": live}) == expected


@pytest.mark.parametrize("value", ["soon", -1, float("nan")])
def test_bad_poll_interval_is_a_config_error(value: Any) -> None:
    """A bad interval is one clear config error naming the key."""
    with pytest.raises(ConfigError, match="funding_poll_s"):
        poll_interval({"live": {"funding_poll_s": value}})


def test_ticker_values_are_decimals_in_the_engine_keys() -> None:
    """A ccxt ticker (floats) becomes Decimal last/bid/ask keys; the mid when there is no last."""
    values = ticker_values("bybit", "ETH", "perp", {"last": 2000.1, "bid": 2000.0, "ask": 2000.2})
    assert values == {
        "bybit_eth_perp_price": D("2000.1"),
        "bybit_perp_price": D("2000.1"),
        "eth_usd_price": D("2000.1"),
        "bybit_eth_perp_bid_price": D("2000"),
        "bybit_eth_perp_ask_price": D("2000.2"),
    }
    assert all(type(v) is Decimal for v in values.values())
    mid = ticker_values("okx", "BTC", "spot", {"last": None, "bid": 100.0, "ask": 102.0})
    assert mid["okx_btc_spot_price"] == D(101) and "okx_spot_price" not in mid
    assert (
        mark_key("okx", "BTC") == "okx_btc_mark_price" and funding_key("okx", "BTC") == "okx_btc_funding_rate"
    )


# ---- the poller with fakes of our own ports and a real venue aggregate -------------------------------


class FakeClient:
    secrets: tuple[str, ...] = ()

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.calls: list[tuple[Any, ...]] = []

    def market(self, symbol: str) -> dict[str, Any] | None:
        return {"symbol": symbol, "contract": True} if symbol == PERP else None

    async def call(self, method: str, *args: Any) -> Any:
        self.calls.append((method, *args))
        since = args[1]
        return [e for e in self.entries if e["timestamp"] >= since]


@dataclass
class FakeBackend:
    client_of: FakeClient
    config: dict[str, Any] = field(default_factory=lambda: {"live": {"funding_poll_s": 0}})
    errors: dict[str, str] = field(default_factory=dict)

    async def client(self, venue: str) -> FakeClient:
        return self.client_of


class FakeLogger:
    def __init__(self, agg: VenueLedger) -> None:
        self.agg = agg
        self.commits = 0

    def venue_type(self, name: str) -> str | None:
        return "cex" if name == "binance" else None

    def venue(self, name: str) -> VenueLedger:
        return self.agg

    def commit(self, *aggs: Any) -> None:
        self.commits += 1

    def now(self) -> datetime:
        return datetime(2027, 1, 15, 9, tzinfo=UTC)


class FakeMonitor:
    def __init__(self, quantity: Decimal) -> None:
        self.quantity = quantity
        self.state = type("State", (), {"positions": {("binance", PERP): Position("perp", quantity)}})()

    def position(self, symbol: str, venue: str) -> dict[str, Any]:
        return {"amount": self.quantity}


class FakeInterface:
    def __init__(self, agg: VenueLedger, quantity: Decimal) -> None:
        self.logger = FakeLogger(agg)
        self.monitor = FakeMonitor(quantity)
        self.notified: list[dict[str, Any]] = []

    def wallet(self, venue: str, market_type: str = "spot") -> str:
        return "futures" if market_type == "perp" else "spot"

    def notify(self, result: dict[str, Any]) -> None:
        self.notified.append(result)


def settled(agg: VenueLedger) -> list[Any]:
    return [e for e in agg.collect_events() if type(e).__name__ == "FundingSettled"]


async def test_each_payment_is_recorded_once_on_the_margin_wallet() -> None:
    """Two polls over the same history record each payment once, with the feed's mark and rate where
    the venue gives none and the ledger's position; the next poll reads from the latest payment."""
    agg = VenueLedger.open("acct", "binance", "cex", OPENED)
    client = FakeClient([binance_entry(0.2, T0, "1"), binance_entry(0.19, T0 + 28_800_000, "2")])
    poller = FundingPoller(FakeBackend(client))  # type: ignore[arg-type]
    iface = FakeInterface(agg, D(-1))
    market = {mark_key("binance", "ETH"): D(2000), funding_key("binance", "ETH"): D("0.0001")}
    assert await poller.poll(iface, market) == 2  # type: ignore[arg-type]
    assert await poller.poll(iface, market) == 0  # type: ignore[arg-type]
    events = settled(agg)
    assert [
        (e.instrument, e.wallet, e.asset, e.amount, e.rate, e.mark_price, e.position) for e in events
    ] == [
        (PERP, "futures", "USDT", D("0.2"), D("0.0001"), D(2000), D(-1)),
        (PERP, "futures", "USDT", D("0.19"), D("0.0001"), D(2000), D(-1)),
    ]
    assert client.calls[0] == ("fetch_funding_history", PERP, to_ms(OPENED), 100)
    assert client.calls[1][2] == T0 + 28_800_000  # from the latest payment held
    assert [n["entry_id"] for n in iface.notified] == ["1", "2"]
    first = ms_to_utc(T0)
    assert first is not None and poller.entries[("binance", PERP, first)] == "1"


async def test_a_restarted_poller_starts_from_what_the_ledger_holds() -> None:
    """A new poller over an aggregate that already holds the payment reads from its time and
    records nothing again; without mark or funding keys the rate is what the payment implies."""
    agg = VenueLedger.open("acct", "binance", "cex", OPENED)
    client = FakeClient([binance_entry(-0.3, T0, "1")])
    iface = FakeInterface(agg, D("1.5"))
    first = FundingPoller(FakeBackend(client))  # type: ignore[arg-type]
    assert await first.poll(iface, {"binance_eth_perp_price": D(2000)}) == 1  # type: ignore[arg-type]
    [event] = settled(agg)
    assert (event.mark_price, event.rate) == (D(2000), D("0.0001"))  # 0.3 / (1.5 x 2000)
    again = FundingPoller(FakeBackend(client))  # type: ignore[arg-type]
    assert await again.poll(iface, {}) == 0  # type: ignore[arg-type]
    assert client.calls[-1][2] == T0


async def test_a_venue_error_is_reported_not_raised() -> None:
    """A failing funding-history call leaves a status-line problem and records nothing."""
    import ccxt

    class Failing(FakeClient):
        async def call(self, method: str, *args: Any) -> Any:
            raise ccxt.ExchangeNotAvailable("binance 503")

    agg = VenueLedger.open("acct", "binance", "cex", OPENED)
    backend = FakeBackend(Failing([]))
    poller = FundingPoller(backend)  # type: ignore[arg-type]
    assert await poller.poll(FakeInterface(agg, D(1)), {}) == 0  # type: ignore[arg-type]
    assert backend.errors["binance"].startswith("funding history:") and settled(agg) == []
