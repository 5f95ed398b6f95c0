"""Commits that do not wait for the disk (`durable=False`, the live executors' venue replies) on both
stores: what each store is told, that nothing else changes, and the PostgreSQL insert function."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregates import VenueLedger
from executors.costs import ConfigError
from ledger.app import Ledger
from ledger.engine import EventDrivenStrategyEngine
from ledger.store_pg import FUNCTION
from replays.verify import verify_chain

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def deposits(venue: VenueLedger, n: int, tag: str) -> list[Any]:
    for i in range(n):
        venue.record_deposit(f"{tag}-{i}", "spot", "USDT", D(i + 1), T0)
    return list(venue.collect_events())


def traced(ledger: Ledger) -> list[str]:
    """Every statement the SQLite writer connection runs from now on."""
    pool = ledger.recorder.datastore.pool  # type: ignore[attr-defined]
    conn = pool.get_connection(is_writer=True)
    statements: list[str] = []
    try:
        conn._sqlite_conn.set_trace_callback(statements.append)
    finally:
        pool.put_connection(conn)
    return statements


def safety_level(ledger: Ledger) -> int:
    pool = ledger.recorder.datastore.pool  # type: ignore[attr-defined]
    conn = pool.get_connection(is_writer=True)
    try:
        return int(conn._sqlite_conn.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        pool.put_connection(conn)


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/full.db", create=True, synchronous="FULL")
    yield ledger
    ledger.close()


def test_sqlite_relaxed_commit_runs_at_normal_and_restores_full(full: Ledger) -> None:
    venue = VenueLedger.open("main", "binance", "cex", T0)
    full.save(venue)
    statements = traced(full)
    full.save_events(deposits(venue, 2, "reply"), [venue], durable=False)
    pragmas = [s for s in statements if s.startswith("PRAGMA")]
    assert pragmas == ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"]
    begin = statements.index("BEGIN")
    assert statements.index("PRAGMA synchronous=NORMAL") < begin  # set outside the transaction
    assert statements.index("PRAGMA synchronous=FULL") > begin
    assert safety_level(full) == 2  # FULL again for the next write-ahead

    statements.clear()
    full.save_events(deposits(venue, 1, "ahead"), [venue])
    assert not [s for s in statements if s.startswith("PRAGMA")]  # a durable commit is plain FULL


def test_sqlite_relaxed_commits_are_stored_like_any_other(full: Ledger, tmp_path: Path) -> None:
    venue = VenueLedger.open("main", "binance", "cex", T0)
    full.save(venue)
    full.save_events(deposits(venue, 3, "a"), [venue], durable=False)
    full.save_events(deposits(venue, 2, "b"), [venue])
    full.save_events(deposits(venue, 2, "c"), [venue], durable=False)
    assert full.max_notification_id() == 8
    again = full.repository.get(venue.id)
    assert again.version == venue.version
    assert list(again.keys) == list(venue.keys) and len(again.keys) == 7
    assert verify_chain(full).ok  # type: ignore[attr-defined]


def test_sqlite_normal_ledger_is_left_alone(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/n.db", create=True, synchronous="NORMAL")
    try:
        venue = VenueLedger.open("main", "binance", "cex", T0)
        ledger.save(venue)
        statements = traced(ledger)
        ledger.save_events(deposits(venue, 1, "x"), [venue], durable=False)
        assert not [s for s in statements if s.startswith("PRAGMA")]
        assert safety_level(ledger) == 1
    finally:
        ledger.close()


@pytest.fixture
def pg(pg_url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(pg_url, create=True)
    yield ledger
    ledger.close()


def _synchronous_commit_inside(ledger: Ledger, durable: bool) -> str:
    """Call the insert function in a transaction that is rolled back, and read the setting it left."""
    rec: Any = ledger.recorder
    venue = VenueLedger.open("main", f"probe{int(durable)}", "cex", T0)
    row = rec.construct_pg_stored_event(venue.id, 1, "probe", b"{}")
    with rec.datastore.get_connection() as conn, conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(rec.sql_invoke_ledger_function, ([row], durable))
        assert len(cur.fetchall()) == 1
        cur.execute("SELECT current_setting('synchronous_commit') AS s")
        return str(cur.fetchone()["s"])


def test_postgres_function_turns_synchronous_commit_off_only_for_relaxed_commits(pg: Ledger) -> None:
    assert _synchronous_commit_inside(pg, durable=False) == "off"
    assert _synchronous_commit_inside(pg, durable=True) == "on"
    assert pg.max_notification_id() == 0  # both probes were rolled back


def test_postgres_batches_keep_their_order_and_ids(pg: Ledger) -> None:
    venue = VenueLedger.open("main", "bybit", "cex", T0)
    pg.save(venue)
    first = pg.save_events(deposits(venue, 5, "r"), [venue], durable=False)
    second = pg.save_events(deposits(venue, 3, "w"), [venue])
    ids = [n for n, _ in first + second]
    assert ids == list(range(2, 10))
    stored = pg.notification_log.select(2, 8)
    assert [(n.originator_version, n.id) for n in stored] == [(v, v) for v in range(2, 10)]
    assert verify_chain(pg).ok  # type: ignore[attr-defined]


def _schema(url: str) -> str:
    return url.split("schema=", 1)[1]


def test_postgres_ledger_without_the_function_uses_the_library_path(pg_url: str) -> None:
    ledger = Ledger.open(pg_url, create=True)
    venue = VenueLedger.open("main", "okx", "cex", T0)
    ledger.save(venue)
    ledger.close()
    base = pg_url.split("?", 1)[0]
    with psycopg.connect(base, autocommit=True) as con:  # a ledger created before the function existed
        con.execute(f'DROP FUNCTION "{_schema(pg_url)}".{FUNCTION}')
    old = Ledger.open(pg_url)
    try:
        v = old.repository.get(venue.id)
        old.save_events(deposits(v, 2, "old"), [v], durable=False)
        assert old.max_notification_id() == 3
        assert old.recorder._function_ok is False  # type: ignore[attr-defined]
    finally:
        old.close()
    renewed = Ledger.open(pg_url, create=True)  # opening with create puts the function back
    try:
        v = renewed.repository.get(venue.id)
        renewed.save_events(deposits(v, 1, "new"), [v], durable=False)
        assert renewed.recorder._function_ok is True  # type: ignore[attr-defined]
        assert len(renewed.repository.get(venue.id).keys) == 3
        assert verify_chain(renewed).ok  # type: ignore[attr-defined]
    finally:
        renewed.close()


def _engine(tmp_path: Path, **ledger: Any) -> EventDrivenStrategyEngine:
    return EventDrivenStrategyEngine(
        {
            "execution_mode": "backtest",
            "ledger": {"url": f"sqlite:///{tmp_path}/e.db", "synchronous": "FULL", **ledger},
            "venues": ["binance"],
        }
    )


def test_durable_replies_setting(tmp_path: Path) -> None:
    engine = _engine(tmp_path, durable_replies=True)
    try:
        assert engine.event_logger.durable_replies is True
    finally:
        engine.close(views=False)
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match=r"ledger\.durable_replies"):
        _engine(tmp_path / "x", durable_replies="sometimes")
    assert not (tmp_path / "x" / "e.db").exists()  # refused before anything was written


def test_recorder_commit_passes_durability_to_the_store(tmp_path: Path) -> None:
    from ledger.recorder import EventRecorder

    ledger = Ledger.open(f"sqlite:///{tmp_path}/r.db", create=True, synchronous="FULL")
    try:
        for durable_replies, expect in ((False, ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"]),
                                        (True, [])):
            rec = EventRecorder(ledger, "main", {f"v{int(durable_replies)}": "cex"}, "live",
                                "s", T0, durable_replies=durable_replies)
            venue = rec.venue(f"v{int(durable_replies)}")
            rec.commit(venue)
            statements = traced(ledger)
            venue.record_deposit("d", "spot", "USDT", D(1), T0)
            rec.commit(venue, durable=False)
            assert [s for s in statements if s.startswith("PRAGMA")] == expect
    finally:
        ledger.close()


def test_a_sqlite_file_written_with_relaxed_commits_opens_elsewhere(full: Ledger, tmp_path: Path) -> None:
    venue = VenueLedger.open("main", "binance", "cex", T0)
    full.save(venue)
    full.save_events(deposits(venue, 4, "z"), [venue], durable=False)
    con = sqlite3.connect(f"file:{tmp_path}/full.db?mode=ro", uri=True)
    try:
        assert con.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0] == 5
    finally:
        con.close()


def test_recorder_sync_puts_relaxed_commits_on_disk_once(tmp_path: Path) -> None:
    from ledger.recorder import EventRecorder

    ledger = Ledger.open(f"sqlite:///{tmp_path}/s.db", create=True, synchronous="FULL")
    try:
        rec = EventRecorder(ledger, "main", {"binance": "cex"}, "live", "s", T0)
        venue = rec.venue("binance")
        rec.commit(venue)
        assert rec.unsynced is False
        statements = traced(ledger)
        venue.record_deposit("reply", "spot", "USDT", D(1), T0)
        rec.commit(venue, durable=False)
        assert rec.unsynced is True
        rec.sync()
        assert "PRAGMA wal_checkpoint(PASSIVE)" in statements and rec.unsynced is False
        statements.clear()
        rec.sync()  # nothing relaxed since: no checkpoint
        assert statements == []
        venue.record_deposit("reply2", "spot", "USDT", D(1), T0)
        rec.commit(venue, durable=False)
        venue.record_deposit("ahead", "spot", "USDT", D(1), T0)
        rec.commit(venue)  # a durable commit syncs the WAL, the relaxed one before it included
        assert rec.unsynced is False
    finally:
        ledger.close()


def test_postgres_sync_is_safe_to_call(pg: Ledger) -> None:
    venue = VenueLedger.open("main", "okx", "cex", T0)
    pg.save(venue)
    pg.save_events(deposits(venue, 1, "r"), [venue], durable=False)
    pg.sync()  # the WAL writer flushes asynchronous commits by itself
    assert pg.max_notification_id() == 2
