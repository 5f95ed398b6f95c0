"""Hourly `MarketData` from a folder of Binance kline and funding files; gaps and conflicting overlaps fail.

A file's role comes from its first line (funding or kline header) and, for klines, from its folder
(`spot/`, `futures*/`, `*perp*/`, `um/`) or else its name (`perp`, `futures`, `klines` mean perpetual);
the base asset from its name (`ETHUSDT`, `BTCUSDT`; ETH when none).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path, PurePosixPath

from ledger.marketdata.binance import (
    funding_format,
    header_error,
    kline_format,
    load_funding,
    load_klines,
    sniff,
)
from ledger.marketdata.frame import DataError, FundingPoint, MarketData

HOUR = timedelta(hours=1)
FUNDING_EVERY = timedelta(hours=8)
# A settlement may be recorded a few ms after its 8-hour mark; more than a minute late is a missing one.
FUNDING_SLACK = timedelta(minutes=1)
_BASE = re.compile(r"(ETH|BTC)[-_]?USD", re.IGNORECASE)


@dataclass
class _Series:
    """One hourly price series (market, base) merged from every file that provides it."""

    values: dict[datetime, tuple[Decimal, str]] = field(default_factory=dict)
    spans: list[tuple[datetime, datetime, str]] = field(default_factory=list)  # (first, last, file)


def csv_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every visible *.csv file under `root`, sorted by relative path."""
    found = []
    for p in root.rglob("*"):
        rel = PurePosixPath(p.relative_to(root).as_posix())
        if p.suffix.lower() == ".csv" and p.is_file() and not any(s.startswith(".") for s in rel.parts):
            found.append((str(rel), p))
    return sorted(found)


