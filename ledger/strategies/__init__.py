"""Example strategies for backtests; each only emits instructions through the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aggregates.errors import LedgerError
from ledger.strategies.base import Strategy, StrategyView
from ledger.strategies.demo_basis import DemoBasis

STRATEGIES: dict[str, Callable[..., Any]] = {"demo_basis": DemoBasis}


def create(name: str, **params: Any) -> Strategy:
    factory = STRATEGIES.get(name)
    if factory is None:
        raise LedgerError(f"strategy: unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
    strategy: Strategy = factory(**params)
    return strategy


__all__ = ["STRATEGIES", "Strategy", "StrategyView", "create"]
