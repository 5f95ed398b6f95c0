"""Market-data files that lie (issue 15 point 3): a slice of the shipped Binance files with one cell
corrupted is refused by `ledger backtest --data DIR` with one `error:` line naming the file, the line and
the column, exit 2, and nothing written (no ledger, no report folder); the seed loader refuses the same."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aggregates.errors import DataError, LedgerError
from aggregates.values import FUNDING_RATE, PRICE
from ledger.marketdata import availability, load_folder, load_seed
from ledger.marketdata.bounds import OutOfBounds, read, read_all
from tests.paths import BINANCE, DATA

SPOT = "spot/ETHUSDT-1h-2025-04.csv"  # raw, no header: line N is the candle of hour N-1 of 2025-04-01
PERP = "futures_um/binance_ETHUSDT_perp_1h.csv"  # normalized, header on line 1
FUNDING_FILE = "funding/binance_ETHUSDT_funding_rates.csv"  # normalized, header on line 1
HOURS = 72  # 2025-04-01 00:00 → 04-03 23:00


def _slice(source: Path, target: Path, header: bool, first: str, count: int) -> None:
    """`count` rows of `source` from the row starting with `first` (and its header line) into `target`."""
    lines = source.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(([lines[0]] if header else []) + lines[start:start + count]) + "\n")


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    make_clean_slice(root)
    return root


def make_clean_slice(root: Path) -> None:
    """Three days of real Binance spot, perp and funding, cut from the files under data/binance."""
    _slice(BINANCE / "spot/ETHUSDT-1h-2025-04.csv", root / SPOT, False, "1743465600000000", HOURS)
    _slice(BINANCE / "futures_um/binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv", root / PERP, True,
           "2025-04-01T00:00:00Z", HOURS)
    _slice(BINANCE / "funding/binance_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv", root / FUNDING_FILE,
           True, "2025-04-01T00:00:00Z", 9)


def _set(lines: list[str], line: int, column: int, text: str) -> None:
    """Cell (line, column) of CSV `lines` (both counted from 1) set to `text`."""
    cells = lines[line - 1].split(",")
    cells[column - 1] = text
    lines[line - 1] = ",".join(cells)


def _corrupt(clean: Path, into: Path, rel: str, line: int, column: int, text: str) -> Path:
    """A copy of the clean folder with cell (line, column) of `rel` set to `text`."""
    folder = into / "data"
    shutil.copytree(clean, folder)
    lines = (folder / rel).read_text().splitlines()
    _set(lines, line, column, text)
    (folder / rel).write_text("\n".join(lines) + "\n")
    return folder


def _backtest(cwd: Path, data: Path) -> Any:
    """`ledger backtest --data DATA` in this process, run from `cwd` with a ledger and a report named."""
    from typer.testing import CliRunner

    from ledger.cli import app

    here = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, ["backtest", "--data", str(data), "--db", "run.db", "--report",
                                          "rep"])
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the test fails showing it
    return result


def _refused(cwd: Path, data: Path, *needles: str) -> None:
    result = _backtest(cwd, data)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert not (cwd / "run.db").exists() and not (cwd / "rep").exists(), sorted(os.listdir(cwd))


def test_the_clean_slice_loads(clean: Path) -> None:
    """The slices the cases below corrupt load as they are: spot, perp and funding over the 72 hours."""
    data = load_folder(clean)
    assert len(data.times) == HOURS and len(data.funding) == 9
    assert data.rows[0]["binance_eth_spot_price"] == Decimal("1831.94")  # line 1 of ETHUSDT-1h-2025-04.csv
    assert data.rows[0]["binance_eth_perp_price"] == Decimal("1831.2")


# (case, file, line, column (from 1), text written there, what the error line must say)
CASES = [
    ("zero price on the first row", SPOT, 1, 5, "0", "line 1: close: must be positive, got 0"),
    ("1e-30", SPOT, 1, 5, "1e-30", "line 1: close: at most 18 decimal places for a price, got 1E-30"),
    ("1e999999", SPOT, 1, 5, "1e999999",
     "line 1: close: out of range for a price (at most 1,000,000,000,000 in size), got 1E+999999"),
    ("negative price on the last row", SPOT, HOURS, 5, "-1000", f"line {HOURS}: close: must be positive"),
    ("negative price mid-run", PERP, 30, 5, "-5", "line 30: close: must be positive, got -5"),
    ("zero price mid-run", PERP, 40, 2, "0", "line 40: open: must be positive, got 0"),
    ("funding rate 1e999999", FUNDING_FILE, 5, 2, "1e999999",
     "line 5: funding_rate: out of range for a funding rate (at most 0.05 in size), got 1E+999999"),
    ("funding rate just outside the band", FUNDING_FILE, 3, 2, "-0.0500001",
     "line 3: funding_rate: out of range for a funding rate (at most 0.05 in size), got -0.0500001"),
    ("high below low", PERP, 10, 3, "1000", "line 10: high: 1000 is below low"),
    ("NaN", PERP, 12, 5, "NaN", "line 12: close: expected a finite number, got 'NaN'"),
    ("empty cell", SPOT, 5, 3, "", "line 5: high: empty, expected a price"),
    ("negative volume", SPOT, 7, 6, "-3", "line 7: volume: must not be negative, got -3"),
]


@pytest.mark.parametrize(("rel", "line", "column", "text", "says"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_lying_cell_is_one_error_line_and_nothing_is_written(
    clean: Path, tmp_path: Path, rel: str, line: int, column: int, text: str, says: str,
) -> None:
    """Each corrupted cell: exit 2, one `error:` line naming the file, line and column, no ledger, no
    report folder (before the fix: tracebacks, a partial ledger, or a run to exit 0 on a negative price)."""
    folder = _corrupt(clean, tmp_path, rel, line, column, text)
    (tmp_path / "cwd").mkdir()
    _refused(tmp_path / "cwd", folder, str(folder / rel), says)


def test_a_perp_file_missing_a_column_is_refused_not_skipped(clean: Path, tmp_path: Path) -> None:
    """A perp file without its `low` column was skipped as "not a kline or funding file" and the run went
    on without perps; now its header is refused, naming the missing column."""
    folder = tmp_path / "data"
    shutil.copytree(clean, folder)
    perp = folder / PERP
    rows = [line.split(",") for line in perp.read_text().splitlines()]
    perp.write_text("".join(",".join(r[:3] + r[4:]) + "\n" for r in rows))  # drop column 4, `low`
    (tmp_path / "cwd").mkdir()
    _refused(tmp_path / "cwd", folder, f"{perp}: line 1: low: column missing",
             "timestamp,open,high,low,close")


def test_an_unknown_header_is_refused_as_the_readme_says(clean: Path, tmp_path: Path) -> None:
    """README (market data rules): "a header known as neither a kline nor a funding header" is refused;
    a CSV that only shares a few column names with a known header is named with what it lacks."""
    folder = tmp_path / "data"
    shutil.copytree(clean, folder)
    (folder / "notes.csv").write_text("\n\nwhen,what\n2025-04-01,nothing\n")
    (tmp_path / "cwd").mkdir()
    _refused(tmp_path / "cwd", folder, f"{folder / 'notes.csv'}: line 3: unknown kline or funding header "
             "'when,what'")
    (folder / "notes.csv").write_text("funding_time,funding_rate\n2025-04-01T00:00:00Z,0.0001\n")
    with pytest.raises(DataError, match=r"notes\.csv: line 1: funding_timestamp: column missing"):
        load_folder(folder)


def test_bounds_edges() -> None:
    """The bounds themselves, at their edges: a price 1e12 with 18 places passes and one step past fails;
    a funding rate of exactly ±0.05 passes; trailing zeros are not decimal places."""
    assert read(PRICE, "1000000000000") == Decimal("1e12")
    assert read(PRICE, "0.000000000000000001") == Decimal("1e-18")
    assert read(PRICE, "1.500000000000000000000000") == Decimal("1.5")
    for bad in ("1000000000000.000000000000000001", "0.0000000000000000001", "-0", "1E+1000000000",
                "sNaN", "-Infinity"):
        with pytest.raises(ValueError, match=r"price|positive|finite"):
            read(PRICE, bad)
    assert read(FUNDING_RATE, "0.05") == Decimal("0.05") and read(FUNDING_RATE, "-0.05") == Decimal("-0.05")
    assert read(FUNDING_RATE, "1e-27") == Decimal("1e-27")
    with pytest.raises(ValueError, match="at most 27 decimal places"):
        read(FUNDING_RATE, "1e-28")
    # A whole column at once (the Binance loaders): exponents are exact too; the error says which value.
    assert read_all(FUNDING_RATE, ["-6.52e-06", "1e-27"]) == [Decimal("-0.00000652"), Decimal("1e-27")]
    with pytest.raises(OutOfBounds, match="at most 27 decimal places for a funding rate, got 1E-28") as error:
        read_all(FUNDING_RATE, ["-6.52e-06", "1e-28", "0"])
    assert error.value.index == 1
    assert issubclass(DataError, LedgerError) and issubclass(DataError, ValueError)


# ---- the seed data folder (`--data data`): the same bounds on the rows a window reads -------------------

SEED_SPOT = "seed/market_data/spot_prices/eth_usd/bybit_ETHUSDT_spot_1h_2024-01-01_2025-09-26.csv"
SEED_FUNDING = ("seed/market_data/derivatives/funding_rates/"
                "bybit_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv")
SEED_USDT = "seed/protocol_data/aave/rates/aave_v3_aave-v3-ethereum_USDT_rates_2024-01-01_2025-09-18.csv"
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)


def _seed(tmp_path: Path, rel: str, rows: int, line: int, column: str, text: str | None) -> Path:
    """A seed folder holding the first `rows` data rows of `rel`, with `column` of file line `line` set to
    `text` (unchanged when None)."""
    root = tmp_path / "data"
    lines = (DATA / rel).read_text().splitlines()[: rows + 1]
    if text is not None:
        _set(lines, line, lines[0].split(",").index(column) + 1, text)
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(("rel", "rows", "need", "line", "column", "text", "says"), [
    (SEED_SPOT, 60, "eth_spot:bybit", 20, "close", "0", "line 20: close: must be positive, got 0"),
    (SEED_SPOT, 60, "eth_spot:bybit", 49, "close", "1e999999", "line 49: close: out of range for a price"),
    (SEED_FUNDING, 8, "funding_eth:bybit", 4, "funding_rate", "1e999999",
     "line 4: funding_rate: out of range for a funding rate (at most 0.05 in size)"),
    (SEED_USDT, 4, "aave:usdt", 2, "liquidityIndex", "0", "line 2: liquidityIndex: must be positive, got 0"),
], ids=["zero spot price", "huge spot price on the last row of the window", "huge funding rate",
        "zero AAVE index"])
def test_the_seed_loader_refuses_the_same_lies(
    tmp_path: Path, rel: str, rows: int, need: str, line: int, column: str, text: str, says: str,
) -> None:
    """`load_seed` over 2024-01-01 → 01-03 refuses a lying value in the rows of its window, naming the file,
    line and column (before: a zero price or index went into the run)."""
    root = _seed(tmp_path, rel, rows, line, column, text)
    with pytest.raises(DataError) as error:
        load_seed(root, START, END, [need])
    assert str(error.value).startswith(f"{root / rel}: {says}"), str(error.value)
    clean = _seed(tmp_path / "clean", rel, rows, line, column, None)
    assert len(load_seed(clean, START, END, [need]).times) == 48  # the same slice, uncorrupted, loads


def test_seed_availability_refuses_a_lying_funding_rate_instead_of_dropping_the_venue(tmp_path: Path) -> None:
    """Which venues serve a window (`availability`, asked before a seed backtest loads) counts a venue
    whose funding file lacks a settlement as missing; a rate outside the band is refused instead, so the
    run does not quietly go on without that venue."""
    root = _seed(tmp_path, SEED_FUNDING, 8, 4, "funding_rate", "1e999999")
    with pytest.raises(DataError, match=r"line 4: funding_rate: out of range for a funding rate"):
        availability(root, START, END, ["funding_eth"])
    clean = _seed(tmp_path / "clean", SEED_FUNDING, 8, 4, "funding_rate", None)
    assert availability(clean, START, END, ["funding_eth"]).venues["funding_eth"] == ("bybit",)
