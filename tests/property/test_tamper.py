"""Any edited, deleted, inserted or reordered stored row is caught by the chain verifier."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.app import Ledger
from replays.verify import anchor, verify_chain
from tests.scenario import write_scenario


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object], int]:
    path = tmp_path_factory.mktemp("tamper") / "ledger.db"
    ledger = Ledger.open(path, create=True, synchronous="NORMAL", checkpoint_every=20)
    write_scenario(ledger)
    count = ledger.max_notification_id()
    assert verify_chain(ledger).ok
    data = anchor(ledger)
    ledger.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path, data, count


def covered_rows(path: Path) -> int:
    """The notification id of the last checkpoint: rows up to it need no anchor."""
    ledger = Ledger.open(path)
    return ledger._cp_to


def mutate(path: Path, kind: str, row: int, other: int, offset: int) -> None:
    con = sqlite3.connect(path)
    try:
        if kind == "edit":
            (state,) = con.execute("SELECT state FROM stored_events WHERE rowid=?", (row,)).fetchone()
            i = offset % (len(state) - 80)
            flipped = state[:i] + bytes([state[i] ^ 0x01]) + state[i + 1:]
            con.execute("UPDATE stored_events SET state=? WHERE rowid=?", (flipped, row))
        elif kind == "delete":
            con.execute("DELETE FROM stored_events WHERE rowid=?", (row,))
        elif kind == "insert":
            src = con.execute("SELECT originator_id, originator_version, topic, state FROM "
                              "stored_events WHERE rowid=?", (row,)).fetchone()
            top = con.execute("SELECT MAX(originator_version) FROM stored_events WHERE "
                              "originator_id=?", (src[0],)).fetchone()[0]
            con.execute("INSERT INTO stored_events VALUES (?,?,?,?)", (src[0], top + 1, src[2], src[3]))
        elif kind == "reorder":
            a = con.execute("SELECT originator_id, originator_version, topic, state FROM "
                            "stored_events WHERE rowid=?", (row,)).fetchone()
            b = con.execute("SELECT originator_id, originator_version, topic, state FROM "
                            "stored_events WHERE rowid=?", (other,)).fetchone()
            con.execute("DELETE FROM stored_events WHERE rowid IN (?,?)", (row, other))
            con.execute("INSERT INTO stored_events(rowid, originator_id, originator_version, topic, "
                        "state) VALUES (?,?,?,?,?)", (row, *b))
            con.execute("INSERT INTO stored_events(rowid, originator_id, originator_version, topic, "
                        "state) VALUES (?,?,?,?,?)", (other, *a))
        con.commit()
    finally:
        con.close()


@given(kind=st.sampled_from(["edit", "delete", "insert", "reorder"]), data=st.data())
def test_every_tampering_kind_is_detected(pristine: tuple[Path, dict[str, object], int],
                                          tmp_path_factory: pytest.TempPathFactory,
                                          kind: str, data: st.DataObject) -> None:
    source, anchored, count = pristine
    covered = covered_rows(source)
    row = data.draw(st.integers(1, count), label="row")
    other = data.draw(st.integers(1, count).filter(lambda r: r != row), label="other")
    offset = data.draw(st.integers(0, 10_000), label="offset")
    copy = tmp_path_factory.mktemp("t") / "ledger.db"
    shutil.copy(source, copy)
    mutate(copy, kind, row, other, offset)
    ledger = Ledger.open(copy)
    with_anchor = verify_chain(ledger, anchor=anchored)
    assert not with_anchor.ok, f"{kind} of row {row} went unnoticed"
    if kind != "insert" and max(row, other if kind == "reorder" else row) <= covered:
        without = verify_chain(ledger)
        assert not without.ok, f"{kind} of checkpointed row {row} went unnoticed without anchor"
        assert without.first is not None and without.first.problem


def test_untouched_copy_verifies(pristine: tuple[Path, dict[str, object], int]) -> None:
    source, anchored, _count = pristine
    result = verify_chain(Ledger.open(source), anchor=anchored)
    assert result.ok and result.checkpoints >= 3


def test_edited_last_checkpoint_still_opens_and_is_reported(
        pristine: tuple[Path, dict[str, object], int], tmp_path: Path) -> None:
    source, _anchored, _count = pristine
    copy = tmp_path / "ledger.db"
    shutil.copy(source, copy)
    con = sqlite3.connect(copy)
    (last,) = con.execute("SELECT MAX(rowid) FROM stored_events WHERE topic=?",
                          ("ledger:Session.Checkpointed",)).fetchone()
    con.close()
    mutate(copy, "edit", last, last, 5)
    result = verify_chain(Ledger.open(copy))
    assert not result.ok and result.first is not None and result.first.notification_id == last
