"""Read model: pure folds over ledger events, and the in-memory and SQL views built from them."""

from projections.folds import apply, fold
from projections.memory import InMemoryProjection
from projections.reports import RiskParameters, balances, equity, exposure, pnl, position, risk
from projections.sql import SQLProjection
from projections.state import LedgerState

__all__ = [
    "InMemoryProjection", "LedgerState", "RiskParameters", "SQLProjection", "apply", "balances",
    "equity", "exposure", "fold", "pnl", "position", "risk",
]
