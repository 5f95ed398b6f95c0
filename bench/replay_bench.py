"""Replay benchmarks (SPEC §8): rebuild throughput against a raw select, and point-in-time state latency.

    python bench/replay_bench.py [--events N] [--source engine|writer] [--db PATH] [--every K]
                                 [--queries Q] [--json OUT]

The log (at least N events, default one million) is a backtest written by the engine
(`bench/ours_backtest.py`: one market order per tick through `execute_trade_with_interface`) or, with
`--source writer`, by `bench/ledger_bench.py`'s direct writer; it is kept in the temp folder (or at
`--db`) and reused while it holds enough events. Measured in this process, now:

- raw sqlite3 `SELECT` of the same rows (the reference; after one untimed pass, so every measurement
  reads a warm page cache), decoding every event, and the rebuild: decode plus the in-memory fold of
  every event (events/s and the ratio to the raw select);
- building the snapshot cache (`ledger replay index`; its peak memory in a child process);
- state at Q random notifications and as of Q random ledger times, each a fresh `state_as_of` call
  (cache opened and checked against the ledger, nearest snapshot, tail folded): median and max ms;
- one `ledger replay state --at` run end to end, interpreter start included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.app import Ledger  # noqa: E402
from projections import InMemoryProjection, reports  # noqa: E402
from replays.state import DEFAULT_EVERY, StateCache, fold_to, from_micros, state_as_of  # noqa: E402


def events_in(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0] or 0)
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def make_log(path: Path, events: int, source: str) -> float:
    """Write a log of at least `events` events at `path` (atomically); returns seconds taken."""
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    if source == "engine":
        ticks = events // 3 + 100  # one order (accepted, submitted, filled) per tick
        subprocess.run([sys.executable, str(ROOT / "bench" / "ours_backtest.py"), "--ticks", str(ticks),
                        "--every", "1", "--keep-db", str(partial)], check=True, stdout=subprocess.DEVNULL)
    else:
        from bench.ledger_bench import write_log

        write_log(partial, events)
    con = sqlite3.connect(partial)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    os.replace(partial, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    return time.perf_counter() - start


def raw_select(path: Path) -> tuple[float, int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    start = time.perf_counter()
    count, after = 0, 0
    while True:
        rows = con.execute("SELECT rowid, originator_id, originator_version, topic, state FROM "
                           "stored_events WHERE rowid>? ORDER BY rowid LIMIT 20000", (after,)).fetchall()
        if not rows:
            break
        count += len(rows)
        after = rows[-1][0]
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed, count


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


INDEX_CHILD = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from ledger.app import Ledger
from replays.state import build_cache
ledger = Ledger.open({db!r})
path, snapshots, end = build_cache(ledger, Path({cache!r}), {every}, rebuild=True)
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(snapshots, end, hwm)
"""


def build_index(db: Path, cache: Path, every: int) -> dict[str, float]:
    code = INDEX_CHILD.format(root=str(ROOT), db=str(db), cache=str(cache), every=every)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    snapshots, end, kib = out.stdout.split()
    size = sum(Path(f"{cache}{s}").stat().st_size for s in ("", "-wal") if Path(f"{cache}{s}").exists())
    return {"seconds": seconds, "snapshots": int(snapshots), "events": int(end),
            "per_s": int(end) / seconds, "peak_rss_mib": int(kib) / 1024, "bytes": size}


