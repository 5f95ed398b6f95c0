"""Example strategies for backtests; each only emits instructions through the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aggregates.errors import LedgerError
from ledger.strategies.base import Strategy, StrategyView
from ledger.strategies.demo_basis import DemoBasis
from ledger.strategies.seed_modes import MODES

STRATEGIES: dict[str, Callable[..., Any]] = {"demo_basis": DemoBasis, **{m.name: m for m in MODES}}


def create(name: str, **params: Any) -> Strategy:
    factory = STRATEGIES.get(name)
    if factory is None:
        raise LedgerError(f"strategy: unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
    fields = getattr(factory, "__dataclass_fields__", {})
    unknown = sorted(set(params) - set(fields)) if fields else []
    if unknown:
        raise LedgerError(
            f"strategy: {name} has no parameter {unknown[0]!r} (known: "
            f"{', '.join(sorted(k for k in fields if k not in ('name', 'description', 'phase', 'notes')))})"
        )
    strategy: Strategy = factory(**params)
    validate = getattr(strategy, "validate", None)
    if validate is not None:
        validate()
    return strategy


__all__ = ["STRATEGIES", "Strategy", "StrategyView", "create"]
