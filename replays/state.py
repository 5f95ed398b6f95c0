"""Point-in-time state (SPEC §12.11): a plain-data codec for `LedgerState` and a snapshot cache that
answers "the state as of notification N or ledger time T" with a snapshot plus a short tail.

Ledger time is each event's `ts_event`. The state *as of T* is the fold of the longest prefix of the log
(in notification order) whose events all carry `ts_event <= T`; when times never go backwards (every
backtest) that is every event up to and including the last one stamped at or before T. *As of N* is the
fold of every notification up to and including N.

The cache is a separate SQLite file (`<db>.states` beside a SQLite ledger; the ledger itself is only
read). It holds, every `every` notifications, the small part of the state in full (balances, positions,
marks, P&L, transit, …) and, for the parts that only grow (orders, on-chain transaction effects, the
equity series), only what changed since the previous snapshot, plus an index from ledger time to
notification id. Everything in it is msgspec JSON and integers — never pickle — and it is derived data:
delete it at any time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from aggregates.errors import LedgerError
from aggregates.values import MONEY
from projections.folds import apply
from projections.state import LedgerState as LedgerState
from projections.state import Order, Position, Transit

FORMAT = "replay-states/2"  # of the cache file and of `encode_state`; another value is rebuilt
DEFAULT_EVERY = 2_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayError(LedgerError):
    """A replay request that cannot be answered as given (out of range, no such time, …)."""


# ---- the plain-data codec ----------------------------------------------------------------------------

OrderRow = tuple[str, str, str, str, Decimal, str, str, Decimal, Decimal, Decimal, str, str]
EffectRow = tuple[str, str, str, str, Decimal]


class Core(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The bounded part of a `LedgerState`, stored whole in every snapshot."""

    streams: list[tuple[str, str]]
    balances: list[tuple[str, str, str, Decimal]]
    positions: list[tuple[str, str, str, Decimal, Decimal, Decimal, Decimal]]
    supplied: list[tuple[str, str, Decimal]]
    borrowed: list[tuple[str, str, Decimal]]
    transit: list[tuple[str, str, str, str, str, str, Decimal, str]]
    pnl: list[tuple[str, str, Decimal]]
    pnl_usd: list[tuple[str, Decimal]]
    marks: list[tuple[str, Decimal]]
    observed: list[tuple[str, str, str, Decimal]]
    fills_count: int
    events: int
    last_ts: datetime | None
    equity_due: datetime | None


class PlainState(msgspec.Struct, forbid_unknown_fields=True):
    """A whole `LedgerState` as plain data (JSON-safe; Decimals exact, as strings)."""

    format: str
    core: Core
    orders: dict[str, OrderRow]
    tx_effects: dict[str, list[EffectRow]]
    equity: list[tuple[str, Decimal]]


_encode = msgspec.json.Encoder(decimal_format="string").encode
_core = msgspec.json.Decoder(Core)
_order = msgspec.json.Decoder(OrderRow)
_effects = msgspec.json.Decoder(list[EffectRow])
_plain = msgspec.json.Decoder(PlainState)


def _core_of(s: LedgerState) -> Core:
    return Core(
        streams=[(k.hex, v) for k, v in s.streams.items()],
        balances=[(*k, v) for k, v in s.balances.items()],
        positions=[(*k, p.market_type, p.quantity, p.avg_entry, p.realised, p.fees)
                   for k, p in s.positions.items()],
        supplied=[(*k, v) for k, v in s.supplied.items()],
        borrowed=[(*k, v) for k, v in s.borrowed.items()],
        transit=[(k, t.from_venue, t.from_wallet, t.to_venue, t.to_wallet, t.asset, t.amount,
                  t.instruction_id) for k, t in s.transit.items()],
        pnl=[(*k, v) for k, v in s.pnl.items()],
        pnl_usd=list(s.pnl_usd.items()),
        marks=list(s.marks.items()),
        observed=[(*k, v) for k, v in s.observed.items()],
        fills_count=s.fills_count,
        events=s.events,
        last_ts=s.last_ts,
        equity_due=s.equity_due,
    )


