"""Audit reads of a ledger: read-only opening, filtered event records, an instruction's story, and the
full check behind `ledger audit verify` (hash chain, checkpoints, lifecycle, SQL views, snapshots).

Nothing here writes to the database it reads: SQLite files are opened with `mode=ro`, the SQL views
are compared against a rebuild in a temporary database of its own.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from aggregates.errors import LedgerError, StoreError
from aggregates.session import Session
from aggregates.transitions import State
from aggregates.venue import ALL_EVENTS, VenueLedger
from ledger.cli_output import plain
from ledger.codec import split_state
from replays.verify import PROGRESS_EVERY, Finding, Verification, verify_chain

OPENED = VenueLedger.Opened.TOPIC
SESSION_STARTED = Session.SessionStarted.TOPIC
SESSION_ENDED = Session.SessionEnded.TOPIC
TRANSFER_SENT = VenueLedger.TransferSent.TOPIC
TRANSFER_RECEIVED = VenueLedger.TransferReceived.TOPIC
SESSION_EVENTS: tuple[type, ...] = (
    Session.SessionStarted, Session.Checkpointed, Session.MarketObserved, Session.SessionEnded)
# Event type name -> stored topic, for `--type` (names are the class names: OrderFilled, ...).
EVENT_TYPES: dict[str, str] = {
    cls.__name__: str(cls.TOPIC)  # type: ignore[attr-defined]
    for cls in (*ALL_EVENTS, *SESSION_EVENTS)
}
_SKIP_FIELDS = frozenset({"originator_id", "originator_version"})


class AuditInputError(LedgerError):
    """A bad audit argument (time, type name, limit, instruction id, file): one line, exit 2."""


# ---- opening ---------------------------------------------------------------------------------------


def open_readonly(db: str) -> Any:
    """Open a ledger for reading only: a SQLite file with `mode=ro` (the file is never changed)."""
    from ledger.app import CIPHER_ENV, Ledger
    from ledger.stores import check_postgres, check_sqlite, environment, parse_url, readonly_uri

    parsed = parse_url(db)
    if parsed.kind == "memory":
        raise StoreError("an in-memory database holds nothing to audit; give a file or postgresql:// URL")
    env = environment(parsed, create=False, synchronous="NORMAL")
    if parsed.kind == "sqlite":
        check_sqlite(parsed.path, create=False)
        env["SQLITE_DBNAME"] = readonly_uri(parsed.path)
    else:
        # PostgreSQL: only SELECTs are issued; a read-only role makes that a guarantee.
        check_postgres(parsed, create=False)
    key = os.environ.get(CIPHER_ENV)
    if key:
        env.update(CIPHER_TOPIC="eventsourcing.cipher:AESCipher", CIPHER_KEY=key)
    return Ledger(parsed, env)


# ---- event records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRecord:
    """One stored event as the audit commands show it."""

    notification_id: int
    stream: str
    version: int
    topic: str
    type: str
    venue: str | None
    ts: str
    instruction_id: str | None
    fields: dict[str, Any]
    chain: str

    def to_json(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id, "stream": self.stream, "version": self.version,
            "topic": self.topic, "type": self.type, "venue": self.venue, "ts": self.ts,
            "instruction_id": self.instruction_id, "chain": self.chain, "event": self.fields,
        }


def type_name(topic: str) -> str:
    return topic.rsplit(".", 1)[-1] if "." in topic else topic.rsplit(":", 1)[-1]


def resolve_types(names: list[str]) -> frozenset[str]:
    """Topics for `--type` names (class names, any case, or full topics; commas allowed)."""
    lower = {name.lower(): topic for name, topic in EVENT_TYPES.items()}
    topics = set(EVENT_TYPES.values())
    out: set[str] = set()
    for item in names:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name in topics:
                out.add(name)
            elif name.lower() in lower:
                out.add(lower[name.lower()])
            else:
                raise AuditInputError(
                    f"--type: unknown event type {name!r}; known types: {', '.join(sorted(EVENT_TYPES))}")
    return frozenset(out)


def parse_time(text: str, option: str) -> datetime:
    """An ISO date or time; a date means its 00:00 UTC, a time without offset is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditInputError(
            f"{option}: cannot read {text!r} as an ISO time (e.g. 2024-01-02 or 2024-01-02T10:00:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class EventQuery:
    """Filters of `ledger audit events`; empty sets mean everything."""

    venues: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    instruction: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


class LogReader:
    """Walks the stored rows once, in notification order, yielding the records a query selects.

    Rows are filtered before decoding wherever the raw row allows (topic, stream's venue, instruction
    id bytes), so a query over millions of events decodes only what it may show. After the walk,
    `venues` and `instruction_seen` tell an empty answer from an unknown name.
    """

    def __init__(self, ledger: Any, query: EventQuery | None = None) -> None:
        self.ledger = ledger
        self.query = query or EventQuery()
        self.venues: dict[str, str] = {}  # stream hex -> venue
        self.instruction_seen = False
        self.matched = 0
        self._transfers: set[bytes] = set()
        needle = self.query.instruction
        self._needle = needle.encode() if needle else None

    def records(self, after: int = 0, stop: int | None = None) -> Iterator[tuple[EventRecord, bytes]]:
        """(record, plaintext stored state) pairs the query selects."""
        for record, state, _event in self.entries(after, stop):
            yield record, state

    def entries(self, after: int = 0, stop: int | None = None) -> Iterator[tuple[EventRecord, bytes, Any]]:
        """(record, plaintext stored state, decoded event) triples the query selects."""
        q = self.query
        plaintext = self.ledger.codec.plaintext
        decode = self.ledger.decode_row
        for nid, stream, version, topic, state in self.ledger.iter_rows(after, stop):
            if isinstance(state, str):
                state = state.encode()
            plain_state = plaintext(state)
            row = (nid, stream, version, topic, state)
            event = None
            if topic == OPENED:
                event = decode(row)
                self.venues[stream] = str(event.venue)
            if self._needle is not None:
                # The instruction filter is the most selective: bytes first, then the decoded event
                # (which also learns the instruction's transfers, whatever the other filters say).
                if not self._mentions(topic, plain_state):
                    continue
                event = event or decode(row)
                if not self._owned(event):
                    continue
            if q.topics and topic not in q.topics:
                continue
            if q.venues and self.venues.get(stream) not in q.venues:
                continue
            event = event or decode(row)
            ts: datetime = event.ts_event
            if (q.since is not None and ts < q.since) or (q.until is not None and ts > q.until):
                continue
            self.matched += 1
            yield self._record(nid, stream, version, topic, event, plain_state), plain_state, event
            if q.limit is not None and self.matched >= q.limit:
                return

    def _mentions(self, topic: str, plain_state: bytes) -> bool:
        if self._needle is not None and self._needle in plain_state:
            return True
        return topic == TRANSFER_RECEIVED and any(t in plain_state for t in self._transfers)

    def _owned(self, event: Any) -> bool:
        iid = getattr(event, "instruction_id", None)
        if iid == self.query.instruction:
            self.instruction_seen = True
            if type(event).__name__ == "TransferSent":
                self._transfers.add(str(event.transfer_id).encode())
            return True
        transfer = getattr(event, "transfer_id", None)
        return type(event).__name__ == "TransferReceived" and str(transfer).encode() in self._transfers

    def _record(self, nid: int, stream: str, version: int, topic: str, event: Any,
                plain_state: bytes) -> EventRecord:
        fields = {k: plain(v) for k, v in vars(event).items() if k not in _SKIP_FIELDS}
        iid = getattr(event, "instruction_id", None)
        return EventRecord(
            notification_id=nid, stream=stream, version=version, topic=topic, type=type_name(topic),
            venue=self.venues.get(stream), ts=event.ts_event.isoformat(),
            instruction_id=iid if isinstance(iid, str) else None, fields=fields,
            chain=split_state(plain_state)[1],
        )


def known_venues(ledger: Any) -> set[str]:
    """Every venue with a stream in this ledger (one pass over the raw rows, decoding only openings)."""
    return {str(ledger.decode_row(row).venue) for row in ledger.iter_rows() if row[3] == OPENED}


def time_bounds(ledger: Any) -> tuple[datetime, datetime] | None:
    """The event times of the first and the last stored event, or None for an empty log."""
    last_id = ledger.max_notification_id()
    if not last_id:
        return None
    with closing(ledger.iter_rows(0, None, 1)) as rows:
        first_row = next(rows, None)
    last = list(ledger.iter_rows(last_id - 1, last_id))
    if first_row is None or not last:
        return None
    return ledger.decode_row(first_row).ts_event, ledger.decode_row(last[-1]).ts_event


def check_range(ledger: Any, since: datetime | None, until: datetime | None) -> None:
    """Refuse a time range that cannot hold any event of this log."""
    if since is not None and until is not None and since > until:
        raise AuditInputError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    bounds = time_bounds(ledger)
    if bounds is None:
        return
    first, last = bounds
    if since is not None and since > last:
        raise AuditInputError(
            f"--since {since.isoformat()} is after the last event ({last.isoformat()})")
    if until is not None and until < first:
        raise AuditInputError(
            f"--until {until.isoformat()} is before the first event ({first.isoformat()})")


# ---- an instruction's story ----------------------------------------------------------------------------


@dataclass
class Story:
    """Everything recorded for one instruction, in notification order, and where it ended."""

    instruction_id: str
    venue: str | None
    status: str | None
    instruction: dict[str, Any]
    market: dict[str, Any]
    events: list[EventRecord]
    filled: Decimal
    notional: Decimal
    fees: dict[str, Decimal]

    @property
    def average_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    def to_json(self) -> dict[str, Any]:
        avg = self.average_price
        return {
            "instruction_id": self.instruction_id, "venue": self.venue, "status": self.status,
            "instruction": self.instruction, "market": self.market,
            "filled": str(self.filled), "average_price": None if avg is None else str(avg),
            "fees": {k: str(v) for k, v in self.fees.items()},
            "events": [r.to_json() for r in self.events],
        }


def instruction_story(ledger: Any, instruction_id: str) -> Story:
    """The instruction's full story; an id this ledger never recorded is an AuditInputError."""
    from aggregates.errors import IllegalTransitionError
    from aggregates.transitions import next_state

    reader = LogReader(ledger, EventQuery(instruction=instruction_id))
    events = [record for record, _state in reader.records()]
    if not reader.instruction_seen:
        raise AuditInputError(f"no instruction {instruction_id!r} in this ledger")
    status: State | None = None
    amount = filled = notional = Decimal(0)
    fees: dict[str, Decimal] = {}
    instruction: dict[str, Any] = {}
    market: dict[str, Any] = {}
    venue = None
    for r in events:
        move = r.type
        f = r.fields
        if r.type == "InstructionAccepted":
            instruction, market, venue = f["instruction"], f["market"], r.venue
            amount = Decimal(instruction["amount"]) if instruction.get("amount") else Decimal(0)
        elif r.type == "InstructionRejected":
            venue = venue or r.venue
        elif r.type == "OrderFilled":
            quantity = Decimal(f["quantity"])
            filled += quantity
            notional += quantity * Decimal(f["price"])
            fees[f["fee_asset"]] = fees.get(f["fee_asset"], Decimal(0)) + Decimal(f["fee"])
            move = "OrderFilled.complete" if amount and filled >= amount else "OrderFilled.partial"
        elif r.type == "OrderReconciled":
            move = f"OrderReconciled.{f['outcome']}"
        elif r.type in ("TransactionConfirmed", "TransactionReverted"):
            fees["gas"] = fees.get("gas", Decimal(0)) + Decimal(f["gas_fee"])
        elif r.type == "TransferSent" and Decimal(f["fee"]):
            fees[f["asset"]] = fees.get(f["asset"], Decimal(0)) + Decimal(f["fee"])
        # The story shows what was recorded; `audit verify` judges the moves.
        with suppress(IllegalTransitionError):
            status = next_state(instruction_id, status, move)
    return Story(instruction_id, venue, None if status is None else str(status), instruction, market,
                 events, filled, notional, fees)


# ---- the full audit -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong by one check, located at an event where the check allows."""

    check: str  # "chain" | "lifecycle" | "views" | "snapshots"
    message: str
    notification_id: int | None = None
    stream: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.notification_id is not None:
            where = f"notification {self.notification_id}, "
        if self.stream is not None:
            where += f"stream {self.stream}, version {self.version}: "
        return where + self.message

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "notification_id": self.notification_id, "stream": self.stream,
                "version": self.version, "problem": self.message}


