"""`ledger replay shadow`: a live session's instructions through the simulator, live fills against
simulated ones per instruction, with a plot and a Markdown page."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from aggregates.errors import LedgerError
from ledger.cli_output import Col, JsonOption, Output, WideOption, emit, fail

CONSOLE_ROWS = 50


def _override(path: Path | None) -> dict[str, Any] | None:
    # Read as plain TOML, not through `load_config`: that one adds live keys from the environment,
    # and a simulation has no use for secrets.
    if path is None:
        return None
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise fail(f"--config: no such file: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise fail(f"--config: cannot read {path}: {e}") from None


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
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Replay a live session's instructions through the simulator; compare live and simulated fills."""
    from replays.shadow import shadow as run
    from replays.shadow_plot import write_shadow_report

    override = _override(config)
    try:
        report = run(db, override=override, override_name=f"--config {config}" if config else "", force=force)
        paths = write_shadow_report(out, report)
    except LedgerError as e:
        raise fail(str(e)) from None
    if as_json:
        emit({**report.to_dict(), "report": {k: str(v) for k, v in paths.items()}})
        return
    shown = Output(wide)
    _print(shown, report)
    shown.line(f"report: {paths['markdown']}  (also {paths['png'].name})")


def _print(out: Output, report: Any) -> None:
    from replays.shadow import plain
    from replays.shadow_plot import FILL_LABELS, _assets, _bps, _side

    rows = []
    for r in report.rows[:CONSOLE_ROWS]:
        ins = r.live.instruction
        what = " ".join(x for x in (ins.get("side") or ins.get("kind", ""), ins.get("amount", ""),
                                    ins.get("instrument", "")) if x)
        rows.append((r.seq, r.live.venue, what, _side(r.live), _side(r.sim) if r.sim else "—",
                     _bps(r.price_diff_bps), _assets(r.fee_diff), plain(r.gas_diff) or "—",
                     FILL_LABELS[r.fill]))
    columns: list[Col | str] = [
        Col("#", "num"), "venue", "instruction", Col("live", detail=True), Col("sim", detail=True),
        Col("Δ bps", "num"), Col("Δ fee", detail=True), Col("Δ gas", "num", detail=True), "fill"]
    out.table(f"Shadow replay of {report.source}", columns, rows)
    if len(report.rows) > CONSOLE_ROWS:
        out.line(f"… {len(report.rows) - CONSOLE_ROWS} more instructions in the Markdown report")
    t = report.totals
    fills = ", ".join(f"{FILL_LABELS[k]} {n}" for k, n in t.fills.items())
    out.line(f"price: mean {_bps(t.mean_bps)} bps, median {_bps(t.median_bps)} bps over {t.priced} fills "
             "(+ = live worse)")
    out.line(f"execution cost difference: {_assets(t.cost_diff)}")
    out.line(f"fee difference: {_assets(t.fee_diff)}")
    out.line(f"gas difference: {plain(t.gas_diff)} ETH")
    out.line(f"fills: {fills}")
