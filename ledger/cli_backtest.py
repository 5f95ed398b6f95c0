"""`ledger backtest` and `ledger strategies`: the main job, with a progress bar, tables, a report
folder and the log digest as the last line."""

from __future__ import annotations

import asyncio
import os
import reprlib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from aggregates.errors import LedgerError
from ledger.cli_output import Col, JsonOption, Output, WideOption, emit, err, fail, guard, parse_time, settle
from ledger.strategies.params import StrategyConfigError


def _params(items: list[str]) -> dict[str, str]:
    """`--param NAME=VALUE` pairs as text; the strategy's parameter declarations type and check them
    (`ledger.strategies.create`)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise fail(f"--param: expected NAME=VALUE, got {item!r}")
        if name == "capital":
            raise fail("--param capital: set the capital with --capital")
        if name in out:
            raise fail(f"--param {name}: given twice ({out[name]!r} and {text!r})")
        out[name] = text
    return out


def _param_error(error: StrategyConfigError, given: Mapping[str, Any], config: Path | None) -> str:
    """The error with where the parameter came from: `--param NAME: …` or `CONFIG: [strategy_params] …`."""
    if error.param is not None and error.param in given:
        return f"--param {error}"
    if error.param is not None and config is not None:
        return f"{config}: [strategy_params] {error}"
    return str(error)


PARAM_HELP = ("Strategy parameter NAME=VALUE (repeatable; hedge_split takes JSON such as "
              "'{\"binance\": 0.55, \"bybit\": 0.45}'); each strategy's are listed above.")


def _help(first: str) -> str:
    """`ledger backtest --help`: `first` (what it does), then every strategy's parameters, one line each
    (name, type, default, range; `ledger strategies NAME` adds what each means)."""
    from rich.markup import escape

    from ledger.strategies import STRATEGIES
    from ledger.strategies.params import help_lines

    lines = "\n".join(escape(line) for line in help_lines(STRATEGIES))
    head = ("Strategy parameters (--param NAME=VALUE, or a config's [strategy_params]); `ledger strategies "
            "NAME` says what each one means:")
    return f"{first}\n\n{escape(head)}\n{lines}"


def _kind(data: Path | None) -> str:
    from ledger.marketdata import seed_root

    if data is None:
        return "synthetic"
    if seed_root(data) is not None:
        return "seed"
    return "log" if data.is_file() or "://" in str(data) else "folder"


def _db_url(db: str) -> str:
    from ledger.stores import sqlite_url

    return db if "://" in db or db.startswith("memory") else sqlite_url(db)


def _remove_db(url: str) -> Any:
    """`--force`: an existing SQLite ledger (and its -wal, -shm) replaced, once the run's config was
    checked, saying so; a file that is not a ledger is refused. The writer lock it returns (None: not
    SQLite) is held until the run's ledger is open."""
    from ledger.stores import claim_fresh, parse_url

    parsed = parse_url(url)
    if parsed.kind != "sqlite":
        return None
    lock, replaced = claim_fresh(parsed.path, force=True)
    if replaced:
        err.print(replaced, highlight=False, markup=False)
    return lock


def _fresh_sqlite(url: str, force: bool) -> str | None:
    """The SQLite file this run will create (None: not SQLite, or a ledger that is there is kept)."""
    from ledger.stores import parse_url

    parsed = parse_url(url)
    if parsed.kind != "sqlite" or (os.path.lexists(parsed.path) and not force):
        return None
    return parsed.path


def _discard_partial(path: str) -> bool:
    """A run that failed leaves no partial ledger behind: it wrote a fresh one, which is removed with
    its -wal and -shm. Whether there was one."""
    removed = False
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            os.remove(name)
            removed = True
        except FileNotFoundError:
            pass
    return removed