@dataclass
class Audit:
    """The outcome of `ledger audit verify`: what each check saw, and the first problem."""

    chain: Verification
    instructions: int = 0
    views: str = "not checked"  # "equal" | "absent" | "not checked" | "different"
    views_position: int = 0
    snapshots: int = 0
    open_sessions: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        c = self.chain
        return {
            "ok": self.ok, "events": c.events, "checkpoints": c.checkpoints, "uncovered": c.uncovered,
            "head": c.head, "after_anchor": c.after_anchor, "instructions": self.instructions,
            "views": self.views, "views_position": self.views_position, "snapshots": self.snapshots,
            "open_sessions": self.open_sessions,
            "problem": self.first.to_json() if self.first else None,
        }


Phase = Callable[[str, int, int], None]


def audit_ledger(ledger: Any, anchor: dict[str, Any] | None = None, progress: Phase | None = None) -> Audit:
    """Chain and checkpoints first (a broken chain makes the rest meaningless), then the lifecycle of
    every instruction, the SQL views against a rebuild, and the stored snapshots against the events.
    `progress(phase, done, total)` follows the passes: "chain", "lifecycle" (events), "snapshots"
    (streams)."""
    total = ledger.max_notification_id()

    def tell(phase: str, of: int) -> Callable[[int], None] | None:
        return None if progress is None else (lambda done: progress(phase, done, of))

    chain = verify_chain(ledger, anchor=anchor, progress=tell("chain", total))
    result = Audit(chain=chain)
    if not chain.ok:
        first = chain.first
        assert first is not None
        result.problems.append(_chain_problem(first))
        return result
    views = _ViewCheck(ledger)
    try:
        result.problems += _check_lifecycle(ledger, _Tap(ledger, views, tell("lifecycle", total)), result,
                                            views)
        result.views, result.views_position = views.outcome, views.position
        if views.problem is None and views.outcome == "pending":
            problem = views.compare()
            result.views = "equal" if problem is None else "different"
            if problem is not None:
                result.problems.append(problem)
        elif views.problem is not None:
            result.views = "different"
            result.problems.append(views.problem)
    finally:
        views.close()
    if not result.problems:
        snapshot_problem, result.snapshots = _check_snapshots(
            ledger, chain.heads, tell("snapshots", len(chain.heads)))
        if snapshot_problem is not None:
            result.problems.append(snapshot_problem)
    return result


