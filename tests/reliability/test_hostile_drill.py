"""The hostile-input drill: generated hostile instructions, market data, times, store locations and
data files, each fed to the real entry points (the Python API and the CLI in process).

For every case: a typed error (`LedgerError`) or a result whose instruction is in the log (a recorded
rejection, or the command did what it said); from the CLI exit 2 with one `error:` line and no
traceback, and nothing created beside the ledger. After every case: the ledger verifies, the views
equal a rebuild, and nothing acknowledged is missing. The counts (tried / handled) are printed and
kept in the README's reliability section. `-m slow` runs it larger (DRILL_SCALE)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from aggregates.errors import LedgerError
from ledger.app import Ledger
from ledger.cli import app
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_lifecycle, check_rebuild_equals
from replays.verify import verify_chain
from tests.integration import test_lying_data as lying


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    __str__ = __repr__


class BadStrip(str):
    def strip(self, chars: str | None = None) -> str:
        raise RuntimeError("strip refused")


def deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


HOSTILE: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    "1e999999",
    D("1E+1000000"),
    D("1e-999999999"),
    D("NaN"),
    D("sNaN"),
    D("-Infinity"),
    D("-0"),
    0,
    -1,
    10**30,
    1e308,
    "1e-30",
    "0.0000000000000000001",
    "",
    "   ",
    None,
    [],
    {},
    [1, 2],
    deep(5000),
    BadRepr(),
    BadStrip("1"),
    True,
    b"1",
    "١٢٣",
    "abc",
    "x" * 10_000,
    "1_000",
    " 1 ",
    "0x10",
    "1e15",
    "1000000000000001",
    "-5",
]
MARKET = {
    "eth_usd_price": "3000",
    "usdt_usd_price": "1",
    "binance_spot_price": "3000",
    "bybit_eth_perp_price": "3001",
    "weeth_eth_rate": "1.05",
}
SPOT = {
    "venue_type": "cex",
    "venue": "binance",
    "trade_type": "SPOT",
    "pair": "ETH/USDT",
    "side": "BUY",
    "amount": "0.1",
}
LIMIT = {**SPOT, "order_type": "LIMIT", "price": "2900"}
PERP = {
    "venue_type": "cex",
    "venue": "bybit",
    "trade_type": "PERP",
    "pair": "ETH/USDT:USDT",
    "side": "SELL",
    "amount": "0.1",
}
STAKE = {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": "0.1"}
SUPPLY = {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "WEETH", "amount": "0.05"}
MOVE = {
    "venue_type": "transfer",
    "from_venue": "binance",
    "to_venue": "bybit",
    "asset": "USDT",
    "amount": "10",
}
FIELDS = [
    (
        SPOT,
        ("amount", "pair", "side", "venue", "venue_type", "trade_type", "instruction_id", "max_slippage_bps"),
    ),
    (LIMIT, ("price",)),
    (PERP, ("amount",)),
    (STAKE, ("amount", "token", "operation")),
    (SUPPLY, ("amount",)),
    (MOVE, ("amount", "asset", "to_venue", "from_venue")),
]
MARKET_KEYS = (
    "eth_usd_price",
    "usdt_usd_price",
    "binance_spot_price",
    "bybit_eth_perp_price",
    "weeth_eth_rate",
)
MARKET_VALUES: list[Any] = [
    -1,
    0,
    "1e-30",
    "1e999999",
    float("nan"),
    "abc",
    None,
    [1, 2],
    BadRepr(),
    D("1E+1000000"),
    D("1e-999999999"),
    10**30,
]
NOT_MARKETS: list[Any] = ["abc", [1, 2], 5, {1: 2}, {"eth_usd_price": deep(5000)}]
TIMES: list[Any] = [
    10**20,
    -(10**20),
    "abc",
    "2024-13-01",
    float("nan"),
    datetime(2024, 1, 2),
    BadRepr(),
    "2023-01-01T00:00:00Z",
    [],
    "9999-12-31T23:59:59Z",
    True,
]


@dataclass
class Tally:
    tried: int = 0
    handled: int = 0
    misses: list[str] = field(default_factory=list)

    def miss(self, label: str, problem: str) -> None:
        self.misses.append(f"{label}: {problem}"[:300])


def label_of(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} whose repr raises>"
    return text if len(text) < 40 else text[:37] + "..."


def cases() -> Iterator[tuple[str, str, Any, Any]]:
    """(label, kind, instruction or time, market)."""
    for base, names in FIELDS:
        for name in names:
            for value in HOSTILE:
                yield (
                    f"{base['venue_type']}.{name}={label_of(value)}",
                    "instruction",
                    {**base, name: value},
                    MARKET,
                )
    for key in MARKET_KEYS:
        for value in MARKET_VALUES:
            for base in (SPOT, PERP, STAKE):
                yield f"market {key}={label_of(value)}", "instruction", base, {**MARKET, key: value}
    for market in NOT_MARKETS:
        yield f"market_data={label_of(market)}", "instruction", SPOT, market
        yield f"advance_to market={label_of(market)}", "time", "2024-01-01T05:00:00Z", market
    for ts in TIMES:
        yield f"advance_to {label_of(ts)}", "time", ts, MARKET


def engine() -> EventDrivenStrategyEngine:
    built = EventDrivenStrategyEngine(
        {
            "execution_mode": "backtest",
            "ledger": {"url": "memory:", "views": False, "batch": 50},
            "initial_balances": {
                "binance": {"USDT": 100000},
                "bybit": {"USDT": 100000},
                "ethereum": {"ETH": 10},
            },
        }
    )
    asyncio.run(built.advance_to("2024-01-01T00:00:00Z", MARKET))
    return built


def sound(built: EventDrivenStrategyEngine, acknowledged: list[str]) -> str | None:
    """None when the ledger verifies, the views equal a rebuild and every acknowledged id is logged."""
    try:
        built.event_logger.flush()
        logged = {getattr(e, "instruction_id", None) for _n, e in built.ledger.iter_events()}
        missing = [i for i in acknowledged if i not in logged]
        if missing:
            return f"acknowledged but not in the log: {missing[:3]}"
        check_rebuild_equals(built)
        check_lifecycle(built)
        if not verify_chain(built.ledger).ok:
            return "the chain does not verify"
    except Exception as e:
        return f"checks failed: {type(e).__name__}: {str(e)[:200]}"
    return None


def drill_api(tally: Tally, per_engine: int = 40) -> None:
    built, acknowledged, used = engine(), [], 0
    for label, kind, subject, market in cases():
        if used == per_engine:
            built.ledger.close()
            built, acknowledged, used = engine(), [], 0
        used += 1
        tally.tried += 1
        try:
            if kind == "time":
                asyncio.run(built.advance_to(subject, market))
            else:
                result = asyncio.run(built.execute_trade_with_interface(subject, market))
                if not isinstance(result, dict) or not result.get("instruction_id"):
                    tally.miss(label, f"not a result: {label_of(result)}")
                    continue
                acknowledged.append(result["instruction_id"])
        except LedgerError:
            pass
        except BaseException as e:
            tally.miss(label, f"untyped {type(e).__name__}: {label_of(str(e))}")
            continue
        problem = sound(built, acknowledged)
        if problem:
            tally.miss(label, problem)
            built.ledger.close()
            built, acknowledged, used = engine(), [], 0
            continue
        tally.handled += 1
    built.ledger.close()


STORES = [
    "q?evil.db",
    "h#x.db",
    "sqlite:///q?evil.db",
    "sqlite:///h#x.db",
    "q?mode=ro",
    "file:q?mode=ro",
    "%41%42.db",
    "sp ace.db",
    "é.db",
    "adir",
    "missing.db",
    "notes.txt",
    "empty.db",
    "truncated.db",
    "sqlite:///",
    "sqlite://",
    "mysql://x/y",
    "memory:x",
    "",
    "  ",
    "postgresql://nobody@127.0.0.1:1/x",
    "file:x.db?mode=rw",
    "x" * 300 + ".db",
    "adir/",
]
COMMANDS = [["audit", "verify"], ["summary"], ["audit", "events"], ["audit", "anchor"], ["replay", "state"]]


def prepare(folder: Path) -> None:
    """Files a hostile location could reach by accident: `q` and `h` are real ledgers (a path cut at
    `?` or `#` would open them), and things that are not ledgers."""
    for name in ("q", "h"):
        Ledger.open(f"sqlite:///{folder / name}", create=True).close()
        for leftover in folder.glob(f"{name}-*"):  # the WAL of a closed ledger
            leftover.unlink()
    (folder / "adir").mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "empty.db").write_bytes(b"")
    (folder / "truncated.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)


def drill_cli(tally: Tally, folder: Path) -> None:
    prepare(folder)
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for url in STORES:
            for command in COMMANDS:
                label = f"ledger {' '.join(command)} --db {label_of(url)}"
                tally.tried += 1
                before = sorted(p.name for p in folder.iterdir())
                result = runner.invoke(app, [*command, "--db", url])
                after = sorted(p.name for p in folder.iterdir())
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    tally.miss(label, f"traceback: {type(result.exception).__name__}: {result.exception}")
                elif result.exit_code != 2:
                    tally.miss(label, f"exit {result.exit_code}: {result.stdout[:120]!r}")
                elif not result.stderr.startswith("error: ") or result.stderr.count("\n") != 1:
                    tally.miss(label, f"not one error line: {result.stderr[:200]!r}")
                elif after != before:
                    tally.miss(
                        label,
                        f"created {sorted(set(after) - set(before))} removed "
                        f"{sorted(set(before) - set(after))}",
                    )
                else:
                    tally.handled += 1
    finally:
        os.chdir(cwd)


CELLS = [
    "0",
    "-1",
    "1e-30",
    "1e999999",
    "NaN",
    "",
    "abc",
    "inf",
    "-inf",
    "1e13",
    "0x10",
    "١٢٣",
    "1_000",
    "--1",
    "1e-19",
    "\x00",
]
# (file, header lines, columns to corrupt: numbered from 1)
FILES = [
    (lying.SPOT, 0, (1, 2, 3, 4, 5, 6)),
    (lying.PERP, 1, (1, 2, 3, 4, 5)),
    (lying.FUNDING_FILE, 1, (1, 2)),
]


def file_cases(clean: Path) -> Iterator[tuple[str, str, Callable[[list[str]], list[str]]]]:
    """(label, file, how its lines are changed): one hostile cell at a drawn place per value and file,
    then damage to the file's shape."""
    draw = random.Random(15)  # a fixed seed: the same cases every run
    for rel, header, columns in FILES:
        rows = len((clean / rel).read_text().splitlines())
        for text in CELLS:
            line, column = draw.randint(header + 1, rows), draw.choice(columns)

            def cell(lines: list[str], line: int = line, column: int = column, text: str = text) -> list[str]:
                cells = lines[line - 1].split(",")
                cells[column - 1] = text
                return [*lines[: line - 1], ",".join(cells), *lines[line:]]

            yield f"{rel} line {line} column {column} = {text!r}", rel, cell
        yield (
            f"{rel}: a row cut short",
            rel,
            lambda lines, h=header: [*lines[: h + 2], lines[h + 2].rsplit(",", 1)[0], *lines[h + 3 :]],
        )
        yield (
            f"{rel}: a row with an extra cell",
            rel,
            lambda lines, h=header: [*lines[: h + 2], lines[h + 2] + ",1", *lines[h + 3 :]],
        )
        yield (
            f"{rel}: two rows swapped",
            rel,
            lambda lines, h=header: [*lines[: h + 1], lines[h + 2], lines[h + 1], *lines[h + 3 :]],
        )
        yield (
            f"{rel}: a row repeated with other values",
            rel,
            lambda lines, h=header: [*lines[: h + 2], lines[h + 1].replace(".", "1.", 1), *lines[h + 2 :]],
        )
        yield f"{rel}: only commas", rel, lambda lines, h=header: [*lines[: h + 1], ",,,,,,", *lines[h + 1 :]]
        yield f"{rel}: binary garbage", rel, lambda lines: ["\x00\xff\xfe garbage", *lines[1:]]
        if header:
            yield (
                f"{rel}: a header column renamed",
                rel,
                lambda lines: [lines[0].replace(lines[0].split(",")[1], "price"), *lines[1:]],
            )
            yield f"{rel}: the header alone", rel, lambda lines: lines[:1]


