"""Write model: value types, events, the VenueLedger and Session aggregates, the lifecycle table, errors."""

from aggregates.errors import (
    ConcurrencyError,
    DuplicateError,
    IllegalTransitionError,
    InstructionError,
    IntegrityViolation,
    LedgerError,
    StoreError,
)
from aggregates.session import Session
from aggregates.transitions import State
from aggregates.venue import ALL_EVENTS, VenueLedger, fill_key

__all__ = [
    "ALL_EVENTS",
    "ConcurrencyError",
    "DuplicateError",
    "IllegalTransitionError",
    "InstructionError",
    "IntegrityViolation",
    "LedgerError",
    "Session",
    "State",
    "StoreError",
    "VenueLedger",
    "fill_key",
]
