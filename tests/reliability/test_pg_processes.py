"""Several processes writing one PostgreSQL ledger: different venues never interfere; racing on
one venue, every loser gets a ConcurrencyError and retries, and nothing is lost (SPEC §9)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import pytest

from aggregates import ConcurrencyError
from ledger.app import Ledger
from projections import InMemoryProjection, SQLProjection
from replays.verify import verify_chain
from tests.scenario import T0

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("pg_child.py")
SAVES = 150


def run_writers(url: str, tmp_path: Path, jobs: list[tuple[str, str]], saves: int = SAVES,
                checkpoint_every: int = 0) -> list[int]:
    Ledger.open(url, create=True).close()  # schema and tables exist before the race starts
    start = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    extra = [str(checkpoint_every)] if checkpoint_every else []
    procs = [subprocess.Popen([sys.executable, str(CHILD), url, venue, str(saves), str(start), tag, *extra],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for venue, tag in jobs]
    start.touch()
    conflicts = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        conflicts.append(int(out.split()[-1]))
    return conflicts


def deposits(ledger: Ledger) -> Counter[str]:
    return Counter(e.deposit_id for _, e in ledger.iter_events()
                   if type(e).__name__ == "FundsDeposited")


@pytest.mark.postgres
def test_two_processes_on_different_venues(pg_url: str, tmp_path: Path) -> None:
    conflicts = run_writers(pg_url, tmp_path, [("binance", "a"), ("bybit", "b")])
    ledger = Ledger.open(pg_url)
    seen = deposits(ledger)
    assert conflicts == [0, 0]
    assert seen == Counter({f"{t}-{i}": 1 for t in "ab" for i in range(SAVES)})
    assert verify_chain(ledger).ok
    view = SQLProjection.for_ledger(ledger)
    view.run(ledger)
    rebuilt = InMemoryProjection()
    rebuilt.catch_up(ledger)
    assert view.state.comparable() == rebuilt.state.comparable()


@pytest.mark.postgres
def test_two_processes_racing_on_one_venue(pg_url: str, tmp_path: Path) -> None:
    conflicts = run_writers(pg_url, tmp_path, [("binance", "a"), ("binance", "b")])
    ledger = Ledger.open(pg_url)
    seen = deposits(ledger)
    assert sum(conflicts) >= 1, "the race never happened"
    assert seen == Counter({f"{t}-{i}": 1 for t in "ab" for i in range(SAVES)})
    venue = ledger.get_venue("main", "binance")
    assert venue.version == 1 + 2 * SAVES
    assert verify_chain(ledger).ok


@pytest.mark.postgres
def test_two_sessions_checkpointing_concurrently_verify(pg_url: str, tmp_path: Path) -> None:
    """Each writer's checkpoints cover the other's events since the last checkpoint of either, so
    `ledger audit verify` passes after two PostgreSQL writers interleave sessions and checkpoints."""
    run_writers(pg_url, tmp_path, [("binance", "a"), ("bybit", "b")], saves=60, checkpoint_every=7)
    ledger = Ledger.open(pg_url)
    result = verify_chain(ledger)
    assert result.ok, result.first
    assert result.checkpoints >= 2 * (60 // 7) + 2
    run = subprocess.run([sys.executable, "-m", "ledger.cli", "audit", "verify", "--db", pg_url],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0 and run.stdout.startswith(f"ok: {result.events} events"), run.stderr


def test_stale_writer_loses_cleanly(store_url: str) -> None:
    """In one process: two copies of a venue, the second save raises and stores nothing."""
    ledger = Ledger.open(store_url, create=True)
    from aggregates import VenueLedger

    v = VenueLedger.open("main", "okx", "cex", T0)
    ledger.save(v)
    one, two = ledger.get_venue("main", "okx"), ledger.get_venue("main", "okx")
    one.record_deposit("one", "spot", "USDT", D(1), T0)
    two.record_deposit("two", "spot", "USDT", D(2), T0)
    ledger.save(one)
    count = ledger.max_notification_id()
    with pytest.raises(ConcurrencyError, match="reload the venue and retry"):
        ledger.save(two)
    assert ledger.max_notification_id() == count
    assert "two" not in deposits(ledger)
