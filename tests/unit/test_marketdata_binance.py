"""Binance archive loaders and the folder loader, on the real files in data/binance and on
small malformed files written here. Expected values were read from the files' text."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import pairwise
from pathlib import Path

import pytest

from ledger.marketdata import DataError, data_digest_of_folder, load_folder, load_funding, load_klines
from tests.paths import BINANCE

H = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def binance() -> Path:
    """The real Binance files shipped in data/binance."""
    return BINANCE


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- klines on the real files ------------------------------------------------------------------

def test_raw_spot_archive_has_microsecond_times_and_no_header(binance: Path) -> None:
    """spot/ETHUSDT-1h-2025-04.csv: 720 hourly candles from 2025-04-01 00:00, µs timestamps detected."""
    klines = load_klines(binance / "spot" / "ETHUSDT-1h-2025-04.csv", "spot")
    assert len(klines) == 720
    assert klines[0].open_time == utc(2025, 4, 1)
    assert klines[-1].open_time == utc(2025, 4, 30, 23)
    assert (klines[0].open, klines[0].high, klines[0].low, klines[0].close) == (
        D("1822.43"), D("1843.00"), D("1817.88"), D("1831.94"))
    assert klines[0].volume == D("22628.86550000")
    assert klines[-1].close == D("1793.61")
    assert all(b.open_time - a.open_time == H for a, b in pairwise(klines))


def test_raw_futures_archive_has_millisecond_times_and_a_header(binance: Path) -> None:
    """futures_um/ETHUSDT-klines-1h-2026-08.csv: 744 candles, all of August 2026, ms timestamps."""
    klines = load_klines(binance / "futures_um" / "ETHUSDT-klines-1h-2026-08.csv", "perp")
    assert len(klines) == 744
    assert (klines[0].open_time, klines[-1].open_time) == (utc(2026, 8, 1), utc(2026, 8, 31, 23))
    assert (klines[0].open, klines[0].close, klines[-1].close) == (D("1861.68"), D("1863.93"), D("2466.53"))
    may = load_klines(binance / "futures_um" / "ETHUSDT-1h-2026-05.csv", "perp")
    assert (len(may), may[0].open_time, may[0].open, may[0].close) == (
        744, utc(2026, 5, 1), D("2256.50"), D("2258.84"))


def test_normalized_perp_file(binance: Path) -> None:
    """The ISO-timestamped perp file: 14,871 candles 2024-01-01 00:00 → 2025-09-25 23:00."""
    klines = load_klines(
        binance / "futures_um" / "binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv", "perp")
    assert len(klines) == 14_871
    assert (klines[0].open_time, klines[-1].open_time) == (utc(2024, 1, 1), utc(2025, 9, 25, 23))
    assert (klines[0].open, klines[0].close, klines[0].volume) == (D("2283.84"), D("2297.41"), D("75593.183"))
    assert klines[-1].close == D("3873.1")


def test_date_format_spot_file(binance: Path) -> None:
    """Binance_ETHUSDT_1h.csv (`YYYY-MM-DD HH:MM`, no volume): 74,542 candles from 2017-08-17 04:00."""
    klines = load_klines(binance / "spot" / "Binance_ETHUSDT_1h.csv", "spot")
    assert len(klines) == 74_542
    assert (klines[0].open_time, klines[0].open, klines[0].close) == (utc(2017, 8, 17, 4), D("301.13"),
                                                                      D("301.61"))
    assert (klines[-1].open_time, klines[-1].close) == (utc(2026, 5, 1, 23), D("2295.63"))
    assert klines[0].volume is None


def test_open_close_spot_file(binance: Path) -> None:
    """The open/close-only file: 648 candles 2026-08-01 00:00 → 08-27 23:00, no high/low."""
    klines = load_klines(binance / "spot" / "binance_ethusdt_1h_open_close_2026-08-01_2026-08-27.csv", "spot")
    assert len(klines) == 648
    assert (klines[0].open_time, klines[0].open, klines[0].close) == (utc(2026, 8, 1), D("1862.6"),
                                                                      D("1864.7"))
    assert (klines[-1].open_time, klines[-1].close) == (utc(2026, 8, 27, 23), D("2510.94"))
    assert klines[0].high is None and klines[0].low is None


# ---- funding on the real files -----------------------------------------------------------------

def test_raw_funding_keeps_the_recorded_milliseconds(binance: Path) -> None:
    """ETHUSDT-fundingRate-2026-08.csv: 93 settlements, recorded a few ms after the 8-hour marks."""
    points = load_funding(binance / "funding" / "ETHUSDT-fundingRate-2026-08.csv")
    assert len(points) == 93
    assert points[0].ts == utc(2026, 8, 1) + timedelta(milliseconds=1)
    assert (points[0].venue, points[0].base, points[0].rate) == ("binance", "ETH", D("0.00006744"))
    assert points[-1].ts == utc(2026, 8, 31, 16) + timedelta(milliseconds=1)
    assert points[-1].rate == D("0.00007702")


def test_normalized_funding_file(binance: Path) -> None:
    """The normalized funding file: 1,902 points every 8 h, rates within [-0.00025121, 0.00101724]."""
    points = load_funding(
        binance / "funding" / "binance_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv", "bybit", "eth")
    assert len(points) == 1_902
    assert (points[0].ts, points[0].rate) == (utc(2024, 1, 1), D("0.00027858"))
    assert (points[-1].ts, points[-1].rate) == (utc(2025, 9, 25, 16), D("0.0001"))
    assert points[-2].rate == D("-0.0000811")  # written -8.11e-05 in the file
    assert min(p.rate for p in points) == D("-0.00025121")
    assert max(p.rate for p in points) == D("0.00101724")
    assert all(b.ts - a.ts == 8 * H for a, b in pairwise(points))
    assert {(p.venue, p.base) for p in points} == {("bybit", "ETH")}


# ---- malformed files ---------------------------------------------------------------------------

RAW_ROW = "1743465600000000,1822.43,1843.00,1817.88,1831.94,22628.8655,1743469199999999,1,2,3,4,0\n"


@pytest.mark.parametrize(("text", "line", "problem"), [
    (RAW_ROW + "1743469200000000,1831.93,1833.33,1821.03\n", 2, "expected 12 columns, got 4"),
    (RAW_ROW.replace("1831.94", "abc"), 1, "close: expected a number, got 'abc'"),
    (RAW_ROW.replace("1831.94", "NaN"), 1, "close: expected a finite number"),
    (RAW_ROW + RAW_ROW, 2, "is not after"),
    ("timestamp,open,high,low,close\n2025-04-01T00:00:00Z,1,2,0.5,1.5\nyesterday,1,2,0.5,1.5\n", 3,
     "timestamp: expected an ISO UTC time, got 'yesterday'"),
    ("when,price\n2025-04-01,1\n", 1, "unknown kline header 'when,price'"),
    ("open_time_ms,iso_utc,open,close\n1785542400000,2026-08-01T01:00:00+00:00,1,2\n", 2,
     "disagrees with iso_utc"),
    ("date,open,high,low,close\n2025-04-01 00:00,1,2,0.5,1.5\n2025-04-01 1:00,1,2,0.5,1.5\n", 3,
     "date: expected an ISO UTC time"),
])
def test_malformed_kline_file_names_file_and_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    """Each kind of damage is one DataError naming the file, the line number and the problem."""
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as caught:
        load_klines(path, "spot")
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}: ") and problem in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("calc_time,funding_interval_hours,last_funding_rate\n1785542400001,8,0.0001\n17855x,8,0.0001\n", 3,
     "calc_time: expected an epoch timestamp"),
    ("calc_time,funding_interval_hours,last_funding_rate\n1785542400001,8\n", 2, "expected 3 columns"),
    ("funding_timestamp,funding_rate\n2024-01-01T00:00:00Z,zero\n", 2, "funding_rate: expected a number"),
    ("ts,rate\n1,2\n", 1, "unknown funding header 'ts,rate'"),
])
def test_malformed_funding_file_names_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str,
) -> None:
    """Funding files fail the same way: file, line, problem, on one line."""
    path = write(tmp_path, "funding.csv", text)
    with pytest.raises(DataError) as caught:
        load_funding(path)
    assert str(caught.value).startswith(f"{path}: line {line}: ") and problem in str(caught.value)


def test_empty_missing_and_header_only_files(tmp_path: Path) -> None:
    """An empty file, a header with no rows, a missing file and a bad market label are DataErrors."""
    with pytest.raises(DataError, match="empty file"):
        load_klines(write(tmp_path, "empty.csv", ""), "perp")
    with pytest.raises(DataError, match="no perp candles after the header"):
        load_klines(write(tmp_path, "head.csv", "timestamp,open,high,low,close\n"), "perp")
    with pytest.raises(DataError, match="no such file"):
        load_funding(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="market must be"):
        load_klines(tmp_path / "empty.csv", "future")


def test_fractional_second_iso_funding_is_kept(tmp_path: Path) -> None:
    """Normalized funding with fractional seconds keeps them, as recorded."""
    path = write(tmp_path, "f.csv", "funding_timestamp,funding_rate,symbol,source\n"
                                    "2024-01-01T00:00:00.006Z,1e-4,ETHUSDT,binance_futures\n")
    assert load_funding(path)[0].ts == utc(2024, 1, 1) + timedelta(milliseconds=6)


# ---- the folder loader ---------------------------------------------------------------------------

def test_folder_april_2025_loads_720_hours(binance: Path) -> None:
    """2025-04-01 → 05-01 on the whole real folder: 720 rows, closes from the files, 90 settlements.

    The spot hours are covered twice (Binance_ETHUSDT_1h.csv and the raw archive) with equal closes,
    which is allowed.
    """
    data = load_folder(binance, utc(2025, 4, 1), utc(2025, 5, 1))
    assert len(data.times) == 720 and data.source == str(binance)
    assert data.keys() == ("binance_eth_perp_price", "binance_eth_spot_price", "eth_usd_price")
    first = data.snapshot_at(utc(2025, 4, 1))
    assert first == {"binance_eth_spot_price": D("1831.94"), "eth_usd_price": D("1831.94"),
                     "binance_eth_perp_price": D("1831.2")}
    assert data.snapshot_at(utc(2025, 4, 1, 1))["eth_usd_price"] == D("1826.38")
    assert len(data.funding) == 90
    assert (data.funding[0].ts, data.funding[0].rate) == (utc(2025, 4, 1), D("-0.00000652"))
    assert (data.funding[-1].ts, data.funding[-1].rate) == (utc(2025, 4, 30, 16), D("-0.00006069"))


def test_folder_window_over_the_missing_perp_day_fails(binance: Path) -> None:
    """2025-04-01 → 06-01 crosses the perp file's missing 2025-05-06 00:00-22:00: named, not filled."""
    with pytest.raises(DataError) as caught:
        load_folder(binance, utc(2025, 4, 1), utc(2025, 6, 1))
    message = str(caught.value)
    assert "ETH perp has no candle at 2025-05-06T00:00:00+00:00" in message
    assert "binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv" in message
    assert "23 missing hour(s)" in message


