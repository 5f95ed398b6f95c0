"""Write-ahead overhead of a live CEX order: the full path against the raw ccxt call, on the emulator.

    python bench/live_overhead.py [--orders N] [--pg URL | --no-pg] [--json OUT]

Both sides use the same real ccxt client (async Binance spot) over TLS to the loopback emulator, one
market order at a time. "raw" is `create_order` alone; "ours" is `execute_trade_with_interface`
with the whole lifecycle (parse, pre-trade checks, `InstructionAccepted` + `OrderSubmitted` committed
before the request, `OrderAcknowledged` + `OrderFilled` after it, projection and update handler).
Binance spot answers with its fills, so both sides make exactly one request per order. ccxt's rate
limiter is off on both sides (it only adds a fixed wait per request); the emulator is reset before
each side. Reported per store: medians and p99 of raw, ours, their difference, and of the two ledger
appends alone (timed inside the run: the write-ahead overhead SPEC §8 sets targets for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


async def ours(emulator: Emulator, url: str, synchronous: str, n: int) -> tuple[list[float], list[float]]:
    c = emulator.credentials["binance"]
    config = live_config(
        {
            "ledger": {"url": url, "synchronous": synchronous, "views": False},
            "venues": ["binance"],
            "binance_api_key": c.api_key,
            "binance_secret": c.secret,
            "live": {"symbols": ["ETH/USDT"]},
        }
    )
    engine = open_engine(config, factory(emulator))
    recorder = engine.event_logger
    commits: list[float] = []
    original = recorder.commit

    def timed(*aggregates: Any, **kw: Any) -> None:
        t = time.perf_counter()
        original(*aggregates, **kw)
        commits.append(time.perf_counter() - t)

    recorder.commit = timed  # type: ignore[method-assign]
    try:
        await reconcile(engine)
        for _ in range(20):
            await engine.execute_trade_with_interface(dict(ORDER), MARKET)
        totals, appends = [], []
        for _ in range(n):
            commits.clear()
            t = time.perf_counter()
            result = await engine.execute_trade_with_interface(dict(ORDER), MARKET)
            totals.append(time.perf_counter() - t)
            assert result["status"] == "FILLED", result
            appends.append(sum(commits))
        return totals, appends
    finally:
        await live_backend(engine).close()  # type: ignore[union-attr]
        engine.close(views=False)


def pg_url(base: str) -> tuple[str, str] | None:
    import psycopg

    try:
        psycopg.connect(base, connect_timeout=3).close()
    except psycopg.OperationalError:
        return None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return f"{base}?schema={schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (a schema of its own is used)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"orders": args.orders}
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        fresh(emulator)
        baseline = asyncio.run(raw(emulator, args.orders))
        results["raw_ccxt"] = summary(baseline)
        stores: list[tuple[str, str, str]] = [
            ("sqlite_full", f"sqlite:///{tmp}/full.db", "FULL"),
            ("sqlite_normal", f"sqlite:///{tmp}/normal.db", "NORMAL"),
        ]
        pg = None if args.no_pg else pg_url(args.pg)
        if pg is not None:
            stores.append(("postgresql", pg[0], "FULL"))
        else:
            results["postgresql"] = "skipped: no server"
        try:
            for name, url, sync in stores:
                fresh(emulator)
                totals, appends = asyncio.run(ours(emulator, url, sync, args.orders))
                row = {"ours": summary(totals), "appends": summary(appends)}
                row["added_median_ms"] = row["ours"]["median_ms"] - results["raw_ccxt"]["median_ms"]
                results[name] = row
        finally:
            if pg is not None:
                drop_schema(args.pg, pg[1])
    print(f"{'':14} {'median ms':>10} {'p99 ms':>8}   (n = {args.orders} orders per side)")
    print(f"{'raw ccxt':14} {results['raw_ccxt']['median_ms']:10.3f} {results['raw_ccxt']['p99_ms']:8.3f}")
    for name, *_ in stores:
        r = results[name]
        print(
            f"{name:14} {r['ours']['median_ms']:10.3f} {r['ours']['p99_ms']:8.3f}   "
            f"added {r['added_median_ms']:+.3f}   appends {r['appends']['median_ms']:.3f} "
            f"(p99 {r['appends']['p99_ms']:.3f})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
