"""Backtest report: equity and exposure charts (PNG), a Markdown page, a self-contained HTML page and
console tables, all from one summary dict. Pure: no wall clock, byte-identical output for equal inputs.

Two number formats, on purpose: the report page (report.md, report.html, chart labels) is read by
people, so money has thousands separators and 2 decimals and quantities up to 8 (`money`,
`quantity`); what reaches the terminal (`headline`, `summary_tables`, `render_console`) follows the
CLI's one number rule (`ledger.cli_output`: positional, no separators, recorded amounts exact,
derived numbers such as equity rounded to 12 decimals), so the same state prints the same way in
every command and in --json. Percentages (return, APY, drawdown) have 2 decimals in both. Rounding
happens in a context wide enough for any value (a 1e16 capital or a 1e23 balance prints exactly)."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from rich.console import Console, RenderableType

from aggregates.errors import LedgerError
from projections.reports import PNL_LINES

_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
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
PNL_ORDER = (*PNL_LINES, "total")
Series = Sequence[tuple[str, Decimal]]
ExposureSeries = Sequence[tuple[str, dict[str, Decimal]]]


class ReportError(LedgerError):
    """The report folder cannot be created or written, or an input series is malformed."""


def _dec(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        return Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None


def _fmt(value: object, places: int, strip: bool = False, separators: bool = True) -> str:
    d = _dec(value)
    if d is None:
        return "—" if value is None else str(value)
    if not d.is_finite():
        return "NaN" if d.is_nan() else ("∞" if d > 0 else "-∞")
    # Room for every digit of the result, however large the whole part (60 digits hold no 1e60).
    room = Context(prec=max(_CTX.prec, d.adjusted() + places + 2), rounding=ROUND_HALF_EVEN)
    q = d.quantize(Decimal(1).scaleb(-places), context=room)
    text = format(abs(q) if q == 0 else q, ",f" if separators else "f")
    if strip and "." in text:
        whole, frac = text.split(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return text


def money(value: object) -> str:
    """Money with thousands separators and 2 decimals, straight from the Decimal: 1234.5 -> '1,234.50'."""
    return _fmt(value, 2)


def quantity(value: object) -> str:
    """A quantity with thousands separators and up to 8 decimals (at least 2): 0.02 -> '0.02'."""
    return _fmt(value, 8, strip=True)


def percent(fraction: object, separators: bool = True) -> str:
    """A fraction as a percentage with 2 decimals: 0.034 -> '3.40%' (12.5 -> '1,250.00%', or '1250.00%'
    without `separators`)."""
    d = _dec(fraction)
    return "—" if d is None else _fmt(d.scaleb(2) if d.is_finite() else d, 2, separators=separators) + "%"


def max_drawdown(equity: Series) -> Decimal:
    """Largest peak-to-trough fall as a fraction of the running peak (0 when equity never falls)."""
    worst, peak = Decimal(0), None
    with localcontext(_CTX):
        for _ts, value in equity:
            peak = value if peak is None or value > peak else peak
            if peak > 0:
                worst = max(worst, (peak - value) / peak)
    return worst


def _dates(series: Sequence[tuple[str, Any]], name: str) -> Any:
    out = []
    for i, (ts, _v) in enumerate(series):
        try:
            t = datetime.fromisoformat(ts)
        except (TypeError, ValueError):
            raise ReportError(f"{name}[{i}]: not an ISO-8601 timestamp: {ts!r}") from None
        out.append((t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None))
    return date2num(out)  # type: ignore[no-untyped-call]


def _time_axis(ax: Any, x: Any) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    if len(x) == 1:  # one point: show the day around it instead of matplotlib's default years
        ax.set_xlim(x[0] - 0.5, x[0] + 0.5)


def _usd_axis(ax: Any, label: str) -> None:
    def fmt(v: float, _pos: object) -> str:
        low, high = ax.get_ylim()
        return f"{v:,.{0 if high - low >= 10 else 2}f}"

    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.set_ylabel(label)


def _png(fig: Figure, message: str | None = None) -> bytes:
    if message:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#666666")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: byte-identical
    return buf.getvalue()


def _equity_png(equity: Series, title: str, initial: Decimal | None) -> bytes:
    fig = Figure(figsize=(10, 6), layout="constrained")
    fig.suptitle(f"{title}: equity curve", fontweight="bold")
    if not equity:
        return _png(fig, "No equity points were recorded for this run.")
    x, drawdown, peak = _dates(equity, "equity"), [], None
    with localcontext(_CTX):
        for _t, v in equity:
            peak = v if peak is None or v > peak else peak
            drawdown.append(float((v - peak) / peak * 100) if peak > 0 else 0.0)
    initial = equity[0][1] if initial is None else initial
    ax, dd_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot(
        x,
        [float(v) for _t, v in equity],
        color="#1f4e79",
        lw=1.6,
        label="equity",
        marker="o" if len(x) == 1 else None,
    )
    ax.axhline(float(initial), color="#888888", lw=0.9, ls="--", label=f"initial equity {money(initial)}")
    _usd_axis(ax, "equity (USD)")
    ax.legend(loc="best", frameon=False)
    dd_ax.fill_between(x, drawdown, 0, color="#c0392b", alpha=0.3, lw=0)
    dd_ax.plot(x, drawdown, color="#c0392b", lw=1.0)
    dd_ax.set_ylabel("drawdown (%)")
    dd_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.2f}"))
    dd_ax.set_ylim(top=0.0, bottom=min(min(drawdown) * 1.15, -0.01))
    dd_ax.set_title(f"max drawdown {percent(max_drawdown(equity))}", loc="left", fontsize=9)
    _time_axis(dd_ax, x)
    return _png(fig)


def _exposure_png(exposure: ExposureSeries, title: str) -> bytes:
    fig = Figure(figsize=(10, 6), layout="constrained")
    fig.suptitle(f"{title}: net exposure", fontweight="bold")
    assets = sorted({a for _t, row in exposure for a in row if a != "USD"})
    has_usd = any("USD" in row for _t, row in exposure)
    if not (assets or has_usd):
        return _png(fig, "No exposure points were recorded for this run.")
    x = _dates(exposure, "exposure")
    axes = (
        list(fig.subplots(2, 1, sharex=True, height_ratios=[3, 2]))
        if assets and has_usd
        else [fig.subplots()]
    )
    if assets:
        for asset in assets:
            axes[0].step(
                x, [float(row.get(asset, 0)) for _t, row in exposure], where="post", lw=1.5, label=asset
            )
        axes[0].axhline(0, color="#333333", lw=0.8)
        axes[0].set_ylabel("net units")
        axes[0].set_title("net units per underlying (USD excluded)", loc="left", fontsize=9)
        axes[0].legend(loc="best", frameon=False, ncols=min(len(assets), 6))
    if has_usd:
        axes[-1].step(
            x, [float(row.get("USD", 0)) for _t, row in exposure], where="post", color="#2e7d32", lw=1.5
        )
        _usd_axis(axes[-1], "USD")
        axes[-1].set_title("net USD (cash and stablecoins)", loc="left", fontsize=9)
    _time_axis(axes[-1], x)
    return _png(fig)


@dataclass(frozen=True)
class _Table:
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    left: int = 1  # leading text columns; the rest are numbers, right-aligned


@dataclass(frozen=True)
class _Block:
    title: str
    items: Sequence[str] = ()
    src: str = ""  # set: an image by relative path instead of a bullet list


def _measures(summary: dict[str, Any], equity: Series | None) -> dict[str, Decimal | None]:
    """The headline's figures as Decimals: initial and final equity, return, APY and (with a series)
    max drawdown."""
    initial = _dec(summary.get("initial_equity", equity[0][1] if equity else None))
    final = _dec(summary.get("final_equity", equity[-1][1] if equity else None))
    with localcontext(_CTX):
        ret = (final - initial) / initial if initial and final is not None else None
    out = {"initial": initial, "final": final, "return": ret, "apy": _dec(summary.get("apy"))}
    if equity is not None:
        out["drawdown"] = max_drawdown(equity) if equity else None
    return out


def _figures(summary: dict[str, Any], equity: Series | None) -> dict[str, str]:
    """The headline table of the page: money with separators and 2 decimals, percentages."""
    m = _measures(summary, equity)
    out = {
        "initial equity (USD)": money(m["initial"]),
        "final equity (USD)": money(m["final"]),
        "return": percent(m["return"]),
        "APY (annualised)": percent(m["apy"]),
    }
    if "drawdown" in m:
        out["max drawdown"] = percent(m["drawdown"])
    return out


def _tables(summary: dict[str, Any], equity: Series | None, console: bool = False) -> dict[str, _Table]:
    """The report's tables as text. For the page: money with 2 decimals, quantities with up to 8; for
    the console (`console=True`): the CLI's one rule — recorded amounts exact, derived numbers to 12
    decimals, positional (`ledger.cli_output.number`)."""
    if console:
        from ledger.cli_output import number, rounded

        def quantity_(value: object) -> str:
            return number(value)

        def money_(value: object) -> str:
            return number(rounded(value))

        def ratio(value: object) -> str:
            return number(rounded(value))
    else:
        quantity_, money_ = quantity, money

        def ratio(value: object) -> str:
            return _fmt(value, 4)

    def pairs(mapping: Any, fmt: Any = quantity_) -> list[tuple[str, str]]:
        return [(str(k), fmt(v)) for k, v in sorted((mapping or {}).items())]

    params = [
        (k, f"{v:,}" if isinstance(v, int) else str(v))
        for k in ("strategy", "start", "end", "seed", "events", "fills")
        if (v := summary.get(k)) is not None
    ]
    balances = [
        (str(venue), a, x)
        for venue, assets in sorted((summary.get("balances") or {}).items())
        for a, x in (pairs(assets) if isinstance(assets, dict) else [(venue, quantity_(assets))])
    ]
    positions = [
        (
            str(p.get("venue", "")),
            str(p.get("instrument", "")),
            str(p.get("market_type", "")),
            quantity_(p.get("quantity")),
            money_(p.get("avg_entry")) if console else quantity(p.get("avg_entry")),
            quantity_(p.get("realised")) if console else money(p.get("realised")),  # recorded: exact
            quantity_(p.get("fees")) if console else money(p.get("fees")),
        )
        for p in summary.get("positions") or []
    ]
    pnl = summary.get("pnl") or {}
    lines = [k for k in PNL_ORDER if k in pnl] + sorted(k for k in pnl if k not in PNL_ORDER)
    risk = summary.get("risk") or {}
    hf, mu = risk.get("health_factor") or {}, risk.get("margin_use") or {}
    return {
        "params": _Table("Run parameters", ("parameter", "value"), params, left=2),
        "headline": _Table("Headline", ("figure", "value"), list(_figures(summary, equity).items())),
        "balances": _Table("Balances per venue", ("venue", "asset", "amount"), balances, left=2),
        "positions": _Table(
            "Positions",
            ("venue", "instrument", "type", "quantity", "avg entry", "realised", "fees"),
            positions,
            left=3,
        ),
        "exposure": _Table("Net exposure", ("underlying", "net units"),
                           pairs(summary.get("exposure"), money_ if console else quantity_)),
        "in_transit": _Table("In transit", ("asset", "amount"), pairs(summary.get("in_transit"))),
        "pnl": _Table("P&L by line (USD)", ("line", "USD"), [(k, money_(pnl[k])) for k in lines]),
        "unpriced": _Table(
            "Unpriced: held or booked without a USD price, left out of equity (own units)",
            ("item", "amount"), pairs(summary.get("unpriced"), quantity_),
        ),
        "risk": _Table(
            "Risk",
            ("venue", "health factor", "margin use"),
            [
                (v, ratio(hf[v]) if v in hf else "—",
                 (ratio(mu[v]) if console else percent(mu[v])) if v in mu else "—")
                for v in sorted(set(hf) | set(mu))
            ],
        ),
    }


def _parts(summary: dict[str, Any], equity: Series, notes: list[str]) -> list[_Table | _Block]:
    t = _tables(summary, equity)
    breaches = [str(b) for b in (summary.get("risk") or {}).get("breaches") or []]
    return [
        t["params"],
        t["headline"],
        _Block("Equity curve", src="equity.png"),
        t["balances"],
        t["positions"],
        t["exposure"],
        _Block("Exposure over time", src="exposure.png"),
        *([t["in_transit"]] if t["in_transit"].rows else []),
        t["pnl"],
        *([t["unpriced"]] if t["unpriced"].rows else []),
        t["risk"],
        _Block("Risk breaches", breaches or ["none"]),
        _Block("Notes", notes or ["none"]),
    ]


def _md_cell(text: str) -> str:
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)  # no raw HTML tags; "a < b" stays as written
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, parts: list[_Table | _Block], digest: str) -> str:
    out = [f"# {_md_cell(title)}", ""]
    for part in parts:
        out += [f"## {part.title}", ""]
        if isinstance(part, _Block) and part.src:
            out.append(f"![{part.title}]({part.src})")
        elif isinstance(part, _Block):
            out += [f"- {_md_cell(item)}" for item in part.items]
        elif not part.rows:
            out.append("_none_")
        else:
            align = [":--" if i < part.left else "--:" for i in range(len(part.headers))]
            out += ["| " + " | ".join(part.headers) + " |", "| " + " | ".join(align) + " |"]
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in part.rows]
        out.append("")
    return "\n".join([*out, "---", "", f"Digest: `{digest}`", ""])


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .7em}"
    "th{background:#f3f5f8}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "img{max-width:100%}code{background:#f3f5f8;padding:.1em .3em}"
)


def _html(title: str, parts: list[_Table | _Block], digest: str) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for part in parts:
        out.append(f"<h2>{e(part.title)}</h2>")
        if isinstance(part, _Block) and part.src:
            out.append(f'<img src="{e(part.src)}" alt="{e(part.title)}">')
        elif isinstance(part, _Block):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in part.items) + "</ul>")
        elif not part.rows:
            out.append("<p><em>none</em></p>")
        else:
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in part.headers) + "</tr>")
            out += [
                "<tr>"
                + "".join(f"<td{'' if i < part.left else ' class=n'}>{e(c)}</td>" for i, c in enumerate(row))
                + "</tr>"
                for row in part.rows
            ]
            out.append("</table>")
    return "\n".join([*out, "<hr>", f"<p>Digest: <code>{e(digest)}</code></p>", "</body></html>", ""])


def write_report(
    folder: Path,
    summary: dict[str, Any],
    equity: Series,
    exposure: ExposureSeries,
    title: str = "Backtest report",
) -> dict[str, Path]:
    """Write equity.png, exposure.png, report.md and report.html into `folder`; return their paths."""
    folder = Path(folder)
    notes = [str(n) for n in summary.get("notes") or []]
    if not equity:
        notes.append("No equity points were recorded: the equity curve and max drawdown are empty.")
    if not exposure:
        notes.append("No exposure points were recorded: the exposure chart is empty.")
    with matplotlib.rc_context(_STYLE):
        equity_png = _equity_png(equity, title, _dec(summary.get("initial_equity")))
        exposure_png = _exposure_png(exposure, title)
    parts, digest = _parts(summary, equity, notes), str(summary.get("digest", "—"))
    files = {
        "equity_png": ("equity.png", equity_png),
        "exposure_png": ("exposure.png", exposure_png),
        "markdown": ("report.md", _markdown(title, parts, digest).encode()),
        "html": ("report.html", _html(title, parts, digest).encode()),
    }
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(0, "a file is in the way, not a directory")
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.values():
            (folder / name).write_bytes(data)
    except OSError as exc:
        raise ReportError(f"cannot write report to {folder}: {exc.strerror or exc}") from None
    return {key: folder / name for key, (name, _data) in files.items()}


def summary_tables(summary: dict[str, Any], width: int = 80, wide: bool = False) -> list[RenderableType]:
    """Console tables (balances per venue, positions, exposure, P&L by line, and risk when there is
    any) that fit `width`, through the CLI's one table rule (`ledger.cli_output.table`)."""
    from ledger.cli_output import Col, table

    out = []
    for key, spec in _tables(summary, None, console=True).items():
        if key in ("params", "headline", "in_transit") or (key in ("risk", "unpriced") and not spec.rows):
            continue
        columns = [h if i < spec.left else Col(h, "num") for i, h in enumerate(spec.headers)]
        out.append(table(spec.title, columns, spec.rows, width=width, wide=wide))
    return out