def _check_report(folder: Path) -> None:
    """That the report can be written once the run is over, creating nothing now (an error leaves no
    folder behind): `folder` is a writable folder, or the nearest folder above it that exists is."""
    from ledger.report import ReportError

    target = folder.absolute()
    while not os.path.lexists(target) and target != target.parent:
        target = target.parent
    if not target.is_dir():
        what = "a file is in the way" if target.exists() else "a broken link is in the way"
        where = "" if target == folder.absolute() else f" ({target})"
        raise ReportError(f"cannot write report to {folder}: {what}{where}, not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ReportError(f"cannot write report to {folder}: {target} is not writable")


def backtest(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config merged over the strategy's.")
    ] = None,
    db: Annotated[
        str, typer.Option("--db", help="The ledger (fresh unless --append): a path, sqlite:///path.db or postgresql://…")
    ] = "backtest.db",
    days: Annotated[int | None, typer.Option(help="Length of the run in days (default 90).")] = None,
    start: Annotated[
        str | None, typer.Option(help="First day, ISO (default 2024-01-01 for synthetic data).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last time included, ISO (a date means its 00:00).")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the synthetic market (and recorded in the session).")
    ] = 7,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Instead of synthetic data: the seed data folder (`data`), a folder of Binance archive "
            "files, or a recorded ledger (formats: README).",
        ),
    ] = None,
    fill: Annotated[
        str, typer.Option(help="Gaps in seed data: 'error' (default) or 'previous' (carried, noted).")
    ] = "error",
    param: Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)] = None,
    strategy: Annotated[
        str, typer.Option(help="Strategy name (`ledger strategies` lists them).")
    ] = "demo_basis",
    capital: Annotated[str, typer.Option(help="Starting capital in USD.")] = "100000",
    report: Annotated[Path, typer.Option(help="Folder for equity/exposure PNGs and the report page.")] = Path(
        "backtest-report"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing SQLite ledger at --db (never another file).")
    ] = False,
    append: Annotated[
        bool,
        typer.Option("--append", help="Continue into the ledger at --db: the run starts from its balances, "
                     "as a new session; the data window must start after its last event."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    wide: WideOption = False,
) -> None:
    """Run a strategy over market data through the execution interfaces into a fresh ledger."""
    first = parse_time(start, "--start") if start is not None else None
    last = parse_time(end, "--end") if end is not None else None
    if days is not None and days <= 0:
        raise fail(f"--days: must be positive, got {days}")
    if days is not None and last is not None:
        raise fail("--days and --end: give one of them")
    try:
        amount = Decimal(capital)
        if not amount.is_finite() or amount <= 0:
            raise ValueError
    except (ArithmeticError, ValueError):
        raise fail(f"--capital: expected a positive amount, got {capital!r}") from None
    if fill not in ("error", "previous"):
        raise fail(f"--fill: expected error or previous, got {fill!r}")
    if append and force:
        raise fail("--append and --force: give one of them "
                   "(--force replaces the ledger, --append continues it)")
    from ledger.backtest import build_config, load_for, max_days, merge, run_backtest, seed_overrides
    from ledger.config import load_config
    from ledger.engine import initial_balances
    from ledger.report import render_console, write_report
    from ledger.strategies import create, recorded

    out = Output(wide, as_json)

    def run() -> tuple[Any, Any]:
        overrides = load_config(config) if config is not None else {}
        table = overrides.pop("strategy_params", None)
        if table is not None and not isinstance(table, Mapping):
            raise fail(f"{config}: [strategy_params]: expected a table of NAME = VALUE, got "
                       f"{reprlib.repr(table)}")
        from_config = dict(table or {})
        if "capital" in from_config:
            raise fail(f"{config}: [strategy_params] capital: set the capital with --capital")
        given = _params(param or [])
        try:
            chosen = create(strategy, capital=amount, **{**from_config, **given})
            _check_report(report)
            market = load_for(chosen, data_dir=data, seed=seed, start=first, end=last, days=days, fill=fill)
        except StrategyConfigError as e:
            raise fail(_param_error(e, given, config)) from None
        overrides = merge(seed_overrides(data), overrides)
        if append:
            overrides = merge(overrides, {"ledger": {"append": True}})
        spec = {
            "kind": _kind(data),
            "data_dir": str(data.resolve()) if data else None,
            "start": start,
            "end": end,
            "days": days,
            "seed": seed,
            "fill": fill,
        }
        if max_days() is not None:  # record the window the cap left, so a rerun repeats it without the cap
            spec.update(start=market.start.isoformat(), end=market.end.isoformat(), days=None)
        cfg = build_config(
            chosen,
            market,
            db=_db_url(db),
            seed=seed,
            overrides=overrides,
            params=recorded(chosen),  # every effective value, so `ledger replay rerun` repeats the run
            data_spec=spec,
        )
        initial_balances(cfg)  # checked before anything is deleted (--force) or written
        fresh = _fresh_sqlite(_db_url(db), force)
        lock = _remove_db(_db_url(db)) if force else None
        try:
            with out.progress("backtest (hours)", len(market.times)) as update:
                result = asyncio.run(run_backtest(cfg, chosen, market, lambda n, _t: update(n)))
        except LedgerError as e:
            if fresh and _discard_partial(fresh):
                raise LedgerError(f"{e} (the partial ledger {fresh} was removed)") from e
            raise
        except BaseException:
            if fresh:
                _discard_partial(fresh)
            raise
        finally:
            if lock is not None:
                lock.release()
        return chosen, result

    chosen, result = guard(run)
    # Recorded amounts (balances, quantities, fees) exact; derived numbers (equity, P&L, exposure, risk,
    # APY, attribution, average entries) to 12 decimals: the same digits in the tables and in --json.
    summary = settle(result.summary)
    paths = guard(lambda: write_report(
        report, summary, result.equity, result.exposure, title=f"Backtest: {chosen.name}"))
    if as_json:
        emit({**summary, "report": paths})
        return
    out.line(f"report: {paths['html']}  (also {paths['markdown'].name}, equity.png, exposure.png)")
    render_console(summary, out.console, equity=result.equity, wide=wide)  # ends with `digest: <hex>`


backtest.__doc__ = _help(backtest.__doc__ or "")


StrategyArgument = Annotated[
    str | None, typer.Argument(help="A strategy: show its parameters (type, default, range, meaning).")]


def strategies(name: StrategyArgument = None, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """List the strategies `ledger backtest --strategy` accepts, or one strategy's parameters."""
    from ledger.strategies import STRATEGIES, factory_of, params_of

    out = Output(wide)
    if name is None:
        rows = {key: factory.description for key, factory in sorted(STRATEGIES.items())}
        if as_json:
            emit(rows)
            return
        out.table(None, [Col("strategy", "id"), "description"], rows.items())
        out.line("`ledger strategies NAME` shows a strategy's parameters")
        return
    factory = guard(lambda: factory_of(name))
    table = [{"name": p.name, "type": p.type_name(), "default": p.text(p.default), "range": p.range_text(),
              "meaning": p.meaning} for p in params_of(factory)]
    if as_json:
        emit({"name": name, "description": factory.description, "parameters": table})
        return
    out.line(f"{name}: {factory.description}")
    out.line("Set with --param NAME=VALUE (capital with --capital) or a config's [strategy_params].")
    # A default and a range are never broken across lines; when they do not fit side by side, each
    # meaning goes under its row (or, narrower still, one `field: value` per line).
    out.table(None, [Col("name", "id"), "type", Col("default", "id"), Col("range", "id"),
                     Col("meaning", detail=True)], [tuple(row.values()) for row in table])
