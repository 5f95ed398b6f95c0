"""Write-ahead overhead of a live CEX order: the full path against the raw ccxt call, on the emulator.

    python bench/live_overhead.py [--orders N] [--pg URL | --no-pg] [--json OUT]

Both sides use the same real ccxt client (async Binance spot) over TLS to the loopback emulator, one
market order at a time. "raw" is `create_order` alone; "ours" is `execute_trade_with_interface`
with the whole lifecycle (parse, pre-trade checks, `InstructionAccepted` + `OrderSubmitted` committed
durably before the request, `OrderAcknowledged` + `OrderFilled` committed after it, projection and
update handler). Binance spot answers with its fills, so both sides make one request per order.
ccxt's rate limiter is off on both sides (it only adds a fixed wait per request); the emulator is
reset before each side.

Per store: medians and p99 of the full path, of the ledger appends alone (timed inside the run: the
write-ahead overhead SPEC §8 sets targets for) and of the store's floor: the same rows, in the same
commits with the same durability, through raw sqlite3 / psycopg in this run. Stores: SQLite FULL
(the live default: the reply's commit does not wait for the disk), SQLite FULL with
`durable_replies`, SQLite NORMAL, and PostgreSQL both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pgschema import drop_schema, pg_url  # noqa: E402
from ledger.live import live_backend, live_config, open_engine, reconcile  # noqa: E402
from tests.emulator import Emulator, make_client  # noqa: E402

PG_DEFAULT = os.environ.get("LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MARKET = {"binance_eth_spot_price": "2000", "eth_usd_price": "2000"}
ORDER = {
    "venue_type": "cex",
    "venue": "binance",
    "trade_type": "SPOT",
    "pair": "ETH/USDT",
    "side": "BUY",
    "amount": "0.005",
}


def fresh(emulator: Emulator) -> None:
    """An empty book before each side: the emulator's matching cost grows with the orders it holds."""
    emulator.reset()
    emulator.venue("binance").set_balance("spot", "USDT", "100000000")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values) * 1e3, "p99_ms": pct(values, 0.99) * 1e3}


def factory(emulator: Emulator) -> Any:
    def build(venue: str, settings: dict[str, Any]) -> Any:
        creds = {k: settings[k] for k in ("apiKey", "secret", "password") if k in settings}
        return make_client(
            venue,
            emulator,
            credentials=creds,
            options=settings["options"],
            enable_rate_limit=False,
            timeout_ms=settings["timeout"],
        )

    return build


async def raw(emulator: Emulator, n: int) -> list[float]:
    ex = make_client("binance", emulator)
    try:
        await ex.load_markets()
        for i in range(20):  # warm the connection like the engine's reconciliation does
            await ex.create_order("ETH/USDT", "market", "buy", 0.005, None, {"clientOrderId": f"w{i}"})
        out = []
        for i in range(n):
            t = time.perf_counter()
            await ex.create_order("ETH/USDT", "market", "buy", 0.005, None, {"clientOrderId": f"raw{i}"})
            out.append(time.perf_counter() - t)
        return out
    finally:
        await ex.close()


Commit = tuple[int, bool]  # events in the commit, and whether it waited for the disk


async def ours(
    emulator: Emulator, url: str, synchronous: str, durable_replies: bool, n: int
) -> tuple[list[float], list[float], list[list[Commit]], tuple[int, int]]:
    """The full path per order; the ledger appends alone; each order's commits; the ids they wrote."""
    c = emulator.credentials["binance"]
    config = live_config(
        {
            "ledger": {"url": url, "synchronous": synchronous, "views": False,
                       "durable_replies": durable_replies},
            "venues": ["binance"],
            "binance_api_key": c.api_key,
            "binance_secret": c.secret,
            "live": {"symbols": ["ETH/USDT"]},
        }
    )
    engine = open_engine(config, factory(emulator))
    recorder = engine.event_logger
    commits: list[float] = []
    plan: list[Commit] = []
    original = recorder.commit

    def timed(*aggregates: Any, durable: bool = True) -> None:
        before = recorder.events
        t = time.perf_counter()
        original(*aggregates, durable=durable)
        commits.append(time.perf_counter() - t)
        if recorder.events > before:
            plan.append((recorder.events - before, durable or durable_replies))

    recorder.commit = timed  # type: ignore[method-assign]
    try:
        await reconcile(engine)
        for _ in range(20):
            await engine.execute_trade_with_interface(dict(ORDER), MARKET)
        first = engine.ledger.max_notification_id()
        totals, appends, plans = [], [], []
        for _ in range(n):
            commits.clear()
            plan = []
            t = time.perf_counter()
            result = await engine.execute_trade_with_interface(dict(ORDER), MARKET)
            totals.append(time.perf_counter() - t)
            assert result["status"] == "FILLED", result
            appends.append(sum(commits))
            plans.append(plan)
        return totals, appends, plans, (first, engine.ledger.max_notification_id())
    finally:
        await live_backend(engine).close()  # type: ignore[union-attr]
        engine.close(views=False)


# ---- the same rows and commits through the raw driver: the store's own floor -----------------------

Row = tuple[Any, int, str, bytes]