def headline(summary: dict[str, Any], equity: Series | None = None) -> str:
    """One line: strategy, equity initial -> final, return, APY (and max drawdown when a series is
    given), events and fills. Console text, so the CLI's one number rule (`ledger.cli_output`): equity
    positional, no separators, rounded to 12 decimals (as in the tables and in --json); return, APY and
    drawdown as percentages with 2 decimals, counts as plain integers, neither with separators."""
    from ledger.cli_output import number, rounded

    m = _measures(summary, equity)
    text = (
        f"{summary.get('strategy', 'run')}: equity {number(rounded(m['initial']))} -> "
        f"{number(rounded(m['final']))} USD ({percent(m['return'], False)}), "
        f"APY (annualised) {percent(m['apy'], False)}"
    )
    text += f", max drawdown {percent(m['drawdown'], False)}" if "drawdown" in m else ""
    counts = [f"{summary[k]} {k}" for k in ("events", "fills") if isinstance(summary.get(k), int)]
    return ", ".join([text, *counts])


def render_console(summary: dict[str, Any], console: Console, equity: Series | None = None,
                   wide: bool = False) -> None:
    """Print the headline, the summary tables, the run's notes, any risk breaches and the digest to
    `console`: tables and lines fit its width (the CLI's rule, `ledger.cli_output`: at least 40
    columns, a narrower console is widened), or run at full width with `wide`; the digest line is
    never wrapped."""
    from ledger.cli_output import fit, wrap

    fit(console)

    def say(text: str, style: str | None = None) -> None:
        for line in wrap(text, None if wide else console.width, hang=2):
            console.print(line, markup=False, highlight=False, style=style, soft_wrap=True)

    say(headline(summary, equity))
    for table in summary_tables(summary, console.width, wide):
        console.print(table, soft_wrap=True)  # a number longer than the width keeps its line, whole
    for note in summary.get("notes") or []:  # what the data or the strategy changed: filled gaps, venues
        say(f"note: {note}")
    for breach in (summary.get("risk") or {}).get("breaches") or []:
        say(f"risk breach: {breach}", style="bold red")
    if summary.get("digest"):  # never wrapped: `grep '^digest:'` finds the whole digest
        console.print(f"digest: {summary['digest']}", markup=False, highlight=False, soft_wrap=True)
