"""The `ledger` command line: one clear line and a non-zero exit for user errors, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from aggregates.errors import LedgerError
from ledger.cli_audit import audit
from ledger.cli_backtest import backtest, strategies
from ledger.cli_live import live, reconcile
from ledger.cli_replay import replay
from ledger.cli_shadow import shadow

app = typer.Typer(help="Execution ledger: backtests, live execution and audit over one event log.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(audit, name="audit")
replay.command("shadow")(shadow)
app.add_typer(replay, name="replay")
console = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
DbOption = Annotated[str, typer.Option("--db", help="sqlite:///path.db, a path, or postgresql://…")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except LedgerError as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        raise typer.Exit(2) from None


def _open(db: str, create: bool = False) -> Any:
    from ledger.app import Ledger

    return _guard(lambda: Ledger.open(db, create=create, synchronous="NORMAL"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else ":".join(map(str, k))): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _summary(ledger: Any) -> dict[str, Any]:
    from ledger.digest import log_digest
    from projections import InMemoryProjection, balances, equity, exposure, pnl, risk
    from projections.reports import in_transit, positions

    view = InMemoryProjection()
    view.catch_up(ledger)
    s = view.state
    return {
        "events": s.events, "fills": s.fills_count, "balances": balances(s),
        "in_transit": in_transit(s), "positions": positions(s), "exposure": exposure(s),
        "risk": risk(s), "pnl": pnl(s), "equity": equity(s), "digest": log_digest(ledger),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    for title, rows in (("Balances", summary["balances"]), ("Exposure", summary["exposure"]),
                        ("P&L (USD)", summary["pnl"])):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("amount", justify="right")
        for key, value in rows.items():
            table.add_row(str(key), f"{value:,.6f}")
        console.print(table)
    table = Table(title="Positions")
    for col in ("venue", "instrument", "quantity", "avg entry", "realised"):
        table.add_column(col)
    for p in summary["positions"]:
        table.add_row(p["venue"], p["instrument"], f"{p['quantity']}", f"{p['avg_entry']:.4f}",
                      f"{p['realised']:.4f}")
    console.print(table)
    console.print(f"events: {summary['events']}  fills: {summary['fills']}  "
                  f"equity: {summary['equity']:,.2f} USD")
    console.print(f"digest: {summary['digest']}", highlight=False)


@app.command()
def demo(db: DbOption = "demo-ledger.db", as_json: JsonOption = False) -> None:
    """Write a scripted basis-trade session into a fresh ledger and print its views and digest."""
    from ledger.demo import run_demo
    from replays.verify import verify_chain

    path = Path(db.removeprefix("sqlite:///"))
    if "://" not in db or db.startswith("sqlite:"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    ledger = _open(db, create=True)
    _guard(lambda: run_demo(ledger))
    summary = _summary(ledger)
    verified = verify_chain(ledger)
    if as_json:
        print(json.dumps(_plain({**summary, "verified": verified.ok})))
        return
    _print_summary(summary)
    console.print(f"chain: {'intact' if verified.ok else verified.first} "
                  f"({verified.events} events, {verified.checkpoints} checkpoints)")


@app.command()
def digest(db: DbOption) -> None:
    """Print the canonical digest of the whole log (equal for identical runs)."""
    from ledger.digest import log_digest

    print(log_digest(_open(db)))


@app.command()
def summary(db: DbOption, as_json: JsonOption = False) -> None:
    """Balances, positions, exposure, risk and P&L folded from every event."""
    data = _summary(_open(db))
    if as_json:
        print(json.dumps(_plain(data)))
    else:
        _print_summary(data)


@app.command()
def rebuild(db: DbOption) -> None:
    """Drop every SQL view and rebuild it from the events, with a progress bar."""
    from projections import SQLProjection

    ledger = _open(db)
    total = ledger.max_notification_id()
    view = SQLProjection.for_ledger(ledger)
    with Progress(TextColumn("rebuilding views"), BarColumn(), MofNCompleteColumn(),
                  console=err) as bar:
        task = bar.add_task("rebuild", total=total)
        count = view.rebuild(ledger, progress=lambda n: bar.update(task, completed=n))
    console.print(f"rebuilt views from {count} events")


app.command()(backtest)
app.command()(strategies)
app.command()(live)
app.command()(reconcile)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