def _chain_problem(first: Finding) -> Problem:
    if first.stream == "-":
        return Problem("chain", first.problem)
    return Problem("chain", first.problem, first.notification_id, first.stream, first.version)


class _Tap:
    """One decoding pass over the log feeding the lifecycle checker, the view rebuild and the
    session bookkeeping at once (three passes over millions of events would triple the time)."""

    def __init__(self, ledger: Any, views: _ViewCheck, progress: Callable[[int], None] | None = None) -> None:
        self.ledger = ledger
        self.views = views
        self.progress = progress
        self.last_event: dict[str, tuple[int, str, int]] = {}  # instruction -> its last event
        self.modes: dict[str, str] = {}  # session stream -> mode
        self.keys: dict[str, str] = {}  # session stream -> session key
        self.ended: dict[str, str] = {}
        self.owners: dict[str, str] = {}

    def iter_events(self, after: int = 0, stop: int | None = None) -> Iterator[tuple[int, Any]]:
        pending: list[tuple[int, Any]] = []
        views = self.views
        for row in self.ledger.iter_rows(after, stop):
            nid, stream, version, topic, _state = row
            event = self.ledger.decode_row(row)
            if topic == SESSION_STARTED:
                self.modes[stream] = str(event.mode)
                self.keys[stream] = str(event.session_key)
            elif topic == SESSION_ENDED:
                self.ended[stream] = str(event.reason)
            iid = getattr(event, "instruction_id", None)
            if topic == TRANSFER_SENT:
                self.owners[event.transfer_id] = event.instruction_id
            elif topic == TRANSFER_RECEIVED:
                iid = self.owners.get(event.transfer_id)
            if isinstance(iid, str):
                self.last_event[iid] = (nid, stream, version)
            if views.feeding and nid <= views.position:
                pending.append((nid, event))
                if len(pending) >= 20_000:
                    views.feed(pending)
                    pending = []
            if self.progress is not None and nid % PROGRESS_EVERY == 0:
                self.progress(nid)
            yield nid, event
        if pending:
            views.feed(pending)


