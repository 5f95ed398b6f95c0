"""The in-memory view: the folds kept in process, updated after every append (backtests, replays)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from projections.folds import apply
from projections.state import LedgerState


class EventSource(Protocol):
    def iter_events(self, after: int = 0, stop: int | None = None) -> Iterable[tuple[int, Any]]: ...

    def subscribe(self, listener: Any) -> None: ...


class InMemoryProjection:
    """Folds events into a LedgerState; `position` is the last notification id applied."""

    def __init__(self, keep_fills: bool = False) -> None:
        self.keep_fills = keep_fills
        self.state = LedgerState(keep_fills=keep_fills)
        self.position = 0

    def handle(self, pairs: Sequence[tuple[int | None, Any]]) -> None:
        state = self.state
        for nid, event in pairs:
            if nid is not None and nid <= self.position:
                continue  # already applied: exactly once even when fed twice
            apply(state, event)
            if nid is not None:
                self.position = nid
        state.dirty.clear()
        if not self.keep_fills:
            state.new_fills.clear()

    def attach(self, ledger: EventSource) -> InMemoryProjection:
        """Catch up with what is stored, then follow every save."""
        self.catch_up(ledger)
        ledger.subscribe(self.handle)
        return self

    def catch_up(self, ledger: EventSource, stop: int | None = None) -> int:
        batch: list[tuple[int | None, Any]] = []
        count = 0
        for pair in ledger.iter_events(self.position, stop):
            batch.append(pair)
            if len(batch) >= 10_000:
                self.handle(batch)
                count += len(batch)
                batch = []
        self.handle(batch)
        return count + len(batch)

    def reset(self) -> None:
        """Forget everything applied (then catch up again from the log)."""
        self.state = LedgerState(keep_fills=self.keep_fills)
        self.position = 0

    def rebuild(self, ledger: EventSource) -> int:
        self.reset()
        return self.catch_up(ledger)
