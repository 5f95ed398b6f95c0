"""The event logger the execution interfaces append through: venue aggregates, the clock, ids, and
one ordered writer.

Live mode saves every commit before it returns (write-ahead). A commit marked `durable=False` (a
venue's reply, which the venue can be asked for again) is saved before it returns too, without waiting
for the disk unless `durable_replies` is set; it reaches the disk with the next durable commit, the
next write-ahead. Backtests hand each commit's events
to the projections at once and write them to the store in batches, in exactly the order they were
committed, so the stored log is the same as if every commit had been saved on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from aggregates.errors import DuplicateError, LedgerError
from aggregates.ids import instruction_id
from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger

Listener = Callable[[Sequence[tuple[int | None, Any]]], None]


class EventRecorder:
    """`event_logger` of the seed's interfaces: the only way anything reaches the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        account: str,
        venues: dict[str, str],
        mode: str,
        session_key: str,
        start: datetime,
        flush_every: int = 0,
        clock: Callable[[], datetime] | None = None,
        durable_replies: bool = False,
    ) -> None:
        self.ledger = ledger
        self.account = account
        self.mode = mode
        self.session_key = session_key
        self._venue_types = dict(venues)
        self._now = start
        self._clock = clock
        self._aggregates: dict[str, VenueLedger] = {}
        self._buffer: list[Any] = []
        self._dirty: dict[UUID, Any] = {}
        self._listeners: list[Listener] = []
        self.flush_every = flush_every
        self.durable_replies = durable_replies
        self.unsynced = False  # a relaxed commit has been saved since the last durable one
        self.sequence = 0
        self.events = 0
        self._ids: set[str] = set()
        # Events the ledger saves by itself (session start and end, checkpoints) must reach the
        # listeners too, after the batch they were saved with, or a live projection differs from a
        # rebuild of the same log.
        self._own: set[int] = set()
        self._foreign: list[tuple[int | None, Any]] = []
        ledger.subscribe(self._saved)

    # ---- time --------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock() if self._clock is not None else self._now

    def set_time(self, ts: datetime) -> None:
        if ts < self._now:
            raise LedgerError(f"time cannot go backwards: {ts.isoformat()} is before {self._now.isoformat()}")
        self._now = ts

    # ---- venues and ids ----------------------------------------------------------------------------

    def venue_type(self, name: str) -> str | None:
        return self._venue_types.get(name)

    def venues(self) -> list[str]:
        """Every venue of the ledger, sorted."""
        return sorted(self._venue_types)

    def venue(self, name: str) -> VenueLedger:
        agg = self._aggregates.get(name)
        if agg is None:
            kind = self._venue_types.get(name)
            if kind is None:
                raise LedgerError(f"venue: unknown venue {name!r}")
            agg = self.ledger.venue(self.account, name, kind, self.now())
            self._aggregates[name] = agg
        return agg

    def next_instruction_id(self) -> str:
        self.sequence += 1
        iid = instruction_id(self.session_key, self.sequence)
        self._ids.add(iid)
        return iid

    def claim_instruction_id(self, iid: str) -> None:
        """A caller-supplied id must be new across every venue of the ledger, not only at one."""
        if iid in self._ids:
            raise DuplicateError(f"instruction_id: {iid!r} was already used in this ledger")
        self._ids.add(iid)

    # ---- appending ---------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def commit(self, *aggregates: Any, durable: bool = True) -> None:
        """Take the aggregates' new events in order; deliver and (live) save them now.

        `durable=False` is for facts the venue can be asked for again (replies, fills): only a crash
        of the machine before the next durable commit can lose them, and reconciliation then records
        them again from the venue."""
        events: list[Any] = []
        for agg in aggregates:
            events.extend(agg.collect_events())
            self._dirty[agg.id] = agg
        if not events:
            return
        self.events += len(events)
        if self.flush_every <= 0:
            self._buffer.extend(events)
            durable = durable or self.durable_replies
            pairs = self.flush(durable=durable)
            self.unsynced = not durable
            self._deliver(pairs)
            self._drain()
            return
        self._deliver([(None, e) for e in events])
        self._buffer.extend(events)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def sync(self) -> None:
        """Put relaxed commits on disk now (live runs call this at the end of every step)."""
        if self.unsynced:
            self.ledger.sync()
            self.unsynced = False

    def record_market(self, session: Session, market: dict[str, Any], ts: datetime) -> None:
        session.record_market(market, ts, now=self.now())
        self.commit(session)

    def flush(self, *, durable: bool = True) -> list[tuple[int | None, Any]]:
        """Write everything committed so far in one transaction, in commit order."""
        if not self._buffer:
            return []
        events, aggregates = self._buffer, list(self._dirty.values())
        self._buffer, self._dirty = [], {}
        self._own = {id(e) for e in events}
        try:
            pairs = self.ledger.save_events(events, aggregates, durable=durable)
        finally:
            self._own = set()
        if self.flush_every > 0:
            self._drain()  # backtests delivered their own events at commit
        return pairs

    def _deliver(self, pairs: Sequence[tuple[int | None, Any]]) -> None:
        for listener in self._listeners:
            listener(pairs)

    def _saved(self, pairs: Sequence[tuple[int | None, Any]]) -> None:
        self._foreign.extend(p for p in pairs if id(p[1]) not in self._own)
        if not self._own:
            self._drain()

    def _drain(self) -> None:
        if self._foreign:
            pairs, self._foreign = self._foreign, []
            self._deliver(pairs)