_NOTIFICATION = re.compile(r"^notification (\d+): (.*)$", re.S)
_INSTRUCTION = re.compile(r"^instruction (\S+?):? ")


def _check_lifecycle(ledger: Any, tap: _Tap, result: Audit, views: _ViewCheck) -> list[Problem]:
    """The project's lifecycle checker over the tap; its first problem located at a stream and version."""
    from ledger.testing.checkers import BACKTEST_FINAL_STATES, check_lifecycle
    from ledger.testing.common import InvariantError

    # The fold is compared with the events' final states only when the rebuild reaches the end.
    state = views.state if views.feeding and views.position >= ledger.max_notification_id() else None
    try:
        final = check_lifecycle(tap, final_states=frozenset(State), state=state)  # type: ignore[arg-type]
        problems: list[str] = []
    except InvariantError as e:
        final, problems = {}, e.problems
    result.open_sessions = sorted(tap.keys[s] for s in tap.modes if s not in tap.ended)
    result.instructions = len(tap.last_event)
    # Only a finished backtest must leave every instruction settled; a live log has orders in flight.
    finished_backtests = (tap.modes and set(tap.modes.values()) == {"backtest"}
                          and not result.open_sessions and set(tap.ended.values()) == {"completed"})
    if finished_backtests and not problems:
        allowed = ", ".join(sorted(BACKTEST_FINAL_STATES))
        problems = [f"instruction {iid} ended in {s}, not one of {allowed}"
                    for iid, s in sorted(final.items()) if s not in BACKTEST_FINAL_STATES]
    if not problems:
        return []
    text = problems[0]
    match = _NOTIFICATION.match(text)
    if match:
        nid = int(match.group(1))
        rows = list(ledger.iter_rows(nid - 1, nid))
        if rows:
            return [Problem("lifecycle", match.group(2), nid, rows[0][1], rows[0][2])]
        return [Problem("lifecycle", match.group(2), nid)]
    found = _INSTRUCTION.match(text)
    if found and found.group(1) in tap.last_event:
        nid, stream, version = tap.last_event[found.group(1)]
        return [Problem("lifecycle", text, nid, stream, version)]
    return [Problem("lifecycle", text)]


