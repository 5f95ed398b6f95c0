"""`ledger backtest` as a library call: build the config, run a strategy over market data through the
engine, and collect what the report needs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aggregates.errors import LedgerError
from ledger.engine import EventDrivenStrategyEngine
from ledger.marketdata import (
    DataError,
    MarketData,
    availability,
    availability_of,
    gas_units,
    generate,
    load_event_log,
    load_execution_costs,
    load_folder,
    load_seed,
    seed_root,
)
from ledger.strategies import Strategy, StrategyView
from projections.reports import equity_series

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_DAYS = 90
MAX_ROUNDS = 8  # decide() is asked again after its instructions ran, at most this often per step
MAX_DAYS = "LEDGER_MAX_DAYS"  # caps every backtest window at this many days (quick tries, the README test)
Progress = Callable[[int, int], None]


@dataclass
class BacktestResult:
    summary: dict[str, Any]
    digest: str
    equity: list[tuple[str, Decimal]]
    exposure: list[tuple[str, dict[str, Decimal]]]
    health: list[tuple[str, dict[str, Decimal]]]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, tables merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


MAX_DAYS_LIMIT = 36_500  # a hundred years: any larger cap caps nothing


def max_days() -> int | None:
    """The cap `LEDGER_MAX_DAYS` puts on every backtest window, or None when it is unset or empty."""
    text = os.environ.get(MAX_DAYS, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_DAYS_LIMIT:
        raise DataError(f"{MAX_DAYS}: expected a whole number of days from 1 to {MAX_DAYS_LIMIT}, "
                        f"got {text!r}")
    return int(text)


def _capped(first: datetime, last: datetime, cap: int | None) -> tuple[datetime, str | None]:
    """`last`, or `first` + `cap` days (LEDGER_MAX_DAYS) when that is earlier, with the note that says so."""
    if cap is None or last <= first + timedelta(days=cap):
        return last, None
    short = first + timedelta(days=cap)
    return short, (f"{MAX_DAYS}={cap}: the window was shortened to {first.isoformat()} → {short.isoformat()} "
                   f"(asked for → {last.isoformat()})")


def window(start: datetime | None, end: datetime | None, days: int | None) -> datetime | None:
    """The last time a run includes: `end`, or `start` + `days`, capped by LEDGER_MAX_DAYS; None when the
    data decides (no start, or neither end nor days)."""
    last = end if end is not None else (start + timedelta(days=days) if start and days else None)
    if start is None or last is None:
        return last
    return _capped(start, last, max_days())[0]


def _noted(market: MarketData, note: str | None) -> MarketData:
    return market if note is None else dataclasses.replace(market, notes=(*market.notes, note))


def load_data(
    *,
    data_dir: Path | None,
    seed: int,
    start: datetime | None,
    end: datetime | None,
    days: int | None,
    needs: Sequence[str] = (),
    fill: str = "error",
    capped: bool = True,
) -> MarketData:
    """Market data for a run, `end` included (and cut to LEDGER_MAX_DAYS unless `capped` is False, as
    for a rerun, which repeats the window the log recorded): the seed data folder (the series `needs`
    names), a folder of Binance files, a recorded event log, or else the seeded synthetic market (90
    days from 2024-01-01 unless told otherwise)."""
    step = timedelta(hours=1)
    asked = end if end is not None else (start + timedelta(days=days) if start and days else None)
    cap = max_days() if capped else None
    last: datetime | None = asked
    note: str | None = None
    if start is not None and asked is not None:
        last, note = _capped(start, asked, cap)
    if data_dir is not None:
        root = seed_root(data_dir)
        if root is not None:
            if start is None or last is None:
                raise DataError(
                    "seed data: give --start and --end (or --days): the files cover 2024-01 to 2025-09"
                )
            return _noted(load_seed(root, start, last + step, needs or ("eth_spot",), fill=fill), note)
        if data_dir.is_file() or "://" in str(data_dir):
            recorded = load_event_log(str(data_dir))  # the market data an earlier run recorded
            market = recorded.between(start or recorded.start, (last or recorded.end) + step)
        else:
            market = load_folder(data_dir, start, last + step if last else None)
        if note is None and market.times:  # the data chose the window: cap what it holds
            final, note = _capped(market.start, market.end, cap)
            market = market.between(market.start, final + step) if note else market
        return _noted(market, note)
    first = start or DEFAULT_START
    final, note = _capped(first, last or first + timedelta(days=days or DEFAULT_DAYS), cap)
    return _noted(generate(seed, first, final + step, btc=any(n.startswith("btc") for n in needs)), note)


def load_for(
    strategy: Strategy,
    *,
    data_dir: Path | None,
    seed: int,
    start: datetime | None,
    end: datetime | None,
    days: int | None,
    fill: str = "error",
) -> MarketData:
    """`load_data` for a strategy, fitted to the venues the data has over the window first.

    With the seed data folder, which venues can serve the window is known from the files before they are
    loaded (`marketdata.availability`), so the strategy's `fit` can drop a venue (and say so in its
    notes) before the series it needs are read; other data is loaded first and fitted to the venues its
    rows and funding hold. A strategy without `fit` or `data_needs` is loaded as it is."""
    fit = getattr(strategy, "fit", None)
    needs: Callable[[], Sequence[str]] = getattr(strategy, "data_needs", lambda: ())
    step = timedelta(hours=1)
    last = window(start, end, days)
    root = seed_root(data_dir) if data_dir is not None else None
    if fit is not None and root is not None and start is not None and last is not None and needs():
        fit(availability(root, start, last + step, needs()))
        fit = None
    market = load_data(data_dir=data_dir, seed=seed, start=start, end=end, days=days, needs=needs(),
                       fill=fill)
    if fit is not None:
        fit(availability_of(market))
    return market


def seed_overrides(data_dir: Path | None) -> dict[str, Any]:
    """With the seed data, the seed's own execution-cost table and gas units per operation."""
    root = seed_root(data_dir) if data_dir is not None else None
    if root is None:
        return {}
    return {"execution_costs": load_execution_costs(root), "gas": {"units": gas_units(root)}}


