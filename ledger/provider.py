"""`data_provider` of the seed's interfaces: market data from config, loaded on first use.

`data.data_dir` may name the seed data folder (the repository's `data/`, which holds `seed/`): then the
series in `data.needs` (default: ETH spot, the ETH perps and funding at every venue with data for the
window, AAVE, staking and gas) are loaded over [`data.start`, `data.end`) — `data.start` defaulting to
the session start and `data.end` to `data.days` (default 7) later — with `data.fill` ("error" or
"previous") for gaps. Any other folder is read as Binance files (`load_folder`) over [`data.start`,
`data.end`), `data.end` defaulting to `data.days` after the start when given, else to the folder's end.
`data.days` is a positive number of days, at most MAX_DAYS.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from executors.costs import ConfigError
from ledger.config import redact_url
from ledger.marketdata import (
    DataError,
    FundingPoint,
    MarketData,
    availability,
    generate,
    load_event_log,
    load_folder,
    load_seed,
    seed_root,
)

EPSILON = timedelta(microseconds=1)
SEED_NEEDS = ("eth_spot", "eth_perp", "funding_eth", "aave", "staking", "gas")
SEED_DAYS = 7
MAX_DAYS = 36_500  # data.days above a hundred years is a typo (and past the calendar soon after)


def describe(data_config: Mapping[str, Any]) -> str:
    if data_config.get("data_dir") or data_config.get("dir"):
        return str(data_config.get("data_dir") or data_config.get("dir"))
    if data_config.get("log"):
        return f"event log {redact_url(str(data_config['log']))}"
    if data_config.get("source") == "synthetic":
        return f"synthetic(seed={data_config.get('seed', 0)})"
    return "none"


class DataProvider:
    """Snapshots and funding from one `MarketData`, or nothing when no data is configured."""

    def __init__(
        self, data_config: Mapping[str, Any] | None = None, data: MarketData | None = None,
        start: datetime | None = None,
    ) -> None:
        self.config = dict(data_config or {})
        self._data = data
        self.start = start  # the session's start: where a seed data window begins unless data.start says
        self.error: DataError | ConfigError | None = None

    @property
    def available(self) -> bool:
        """True once data is loaded; False when none is configured or it failed to load (see `error`)."""
        if self._data is not None:
            return True
        if not self.configured or self.error is not None:
            return False
        try:
            self._data = self._load()
        except (DataError, ConfigError) as e:
            self.error = e
            return False
        return True

    @classmethod
    def of(cls, data: MarketData) -> DataProvider:
        return cls({"source": "given"}, data)

    @property
    def configured(self) -> bool:
        return self._data is not None or describe(self.config) != "none"

    @property
    def data(self) -> MarketData:
        if self._data is None:
            if self.error is not None:
                raise self.error
            self._data = self._load()
        return self._data

    def _load(self) -> MarketData:
        c = self.config
        start, end = c.get("start"), c.get("end")
        if c.get("data_dir") or c.get("dir"):
            folder = Path(str(c.get("data_dir") or c.get("dir")))
            if not folder.is_dir():
                raise DataError(f"data.data_dir: no such folder: {folder}")
            root = seed_root(folder)
            if root is not None:
                return self._seed(root)
            first, last = _time(start, "data.start"), _time(end, "data.end")
            days = _days(c.get("days"))
            if last is not None or days is None:
                return load_folder(folder, first, last)
            if first is not None:
                return load_folder(folder, first, first + days)
            whole = load_folder(folder)  # the folder decides the start: `days` from there
            return whole.between(whole.start, whole.start + days)
        if c.get("log"):
            return load_event_log(str(c["log"]))
        if c.get("source") == "synthetic":
            first = _time(start, "data.start")
            if first is None:
                raise ConfigError("data.start", "synthetic data needs a start time")
            last = _time(end, "data.end") or first + (_days(c.get("days")) or timedelta(days=90))
            return generate(int(c.get("seed", 0)), first, last)
        raise DataError("data: no market data configured (give data.data_dir, data.log or data.source)")

    def _seed(self, root: Path) -> MarketData:
        c = self.config
        first = _time(c.get("start"), "data.start") or self.start
        if first is None:
            raise ConfigError("data.start", "the seed data folder needs a start time (or session.start)")
        last = _time(c.get("end"), "data.end") or first + (_days(c.get("days")) or timedelta(days=SEED_DAYS))
        needs = c.get("needs")
        if needs is None:  # perps and funding at the venues whose files serve the window
            have = availability(root, first, last, SEED_NEEDS).venues
            needs = [n for n in SEED_NEEDS if n not in have]
            needs += [f"{n}:{','.join(venues)}" for n, venues in have.items() if venues]
        if isinstance(needs, str) or not isinstance(needs, list | tuple):
            raise ConfigError("data.needs", f"expected a list of series names, got {needs!r}")
        return load_seed(root, first, last, [str(n) for n in needs], fill=str(c.get("fill", "error")))

    def snapshot(self, ts: datetime) -> dict[str, Decimal]:
        """The row at or before `ts` (raises the load error when the configured data is missing)."""
        if not self.configured:
            return {}
        return self.data.snapshot_at(ts)

    def funding(self, after: datetime | None, upto: datetime) -> tuple[FundingPoint, ...]:
        """Funding points after < ts <= upto; none when no data is loaded (explicit market data only)."""
        if not self.available:
            return ()
        data = self.data
        if not data.funding:
            return ()
        start = after if after is not None else data.funding[0].ts - EPSILON
        return data.funding_between(start, upto)


def _days(value: Any) -> timedelta | None:
    """`data.days` (a number, or its ASCII text) as a timedelta, None when absent; ConfigError unless it
    is a finite number above 0 and at most MAX_DAYS."""
    if value is None:
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, str) and not value.isascii()):
            raise ValueError
        days = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (ArithmeticError, ValueError, TypeError):
        raise ConfigError("data.days", f"expected a number of days, got {value!r}") from None
    if not days.is_finite() or not 0 < days <= MAX_DAYS:
        raise ConfigError("data.days", f"must be above 0 and at most {MAX_DAYS}, got {value!r}")
    return timedelta(days=float(days))


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    from aggregates.errors import InstructionError
    from aggregates.values import to_utc

    try:
        return to_utc(value, field)
    except InstructionError as e:
        raise ConfigError(field, str(e).split(": ", 1)[1]) from None
