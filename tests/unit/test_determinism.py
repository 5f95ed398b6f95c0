"""Identical runs give a byte-identical log and the same digest, across processes and hash seeds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from ledger.app import Ledger
from ledger.digest import log_digest
from tests.scenario import write_scenario

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import sys; from ledger.app import Ledger; from ledger.digest import log_digest; "
    "from tests.scenario import write_scenario; "
    "l = Ledger.open(sys.argv[1], create=True, synchronous='NORMAL'); write_scenario(l); "
    "print(log_digest(l))"
)


def rows(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT rowid, * FROM stored_events ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_two_runs_write_identical_logs(tmp_path: Path) -> None:
    digests = []
    for name in ("a.db", "b.db"):
        ledger = Ledger.open(tmp_path / name, create=True)
        write_scenario(ledger)
        digests.append(log_digest(ledger))
    assert digests[0] == digests[1] and len(digests[0]) == 64
    assert rows(tmp_path / "a.db") == rows(tmp_path / "b.db")


def test_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    outputs = []
    for seed in ("0", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"{seed}.db")], env=env,
                             capture_output=True, text=True, check=True, cwd=ROOT)
        outputs.append(out.stdout.strip())
    assert len(set(outputs)) == 1
    assert rows(tmp_path / "0.db") == rows(tmp_path / "12345.db") == rows(tmp_path / "random.db")


def test_digest_changes_when_one_amount_changes(tmp_path: Path) -> None:
    """The digest is sensitive: a different run gives a different digest."""
    from decimal import Decimal as D

    a = Ledger.open(tmp_path / "a.db", create=True)
    write_scenario(a)
    b = Ledger.open(tmp_path / "b.db", create=True)
    write_scenario(b)
    venue = b.get_venue("main", "binance")
    venue.record_deposit("one-more", "spot", "USDT", D("0.01"), venue.modified_on)
    b.save(venue)
    assert log_digest(a) != log_digest(b)


def test_digest_ignores_code_version_and_data_path(tmp_path: Path) -> None:
    from aggregates.session import Session
    from tests.scenario import T0

    digests = []
    for version, path in (("1.0", "/data/a"), ("2.0", "/elsewhere/b")):
        ledger = Ledger.open(tmp_path / f"{version}.db", create=True)
        ledger.start_session(Session.start("s", "backtest", "{}", "c", path, "d", 7, version, T0))
        ledger.end_session("done", T0)
        digests.append(log_digest(ledger))
    assert digests[0] == digests[1]
