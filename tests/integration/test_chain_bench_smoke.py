"""`bench/chain_bench.py` runs end to end on anvil with tiny n (numbers are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.chain.tx import actor_key

ROOT = Path(__file__).resolve().parents[2]


def test_chain_benchmark_runs_and_reports_every_case(tmp_path: Path) -> None:
    """Both kinds through raw web3 and through the ledger on both SQLite settings: every cell has a
    latency, a rate and the commit time, and the table names each row."""
    out = tmp_path / "chain.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "chain_bench.py"), "--n", "3", "--no-pg",
                          "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["n"] == 3 and data["stores"] == ["sqlite_full", "sqlite_normal"]
    assert data["postgresql"] == "skipped: --no-pg"
    for kind in ("transfer", "supply"):
        assert data["raw_web3"][kind]["median_ms"] > 0
        for store in data["stores"]:
            cell = data[store][kind]
            assert cell["instructions_per_s"] > 0 and cell["ours"]["p99_ms"] >= cell["ours"]["median_ms"]
            assert 0 < cell["appends"]["median_ms"] < cell["ours"]["median_ms"]
            assert f"{store} {kind}" in run.stdout
    for label in ("bench-raw", "bench-sqlite_full", "bench-sqlite_normal"):
        key = actor_key(label).hex()
        assert key not in run.stdout and key not in run.stderr and key not in out.read_text()