def test_folder_august_2026(binance: Path) -> None:
    """2026-08-01 → 08-28: open/close spot, raw perp and raw funding (ms after the mark) line up."""
    data = load_folder(binance, utc(2026, 8, 1), utc(2026, 8, 28))
    assert len(data.times) == 27 * 24
    assert data.snapshot_at(utc(2026, 8, 1)) == {
        "binance_eth_spot_price": D("1864.7"), "eth_usd_price": D("1864.7"),
        "binance_eth_perp_price": D("1863.93")}
    assert len(data.funding) == 81
    assert data.funding[0].ts == utc(2026, 8, 1) + timedelta(milliseconds=1)
    assert data.funding[0].rate == D("0.00006744")


def test_folder_without_a_window_uses_the_common_span(binance: Path, tmp_path: Path) -> None:
    """With no start/end the window is where all series overlap (here the spot file's 27 days)."""
    for rel in ("spot/binance_ethusdt_1h_open_close_2026-08-01_2026-08-27.csv",
                "futures_um/ETHUSDT-klines-1h-2026-08.csv", "funding/ETHUSDT-fundingRate-2026-08.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(binance / rel)
    data = load_folder(tmp_path)
    assert (data.start, data.end, len(data.times)) == (utc(2026, 8, 1), utc(2026, 8, 27, 23), 648)
    assert data.digest == load_folder(binance, utc(2026, 8, 1), utc(2026, 8, 28)).digest
    assert data.source == str(tmp_path)


def test_folder_span_with_a_gap_inside_is_reported(binance: Path, tmp_path: Path) -> None:
    """Without a window, a gap inside the common span (the whole real folder) is an error too."""
    with pytest.raises(DataError, match=r"ETH perp has no candle at 2024-02-10T01:00:00\+00:00"):
        load_folder(binance)


SPOT = "date,open,high,low,close\n" + "".join(f"2025-01-01 {h:02d}:00,1,2,0.5,{100 + h}\n" for h in range(6))
PERP = "timestamp,open,high,low,close\n" + "".join(
    f"2025-01-01T{h:02d}:00:00Z,1,2,0.5,{101 + h}\n" for h in range(6))


def test_folder_overlap_with_different_values_names_both_files(tmp_path: Path) -> None:
    """Two spot files disagreeing on one hour's close: the hour and both files are named."""
    write(tmp_path, "spot/a.csv", SPOT)
    write(tmp_path, "spot/b.csv", SPOT.replace("2025-01-01 03:00,1,2,0.5,103", "2025-01-01 03:00,1,2,0.5,99"))
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path)
    message = str(caught.value)
    assert "overlap at 2025-01-01T03:00:00+00:00" in message
    assert "103 in spot/a.csv" in message and "99 in spot/b.csv" in message


