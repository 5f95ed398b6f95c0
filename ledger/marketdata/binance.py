"""Parsers for Binance public-archive CSV files (klines and funding), raw and normalised, to Decimal and UTC.

Formats are recognised by their first line; see `KLINE_FORMATS` and `FUNDING_FORMATS`.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import compress, count
from operator import lt
from pathlib import Path

from aggregates.values import BALANCE, FUNDING_RATE, PRICE, Bound
from ledger.marketdata.bounds import OutOfBounds, read_all
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
# The header of each (kind, format): its columns, and whether more columns may follow them.
HEADERS = {
    ("kline", "raw"): (RAW_KLINE, False),
    ("kline", "normalized"): (("timestamp", "open", "high", "low", "close"), True),
    ("kline", "date"): (("date", "open", "high", "low", "close"), False),
    ("kline", "open_close"): (("open_time_ms", "iso_utc", "open", "close"), False),
    ("funding", "raw"): (("calc_time", "funding_interval_hours", "last_funding_rate"), False),
    ("funding", "normalized"): (("funding_timestamp", "funding_rate"), True),
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


class _Columns:
    """Some columns of a file's rows, kept as text while the rows are read and then read a whole column at
    a time against each column's bound (`Bound.read_all`)."""

    def __init__(self, reader: _Reader, columns: Mapping[str, tuple[int, Bound]]) -> None:
        self.reader = reader
        self.names = list(columns)
        self.bounds = [bound for _position, bound in columns.values()]
        self.texts: list[list[str]] = [[] for _ in columns]  # per column: strings, nothing gc tracks
        self.picks = [(texts.append, position)
                      for texts, (position, _bound) in zip(self.texts, columns.values(), strict=True)]
        self.lines: list[int] = []

    def add(self, row: list[str]) -> None:
        for append, position in self.picks:
            append(row[position])
        self.lines.append(self.reader.line)

    def fail(self, index: int, message: str) -> DataError:
        """An error naming the line of the `index`th row."""
        self.reader.line = self.lines[index]
        return self.reader.fail(message)

    def read(self) -> dict[str, list[Decimal]]:
        """Each column as Decimals inside its bound; the error names the first bad cell (earliest line,
        then column)."""
        out: dict[str, list[Decimal]] = {}
        errors: list[tuple[int, int, str]] = []
        for order, (name, bound, column) in enumerate(zip(self.names, self.bounds, self.texts, strict=True)):
            try:
                out[name] = read_all(bound, column)
            except OutOfBounds as e:
                errors.append((e.index, order, f"{name}: {e}"))
        if errors:
            index, _order, message = min(errors)
            raise self.fail(index, message)
        return out


def _header(row: list[str]) -> tuple[str, ...]:
    return tuple(cell.strip().lower() for cell in row)


def _format(head: tuple[str, ...], kind: str) -> str | None:
    for (of, name), (columns, more) in HEADERS.items():
        if of == kind and (head == columns or (more and head[: len(columns)] == columns)):
            return name
    return None


def kline_format(first: list[str]) -> str | None:
    """The kline format named by a file's first row ("raw", "normalized", "date", "open_close") or None."""
    head = _header(first)
    if head[0].isascii() and head[0].isdigit():
        return "raw"  # a headerless raw archive
    return _format(head, "kline")


def header_problem(first: list[str], kinds: tuple[str, ...] = ("kline", "funding")) -> str:
    """Why `first` is no header of `kinds`, naming the first missing column of the closest known header."""
    head = _header(first)

    def closeness(item: tuple[tuple[str, str], tuple[tuple[str, ...], bool]]) -> tuple[bool, Fraction]:
        columns = item[1][0]  # the time column comes first and tells the formats apart best
        return head[:1] == columns[:1], Fraction(len(set(columns) & set(head)), len(columns))

    (kind, name), (columns, more) = max(((k, v) for k, v in HEADERS.items() if k[0] in kinds), key=closeness)
    shown = ",".join(columns) + (",…" if more else "")
    missing = [c for c in columns if c not in head]
    if len(missing) == len(columns):
        described = {"kline": KLINE_FORMATS, "funding": FUNDING_FORMATS}
        known = "; ".join(f"{of} {text}" for of in kinds for text in described[of].values())
        return f"unknown {' or '.join(kinds)} header {','.join(first)!r} (known: {known})"
    if missing:
        return f"{missing[0]}: column missing (a {name} {kind} header is {shown}), got {','.join(first)!r}"
    return f"a {name} {kind} header is {shown} in this order, got {','.join(first)!r}"


