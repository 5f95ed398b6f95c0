"""`ledger backtest` and `ledger strategies`: the main job, with a progress bar, tables, a report
folder and the log digest as the last line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aggregates.errors import InstructionError, LedgerError
from ledger.strategies.params import StrategyConfigError

console = Console()
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(2)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from aggregates.values import to_utc

    try:
        return to_utc(value if "T" in value or " " in value else f"{value}T00:00:00+00:00", name)
    except InstructionError as e:
        raise _fail(f"{name}: {str(e).split(': ', 1)[1]}") from None


def _round(value: Any) -> Any:
    """Derived numbers (equity, P&L, risk) carry 60 digits inside; show 12 decimals at most."""
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent < -12:  # type: ignore[operator]
            value = value.quantize(Decimal("1e-12"))
        return value
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _params(items: list[str]) -> dict[str, str]:
    """`--param NAME=VALUE` pairs as text; the strategy's parameter declarations type and check them
    (`ledger.strategies.create`)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise _fail(f"--param: expected NAME=VALUE, got {item!r}")
        if name == "capital":
            raise _fail("--param capital: set the capital with --capital")
        if name in out:
            raise _fail(f"--param {name}: given twice ({out[name]!r} and {text!r})")
        out[name] = text
    return out


def _param_error(error: StrategyConfigError, given: Mapping[str, Any], config: Path | None) -> str:
    """The error with where the parameter came from: `--param NAME: …` or `CONFIG: [strategy_params] …`."""
    if error.param is not None and error.param in given:
        return f"--param {error}"
    if error.param is not None and config is not None:
        return f"{config}: [strategy_params] {error}"
    return str(error)


def _param_help() -> str:
    """`--param`'s help: each strategy's parameter names (`ledger strategies NAME` has the details)."""
    from ledger.strategies import STRATEGIES, params_of

    names = "; ".join(
        f"{name}: {', '.join(p.name for p in params_of(factory) if p.name != 'capital')}"
        for name, factory in sorted(STRATEGIES.items())
    )
    return (f"Strategy parameter NAME=VALUE (repeatable; hedge_split takes JSON such as "
            f"'{{\"binance\": 0.55, \"bybit\": 0.45}}'). Parameters — {names}. `ledger strategies NAME` "
            f"shows each one's type, default, range and meaning.")


def _kind(data: Path | None) -> str:
    from ledger.marketdata import seed_root

    if data is None:
        return "synthetic"
    if seed_root(data) is not None:
        return "seed"
    return "log" if data.is_file() or "://" in str(data) else "folder"


def _prepare_db(db: str, force: bool) -> str:
    url = db if "://" in db or db.startswith("memory") else f"sqlite:///{db}"
    if url.startswith("sqlite:///") and force:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return url


def _prepare_report(folder: Path) -> None:
    from ledger.report import ReportError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ReportError(f"cannot write report to {folder}: {e.strerror or e}") from None