def _state_of(c: Core) -> LedgerState:
    s = LedgerState(keep_fills=False)
    s.streams = {UUID(k): v for k, v in c.streams}
    s.balances = {(v, w, a): x for v, w, a, x in c.balances}
    s.positions = {(v, i): Position(m, q, e, r, f) for v, i, m, q, e, r, f in c.positions}
    s.supplied = {(v, a): x for v, a, x in c.supplied}
    s.borrowed = {(v, a): x for v, a, x in c.borrowed}
    s.transit = {k: Transit(fv, fw, tv, tw, a, x, i) for k, fv, fw, tv, tw, a, x, i in c.transit}
    s.pnl = {(line, a): x for line, a, x in c.pnl}
    s.pnl_usd = dict(c.pnl_usd)
    s.marks = dict(c.marks)
    s.observed = {(v, w, a): x for v, w, a, x in c.observed}
    s.fills_count, s.events = c.fills_count, c.events
    s.last_ts = _utc(c.last_ts)
    s.equity_due = _utc(c.equity_due)
    return s


def _utc(ts: datetime | None) -> datetime | None:
    return ts.astimezone(UTC) if ts is not None else None


def _order_row(o: Order) -> OrderRow:
    return (o.venue, o.kind, o.instrument, o.side, o.amount, o.wallet, o.status, o.filled, o.notional,
            o.fees, o.ts_accepted, o.code)


def state_to_plain(state: LedgerState) -> PlainState:
    """Everything the folds maintain (not the SQL writer's `dirty` set or the transient new fills)."""
    return PlainState(
        format=FORMAT,
        core=_core_of(state),
        orders={k: _order_row(o) for k, o in state.orders.items()},
        tx_effects={k: list(v) for k, v in state.tx_effects.items()},
        equity=list(state.equity),
    )


def state_from_plain(plain: PlainState) -> LedgerState:
    state = _state_of(plain.core)
    state.orders = {k: Order(*row) for k, row in plain.orders.items()}
    state.tx_effects = {k: list(v) for k, v in plain.tx_effects.items()}
    state.equity = list(plain.equity)
    return state


def encode_state(state: LedgerState) -> bytes:
    """A `LedgerState` as JSON bytes (exact Decimals, UTC times)."""
    return _encode(state_to_plain(state))


def decode_state(data: bytes) -> LedgerState:
    """The inverse of `encode_state`; malformed input is a ReplayError, never code execution."""
    try:
        plain = _plain.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ReplayError(f"not an encoded ledger state: {e}") from None
    if plain.format != FORMAT:
        raise ReplayError(f"encoded ledger state has format {plain.format!r}, expected {FORMAT!r}")
    return state_from_plain(plain)


# ---- where we are in the log -------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """Where a replayed state stands: its last notification, its ledger time, how it was built."""

    notification: int
    ts: datetime | None
    snapshot: int  # notification of the snapshot it started from (0: folded from the first event)
    tail: int  # events folded on top of that snapshot
    as_of: datetime | None = None


def micros(ts: datetime) -> int:
    delta = ts.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _ts(event: Any) -> datetime | None:
    return getattr(event, "ts_event", None)


def referenced(events: Iterable[tuple[int, Any]], state: LedgerState) -> tuple[set[str], set[str]]:
    """The order and transaction keys the folds will read while applying `events` on top of `state`
    (an order created by the tail's own `InstructionAccepted` needs no lookup)."""
    orders: set[str] = set()
    created: set[str] = set()
    txs: set[str] = set()
    for _nid, event in events:
        name = type(event).__name__
        iid = getattr(event, "instruction_id", None)
        if name == "TransferReceived":
            transit = state.transit.get(event.transfer_id)
            iid = transit.instruction_id if transit is not None else None
        if iid:
            if name == "InstructionAccepted":
                created.add(iid)
            elif iid not in created:
                orders.add(iid)
        if name == "TransactionReorged":
            txs.add(event.tx_hash)
    return orders - state.orders.keys(), txs - state.tx_effects.keys()