def test_folder_equal_overlap_and_hints(tmp_path: Path) -> None:
    """Equal overlaps load; `perp` in a name marks a perpetual; BTC files make BTC keys; notes say
    what is absent; the venue argument names the keys."""
    write(tmp_path, "x/ETHUSDT_spot.csv", SPOT)
    write(tmp_path, "x/ETHUSDT_spot_copy.csv", SPOT.replace(",100\n", ",100.000\n"))
    write(tmp_path, "x/ETHUSDT_perp.csv", PERP)
    write(tmp_path, "x/BTCUSDT_spot.csv", SPOT)
    data = load_folder(tmp_path, venue="bybit")
    assert len(data.times) == 6
    assert data.rows[0] == {"bybit_btc_spot_price": D(100), "btc_usd_price": D(100),
                            "bybit_eth_perp_price": D(101), "bybit_eth_spot_price": D(100),
                            "eth_usd_price": D(100)}
    assert "no BTC perp candles in the folder" in data.notes
    assert "no ETH funding files in the folder" in data.notes


def test_folder_gap_inside_a_window(tmp_path: Path) -> None:
    """A missing hour inside [start, end) names the series, the file and the first missing hour."""
    write(tmp_path, "spot/s.csv", SPOT.replace("2025-01-01 02:00,1,2,0.5,102\n", ""))
    first_gap = r"ETH spot has no candle at 2025-01-01T02:00:00\+00:00 in spot/s.csv"
    with pytest.raises(DataError, match=first_gap):
        load_folder(tmp_path, utc(2025, 1, 1), utc(2025, 1, 1, 6))
    with pytest.raises(DataError, match=r"has no candle at 2025-01-01T06:00:00\+00:00"):
        load_folder(tmp_path, utc(2025, 1, 1, 3), utc(2025, 1, 1, 7))


