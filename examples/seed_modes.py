"""Run every seed strategy mode with its default parameters on the real data shipped in data/ and print
the README's Markdown table.

    .venv/bin/python examples/seed_modes.py [--data data] [--start 2024-06-01] [--end 2024-08-01]
                                            [--reports DIR]

Each mode writes its own ledger and report folder under --reports (default seed-mode-reports/). Where the
data lacks a venue for the window, the hedged modes renormalise their default split over the venues it
has; the notes after the table say so.
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

from ledger.backtest import build_config, load_for, run_backtest, seed_overrides  # noqa: E402
from ledger.report import max_drawdown, write_report  # noqa: E402
from ledger.strategies import create, recorded  # noqa: E402
from ledger.strategies.seed_modes import MODES  # noqa: E402


def pct(x: Decimal) -> str:
    return f"{x * 100:.2f} %"


def usd(x: Decimal) -> str:
    return f"{x:,.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
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
    notes: list[str] = []
    for mode in MODES:
        strategy = create(mode.name)
        data = load_for(strategy, data_dir=args.data, seed=0, start=start, end=end, days=None,
                        fill="previous")
        db = args.reports / f"{mode.name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        overrides = seed_overrides(args.data)
        config = build_config(strategy, data, db=f"sqlite:///{db}", seed=0, overrides=overrides,
                              params=recorded(strategy))
        result = await run_backtest(config, strategy, data)
        write_report(args.reports / mode.name, result.summary, result.equity, result.exposure,
                     title=f"Seed mode: {mode.name}")
        notes += [f"{mode.name}: {n}" for n in strategy.notes]
        a = result.summary["attribution"]
        print(f"| `{mode.name}` | {pct(mode.target_apy)} | {pct(result.summary['apy'])} | "
              f"{pct(max_drawdown(result.equity))} | {usd(a['supply_interest'])} | {usd(a['borrow_cost'])} | "
              f"{usd(a['staking_rewards'])} | {usd(a['funding'])} | {usd(a['price'])} | {usd(a['fees'])} | "
              f"{usd(a['gas'])} |")
    print()
    for note in notes:
        print(f"- {note}")

if __name__ == "__main__":
    asyncio.run(main())
