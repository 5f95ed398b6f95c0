"""Parsers for Binance public-archive CSV files (klines and funding), raw and normalised, to Decimal and UTC.

Formats are recognised by their first line; see `KLINE_FORMATS` and `FUNDING_FORMATS`.
"""

from __future__ import annotations

import csv
import decimal
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ledger.marketdata.frame import DataError, FundingPoint

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_FROM = 10**14  # epoch ms reach 1e14 only in the year 5138; spot archives from 2025 use µs
RAW_KLINE = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
             "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")
KLINE_FORMATS = {
    "raw": "12 columns open_time(ms or µs),open,high,low,close,volume,close_time,...; header optional",
    "normalized": "timestamp(ISO Z),open,high,low,close[,volume,...]",
    "date": "date(YYYY-MM-DD HH:MM),open,high,low,close",
    "open_close": "open_time_ms,iso_utc,open,close",
}
FUNDING_FORMATS = {
    "raw": "calc_time(ms),funding_interval_hours,last_funding_rate",
    "normalized": "funding_timestamp(ISO),funding_rate[,symbol,source]",
}
MARKETS = ("spot", "perp")


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle; `high`/`low` are None for open/close-only files, `volume` when the file has none."""

    open_time: datetime
    open: Decimal
    high: Decimal | None
    low: Decimal | None
    close: Decimal
    volume: Decimal | None = None


class _Reader:
    """Numbered CSV rows of one file, with errors that name the file and line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.line = 0

    def fail(self, message: str) -> DataError:
        return DataError(f"{self.path}: line {self.line}: {message}")

    def rows(self) -> Generator[list[str], None, None]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as f:
                for self.line, row in enumerate(csv.reader(f), start=1):
                    if len(row) > 1 or (row and row[0].strip()):
                        yield row
        except FileNotFoundError:
            raise DataError(f"{self.path}: no such file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{self.path}: line {self.line + 1}: cannot read: {e}") from None

    def number(self, text: str, column: str) -> Decimal:
        try:
            value = Decimal(text)
        except decimal.InvalidOperation:
            raise self.fail(f"{column}: expected a number, got {text!r}") from None
        if not value.is_finite():
            raise self.fail(f"{column}: expected a finite number, got {text!r}")
        return value

    def epoch(self, text: str, column: str, unit: str = "auto") -> datetime:
        text = text.strip()
        if not (text.isascii() and text.isdigit()):
            raise self.fail(f"{column}: expected an epoch timestamp, got {text!r}")
        value = int(text)
        micros = unit == "us" or (unit == "auto" and value >= MICROS_FROM)
        try:
            return EPOCH + (timedelta(microseconds=value) if micros else timedelta(milliseconds=value))
        except OverflowError:
            raise self.fail(f"{column}: timestamp {text!r} is out of range") from None

    def iso(self, text: str, column: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise self.fail(f"{column}: expected an ISO UTC time, got {text!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def width(self, row: list[str], n: int) -> None:
        if len(row) != n:
            raise self.fail(f"expected {n} columns, got {len(row)}")


def _header(row: list[str]) -> tuple[str, ...]:
    return tuple(cell.strip().lower() for cell in row)


def kline_format(first: list[str]) -> str | None:
    """The kline format named by a file's first row ("raw", "normalized", "date", "open_close") or None."""
    head = _header(first)
    if (head[0].isascii() and head[0].isdigit()) or head == RAW_KLINE:
        return "raw"
    if head[:5] == ("timestamp", "open", "high", "low", "close"):
        return "normalized"
    if head == ("date", "open", "high", "low", "close"):
        return "date"
    if head == ("open_time_ms", "iso_utc", "open", "close"):
        return "open_close"
    return None


def _kline_format(first: list[str], reader: _Reader) -> tuple[str, bool, dict[str, int]]:
    """(format, has header, column positions) from the first row."""
    kind = kline_format(first)
    if kind is None:
        known = "; ".join(KLINE_FORMATS.values())
        raise reader.fail(f"unknown kline header {','.join(first)!r} (known: {known})")
    if kind == "raw":
        headerless = _header(first) != RAW_KLINE
        if headerless:
            reader.width(first, len(RAW_KLINE))
        return "raw", not headerless, {name: i for i, name in enumerate(RAW_KLINE)}
    return kind, True, {name: i for i, name in enumerate(_header(first))}


def load_klines(path: str | Path, market: str) -> list[Kline]:
    """Candles of one file in ascending time; `market` ("spot" or "perp") is the caller's label."""
    if market not in MARKETS:
        raise DataError(f"{path}: market must be 'spot' or 'perp', got {market!r}")
    reader = _Reader(path)
    rows = reader.rows()
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (no {market} candles)")
    kind, has_header, col = _kline_format(first, reader)
    body = rows if has_header else _chain(first, rows)
    width = len(first)
    out: list[Kline] = []
    for row in body:
        reader.width(row, width)
        out.append(_kline(kind, row, col, reader))
        if len(out) > 1 and out[-1].open_time <= out[-2].open_time:
            raise reader.fail(f"time {out[-1].open_time.isoformat()} is not after "
                              f"{out[-2].open_time.isoformat()}")
    if not out:
        raise DataError(f"{path}: no {market} candles after the header")
    return out


def _chain(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _kline(kind: str, row: list[str], col: dict[str, int], r: _Reader) -> Kline:
    if kind == "open_close":
        ts = r.epoch(row[col["open_time_ms"]], "open_time_ms", unit="ms")
        stated = r.iso(row[col["iso_utc"]], "iso_utc")
        if stated != ts:
            raise r.fail(f"open_time_ms {ts.isoformat()} disagrees with iso_utc {stated.isoformat()}")
        return Kline(ts, r.number(row[col["open"]], "open"), None, None, r.number(row[col["close"]], "close"))
    if kind == "raw":
        ts = r.epoch(row[col["open_time"]], "open_time")
    elif kind == "normalized":
        ts = r.iso(row[col["timestamp"]], "timestamp")
    else:
        ts = r.iso(row[col["date"]], "date")
    volume = r.number(row[col["volume"]], "volume") if "volume" in col else None
    return Kline(ts, r.number(row[col["open"]], "open"), r.number(row[col["high"]], "high"),
                 r.number(row[col["low"]], "low"), r.number(row[col["close"]], "close"), volume)


def funding_format(first: list[str]) -> str | None:
    """"raw" or "normalized" when `first` is a funding header, else None."""
    head = _header(first)
    if head == ("calc_time", "funding_interval_hours", "last_funding_rate"):
        return "raw"
    if head[:2] == ("funding_timestamp", "funding_rate"):
        return "normalized"
    return None


def load_funding(path: str | Path, venue: str = "binance", base: str = "ETH") -> list[FundingPoint]:
    """Funding settlements of one file at their recorded times (ms kept), ascending."""
    reader = _Reader(path)
    rows = reader.rows()
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (no funding rates)")
    kind = funding_format(first)
    if kind is None:
        raise reader.fail(f"unknown funding header {','.join(first)!r} "
                          f"(known: {'; '.join(FUNDING_FORMATS.values())})")
    width = len(first)
    out: list[FundingPoint] = []
    for row in rows:
        reader.width(row, width)
        if kind == "raw":
            ts = reader.epoch(row[0], "calc_time", unit="ms")
            if not (row[1].strip().isascii() and row[1].strip().isdigit()):
                raise reader.fail(f"funding_interval_hours: expected whole hours, got {row[1]!r}")
            rate = reader.number(row[2], "last_funding_rate")
        else:
            ts, rate = reader.iso(row[0], "funding_timestamp"), reader.number(row[1], "funding_rate")
        if out and ts <= out[-1].ts:
            raise reader.fail(f"time {ts.isoformat()} is not after {out[-1].ts.isoformat()}")
        out.append(FundingPoint(ts, venue, base.upper(), rate))
    if not out:
        raise DataError(f"{path}: no funding rates after the header")
    return out


def sniff(path: str | Path) -> list[str] | None:
    """The first non-empty row of a CSV file, or None when it has none."""
    rows = _Reader(path).rows()
    try:
        return next(rows, None)
    finally:
        rows.close()  # release the file now, not when the generator is collected
