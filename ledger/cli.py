"""The `ledger` command line: one clear line and a non-zero exit for user errors, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli_audit import audit
from ledger.cli_backtest import backtest, strategies
from ledger.cli_live import live, reconcile
from ledger.cli_output import (
    DbOption,
    JsonOption,
    Output,
    WideOption,
    emit,
    err,
    guard,
    run,
    settle,
    state_tables,
)
from ledger.cli_replay import replay
from ledger.cli_shadow import shadow

app = typer.Typer(help="Execution ledger: backtests, live execution and audit over one event log.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(audit, name="audit")
replay.command("shadow")(shadow)
app.add_typer(replay, name="replay")


def _open(db: str, create: bool = False) -> Any:
    """A ledger to write (`create`, or `rebuild`'s views), else opened read-only (`open_readonly`)."""
    from ledger.app import Ledger
    from replays.audit import open_readonly

    if create:
        return guard(lambda: Ledger.open(db, create=True, synchronous="NORMAL"))
    return guard(lambda: open_readonly(db))


def _summary(ledger: Any) -> dict[str, Any]:
    from ledger.digest import log_digest
    from projections import InMemoryProjection, balances, equity, exposure, pnl, risk
    from projections.reports import in_transit, positions

    view = InMemoryProjection()
    view.catch_up(ledger)
    s = view.state
    return settle({
        "events": s.events, "fills": s.fills_count, "balances": balances(s),
        "in_transit": in_transit(s), "positions": positions(s), "exposure": exposure(s),
        "risk": risk(s), "pnl": pnl(s), "equity": equity(s), "digest": log_digest(ledger),
    })


def _print_summary(out: Output, summary: dict[str, Any]) -> None:
    state_tables(out, summary)
    out.line(f"digest: {summary['digest']}", whole=True)


@app.command()
def demo(
    db: DbOption = "demo-ledger.db",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing ledger at --db.")] = False,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Write a scripted basis-trade session into a fresh ledger and print its views and digest."""
    from ledger.demo import run_demo
    from ledger.stores import claim_fresh, parse_url
    from replays.verify import verify_chain

    parsed = guard(lambda: parse_url(db))
    lock, fresh = None, None
    if parsed.kind == "sqlite":
        lock, replaced = guard(lambda: claim_fresh(parsed.path, force=force))
        if replaced:
            err.print(replaced, highlight=False, markup=False)
        fresh = parsed.path if not os.path.exists(parsed.path) else None
    try:
        ledger = _open(db, create=True)
    finally:
        if lock is not None:
            lock.release()  # the open ledger holds it now
    try:
        guard(lambda: run_demo(ledger))
        summary = guard(lambda: _summary(ledger))
        verified = guard(lambda: verify_chain(ledger))
    except BaseException:
        ledger.close()
        if fresh is not None:  # a demo that failed (a full disk) leaves no half-written ledger
            for suffix in ("", "-wal", "-shm"):
                Path(f"{fresh}{suffix}").unlink(missing_ok=True)
        raise
    ledger.close()
    if as_json:
        emit({**summary, "verified": verified.ok})
        return
    out = Output(wide)
    _print_summary(out, summary)
    out.line(f"chain: {'intact' if verified.ok else verified.first} "
             f"({verified.events} events, {verified.checkpoints} checkpoints)")


@app.command()
def digest(db: DbOption, as_json: JsonOption = False) -> None:
    """Print the canonical digest of the whole log (equal for identical runs)."""
    from ledger.digest import log_digest

    ledger = _open(db)
    value = guard(lambda: log_digest(ledger))
    if as_json:
        emit({"digest": value})
    else:
        print(value)


@app.command()
def summary(db: DbOption, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """Balances, positions, exposure, risk and P&L folded from every event."""
    ledger = _open(db)
    data = guard(lambda: _summary(ledger))
    if as_json:
        emit(data)
    else:
        _print_summary(Output(wide), data)


@app.command()
def rebuild(db: DbOption, as_json: JsonOption = False) -> None:
    """Drop every SQL view and rebuild it from the events, with a progress bar."""
    from ledger.app import Ledger
    from projections import SQLProjection

    ledger = guard(lambda: Ledger.open(db, synchronous="NORMAL"))
    guard(ledger.hold_writer)
    total = guard(ledger.max_notification_id)
    view = guard(lambda: SQLProjection.for_ledger(ledger))
    out = Output(as_json=as_json)
    try:
        with out.progress("rebuilding views", total) as update:
            count = guard(lambda: view.rebuild(ledger, progress=update))
    finally:
        view.close()
        ledger.close()
    if as_json:
        emit({"rebuilt": count})
    else:
        out.line(f"rebuilt views from {count} events")


app.command()(backtest)
app.command()(strategies)
app.command()(live)
app.command()(reconcile)


def main() -> None:
    """The `ledger` entry point: usage errors too are one `error:` line and exit 2 (`cli_output.run`)."""
    run(app)


if __name__ == "__main__":
    main()
