"""The event logger the execution interfaces append through: venue aggregates, the clock, ids, and
one ordered writer.

Live mode saves every commit before it returns (write-ahead). A commit marked `durable=False` (a
venue's reply, which the venue can be asked for again) is saved before it returns too, without waiting
for the disk unless `durable_replies` is set; it reaches the disk with the next durable commit, the
next write-ahead. Backtests hand each commit's events
to the projections at once and write them to the store in batches, in exactly the order they were
committed, so every event is stored as if every commit had been saved on its own; only the session's
checkpoints, taken after the write that reaches `checkpoint_every`, follow the batch writes
(`ledger.batch`).

Every command (an instruction, a step of time, a cancel) runs as one unit of work (`unit()`): when
anything inside it raises — our checks, the decimal module, the store, a projection — the events it
committed but did not store are dropped, the instruction ids it took are given back, the participants
(simulated venues, the engine's own clock state) get back the state they had before it, and before
the next command the aggregates are reloaded from the store (snapshot + tail) and the views rebuilt
from the log. So in-memory state never runs ahead of the log, and the engine stays usable. What a
command stored before it failed stays stored: in live mode that is the write-ahead of an order that
may have reached the venue, which reconciliation resolves. A view or update handler that fails after
the events were committed does not fail the command: the views are rebuilt from the log and the
failure is logged.
"""

from __future__ import annotations

import asyncio
import decimal
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from aggregates.errors import CommandError, DuplicateError, InstructionError, LedgerError, StoreError
from aggregates.ids import instruction_id
from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger, replace_in_place

Listener = Callable[[Sequence[tuple[int | None, Any]]], None]
log = logging.getLogger("ledger")


class Participant(Protocol):
    """Something outside the aggregates that a command changes in memory (a simulated venue's resting
    orders, the engine's clock state): it hands out its state before a command and takes it back if
    the command fails."""

    def save_state(self) -> Any: ...

    def restore_state(self, saved: Any) -> None: ...


