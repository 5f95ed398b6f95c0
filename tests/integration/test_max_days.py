"""LEDGER_MAX_DAYS: caps a backtest window (noted, the capped window recorded), bounded, ASCII, and never
applied to a rerun (which repeats the recorded window)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.backtest import max_days
from ledger.marketdata import DataError


def ledger(*args: str, cwd: Path, max_days: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_MAX_DAYS"}
    if max_days is not None:
        env["LEDGER_MAX_DAYS"] = max_days
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(env, PYTHONHASHSEED="0"))


@pytest.mark.parametrize("value", ["99999999999999999999", "36501", "0", "٣", "-1", "1.5", "x", "2 days"])
def test_a_bad_cap_is_refused_naming_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_MAX_DAYS", value)
    with pytest.raises(DataError, match=r"^LEDGER_MAX_DAYS: expected a whole number of days from 1 to 36500"):
        max_days()


@pytest.mark.parametrize(("value", "cap"), [("1", 1), (" 36500 ", 36500), ("", None)])
def test_a_cap_in_range_is_read(value: str, cap: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_MAX_DAYS", value)
    assert max_days() == cap


def test_the_cap_shortens_the_run_says_so_and_a_rerun_repeats_the_recorded_window(tmp_path: Path) -> None:
    """LEDGER_MAX_DAYS=2 shortens the default 90 synthetic days to 2 (2024-01-01 00:00 to 2024-01-03 00:00
    inclusive) and says so in the notes; the rerun, under another cap (1), repeats the recorded two
    days identically instead of shortening them again and calling the data changed."""
    capped = ledger("backtest", "--db", "cap.db", "--report", "rep", "--json", cwd=tmp_path, max_days="2")
    assert capped.returncode == 0, capped.stderr
    notes = json.loads(capped.stdout)["notes"]
    assert any(n.startswith("LEDGER_MAX_DAYS=2: the window was shortened to 2024-01-01T00:00:00+00:00 → "
                            "2024-01-03T00:00:00+00:00") for n in notes), notes
    with sqlite3.connect(tmp_path / "cap.db") as con:
        last = con.execute("SELECT max(json_extract(state, '$.ts_event')) FROM stored_events").fetchone()[0]
    assert last == "2024-01-03T00:00:00Z"  # the session ends at the capped window's last hour
    rerun = ledger("replay", "rerun", "--db", "cap.db", cwd=tmp_path, max_days="1")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "identical" in rerun.stdout


def test_a_bad_cap_is_one_line_from_the_cli_and_writes_nothing(tmp_path: Path) -> None:
    run = ledger("backtest", "--days", "5", "--db", "m.db", "--report", "m-rep", cwd=tmp_path,
                 max_days="99999999999999999999")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("error: LEDGER_MAX_DAYS: expected a whole number of days from 1 to 36500")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