class _ViewCheck:
    """The SQL views stored beside the events, and a rebuild of them into a temporary database."""

    def __init__(self, ledger: Any) -> None:
        from sqlalchemy import inspect

        from projections.sql import VIEW_NAME, _tables

        self.ledger = ledger
        self.problem: Problem | None = None
        self.outcome = "absent"
        self.position = 0
        self.feeding = False
        self.state: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.rebuilt: Any = None
        url = ledger.url
        self.schema = url.schema if url.kind == "postgresql" else None
        self.engine = _readonly_engine(url)
        _md, self.tables = _tables(self.schema)
        if not inspect(self.engine).has_table("view_tracking", schema=self.schema):
            return
        tracking = self.tables["tracking"]
        from sqlalchemy import select

        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(tracking).where(tracking.c.name == VIEW_NAME)).first()
        except Exception as e:  # a damaged tracking table is a finding, not a crash
            self.problem = Problem("views", f"view_tracking cannot be read ({_first_line(e)})")
            return
        if row is None:
            return
        self.tracked = row
        self.position = int(row.notification_id)
        last = ledger.max_notification_id()
        if self.position > last:
            self.problem = Problem(
                "views", f"the SQL views were built from {self.position} notifications but the log "
                f"ends at {last}: events were removed after the views were written")
            return
        from ledger.stores import sqlite_url
        from projections.sql import SQLProjection

        self._tmp = tempfile.TemporaryDirectory(prefix="ledger-audit-")
        self.rebuilt = SQLProjection(sqlite_url(Path(self._tmp.name) / "views.db"))
        self.state = self.rebuilt.state
        self.feeding = True
        self.outcome = "pending"

    def feed(self, pairs: list[tuple[int, Any]]) -> None:
        self.rebuilt.commit(pairs)
        self.state = self.rebuilt.state

    def compare(self) -> Problem | None:
        """The first row where the stored views and the rebuild differ, or None."""
        from sqlalchemy import inspect, select

        names = set(inspect(self.engine).get_table_names(schema=self.schema))
        rebuilt = self.rebuilt
        tracked, fresh = self.tracked, rebuilt.state
        last_ts = fresh.last_ts.isoformat() if fresh.last_ts else ""
        expected = (fresh.events, fresh.fills_count, last_ts)
        got = (tracked.events, tracked.fills_count, tracked.last_ts)
        if got != expected:
            return Problem("views", f"view_tracking records (events, fills, last time) {got}, a rebuild "
                           f"from notifications up to {self.position} gives {expected}")
        for key, table in self.tables.items():
            if key == "tracking":
                continue
            if table.name not in names:
                return Problem("views", f"{table.name} is missing from the database")
            pk = list(table.primary_key.columns)
            order = [c.collate("C") for c in pk] if self.schema is not None else pk
            try:
                with self.engine.connect() as theirs, rebuilt.engine.connect() as ours:
                    stored = theirs.execute(select(table).order_by(*order))
                    own = rebuilt.tables[key]
                    fresh_rows = ours.execute(select(own).order_by(*own.primary_key.columns))
                    problem = _first_difference(table.name, [c.name for c in pk], stored, fresh_rows)
            except Exception as e:  # unreadable stored values (e.g. text where a number belongs)
                return Problem("views", f"{table.name} cannot be read ({_first_line(e)})")
            if problem is not None:
                return Problem("views", f"{problem} (views at notification {self.position})")
        return None

    def close(self) -> None:
        if self.rebuilt is not None:
            self.rebuilt.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        self.engine.dispose()


