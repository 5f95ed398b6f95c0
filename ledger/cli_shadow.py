"""`ledger replay shadow`: a live session's instructions through the simulator, live fills against
simulated ones per instruction, with a plot and a Markdown page."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aggregates.errors import LedgerError

console = Console()
err = Console(stderr=True, soft_wrap=True)
CONSOLE_ROWS = 50


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(2)


def _override(path: Path | None) -> dict[str, Any] | None:
    # Read as plain TOML, not through `load_config`: that one adds live keys from the environment,
    # and a simulation has no use for secrets.
    if path is None:
        return None
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise _fail(f"--config: no such file: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise _fail(f"--config: cannot read {path}: {e}") from None


def shadow(
    db: Annotated[str, typer.Option("--db", help="The live ledger: a path, sqlite:///path.db or postgresql://…")],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML cost config (execution_costs, fees, gas, transfers, risk, "
                     "initial_balances) merged over the one the live session recorded."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for shadow.png and shadow.md.")] = Path(
        "shadow-report"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Replay a log that holds no live session (e.g. a backtest).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Replay a live session's instructions through the simulator; compare live and simulated fills."""
    from replays.shadow import shadow as run
    from replays.shadow_plot import write_shadow_report

    override = _override(config)
    try:
        report = run(db, override=override, override_name=f"--config {config}" if config else "", force=force)
        paths = write_shadow_report(out, report)
    except LedgerError as e:
        raise _fail(str(e)) from None
    if as_json:
        print(json.dumps({**report.to_dict(), "report": {k: str(v) for k, v in paths.items()}}))
        return
    _print(report)
    console.print(f"report: {paths['markdown']}  (also {paths['png'].name})", highlight=False)


def _print(report: Any) -> None:
    from replays.shadow import plain
    from replays.shadow_plot import FILL_LABELS, _assets, _bps, _side

    table = Table(title=f"Shadow replay of {report.source}")
    for name in ("#", "venue", "instruction", "live", "sim", "Δ bps", "Δ fee", "Δ gas", "fill"):
        table.add_column(name, justify="right" if name in ("#", "Δ bps", "Δ gas") else "left")
    for r in report.rows[:CONSOLE_ROWS]:
        ins = r.live.instruction
        what = " ".join(x for x in (ins.get("side") or ins.get("kind", ""), ins.get("amount", ""),
                                    ins.get("instrument", "")) if x)
        table.add_row(str(r.seq), r.live.venue, what, _side(r.live), _side(r.sim) if r.sim else "—",
                      _bps(r.price_diff_bps), _assets(r.fee_diff), plain(r.gas_diff) or "—",
                      FILL_LABELS[r.fill])
    console.print(table)
    if len(report.rows) > CONSOLE_ROWS:
        console.print(f"… {len(report.rows) - CONSOLE_ROWS} more instructions in the Markdown report")
    t = report.totals
    fills = ", ".join(f"{FILL_LABELS[k]} {n}" for k, n in t.fills.items())
    console.print(
        f"price: mean {_bps(t.mean_bps)} bps, median {_bps(t.median_bps)} bps over {t.priced} fills "
        f"(+ = live worse)\nexecution cost difference: {_assets(t.cost_diff)}\n"
        f"fee difference: {_assets(t.fee_diff)}\ngas difference: {plain(t.gas_diff)} ETH\n"
        f"fills: {fills}",
        highlight=False,
    )
