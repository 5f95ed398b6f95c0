"""Ledger benchmarks against raw sqlite3 in the same run: append, replay, rebuild, replay memory.

    python bench/ledger_bench.py [--events N] [--memory-events M] [--quick] [--json OUT]

Every ratio compares the ledger with raw sqlite3 doing the same work on the same rows (same table
shape, same bytes, same batch size, WAL, synchronous=NORMAL) in this process, now.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregates.ids import client_order_id, instruction_id  # noqa: E402
from aggregates.venue import VenueLedger  # noqa: E402
from ledger.app import Ledger  # noqa: E402
from projections import InMemoryProjection, SQLProjection  # noqa: E402

T0 = datetime(2024, 6, 1, tzinfo=UTC)
BATCH_INSTRUCTIONS = 40  # per venue per save: 3 events each -> 120 events per venue
VENUES = ("binance", "bybit", "okx", "deribit", "kraken", "coinbase", "ethereum", "arbitrum")
SCHEMA = ("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
          "state BLOB, PRIMARY KEY (originator_id, originator_version))")


def write_log(path: Path, events: int) -> tuple[float, int, list[int]]:
    """Append about `events` events through the ledger; return seconds, count and batch sizes."""
    ledger = Ledger.open(path, create=True, synchronous="NORMAL")
    venues = [VenueLedger.open("main", v, "cex", T0) for v in VENUES]
    ledger.save(*venues)
    written, seq, sizes = len(venues), 0, []
    price, qty, fee = Decimal("3001.5"), Decimal("0.5"), Decimal("0.0015")
    market = {"eth_usd_price": Decimal("3000")}
    ins = {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "0.5", "wallet": "spot"}
    start = time.perf_counter()
    while written < events:
        for v in venues:
            for _ in range(BATCH_INSTRUCTIONS):
                seq += 1
                ts = T0 + timedelta(seconds=seq)
                iid = instruction_id("bench", seq)
                v.record_accepted(iid, ins, market, ts)
                v.record_submitted(iid, client_order_id(iid), ts)
                v.record_fill(iid, str(seq), "spot", "ETH/USDT", "buy", qty, price, fee, "USDT", ts)
        batch = sum(len(v.pending_events) for v in venues)
        ledger.save(*venues)
        written += batch
        sizes.append(batch)
    elapsed = time.perf_counter() - start
    ledger.close()
    return elapsed, written - len(venues), sizes


def raw_rows(path: Path) -> list[tuple[str, int, str, bytes]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT originator_id, originator_version, topic, state FROM stored_events "
                           "ORDER BY rowid").fetchall()
    finally:
        con.close()


def raw_insert(rows: list[tuple[str, int, str, bytes]], sizes: list[int]) -> float:
    """The baseline: the same rows, the same batches, one executemany + commit per batch."""
    with tempfile.TemporaryDirectory() as tmp:
        con = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(SCHEMA)
        body = rows[len(VENUES):]
        con.executemany("INSERT INTO stored_events VALUES (?,?,?,?)", rows[: len(VENUES)])
        start = time.perf_counter()
        offset = 0
        for size in sizes:
            con.execute("BEGIN")
            con.executemany("INSERT INTO stored_events VALUES (?,?,?,?)", body[offset:offset + size])
            con.execute("COMMIT")
            offset += size
        elapsed = time.perf_counter() - start
        con.close()
    return elapsed


def raw_select(path: Path) -> tuple[float, int]:
    con = sqlite3.connect(path)
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


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def replay_numbers(path: Path) -> dict[str, float]:
    ledger = Ledger.open(path)
    n = ledger.max_notification_id()
    select_s, _ = raw_select(path)
    decode_s = timed(lambda: sum(1 for _ in ledger.iter_events()))
    fold_s = timed(lambda: InMemoryProjection().catch_up(ledger))
    sql_s = timed(lambda: SQLProjection.for_ledger(ledger).rebuild(ledger))
    ledger.close()
    return {"events": n, "raw_select_per_s": n / select_s, "decode_per_s": n / decode_s,
            "fold_per_s": n / fold_s, "sql_rebuild_per_s": n / sql_s}


MEMORY_CHILD = """
import sys
sys.path.insert(0, {root!r})
from ledger.app import Ledger
from projections import InMemoryProjection
ledger = Ledger.open({path!r})
mode = {mode!r}
if mode == "decode":
    count = sum(1 for _ in ledger.iter_events())
else:
    view = InMemoryProjection()
    count = view.catch_up(ledger)
# VmHWM belongs to this process image; ru_maxrss would include the parent's size at fork.
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(count, hwm)
"""


def peak_memory(path: Path, mode: str) -> tuple[int, float]:
    code = MEMORY_CHILD.format(root=str(ROOT), path=str(path), mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, kib = out.stdout.split()
    return int(count), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--memory-events", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.events, args.memory_events = 20_000, 60_000
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        seconds, count, sizes = write_log(path, args.events)
        raw_s = raw_insert(raw_rows(path), sizes)
        results["append"] = {"events": count, "batch": sum(sizes) // len(sizes),
                             "ledger_per_s": count / seconds, "raw_per_s": count / raw_s}
        results["replay"] = replay_numbers(path)
        big = Path(tmp) / "big.db"
        write_log(big, args.memory_events)
        results["memory"] = {}
        for mode in ("decode", "fold"):
            n, mib = peak_memory(big, mode)
            results["memory"][mode] = {"events": n, "peak_rss_mib": mib}  # type: ignore[index]
    results["base_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def table(r: dict[str, object]) -> str:
    a, p, m = r["append"], r["replay"], r["memory"]  # type: ignore[misc]
    rows = [
        (f"append, SQLite file, batches of ~{a['batch']} events", a["ledger_per_s"],
         a["raw_per_s"], "≥ 100k/s and ≥ 1/3 of raw executemany"),
        ("replay: decode every event", p["decode_per_s"], p["raw_select_per_s"],
         "≥ 200k/s and ≥ 1/2 of raw select"),
        ("replay: decode + in-memory fold", p["fold_per_s"], p["raw_select_per_s"], "(rebuild)"),
        ("rebuild SQL views", p["sql_rebuild_per_s"], p["raw_select_per_s"], "(rebuild)"),
    ]
    lines = ["| what | ledger events/s | raw sqlite3 events/s | ratio | target |",
             "|---|---:|---:|---:|---|"]
    for name, mine, raw, target in rows:
        lines.append(f"| {name} | {mine:,.0f} | {raw:,.0f} | {mine / raw:.2f} | {target} |")
    for mode, v in m.items():
        lines.append(f"| peak RSS (VmHWM), {mode} replay of {v['events']:,} events | "
                     f"{v['peak_rss_mib']:.0f} MiB | | | flat, < 300 MB at 5M |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
