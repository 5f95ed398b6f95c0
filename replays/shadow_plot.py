"""The shadow report on disk: `shadow.png` (price differences per instruction, their histogram, fill
outcomes) and `shadow.md`. Pure: no wall clock, byte-identical files for equal reports."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from replays.shadow import FILL_KINDS, Comparison, Outcome, ShadowError, ShadowReport, plain

_STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.facecolor": "white",
}
WORSE, BETTER = "#c0392b", "#2e7d32"
MARKERS = {"live_only": ("^", "#e67e22", "live filled, sim did not"),
           "sim_only": ("v", "#7d3c98", "sim filled, live did not"),
           "partial": ("D", "#1f4e79", "filled quantities differ")}
FILL_LABELS = {"both_filled": "both filled", "both_unfilled": "neither filled", "live_only": "live only",
               "sim_only": "sim only", "partial": "partial"}


def write_shadow_report(folder: Path, report: ShadowReport) -> dict[str, Path]:
    """Write `shadow.png` and `shadow.md` into `folder` (created if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        png = folder / "shadow.png"
        png.write_bytes(render_png(report))
        page = folder / "shadow.md"
        page.write_text(render_markdown(report, png.name))
    except OSError as e:
        raise ShadowError(f"cannot write the shadow report to {folder}: {e.strerror or e}") from None
    return {"png": png, "markdown": page}


# ---- the figure -----------------------------------------------------------------------------------

def render_png(report: ShadowReport) -> bytes:
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(11, 7.5), layout="constrained")
        fig.suptitle("Shadow replay: live fills against the simulator", fontweight="bold")
        grid = fig.add_gridspec(2, 2, height_ratios=[3, 2])
        _bars(fig.add_subplot(grid[0, :]), report)
        _histogram(fig.add_subplot(grid[1, 0]), report)
        _outcomes(fig.add_subplot(grid[1, 1]), report)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: byte-identical
    return buf.getvalue()


def _bars(ax: Any, report: ShadowReport) -> None:
    ax.set_title("price difference per instruction, bps of the reference price (+ = live worse)",
                 loc="left", fontsize=9)
    ax.set_xlabel("instruction (acceptance order)")
    ax.set_ylabel("bps")
    rows = report.rows
    priced = [r for r in rows if r.price_diff_bps is not None]
    xs = [r.seq for r in priced]
    ys = [float(r.price_diff_bps) for r in priced if r.price_diff_bps is not None]
    ax.bar(xs, ys, color=[WORSE if y > 0 else BETTER for y in ys], width=0.7)
    ax.axhline(0, color="#333333", lw=0.8)
    mean = report.totals.mean_bps
    if mean is not None:
        ax.axhline(float(mean), color="#555555", lw=1.0, ls="--", label=f"mean {_bps(mean)} bps")
    for kind, (marker, colour, label) in MARKERS.items():
        marked = [r.seq for r in rows if r.fill == kind]
        if marked:
            ax.scatter(marked, [0.0] * len(marked), marker=marker, s=60, color=colour, zorder=3,
                       label=f"{label} ({len(marked)})")
    ax.set_xlim(0.3, max(len(rows), 1) + 0.7)
    if len(rows) <= 40:
        ax.set_xticks(range(1, len(rows) + 1))
    if not priced:
        ax.text(0.5, 0.6, "no instruction filled on both sides: no price to compare",
                transform=ax.transAxes, ha="center", color="#666666")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", frameon=False, fontsize=8.5)


def _histogram(ax: Any, report: ShadowReport) -> None:
    values = [float(r.price_diff_bps) for r in report.rows if r.price_diff_bps is not None]
    ax.set_title("distribution of price differences", loc="left", fontsize=9)
    ax.set_xlabel("bps (+ = live worse)")
    ax.set_ylabel("instructions")
    if not values:
        ax.text(0.5, 0.5, "nothing to compare", transform=ax.transAxes, ha="center", color="#666666")
        return
    ax.hist(values, bins=min(20, max(5, len(values))), color="#1f4e79", alpha=0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(0, color="#333333", lw=0.8)


def _outcomes(ax: Any, report: ShadowReport) -> None:
    counts = report.totals.fills
    names = [FILL_LABELS[k] for k in FILL_KINDS]
    values = [counts.get(k, 0) for k in FILL_KINDS]
    colours = ["#2e7d32", "#95a5a6", *(MARKERS[k][1] for k in FILL_KINDS[2:])]
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    ax.set_title("fill or no fill, live against sim", loc="left", fontsize=9)
    ax.set_xlabel("instructions")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v}", va="center", fontsize=8.5)


