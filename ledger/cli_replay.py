"""`ledger replay`: state as of a time or notification (from the snapshot cache), rerun a recorded
backtest and compare digests, and diff two logs. User errors are one `error:` line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from aggregates.errors import InstructionError, LedgerError

replay = typer.Typer(help="Replay a ledger: state at a point in time, rerun a backtest, diff two logs.",
                     no_args_is_help=True)
console = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
DbOption = Annotated[str, typer.Option("--db", help="sqlite:///path.db, a path, or postgresql://…")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
CacheOption = Annotated[
    Path | None, typer.Option("--cache", help="Snapshot cache file (default: <db>.states beside a SQLite "
                                              "ledger; none for PostgreSQL).")]


def fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(2)


def guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except LedgerError as e:
        raise fail(str(e)) from None


def open_ledger(db: str) -> Any:
    from ledger.app import Ledger

    return guard(lambda: Ledger.open(db, synchronous="NORMAL"))


def rounded(value: Any) -> Any:
    """Derived numbers (equity, P&L, exposure, risk) carry 60 digits inside; keep 12 decimals at most.
    Balances and positions are recorded amounts and stay exact."""
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent < -12:  # type: ignore[operator]
            return value.quantize(Decimal("1e-12"))
        return value
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


DERIVED = ("exposure", "risk", "pnl", "equity")


def plain(value: Any) -> Any:
    """JSON-ready: Decimals as exact text, times as ISO, tuple keys joined by spaces."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else " ".join(map(str, k))): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse_time(value: str, name: str) -> datetime:
    """An ISO time; a bare date means its 00:00 UTC and a time without zone is UTC."""
    from aggregates.values import to_utc

    try:
        return to_utc(value if "T" in value or " " in value else f"{value}T00:00:00+00:00", name)
    except InstructionError as e:
        raise fail(f"{name}: {str(e).split(': ', 1)[1]}") from None


def _is_the_ledger(cache: Path | None, ledger: Any) -> bool:
    return cache is not None and ledger.url.kind == "sqlite" and (
        cache.resolve() == Path(ledger.url.path).resolve())


def _bar(label: str, disable: bool = False) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=disable)


# ---- state --------------------------------------------------------------------------------------

