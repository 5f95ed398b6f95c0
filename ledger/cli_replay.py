"""`ledger replay`: state as of a time or notification (from the snapshot cache), rerun a recorded
backtest and compare digests, and diff two logs. User errors are one `error:` line and exit 2."""

from __future__ import annotations

from decimal import localcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli_output import (
    Col,
    DbOption,
    JsonOption,
    Output,
    WideOption,
    emit,
    err,
    fail,
    guard,
    number,
    parse_time,
    rounded,
    run,
    settle,
    state_tables,
)

replay = typer.Typer(help="Replay a ledger: state at a point in time, rerun a backtest, diff two logs.",
                     no_args_is_help=True)
CacheOption = Annotated[
    Path | None, typer.Option("--cache", help="Snapshot cache file (default: <db>.states beside a SQLite "
                                              "ledger; none for PostgreSQL).")]


def open_ledger(db: str) -> Any:
    """Replays only read: the ledger is opened read-only (on read-only media too)."""
    from replays.audit import open_readonly

    return guard(lambda: open_readonly(db))


def _is_the_ledger(cache: Path | None, ledger: Any) -> bool:
    return cache is not None and ledger.url.kind == "sqlite" and (
        cache.resolve() == Path(ledger.url.path).resolve())


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
    wide: WideOption = False,
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
        data = settle(report(result.state))
    finally:
        ledger.close()
    point = result.point
    where = {"notification": point.notification, "ts": point.ts, "as_of": point.as_of,
             "snapshot": point.snapshot, "tail": point.tail,
             "cache": str(result.cache) if result.cache else None}
    if result.note:
        err.print(f"note: {result.note}", highlight=False, markup=False)
    if as_json:
        emit({**where, **data})
        return
    out = Output(wide)
    asked = f"as of {point.as_of.isoformat()}: " if point.as_of else ""
    stamp = point.ts.isoformat() if point.ts else "no time"
    source = (f"snapshot at {point.snapshot} + {point.tail} events" if point.snapshot
              else f"{point.tail} events folded from the start")
    out.line(f"{asked}notification {point.notification} (ledger time {stamp}; {source})")
    state_tables(out, data)


@replay.command("index")
def index(
    db: DbOption,
    every: Annotated[int | None, typer.Option(
        help="Snapshot every N notifications (default 2000, or what the cache was built with).")] = None,
    cache: CacheOption = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from the first event.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build or extend the snapshot cache `replay state` uses (it also does so on first use)."""
    from replays.state import build_cache

    if every is not None and every <= 0:
        raise fail(f"--every: must be positive, got {every}")
    ledger = open_ledger(db)
    out = Output(as_json=as_json)
    try:
        if _is_the_ledger(cache, ledger):
            raise fail("--cache: must not be the ledger database itself")
        with out.progress("indexing", ledger.max_notification_id()) as update:
            path, snapshots, end = guard(lambda: build_cache(
                ledger, cache, every, rebuild=rebuild, progress=lambda n, _t: update(n)))
    finally:
        ledger.close()
    if as_json:
        emit({"cache": path, "snapshots": snapshots, "notification": end})
    else:
        out.line(f"{path}: {snapshots} snapshots up to notification {end}")


# ---- rerun --------------------------------------------------------------------------------------

@replay.command("rerun")
def rerun(
    db: DbOption,
    into: Annotated[Path | None, typer.Option(
        "--into", help="Write the rerun to this new SQLite file and keep it (default: a temporary file).")]
    = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Re-run the recorded backtest into a fresh store and compare log digests.

    From the SessionStarted record (config, data source and digest, seed). Exit 0 on an identical
    digest, 1 with the first diverging event, field by field, 2 when the run cannot be repeated.
    """
    from replays.rerun import rerun as run

    ledger = open_ledger(db)
    out = Output(wide, as_json)
    try:
        with out.progress("rerun", None) as update:
            result = guard(lambda: run(ledger, into, lambda n, total: update(n, total)))
    finally:
        ledger.close()
    rec = result.recording
    if as_json:
        emit({
            "identical": result.identical, "recorded": result.recorded, "rerun": result.rerun,
            "events": list(result.events), "session": rec.session_key, "strategy": rec.strategy,
            "seed": rec.seed, "data_source": rec.data_source, "data_digest": rec.data_digest,
            "code_version": {"recorded": rec.code_version, "rerun": result.code_version},
            "into": str(result.into) if result.into else None, "config_notes": list(result.config_notes),
            "divergence": result.divergence.plain() if result.divergence else None,
        })
    else:
        out.line(f"recorded: {result.recorded}", whole=True)
        out.line(f"rerun:    {result.rerun}", whole=True)
        if rec.code_version != result.code_version:
            out.line(f"code version: recorded {rec.code_version}, rerun {result.code_version}")
        for note in result.config_notes:
            out.line(f"config differs: {note}")
        if result.identical:
            out.line(f"identical: {result.events[0]} events ({rec.strategy}, seed {rec.seed}, data "
                     f"{rec.data_source})")
        elif result.divergence is not None:
            out.line(f"DIFFERENT: {result.events[0]} recorded events, {result.events[1]} rerun")
            _print_divergence(out, result.divergence, ("recorded", "rerun"))
    if not result.identical:
        raise typer.Exit(1)


def _print_divergence(out: Output, divergence: Any, names: tuple[str, str]) -> None:
    """The first diverging event: a table when both values of each field fit side by side, else one
    value per line under each field."""
    out.table(divergence.title(names), [Col("field", "id"), Col(names[0], "id"), Col(names[1], "id")],
              divergence.rows())


# ---- diff ---------------------------------------------------------------------------------------

@replay.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="First ledger (path or URL).")],
    b: Annotated[str, typer.Argument(help="Second ledger (path or URL).")],
    force: Annotated[bool, typer.Option(
        "--force", help="Compare logs of different sessions (other session keys) anyway.")] = False,
    as_json: JsonOption = False,
    wide: WideOption = False,
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
        emit({"identical": result.identical,
              "divergence": result.divergence.plain() if result.divergence else None,
              "summary": summary})
        if not result.identical:
            raise typer.Exit(1)
        return
    out = Output(wide)
    if result.divergence is None:
        out.line(f"identical: {summary['events'][0]} events, no divergence")
        return
    _print_diff(out, result, summary)
    raise typer.Exit(1)


def _print_diff(out: Output, result: Any, summary: dict[str, Any]) -> None:
    from aggregates.values import MONEY

    _print_divergence(out, result.divergence, ("A", "B"))
    out.line(f"events: A {summary['events'][0]}, B {summary['events'][1]}")
    with localcontext(MONEY):  # B - A exact: the default context keeps 28 digits (a 1e23 balance has more)
        for title in ("topics", "venues", "fills", "filled_quantity", "fees", "balances", "positions", "pnl"):
            rows = summary[title]
            if not rows:
                continue
            out.table(title.replace("_", " "), ["", Col("A", "num"), Col("B", "num"), Col("B - A", "num")],
                      [(" ".join(map(str, key)) if isinstance(key, tuple) else str(key), x, y, y - x)
                       for key, (x, y) in rows.items()])
        x, y = summary["equity"]
        out.line(f"equity: A {number(x)}, B {number(y)}, B - A {number(y - x)} USD")


def main() -> None:
    """`python -m ledger.cli_replay …`: the sub-app on its own (normally `ledger replay …`)."""
    run(replay, "ledger replay")


if __name__ == "__main__":
    main()