def fold_tail(state: LedgerState, events: Iterable[tuple[int, Any]]) -> LedgerState:
    for _nid, event in events:
        apply(state, event)
    state.new_fills.clear()
    state.dirty.clear()
    return state


# ---- the snapshot cache ------------------------------------------------------------------------------

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS snapshots (nid INTEGER PRIMARY KEY, digest TEXT NOT NULL, "
    "core BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS orders (key TEXT NOT NULL, nid INTEGER NOT NULL, body BLOB, "
    "PRIMARY KEY (key, nid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tx_effects (key TEXT NOT NULL, nid INTEGER NOT NULL, body BLOB, "
    "PRIMARY KEY (key, nid)) WITHOUT ROWID",
    # keyed by position, so two processes extending one cache at once write the same rows
    "CREATE TABLE IF NOT EXISTS equity (nid INTEGER NOT NULL, idx INTEGER NOT NULL, ts TEXT NOT NULL, "
    "value TEXT NOT NULL, PRIMARY KEY (nid, idx)) WITHOUT ROWID",
    # `ts` is the ledger time (running maximum of ts_event, in µs) from notification `first` on;
    # `prev` is the notification just before `first`.
    "CREATE TABLE IF NOT EXISTS times (ts INTEGER PRIMARY KEY, first INTEGER NOT NULL, "
    "prev INTEGER NOT NULL) WITHOUT ROWID",
)
TABLES = ("meta", "snapshots", "orders", "tx_effects", "equity", "times")


def default_cache(ledger: Any) -> Path | None:
    """`<db>.states` beside a SQLite ledger — or, when that folder is not writable (read-only media),
    `<temp>/ledger-states/<hash of the ledger's path>-<name>.states`; None for other stores and for an
    encrypted ledger (the cache holds plaintext balances: name a path explicitly to accept that)."""
    url = ledger.url
    if url.kind != "sqlite" or encrypted(ledger):
        return None
    beside = Path(f"{url.path}.states")
    if os.access(beside.resolve().parent, os.W_OK | os.X_OK):
        return beside
    folder = Path(tempfile.gettempdir()) / "ledger-states"
    folder.mkdir(mode=0o700, exist_ok=True)
    key = hashlib.sha256(str(Path(url.path).resolve()).encode()).hexdigest()[:16]
    return folder / f"{key}-{beside.name}"


def encrypted(ledger: Any) -> bool:
    return bool(getattr(ledger, "env", {}).get("CIPHER_KEY"))


def row_digest(ledger: Any, nid: int) -> str | None:
    """The stored chain digest of notification `nid` (None when there is no such notification)."""
    for row in ledger.iter_rows(nid - 1, nid):
        if row[0] == nid:
            return str(ledger.stored_digest(row[4]))
    return None


def first_row(ledger: Any) -> tuple[int, str] | None:
    for row in ledger.iter_rows(0, None, batch=1):
        return row[0], str(ledger.stored_digest(row[4]))
    return None


