"""Store selection from a URL, safe opening checks, and the faster SQLite recorder.

`sqlite:///path.db` (or a bare path) is the embedded default; `postgresql://user@host:port/db?schema=s`
shares a ledger between processes. Opening for reading never creates or changes anything.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
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
        con = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable SQLite database: {e}") from None
    if "stored_events" not in names and (names or not create):
        raise StoreError(f"{path} is a SQLite database but not a ledger (no stored_events table)")


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
        name = "file:ledger-memory?mode=memory&cache=shared" if url.kind == "memory" else url.path
        if url.kind == "sqlite" and not create:
            name = f"file:{Path(url.path).resolve()}?mode=rw"
        env.update(
            PERSISTENCE_MODULE=f"{__name__}:LedgerSQLiteFactory", SQLITE_DBNAME=name,
            SQLITE_SYNCHRONOUS=synchronous.upper(), SQLITE_LOCK_TIMEOUT="30",
        )
    return env


class _DurablePool(SQLiteConnectionPool):
    """Sets `synchronous` on every connection (FULL live, NORMAL for reports and backtests)."""

    synchronous = "FULL"

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        conn._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn


class FastSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """One `executemany` per batch; notification ids are the consecutive rowids of the batch."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], *, durable: bool = True, **kwargs: Any,
    ) -> Sequence[int] | None:
        """`durable=False` commits this one transaction with `synchronous=NORMAL`: in WAL mode it is
        on disk after the next FULL commit (the WAL is synced in order) or checkpoint; a killed
        process loses nothing, only a crash of the machine can lose it."""
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
                    yield from rows
                    after = rows[-1][0]
            finally:
                raw.row_factory = sqlite3.Row
        finally:
            self.datastore.pool.put_connection(conn)

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
    "FastSQLiteApplicationRecorder", "LedgerSQLiteFactory", "SQLiteDatastore", "StoreURL",
    "check_postgres", "check_sqlite", "environment", "parse_url",
]
