"""Example strategies for backtests; each only emits instructions through the engine.

A strategy's parameters are declared once, as `Param` fields of its dataclass (`params.py`); `create`
types and range-checks the values it is given, and `recorded` gives back every effective value for the
session record.
"""

from __future__ import annotations

from typing import Any

from ledger.strategies.base import Strategy, StrategyView
from ledger.strategies.demo_basis import DemoBasis
from ledger.strategies.params import Param, StrategyConfigError, params_of, parse_params, recorded
from ledger.strategies.seed_modes import MODES

STRATEGIES: dict[str, type[Any]] = {"demo_basis": DemoBasis, **{m.name: m for m in MODES}}


def factory_of(name: str) -> type[Any]:
    factory = STRATEGIES.get(name)
    if factory is None:
        known = ", ".join(sorted(STRATEGIES))
        raise StrategyConfigError(f"strategy: unknown strategy {name!r} (known: {known})")
    return factory


def create(name: str, /, **params: Any) -> Strategy:
    """The strategy `name` with `params` (text, JSON/TOML values or typed values), typed and checked;
    StrategyConfigError names an unknown, mistyped or out-of-range parameter."""
    factory = factory_of(name)
    typed = parse_params(name, params_of(factory), params)
    strategy: Strategy = factory(**typed)
    strategy.explicit = frozenset(typed)  # type: ignore[attr-defined]
    return strategy


__all__ = ["STRATEGIES", "Param", "Strategy", "StrategyConfigError", "StrategyView", "create", "factory_of",
           "params_of", "recorded"]
