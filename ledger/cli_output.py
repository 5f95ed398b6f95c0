"""How every `ledger` command prints: one rule for numbers, tables that fit the terminal, `--wide`,
`--json`, progress bars and the one-line `error:` exit. Every CLI module prints through here.

The rules:

- **Numbers**: an amount, price, quantity or fee is printed exactly as recorded, in positional
  notation (no exponent, no thousands separators, no rounding): the digits `--json` carries, so a
  value copied from a table reads back as the stored Decimal. Derived numbers (equity, P&L,
  exposure, risk, average prices: quotients that carry 60 digits inside) are first rounded to 12
  decimals (`rounded`), in tables and in JSON alike.
- **Tables** fit the terminal width (`COLUMNS`, 80 when not a terminal): numbers and ids are never
  broken, cut or ellipsised; free-text columns wrap. A table whose numbers and ids cannot fit side by
  side at that width is printed as records instead, one field per line (`header: value`), wrapped.
  `--wide` prints every table at its natural width on one line per row, however wide.
- **Text lines** wrap at spaces to the terminal width (indented continuation lines), unless `--wide`.
- **JSON** (`--json`): Decimals as exact strings, times as ISO text; one object per command, or one
  per line for streams; nothing else on stdout (notes and progress go to stderr).
- **Progress** bars go to stderr, transient, only when stderr is a terminal and never with `--json`.
- **Errors**: one `error: …` line on stderr and exit 2 (`fail`, `guard`; a time option that cannot
  be read: `parse_time`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import typer
from rich import box as boxes
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from aggregates.errors import InstructionError, LedgerError

T = TypeVar("T")
WIDE = 100_000  # the console width behind --wide: a row is never wrapped
DERIVED = ("exposure", "risk", "pnl", "equity", "initial_equity", "final_equity", "apy", "attribution")
ABSENT = "—"

DbOption = Annotated[str, typer.Option("--db", help="sqlite:///path.db, a path, or postgresql://…")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (Decimals as strings).")]
WideOption = Annotated[bool, typer.Option(
    "--wide", help="Print tables at full width, one line per row, instead of fitting the terminal.")]

err = Console(stderr=True, soft_wrap=True, highlight=False)


# ---- errors ------------------------------------------------------------------------------------------


def fail(message: str, code: int = 2) -> typer.Exit:
    """One `error: …` line on stderr; raise the returned Exit (exit 2 unless told)."""
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(code)


def guard(fn: Callable[[], T]) -> T:
    """Run `fn`; a LedgerError or an OS error becomes one `error:` line and exit 2, and a reader that
    went away (`… | head`) ends the command quietly."""
    try:
        return fn()
    except LedgerError as e:
        raise fail(str(e)) from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as e:
        raise fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")) from None


def parse_time(value: str, name: str) -> datetime:
    """The time option `name` (`--start`, `--as-of`, …): ISO; a bare date means its 00:00 UTC and a time
    without zone is UTC. Unreadable: one `error:` line, exit 2."""
    from aggregates.values import to_utc

    try:
        return to_utc(value if "T" in value or " " in value else f"{value}T00:00:00+00:00", name)
    except InstructionError:
        raise fail(f"{name}: expected an ISO time or date, got {value!r}") from None


# ---- numbers and JSON --------------------------------------------------------------------------------


def number(value: Any) -> str:
    """The one rule for a number in text: exact, positional, no separators ("0.000000819317214881",
    never "8.19317214881E-7"); None is an em dash."""
    if value is None:
        return ABSENT
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        text = format(value, "f")
        return text[1:] if text.startswith("-") and not value else text  # no "-0"
    return str(value)


def rounded(value: Any) -> Any:
    """Derived numbers (equity, P&L, exposure, risk) carry 60 digits inside; keep 12 decimals at most.
    Recorded amounts (balances, quantities, prices, fees) stay exact."""
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent < -12:  # type: ignore[operator]
            return value.quantize(Decimal("1e-12"))
        return value
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def settle(state: dict[str, Any]) -> dict[str, Any]:
    """A state report (summary, replay state, demo, a backtest's summary) with its derived numbers
    (`DERIVED`, and each position's average entry) rounded by `rounded`; recorded amounts (balances,
    in transit, quantities, realised P&L, fees) stay exact."""
    out = dict(state)
    out.update({k: rounded(out[k]) for k in DERIVED if k in out})
    if "positions" in out:
        out["positions"] = [{**p, "avg_entry": rounded(p["avg_entry"])} for p in out["positions"]]
    return out


def plain(value: Any) -> Any:
    """JSON-ready: Decimals as exact positional text (`number`), times as ISO, tuple keys joined by
    spaces."""
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else " ".join(map(str, k)) if isinstance(k, tuple) else str(k)):
                plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit(data: Any) -> None:
    """One JSON object on its own line on stdout (for streams: call once per object)."""
    sys.stdout.write(json.dumps(plain(data)) + "\n")


# ---- tables ------------------------------------------------------------------------------------------


Kind = Literal["num", "id", "text"]


@dataclass(frozen=True)
class Col:
    """A table column. `num` (right-aligned) and `id` values are never broken; `text` wraps. A
    `detail` column moves, when the table is too wide, into a wrapped line under its row."""

    header: str
    kind: Kind = "text"
    detail: bool = False


def col(spec: Col | str) -> Col:
    return spec if isinstance(spec, Col) else Col(spec)


def cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return number(value)


def _longest(text: str, words: bool) -> int:
    parts = text.split() if words else text.splitlines()
    return max((cell_len(p) for p in parts), default=0)


def _widths(cols: Sequence[Col], cells: Sequence[Sequence[str]], room: int) -> list[int] | None:
    """Column widths that fit `room`: narrowed widest first, but never below a cell of a number or id
    column, nor below a word of a text column or of a header. None when even that does not fit."""
    natural = [max(_longest(c.header, False), *(_longest(r[i], False) for r in cells))
               for i, c in enumerate(cols)]
    floor = [max(_longest(c.header, True), *(_longest(r[i], c.kind == "text") for r in cells), 1)
             for i, c in enumerate(cols)]
    if sum(floor) > room:
        return None
    widths = list(natural)
    excess = sum(widths) - room
    while excess > 0:
        i = max((i for i in range(len(cols)) if widths[i] > floor[i]), key=lambda i: widths[i])
        widths[i] -= 1
        excess -= 1
    return widths


def table(title: str | None, columns: Sequence[Col | str], rows: Iterable[Sequence[Any]], *, width: int,
          wide: bool = False, framed: bool = True) -> RenderableType:
    """A table that fits `width`, every number, id and word whole. In order of preference: framed;
    a listing without borders (two spaces between columns); the listing without its `detail`
    columns, which go into a wrapped `header: value; …` line under each row; records (one
    `header: value` per line, wrapped). Text and headers wrap at spaces.

    `wide`: framed at its natural width, whatever the terminal (the caller prints it on a console as
    wide as `WIDE`). `framed=False`: never framed."""
    cols = [col(c) for c in columns]
    cells = [[cell(v) for v in row] for row in rows]
    if wide or not cells:
        return _grid(title, cols, cells, None, framed)
    for boxed, edges in ((True, 3 * len(cols) + 1), (False, 2 * len(cols) - 2)):
        if boxed and not framed:
            continue
        widths = _widths(cols, cells, width - edges)
        if widths is not None:
            return _grid(title, cols, cells, widths, boxed)
    main = [i for i, c in enumerate(cols) if not c.detail]
    if len(main) < len(cols):
        shown = [cols[i] for i in main]
        widths = _widths(shown, [[r[i] for i in main] for r in cells], width - 2 * len(main) + 2)
        if widths is not None:
            parts: list[RenderableType] = [_grid(title, shown, [], widths, False)]
            for r in cells:
                row = _grid(None, shown, [[r[i] for i in main]], widths, False)
                assert isinstance(row, Table)
                row.show_header = False
                extra = "; ".join(f"{c.header}: {r[i]}" for i, c in enumerate(cols)
                                  if c.detail and r[i] not in ("", ABSENT))
                parts += [row, *(Text(line) for line in wrap(extra, width, indent=2, hang=4))]
            return Group(*parts)
    lines: list[str] = [title] if title else []
    for r in cells:
        lines += wrap(r[0], width)
        for c, value in zip(cols[1:], r[1:], strict=True):
            lines += wrap(f"{c.header}: {value}", width, indent=2, hang=4)
    return Group(*(Text(line) for line in lines))


def _grid(title: str | None, cols: Sequence[Col], cells: Sequence[Sequence[str]], widths: list[int] | None,
          framed: bool) -> RenderableType:
    grid = Table(highlight=False, box=boxes.HEAVY_HEAD if framed else None, pad_edge=framed)
    for i, c in enumerate(cols):
        grid.add_column(c.header, justify="right" if c.kind == "num" else "left", no_wrap=widths is None,
                        overflow="fold", width=None if widths is None else widths[i])
    for r in cells:
        grid.add_row(*(Text(x) for x in r))
    return grid if title is None else Group(Text(title), grid)


def wrap(text: str, width: int | None, indent: int = 0, hang: int | None = None) -> list[str]:
    """`text` as lines of at most `width` cells (None: unwrapped), broken at spaces (the spacing
    inside a line is kept). The first line is indented by `indent`, the next ones by `hang`; a word
    too long for that indent is set less indented on a line of its own, so it stays whole (only a word
    longer than `width` is folded)."""
    hang = indent if hang is None else hang
    out: list[str] = []
    for n, part in enumerate(text.splitlines() or [""]):
        pad = indent if n == 0 else hang
        if width is None or pad + cell_len(part) <= width:
            out.append(" " * pad + part)
            continue
        line, space = "", ""
        for token in re.findall(r"\s+|\S+", part):
            if token.isspace():
                space = token  # kept inside a line (and leading the part), dropped at a break
                continue
            joined, space = line + space + token, ""
            if pad + cell_len(joined) <= width:
                line = joined
                continue
            if line:
                out.append(" " * pad + line)
                pad = hang
            while cell_len(token) > width:
                out.append(token[:width])
                token = token[width:]
            pad = min(pad, width - cell_len(token))
            line = token
        out.append(" " * pad + line)
    return out


# ---- the output of one command -----------------------------------------------------------------------


class Output:
    """Where a command prints: the terminal width (or `--wide`), tables, text lines, JSON, progress."""

    def __init__(self, wide: bool = False, as_json: bool = False, console: Console | None = None) -> None:
        self.wide, self.as_json = wide, as_json
        # Made per command, so COLUMNS is read when the command runs (not when the module is imported).
        self.console = console or Console(width=WIDE if wide else None, highlight=False)

    @property
    def width(self) -> int | None:
        return None if self.wide else self.console.width

    def line(self, text: str = "", hang: int = 2) -> None:
        """A line of text, wrapped at spaces to the width (continuation lines indented by `hang`)."""
        for part in wrap(text, self.width, hang=hang):
            sys.stdout.write(part + "\n")

    def table(self, title: str | None, columns: Sequence[Col | str], rows: Iterable[Sequence[Any]],
              framed: bool = True) -> None:
        self.console.print(table(title, columns, rows, width=self.console.width, wide=self.wide,
                                 framed=framed))

    def json(self, data: Any) -> None:
        emit(data)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[..., None]]:
        """A transient bar on stderr (only on a terminal, never with --json); yields `update(done,
        total=None, label=None)`."""
        screen = Console(stderr=True)  # made now: whether stderr is a terminal is read when the bar starts
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), console=screen, transient=True,
                       disable=self.as_json or not screen.is_terminal)
        with bar:
            task = bar.add_task(label, total=total)

            def update(done: int, total: int | None = None, label: str | None = None) -> None:
                fields: dict[str, Any] = {"completed": done}
                if total is not None:
                    fields["total"] = total
                if label is not None:
                    fields["description"] = label
                bar.update(task, **fields)

            yield update


def state_tables(out: Output, data: dict[str, Any]) -> None:
    """Balances, positions, exposure, P&L, risk and the counts of a settled state report — how
    `summary`, `demo` and `replay state` print the same state."""
    balances = data["balances"]
    if balances and all(isinstance(v, dict) for v in balances.values()):
        out.table("Balances", ["venue", "asset", Col("amount", "num")],
                  [(venue, asset, amount) for venue, assets in balances.items()
                   for asset, amount in assets.items()])
    else:
        out.table("Balances", ["asset", Col("amount", "num")], balances.items())
    out.table("Positions", ["venue", Col("instrument", "id"), Col("quantity", "num"),
                            Col("avg entry", "num"), Col("realised", "num")],
              [(p["venue"], p["instrument"], p["quantity"], p["avg_entry"], p["realised"])
               for p in data["positions"]])
    out.table("Exposure", ["name", Col("amount", "num")], data["exposure"].items())
    out.table("P&L (USD)", ["line", Col("USD", "num")], data["pnl"].items())
    risk = data["risk"]
    for name in ("health_factor", "margin_use"):
        for venue, value in risk[name].items():
            out.line(f"{name.replace('_', ' ')} {venue}: {number(value)}")
    for breach in risk["breaches"]:
        out.line(f"breach: {breach}")
    out.line(f"events: {data['events']}  fills: {data['fills']}  equity: {number(data['equity'])} USD")