def drill_files(tally: Tally, folder: Path) -> None:
    clean = folder / "clean"
    lying.make_clean_slice(clean)
    runner = CliRunner()
    cwd = os.getcwd()
    for n, (label, rel, change) in enumerate(file_cases(clean)):
        tally.tried += 1
        case = folder / f"case{n}"
        data, work = case / "data", case / "work"
        shutil.copytree(clean, data)
        work.mkdir()
        target = data / rel
        target.write_text("\n".join(change(target.read_text().splitlines())) + "\n")
        os.chdir(work)
        try:
            result = runner.invoke(
                app, ["backtest", "--data", str(data), "--db", "run.db", "--report", "rep"]
            )
        finally:
            os.chdir(cwd)
        made = sorted(p.name for p in work.iterdir())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tally.miss(label, f"traceback: {type(result.exception).__name__}: {result.exception}")
        elif result.exit_code == 0:  # the change left a file that is still true: the run must be sound
            ledger = Ledger.open(f"sqlite:///{work / 'run.db'}")
            try:
                if not verify_chain(ledger).ok:
                    tally.miss(label, "ran, and the ledger does not verify")
                else:
                    tally.handled += 1
            finally:
                ledger.close()
        elif (
            result.exit_code != 2 or not result.stderr.startswith("error: ") or result.stderr.count("\n") != 1
        ):
            tally.miss(label, f"exit {result.exit_code}, stderr {result.stderr[:200]!r}")
        elif rel not in result.stderr:
            tally.miss(label, f"the error does not name the file: {result.stderr[:200]!r}")
        elif made:
            tally.miss(label, f"refused but created {made}")
        else:
            tally.handled += 1
        shutil.rmtree(case)


def report(tally: Tally, what: str) -> None:
    print(f"\nhostile drill ({what}): tried {tally.tried}, handled {tally.handled}")
    assert not tally.misses, f"{len(tally.misses)} of {tally.tried} not handled:\n" + "\n".join(
        tally.misses[:60]
    )


def test_hostile_inputs_through_the_python_api() -> None:
    tally = Tally()
    drill_api(tally)
    assert tally.tried >= 500
    report(tally, "Python API")


def test_hostile_data_files_through_the_cli(tmp_path: Path) -> None:
    tally = Tally()
    drill_files(tally, tmp_path)
    assert tally.tried >= 60
    report(tally, "CLI data files")


def test_hostile_store_locations_through_the_cli(tmp_path: Path) -> None:
    tally = Tally()
    drill_cli(tally, tmp_path)
    assert tally.tried >= 100
    report(tally, "CLI store locations")
