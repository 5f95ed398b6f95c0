"""`ledger replay state | index | rerun | diff` end to end, on logs written by `ledger backtest`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger, config_digest
from projections import reports
from projections.folds import fold
from projections.state import LedgerState
from tests.paths import BINANCE, REPO

ROOT = REPO
SEEDS = ("3", "11", "12")
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED="0", COLUMNS="200")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env)


def ledger_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run("-m", "ledger.cli", *args, cwd=cwd)


def replay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The sub-app on its own; `ledger replay …` is the same typer app registered under `ledger`.
    return run("-m", "ledger.cli", "replay", *args, cwd=cwd)


def backtest(cwd: Path, db: str, *extra: str) -> str:
    out = ledger_cli("backtest", "--db", db, "--report", f"rep-{db}", "--json", *extra, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["digest"])


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, exactly one `error:` line on stderr (no traceback), naming `words`."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Three-day backtests for three market seeds, and one with another capital (same session key)."""
    folder = tmp_path_factory.mktemp("replay")
    digests = {seed: backtest(folder, f"s{seed}.db", "--days", "3", "--seed", seed) for seed in SEEDS}
    digests["capital"] = backtest(folder, "capital.db", "--days", "3", "--seed", "3", "--capital", "90000")
    return folder, digests


# ---- rerun ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_rerun_of_a_recorded_backtest_is_identical(runs: tuple[Path, dict[str, str]], seed: str) -> None:
    """`replay rerun` repeats the run from its SessionStarted record: exit 0, both digests printed."""
    folder, digests = runs
    out = replay("rerun", "--db", f"s{seed}.db", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"recorded: {digests[seed]}"
    assert lines[1] == f"rerun:    {digests[seed]}"
    assert lines[-1].startswith("identical:") and f"seed {seed}" in lines[-1]


def test_rerun_into_keeps_a_fresh_ledger_that_diff_finds_identical(runs: tuple[Path, dict[str, str]]) -> None:
    """--into keeps the rerun; diff against the original reports no divergence; --json is one object."""
    folder, digests = runs
    into = folder / "again.db"
    out = replay("rerun", "--db", "s3.db", "--into", str(into), "--json", cwd=folder)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["identical"] and data["recorded"] == data["rerun"] == digests["3"]
    assert data["config_notes"] == [] and data["divergence"] is None
    assert ledger_cli("digest", "--db", str(into), cwd=folder).stdout.strip() == digests["3"]
    same = replay("diff", "s3.db", str(into), cwd=folder)
    assert same.returncode == 0 and same.stdout.startswith("identical:"), same.stdout + same.stderr
    one_error_line(replay("rerun", "--db", "s3.db", "--into", str(into), cwd=folder), "already exists")


def test_rerun_shows_the_first_diverging_event_side_by_side(runs: tuple[Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    """A log whose fill price was altered after the fact reruns to another digest: exit 1, the event
    (notification, topic, stream, version) and the differing field shown for both sides."""
    folder, _digests = runs
    db = tmp_path / "edited.db"
    src, dst = sqlite3.connect(folder / "s3.db"), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    nid, state = dst.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE '%OrderFilled' "
                             "ORDER BY rowid LIMIT 1").fetchone()
    body = msgspec.json.decode(state)
    recorded_price = body["price"]
    body["price"] = str(Decimal(recorded_price) + 1)
    dst.execute("UPDATE stored_events SET state=? WHERE rowid=?", (msgspec.json.encode(body), nid))
    dst.commit()
    dst.close()
    out = replay("rerun", "--db", str(db), cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"first divergence at event {nid} (notification {nid} in recorded" in out.stdout
    # One row per field: framed at this width (COLUMNS=200), a listing or one value per line when narrower.
    price = next(line for line in out.stdout.splitlines() if line.strip(" │").startswith("price "))
    assert str(Decimal(recorded_price) + 1) in price and recorded_price in price
    assert "OrderFilled" in out.stdout


def test_rerun_refuses_when_the_data_folder_changed_or_is_gone(tmp_path: Path) -> None:
    """A backtest on a copy of Binance files reruns identically; after a close price inside the window
    is edited the rerun refuses (data changed), and once the folder is gone (no longer available)."""
    data = tmp_path / "binance"
    data.mkdir()
    spot = data / "ETHUSDT-1h-2025-04.csv"
    shutil.copy(BINANCE / "spot" / "ETHUSDT-1h-2025-04.csv", spot)
    shutil.copy(BINANCE / "funding" / "binance_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv",
                data / "funding.csv")
    backtest(tmp_path, "real.db", "--data", str(data), "--start", "2025-04-02", "--days", "2")
    assert replay("rerun", "--db", "real.db", cwd=tmp_path).returncode == 0
    lines = spot.read_text().splitlines()
    row = lines[30].split(",")  # 2025-04-02T06:00, inside the window
    row[4] = str(Decimal(row[4]) + Decimal("0.01"))  # the close: what the loader reads
    lines[30] = ",".join(row)
    spot.write_text("\n".join(lines) + "\n")
    one_error_line(replay("rerun", "--db", "real.db", cwd=tmp_path), "data changed", str(data))
    shutil.rmtree(data)
    one_error_line(replay("rerun", "--db", "real.db", cwd=tmp_path), "no longer available", str(data))


def _session_log(path: Path, mode: str, config: dict[str, object]) -> None:
    ledger = Ledger.open(path, create=True)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    ledger.start_session(Session.start(f"{mode}-x", mode, text, config_digest(text), "none", "-", 0,
                                       "test", T0))
    venue = VenueLedger.open("main", "binance", "cex", T0)
    venue.record_deposit("d", "spot", "USDT", Decimal(100), T0)
    ledger.save(venue)
    ledger.end_session("done", T0 + timedelta(hours=1))
    ledger.close()


def test_rerun_refuses_what_it_cannot_repeat(tmp_path: Path) -> None:
    """A live log, an unknown strategy, a log without a data record, a missing file, not a ledger."""
    _session_log(tmp_path / "live.db", "live", {"strategy": "demo_basis", "data": {"kind": "synthetic"}})
    one_error_line(replay("rerun", "--db", "live.db", cwd=tmp_path), "live session, not a backtest")
    _session_log(tmp_path / "nope.db", "backtest", {"strategy": "nope", "data": {"kind": "synthetic"}})
    one_error_line(replay("rerun", "--db", "nope.db", cwd=tmp_path), "unknown strategy 'nope'")
    _session_log(tmp_path / "old.db", "backtest", {"strategy": "demo_basis"})
    one_error_line(replay("rerun", "--db", "old.db", cwd=tmp_path), "does not record how its data")
    one_error_line(replay("rerun", "--db", "missing.db", cwd=tmp_path), "no ledger database")
    (tmp_path / "text.db").write_text("hello")
    one_error_line(replay("rerun", "--db", "text.db", cwd=tmp_path), "not a SQLite database")


# ---- diff -----------------------------------------------------------------------------------------

def test_diff_of_two_seeds_needs_force_then_shows_the_first_divergence(
        runs: tuple[Path, dict[str, str]]) -> None:
    """Other seeds are other sessions: refused with one line; with --force the first divergence is the
    session record (seed, session key) and the summary shows fills, balances and P&L apart."""
    folder, _digests = runs
    one_error_line(replay("diff", "s3.db", "s11.db", cwd=folder), "different sessions", "--force")
    out = replay("diff", "s3.db", "s11.db", "--force", cwd=folder)
    assert out.returncode == 1, out.stderr
    assert "first divergence at event 1 (notification 1 in A, notification 1 in B)" in out.stdout
    assert "SessionStarted" in out.stdout and "config.session.seed" in out.stdout
    data = json.loads(replay("diff", "s3.db", "s11.db", "--force", "--json", cwd=folder).stdout)
    assert data["identical"] is False and data["divergence"]["position"] == 1
    fields = {f["field"]: (f["a"], f["b"]) for f in data["divergence"]["fields"]}
    assert fields["seed"] == (3, 11) and fields["session_key"][1] == "backtest-demo_basis-11"
    summary = data["summary"]
    assert summary["balances"] and summary["pnl"]
    assert summary["equity"][0] != summary["equity"][1]


def test_diff_of_one_session_with_another_capital_names_the_config_and_the_sums(
        runs: tuple[Path, dict[str, str]]) -> None:
    """Same session key, other capital: no --force needed; config fields and balances differ."""
    folder, _digests = runs
    out = replay("diff", "s3.db", "capital.db", "--json", cwd=folder)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    fields = {f["field"]: (f["a"], f["b"]) for f in data["divergence"]["fields"]}
    assert fields["config.strategy_params.capital"] == ("100000", "90000")
    a_state = fold(Ledger.open(folder / "s3.db").iter_events(), LedgerState(keep_fills=False))
    b_state = fold(Ledger.open(folder / "capital.db").iter_events(), LedgerState(keep_fills=False))
    key = ("binance", "spot", "USDT")
    assert data["summary"]["balances"][" ".join(key)] == [str(a_state.balances[key]),
                                                          str(b_state.balances[key])]
    assert Decimal(data["summary"]["pnl"]["total"][0]) == reports.pnl(a_state)["total"].quantize(
        Decimal("1e-12"))


def test_diff_of_a_truncated_copy_diverges_where_it_ends(runs: tuple[Path, dict[str, str]],
                                                         tmp_path: Path) -> None:
    """The shorter log ends first: the divergence is the first event it lacks."""
    folder, _digests = runs
    src, dst = sqlite3.connect(folder / "s3.db"), sqlite3.connect(tmp_path / "cut.db")
    src.backup(dst)
    src.close()
    dst.execute("DELETE FROM stored_events WHERE rowid > 200")
    dst.commit()
    dst.close()
    out = replay("diff", str(folder / "s3.db"), str(tmp_path / "cut.db"), cwd=folder)
    assert out.returncode == 1, out.stderr
    assert "first divergence at event 201 (notification 201 in A):" in out.stdout
    assert "(log ended)" in out.stdout


def test_diff_of_a_log_with_itself_is_identical(runs: tuple[Path, dict[str, str]]) -> None:
    folder, _digests = runs
    out = replay("diff", "s11.db", "s11.db", "--json", cwd=folder)
    assert out.returncode == 0 and json.loads(out.stdout)["identical"] is True
    one_error_line(replay("diff", "s11.db", "missing.db", cwd=folder), "no ledger database")


# ---- state ----------------------------------------------------------------------------------------

def _state_json(folder: Path, *args: str) -> dict[str, object]:
    out = replay("state", "--db", "s12.db", "--json", *args, cwd=folder)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_state_at_a_notification_equals_the_fold_up_to_it(runs: tuple[Path, dict[str, str]]) -> None:
    """--at N prints the reports of the first N events; with an index every 50, from a snapshot."""
    folder, _digests = runs
    built = replay("index", "--db", "s12.db", "--every", "50", cwd=folder)
    assert built.returncode == 0 and "snapshots up to notification" in built.stdout, built.stderr
    ledger = Ledger.open(folder / "s12.db")
    top = ledger.max_notification_id()
    for n in (1, 49, 50, 120, top - 1, top):
        data = _state_json(folder, "--at", str(n))
        state = fold(ledger.iter_events(0, n), LedgerState(keep_fills=False))
        snapshot = n if n == top else (n // 50) * 50  # the last snapshot sits at the end of the log
        assert data["notification"] == n and data["snapshot"] == snapshot
        assert data["tail"] == n - snapshot
        assert data["totals"] == {k: str(v) for k, v in reports.balances(state).items()}
        for line, value in reports.pnl(state).items():
            assert abs(Decimal(data["pnl"][line]) - value) < Decimal("1e-12"), line  # type: ignore[index]
        assert data["events"] == n and data["ts"] == state.last_ts.isoformat()  # type: ignore[union-attr]
    ledger.close()


def test_state_as_of_a_time_includes_every_event_stamped_then(runs: tuple[Path, dict[str, str]]) -> None:
    """--as-of 2024-01-02 (a date: 00:00 UTC) is the last notification stamped at or before it; the
    table output names the notification and the ledger time."""
    folder, _digests = runs
    ledger = Ledger.open(folder / "s12.db")
    stamps = [e.ts_event for _n, e in ledger.iter_events()]
    ledger.close()
    when = datetime(2024, 1, 2, tzinfo=UTC)
    expected = max(i + 1 for i, ts in enumerate(stamps) if ts <= when)
    data = _state_json(folder, "--as-of", "2024-01-02")
    assert data["notification"] == expected and data["as_of"] == when.isoformat()
    assert _state_json(folder, "--as-of", "2024-01-02T00:00:00Z")["notification"] == expected
    text = replay("state", "--db", "s12.db", "--as-of", "2024-01-02T05:30", cwd=folder)
    assert text.returncode == 0 and text.stdout.startswith("as of 2024-01-02T05:30:00+00:00: notification")
    for title in ("Balances", "Positions", "Exposure", "P&L"):
        assert title in text.stdout


def test_state_without_cache_gives_the_same_answer(runs: tuple[Path, dict[str, str]]) -> None:
    folder, _digests = runs
    cached = _state_json(folder, "--at", "130")
    plain = _state_json(folder, "--at", "130", "--no-cache")
    assert plain["snapshot"] == 0 and plain["tail"] == 130 and plain["cache"] is None
    for key in ("balances", "positions", "exposure", "risk", "pnl", "equity"):
        assert cached[key] == plain[key], key


def test_state_bad_input_is_one_line_and_exit_2(runs: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Before the first event, after the last, out-of-range numbers, both options, a bad time, a
    missing file, a file that is not a ledger, the ledger itself as the cache."""
    folder, _digests = runs
    top = Ledger.open(folder / "s12.db").max_notification_id()
    cases = [
        (("--as-of", "2023-12-31T23:59:59Z"), "before the first event"),
        (("--as-of", "2024-01-05"), "after the last event"),
        (("--at", "0"), f"out of range: the ledger's notifications are 1..{top}"),
        (("--at", str(top + 1)), "out of range"),
        (("--at", "5", "--as-of", "2024-01-02"), "not both"),
        (("--as-of", "yesterday"), "--as-of: expected an ISO time"),
        (("--cache", "s12.db"), "must not be the ledger database itself"),
    ]
    for args, words in cases:
        one_error_line(replay("state", "--db", "s12.db", *args, cwd=folder), words)
    one_error_line(replay("state", "--db", "missing.db", cwd=folder), "no ledger database")
    (tmp_path / "x.db").write_bytes(b"not sqlite at all")
    one_error_line(replay("state", "--db", str(tmp_path / "x.db"), cwd=folder), "not a SQLite database")
    empty = sqlite3.connect(tmp_path / "other.db")
    empty.execute("CREATE TABLE t (x)")
    empty.close()
    one_error_line(replay("state", "--db", str(tmp_path / "other.db"), cwd=folder), "not a ledger")


def test_state_never_changes_the_ledger_file(runs: tuple[Path, dict[str, str]]) -> None:
    """Building the cache, queries by number and time, rebuilding: the database bytes stay the same and
    the cache lives beside it, not in it."""
    folder, _digests = runs
    db = folder / "s11.db"
    before = sha256(db)
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    for args in ((), ("--at", "7"), ("--as-of", "2024-01-03"), ("--rebuild-cache",), ("--no-cache",)):
        assert replay("state", "--db", "s11.db", *args, cwd=folder).returncode == 0, args
    assert replay("index", "--db", "s11.db", "--every", "10", cwd=folder).returncode == 0
    assert sha256(db) == before
    assert {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")} == tables
    assert (folder / "s11.db.states").stat().st_size > 0


# ---- the benchmark --------------------------------------------------------------------------------

def test_replay_benchmark_runs_end_to_end_on_a_small_log(tmp_path: Path) -> None:
    """bench/replay_bench.py at a few thousand events: every row reported (numbers never asserted)."""
    out = tmp_path / "replay.json"
    run_ = run(str(ROOT / "bench" / "replay_bench.py"), "--events", "3000", "--source", "writer", "--db",
               str(tmp_path / "bench.db"), "--every", "500", "--queries", "3", "--json", str(out), cwd=ROOT)
    assert run_.returncode == 0, run_.stderr
    data = json.loads(out.read_text())
    assert data["events"] >= 3000 and data["check"] is True
    assert data["state_at"]["queries"] == 3 and data["state_at"]["max_tail"] <= 500
    for row in ("rebuild: decode + in-memory fold", "state at 3 random notifications", "snapshot cache"):
        assert row in run_.stdout
