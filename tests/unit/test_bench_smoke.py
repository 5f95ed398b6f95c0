"""The benchmark script runs end to end (numbers are reported by `make bench`, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_and_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "ledger_bench.py"), "--quick",
                          "--json", str(out)], capture_output=True, text=True, cwd=ROOT, check=True)
    data = json.loads(out.read_text())
    assert data["append"]["events"] > 0 and data["replay"]["events"] > data["append"]["events"]
    assert set(data["memory"]) == {"decode", "fold"}
    assert "| append, SQLite file" in run.stdout and "raw sqlite3" in run.stdout