@dataclass
class _Unit:
    """One running command: what it committed, the ids it took, and what to put back if it fails."""

    sequence: int
    now: datetime
    saved: list[tuple[Participant, Any]]
    overlapped: bool = False
    depth: int = 1
    kept: bool = False  # some of its events are stored (live and dry-run save every commit)
    events: list[Any] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)


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
        self._units: dict[object, _Unit] = {}  # the running command of each asyncio task
        self._participants: list[Participant] = []
        self._reload = False  # aggregates may be ahead of the log: reload before the next command
        self._stale_views = False  # a listener failed: rebuild the views from the log
        self.rebuild_views: Callable[[], None] | None = None  # set by the engine

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
        unit = self._unit()
        if unit is not None:
            unit.taken.append(iid)
        return iid

    def claim_instruction_id(self, iid: str) -> None:
        """A caller-supplied id must be new across every venue of the ledger, not only at one."""
        if iid in self._ids:
            raise DuplicateError(f"instruction_id: {iid!r} was already used in this ledger")
        self._ids.add(iid)
        unit = self._unit()
        if unit is not None:
            unit.taken.append(iid)

    # ---- units of work -----------------------------------------------------------------------------

    def participate(self, participant: Participant) -> None:
        """Let `participant` save and restore its in-memory state around every command."""
        self._participants.append(participant)

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Run one command: all of its events are committed, or none and nothing it changed stays.

        Errors leave as one typed error: a `LedgerError` as it is, a store failure as `StoreError`,
        a number the decimal module refused as `InstructionError`, anything else as `CommandError`,
        each with the cause in the message (Ctrl-C and cancellation are rolled back and re-raised).
        Live and dry-run engines may run commands concurrently (one unit per asyncio task; a unit
        that overlapped another cannot put the simulated venues back and says so); a backtest runs
        one command at a time."""
        task = _current_task()
        unit = self._units.get(task)
        if unit is not None:  # a nested call joins the command it is part of
            unit.depth += 1
            try:
                yield
            finally:
                unit.depth -= 1
            return
        if self._units and self.flush_every > 0:
            raise LedgerError("another command is running on this engine: await it before the next")
        self.recover()
        unit = _Unit(self.sequence, self._now, self._save_participants(), overlapped=bool(self._units))
        for other in self._units.values():
            other.overlapped = True
        self._units[task] = unit
        try:
            yield
            if self.flush_every > 0 and len(self._buffer) >= self.flush_every:
                self.flush()
        except BaseException as error:
            self._rollback(unit)
            if isinstance(error, Exception):
                raise typed(error, unit.kept) from error
            raise
        finally:
            del self._units[task]
        if self._stale_views:  # the command is committed: its result stands whatever happens here
            try:
                self.recover()
            except LedgerError as e:
                log.warning("views rebuilt later, the store fails now: %s", e)

    def _save_participants(self) -> list[tuple[Participant, Any]]:
        return [(p, p.save_state()) for p in self._participants]

    def _stored(self, unit: _Unit) -> None:
        """Part of a running command is stored (live, dry-run): a failure from here on goes back to
        this point, not to before the command — what is stored, and the ids it used, stay."""
        unit.kept = True
        unit.sequence, unit.now, unit.events, unit.taken = self.sequence, self._now, [], []
        if not unit.overlapped:
            unit.saved = self._save_participants()

    def _unit(self) -> _Unit | None:
        return self._units.get(_current_task()) if self._units else None

    def _rollback(self, unit: _Unit) -> None:
        """Forget what the failed command did in memory; the log is unchanged by it."""
        mine = {id(e) for e in unit.events}
        kept = [e for e in self._buffer if id(e) not in mine]
        dropped = len(self._buffer) - len(kept)
        self._buffer[:] = kept
        self._dirty = {}  # the aggregates may be ahead of the log now: never snapshot them
        self.events -= dropped
        self._ids.difference_update(unit.taken)
        if unit.overlapped:
            log.warning("a failed command overlapped another: the simulated venues keep their state")
        else:
            self.sequence, self._now = unit.sequence, unit.now
            for participant, saved in reversed(unit.saved):
                participant.restore_state(saved)
        self._reload = True
        self._stale_views = self._stale_views or dropped > 0 or self.flush_every > 0
        try:
            self.recover()
        except LedgerError as e:  # the store still fails: tried again before the next command
            log.warning("recovery after a failed command postponed: %s", e)

    def recover(self) -> None:
        """After a failure: put every aggregate back, in place, to what is committed — the stored
        state (snapshot + tail) plus what waits in the write buffer — so whoever holds one sees it;
        rebuild the views from the same. Nothing is written here, so a failure leaves no trace in a
        backtest's log (its writes stay at the batch boundaries). Raises StoreError, and changes
        nothing, while the store cannot be read."""
        if not (self._reload or self._stale_views):
            return
        if self._reload:
            for name, agg in list(self._aggregates.items()):
                try:
                    stored: Any = self.ledger.get_venue(self.account, name)
                except StoreError:
                    raise
                except LedgerError:  # not stored yet: from its buffered events, or opened afresh
                    stored = None
                fresh = self._with_buffered(stored, agg.id)
                if fresh is None:
                    del self._aggregates[name]
                    continue
                replace_in_place(agg, fresh)
            session = self.ledger.session
            if session is not None:
                fresh = self._with_buffered(self.ledger.get_session(self.session_key), session.id)
                replace_in_place(session, fresh)
            self._reload = False
        if self._stale_views:
            self._stale_views = False
            if self.rebuild_views is not None:
                try:
                    self.rebuild_views()
                except StoreError:
                    self._stale_views = True
                    raise
                except Exception as e:  # a fold that fails on a stored event: the log is still right
                    log.error("the views cannot be rebuilt from the log: %s: %s", type(e).__name__, e)

    def _with_buffered(self, aggregate: Any, aggregate_id: UUID) -> Any:
        for event in self._buffer:
            if event.originator_id == aggregate_id:
                aggregate = event.mutate(aggregate)
        return aggregate

    def views_failed(self, error: BaseException) -> None:
        """A view or update handler raised after a commit: log it; the views are rebuilt from the log
        when the command ends (the command's result stands)."""
        log.error("a view failed after a commit and will be rebuilt from the log: %s: %s",
                  type(error).__name__, error)
        self._stale_views = True

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
        self._buffer.extend(events)
        unit = self._unit()
        if unit is not None:
            unit.events.extend(events)
        if self.flush_every <= 0:
            durable = durable or self.durable_replies
            pairs = self.flush(durable=durable)
            self.unsynced = not durable
            if unit is not None:
                self._stored(unit)
            self._deliver(pairs)
            self._drain()
            return
        self._deliver([(None, e) for e in events])
        if not self._units and len(self._buffer) >= self.flush_every:
            self.flush()  # outside a unit of work (a unit flushes when it ends)

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
        events, aggregates = list(self._buffer), list(self._dirty.values())
        self._own = {id(e) for e in events}
        try:
            pairs = self.ledger.save_events(events, aggregates, durable=durable)
        finally:
            self._own = set()
        del self._buffer[:len(events)]  # kept until stored: a failed write is retried, never dropped
        self._dirty = {}
        if self.flush_every > 0:
            self._drain()  # backtests delivered their own events at commit
        return pairs

    def committed(self) -> Iterator[tuple[int | None, Any]]:
        """The log as committed: what is stored, then what waits in the write buffer (no id yet)."""
        yield from self.ledger.iter_events()
        for event in list(self._buffer):
            yield None, event

    def _deliver(self, pairs: Sequence[tuple[int | None, Any]]) -> None:
        for listener in self._listeners:
            try:
                listener(pairs)
            except Exception as e:  # the events are committed: rebuild the views rather than fail
                self.views_failed(e)


    def _saved(self, pairs: Sequence[tuple[int | None, Any]]) -> None:
        self._foreign.extend(p for p in pairs if id(p[1]) not in self._own)
        if not self._own:
            self._drain()

    def _drain(self) -> None:
        if self._foreign:
            pairs, self._foreign = self._foreign, []
            self._deliver(pairs)


def _current_task() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop: called from plain code
        return None


def typed(error: Exception, kept: bool = False) -> LedgerError:
    """The one typed error a failed command gives its caller, with the cause in the message; `kept`
    says that what the command stored before it failed stays in the log."""
    if isinstance(error, LedgerError):
        return error
    cause = f"{type(error).__name__}: {error}".rstrip(": ")
    rest = ("what it stored before the failure stays in the log" if kept
            else "nothing of the command was kept")
    if isinstance(error, PersistenceError | sqlite3.Error | OSError):
        return StoreError(f"the event store failed ({cause}); {rest}")
    if isinstance(error, ArithmeticError | decimal.InvalidOperation):
        return InstructionError("instruction", f"a value is outside what can be computed ({cause}); {rest}")
    return CommandError(f"the command failed and was rolled back ({cause}); {rest}")