def _kline_format(first: list[str], reader: _Reader) -> tuple[str, bool, dict[str, int]]:
    """(format, has header, column positions) from the first row."""
    kind = kline_format(first)
    if kind is None:
        raise reader.fail(header_problem(first, ("kline",)))
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
    bounds: dict[str, tuple[int, Bound]] = {
        name: (col[name], PRICE) for name in ("open", "high", "low", "close") if name in col}
    if "volume" in col:
        bounds["volume"] = (col["volume"], BALANCE)
    cells = _Columns(reader, bounds)
    times: list[datetime] = []
    for row in body:
        reader.width(row, width)
        ts = _kline_time(kind, row, col, reader)
        if times and ts <= times[-1]:
            raise reader.fail(f"time {ts.isoformat()} is not after {times[-1].isoformat()}")
        times.append(ts)
        cells.add(row)
    if not times:
        raise DataError(f"{path}: no {market} candles after the header")
    v = cells.read()
    none: list[Decimal | None] = [None] * len(times)
    if "high" in v:
        for i in compress(count(), map(lt, v["high"], v["low"])):  # the first candle with high < low
            raise cells.fail(i, f"high: {v['high'][i]} is below low {v['low'][i]}")
    return list(map(Kline, times, v["open"], v.get("high", none), v.get("low", none), v["close"],
                    v.get("volume", none)))


def _chain(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _kline_time(kind: str, row: list[str], col: dict[str, int], r: _Reader) -> datetime:
    if kind == "open_close":
        ts = r.epoch(row[col["open_time_ms"]], "open_time_ms", unit="ms")
        stated = r.iso(row[col["iso_utc"]], "iso_utc")
        if stated != ts:
            raise r.fail(f"open_time_ms {ts.isoformat()} disagrees with iso_utc {stated.isoformat()}")
        return ts
    if kind == "raw":
        return r.epoch(row[col["open_time"]], "open_time")
    name = "timestamp" if kind == "normalized" else "date"
    return r.iso(row[col[name]], name)


def funding_format(first: list[str]) -> str | None:
    """"raw" or "normalized" when `first` is a funding header, else None."""
    return _format(_header(first), "funding")


def load_funding(path: str | Path, venue: str = "binance", base: str = "ETH") -> list[FundingPoint]:
    """Funding settlements of one file at their recorded times (ms kept), ascending."""
    reader = _Reader(path)
    rows = reader.rows()
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (no funding rates)")
    kind = funding_format(first)
    if kind is None:
        raise reader.fail(header_problem(first, ("funding",)))
    width = len(first)
    name, position = ("last_funding_rate", 2) if kind == "raw" else ("funding_rate", 1)
    cells = _Columns(reader, {name: (position, FUNDING_RATE)})
    times: list[datetime] = []
    for row in rows:
        reader.width(row, width)
        if kind == "raw":
            ts = reader.epoch(row[0], "calc_time", unit="ms")
            if not (row[1].strip().isascii() and row[1].strip().isdigit()):
                raise reader.fail(f"funding_interval_hours: expected whole hours, got {row[1]!r}")
        else:
            ts = reader.iso(row[0], "funding_timestamp")
        if times and ts <= times[-1]:
            raise reader.fail(f"time {ts.isoformat()} is not after {times[-1].isoformat()}")
        times.append(ts)
        cells.add(row)
    if not times:
        raise DataError(f"{path}: no funding rates after the header")
    rates = cells.read()[name]
    return [FundingPoint(ts, venue, base.upper(), rate) for ts, rate in zip(times, rates, strict=True)]


def sniff(path: str | Path) -> list[str] | None:
    """The first non-empty row of a CSV file, or None when it has none."""
    return _first(_Reader(path))


def header_error(path: str | Path) -> DataError:
    """The error for a file whose first row is neither a kline nor a funding header (file, line, column)."""
    reader = _Reader(path)
    return reader.fail(header_problem(_first(reader) or [""]))


def _first(reader: _Reader) -> list[str] | None:
    rows = reader.rows()
    try:
        return next(rows, None)
    finally:
        rows.close()  # release the file now, not when the generator is collected
