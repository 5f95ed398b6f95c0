"""`data_provider` of the seed's interfaces: market data from config, loaded on first use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from executors.costs import ConfigError
from ledger.marketdata import DataError, FundingPoint, MarketData, generate, load_event_log, load_folder

EPSILON = timedelta(microseconds=1)


def describe(data_config: Mapping[str, Any]) -> str:
    if data_config.get("data_dir") or data_config.get("dir"):
        return str(data_config.get("data_dir") or data_config.get("dir"))
    if data_config.get("log"):
        return f"event log {data_config['log']}"
    if data_config.get("source") == "synthetic":
        return f"synthetic(seed={data_config.get('seed', 0)})"
    return "none"


class DataProvider:
    """Snapshots and funding from one `MarketData`, or nothing when no data is configured."""

    def __init__(self, data_config: Mapping[str, Any] | None = None, data: MarketData | None = None) -> None:
        self.config = dict(data_config or {})
        self._data = data
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
            return load_folder(folder, _time(start, "data.start"), _time(end, "data.end"))
        if c.get("log"):
            return load_event_log(str(c["log"]))
        if c.get("source") == "synthetic":
            first = _time(start, "data.start")
            if first is None:
                raise ConfigError("data.start", "synthetic data needs a start time")
            last = _time(end, "data.end") or first + timedelta(days=float(c.get("days", 90)))
            return generate(int(c.get("seed", 0)), first, last)
        raise DataError("data: no market data configured (give data.data_dir, data.log or data.source)")

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


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    from aggregates.errors import InstructionError
    from aggregates.values import to_utc

    try:
        return to_utc(value, field)
    except InstructionError as e:
        raise ConfigError(field, str(e).split(": ", 1)[1]) from None