def backtest(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config merged over the strategy's.")
    ] = None,
    db: Annotated[
        str, typer.Option("--db", help="Fresh ledger: a path, sqlite:///path.db or postgresql://…")
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
            help="Instead of synthetic data: the shared seed data folder, a folder of Binance archive "
            "files, or a recorded ledger (formats: README).",
        ),
    ] = None,
    fill: Annotated[
        str, typer.Option(help="Gaps in seed data: 'error' (default) or 'previous' (carried, noted).")
    ] = "error",
    param: Annotated[list[str] | None, typer.Option("--param", help=_param_help())] = None,
    strategy: Annotated[
        str, typer.Option(help="Strategy name (`ledger strategies` lists them).")
    ] = "demo_basis",
    capital: Annotated[str, typer.Option(help="Starting capital in USD.")] = "100000",
    report: Annotated[Path, typer.Option(help="Folder for equity/exposure PNGs and the report page.")] = Path(
        "backtest-report"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Delete an existing SQLite --db file first.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Run a strategy over market data through the execution interfaces into a fresh ledger."""
    from ledger.backtest import build_config, load_for, max_days, merge, run_backtest, seed_overrides
    from ledger.config import load_config
    from ledger.report import render_console, write_report
    from ledger.strategies import create, recorded

    first, last = _when(start, "--start"), _when(end, "--end")
    if days is not None and days <= 0:
        raise _fail(f"--days: must be positive, got {days}")
    if days is not None and last is not None:
        raise _fail("--days and --end: give one of them")
    try:
        amount = Decimal(capital)
        if not amount.is_finite() or amount <= 0:
            raise ValueError
    except (ArithmeticError, ValueError):
        raise _fail(f"--capital: expected a positive amount, got {capital!r}") from None
    if fill not in ("error", "previous"):
        raise _fail(f"--fill: expected error or previous, got {fill!r}")
    try:
        overrides = load_config(config) if config is not None else {}
        from_config = dict(overrides.pop("strategy_params", None) or {})
        if "capital" in from_config:
            raise _fail(f"{config}: [strategy_params] capital: set the capital with --capital")
        given = _params(param or [])
        try:
            chosen = create(strategy, capital=amount, **{**from_config, **given})
            _prepare_report(report)
            market = load_for(chosen, data_dir=data, seed=seed, start=first, end=last, days=days, fill=fill)
        except StrategyConfigError as e:
            raise _fail(_param_error(e, given, config)) from None
        overrides = merge(seed_overrides(data), overrides)
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
            db=_prepare_db(db, force),
            seed=seed,
            overrides=overrides,
            params=recorded(chosen),  # every effective value, so `ledger replay rerun` repeats the run
            data_spec=spec,
        )
        with Progress(
            TextColumn("backtest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("hours"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("run", total=len(market.times))
            result = asyncio.run(
                run_backtest(cfg, chosen, market, lambda n, _t: bar.update(task, completed=n))
            )
        summary = _round(result.summary)
        paths = write_report(
            report, summary, result.equity, result.exposure, title=f"Backtest: {chosen.name}"
        )
    except LedgerError as e:
        raise _fail(str(e)) from None
    if as_json:
        out = dict(summary, report={k: str(v) for k, v in paths.items()})
        print(json.dumps(_plain(out)))
        return
    console.print(f"report: {paths['html']}  (also {paths['markdown'].name}, equity.png, exposure.png)")
    render_console(summary, console, equity=result.equity)  # ends with the `digest: <hex>` line


def strategies(
    name: Annotated[
        str | None, typer.Argument(help="A strategy: show its parameters (type, default, range, meaning).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the strategies `ledger backtest --strategy` accepts, or one strategy's parameters."""
    from ledger.strategies import STRATEGIES, factory_of, params_of

    if name is None:
        rows = {key: factory.description for key, factory in sorted(STRATEGIES.items())}
        if as_json:
            print(json.dumps(rows))
            return
        for key, text in rows.items():
            print(f"{key:<34} {text}")
        print("`ledger strategies NAME` shows a strategy's parameters")
        return
    try:
        factory = factory_of(name)
    except LedgerError as e:
        raise _fail(str(e)) from None
    table = [{"name": p.name, "type": p.type_name(), "default": p.text(p.default), "range": p.range_text(),
              "meaning": p.meaning} for p in params_of(factory)]
    if as_json:
        print(json.dumps({"name": name, "description": factory.description, "parameters": table}))
        return
    print(f"{name}: {factory.description}")
    print("Set with --param NAME=VALUE (capital with --capital) or a config's [strategy_params].")
    columns = ("name", "type", "default", "range", "meaning")
    widths = {c: max(len(c), *(len(row[c]) for row in table)) for c in columns[:-1]}
    for row in [dict(zip(columns, columns, strict=True)), *table]:
        print("  ".join(row[c].ljust(widths[c]) for c in columns[:-1]) + "  " + row["meaning"])