@replay.command("state")
def state(
    db: DbOption,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Ledger time (events' ts_event), ISO; a date means 00:00 UTC.")] = None,
    at: Annotated[int | None, typer.Option("--at", help="Notification number (1 = first event).")] = None,
    cache: CacheOption = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Fold from the first event; read and write no snapshot cache.")] = False,
    rebuild_cache: Annotated[bool, typer.Option(
        "--rebuild-cache", help="Rebuild the snapshot cache from the first event.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Balances, positions, exposure, risk and P&L as of a ledger time or notification.

    Default: the end of the log. Built from the nearest snapshot plus the tail; the ledger is only read.
    """
    from replays.state import report, state_as_of

    if as_of is not None and at is not None:
        raise fail("give --as-of or --at, not both")
    when = parse_time(as_of, "--as-of") if as_of is not None else None
    ledger = open_ledger(db)
    try:
        target: Path | bool = False if no_cache else (cache if cache is not None else True)
        if not no_cache and _is_the_ledger(cache, ledger):
            raise fail("--cache: must not be the ledger database itself")
        result = guard(lambda: state_as_of(ledger, at=at, as_of=when, cache=target, rebuild=rebuild_cache))
        data = report(result.state)
        data.update({k: rounded(data[k]) for k in DERIVED})
        data["positions"] = [{**p, "avg_entry": rounded(p["avg_entry"])} for p in data["positions"]]
    finally:
        ledger.close()
    point = result.point
    where = {"notification": point.notification, "ts": point.ts, "as_of": point.as_of,
             "snapshot": point.snapshot, "tail": point.tail,
             "cache": str(result.cache) if result.cache else None}
    if result.note:
        err.print(f"note: {result.note}", highlight=False, markup=False)
    if as_json:
        print(json.dumps(plain({**where, **data})))
        return
    asked = f"as of {point.as_of.isoformat()}: " if point.as_of else ""
    stamp = point.ts.isoformat() if point.ts else "no time"
    source = (f"snapshot at {point.snapshot} + {point.tail} events" if point.snapshot
              else f"{point.tail} events folded from the start")
    console.print(f"{asked}notification {point.notification} (ledger time {stamp}; {source})",
                  highlight=False)
    _print_state(data)


def _print_state(data: dict[str, Any]) -> None:
    table = Table(title="Balances")
    for col in ("venue", "asset", "amount"):
        table.add_column(col, justify="right" if col == "amount" else "left")
    for venue, assets in data["balances"].items():
        for asset, amount in assets.items():
            table.add_row(venue, asset, str(plain(amount)))
    console.print(table)
    table = Table(title="Positions")
    for col in ("venue", "instrument", "quantity", "avg entry", "realised"):
        table.add_column(col)
    for p in data["positions"]:
        table.add_row(p["venue"], p["instrument"], str(p["quantity"]), str(p["avg_entry"]),
                      str(plain(p["realised"])))
    console.print(table)
    for title, rows in (("Exposure", data["exposure"]), ("P&L (USD)", data["pnl"])):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("amount", justify="right")
        for key, value in rows.items():
            table.add_row(str(key), f"{value:,.6f}")
        console.print(table)
    risk = data["risk"]
    for name in ("health_factor", "margin_use"):
        for venue, value in risk[name].items():
            console.print(f"{name.replace('_', ' ')} {venue}: {value:.4f}", highlight=False)
    for breach in risk["breaches"]:
        console.print(f"breach: {breach}", highlight=False)
    console.print(f"events: {data['events']}  fills: {data['fills']}  equity: {data['equity']:,.2f} USD",
                  highlight=False)


@replay.command("index")
def index(
    db: DbOption,
    every: Annotated[int | None, typer.Option(
        help="Snapshot every N notifications (default 2000, or what the cache was built with).")] = None,
    cache: CacheOption = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from the first event.")] = False,
) -> None:
    """Build or extend the snapshot cache `replay state` uses (it also does so on first use)."""
    from replays.state import build_cache

    if every is not None and every <= 0:
        raise fail(f"--every: must be positive, got {every}")
    ledger = open_ledger(db)
    try:
        if _is_the_ledger(cache, ledger):
            raise fail("--cache: must not be the ledger database itself")
        total = ledger.max_notification_id()
        with _bar("indexing") as bar:
            task = bar.add_task("index", total=total)
            path, snapshots, end = guard(lambda: build_cache(
                ledger, cache, every, rebuild=rebuild,
                progress=lambda n, _t: bar.update(task, completed=n)))
    finally:
        ledger.close()
    console.print(f"{path}: {snapshots} snapshots up to notification {end}", highlight=False)


# ---- rerun --------------------------------------------------------------------------------------

@replay.command("rerun")
def rerun(
    db: DbOption,
    into: Annotated[Path | None, typer.Option(
        "--into", help="Write the rerun to this new SQLite file and keep it (default: a temporary file).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run the recorded backtest into a fresh store and compare log digests.

    From the SessionStarted record (config, data source and digest, seed). Exit 0 on an identical
    digest, 1 with the first diverging event side by side, 2 when the run cannot be repeated.
    """
    from replays.rerun import rerun as run

    ledger = open_ledger(db)
    try:
        with _bar("rerun", disable=as_json) as bar:
            task = bar.add_task("rerun", total=None)

            def progress(n: int, total: int) -> None:
                bar.update(task, completed=n, total=total)

            result = guard(lambda: run(ledger, into, progress))
    finally:
        ledger.close()
    rec = result.recording
    if as_json:
        print(json.dumps(plain({
            "identical": result.identical, "recorded": result.recorded, "rerun": result.rerun,
            "events": list(result.events), "session": rec.session_key, "strategy": rec.strategy,
            "seed": rec.seed, "data_source": rec.data_source, "data_digest": rec.data_digest,
            "code_version": {"recorded": rec.code_version, "rerun": result.code_version},
            "into": str(result.into) if result.into else None, "config_notes": list(result.config_notes),
            "divergence": result.divergence.plain() if result.divergence else None,
        })))
    else:
        console.print(f"recorded: {result.recorded}", highlight=False)
        console.print(f"rerun:    {result.rerun}", highlight=False)
        if rec.code_version != result.code_version:
            console.print(f"code version: recorded {rec.code_version}, rerun {result.code_version}",
                          highlight=False)
        for note in result.config_notes:
            console.print(f"config differs: {note}", highlight=False, markup=False)
        if result.identical:
            console.print(f"identical: {result.events[0]} events ({rec.strategy}, seed {rec.seed}, data "
                          f"{rec.data_source})", highlight=False, markup=False)
        elif result.divergence is not None:
            console.print(f"DIFFERENT: {result.events[0]} recorded events, {result.events[1]} rerun",
                          highlight=False)
            for line in result.divergence.lines(("recorded", "rerun")):
                print(line)  # side by side: never wrapped to the terminal width
    if not result.identical:
        raise typer.Exit(1)


# ---- diff ---------------------------------------------------------------------------------------

@replay.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="First ledger (path or URL).")],
    b: Annotated[str, typer.Argument(help="Second ledger (path or URL).")],
    force: Annotated[bool, typer.Option(
        "--force", help="Compare logs of different sessions (other session keys) anyway.")] = False,
    as_json: JsonOption = False,
) -> None:
    """First divergence between two logs and a summary of how they differ.

    Events compare in the canonical form `ledger digest` hashes. The summary: events per topic and
    venue, fills, final balances, positions and P&L. Exit 0 when identical, 1 when they differ.
    """
    from replays.diff import compare

    left = open_ledger(a)
    try:
        right = open_ledger(b)
        try:
            result = guard(lambda: compare(left, right, force=force))
        finally:
            right.close()
    finally:
        left.close()
    summary = result.summary()
    summary.update({k: rounded(summary[k]) for k in ("pnl", "equity")})
    if as_json:
        print(json.dumps(plain({
            "identical": result.identical,
            "divergence": result.divergence.plain() if result.divergence else None,
            "summary": summary})))
        if not result.identical:
            raise typer.Exit(1)
        return
    if result.divergence is None:
        console.print(f"identical: {summary['events'][0]} events, no divergence", highlight=False)
        return
    _print_diff(result, summary)
    raise typer.Exit(1)


def _print_diff(result: Any, summary: dict[str, Any]) -> None:
    for line in result.divergence.lines():
        print(line)  # side by side: never wrapped to the terminal width
    console.print(f"events: A {summary['events'][0]}, B {summary['events'][1]}", highlight=False)
    for title in ("topics", "venues", "fills", "filled_quantity", "fees", "balances", "positions", "pnl"):
        rows = summary[title]
        if not rows:
            continue
        table = Table(title=title.replace("_", " "))
        for col in ("", "A", "B", "B - A"):
            table.add_column(col, justify="left" if not col else "right")
        for key, (x, y) in rows.items():
            table.add_row(str(key), str(plain(x)), str(plain(y)), str(plain(y - x)))
        console.print(table)
    x, y = summary["equity"]
    console.print(f"equity: A {x:,.2f}, B {y:,.2f}, B - A {y - x:,.2f} USD", highlight=False)


def main() -> None:
    """`python -m ledger.cli_replay …`: the sub-app on its own (normally `ledger replay …`)."""
    replay()


if __name__ == "__main__":
    main()