# ---- the page -------------------------------------------------------------------------------------

def render_markdown(report: ShadowReport, png_name: str = "shadow.png") -> str:
    t = report.totals
    sessions = ", ".join(f"`{s}`" for s in report.sessions) or "—"
    skipped = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in t.skipped.items() if n) or "none"
    lines = [
        "# Shadow replay: live against simulated fills",
        "",
        f"- Live log: `{report.source}`, sessions {sessions}",
        f"- Simulated with: {report.config_source}",
        f"- Simulated balances: {report.balances}",
        f"- Instructions compared: {t.instructions} (skipped: {skipped})",
        *(f"- Note: {n}" for n in report.notes),
        "",
        f"![price differences]({png_name})",
        "",
        "## Totals",
        "",
        "| measure | value |",
        "|---|---|",
        f"| price comparisons (CEX, filled on both sides) | {t.priced} |",
        f"| mean / median price difference | {_bps(t.mean_bps)} / {_bps(t.median_bps)} bps |",
        f"| smallest / largest | {_bps(t.min_bps)} / {_bps(t.max_bps)} bps |",
        f"| execution cost difference (price gap x live quantity) | {_assets(t.cost_diff)} |",
        f"| fee difference (live - sim) | {_assets(t.fee_diff)} |",
        f"| gas difference (live - sim) | {plain(t.gas_diff)} ETH |",
        f"| amount out difference (live - sim) | {_assets(t.amount_out_diff)} |",
        *(f"| {FILL_LABELS[k]} | {t.fills[k]} |" for k in FILL_KINDS),
        "",
        "## Per instruction",
        "",
        "| # | time (UTC) | venue | instruction | live | sim | Δ price (bps) | Δ fee | Δ gas (ETH) "
        "| Δ out | fill | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(r) for r in report.rows),
        "",
        "Signs: the price difference is (live average - simulated) / reference x 10 000 for buys and the "
        "negative of that for sells, so positive means live was worse for the desk; fee, gas and amount "
        "differences are live minus simulated.",
        "",
    ]
    return "\n".join(lines)


def _row(r: Comparison) -> str:
    ins = r.live.instruction
    what = " ".join(x for x in (ins.get("kind") if r.live.venue_type != "cex" else "",
                                ins.get("side", ""), ins.get("amount", ""), ins.get("instrument", ""),
                                ins.get("order_type", "") if ins.get("order_type") == "LIMIT" else "",
                                f"@ {ins['price']}" if ins.get("price") else "",
                                f"to {ins['to_venue']}" if ins.get("to_venue") else "") if x)
    cells = [
        str(r.seq), r.live.ts.strftime("%Y-%m-%d %H:%M:%S"), r.live.venue, what,
        _side(r.live), _side(r.sim) if r.sim is not None else "—",
        _bps(r.price_diff_bps), _assets(r.fee_diff) if r.fee_diff else "—",
        plain(r.gas_diff) or "—", plain(r.amount_out_diff) or "—", FILL_LABELS[r.fill],
        r.note.replace("|", "/") or "",
    ]
    return "| " + " | ".join(c or "—" for c in cells) + " |"


def _side(o: Outcome) -> str:
    if o.venue_type == "cex":
        filled = f"{plain(o.filled)} @ {plain(o.price)}" if o.price is not None else "0"
        return f"{o.status} {filled}"
    if o.venue_type == "onchain":
        out = f", out {plain(o.amount_out)} {o.out_asset}" if o.amount_out is not None else ""
        return f"{o.status}, gas {plain(o.gas_fee)}{out}"
    return o.status


def _bps(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"{value.quantize(Decimal('0.0001')):+f}"


def _assets(values: dict[str, Decimal]) -> str:
    return ", ".join(f"{plain(v)} {a}" for a, v in values.items()) or "—"
