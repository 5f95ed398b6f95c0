"""Store selection from a URL, safe opening checks, and the faster SQLite recorder.

`sqlite:///path.db` (or a bare path) is the embedded default; `postgresql://user@host:port/db?schema=s`
shares a ledger between processes. Opening for reading never creates or changes anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)

from aggregates.errors import StoreError

SYNCHRONOUS = ("FULL", "NORMAL", "OFF", "EXTRA")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store location; `redacted` is safe to print (no password)."""

    kind: str  # "sqlite" | "memory" | "postgresql"
    path: str = ""
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = ""
    user: str = ""
    password: str = ""
    schema: str = "public"

    @property
    def redacted(self) -> str:
        if self.kind == "postgresql":
            return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}?schema={self.schema}"
        if self.kind == "memory":
            return "memory:"
        return f"sqlite:///{self.path}"


def parse_url(url: str | os.PathLike[str]) -> StoreURL:
    """Parse `sqlite:///p`, a bare path, `memory:` or `postgresql://…`; anything else is a StoreError."""
    text = os.fspath(url).strip()
    if not text:
        raise StoreError("database URL is empty; use sqlite:///path.db or postgresql://host/db")
    if text in ("memory:", "sqlite://", "sqlite:///:memory:"):
        return StoreURL(kind="memory")
    if "://" not in text:
        return StoreURL(kind="sqlite", path=str(Path(text)))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.query or parts.fragment or text.endswith(("?", "#")):
            raise StoreError(
                f"{text!r}: a sqlite:/// URL takes no query or fragment; write `?` as %3F and `#` as %23, "
                "or give the path alone")
        path = unquote(parts.path)
        path = path[1:] if path.startswith("//") else path
        if path.startswith("/") and text.startswith("sqlite:///") and not text.startswith("sqlite:////"):
            path = path[1:]
        if not path:
            raise StoreError(f"no file path in {text!r}; use sqlite:///path.db")
        return StoreURL(kind="sqlite", path=path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        query = parse_qs(parts.query)
        return StoreURL(
            kind="postgresql",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=(parts.path or "/").lstrip("/") or "postgres",
            user=unquote(parts.username or os.environ.get("PGUSER", "postgres")),
            password=unquote(parts.password or ""),
            schema=query.get("schema", ["public"])[0],
        )
    raise StoreError(
        f"unknown database URL scheme {parts.scheme!r}; use sqlite:///path.db or "
        "postgresql://user@host:port/dbname"
    )


def sqlite_uri(path: str | os.PathLike[str], **params: str) -> str:
    """The `file:` URI SQLite opens for `path`: absolute and percent-quoted, so a `?`, `#`, `%` or space
    in a file name is part of the name, never a parameter (`q?evil.db` opened `q`)."""
    uri = Path(path).resolve().as_uri()
    return f"{uri}?{urlencode(params)}" if params else uri


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """`sqlite:///…` for a file path, quoted so that `parse_url` gives the same path back."""
    return f"sqlite:///{quote(os.fspath(path))}"


def sqlite_engine(uri: str) -> Any:
    """A SQLAlchemy engine on the SQLite `file:` URI `uri` (from `sqlite_uri`), given to sqlite3 as it
    is: SQLAlchemy's own URL would read a `?` or `#` in the file name as its syntax."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import QueuePool

    return create_engine("sqlite://", poolclass=QueuePool,
                         creator=lambda: sqlite3.connect(uri, uri=True, timeout=30))


def readonly_uri(path: str | os.PathLike[str]) -> str:
    """A SQLite URI that cannot write and creates nothing. With no `-wal` file beside the ledger no
    connection has it open (SQLite removes the file when the last one closes), and the file is opened
    as immutable: a plain read-only connection would create a `-wal` and `-shm` it cannot remove, and
    on read-only media or in a folder we may not write to it cannot open at all. With a `-wal` (a
    writer is running) it is opened read-only alongside the writer."""
    file = Path(path).resolve()
    if Path(f"{file}-wal").exists():
        return sqlite_uri(file, mode="ro")
    return sqlite_uri(file, mode="ro", immutable="1")


def check_sqlite(path: str, *, create: bool) -> None:
    """Refuse a path that is not (and, when not creating, is not already) a ledger database."""
    file = Path(path)
    if file.is_dir():
        raise StoreError(f"{path} is a directory, not a ledger database")
    if not file.exists():
        if not create:
            raise StoreError(f"no ledger database at {path}")
        if not file.parent.exists():
            raise StoreError(f"cannot create {path}: directory {file.parent} does not exist")
        return
    if not os.access(file, os.R_OK):
        raise StoreError(f"cannot read {path}: permission denied")
    if file.stat().st_size == 0:
        if create:
            return
        raise StoreError(f"{path} is empty, not a ledger database")
    with open(file, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise StoreError(f"{path} is not a SQLite database")
    try:
        con = sqlite3.connect(readonly_uri(file), uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable SQLite database: {e}") from None
    if "stored_events" not in names and (names or not create):
        raise StoreError(f"{path} is a SQLite database but not a ledger (no stored_events table)")


def claim_fresh(path: str, *, force: bool) -> tuple[WriterLock, str | None]:
    """Make way for a fresh ledger at `path`, holding its writer lock (the caller releases it once the
    new ledger is open): nothing there, or an empty file, is used as it is; an existing ledger is
    replaced only with `force` (its -wal and -shm too), and the returned text says what was replaced;
    anything that is not a ledger is refused and left untouched."""
    lock = WriterLock(path)
    file = Path(path)
    if file.is_dir():
        raise StoreError(f"{path} is a directory, not a ledger database")
    lock.acquire()
    try:
        if not file.exists() or file.stat().st_size == 0:
            return lock, None
        try:
            check_sqlite(path, create=False)
        except StoreError as e:
            raise StoreError(f"{e}: not replaced (only a ledger is; choose another --db)") from None
        con = sqlite3.connect(readonly_uri(file), uri=True)
        try:
            events = con.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
        finally:
            con.close()
        if not force:
            raise StoreError(f"{path} already holds a ledger ({events} events); --force replaces it")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
        return lock, f"replaced the ledger {path} ({events} events)"
    except BaseException:
        lock.release()
        raise


def check_writable(path: str) -> None:
    """A ledger opened for writing needs a writable file and folder (SQLite keeps its `-wal` and `-shm`
    beside it): one StoreError otherwise; the reading commands open it read-only instead."""
    file = Path(path).resolve()
    if file.exists() and not os.access(file, os.W_OK):
        raise StoreError(f"cannot write {path}: the file is read-only (reading commands such as "
                         "`summary` and `audit` open it read-only)")
    if not os.access(file.parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write {path}: its folder {file.parent} is not writable (SQLite keeps "
                         "its -wal and -shm beside it; reading commands such as `summary` and `audit` "
                         "open it read-only)")


def pg_connect(url: StoreURL) -> Any:
    """An autocommit psycopg connection, or one StoreError line (password redacted)."""
    import psycopg

    try:
        return psycopg.connect(
            host=url.host, port=url.port, dbname=url.dbname, user=url.user,
            password=url.password or None, connect_timeout=5, autocommit=True,
        )
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if url.password:
            first = first.replace(url.password, "***")
        raise StoreError(f"cannot reach PostgreSQL at {url.redacted}: {first}") from None


def check_postgres(url: StoreURL, *, create: bool) -> None:
    """Reach the server (one clear error if not), then create or require the schema."""
    con = pg_connect(url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND "
                        "table_name='ledger_events'", (url.schema,))
            exists = cur.fetchone() is not None
            if not exists and not create:
                raise StoreError(f"no ledger in {url.redacted} (no ledger_events table)")
            if create:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{url.schema}"')
    finally:
        con.close()


@contextmanager
def checkpoint_lock(url: StoreURL) -> Iterator[None]:
    """Serialise checkpoints between PostgreSQL writers: each one reads the last checkpoint, counts
    the events after it and saves its own before the next begins (SQLite has one writer anyway)."""
    if url.kind != "postgresql":
        yield
        return
    with pg_connect(url) as con:
        con.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ledger-checkpoint:{url.schema}",))
        try:
            yield
        finally:
            con.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"ledger-checkpoint:{url.schema}",))


@contextmanager
def creation_lock(url: StoreURL, create: bool) -> Iterator[None]:
    """Serialise schema and table creation between processes (concurrent DDL fails in PostgreSQL)."""
    if url.kind != "postgresql" or not create:
        yield
        return
    with pg_connect(url) as con:
        con.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ledger-create:{url.schema}",))
        try:
            yield
        finally:
            con.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"ledger-create:{url.schema}",))


def environment(url: StoreURL, *, create: bool, synchronous: str) -> dict[str, str]:
    """The eventsourcing environment that selects and configures the store."""
    if synchronous.upper() not in SYNCHRONOUS:
        raise StoreError(f"synchronous: expected one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}")
    env = {"CREATE_TABLE": "y" if create else "n", "IS_SNAPSHOTTING_ENABLED": "y"}
    if url.kind == "postgresql":
        env.update(
            PERSISTENCE_MODULE="ledger.store_pg:LedgerPostgresFactory", POSTGRES_DBNAME=url.dbname,
            POSTGRES_HOST=url.host, POSTGRES_PORT=str(url.port), POSTGRES_USER=url.user,
            POSTGRES_PASSWORD=url.password, POSTGRES_SCHEMA=url.schema,
            POSTGRES_CONNECT_TIMEOUT="5",
        )
    else:
        if url.kind == "memory":
            name = "file:ledger-memory?mode=memory&cache=shared"
        else:
            name = sqlite_uri(url.path, mode="rwc" if create else "rw")
        env.update(
            PERSISTENCE_MODULE=f"{__name__}:LedgerSQLiteFactory", SQLITE_DBNAME=name,
            SQLITE_SYNCHRONOUS=synchronous.upper(), SQLITE_LOCK_TIMEOUT="30",
        )
    return env


class WriterLock:
    """The one writer of a SQLite ledger: an exclusive `flock` on `<db>.lock`, held from the moment a
    process would first write (a new or appending engine, `rebuild`, `reconcile`, `import`) until it
    closes the ledger or exits. The file names the holder (pid, command, since when) for the one-line
    refusal another writer gets; it is removed on release. Within one process the lock is shared:
    every Ledger of the same file counts as the same writer. Readers never take it."""

    _held: dict[str, tuple[int, int]] = {}  # lock file -> (fd, users) in this process

    def __init__(self, db: str) -> None:
        self.db = db
        self.path = f"{Path(db).resolve()}.lock"
        self.holding = False

    def acquire(self) -> None:
        if self.holding:
            return
        held = self._held.get(self.path)
        if held is not None:
            self._held[self.path] = (held[0], held[1] + 1)
        else:
            self._held[self.path] = (self._lock(), 1)
        self.holding = True

    def release(self) -> None:
        if not self.holding:
            return
        self.holding = False
        fd, users = self._held.pop(self.path)
        if users > 1:
            self._held[self.path] = (fd, users - 1)
            return
        with suppress(OSError):
            os.unlink(self.path)
        os.close(fd)

    def _lock(self) -> int:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise StoreError(f"cannot write {self.db}: cannot create its lock file {self.path}: "
                                 f"{e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(os.pread(fd, 4096, 0))
                os.close(fd)
                raise StoreError(
                    f"{self.db} is being written by {holder}; a SQLite ledger has one writer at a time "
                    "(wait for it to end, or use PostgreSQL for concurrent writers)") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released and removed between our open and our lock: lock the new file
                os.close(fd)
                continue
            words = [os.path.basename(sys.argv[0] or "python")]
            words += [a for a in sys.argv[1:3] if a.isidentifier()]  # the subcommand, never option values
            me = {"pid": os.getpid(), "command": " ".join(words),
                  "since": datetime.now(UTC).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            return fd


def _describe_holder(data: bytes) -> str:
    try:
        holder = json.loads(data)
        return f"process {int(holder['pid'])} (`{holder['command']}`, since {holder['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


class _DurablePool(SQLiteConnectionPool):
    """Sets `synchronous` on every connection (FULL live, NORMAL for reports and backtests)."""

    synchronous = "FULL"

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        conn._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn


class FastSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """One `executemany` per batch; notification ids are the consecutive rowids of the batch.
    `before_write` (the Ledger's writer lock) runs before anything is inserted."""

    before_write: Callable[[], None] | None = None

    def insert_events(
        self, stored_events: Sequence[StoredEvent], *, durable: bool = True, **kwargs: Any,
    ) -> Sequence[int] | None:
        """`durable=False` commits this one transaction with `synchronous=NORMAL`: in WAL mode it is
        on disk after the next FULL commit (the WAL is synced in order) or checkpoint; a killed
        process loses nothing, only a crash of the machine can lose it."""
        if self.before_write is not None:
            self.before_write()
        pool = self.datastore.pool
        if durable or getattr(pool, "synchronous", "FULL") != "FULL":
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection(commit=True) as conn:
            raw = conn._sqlite_conn  # the safety level may not change inside a transaction
            raw.execute("PRAGMA synchronous=NORMAL")
            try:
                with conn.transaction(commit=True) as c:
                    return self._insert_events(c, stored_events, **kwargs)
            finally:
                raw.execute("PRAGMA synchronous=FULL")

    def sync(self) -> None:
        """Put every commit so far on disk: a checkpoint syncs the WAL (relaxed commits included)
        before it copies pages into the database file."""
        with self.datastore.get_connection(commit=True) as conn:
            conn._sqlite_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **_: Any,
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
              s.originator_version, s.topic, s.state) for s in stored_events],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))

    def iter_rows(self, after: int = 0, stop: int | None = None, batch: int = 20000,
                  ) -> Iterator[tuple[int, str, int, str, bytes]]:
        """Raw rows in notification order: (id, stream hex, version, topic, state)."""
        conn = self.datastore.pool.get_connection(is_writer=False)
        try:
            raw = conn._sqlite_conn
            raw.row_factory = None
            try:
                yield from self._rows(raw, after, stop, batch)
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the ledger: {e}") from None
            finally:
                raw.row_factory = sqlite3.Row
        finally:
            self.datastore.pool.put_connection(conn)

    def _rows(self, raw: sqlite3.Connection, after: int, stop: int | None, batch: int,
              ) -> Iterator[tuple[int, str, int, str, bytes]]:
        while True:
            sql = (f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                   f"{self.events_table_name} WHERE rowid>? ")
            params: list[int] = [after]
            if stop is not None:
                sql += "AND rowid<=? "
                params.append(stop)
            rows = raw.execute(sql + "ORDER BY rowid LIMIT ?", [*params, batch]).fetchall()
            if not rows:
                return
            for row in rows:
                if None in row:  # what SQLite reads from a truncated file
                    raise sqlite3.DatabaseError(f"the row after notification {after} is damaged "
                                                "(a truncated or corrupted file)")
                yield row
                after = row[0]

    def last_of_topic(self, topic: str) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name} WHERE topic=?", (topic,))
            value = c.fetchone()[0]
            return int(value) if value is not None else None


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = FastSQLiteApplicationRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        pool.__class__ = _DurablePool
        pool.synchronous = (self.env.get("SQLITE_SYNCHRONOUS") or "FULL").upper()  # type: ignore[attr-defined]


__all__ = [
    "FastSQLiteApplicationRecorder", "LedgerSQLiteFactory", "SQLiteDatastore", "StoreURL", "WriterLock",
    "check_postgres", "check_sqlite", "check_writable", "checkpoint_lock", "claim_fresh", "environment",
    "parse_url", "readonly_uri", "sqlite_engine", "sqlite_uri", "sqlite_url",
]
