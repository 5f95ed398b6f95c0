"""The Ledger application on real stores: opening safely, atomic saves, conflicts, snapshots,
encryption at rest, upcasting and exact Decimal round-trips."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from aggregates import ConcurrencyError, LedgerError, StoreError, VenueLedger
from ledger.app import Ledger
from ledger.codec import GENESIS, link
from replays.verify import verify_chain

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def funded(ledger: Ledger, venue: str = "binance", amount: str = "100") -> VenueLedger:
    v = VenueLedger.open("main", venue, "cex", T0)
    v.record_deposit(f"seed-{venue}", "spot", "USDT", D(amount), T0)
    ledger.save(v)
    return v


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- opening -------------------------------------------------------------------------------------

def test_missing_database_is_refused_and_not_created(tmp_path: Path) -> None:
    target = tmp_path / "absent.db"
    with pytest.raises(StoreError, match="no ledger database at"):
        Ledger.open(f"sqlite:///{target}")
    assert not target.exists()


def test_non_sqlite_file_is_refused_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "notes.db"
    target.write_text("not a database")
    before = file_hash(target)
    for create in (False, True):
        with pytest.raises(StoreError, match="not a SQLite database"):
            Ledger.open(target, create=create)
    assert file_hash(target) == before


def test_foreign_sqlite_database_is_refused_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "other.db"
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    before = file_hash(target)
    for create in (False, True):
        with pytest.raises(StoreError, match="not a ledger"):
            Ledger.open(target, create=create)
    assert file_hash(target) == before
    assert not Path(f"{target}-wal").exists()


def test_unreadable_and_directory_paths_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Ledger.open(tmp_path)
    with pytest.raises(StoreError, match=r"directory .* does not exist"):
        Ledger.open(tmp_path / "no" / "such" / "x.db", create=True)


@pytest.mark.parametrize("url", ["mysql://localhost/x", "redis://h", "ftp://x/y"])
def test_unknown_scheme_names_the_scheme(url: str) -> None:
    with pytest.raises(StoreError, match="unknown database URL scheme"):
        Ledger.open(url)


def test_unreachable_postgres_is_one_clear_line_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot reach PostgreSQL") as info:
        Ledger.open("postgresql://trader:s3cret-pw@127.0.0.1:1/nowhere")
    assert "s3cret-pw" not in str(info.value) and "\n" not in str(info.value)


def test_reopening_an_existing_ledger_reads_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    funded(Ledger.open(url, create=True))
    again = Ledger.open(url)
    assert again.get_venue("main", "binance").keys == {"deposit:seed-binance": None}


# ---- writing -------------------------------------------------------------------------------------

def test_several_venues_save_atomically(store_url: str) -> None:
    """When one aggregate of a save conflicts, none of the save's events is stored."""
    ledger = Ledger.open(store_url, create=True)
    a = funded(ledger, "binance")
    stale_b = funded(ledger, "bybit")
    fresh_b = ledger.get_venue("main", "bybit")
    fresh_b.record_deposit("x", "spot", "USDT", D("1"), T0)
    ledger.save(fresh_b)
    before = ledger.max_notification_id()
    a.record_deposit("y", "spot", "USDT", D("2"), T0)
    stale_b.record_deposit("z", "spot", "USDT", D("3"), T0)
    with pytest.raises(ConcurrencyError, match=f"stream {stale_b.id} first \\(version 3 is taken"):
        ledger.save(a, stale_b)
    assert ledger.max_notification_id() == before
    assert "deposit:y" not in ledger.get_venue("main", "binance").keys


def test_second_writer_gets_a_concurrency_error_not_a_lost_update(store_url: str) -> None:
    ledger = Ledger.open(store_url, create=True)
    funded(ledger)
    first, second = ledger.get_venue("main", "binance"), ledger.get_venue("main", "binance")
    first.record_deposit("a", "spot", "USDT", D("1"), T0)
    second.record_deposit("b", "spot", "USDT", D("1"), T0)
    ledger.save(first)
    with pytest.raises(ConcurrencyError):
        ledger.save(second)
    reloaded = ledger.get_venue("main", "binance")
    assert "deposit:a" in reloaded.keys and "deposit:b" not in reloaded.keys
    reloaded.record_deposit("b", "spot", "USDT", D("1"), T0)
    ledger.save(reloaded)
    assert verify_chain(ledger).ok


def test_long_streams_load_from_snapshots(store_url: str) -> None:
    ledger = Ledger.open(store_url, create=True, snapshot_every=10)
    v = funded(ledger)
    for i in range(35):
        v.record_deposit(f"d{i}", "spot", "USDT", D(1), T0 + timedelta(seconds=i))
        ledger.save(v)
    snapshots = list(ledger.snapshots.get(v.id)) if ledger.snapshots else []
    assert [s.originator_version for s in snapshots] == [10, 20, 30]
    assert snapshots[-1].timestamp == T0 + timedelta(seconds=27)  # version 30 = deposit d27
    loaded = ledger.get_venue("main", "binance")
    assert loaded.snapshot_state() == v.snapshot_state() and loaded.version == 37


