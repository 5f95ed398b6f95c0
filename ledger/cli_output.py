"""How every `ledger` command prints: one rule for numbers, tables that fit the terminal, `--wide`,
`--json`, progress bars and the one-line `error:` exit. Every CLI module prints through here.

The rules:

- **Numbers**: an amount, price, quantity or fee is printed exactly as recorded, in positional
  notation (no exponent, no thousands separators, no rounding): the digits `--json` carries, so a
  value copied from a table reads back as the stored Decimal. Derived numbers (equity, P&L,
  exposure, risk, average prices: quotients that carry 60 digits inside) are first rounded to 12
  decimals (`rounded`), in tables and in JSON alike, in a context wide enough for any value (a 1e23
  balance prints exactly; the default 28-digit context could not even round it).
- **Width**: the terminal's (`COLUMNS`, 80 when not a terminal), at least `MIN_WIDTH` (40): a narrower
  terminal, `COLUMNS=0` included, gets the 40-column output (`fit`; `run` for typer's help).
- **Tables** fit that width: numbers and ids are never broken, cut or ellipsised; free-text columns
  wrap. A table whose numbers and ids cannot fit side by side at that width is printed as records
  instead, one field per line (`header: value`), wrapped. `--wide` prints every table at its natural
  width on one line per row, however wide.
- **Text lines** wrap at spaces to the width (indented continuation lines), unless `--wide`. A number,
  an id or a hash is never broken: a word longer than the width breaks only after a `=` or `,`
  (`key=` / `value`, JSON text), and what is still longer stands whole on a line of its own. A line
  that shows a digest (`digest: <hex>`) is never wrapped (`Output.line(…, whole=True)`), so
  `grep '^digest:'` finds it.
- **JSON** (`--json`): Decimals as exact strings, times as ISO text; one object per command, or one
  per line for streams; nothing else on stdout (notes and progress go to stderr).
- **Progress** bars go to stderr, transient, only when stderr is a terminal and never with `--json`.
- **Errors**: one `error: …` line on stderr and exit 2 (`fail`, `guard`; a time option that cannot
  be read: `parse_time`); a usage error the parser finds (an unknown option, a value of the wrong
  type, a missing option or argument, an extra argument) too: `error: --days: 'abc' is not a valid
  integer` (`run`, the entry point's). Ctrl-C exits 130 quietly.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar
from uuid import UUID

import typer
from rich import box as boxes
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import (  # typer is pinned: its own click, where these live
    BadOptionUsage,
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)

from aggregates.errors import InstructionError, LedgerError

T = TypeVar("T")
WIDE = 100_000  # the console width behind --wide: a row is never wrapped
MIN_WIDTH = 40  # the narrowest output: a narrower terminal (COLUMNS=0 or 5) gets 40 columns
TWELVE = Decimal("1e-12")
DERIVED = ("exposure", "risk", "pnl", "equity", "initial_equity", "final_equity", "external_flows", "apy")
ABSENT = "—"

DbOption = Annotated[str, typer.Option("--db", help="sqlite:///path.db, a path, or postgresql://…")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (Decimals as strings).")]
WideOption = Annotated[bool, typer.Option(
    "--wide", help="Print tables at full width, one line per row, instead of fitting the terminal.")]


def fit(console: Console) -> Console:
    """`console`, made at least `MIN_WIDTH` columns wide: a narrower terminal (`COLUMNS=0` or `5`) gets
    `MIN_WIDTH`-column output rather than numbers split over lines, nothing at all, or a layout that
    cannot end."""
    if console.width < MIN_WIDTH:
        console.width = MIN_WIDTH
    return console


err = fit(Console(stderr=True, soft_wrap=True, highlight=False))


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


def run(app: typer.Typer, name: str = "ledger") -> NoReturn:
    """Run `app` as the command `name` and exit: a usage error the parser finds (an unknown option or
    command, a value of the wrong type, a missing option or argument, an extra argument) is one
    `error: <option>: <what is wrong>` line on stderr and exit 2, like every other user error; `--help`
    prints the help and exits 0 (no arguments: the help, exit 2); Ctrl-C exits 130 quietly. A
    `COLUMNS` below `MIN_WIDTH` counts as `MIN_WIDTH` for every console made from here on (the help's
    too: at COLUMNS=0 it printed nothing)."""
    warnings.showwarning = show_warning
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) < MIN_WIDTH:
        os.environ["COLUMNS"] = str(MIN_WIDTH)
    try:
        code = app(standalone_mode=False, prog_name=name)
    except NoArgsIsHelpError:  # the help is printed when the error is made
        code = 2
    except UsageError as e:
        err.print(f"error: {usage_problem(e)}", highlight=False, markup=False)
        code = 2
    except ClickException as e:
        err.print(f"error: {e.format_message()}", highlight=False, markup=False)
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """A warning (`warnings.warn`, e.g. the config's unknown keys) as one `warning: …` line on stderr."""
    err.print(f"warning: {message}", highlight=False, markup=False)


_EXPECTED = {"int": "integer", "float": "number", "decimal": "number", "bool": "boolean (true or false)"}


def usage_problem(e: UsageError) -> str:
    """A parser's usage error as `<option>: <what is wrong>` (`--days: 'abc' is not a valid integer`)."""
    command = e.ctx.command_path if e.ctx is not None else "ledger"
    if isinstance(e, MissingParameter):
        kind = e.param_type or (e.param.param_type_name if e.param is not None else "parameter")
        return f"{_param_name(e)}: missing (a required {kind} of `{command}`)"
    if isinstance(e, BadParameter):
        errors: list[dict[str, Any]] = getattr(e.__cause__, "errors", list)()
        if errors and "input" in errors[0]:  # typer checks types with pydantic: the value and its type
            value, expected = errors[0]["input"], _EXPECTED.get(str(errors[0]["type"]).split("_")[0])
            what = f"is not a valid {expected}" if expected else _sentence(str(errors[0]["msg"]))
            return f"{_param_name(e)}: {value!r} {what}"
        return f"{_param_name(e)}: {_sentence(e.message)}"
    if isinstance(e, NoSuchOption):
        close = list(e.possibilities or ())  # closest first
        hint = f"did you mean {' or '.join(close)}?" if close else f"`{command} --help` lists the options"
        return f"{e.option_name}: no such option of `{command}`; {hint}"
    if isinstance(e, BadOptionUsage):
        return f"{e.option_name}: {_sentence(e.message.removeprefix(f'Option {e.option_name!r} '))}"
    return f"{command}: {_sentence(e.message)}"


def _param_name(e: BadParameter) -> str:
    """How the user wrote the parameter: its long option (`--days`), or an argument's name (`ID`)."""
    if isinstance(e.param_hint, str):
        return e.param_hint
    param = e.param
    if param is None:
        return "value"
    if param.param_type_name == "option" and param.opts:
        return max(param.opts, key=len)
    return param.display_name_raw


def _sentence(text: str) -> str:
    """A message as the tail of an `error:` line: lower-case start, no final period, one line."""
    text = " ".join(text.split()).rstrip(".")
    return text[:1].lower() + text[1:]


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
    """Derived numbers (equity, P&L, exposure, risk) carry 60 digits inside; keep 12 decimals at most
    (half-even), however large the whole part. Recorded amounts (balances, quantities, prices, fees)
    stay exact."""
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent < -12:  # type: ignore[operator]
            # In a context with room for every digit of the result: the default one (28 digits) cannot
            # hold 1e16 with 12 decimals. Exact apart from the rounding itself, whatever the size.
            room = Context(prec=max(value.adjusted(), 0) + 14, rounding=ROUND_HALF_EVEN)
            return value.quantize(TWELVE, context=room)
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
    wide as `WIDE`). `framed=False`: never framed. A `width` below `MIN_WIDTH` counts as `MIN_WIDTH`.
    Print it with `soft_wrap=True` (`Output.table` does): a number or id longer than the width then
    keeps its own line whole instead of being folded by the console."""
    cols = [col(c) for c in columns]
    cells = [[cell(v) for v in row] for row in rows]
    width = max(width, MIN_WIDTH)
    if title is not None:  # wrapped like any text line, so a long path in it stays whole
        title = "\n".join(wrap(title, None if wide else width, hang=2))
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
    lines: list[str] = title.splitlines() if title else []
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
    """`text` as lines of at most `width` cells (None: unwrapped; below `MIN_WIDTH`: `MIN_WIDTH`),
    broken at spaces (the spacing inside a line is kept). The first line is indented by `indent`, the
    next ones by `hang`. A word too long for its indent is set less indented on a line of its own. A
    word longer than the width breaks only after a `=` or `,` (`key=` / `value`, JSON text): a number,
    an id or a hash is never broken; one longer than the width stands whole on a line of its own."""
    hang = indent if hang is None else hang
    width = None if width is None else max(width, MIN_WIDTH)
    out: list[str] = []
    for n, part in enumerate(text.splitlines() or [""]):
        pad = indent if n == 0 else hang
        if width is None or pad + cell_len(part) <= width:
            out.append(" " * pad + part)
            continue
        line = ""
        for space, word in _words(part, width):
            if space is not None and pad + cell_len(line + space + word) <= width:
                line += space + word
                continue
            if line:
                out.append(" " * pad + line)
                pad = hang
            pad = max(0, min(pad, width - cell_len(word)))
            line = word
        out.append(" " * pad + line)
    return out


def _words(part: str, width: int) -> Iterator[tuple[str | None, str]]:
    """The words of a line, each with the spacing before it (kept inside a line and leading it, dropped
    at a break). A word longer than `width` comes in pieces, each ending after a `=` or a `,` (a
    `key=value` word, JSON text), the first with None (it starts a line), the next with "" (joined
    while they fit): it breaks only there, never inside a number, an id or a hash (they hold neither)."""
    space = ""
    for token in re.findall(r"\s+|\S+", part):
        if token.isspace():
            space = token
            continue
        if cell_len(token) <= width:
            yield space, token
        else:
            for i, piece in enumerate(re.findall(r"[^=,]*[=,]|[^=,]+", token)):
                yield (None if i == 0 else ""), piece
        space = ""


# ---- the output of one command -----------------------------------------------------------------------


class Output:
    """Where a command prints: the terminal width (at least `MIN_WIDTH`; or `--wide`), tables, text
    lines, JSON, progress."""

    def __init__(self, wide: bool = False, as_json: bool = False, console: Console | None = None) -> None:
        self.wide, self.as_json = wide, as_json
        # Made per command, so COLUMNS is read when the command runs (not when the module is imported).
        self.console = fit(console or Console(width=WIDE if wide else None, highlight=False))

    @property
    def width(self) -> int | None:
        return None if self.wide else self.console.width

    def line(self, text: str = "", hang: int = 2, whole: bool = False) -> None:
        """A line of text, wrapped at spaces to the width (continuation lines indented by `hang`);
        `whole`: never wrapped, whatever its length (a `digest: <hex>` or an id line, for grep)."""
        for part in [text] if whole else wrap(text, self.width, hang=hang):
            sys.stdout.write(part + "\n")

    def table(self, title: str | None, columns: Sequence[Col | str], rows: Iterable[Sequence[Any]],
              framed: bool = True) -> None:
        self.console.print(table(title, columns, rows, width=self.console.width, wide=self.wide,
                                 framed=framed), soft_wrap=True)

    def json(self, data: Any) -> None:
        emit(data)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[..., None]]:
        """A transient bar on stderr (only on a terminal, never with --json); yields `update(done,
        total=None, label=None)`."""
        screen = fit(Console(stderr=True))  # made now: whether stderr is a terminal is read when it starts
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