class StateCache:
    """The snapshot cache of one ledger (see the module docstring). Open with `StateCache.open`."""

    def __init__(self, ledger: Any, path: Path, con: sqlite3.Connection, every: int) -> None:
        self.ledger = ledger
        self.path = path
        self.con = con
        self.every = every

    # -- opening and building --------------------------------------------------------------------

    @classmethod
    def open(cls, ledger: Any, path: Path, every: int | None = None, *, rebuild: bool = False,
             progress: Any = None) -> StateCache:
        """Open (creating, validating against the ledger and extending to its end) the cache at `path`.
        `every` None keeps the cadence the cache was built with (DEFAULT_EVERY for a new one); another
        cadence rebuilds it. OSError or sqlite3.Error when the file cannot be created or written;
        ReplayError when `path` is some other file."""
        if every is not None and every <= 0:
            raise ReplayError(f"--every: must be positive, got {every}")
        if path.is_dir():
            raise ReplayError(f"{path} is a directory, not a replay-state cache")
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise ReplayError(f"{path} is not a replay-state cache (delete it or pass --cache)")
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            cache = cls(ledger, path, con, every or DEFAULT_EVERY)
            cache._prepare(rebuild, explicit=every is not None)
            cache.extend(progress)
        except BaseException:
            con.close()
            raise
        return cache

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> StateCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _prepare(self, rebuild: bool, explicit: bool) -> None:
        con = self.con
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if names and "meta" not in names:
            raise ReplayError(f"{self.path} is a SQLite file but not a replay-state cache "
                              "(delete it or pass --cache)")
        first = first_row(self.ledger)
        identity = f"{first[0]}:{first[1]}" if first else ""
        if names:
            stored_every = self.meta("every") or ""
            if not explicit and stored_every.isdigit() and int(stored_every) > 0:
                self.every = int(stored_every)
            stale = (self.meta("format") != FORMAT or self.meta("ledger") != identity
                     or str(self.every) != stored_every or not self._end_matches())
            if not (rebuild or stale):
                return
            con.execute("BEGIN IMMEDIATE")
            for table in TABLES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute("COMMIT")
        con.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA:
            con.execute(statement)
        con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("format", FORMAT), ("ledger", identity), ("every", str(self.every)), ("end", "0"),
            ("url", self.ledger.url.redacted)])
        con.execute("COMMIT")

    @property
    def end(self) -> int:
        """The last notification the cache covers (a snapshot is stored there)."""
        return int(self.meta("end") or 0)

    def _end_matches(self) -> bool:
        end = int(self.meta("end") or 0)
        if end == 0:
            return True
        row = self.con.execute("SELECT digest FROM snapshots WHERE nid=?", (end,)).fetchone()
        return row is not None and row[0] == row_digest(self.ledger, end)

    def extend(self, progress: Any = None) -> int:
        """Fold what the ledger holds after `end`, writing a snapshot every `every` notifications and
        one at the ledger's last notification. Memory stays flat: orders and transaction effects are
        dropped from memory once written and looked up again when a later event needs them."""
        top = self.ledger.max_notification_id()
        end = self.end
        if top <= end:
            return 0
        state = self._load(end, set(), set()) if end else LedgerState(keep_fills=False)
        clock = state.last_ts
        written = 0
        times: list[tuple[int, int, int]] = []
        chunk: list[tuple[int, Any]] = []
        previous = end
        for pair in self.ledger.iter_events(end, top):
            nid, event = pair
            ts = _ts(event)
            if ts is not None and (clock is None or ts > clock):
                clock = ts
                times.append((micros(ts), nid, previous))
            previous = nid
            chunk.append(pair)
            if nid - end >= self.every or nid == top:
                orders, txs = referenced(chunk, state)
                self._preload(state, end, orders, txs)
                fold_tail_keep(state, chunk)
                self._write(state, nid, times)
                written += len(chunk)
                if progress is not None:
                    progress(nid, top)
                end, chunk, times = nid, [], []
        if chunk:  # the ledger's last rows were not reached by `top` (it cannot shrink; be safe)
            orders, txs = referenced(chunk, state)
            self._preload(state, end, orders, txs)
            fold_tail_keep(state, chunk)
            self._write(state, previous, times)
            written += len(chunk)
        return written

    def _write(self, state: LedgerState, nid: int, times: list[tuple[int, int, int]]) -> None:
        digest = row_digest(self.ledger, nid)
        if digest is None:
            raise ReplayError(f"notification {nid} vanished from the ledger while indexing it")
        orders = [(k, nid, _encode(_order_row(state.orders[k])) if k in state.orders else None)
                  for kind, k in state.dirty if kind == "orders" and isinstance(k, str)]
        txs = [(k, nid, _encode(state.tx_effects[k]) if k in state.tx_effects else None)
               for kind, k in state.dirty if kind == "tx_effects" and isinstance(k, str)]
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)",
                        (nid, digest, _encode(_core_of(state))))
            con.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?)", orders)
            con.executemany("INSERT OR REPLACE INTO tx_effects VALUES (?, ?, ?)", txs)
            con.executemany("INSERT OR REPLACE INTO equity VALUES (?, ?, ?, ?)",
                            [(nid, i, ts, str(v)) for i, (ts, v) in enumerate(state.equity)])
            con.executemany("INSERT OR REPLACE INTO times VALUES (?, ?, ?)", times)
            con.execute("UPDATE meta SET value=? WHERE key='end'", (str(nid),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        # Written: keep only the bounded part in memory.
        state.orders.clear()
        state.tx_effects.clear()
        state.equity.clear()
        state.dirty.clear()
        state.new_fills.clear()

    # -- reading ---------------------------------------------------------------------------------

    def snapshot_before(self, nid: int) -> int:
        row = self.con.execute("SELECT MAX(nid) FROM snapshots WHERE nid<=?", (nid,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _load(self, snap: int, orders: set[str], txs: set[str], complete: bool = False) -> LedgerState:
        row = self.con.execute("SELECT digest, core FROM snapshots WHERE nid=?", (snap,)).fetchone()
        if row is None:
            raise ReplayError(f"{self.path}: no snapshot at notification {snap}; rebuild the cache")
        try:
            state = _state_of(_core.decode(row[1]))
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ReplayError(f"{self.path}: snapshot {snap} is damaged ({e}); delete the cache") from None
        if complete:
            for key, body in self.con.execute(
                    "SELECT key, body FROM orders WHERE nid<=? ORDER BY nid", (snap,)):
                if body is None:
                    state.orders.pop(key, None)
                else:
                    state.orders[key] = Order(*_order.decode(body))
            for key, body in self.con.execute(
                    "SELECT key, body FROM tx_effects WHERE nid<=? ORDER BY nid", (snap,)):
                if body is None:
                    state.tx_effects.pop(key, None)
                else:
                    state.tx_effects[key] = list(_effects.decode(body))
            state.equity = [(ts, Decimal(v)) for ts, v in self.con.execute(
                "SELECT ts, value FROM equity WHERE nid<=? ORDER BY nid, idx", (snap,))]
        else:
            self._preload(state, snap, orders, txs)
        return state

    def _preload(self, state: LedgerState, snap: int, orders: set[str], txs: set[str]) -> None:
        if not snap:
            return
        for key in sorted(orders):
            row = self.con.execute("SELECT body FROM orders WHERE key=? AND nid<=? ORDER BY nid DESC "
                                   "LIMIT 1", (key, snap)).fetchone()
            if row is not None and row[0] is not None:
                state.orders[key] = Order(*_order.decode(row[0]))
        for key in sorted(txs):
            row = self.con.execute("SELECT body FROM tx_effects WHERE key=? AND nid<=? ORDER BY nid "
                                   "DESC LIMIT 1", (key, snap)).fetchone()
            if row is not None and row[0] is not None:
                state.tx_effects[key] = list(_effects.decode(row[0]))

    def state_at(self, nid: int, *, complete: bool = False) -> tuple[LedgerState, Point]:
        """The state after notification `nid`: the nearest snapshot at or before it, plus the tail.
        Without `complete` only the orders and transaction effects the tail touches are loaded (the
        reports — balances, positions, exposure, risk, P&L — need no others)."""
        snap = self.snapshot_before(nid)
        if snap:
            stored = self.con.execute("SELECT digest FROM snapshots WHERE nid=?", (snap,)).fetchone()[0]
            if stored != row_digest(self.ledger, snap):
                raise ReplayError(f"{self.path} does not match the ledger at notification {snap}; "
                                  "delete the cache (or pass --rebuild-cache)")
        tail = list(self.ledger.iter_events(snap, nid))
        if snap:
            state = self._load(snap, set(), set(), complete=complete)
            if not complete:
                orders, txs = referenced(tail, state)
                self._preload(state, snap, orders, txs)
        else:
            state = LedgerState(keep_fills=False)
        fold_tail(state, tail)
        return state, Point(nid, state.last_ts, snap, len(tail))

    def notification_at(self, when: datetime) -> int:
        """The last notification of the longest prefix whose events are all stamped at or before
        `when`; ReplayError when `when` is before the first event or after the latest."""
        con = self.con
        first = con.execute("SELECT ts, first FROM times ORDER BY ts LIMIT 1").fetchone()
        last = con.execute("SELECT ts FROM times ORDER BY ts DESC LIMIT 1").fetchone()
        if first is None or last is None:
            raise ReplayError("no event of the ledger carries a time (ts_event)")
        check_window(when, from_micros(first[0]), from_micros(last[0]))
        after = con.execute("SELECT prev FROM times WHERE ts>? ORDER BY ts LIMIT 1",
                            (micros(when),)).fetchone()
        return int(after[0]) if after is not None else self.end


def fold_tail_keep(state: LedgerState, events: Iterable[tuple[int, Any]]) -> None:
    """Fold keeping `dirty` (the writer needs it); only the transient fill list is dropped."""
    for _nid, event in events:
        apply(state, event)
    state.new_fills.clear()


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def check_window(when: datetime, first: datetime, last: datetime) -> None:
    if when < first:
        raise ReplayError(f"--as-of {when.isoformat()} is before the first event "
                          f"({first.isoformat()})")
    if when > last:
        raise ReplayError(f"--as-of {when.isoformat()} is after the last event ({last.isoformat()})")


# ---- without a cache -----------------------------------------------------------------------------

def scan_time(ledger: Any, when: datetime) -> int:
    """`StateCache.notification_at` by reading the log (no cache)."""
    clock: datetime | None = None
    first: datetime | None = None
    answer = 0
    for nid, event in ledger.iter_events():
        ts = _ts(event)
        if ts is not None and (clock is None or ts > clock):
            clock = ts
            first = first or ts
            if clock > when:
                check_window(when, first, clock)
                return answer
        answer = nid
    if first is None or clock is None:
        raise ReplayError("no event of the ledger carries a time (ts_event)")
    check_window(when, first, clock)
    return answer


def fold_to(ledger: Any, nid: int) -> tuple[LedgerState, Point]:
    state = LedgerState(keep_fills=False)
    count = 0
    for _n, event in ledger.iter_events(0, nid):
        apply(state, event)
        state.new_fills.clear()
        count += 1
        if count % 10_000 == 0:
            state.dirty.clear()
    state.dirty.clear()
    return state, Point(nid, state.last_ts, 0, count)


# ---- the one entry point -------------------------------------------------------------------------

@dataclass
class Replayed:
    state: LedgerState
    point: Point
    cache: Path | None
    note: str = ""


def check_notification(ledger: Any, nid: int) -> int:
    top = ledger.max_notification_id()
    if top == 0:
        raise ReplayError(f"{ledger.url.redacted} holds no events")
    first = first_row(ledger)
    low = first[0] if first else 1
    if not low <= nid <= top:
        raise ReplayError(f"--at {nid} is out of range: the ledger's notifications are {low}..{top}")
    return nid


def state_as_of(
    ledger: Any, *, at: int | None = None, as_of: datetime | None = None, cache: Path | bool | None = True,
    every: int | None = None, complete: bool = False, rebuild: bool = False,
) -> Replayed:
    """The state as of notification `at`, or ledger time `as_of`, or the end of the log.

    `cache`: True for the default cache file (none for PostgreSQL), a path, or False to fold from the
    first event. A cache that cannot be written is skipped with a note, never an error."""
    if at is not None and as_of is not None:
        raise ReplayError("give --as-of or --at, not both")
    top = ledger.max_notification_id()
    if top == 0:
        raise ReplayError(f"{ledger.url.redacted} holds no events")
    if at is not None:
        check_notification(ledger, at)
    path = default_cache(ledger) if cache is True else (cache or None)
    note = "" if path is not None or cache is False else (
        f"no default snapshot cache for {'an encrypted ledger' if encrypted(ledger) else 'this store'} "
        "(pass --cache PATH); folded from the first event")
    store: StateCache | None = None
    if path is not None:
        try:
            store = StateCache.open(ledger, Path(path), every, rebuild=rebuild)
        except (OSError, sqlite3.Error) as e:
            note = f"snapshot cache {path} not usable ({e}); folded from the first event"
            path = None
    if store is None:
        nid = at if at is not None else (scan_time(ledger, as_of) if as_of is not None else top)
        state, point = fold_to(ledger, nid)
        return Replayed(state, _with(point, as_of), None, note)
    with closing(store):
        nid = at if at is not None else (store.notification_at(as_of) if as_of is not None else top)
        state, point = store.state_at(nid, complete=complete)
    return Replayed(state, _with(point, as_of), Path(path) if path else None, note)


def _with(point: Point, as_of: datetime | None) -> Point:
    return Point(point.notification, point.ts, point.snapshot, point.tail, as_of)


def build_cache(ledger: Any, path: Path | None = None, every: int | None = None, *,
                rebuild: bool = False, progress: Any = None) -> tuple[Path, int, int]:
    """Build or extend the cache; returns (path, snapshots, notifications covered)."""
    target = path or default_cache(ledger)
    if target is None:
        why = "is encrypted (the cache holds plaintext)" if encrypted(ledger) else "is not a SQLite file"
        raise ReplayError(f"{ledger.url.redacted} {why}: pass --cache PATH")
    if ledger.max_notification_id() == 0:
        raise ReplayError(f"{ledger.url.redacted} holds no events")
    try:
        store = StateCache.open(ledger, target, every, rebuild=rebuild, progress=progress)
    except (OSError, sqlite3.Error) as e:
        raise ReplayError(f"cannot write the snapshot cache {target}: {e}") from None
    with closing(store):
        count = store.con.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
        return target, int(count), store.end


def report(state: LedgerState) -> dict[str, Any]:
    """Balances (per venue, supplied and borrowed marked), totals, positions, exposure, risk, P&L and
    equity of a state — what `ledger replay state` prints."""
    from projections import reports

    per_venue: dict[str, dict[str, Decimal]] = {}
    for (venue, _wallet, asset), amount in sorted(state.balances.items()):
        if amount:
            row = per_venue.setdefault(venue, {})
            row[asset] = MONEY.add(row.get(asset, Decimal(0)), amount)  # exact: 28 digits cannot hold 1e23
    for (venue, asset), amount in sorted(state.supplied.items()):
        if amount:
            per_venue.setdefault(venue, {})[f"{asset} (supplied)"] = amount
    for (venue, asset), amount in sorted(state.borrowed.items()):
        if amount:
            per_venue.setdefault(venue, {})[f"{asset} (borrowed)"] = -amount
    expo = reports.exposure(state)
    return {
        "events": state.events,
        "fills": state.fills_count,
        "balances": per_venue,
        "totals": reports.balances(state),
        "in_transit": reports.in_transit(state),
        "positions": reports.positions(state),
        "exposure": expo,
        "risk": reports.risk(state, expo=expo),
        "pnl": reports.pnl(state),
        "equity": reports.equity(state),
    }