def test_unknown_venue_is_a_domain_error(store_url: str) -> None:
    ledger = Ledger.open(store_url, create=True)
    with pytest.raises(LedgerError, match="no ledger for main at okx"):
        ledger.get_venue("main", "okx")


def test_sqlite_durability_setting_is_applied(tmp_path: Path) -> None:
    for mode, expected in (("FULL", 2), ("NORMAL", 1)):
        ledger = Ledger.open(tmp_path / f"{mode}.db", create=True, synchronous=mode)
        conn = ledger.recorder.datastore.pool.get_connection(is_writer=False)  # type: ignore[attr-defined]
        try:
            assert conn._sqlite_conn.execute("PRAGMA synchronous").fetchone()[0] == expected
            assert conn._sqlite_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            ledger.recorder.datastore.pool.put_connection(conn)  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="synchronous"):
        Ledger.open(tmp_path / "x.db", create=True, synchronous="SOMETIMES")


# ---- encryption, upcasting, exact values ---------------------------------------------------------

def test_encryption_at_rest_with_key_from_environment(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/enc.db"
    monkeypatch.setenv("LEDGER_CIPHER_KEY", AESCipher.create_key(32))
    ledger = Ledger.open(url, create=True)
    funded(ledger, amount="123.456")
    raw = sqlite3.connect(tmp_path / "enc.db").execute("SELECT state FROM stored_events").fetchall()
    assert raw and all(b"USDT" not in r[0] and b"123.456" not in r[0] for r in raw)
    assert Ledger.open(url).get_venue("main", "binance").keys == {"deposit:seed-binance": None}
    assert verify_chain(Ledger.open(url)).ok
    monkeypatch.setenv("LEDGER_CIPHER_KEY", AESCipher.create_key(32))
    with pytest.raises(StoreError, match="LEDGER_CIPHER_KEY"):
        Ledger.open(url).get_venue("main", "binance")
    monkeypatch.delenv("LEDGER_CIPHER_KEY")
    with pytest.raises(StoreError, match="LEDGER_CIPHER_KEY"):
        list(Ledger.open(url).iter_events())


def test_log_written_with_an_earlier_event_version_loads_through_its_upcaster(tmp_path: Path) -> None:
    """A v1 BalanceObserved row (no `difference`) still loads, and its chain still verifies."""
    ledger = Ledger.open(tmp_path / "old.db", create=True)
    v = funded(ledger)
    prev = ledger.stored_digest(ledger.recorder.select_events(v.id, desc=True, limit=1)[0].state)
    v1 = {"timestamp": "2024-06-01T00:00:00Z", "ts_event": "2024-06-01T00:00:00Z",
          "wallet": "spot", "asset": "USDT", "observed": "101.5", "ledger": "100"}
    payload = msgspec.json.encode(v1)
    topic = VenueLedger.BalanceObserved.TOPIC
    digest = link(prev, topic, v.id, 3, payload)
    state = payload[:-1] + b',"_chain":"' + digest.encode() + b'"}'
    ledger.recorder.insert_events([StoredEvent(originator_id=v.id, originator_version=3,
                                               topic=topic, state=state)])
    events = [e for _, e in Ledger.open(tmp_path / "old.db").iter_events()]
    assert events[-1].difference == D("1.5")
    assert Ledger.open(tmp_path / "old.db").get_venue("main", "binance").version == 3
    assert verify_chain(ledger).ok
    assert digest != GENESIS


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None,
                       min_value=D("1e-30"), max_value=D("1e12"))  # the price bound (docs/values.md)


@given(amount=decimals, price=decimals)
def test_decimal_values_round_trip_exactly(tmp_path_factory: pytest.TempPathFactory, amount: D,
                                           price: D) -> None:
    """Stored and reloaded Decimals keep value, sign and exponent."""
    ledger = Ledger.open(f"sqlite:///{tmp_path_factory.mktemp('dec')}/d.db", create=True)
    v = VenueLedger.open("main", "binance", "cex", T0)
    v.record_accepted("i", {"amount": str(amount)}, {"p": price}, T0)
    v.record_submitted("i", "c", T0)
    v.record_fill("i", "t", "spot", "ETH/USDT", "buy", amount, price, -amount, "USDT", T0)
    ledger.save(v)
    fill = [e for _, e in ledger.iter_events()][-1]
    assert str(fill.quantity) == str(amount) and str(fill.price) == str(price)
    assert fill.fee.as_tuple() == (-amount).as_tuple()
    accepted = [e for _, e in ledger.iter_events()][1]
    assert str(accepted.market["p"]) == str(price)