def build_config(
    strategy: Strategy,
    data: MarketData,
    *,
    db: str,
    seed: int,
    overrides: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    data_spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The engine config of a run. `params` (every effective parameter, `ledger.strategies.recorded`, once
    the strategy was fitted to the data) and `data_spec` (how the data was chosen: kind, path, window,
    seed, fill) are recorded too, so `ledger replay rerun` can repeat it; the data path itself stays out
    of the recorded config and goes to `SessionStarted.data_source`."""
    config = merge(strategy.config(), overrides or {})
    recorded: dict[str, Any] = {}
    if params:
        recorded["strategy_params"] = dict(params)
    if data_spec:
        recorded["data"] = {k: v for k, v in data_spec.items() if v is not None}
    return merge(
        config,
        {
            **recorded,
            "execution_mode": "backtest",
            "ledger": {"url": db},
            "session": {
                "start": data.start.isoformat(),
                "seed": seed,
                "key": f"backtest-{strategy.name}-{seed}",
            },
            "strategy": strategy.name,
        },
    )


async def run_backtest(
    config: dict[str, Any], strategy: Strategy, data: MarketData, progress: Progress | None = None
) -> BacktestResult:
    engine = EventDrivenStrategyEngine(config, data=data)
    view = StrategyView(engine)
    total = len(data.times)
    try:
        for i, (ts, market) in enumerate(zip(data.times, data.rows, strict=True)):
            await engine.advance_to(ts, market)
            for _ in range(MAX_ROUNDS):
                decision = strategy.decide(ts, engine.market, view)
                if not decision:
                    break
                await engine.execute_decision(decision, market_data=engine.market)
            if progress is not None:
                progress(i + 1, total)
        engine.close()
    except BaseException:
        with contextlib.suppress(LedgerError):  # a store that failed the run fails its end too: the
            engine.close("interrupted", views=False)  # first error is the one reported
        engine.ledger.close()
        raise
    summary = engine.summary()
    digest = engine.digest()
    engine.ledger.close()  # nothing holds the file once the run is over (no -wal, -shm or writer lock)
    notes = list(getattr(strategy, "notes", [])) + list(data.notes)
    summary.update(
        strategy=strategy.name,
        seed=config["session"]["seed"],
        digest=digest,
        notes=notes,
        data_source=data.source,
    )
    return BacktestResult(
        summary, digest, equity_series(engine.projection.state), engine.exposure_series, engine.risk_series
    )
