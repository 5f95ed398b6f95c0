"""The market-data container every consumer reads (`MarketData`), funding points and the content digest."""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from aggregates.errors import DataError
from aggregates.values import MONEY

DIGEST_VERSION = "market-data/1"

__all__ = ["DIGEST_VERSION", "DataError", "FundingPoint", "MarketData", "canonical_decimal",
           "canonical_digest", "canonical_time"]


@dataclass(frozen=True, slots=True)
class FundingPoint:
    """One funding settlement as the venue recorded it; positive `rate` means longs pay shorts."""

    ts: datetime
    venue: str
    base: str
    rate: Decimal


def _funding_key(point: FundingPoint) -> tuple[datetime, str, str]:
    return point.ts, point.venue, point.base


def canonical_decimal(value: Decimal) -> str:
    """One text per number: `1831.94000000` and `1831.94` are the same content."""
    if not value.is_finite():
        raise DataError(f"market data: non-finite value {value!r}")
    if value.is_zero():
        return "0"
    return format(value.normalize(MONEY), "f")


def canonical_time(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_digest(
    times: Sequence[datetime], rows: Sequence[Mapping[str, Decimal]], funding: Iterable[FundingPoint],
) -> str:
    """sha256 over a canonical text form: ISO times, normalised decimals, sorted keys, then funding."""
    h = hashlib.sha256(f"{DIGEST_VERSION}\n".encode())
    for ts, row in zip(times, rows, strict=True):
        body = ";".join(f"{k}={canonical_decimal(row[k])}" for k in sorted(row))
        h.update(f"R|{canonical_time(ts)}|{body}\n".encode())
    for p in sorted(funding, key=_funding_key):
        h.update(f"F|{canonical_time(p.ts)}|{p.venue}|{p.base}|{canonical_decimal(p.rate)}\n".encode())
    return h.hexdigest()


def _aware(ts: datetime, what: str) -> datetime:
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise DataError(f"{what}: expected an aware UTC datetime, got {ts!r}")
    return ts


@dataclass(frozen=True)
class MarketData:
    """Market snapshots at strictly ascending times, plus funding settlements, with a content digest.

    Build it with `MarketData.build(...)`, which sorts funding and computes `digest`.
    """

    source: str
    digest: str
    times: tuple[datetime, ...]
    rows: tuple[dict[str, Decimal], ...]
    funding: tuple[FundingPoint, ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.times) != len(self.rows):
            raise DataError(f"{self.source}: {len(self.times)} times but {len(self.rows)} rows")
        previous: datetime | None = None
        for ts in self.times:
            _aware(ts, self.source)
            if previous is not None and ts <= previous:
                raise DataError(f"{self.source}: time {ts.isoformat()} is not after {previous.isoformat()}")
            previous = ts
        keys = [_funding_key(p) for p in self.funding]
        if keys != sorted(keys):
            raise DataError(f"{self.source}: funding points are not sorted by (ts, venue, base)")

    @classmethod
    def build(
        cls, source: str, times: Sequence[datetime], rows: Sequence[Mapping[str, Decimal]],
        funding: Iterable[FundingPoint] = (), notes: Sequence[str] = (),
    ) -> MarketData:
        """The one constructor consumers need: copies rows, sorts funding, computes the digest."""
        points = tuple(sorted(funding, key=_funding_key))
        frozen_rows = tuple(dict(r) for r in rows)
        return cls(source=source, digest=canonical_digest(times, frozen_rows, points),
                   times=tuple(times), rows=frozen_rows, funding=points, notes=tuple(notes))

    # ---- lookups -------------------------------------------------------------------------------

    def index_at(self, ts: datetime) -> int:
        """Index of the row at or before `ts`."""
        _aware(ts, f"{self.source}: lookup")
        i = bisect_right(self.times, ts) - 1
        if i < 0:
            first = self.times[0].isoformat() if self.times else "none (no rows)"
            raise DataError(f"{self.source}: no market data at or before {ts.isoformat()} "
                            f"(first row {first})")
        return i

    def snapshot_at(self, ts: datetime) -> dict[str, Decimal]:
        """A copy of the row at or before `ts`."""
        return dict(self.rows[self.index_at(ts)])

    def between(self, start: datetime, end: datetime) -> MarketData:
        """Rows and funding with start <= t < end; the digest is recomputed for the slice."""
        _aware(start, f"{self.source}: between start")
        _aware(end, f"{self.source}: between end")
        lo, hi = bisect_left(self.times, start), bisect_left(self.times, end)
        flo = bisect_left(self.funding, start, key=lambda p: p.ts)
        fhi = bisect_left(self.funding, end, key=lambda p: p.ts)
        return MarketData.build(self.source, self.times[lo:hi], self.rows[lo:hi],
                                self.funding[flo:fhi], self.notes)

    def funding_between(self, after: datetime, upto: datetime) -> tuple[FundingPoint, ...]:
        """Funding settlements with after < ts <= upto, in (ts, venue, base) order."""
        lo = bisect_right(self.funding, _aware(after, self.source), key=lambda p: p.ts)
        hi = bisect_right(self.funding, _aware(upto, self.source), key=lambda p: p.ts)
        return self.funding[lo:hi]

    @property
    def start(self) -> datetime:
        if not self.times:
            raise DataError(f"{self.source}: no rows")
        return self.times[0]

    @property
    def end(self) -> datetime:
        """The last row's time (inclusive)."""
        if not self.times:
            raise DataError(f"{self.source}: no rows")
        return self.times[-1]

    def keys(self) -> tuple[str, ...]:
        """Sorted union of the row keys."""
        seen: set[str] = set()
        for row in self.rows:
            seen.update(row)
        return tuple(sorted(seen))

    def __len__(self) -> int:
        return len(self.times)
