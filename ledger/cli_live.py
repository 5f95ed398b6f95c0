"""`ledger live` and `ledger reconcile`: a strategy on the venues (or simulated on their live prices),
and reconciliation of the ledger with the venues' accounts."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from aggregates.errors import LedgerError
from ledger.cli_output import Col, JsonOption, Output, WideOption, emit, err, fail, number

ConfigOption = Annotated[
    Path, typer.Option("--config", help="TOML config: venues, keys, ledger, live table.")
]
MainnetOption = Annotated[
    bool, typer.Option("--mainnet", help="Trade on the venues' production accounts (sandbox otherwise).")
]


def live(
    config: ConfigOption,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Simulated execution on the venues' live prices (no orders sent)."),
    ] = False,
    mainnet: MainnetOption = False,
    strategy: Annotated[
        str, typer.Option(help="Strategy name (`ledger strategies` lists them).")
    ] = "demo_basis",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter NAME=VALUE (repeatable).")
    ] = None,
    capital: Annotated[str, typer.Option(help="Capital in USD the strategy sizes its orders by.")] = "1000",
    interval: Annotated[float, typer.Option(help="Seconds between decisions.")] = 5.0,
    steps: Annotated[
        int | None, typer.Option(help="Stop after this many decisions (default: Ctrl-C).")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per step instead of the status line, then one for the run.")] = False,
    wide: WideOption = False,
) -> None:
    """Run a strategy live against the configured venues; reconciles first; Ctrl-C stops cleanly."""
    from ledger.cli_backtest import _params
    from ledger.config import load_config
    from ledger.live import live_config, run_live
    from ledger.strategies import create

    if interval < 0:
        raise fail(f"--interval: must not be negative, got {interval}")
    if steps is not None and steps <= 0:
        raise fail(f"--steps: must be positive, got {steps}")
    try:
        amount = Decimal(capital)
        if not amount.is_finite() or amount <= 0:
            raise ValueError
    except (ArithmeticError, ValueError):
        raise fail(f"--capital: expected a positive amount, got {capital!r}") from None
    try:
        overrides = load_config(config)
        params = {**(overrides.pop("strategy_params", None) or {}), **_params(param or [])}
        chosen = create(strategy, capital=amount, **params)
        cfg = live_config(overrides, dry_run=dry_run, mainnet=mainnet, strategy=chosen)
    except LedgerError as e:
        raise fail(str(e)) from None
    if mainnet and not dry_run:
        err.print("MAINNET: orders go to the venues' production accounts", highlight=False)
    console = Console(highlight=False)
    terminal = console.is_terminal and not as_json

    def show(line: str) -> None:
        if terminal:
            console.print(f"\r{line}", end="", highlight=False, markup=False, soft_wrap=True)
        else:
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    try:
        run, engine = asyncio.run(run_live(
            cfg, chosen, interval_s=interval, max_steps=steps, status=None if as_json else show,
            status_data=emit if as_json else None))
    except LedgerError as e:
        raise fail(str(e)) from None
    if as_json:
        emit({"mode": engine.execution_mode, "ended": run.stopped_by or "stopped", "steps": run.steps,
              "instructions": run.instructions, "statuses": dict(sorted(run.statuses.items())),
              "reconciliation": run.reconciliation})
        _print_unresolved(run.reconciliation)
        return
    if terminal:
        console.print()
    statuses = ", ".join(f"{k.lower()} {v}" for k, v in sorted(run.statuses.items())) or "none"
    Output(wide).line(
        f"{engine.execution_mode} run ended ({run.stopped_by or 'stopped'}): {run.steps} steps, "
        f"{run.instructions} instructions ({statuses})")
    _print_unresolved(run.reconciliation)


def reconcile(
    config: ConfigOption,
    mainnet: MainnetOption = False,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Resolve in-flight instructions, record missing fills, observe balances; exit 1 while any venue
    stays unresolved or unreachable."""
    from ledger.config import load_config
    from ledger.live import run_reconcile

    try:
        report = asyncio.run(run_reconcile(load_config(config), mainnet=mainnet))
    except LedgerError as e:
        raise fail(str(e)) from None
    if as_json:
        emit(report)
    else:
        _print_report(Output(wide), report)
    if any(r["unresolved"] or r["error"] for r in report.values()):
        raise typer.Exit(1)


def _print_report(out: Output, report: dict[str, Any]) -> None:
    rows = []
    for venue, r in report.items():
        balances = [f"{b['wallet']}/{b['asset']} {_signed(b['difference'])}" for b in r["balances"]
                    if b["difference"]]
        positions = [f"{p['symbol']} {_signed(p['difference'])}" for p in r["positions"] if p["difference"]]
        rows.append((venue, len(r["resolved"]), len(r["unresolved"]), r["fills_recorded"],
                     f"{r['open_orders']} ({r['foreign_open_orders']})", "\n".join(balances) or "none",
                     "\n".join(positions) or "none", r["error"] or ""))
    out.table("Reconciliation", [
        Col("venue", "id"), Col("resolved", "num"), Col("unresolved", "num"), Col("fills recorded", "num"),
        Col("open orders (not ours)", "num"), Col("balance differences", "id", detail=True),
        Col("position differences", "id", detail=True), Col("problem", detail=True)], rows)
    _print_unresolved(report)


def _signed(value: Any) -> str:
    text = number(value)
    return text if text.startswith("-") else f"+{text}"


def _print_unresolved(report: dict[str, Any]) -> None:
    for venue, r in sorted(report.items()):
        if r.get("unresolved"):
            err.print(
                f"{venue}: {len(r['unresolved'])} unresolved instruction(s), trading there is paused: "
                f"{', '.join(r['unresolved'])}",
                highlight=False,
                markup=False,
            )
        if r.get("error"):
            err.print(f"{venue}: {r['error']}", highlight=False, markup=False)


