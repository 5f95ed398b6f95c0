"""Our side of the backtest benchmark (SPEC §8): the public engine API, log persisted to SQLite.

    python bench/ours_backtest.py [--ticks N] [--every K] [--variant buy|roundtrip] [--seed S]
                                  [--views] [--keep-db PATH]

The same scenario as bench/nautilus/run_nautilus.py: N quote ticks 100 ms apart (a seeded random walk
around 3000, Decimal quantised to 0.01), one market order of 0.01 ETH on ETH/USDT at Binance spot every K
ticks (`buy`: always buy; `roundtrip`: alternate buy and sell), through
`EventDrivenStrategyEngine.execute_trade_with_interface` with the full lifecycle, risk checks and update
handler (SPEC §12.20: no benchmark-only path). Per tick the engine's `advance_to(ts, market)` runs the
time-driven work. Timed: the tick loop plus `engine.close()` (flush and session end: the log is on disk
at the end); building the price path is not. The SQL views (projection tables) are not written unless
`--views`: they are `ledger rebuild`'s job, benchmarked by bench/ledger_bench.py. Prints one JSON line:

    {"system": "execution-ledger", "variant": ..., "ticks": ..., "fills": ..., "seconds": ...,
     "ticks_per_s": ..., "fills_per_s": ..., "events": ..., "db_events": ...}

`fills` counts results whose status is FILLED; `db_events` counts the rows of the stored-events table in
the SQLite file after `close()`. Exits 1 when an order did not fill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = "2024-01-01T00:00:00+00:00"
STEP = timedelta(milliseconds=100)
AMOUNT = "0.01"


def price_path(n: int, seed: int) -> list[Decimal]:
    """A seeded random walk around 3000 in cents, as Decimals with exponent -2."""
    rng = random.Random(seed)
    cents, out = 300_000, []
    for _ in range(n):
        cents = min(max(cents + rng.randint(-50, 50), 250_000), 350_000)
        out.append(Decimal(cents).scaleb(-2))
    return out


def peak_rss_mb() -> float | None:
    """This process's peak resident set (VmHWM), Linux only."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def count_stored_events(db: Path) -> tuple[str | None, int | None]:
    """Rows in the stored-events table of the ledger's SQLite file (table found by inspection)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in ("stored_events", "ledger_events", *tables):
            if name in tables and "event" in name and "snapshot" not in name:
                return name, con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        return None, None
    finally:
        con.close()


def status_of(result: Any) -> Any:
    if isinstance(result, dict):
        return result.get("status")
    return getattr(result, "status", None)


async def run(args: argparse.Namespace, db: Path) -> dict[str, Any]:
    from ledger.engine import EventDrivenStrategyEngine

    prices = price_path(args.ticks, args.seed)
    start = datetime.fromisoformat(START)
    engine = EventDrivenStrategyEngine({
        "execution_mode": "backtest",
        # SQL views off unless --views: `ledger rebuild`'s job, benched apart (bench/ledger_bench.py)
        "ledger": {"url": f"sqlite:///{db}", "views": args.views},
        "initial_balances": {"binance": {"USDT": "1000000000", "ETH": "1000000"}},
        "session": {"start": START, "seed": args.seed},
    })
    roundtrip = args.variant == "roundtrip"
    every = args.every
    fills = orders = 0
    first_bad: Any = None
    bad = 0
    advance, trade = engine.advance_to, engine.execute_trade_with_interface

    t0 = time.perf_counter()
    for i, px in enumerate(prices):
        market = {"binance_eth_spot_price": px, "eth_usd_price": px}
        await advance(start + i * STEP, market)
        if i % every == 0:
            side = "SELL" if roundtrip and orders % 2 else "BUY"
            orders += 1
            result = await trade({"venue_type": "cex", "venue": "binance", "trade_type": "SPOT",
                                  "pair": "ETH/USDT", "side": side, "amount": AMOUNT}, market)
            if status_of(result) == "FILLED":
                fills += 1
            else:
                bad += 1
                if first_bad is None:
                    first_bad = {"tick": i, "result": repr(result)[:500]}
    engine.close()
    seconds = time.perf_counter() - t0

    table, db_events = count_stored_events(db)
    out: dict[str, Any] = {
        "system": "execution-ledger", "variant": args.variant, "ticks": args.ticks, "fills": fills,
        "seconds": round(seconds, 4),
        "ticks_per_s": round(args.ticks / seconds, 1) if seconds else None,
        "fills_per_s": round(fills / seconds, 1) if seconds else None,
    }
    if hasattr(engine, "event_count"):
        ec = engine.event_count
        out["events"] = ec() if callable(ec) else ec
    out.update({"db_events": db_events, "db_table": table, "db_bytes": db.stat().st_size,
                "views": args.views, "every": every, "orders": orders, "not_filled": bad,
                "peak_rss_mb": peak_rss_mb(), "python": sys.version.split()[0]})
    if first_bad is not None:
        out["first_not_filled"] = first_bad
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--variant", choices=("buy", "roundtrip"), default="buy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--views", action="store_true",
                    help="let close() also write the SQL views (projections), inside the timing")
    ap.add_argument("--keep-db", type=Path, default=None,
                    help="write the log here (must not exist) and keep it")
    args = ap.parse_args()

    if args.keep_db is not None:
        if args.keep_db.exists():
            ap.error(f"{args.keep_db} exists; a backtest writes a fresh database")
        out = asyncio.run(run(args, args.keep_db.resolve()))
    else:
        with tempfile.TemporaryDirectory(prefix="ledger-bt-") as tmp:
            out = asyncio.run(run(args, Path(tmp) / "bench.db"))
    print(json.dumps(out, default=str), flush=True)
    return 0 if out["not_filled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
