"""The Ledger application: the one write API over the event store (SQLite or PostgreSQL).

It chains every event to its stream predecessor, saves several aggregates atomically, snapshots
long streams, checkpoints stream heads into the active Session, and turns library errors into
domain errors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

import aggregates  # noqa: F401  (registers the explicit topics before anything is read)
from aggregates.errors import ConcurrencyError, IntegrityViolation, LedgerError, StoreError
from aggregates.ids import session_id, venue_ledger_id
from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.codec import GENESIS, ChainedMapper, link_global, split_state
from ledger.stores import (
    StoreURL,
    WriterLock,
    check_postgres,
    check_sqlite,
    check_writable,
    checkpoint_lock,
    creation_lock,
    environment,
    parse_url,
)

Row = tuple[int, str, int, str, bytes]
Listener = Callable[[Sequence[tuple[int | None, Any]]], None]
CHECKPOINT_TOPIC = Session.Checkpointed.TOPIC
CIPHER_ENV = "LEDGER_CIPHER_KEY"
log = logging.getLogger("ledger")


class Ledger(Application[UUID]):
    """Append-only, hash-chained event ledger of VenueLedger and Session aggregates."""

    name = "Ledger"

    def __init__(
        self, url: StoreURL, env: dict[str, str], *, snapshot_every: int = 10_000,
        checkpoint_every: int = 10_000, writer: WriterLock | None = None,
    ) -> None:
        self.url = url
        self.writer = writer or (WriterLock(url.path) if url.kind == "sqlite" else None)
        if self.writer is not None:  # released when the ledger is closed or collected, or at exit
            self._release_writer = weakref.finalize(self, self.writer.release)
        self.snapshot_every = snapshot_every
        self.checkpoint_every = checkpoint_every
        self._heads: dict[UUID, tuple[int, str]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self.session: Session | None = None
        self._since_checkpoint = 0
        self._cp_broken = False
        self._write_error: str | None = None  # the last failed write's cause, until a write succeeds
        try:
            super().__init__(env=env)
        except (PersistenceError, sqlite3.Error) as e:
            raise StoreError(f"cannot open {url.redacted}: {_first_line(e)}") from None
        if self.writer is not None:
            self.recorder.before_write = self.hold_writer  # type: ignore[attr-defined]
        try:
            self._cp_to, self._cp_chain = self._last_checkpoint()
            self.check_key()
        except BaseException as e:
            self.close()  # nothing stays open (no -wal or -shm beside the file, no writer lock)
            if isinstance(e, PersistenceError | sqlite3.Error):
                raise StoreError(f"cannot read {url.redacted}: {_first_line(e)}") from None
            raise

    def check_key(self) -> None:
        """A first and a last event that both cannot be read mean a wrong or missing cipher key: one
        StoreError when the ledger is opened, before anything is read, written or changed (a single
        unreadable row is tampering, for `ledger audit verify` to name)."""
        last = self.max_notification_id()
        if not last:
            return
        first: Any = self.iter_rows(0, None, 1)  # a generator, closed after its first row
        with closing(first) as rows:
            first_row = next(rows, None)
        probes = [r for r in (first_row, *self.iter_rows(last - 1, last)) if r is not None]
        for _nid, _stream, _version, _topic, state in probes:
            try:
                split_state(self.codec.plaintext(state.encode() if isinstance(state, str) else state))
                return
            except Exception:  # any failure to read is what is probed for
                continue
        have = f"the {CIPHER_ENV} set here" if self.codec.cipher else f"no {CIPHER_ENV} set"
        raise StoreError(f"neither the first nor the last event can be read with {have}: the ledger "
                         f"{self.url.redacted} is encrypted with another key (or was not written by this "
                         "ledger)")

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str | os.PathLike[str] = "sqlite:///ledger.db", *, create: bool = False,
        synchronous: str = "FULL", snapshot_every: int = 10_000, checkpoint_every: int = 10_000,
    ) -> Ledger:
        """Open a ledger; with `create=False` a missing or foreign database is a StoreError."""
        parsed = parse_url(url)
        env = environment(parsed, create=create or parsed.kind == "memory", synchronous=synchronous)
        key = os.environ.get(CIPHER_ENV)
        if key:
            env.update(CIPHER_TOPIC="eventsourcing.cipher:AESCipher", CIPHER_KEY=key)
        writer = None
        if parsed.kind == "sqlite":
            check_sqlite(parsed.path, create=create)
            check_writable(parsed.path)
            writer = WriterLock(parsed.path)
            if create:  # creating tables or appending: the one writer, before anything is written
                writer.acquire()
        try:
            with creation_lock(parsed, create):
                if parsed.kind == "postgresql":
                    check_postgres(parsed, create=create)
                return cls(parsed, env, snapshot_every=snapshot_every, checkpoint_every=checkpoint_every,
                           writer=writer)
        except BaseException:
            if writer is not None:
                writer.release()
            raise

    def hold_writer(self) -> None:
        """Become the one writer of a SQLite ledger for as long as it stays open (a StoreError naming
        the holder if another process writes it); PostgreSQL takes concurrent writers."""
        if self.writer is not None:
            self.writer.acquire()

    def release_writer(self) -> None:
        """Let other processes write again (an engine whose session ended); the next write of this
        ledger takes the lock again."""
        if self.writer is not None:
            self.writer.release()

    def close(self) -> None:
        super().close()
        if self.writer is not None:
            self._release_writer()

    def construct_mapper(self) -> ChainedMapper:
        cipher = None
        if self.env.get("CIPHER_KEY"):
            try:
                cipher = AESCipher(self.env)  # type: ignore[arg-type]
            except Exception as e:
                raise StoreError(f"{CIPHER_ENV} is not a valid AES key: {_first_line(e)}") from None
        return ChainedMapper(cipher=cipher)

    @property
    def codec(self) -> ChainedMapper:
        return self.mapper  # type: ignore[return-value]

    # ---- the write API -------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with (notification id, event) pairs after every successful save."""
        self._listeners.append(listener)

    def save(self, *objs: Any, **kwargs: Any) -> list[Any]:
        """Save the pending events of all given aggregates in one transaction."""
        processing = ProcessingEvent[UUID]()
        processing.collect_events(*objs, **kwargs)
        return self._save(processing)

    def save_events(self, events: Sequence[Any], owners: Sequence[Any], *, durable: bool = True) -> list[Any]:
        """Save already collected events in the given order (the recorder's batches), in one transaction;
        `owners` are the events' aggregates, for snapshots. `durable=False` does not wait for the
        disk (see FastSQLiteApplicationRecorder.insert_events and ledger.store_pg)."""
        processing = ProcessingEvent[UUID]()
        processing.events = list(events)
        for aggregate in owners:
            processing.aggregates[aggregate.id] = aggregate
        return self._save(processing, durable=durable)

    def sync(self) -> None:
        """Make every commit so far durable, those saved with `durable=False` included."""
        with self._lock:
            try:
                self.recorder.sync()  # type: ignore[attr-defined]
            except PersistenceError as e:
                raise StoreError(f"cannot sync {self.url.redacted}: {_first_line(e)}") from None

    def _save(self, processing: ProcessingEvent[UUID], *, durable: bool = True) -> list[Any]:
        events = processing.events
        if not events:
            return []
        with self._lock:
            stored, pending = self._chain(events)
            try:
                ids = self.recorder.insert_events(stored, tracking=processing.tracking, durable=durable)
            except IntegrityError as e:
                if not self._already_stored(stored):
                    raise ConcurrencyError(self._conflict_message(stored, e)) from None
                ids = None
            except PersistenceError as e:
                self._write_error = _first_line(e)
                raise StoreError(f"cannot write to {self.url.redacted}: {self._write_error}") from None
            self._write_error = None
            self._heads.update(pending)
            self._since_checkpoint += len(events)
        try:
            self._snapshot(processing)
        except (PersistenceError, LedgerError) as e:  # the events are stored; a snapshot only speeds reads
            log.warning("snapshot not written: %s", _first_line(e))
        numbers: Sequence[int | None] = list(ids) if ids else [None] * len(events)
        pairs = list(zip(numbers, events, strict=True))
        for listener in self._listeners:
            listener(pairs)
        if self.session is not None and self._since_checkpoint >= self.checkpoint_every:
            last: Any = events[-1]
            try:
                self.checkpoint(last.ts_event)
            except StoreError as e:  # the events are stored; the checkpoint is taken at the next save
                log.warning("checkpoint postponed: %s", e)
        return pairs

    def _chain(self, events: Sequence[Any]) -> tuple[list[StoredEvent], dict[UUID, tuple[int, str]]]:
        stored: list[StoredEvent] = []
        pending: dict[UUID, tuple[int, str]] = {}
        encode = self.codec.encode_chained
        for event in events:
            stream, version = event.originator_id, event.originator_version
            head = pending.get(stream) or self._heads.get(stream)
            prev = head[1] if head and head[0] == version - 1 else self._digest_at(stream, version - 1)
            row, digest = encode(event, prev)
            stored.append(row)
            pending[stream] = (version, digest)
        return stored, pending

    def _digest_at(self, stream: UUID, version: int) -> str:
        if version < 1:
            return GENESIS
        rows = self.recorder.select_events(stream, gt=version - 1, lte=version)
        if not rows:
            if self._write_error is not None:  # not another writer: our own last write failed
                raise StoreError(f"cannot write to {self.url.redacted}: {self._write_error} (version "
                                 f"{version} of stream {stream} was never stored)")
            raise ConcurrencyError(f"stream {stream} has no version {version}; reload and retry")
        return split_state(self.codec.plaintext(rows[0].state))[1]

    def _already_stored(self, stored: list[StoredEvent]) -> bool:
        """A retried commit may have succeeded the first time: identical rows mean success."""
        for s in stored:
            rows = self.recorder.select_events(
                s.originator_id, gt=s.originator_version - 1, lte=s.originator_version)
            if not rows or rows[0].state != s.state or rows[0].topic != s.topic:
                return False
        return True

    def _conflict_message(self, stored: list[StoredEvent], error: Exception) -> str:
        taken = stored[0]
        for s in stored:
            if self.recorder.select_events(s.originator_id, gt=s.originator_version - 1,
                                           lte=s.originator_version):
                taken = s
                break
        return (f"another writer appended to stream {taken.originator_id} first "
                f"(version {taken.originator_version} is taken); reload the venue and retry")

    def _snapshot(self, processing: ProcessingEvent[UUID]) -> None:
        if self.snapshots is None or self.snapshot_every <= 0:
            return
        every = self.snapshot_every
        counts: dict[UUID, int] = {}
        last: dict[UUID, int] = {}
        for e in processing.events:
            counts[e.originator_id] = counts.get(e.originator_id, 0) + 1
            last[e.originator_id] = e.originator_version
        for aggregate in processing.aggregates.values():
            version = aggregate.version
            if last.get(aggregate.id) != version:
                continue  # the aggregate is not at what was just stored: a snapshot would lie
            crossed = version // every > (version - counts.get(aggregate.id, 0)) // every
            if crossed and hasattr(aggregate, "snapshot_state"):
                self.snapshots.put([type(aggregate).Snapshot.take(aggregate)])  # type: ignore[attr-defined]

    # ---- aggregates ----------------------------------------------------------------------------

    def venue(self, account: str, venue: str, venue_type: str = "cex",
              ts: datetime | None = None) -> VenueLedger:
        """The account's ledger at `venue`, opened (unsaved) on first use when `ts` is given."""
        try:
            return self.get_venue(account, venue)
        except LedgerError:
            if ts is None:
                raise
            return VenueLedger.open(account, venue, venue_type, ts)

    def get_venue(self, account: str, venue: str) -> VenueLedger:
        venue_ledger: VenueLedger = self._get(venue_ledger_id(account, venue),
                                              f"no ledger for {account} at {venue}")
        return venue_ledger

    def get_session(self, session_key: str) -> Session:
        session: Session = self._get(session_id(session_key), f"no session {session_key!r}")
        return session

    def _get(self, aggregate_id: UUID, missing: str) -> Any:
        from eventsourcing.application import AggregateNotFoundError

        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise LedgerError(missing) from None
        except PersistenceError as e:
            raise StoreError(f"cannot read {self.url.redacted}: {_first_line(e)}") from None

    # ---- sessions and checkpoints --------------------------------------------------------------

    def start_session(self, session: Session) -> Session:
        self.save(session)
        self.session = session
        return session

    def reload_session(self) -> None:
        """Put the active session aggregate back to what the store holds, in place (after a failed
        command left events applied in memory that were never stored)."""
        if self.session is not None:
            stored = self._get(self.session.id, "the active session is not in the store")
            replace_in_place(self.session, stored)

    def end_session(self, reason: str, ts: datetime) -> None:
        """Checkpoint every stream head, then end the active session."""
        if self.session is None:
            return
        self.checkpoint(ts)
        session = self.session
        session.record_end(reason, ts)
        try:
            self.save(session)
        except LedgerError:
            self.reload_session()  # not ended in memory while the log says it is not: it can be retried
            raise
        self.session = None

    def checkpoint(self, ts: datetime) -> None:
        """Anchor the heads of all streams written since the last checkpoint into the session."""
        session = self.session
        if session is None:
            raise LedgerError("checkpoint needs an active session (start_session first)")
        with checkpoint_lock(self.url):
            self._checkpoint(session, ts)

    def _checkpoint(self, session: Session, ts: datetime) -> None:
        if self.url.kind == "postgresql":  # other writers' checkpoints count: start from the last one
            self._cp_to, self._cp_chain = self._last_checkpoint()
        if self._cp_broken:
            raise IntegrityViolation("the last checkpoint cannot be read; run `ledger audit verify`")
        with self._lock:
            stop = self.recorder.max_notification_id() or 0
            count, heads, chain = 0, {}, self._cp_chain
            for _nid, stream, version, _topic, state in self.iter_rows(self._cp_to, stop):
                digest = split_state(self.codec.plaintext(state))[1]
                chain = link_global(chain, digest)
                heads[stream] = (stream, version, digest)
                count += 1
            session.record_checkpoint(
                sorted(heads.values()), count, stop, chain, ts,
            )
            previous = (self._cp_to, self._cp_chain)
            self._cp_to, self._cp_chain, self._since_checkpoint = stop, chain, 0
        active, self.session = self.session, None
        try:
            self.save(session)
        except LedgerError:
            self._cp_to, self._cp_chain = previous
            # in place: not ahead of the log for whoever holds it
            replace_in_place(session, self._get(session.id, "the active session is not in the store"))
            raise
        finally:
            self.session = active

    def _last_checkpoint(self) -> tuple[int, str]:
        nid = self._last_of_topic(CHECKPOINT_TOPIC)
        if nid is None:
            return 0, GENESIS
        try:
            for row in self.iter_rows(nid - 1, nid):
                event = self.decode_row(row)
                return int(event.notification_id), str(event.chain)
        except (LedgerError, ValueError, TypeError, AttributeError):
            # A damaged checkpoint must not stop the ledger opening for an audit; writing a new
            # checkpoint on top of it is refused instead.
            self._cp_broken = True
        return 0, GENESIS

    def _last_of_topic(self, topic: str) -> int | None:
        finder = getattr(self.recorder, "last_of_topic", None)
        if finder is not None:
            return finder(topic)  # type: ignore[no-any-return]
        from psycopg.sql import SQL, Identifier

        datastore = self.recorder.datastore  # type: ignore[attr-defined]
        statement = SQL("SELECT MAX(notification_id) AS n FROM {}.{} WHERE topic=%s").format(
            Identifier(datastore.schema), Identifier(self.recorder.events_table_name))  # type: ignore[attr-defined]
        with datastore.transaction(commit=False) as curs:
            curs.execute(statement, (topic,))
            value = curs.fetchone()["n"]
        return int(value) if value is not None else None

    # ---- reading -------------------------------------------------------------------------------

    def iter_rows(self, after: int = 0, stop: int | None = None, batch: int = 20_000) -> Iterator[Row]:
        """Stored rows in notification order after `after` up to `stop` (raw, still encrypted)."""
        fast = getattr(self.recorder, "iter_rows", None)
        if fast is not None:
            yield from fast(after, stop, batch)
            return
        while True:
            rows = self.recorder.select_notifications(
                after, batch, stop=stop, inclusive_of_start=False)
            if not rows:
                return
            for n in rows:
                oid = n.originator_id.hex if isinstance(n.originator_id, UUID) else str(n.originator_id)
                yield n.id, oid, n.originator_version, n.topic, n.state
            after = rows[-1].id

    def decode_row(self, row: Row) -> Any:
        from eventsourcing.utils import resolve_topic

        nid, stream, version, topic, state = row
        try:
            return self.codec.build(resolve_topic(topic), self.codec.plaintext(state), stream, version)
        except (ValueError, TypeError, AttributeError) as e:  # AttributeError: a truncated file's NULLs
            raise StoreError(
                f"cannot decode notification {nid} ({topic}, stream {stream} version {version}): "
                f"{_first_line(e)} (wrong or missing {CIPHER_ENV}, or not written by this ledger?)"
            ) from None

    def iter_events(self, after: int = 0, stop: int | None = None) -> Iterator[tuple[int, Any]]:
        for row in self.iter_rows(after, stop):
            yield row[0], self.decode_row(row)

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def stored_digest(self, state: bytes) -> str:
        return split_state(self.codec.plaintext(state))[1]


def replace_in_place(aggregate: Any, stored: Any) -> None:
    """Make `aggregate` the `stored` one, keeping its identity: whoever holds it sees the stored state
    (after a failed command left events applied in memory that were never stored)."""
    vars(aggregate).clear()
    vars(aggregate).update(vars(stored))


def config_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
