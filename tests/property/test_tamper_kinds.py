"""`ledger audit verify` on a real backtest log: hypothesis picks the row and the tampering (an edited
payload byte, a deleted row, an inserted copy, two rows swapped); verify exits 1 naming the right
stream and version, and with an anchor it catches tampering anywhere, the tail included."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ledger.cli import app
from ledger.codec import SUFFIX_LEN

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = "ledger:Session.Checkpointed"
Row = tuple[int, str, int]


class Log:
    """A pristine backtest log, its rows (rowid, stream, version), its anchor and its covered range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        con = sqlite3.connect(path)
        try:
            self.rows: list[Row] = con.execute(
                "SELECT rowid, originator_id, originator_version FROM stored_events ORDER BY rowid"
            ).fetchall()
            (self.checkpoint,) = con.execute(
                "SELECT MAX(rowid) FROM stored_events WHERE topic=?", (CHECKPOINT,)).fetchone()
            state = con.execute("SELECT state FROM stored_events WHERE rowid=?",
                                (self.checkpoint,)).fetchone()[0]
        finally:
            con.close()
        self.covered = int(json.loads(state[:-SUFFIX_LEN] + b"}")["notification_id"])
        anchor = CliRunner().invoke(app, ["audit", "anchor", "--db", str(path)])
        assert anchor.exit_code == 0, anchor.stderr
        self.anchor = anchor.stdout.strip()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    folder = tmp_path_factory.mktemp("tamper-kinds")
    run = subprocess.run([sys.executable, "-m", "ledger.cli", "backtest", "--days", "3", "--db", "a.db",
                          "--report", "rep"], capture_output=True, text=True, cwd=folder)
    assert run.returncode == 0, run.stderr
    con = sqlite3.connect(folder / "a.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return Log(folder / "a.db")


def mutate(path: Path, kind: str, row: int, other: int, offset: int) -> None:
    """Tamper with a copy the way someone with write access to the file could."""
    con = sqlite3.connect(path)
    try:
        if kind == "edit":
            (state,) = con.execute("SELECT state FROM stored_events WHERE rowid=?", (row,)).fetchone()
            i = offset % (len(state) - SUFFIX_LEN)  # a byte of the payload, not of the digest suffix
            mask = 1 << (offset % 7)
            con.execute("UPDATE stored_events SET state=? WHERE rowid=?",
                        (state[:i] + bytes([state[i] ^ mask]) + state[i + 1:], row))
        elif kind == "delete":
            con.execute("DELETE FROM stored_events WHERE rowid=?", (row,))
        elif kind == "insert":
            # A copy of `row`, as the next version of its stream, placed after row `other`.
            src = con.execute("SELECT originator_id, topic, state FROM stored_events WHERE rowid=?",
                              (row,)).fetchone()
            (top,) = con.execute("SELECT MAX(originator_version) FROM stored_events WHERE originator_id=?",
                                 (src[0],)).fetchone()
            con.execute("UPDATE stored_events SET rowid=-(rowid+1) WHERE rowid>?", (other,))
            con.execute("UPDATE stored_events SET rowid=-rowid WHERE rowid<0")
            con.execute("INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) "
                        "VALUES (?,?,?,?,?)", (other + 1, src[0], top + 1, src[1], src[2]))
        elif kind == "swap":
            cols = "originator_id, originator_version, topic, state"
            a = con.execute(f"SELECT {cols} FROM stored_events WHERE rowid=?", (row,)).fetchone()
            b = con.execute(f"SELECT {cols} FROM stored_events WHERE rowid=?", (other,)).fetchone()
            con.execute("DELETE FROM stored_events WHERE rowid IN (?,?)", (row, other))
            con.execute(f"INSERT INTO stored_events(rowid, {cols}) VALUES (?,?,?,?,?)", (row, *b))
            con.execute(f"INSERT INTO stored_events(rowid, {cols}) VALUES (?,?,?,?,?)", (other, *a))
        con.commit()
    finally:
        con.close()


def verify(path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["audit", "verify", "--db", str(path), "--json", *extra])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def mentions(text: str, version: int) -> bool:
    return re.search(rf"\bversion {version}\b", text) is not None


def check_named(log: Log, kind: str, row: int, other: int, problem: dict[str, object]) -> None:
    """The finding names the tampered event (or, where nothing else can, the checkpoint)."""
    by_id = {r[0]: r for r in log.rows}
    _rid, stream, version = by_id[row]
    named_stream, named_version, text = problem["stream"], problem["version"], str(problem["problem"])
    assert isinstance(named_version, int)
    if kind == "edit":
        assert (named_stream, named_version) == (stream, version), problem
    elif kind == "delete":
        assert named_stream == stream, problem
        assert named_version == version or (
            named_version == version + 1 and f"expected version {version} " in text), problem
    elif kind == "insert":
        top = max(v for _r, s, v in log.rows if s == stream)
        assert (named_stream, named_version) == (stream, top + 1), problem
    else:
        lo, hi = sorted((row, other))
        (_a, s1, v1), (_b, s2, v2) = by_id[lo], by_id[hi]
        between = {s for r, s, _v in log.rows if lo < r < hi}
        if s1 != s2 and s1 not in between and s2 not in between:
            # Each stream's own order survives: only the checkpoint's global chain can tell.
            cp = by_id[log.checkpoint]
            assert (named_stream, named_version) == (cp[1], cp[2]), problem
            assert "checkpoint chain differs" in text, problem
        else:
            assert named_stream in (s1, s2), problem
            assert named_version in (v1, v2, v1 + 1, v2 + 1), problem


@given(kind=st.sampled_from(["edit", "delete", "insert", "swap"]), data=st.data())
def test_every_tampering_kind_is_caught_and_located(log: Log, tmp_path_factory: pytest.TempPathFactory,
                                                    kind: str, data: st.DataObject) -> None:
    """Tampering up to the last checkpoint is caught and located without an anchor; anywhere with one."""
    count = len(log.rows)
    row = data.draw(st.integers(1, count), label="row")
    other = data.draw(st.integers(1, count).filter(lambda r: r != row), label="other")
    offset = data.draw(st.integers(0, 100_000), label="offset")
    copy = tmp_path_factory.mktemp("t") / "ledger.db"
    shutil.copy(log.path, copy)
    mutate(copy, kind, row, other, offset)
    code, report = verify(copy, "--anchor", log.anchor)
    assert code == 1 and report["ok"] is False, f"{kind} of row {row} went unnoticed with an anchor"
    touched = max(row, other) if kind == "swap" else row
    if kind == "insert" or touched <= log.covered:
        code, report = verify(copy)
        assert code == 1, f"{kind} of row {row}/{other} went unnoticed without an anchor"
        problem = report["problem"]
        assert isinstance(problem, dict) and problem["check"] == "chain"
        check_named(log, kind, row, other, problem)


def test_the_untouched_log_verifies_with_and_without_its_anchor(log: Log) -> None:
    """The pristine log passes every check."""
    assert verify(log.path)[0] == 0
    assert verify(log.path, "--anchor", log.anchor)[0] == 0