def sqlite_rows(path: str, ids: tuple[int, int]) -> tuple[list[Row], list[str]]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid", ids).fetchall()
        ddl = [r[0] for r in con.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'stored_events' AND sql IS NOT NULL")]
        return rows, ddl
    finally:
        con.close()


def raw_sqlite(
    path: str, ddl: list[str], rows: list[Row], plans: list[list[Commit]], sync: str
) -> list[float]:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={sync}")
    for statement in ddl:
        con.execute(statement)
    insert = ("INSERT INTO stored_events (originator_id, originator_version, topic, state) "
              "VALUES (?, ?, ?, ?)")
    out, at = [], 0
    try:
        for plan in plans:
            t = time.perf_counter()
            for size, durable in plan:
                relax = sync == "FULL" and not durable
                if relax:
                    con.execute("PRAGMA synchronous=NORMAL")
                con.execute("BEGIN")
                con.executemany(insert, rows[at:at + size])
                con.execute("COMMIT")
                if relax:
                    con.execute("PRAGMA synchronous=FULL")
                at += size
            out.append(time.perf_counter() - t)
        return out
    finally:
        con.close()


def raw_postgres(base: str, schema: str, ids: tuple[int, int], plans: list[list[Commit]]) -> list[float]:
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        rows = con.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{schema}".ledger_events '
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id", ids).fetchall()
        con.execute(f'CREATE TABLE "{schema}".raw_events (LIKE "{schema}".ledger_events INCLUDING ALL)')
        insert = (f'INSERT INTO "{schema}".raw_events (originator_id, originator_version, topic, state) '
                  "VALUES (%s, %s, %s, %s)")
        out, at = [], 0
        for plan in plans:
            t = time.perf_counter()
            for size, durable in plan:
                with con.transaction(), con.cursor() as cur:
                    if not durable:
                        cur.execute("SET LOCAL synchronous_commit = off")
                    cur.executemany(insert, rows[at:at + size])
                at += size
            out.append(time.perf_counter() - t)
        return out


# (name, store, synchronous, durable_replies, target ms for the appends' median)
STORES = [
    ("sqlite_full", "sqlite", "FULL", False, 1.0),
    ("sqlite_full_durable_replies", "sqlite", "FULL", True, 1.0),
    ("sqlite_normal", "sqlite", "NORMAL", False, 1.0),
    ("postgresql", "postgresql", "FULL", False, 5.0),
    ("postgresql_durable_replies", "postgresql", "FULL", True, 5.0),
]


def run_store(emulator: Emulator, store: tuple[str, str, str, bool, float], tmp: str, pg_base: str,
              n: int) -> dict[str, Any]:
    name, kind, sync, durable_replies, target = store
    schema = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp}/{name}.db"
    else:
        made = pg_url(pg_base)
        assert made is not None
        url, schema = made
    try:
        fresh(emulator)
        totals, appends, plans, ids = asyncio.run(ours(emulator, url, sync, durable_replies, n))
        if schema is None:
            rows, ddl = sqlite_rows(f"{tmp}/{name}.db", ids)
            floor = raw_sqlite(f"{tmp}/{name}-raw.db", ddl, rows, plans, sync)
        else:
            floor = raw_postgres(pg_base, schema, ids, plans)
    finally:
        if schema is not None:
            drop_schema(pg_base, schema)
    row: dict[str, Any] = {
        "synchronous": sync, "durable_replies": durable_replies,
        "commits_per_order": statistics.median(len(p) for p in plans),
        "durable_commits_per_order": statistics.median(sum(d for _, d in p) for p in plans),
        "events_per_order": statistics.median(sum(k for k, _ in p) for p in plans),
        "ours": summary(totals), "appends": summary(appends), "raw_store": summary(floor),
        "target_ms": target,
    }
    row["appends_over_raw_store"] = row["appends"]["median_ms"] / row["raw_store"]["median_ms"]
    row["target_met"] = row["appends"]["median_ms"] <= target
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (a schema of its own is used)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"orders": args.orders}
    pg_ok = not args.no_pg and pg_url(args.pg) is not None
    stores = [s for s in STORES if s[1] == "sqlite" or pg_ok]
    if not pg_ok:
        results["postgresql"] = "skipped: no server" if not args.no_pg else "skipped: --no-pg"
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        fresh(emulator)
        results["raw_ccxt"] = summary(asyncio.run(raw(emulator, args.orders)))
        for store in stores:
            results[store[0]] = run_store(emulator, store, tmp, args.pg, args.orders)
    print(report(results, [s[0] for s in stores]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any], names: list[str]) -> str:
    raw_ms = results["raw_ccxt"]["median_ms"]
    lines = [
        f"n = {results['orders']} Binance spot market orders per side; median / p99 in ms",
        f"raw ccxt create_order          {raw_ms:7.3f} / {results['raw_ccxt']['p99_ms']:7.3f}",
        f"{'store':28} {'full path':>17} {'added':>7} {'appends':>17} {'raw store':>17} "
        f"{'ratio':>6} {'target':>8}",
    ]
    for name in names:
        r = results[name]
        o, a, f = r["ours"], r["appends"], r["raw_store"]
        verdict = f"<= {r['target_ms']:g} " + ("met" if r["target_met"] else "NOT met")
        lines.append(
            f"{name:28} {o['median_ms']:7.3f} / {o['p99_ms']:7.3f} {o['median_ms'] - raw_ms:+7.3f} "
            f"{a['median_ms']:7.3f} / {a['p99_ms']:7.3f} {f['median_ms']:7.3f} / {f['p99_ms']:7.3f} "
            f"{r['appends_over_raw_store']:6.2f} {verdict}"
        )
    lines.append("appends: the ledger's commits of one order (write-ahead before the request, the reply "
                 "after); raw store: the same rows and commits through sqlite3 / psycopg alone")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