def _folder(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such market-data folder")
    return root


def data_digest_of_folder(path: str | Path) -> str:
    """sha256 over the sorted (relative path, file sha256) of every CSV file, for a session record."""
    h = hashlib.sha256()
    for rel, p in csv_files(_folder(path)):
        h.update(f"{rel}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _market_of(rel: str) -> str:
    parts = [s.lower() for s in PurePosixPath(rel).parts]
    for d in reversed(parts[:-1]):
        if "futures" in d or "perp" in d or d in ("um", "swap"):
            return "perp"
        if "spot" in d:
            return "spot"
    return "perp" if any(w in parts[-1] for w in ("perp", "futures", "klines")) else "spot"


def _base_of(rel: str) -> str:
    match = _BASE.search(PurePosixPath(rel).name)
    return match.group(1).upper() if match else "ETH"


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(ts: datetime) -> datetime:
    floor = _hour(ts)
    return floor if floor == ts else floor + HOUR


def load_folder(
    path: str | Path, start: datetime | None = None, end: datetime | None = None, venue: str = "binance",
) -> MarketData:
    """Hourly rows (candle closes stamped at the candle's open hour) and funding within [start, end).

    With start or end None the window is where every series in the folder overlaps.
    """
    root = _folder(path)
    series: dict[tuple[str, str], _Series] = {}
    funding: dict[tuple[str, datetime], tuple[FundingPoint, str]] = {}
    notes: list[str] = []
    for rel, p in csv_files(root):
        first = sniff(p)
        if first is None:
            notes.append(f"skipped {rel}: empty")
        elif funding_format(first) is not None:
            _merge_funding(funding, load_funding(p, venue, _base_of(rel)), rel, root)
        elif kline_format(first) is not None:
            market = _market_of(rel)
            s = series.setdefault((market, _base_of(rel)), _Series())
            _merge_klines(s, p, rel, market, root)
        else:  # a CSV that is neither is refused: a damaged header must not silently drop a series
            raise header_error(p)
    if not series and not funding:
        raise DataError(f"{root}: no kline or funding files found")
    lo, hi = _window(root, series, funding, start, end)
    times = []
    hour = _ceil_hour(lo)
    while series and hour < hi:  # a funding-only folder has no rows, only settlements
        times.append(hour)
        hour += HOUR
    if series and not times:
        raise DataError(f"{root}: window {lo.isoformat()} .. {hi.isoformat()} holds no whole hour")
    for key in sorted(series):
        _require_hours(root, key, series[key], times)
    points = sorted((fp for fp, _rel in funding.values() if lo <= fp.ts < hi),
                    key=lambda fp: (fp.ts, fp.venue, fp.base))
    for base in sorted({b for b, _ts in funding}):
        _require_funding(root, base, [fp for fp in points if fp.base == base], lo, hi)
    rows = [_row(series, venue, t) for t in times]
    bases = sorted({b for _m, b in series} | {b for b, _ts in funding})
    for base in bases:
        for market in ("spot", "perp"):
            if (market, base) not in series:
                notes.append(f"no {base} {market} candles in the folder")
        if not any(b == base for b, _ts in funding):
            notes.append(f"no {base} funding files in the folder")
    return MarketData.build(str(root), times, rows, points, notes)


def _row(series: dict[tuple[str, str], _Series], venue: str, t: datetime) -> dict[str, Decimal]:
    row: dict[str, Decimal] = {}
    for (market, base), s in sorted(series.items()):
        value = s.values[t][0]
        row[f"{venue}_{base.lower()}_{market}_price"] = value
        if market == "spot":
            row[f"{base.lower()}_usd_price"] = value
    return row


def _merge_klines(s: _Series, p: Path, rel: str, market: str, root: Path) -> None:
    klines = load_klines(p, market)
    for k in klines:
        if k.open_time.minute or k.open_time.second or k.open_time.microsecond:
            raise DataError(f"{root / rel}: candle at {k.open_time.isoformat()} is not on the hour "
                            "(the folder loader builds hourly rows from 1h candles)")
        seen = s.values.get(k.open_time)
        if seen is None:
            s.values[k.open_time] = (k.close, rel)
        elif seen[0] != k.close:
            raise DataError(f"{root}: overlap at {k.open_time.isoformat()}: {market} close {seen[0]} in "
                            f"{seen[1]} but {k.close} in {rel}")
    s.spans.append((klines[0].open_time, klines[-1].open_time, rel))


def _merge_funding(
    into: dict[tuple[str, datetime], tuple[FundingPoint, str]], points: list[FundingPoint], rel: str,
    root: Path,
) -> None:
    for fp in points:
        key = (fp.base, fp.ts.replace(second=0, microsecond=0))
        seen = into.get(key)
        if seen is None:
            into[key] = (fp, rel)
        elif seen[0].rate != fp.rate:
            raise DataError(f"{root}: overlap at {key[1].isoformat()}: {fp.base} funding {seen[0].rate} in "
                            f"{seen[1]} but {fp.rate} in {rel}")


def _window(
    root: Path, series: dict[tuple[str, str], _Series],
    funding: dict[tuple[str, datetime], tuple[FundingPoint, str]], start: datetime | None,
    end: datetime | None,
) -> tuple[datetime, datetime]:
    for name, ts in (("start", start), ("end", end)):
        if ts is not None and ts.tzinfo is None:
            raise DataError(f"{root}: {name} must be an aware UTC datetime, got {ts!r}")
    spans = [(min(s.values), max(s.values) + HOUR) for s in series.values()]
    for base in sorted({b for b, _ts in funding}):
        stamps = [fp.ts for (b, _ts), (fp, _rel) in funding.items() if b == base]
        spans.append((_hour(min(stamps)), _hour(max(stamps)) + FUNDING_EVERY))
    lo = start.astimezone(UTC) if start is not None else max(a for a, _b in spans)
    hi = end.astimezone(UTC) if end is not None else min(b for _a, b in spans)
    if lo >= hi:
        raise DataError(f"{root}: the series in the folder do not overlap in a common window "
                        f"(latest start {lo.isoformat()}, earliest end {hi.isoformat()})")
    return lo, hi


def _require_hours(root: Path, key: tuple[str, str], s: _Series, times: list[datetime]) -> None:
    missing = [t for t in times if t not in s.values]
    if not missing:
        return
    gap = missing[0]
    near = [rel for a, b, rel in s.spans if a <= gap <= b] or [rel for _a, _b, rel in s.spans]
    market, base = key
    raise DataError(f"{root}: {base} {market} has no candle at {gap.isoformat()} in {', '.join(near)} "
                    f"({len(missing)} missing hour(s) in {times[0].isoformat()} .. {times[-1].isoformat()})")


def _require_funding(root: Path, base: str, points: list[FundingPoint], lo: datetime, hi: datetime) -> None:
    """Settlements at most 8 h (and a minute) apart, counting from the window start up to its end."""
    stamps = [lo, *(fp.ts for fp in points), hi]
    for a, b in pairwise(stamps):
        if b - a > FUNDING_EVERY + FUNDING_SLACK:
            raise DataError(f"{root}: {base} funding has no settlement between {a.isoformat()} and "
                            f"{b.isoformat()} (expected one every 8 h)")
