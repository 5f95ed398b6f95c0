"""Domain errors: every failure a caller of the ledger can meet, with a message that names the cause."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error this project raises on purpose."""


class InstructionError(LedgerError, ValueError):
    """An instruction is malformed: the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class IllegalTransitionError(LedgerError):
    """An intent that the instruction lifecycle does not allow from the current state."""

    def __init__(self, instruction_id: str, state: str | None, event: str) -> None:
        self.instruction_id = instruction_id
        self.state = state
        self.event = event
        super().__init__(
            f"instruction {instruction_id}: {event} is not allowed from state {state or 'NEW'}"
        )


class DuplicateError(LedgerError):
    """An id that must be unique within a stream was used twice (e.g. an instruction id)."""


class ConcurrencyError(LedgerError):
    """Another writer appended to the same venue stream first; reload and retry."""


class StoreError(LedgerError):
    """The event store cannot be opened or used (missing, unreadable, not a ledger, unreachable)."""


class CommandError(LedgerError):
    """A command failed for a reason that is neither its input nor the store (a defect): it was rolled
    back and the engine is usable; the message carries the cause."""


class IntegrityViolation(LedgerError):
    """A stored event does not match its hash chain or checkpoint."""


class DataError(LedgerError, ValueError):
    """Market data that cannot be used as given; the message names the file (or source) and line or time."""