def _first_difference(name: str, pk: list[str], stored: Any, fresh: Any) -> str | None:
    """Merge-join two result sets ordered by primary key; describe the first difference."""
    a, b = next(stored, None), next(fresh, None)
    while a is not None or b is not None:
        ka = tuple(getattr(a, k) for k in pk) if a is not None else None
        kb = tuple(getattr(b, k) for k in pk) if b is not None else None
        if ka == kb:
            assert a is not None and b is not None
            if tuple(a) != tuple(b):
                cols = [c for c, x, y in zip(a._fields, a, b, strict=True) if x != y]
                shown = ", ".join(f"{c} is {getattr(a, c)} in the database, {getattr(b, c)} rebuilt"
                                  for c in cols)
                return f"{name} row {_key(kb)}: {shown}"
            a, b = next(stored, None), next(fresh, None)
        elif kb is None or (ka is not None and ka < kb):
            return f"{name} row {_key(ka)} is in the database but not in a rebuild"
        else:
            return f"{name} row {_key(kb)} is missing from the database"
    return None


def _key(values: tuple[Any, ...] | None) -> str:
    return "(" + ", ".join(map(str, values or ())) + ")"


def _readonly_engine(url: Any) -> Any:
    from sqlalchemy import create_engine

    if url.kind == "postgresql":
        auth = url.user + (f":{url.password}" if url.password else "")
        return create_engine(f"postgresql+psycopg://{auth}@{url.host}:{url.port}/{url.dbname}",
                             pool_pre_ping=True)
    from ledger.stores import readonly_uri, sqlite_engine

    return sqlite_engine(readonly_uri(url.path))


def _check_snapshots(ledger: Any, streams: Iterable[str], progress: Callable[[int], None] | None = None,
                     ) -> tuple[Problem | None, int]:
    """Every stored snapshot equals its aggregate rebuilt from the events up to its version
    (a forged snapshot would change what a live writer loads)."""
    snapshots = getattr(ledger, "snapshots", None)
    if snapshots is None:
        return None, 0
    from eventsourcing.utils import resolve_topic

    count = 0
    for done, stream in enumerate(sorted(streams)):
        if progress is not None:
            progress(done)
        oid = UUID(stream)
        aggregate: Any = None
        version = 0
        while True:
            # One snapshot at a time: a long stream's snapshot state can be large.
            try:
                found = list(snapshots.get(oid, gt=version, limit=1))
            except Exception as e:
                problem = f"snapshots cannot be read ({_first_line(e)})"
                return Problem("snapshots", problem, None, stream, version), count
            if not found:
                break
            snap = found[0]
            count += 1
            target = snap.originator_version
            while aggregate is None or aggregate.version < target:  # in pages: streams can be long
                page = list(ledger.events.get(oid, gt=version, lte=target, limit=5_000))
                if not page:
                    break
                for event in page:
                    aggregate = event.mutate(aggregate)
                version = page[-1].originator_version
            version = target
            if aggregate is None or aggregate.version != target:
                return Problem("snapshots", f"snapshot at version {target} has no events behind it",
                               None, stream, target), count
            cls = resolve_topic(snap.topic)
            if snap.state != plain(aggregate.snapshot_state()) or not isinstance(aggregate, cls):
                return Problem("snapshots", "stored snapshot differs from the aggregate rebuilt from "
                               "its events (edited or forged snapshot)", None, stream, target), count
    return None, count


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

