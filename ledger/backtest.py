"""`ledger backtest` as a library call: build the config, run a strategy over market data through the
engine, and collect what the report needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.engine import EventDrivenStrategyEngine
from ledger.marketdata import MarketData, generate, load_event_log, load_folder
from ledger.strategies import Strategy, StrategyView

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_DAYS = 90
MAX_ROUNDS = 8  # decide() is asked again after its instructions ran, at most this often per step
Progress = Callable[[int, int], None]


@dataclass
class BacktestResult:
    summary: dict[str, Any]
    digest: str
    equity: list[tuple[str, Decimal]]
    exposure: list[tuple[str, dict[str, Decimal]]]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, tables merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_data(*, data_dir: Path | None, seed: int, start: datetime | None, end: datetime | None,
              days: int | None) -> MarketData:
    """The folder's data when given, else the seeded synthetic market (default: 90 days from 2024-01-01)."""
    if data_dir is not None:
        last = end or (start + timedelta(days=days) if start and days else None)
        if data_dir.is_file() or "://" in str(data_dir):
            recorded = load_event_log(str(data_dir))  # the market data an earlier run recorded
            return recorded.between(start or recorded.start, last or recorded.end + timedelta(hours=1))
        return load_folder(data_dir, start, last)
    first = start or DEFAULT_START
    last = end or first + timedelta(days=days or DEFAULT_DAYS)
    return generate(seed, first, last)


def build_config(strategy: Strategy, data: MarketData, *, db: str, seed: int,
                 overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    config = merge(strategy.config(), overrides or {})
    return merge(config, {
        "execution_mode": "backtest", "ledger": {"url": db},
        "session": {"start": data.start.isoformat(), "seed": seed, "key": f"backtest-{strategy.name}-{seed}"},
        "strategy": strategy.name,
    })


async def run_backtest(config: dict[str, Any], strategy: Strategy, data: MarketData,
                       progress: Progress | None = None) -> BacktestResult:
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
        engine.close("interrupted", views=False)
        raise
    summary = engine.summary()
    digest = engine.digest()
    notes = list(getattr(strategy, "notes", [])) + list(data.notes)
    summary.update(strategy=strategy.name, seed=config["session"]["seed"], digest=digest, notes=notes,
                   data_source=data.source)
    return BacktestResult(summary, digest, list(engine.projection.state.equity), engine.exposure_series)
