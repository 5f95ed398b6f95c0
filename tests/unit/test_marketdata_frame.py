"""The MarketData frame: lookups, slicing, and a digest that depends on content only."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from aggregates.errors import LedgerError
from ledger.marketdata import DataError, FundingPoint, MarketData, canonical_digest

T0 = datetime(2025, 4, 1, tzinfo=UTC)
H = timedelta(hours=1)


def frame() -> MarketData:
    times = [T0 + i * H for i in range(10)]
    rows = [{"eth_usd_price": D(1800 + i), "gas_price_gwei": D("10.5")} for i in range(10)]
    funding = [FundingPoint(T0 + 8 * H, "bybit", "ETH", D("0.0001")),
               FundingPoint(T0, "binance", "ETH", D("-0.00002")),
               FundingPoint(T0 + 8 * H, "binance", "ETH", D("0.00003"))]
    return MarketData.build("test", times, rows, funding)


def test_build_sorts_funding_by_time_venue_base() -> None:
    """Funding comes out ordered by (ts, venue, base) whatever order it went in."""
    data = frame()
    assert [(p.ts - T0, p.venue) for p in data.funding] == [
        (timedelta(0), "binance"), (8 * H, "binance"), (8 * H, "bybit")]


def test_digest_is_the_documented_canonical_text() -> None:
    """The digest is sha256 over the canonical text written out by hand here (a stored schema)."""
    times = [T0]
    rows = [{"b": D("2.000"), "a": D("1.50")}]
    funding = [FundingPoint(T0 + timedelta(milliseconds=1), "binance", "ETH", D("6.744E-5"))]
    text = ("market-data/1\n"
            "R|2025-04-01T00:00:00.000000+00:00|a=1.5;b=2\n"
            "F|2025-04-01T00:00:00.001000+00:00|binance|ETH|0.00006744\n")
    assert canonical_digest(times, rows, funding) == hashlib.sha256(text.encode()).hexdigest()


def test_digest_ignores_how_numbers_and_keys_were_written() -> None:
    """Trailing zeros, exponent form and key insertion order do not change the digest."""
    a = MarketData.build("a", [T0], [{"x": D("1831.94000000"), "y": D("1000")}])
    b = MarketData.build("b", [T0], [{"y": D("1E+3"), "x": D("1831.94")}])
    assert a.digest == b.digest


def test_digest_changes_with_any_value_time_or_funding() -> None:
    """Changing one value, one time or one funding rate changes the digest."""
    base = frame()
    times, rows, funding = list(base.times), [dict(r) for r in base.rows], list(base.funding)
    rows[3]["eth_usd_price"] += D("0.01")
    assert canonical_digest(times, rows, funding) != base.digest
    shifted = [*times[:-1], times[-1] + H]
    assert canonical_digest(shifted, base.rows, funding) != base.digest
    changed = [*funding[:-1], FundingPoint(funding[-1].ts, "bybit", "ETH", D("0.00011"))]
    assert canonical_digest(times, base.rows, changed) != base.digest


def test_snapshot_at_takes_the_row_at_or_before() -> None:
    """A lookup between rows returns the earlier row; an exact time returns that row."""
    data = frame()
    assert data.snapshot_at(T0 + 3 * H)["eth_usd_price"] == D(1803)
    assert data.snapshot_at(T0 + 3 * H + timedelta(minutes=59))["eth_usd_price"] == D(1803)
    assert data.snapshot_at(T0 + 100 * H)["eth_usd_price"] == D(1809)
    assert data.index_at(T0 + 4 * H) == 4


def test_snapshot_before_the_first_row_is_a_data_error() -> None:
    """Asking for a time before the data starts names the source and the first row."""
    with pytest.raises(DataError, match=r"test: no market data at or before 2025-03-31T23:00:00\+00:00"):
        frame().snapshot_at(T0 - H)
    assert issubclass(DataError, LedgerError)


def test_naive_lookup_is_a_data_error() -> None:
    """A naive datetime cannot be compared with UTC times and is refused clearly."""
    with pytest.raises(DataError, match="aware UTC"):
        frame().snapshot_at(datetime(2025, 4, 1, 3))


def test_snapshot_is_a_copy() -> None:
    """Mutating a returned snapshot leaves the data as it was."""
    data = frame()
    snap = data.snapshot_at(T0)
    snap["eth_usd_price"] = D(0)
    assert data.snapshot_at(T0)["eth_usd_price"] == D(1800)


def test_between_is_half_open_and_recomputes_the_digest() -> None:
    """between(start, end) keeps start <= t < end for rows and funding, digest as if built directly."""
    data = frame()
    part = data.between(T0 + 2 * H, T0 + 8 * H)
    assert part.times == tuple(T0 + i * H for i in range(2, 8))
    assert part.funding == ()
    direct = MarketData.build("x", part.times, part.rows, ())
    assert part.digest == direct.digest != data.digest
    later = data.between(T0 + 8 * H, T0 + 20 * H)
    assert [p.venue for p in later.funding] == ["binance", "bybit"]


def test_funding_between_excludes_after_and_includes_upto() -> None:
    """funding_between(after, upto) is after < ts <= upto."""
    data = frame()
    assert [p.rate for p in data.funding_between(T0 - H, T0)] == [D("-0.00002")]
    assert data.funding_between(T0, T0 + 7 * H) == ()
    assert len(data.funding_between(T0, T0 + 8 * H)) == 2


def test_keys_start_end() -> None:
    """keys() is the sorted union of row keys; start and end are the first and last row times."""
    data = MarketData.build("k", [T0, T0 + H], [{"b": D(1)}, {"a": D(2)}])
    assert data.keys() == ("a", "b")
    assert (data.start, data.end) == (T0, T0 + H)
    with pytest.raises(DataError, match="no rows"):
        _ = MarketData.build("empty", [], []).start


def test_times_must_ascend_strictly() -> None:
    """A repeated or decreasing time is refused with both times named."""
    with pytest.raises(DataError, match="is not after"):
        MarketData.build("dup", [T0, T0], [{}, {}])


def test_unsorted_funding_is_refused_by_the_raw_constructor() -> None:
    """Only build() sorts; a hand-made frame with unsorted funding is an error, not a silent reorder."""
    points = (FundingPoint(T0 + H, "binance", "ETH", D(0)), FundingPoint(T0, "binance", "ETH", D(0)))
    with pytest.raises(DataError, match="not sorted"):
        MarketData("raw", "-", (), (), points)
