"""The `ledger` command: one clear line and a non-zero exit for user errors, exit 1 on tampering."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_demo_writes_a_verified_log_and_prints_its_digest(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    run = ledger("demo", "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["verified"] and len(data["digest"]) == 64 and data["fills"] == 2
    assert ledger("digest", "--db", str(db)).stdout.strip() == data["digest"]
    assert ledger("audit", "verify", "--db", str(db)).returncode == 0
    assert ledger("rebuild", "--db", str(db)).returncode == 0


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (["audit", "verify", "--db", str(tmp_path / "absent.db")],
                 ["summary", "--db", "mysql://h/x"],
                 ["digest", "--db", "postgresql://u:hunter2@127.0.0.1:1/x"]):
        run = ledger(*args)
        assert run.returncode == 2, args
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert "Traceback" not in run.stderr and "hunter2" not in run.stderr
    assert not (tmp_path / "absent.db").exists()


def test_verify_exits_1_naming_the_first_bad_event_and_checks_anchors(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert ledger("demo", "--db", str(db)).returncode == 0
    anchor = ledger("audit", "anchor", "--db", str(db)).stdout.strip()
    assert json.loads(anchor)["events"] == 40
    assert ledger("audit", "verify", "--db", str(db), "--anchor", anchor).returncode == 0
    con = sqlite3.connect(db)
    con.execute("UPDATE stored_events SET state=CAST(replace(state, '\"amount\":\"60000\"', "
                "'\"amount\":\"70000\"') AS BLOB) WHERE topic='ledger:VenueLedger.FundsDeposited'")
    con.commit()
    con.close()
    run = ledger("audit", "verify", "--db", str(db))
    assert run.returncode == 1
    assert run.stderr.startswith("TAMPERED: notification 3, stream ")
    assert "version 2: digest does not match" in run.stderr


def test_help_answers() -> None:
    run = ledger("--help")
    assert run.returncode == 0 and "audit" in run.stdout and "demo" in run.stdout
