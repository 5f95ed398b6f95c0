"""PostgreSQL store: one round trip per commit, and commits that need not wait for the disk.

eventsourcing's PostgreSQL recorder sends a commit as a pipeline (BEGIN, lock, NOTIFY, INSERT,
sync, COMMIT). The ledger's function does the same work (the same EXCLUSIVE table lock, so
notification ids are issued in commit order; the same NOTIFY) in one statement on an autocommit
connection: one round trip and one WAL flush per commit. `durable=False` turns
`synchronous_commit` off for that one transaction: it returns before its WAL record reaches the disk,
which happens at the next durable commit (the WAL is flushed in order) or within the WAL writer's
delay. Only a crash of the server's machine can lose such a commit, and only what was committed that
way; the live executors use it for facts a venue can be asked for again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)
FUNCTION = "ledger_insert_events"


class FastPostgresApplicationRecorder(PostgresApplicationRecorder):
    """Inserts through the ledger's function when the database has it, else as the library does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ds = self.datastore
        self._function_ok: bool | None = None
        self.sql_create_ledger_function = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{fn}(events {schema}.{event}[], durable boolean) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "  IF NOT durable THEN PERFORM set_config('synchronous_commit', 'off', true); END IF; "
            "  SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "  NOTIFY {channel}; "
            "  RETURN QUERY INSERT INTO {schema}.{table} AS t "
            "    (originator_id, originator_version, topic, state) "
            "    SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "    RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            schema=Identifier(ds.schema),
            fn=Identifier(FUNCTION),
            event=Identifier(self.stored_event_type_name),
            table=Identifier(self.events_table_name),
            channel=Identifier(self.channel_name),
            lock_timeout=ds.lock_timeout,
        )
        self.sql_create_statements.append(self.sql_create_ledger_function)
        self.sql_invoke_ledger_function = SQL("SELECT * FROM {schema}.{fn}(%s, %s)").format(
            schema=Identifier(ds.schema), fn=Identifier(FUNCTION)
        )

    def create_table(self) -> None:
        super().create_table()
        self._function_ok = True

    def _has_function(self) -> bool:
        """A ledger created before the function existed keeps the library's insert path."""
        if self._function_ok is None:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = %s AND p.proname = %s",
                    (self.datastore.schema or "public", FUNCTION),
                )
                self._function_ok = curs.fetchone() is not None
            if not self._function_ok:
                log.info("%s has no %s(); commits use the library's pipeline",
                         self.events_table_name, FUNCTION)
        return self._function_ok

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], *, durable: bool = True, **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events or kwargs.get("tracking") is not None or not self._has_function():
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        rows = [
            self.construct_pg_stored_event(s.originator_id, s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.sql_invoke_ledger_function, (rows, durable), prepare=True)
            # ids are issued in the order of the rows (one statement under the table lock)
            return sorted(int(r[FUNCTION]) for r in curs.fetchall())


    def sync(self) -> None:
        """Nothing to do: the server's WAL writer flushes asynchronous commits within three
        `wal_writer_delay`s (600 ms by default), and every durable commit flushes them first."""


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = FastPostgresApplicationRecorder


__all__ = ["FastPostgresApplicationRecorder", "LedgerPostgresFactory"]
