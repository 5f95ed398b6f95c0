"""Run every seed strategy mode on the shared real data and print the README's Markdown table.

    .venv/bin/python examples/seed_modes.py [--data ../shared/data] [--start 2024-06-01] [--end 2024-08-01]
                                            [--reports DIR]

Each mode writes its own ledger and report folder under --reports (default seed-mode-reports/).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.backtest import build_config, load_data, run_backtest, seed_overrides  # noqa: E402
from ledger.report import max_drawdown, write_report  # noqa: E402
from ledger.strategies import create  # noqa: E402
from ledger.strategies.seed_modes import MODES  # noqa: E402

SPLIT = {"binance": Decimal("0.55"), "bybit": Decimal("0.45")}
HEDGED = ("eth_basis", "btc_basis", "usdt_market_neutral_no_leverage", "usdt_market_neutral")


def pct(x: Decimal) -> str:
    return f"{x * 100:.2f} %"


def usd(x: Decimal) -> str:
    return f"{x:,.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--start", default="2024-06-01")
    parser.add_argument("--end", default="2024-08-01")
    parser.add_argument("--reports", type=Path, default=Path("seed-mode-reports"))
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    args.reports.mkdir(parents=True, exist_ok=True)
    print("| mode | seed target | APY | max drawdown | supply interest | borrow cost | staking rewards | "
          "funding | price | fees | gas |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        params = {"hedge_split": SPLIT} if mode.name in HEDGED else {}
        strategy = create(mode.name, **params)
        data = load_data(data_dir=args.data, seed=0, start=start, end=end, days=None,
                         needs=strategy.data_needs(), fill="previous")
        db = args.reports / f"{mode.name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        overrides = seed_overrides(args.data)
        config = build_config(strategy, data, db=f"sqlite:///{db}", seed=0, overrides=overrides)
        result = await run_backtest(config, strategy, data)
        write_report(args.reports / mode.name, result.summary, result.equity, result.exposure,
                     title=f"Seed mode: {mode.name}")
        a = result.summary["attribution"]
        print(f"| `{mode.name}` | {pct(strategy.target_apy)} | {pct(result.summary['apy'])} | "
              f"{pct(max_drawdown(result.equity))} | {usd(a['supply_interest'])} | {usd(a['borrow_cost'])} | "
              f"{usd(a['staking_rewards'])} | {usd(a['funding'])} | {usd(a['price'])} | {usd(a['fees'])} | "
              f"{usd(a['gas'])} |")


if __name__ == "__main__":
    asyncio.run(main())