def latencies(ledger: Any, cache: Path, points: list[Any], key: str) -> dict[str, Any]:
    times, tails = [], []
    for p in points:
        seconds, result = timed(lambda p=p: state_as_of(ledger, cache=cache, **{key: p}))
        reports.pnl(result.state)  # the reports are part of the answer
        times.append(seconds * 1000)
        tails.append(result.point.tail)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "queries": len(times),
            "max_tail": max(tails), "ms": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--source", choices=("engine", "writer"), default="engine")
    parser.add_argument("--db", type=Path, default=None, help="log to reuse or keep (default: temp folder)")
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY, help="snapshot every K notifications")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    db = args.db or Path(tempfile.gettempdir()) / f"ledger-replay-bench-{args.source}-{args.events}.db"
    results: dict[str, Any] = {"events_requested": args.events, "source": args.source, "db": str(db),
                               "every": args.every}
    if events_in(db) < args.events:
        results["log_written_s"] = make_log(db, args.events, args.source)
    raw_select(db)  # warm the page cache: every pass below reads the same file
    select_s, count = raw_select(db)
    ledger = Ledger.open(db)
    try:
        decode_s, _ = timed(lambda: sum(1 for _ in ledger.iter_events()))
        fold_s, _ = timed(lambda: InMemoryProjection().catch_up(ledger))
        results["events"] = count
        results["raw_select_per_s"] = count / select_s
        results["decode_per_s"] = count / decode_s
        results["rebuild_per_s"] = count / fold_s
        with tempfile.TemporaryDirectory(prefix="ledger-replay-bench-") as tmp:
            cache = Path(tmp) / "bench.states"
            results["index"] = build_index(db, cache, args.every)
            rng = random.Random(args.seed)
            top = ledger.max_notification_id()
            at = [rng.randint(1, top) for _ in range(args.queries)]
            results["state_at"] = latencies(ledger, cache, at, "at")
            with StateCache.open(ledger, cache) as store:
                lo, hi = store.con.execute("SELECT MIN(ts), MAX(ts) FROM times").fetchone()
            when = [from_micros(rng.randint(lo, hi)) for _ in range(args.queries)]
            results["state_as_of"] = latencies(ledger, cache, when, "as_of")
            results["check"] = check(ledger, cache, at[0])
            results["cli_ms"] = cli_once(db, cache, at[0])
    finally:
        ledger.close()
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


def check(ledger: Any, cache: Path, nid: int) -> bool:
    """The snapshot answer equals a fold from the first event (the reports), at one of the points."""
    fast = state_as_of(ledger, at=nid, cache=cache).state
    slow, _ = fold_to(ledger, nid)
    names = ("balances", "positions", "exposure", "pnl", "equity")
    same = all(getattr(reports, n)(fast) == getattr(reports, n)(slow) for n in names)
    if not same:
        raise SystemExit(f"point-in-time state at {nid} differs from the fold from the start")
    return same


def cli_once(db: Path, cache: Path, nid: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ledger.cli_replay", "state", "--db", str(db), "--at", str(nid),
                    "--cache", str(cache), "--json"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return (time.perf_counter() - start) * 1000


def table(r: dict[str, Any]) -> str:
    raw, ix, at, ts = r["raw_select_per_s"], r["index"], r["state_at"], r["state_as_of"]
    lines = [f"log: {r['events']:,} events ({r['source']}) at {r['db']}", "",
             "| what | measured | raw sqlite3 select | ratio | target |", "|---|---:|---:|---:|---|",
             f"| raw select of every row | {raw:,.0f} events/s | | | (reference) |",
             f"| decode every event | {r['decode_per_s']:,.0f} events/s | {raw:,.0f} | "
             f"{r['decode_per_s'] / raw:.2f} | |",
             f"| rebuild: decode + in-memory fold | {r['rebuild_per_s']:,.0f} events/s | {raw:,.0f} | "
             f"{r['rebuild_per_s'] / raw:.2f} | ≥ 200k/s and ≥ 1/2 of raw select |",
             f"| snapshot cache build (every {r['every']:,} notifications) | "
             f"{ix['per_s']:,.0f} events/s, {ix['seconds']:.1f} s, {ix['bytes'] / 2**20:.0f} MiB, "
             f"peak {ix['peak_rss_mib']:.0f} MiB | | | |",
             f"| state at {at['queries']} random notifications | median {at['median_ms']:.1f} ms, "
             f"max {at['max_ms']:.1f} ms (tail ≤ {at['max_tail']:,}) | | | ≤ 100 ms |",
             f"| state as of {ts['queries']} random ledger times | median {ts['median_ms']:.1f} ms, "
             f"max {ts['max_ms']:.1f} ms | | | ≤ 100 ms |",
             f"| `replay state --at` end to end (interpreter start included) | {r['cli_ms']:.0f} ms | | | |"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
