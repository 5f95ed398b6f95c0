"""Run every seed strategy mode with its default parameters on the real data shipped in data/ and print
the README's Markdown table.

    .venv/bin/python examples/seed_modes.py [--data data] [--start 2024-06-01] [--end 2024-08-01]
                                            [--reports DIR]

Each mode writes its own ledger and report folder under --reports (default seed-mode-reports/). The
runs' notes follow the table, each once with the modes it concerns: where the data lacks a venue for the
window the hedged modes renormalise their default split over the venues it has, gaps carried forward are
listed, and so is a window LEDGER_MAX_DAYS shortened. A bad option or data folder is one `error:` line on
stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregates.errors import LedgerError  # noqa: E402
from aggregates.values import to_utc  # noqa: E402
from ledger.marketdata import seed_root  # noqa: E402
from ledger.strategies import create, recorded  # noqa: E402
from ledger.strategies.seed_modes import MODES  # noqa: E402


def pct(x: Decimal | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def usd(x: Decimal) -> str:
    return f"{x:,.0f}"


class Refused(Exception):
    """A bad option: one `error:` line, exit 2."""


def when(text: str, option: str) -> datetime:
    """An ISO time or date (a date is its 00:00 UTC, a time without zone is UTC), as `ledger backtest`."""
    try:
        return to_utc(text if "T" in text or " " in text else f"{text}T00:00:00+00:00", option)
    except LedgerError:
        raise Refused(f"{option}: expected an ISO time or date, got {text!r}") from None


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--start", default="2024-06-01")
    parser.add_argument("--end", default="2024-08-01")
    parser.add_argument("--reports", type=Path, default=Path("seed-mode-reports"))
    args = parser.parse_args(argv)
    args.start, args.end = when(args.start, "--start"), when(args.end, "--end")
    if args.end <= args.start:
        raise Refused(f"--end: must be after --start, got {args.end.isoformat()}")
    if seed_root(args.data) is None:
        raise Refused(f"--data: {args.data} is not the seed data folder (the repository's data/, which "
                      "holds seed/)")
    if args.reports.exists() and not args.reports.is_dir():
        raise Refused(f"--reports: {args.reports} is a file, not a folder")
    from ledger.backtest import max_days  # the engine and the report load once the options are good

    max_days()  # a bad LEDGER_MAX_DAYS is refused before anything runs
    return args


async def main(args: argparse.Namespace, modes: Sequence[type[Any]] = MODES) -> None:
    from ledger.backtest import build_config, load_for, run_backtest, seed_overrides
    from ledger.report import max_drawdown, write_report

    start, end = args.start, args.end
    print("| mode | seed target | APY | max drawdown | supply interest | borrow cost | staking rewards | "
          "funding | realised + revaluation | fees | gas |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes: dict[str, list[str]] = {}  # note -> the modes whose run wrote it
    for mode in modes:
        strategy = create(mode.name)
        data = load_for(strategy, data_dir=args.data, seed=0, start=start, end=end, days=None,
                        fill="previous")
        args.reports.mkdir(parents=True, exist_ok=True)  # once the data for the first mode loaded
        db = args.reports / f"{mode.name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        overrides = seed_overrides(args.data)
        config = build_config(strategy, data, db=f"sqlite:///{db}", seed=0, overrides=overrides,
                              params=recorded(strategy))
        result = await run_backtest(config, strategy, data)
        write_report(args.reports / mode.name, result.summary, result.equity, result.exposure,
                     title=f"Seed mode: {mode.name}")
        for note in result.summary["notes"]:  # the strategy's, then the data's (gaps, a capped window)
            notes.setdefault(str(note), []).append(mode.name)
        a = result.summary["pnl"]
        print(f"| `{mode.name}` | {pct(mode.target_apy)} | {pct(result.summary['apy'])} | "
              f"{pct(max_drawdown(result.equity))} | {usd(a['supply_interest'])} | {usd(a['borrow_cost'])} | "
              f"{usd(a['rewards'])} | {usd(a['funding'])} | {usd(a['realised'] + a['revaluation'])} | "
              f"{usd(a['fees'])} | "
              f"{usd(a['gas'])} |")
    print()
    print("Notes:")
    for note, which in notes.items():
        print(f"- {'every mode' if len(which) == len(modes) > 1 else ', '.join(which)}: {note}")


def run(argv: Sequence[str] | None = None, modes: Sequence[type[Any]] = MODES) -> int:
    """The script: 0, or 2 after one `error:` line on stderr for a bad option, data folder or run."""
    try:
        asyncio.run(main(options(argv), modes))
    except (Refused, LedgerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