def test_folder_funding_gap_is_reported(tmp_path: Path) -> None:
    """A settlement missing from an 8-hourly funding series is named by the interval it leaves."""
    write(tmp_path, "spot/s.csv", "date,open,high,low,close\n" + "".join(
        f"2025-01-{d:02d} {h:02d}:00,1,2,0.5,3\n" for d in (1, 2) for h in range(24)))
    write(tmp_path, "funding/f.csv", "funding_timestamp,funding_rate\n2025-01-01T00:00:00Z,0.0001\n"
                                     "2025-01-01T16:00:00Z,0.0001\n2025-01-02T00:00:00Z,0.0001\n")
    with pytest.raises(DataError, match=r"ETH funding has no settlement between 2025-01-01T00:00:00\+00:00 "
                                        r"and 2025-01-01T16:00:00\+00:00"):
        load_folder(tmp_path, utc(2025, 1, 1), utc(2025, 1, 2))


def test_folder_errors_for_missing_empty_and_non_hourly(tmp_path: Path) -> None:
    """A missing folder, a folder with nothing recognised and a non-hourly candle file are refused."""
    with pytest.raises(DataError, match="no such market-data folder"):
        load_folder(tmp_path / "absent")
    write(tmp_path, "empty/readme.txt", "nothing")
    with pytest.raises(DataError, match="no kline or funding files"):
        load_folder(tmp_path / "empty")
    write(tmp_path, "minute/spot/m.csv", "timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,2,0.5,1\n"
                                         "2025-01-01T00:01:00Z,1,2,0.5,1\n")
    with pytest.raises(DataError, match=r"candle at 2025-01-01T00:01:00\+00:00 is not on the hour"):
        load_folder(tmp_path / "minute")


def test_data_digest_of_folder_is_over_paths_and_file_hashes(tmp_path: Path) -> None:
    """The folder digest is sha256 of sorted `relative path<TAB>file sha256` lines of the CSV files."""
    write(tmp_path, "b/two.csv", "2")
    write(tmp_path, "a.csv", "1")
    write(tmp_path, "ignored.txt", "x")
    lines = "".join(f"{rel}\t{hashlib.sha256(body).hexdigest()}\n" for rel, body in
                    (("a.csv", b"1"), ("b/two.csv", b"2")))
    assert data_digest_of_folder(tmp_path) == hashlib.sha256(lines.encode()).hexdigest()
    (tmp_path / "a.csv").write_text("changed")
    assert data_digest_of_folder(tmp_path) != hashlib.sha256(lines.encode()).hexdigest()


def test_data_digest_of_the_real_folder_is_stable(binance: Path) -> None:
    """Two digests of the real folder agree (it is read-only)."""
    assert data_digest_of_folder(binance) == data_digest_of_folder(binance)


def test_folder_with_funding_only_has_settlements_and_no_rows(tmp_path: Path) -> None:
    """A folder holding only funding gives its settlements in the window and no price rows."""
    write(tmp_path, "f/ETHUSDT-fundingRate.csv", "calc_time,funding_interval_hours,last_funding_rate\n"
                                                 "1785542400001,8,0.00006744\n1785571200000,8,0.00002308\n")
    data = load_folder(tmp_path)
    assert data.times == () and [p.rate for p in data.funding] == [D("0.00006744"), D("0.00002308")]
    assert "no ETH spot candles in the folder" in data.notes
