"""The seed system's strategy modes on the real seed data shipped in data/, within the seed's quality gates.

Expected values are recomputed here from the data files themselves (the AAVE USDT index, the funding
files), never captured from a run.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext
from pathlib import Path
from typing import Any

import pytest

from aggregates.values import MONEY
from ledger import testing
from ledger.app import Ledger
from ledger.backtest import BacktestResult, build_config, load_for, run_backtest, seed_overrides
from ledger.marketdata import MarketData
from ledger.strategies import create, recorded
from tests.paths import DATA

ROOT = DATA
USDT_RATES = "seed/protocol_data/aave/rates/aave_v3_aave-v3-ethereum_USDT_rates_2024-01-01_2025-09-18.csv"
WETH_ORACLE = "seed/protocol_data/aave/oracle/WETH_USD_oracle_2024-01-01_2025-09-18.csv"
JUNE, JUNE_10, AUGUST = (datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 10, tzinfo=UTC),
                         datetime(2024, 8, 1, tzinfo=UTC))
HEDGED = {"eth_basis", "btc_basis", "usdt_market_neutral_no_leverage", "usdt_market_neutral"}
# OKX has no ETH perp before 2024-08-01 and no BTC perp at all in the seed data, so the default 40/30/30
# split runs as 40/70 and 30/70: 4/7 = 0.571428571428571428|57… rounded half-even at 18 places ends in 9,
# and 1 - that = 0.428571428571428571 is 3/7 rounded too.
RENORMALISED = {"binance": D("0.571428571428571429"), "bybit": D("0.428571428571428571")}


@dataclass
class Run:
    result: BacktestResult
    strategy: Any
    data: MarketData
    db: Path


def run(name: str, start: datetime, end: datetime, db: Path, **params: Any) -> Run:
    """A mode with its defaults (unless `params`) on the shipped data, as `ledger backtest` runs it."""
    strategy = create(name, **params)
    data = load_for(strategy, data_dir=ROOT, seed=0, start=start, end=end, days=None, fill="previous")
    config = build_config(strategy, data, db=f"sqlite:///{db}", seed=0, overrides=seed_overrides(ROOT),
                          params=recorded(strategy))
    return Run(asyncio.run(run_backtest(config, strategy, data)), strategy, data, db)


@pytest.fixture(scope="module")
def two_months(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """Each mode's 2024-06-01 → 08-01 run with its defaults, run once and shared by the tests below."""
    folder = tmp_path_factory.mktemp("two-months")
    runs: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in runs:
            runs[name] = run(name, JUNE, AUGUST, folder / f"{name}.db")
        return runs[name]

    return get


def usdt_index(day: datetime) -> D:
    with (ROOT / USDT_RATES).open() as f:
        for row in csv.DictReader(f):
            if row["targetDate"].startswith(day.date().isoformat()):
                return D(row["liquidityIndex"])
    raise AssertionError(f"no USDT index for {day.date()}")


def compounded(growth: D, days: D) -> D:
    with localcontext(MONEY) as ctx:
        return ctx.power(growth, D(365) / days) - 1


@pytest.fixture(scope="module")
def lending(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, Path]:
    db = tmp_path_factory.mktemp("lending") / "pl.db"
    return run("pure_lending", JUNE, JUNE_10, db).result, db


def test_pure_lending_equity_is_the_usdt_index_growth_minus_gas(lending: tuple[BacktestResult, Path]) -> None:
    """$100,000 supplied 2024-06-01 -> 06-10: equity = 100,000 x I(06-10)/I(06-01) + the gas reserve left.

    Tolerance: 1e-9 USD. Interest is booked at each daily index step and rounded to 1e-18 per step,
    so the telescoped product can differ from the single ratio by a few 1e-18; nothing else may."""
    result, db = lending
    start, end = usdt_index(JUNE), usdt_index(JUNE_10)
    assert (round(start, 7), round(end, 7)) == (D("1.0701004"), D("1.0720226"))  # the figures
    s = result.summary
    with localcontext(MONEY):
        supplied = D(100_000) * end / start
        # approve + supply at the recorded gas price of 2024-06-01 00:00, with the seed's gas units
        gas_eth = D(55_000 + 250_000) * _gas_gwei("2024-06-01T00:00:00Z") / D(10) ** 9
        assert s["balances"]["ethereum"]["ETH"] == D("0.01") - gas_eth
        reserve = (D("0.01") - gas_eth) * _last_eth_price(db)
        assert abs(s["pnl"]["supply_interest"] - (supplied - D(100_000))) < D("1e-9")
        assert abs(s["final_equity"] - (supplied + reserve)) < D("1e-9")
        assert abs(s["balances"]["ethereum"]["USDT (supplied)"] - supplied) < D("1e-9")
    # The index growth is 7.55 % APY (compounded over the 9 days), as the seed's gate states.
    assert round(compounded(end / start, D(9)), 4) == D("0.0755")


def _gas_gwei(stamp: str) -> D:
    path = ROOT / "seed/blockchain_data/gas_prices/ethereum_gas_prices_2024-01-01_2025-09-26.csv"
    with path.open() as f:
        return next(D(r["gas_price_gwei"]) for r in csv.DictReader(f) if r["timestamp"] == stamp)


def _last_eth_price(db: Path) -> D:
    ledger = Ledger.open(f"sqlite:///{db}")
    try:
        price = None
        for _nid, event in ledger.iter_events():
            market = getattr(event, "market", None)
            if market and "eth_usd_price" in market:
                price = market["eth_usd_price"]
        assert price is not None
        return D(price)
    finally:
        ledger.close()


def test_pure_lending_two_months_is_about_5_96_percent() -> None:
    """2024-06-01 -> 08-01: the USDT index growth compounds to 5.96 % APY (to four decimals)."""
    assert round(compounded(usdt_index(AUGUST) / usdt_index(JUNE), D(61)), 4) == D("0.0596")


@pytest.mark.parametrize("name", ["eth_basis", "btc_basis"])
def test_basis_funding_is_the_recorded_rates_on_the_held_notional(
    name: str, two_months: Callable[[str], Run]
) -> None:
    """Funding received = sum over recorded settlements of -position x mark x rate, recomputed from the
    funding points and the fills; the funding carry alone is inside the seed's 3-30 % basis gate."""
    r = two_months(name)
    base = "ETH" if name == "eth_basis" else "BTC"
    fills = _fills(r.db)
    expected = D(0)
    settlements = 0
    with localcontext(MONEY):
        for point in r.data.funding:
            if point.base != base or point.venue not in ("binance", "bybit") or not JUNE < point.ts <= AUGUST:
                continue
            position = sum((q for venue, ts, q in fills if venue == point.venue and ts <= point.ts), D(0))
            mark = r.data.snapshot_at(point.ts)[f"{point.venue}_{base.lower()}_perp_price"]
            if position:
                expected += -position * mark * point.rate
                settlements += 1
        funding = r.result.summary["pnl"]["funding"]
        assert settlements >= 2 * 180 and abs(funding - expected) < D("1e-9")
        carry = compounded(1 + funding / D(100_000), D(61))
        assert D("0.03") <= carry <= D("0.30"), carry
    if name == "eth_basis":
        assert D("0.03") <= r.result.summary["apy"] <= D("0.30")


def _fills(db: Path) -> list[tuple[str, datetime, D]]:
    ledger = Ledger.open(f"sqlite:///{db}")
    venues: dict[Any, str] = {}
    out = []
    try:
        for _nid, event in ledger.iter_events():
            kind = type(event).__name__
            if kind == "Opened":
                venues[event.originator_id] = event.venue
            elif kind == "OrderFilled" and event.market_type == "perp":
                signed = event.quantity if event.side == "buy" else -event.quantity
                out.append((venues[event.originator_id], event.ts_event, signed))
        return out
    finally:
        ledger.close()


def _recorded_config(db: Path) -> dict[str, Any]:
    ledger = Ledger.open(f"sqlite:///{db}")
    try:
        started = next(e for _n, e in ledger.iter_events() if type(e).__name__ == "SessionStarted")
        return json.loads(started.config)  # type: ignore[no-any-return]
    finally:
        ledger.close()


@pytest.mark.parametrize("name", sorted(HEDGED))
def test_hedged_modes_run_their_default_split_renormalised_without_okx(
    name: str, two_months: Callable[[str], Run]
) -> None:
    """With defaults on the shipped data, 40/30/30 becomes Binance 4/7, Bybit 3/7 (OKX has no perp for
    the window): the weights sum to exactly 1, the notes say so, the session records the effective split
    (so a rerun repeats it), and the shorts sit at Binance and Bybit in that ratio, none at OKX."""
    r = two_months(name)
    base = "BTC" if name == "btc_basis" else "ETH"
    assert r.strategy.hedge_split == RENORMALISED and sum(RENORMALISED.values()) == 1
    assert (f"hedge_split: no OKX {base} perp data for 2024-06-01 → 2024-08-01; the default 40/30/30 split "
            "was renormalised to binance 4/7, bybit 3/7") in r.result.summary["notes"]
    recorded_split = _recorded_config(r.db)["strategy_params"]["hedge_split"]
    assert recorded_split == {"binance": "0.571428571428571429", "bybit": "0.428571428571428571"}
    held: dict[str, D] = {}
    for venue, _ts, qty in _fills(r.db):
        held[venue] = held.get(venue, D(0)) + qty
    assert set(held) == {"binance", "bybit"} and held["binance"] < 0
    # each venue sits within one 0.001 lot of its weight x the last target: 3 x 4/7 T - 4 x 3/7 T = 0
    assert abs(3 * held["binance"] - 4 * held["bybit"]) <= 7 * D("0.001"), held


MODES = ["pure_lending", "btc_basis", "eth_basis", "eth_staking_only", "eth_leveraged",
         "usdt_market_neutral_no_leverage", "usdt_market_neutral"]


@pytest.mark.parametrize("name", MODES)
def test_every_mode_holds_its_limits_and_its_books(
    name: str, two_months: Callable[[str], Run], tmp_path: Path
) -> None:
    """Two months on real data with the default parameters: delta within tolerance after setup, health
    factor and LTV within limits every hour, no liquidation, conservation, no float, a valid lifecycle,
    and deterministic."""
    r = two_months(name)
    result, strategy = r.result, r.strategy
    base = "BTC" if name == "btc_basis" else "ETH"
    if name in HEDGED:
        for ts, exposure in result.exposure[3:]:
            gross = 200 if base == "BTC" else 60  # an upper bound on the units either book holds
            assert abs(exposure.get(base, D(0))) <= strategy.delta_tolerance * gross, (ts, exposure)
    for ts, health in result.health:
        for venue, hf in health.items():
            assert hf >= D("1.05"), (ts, venue, hf)
            if hasattr(strategy, "max_ltv"):
                assert strategy.liquidation_threshold / hf <= strategy.max_ltv + D("0.001"), (ts, hf)
    ledger = Ledger.open(f"sqlite:///{r.db}")
    try:
        testing.check_conservation(ledger)
        testing.check_no_floats(ledger)
        testing.check_lifecycle(ledger)
        kinds = [e.instruction.get("kind") for _n, e in ledger.iter_events()
                 if type(e).__name__ == "InstructionAccepted"]
        assert "LIQUIDATION" not in kinds
    finally:
        ledger.close()
    short = run(name, JUNE, JUNE + timedelta(days=5), tmp_path / "d1.db").result.digest
    assert run(name, JUNE, JUNE + timedelta(days=5), tmp_path / "d2.db").result.digest == short


def test_pure_lending_needs_no_binance_spot(tmp_path: Path) -> None:
    """2025-03-10 → 03-14 crosses Binance ETH spot's missing 00:00 bars (03-12, 03-13, 03-14: see
    data/binance/README.md); pure lending runs without filling anything, its ETH at the Aave WETH/USD
    oracle (the file's 1925.2891 at 2025-03-12 00:00), and earns the USDT index growth."""
    start, end = datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 14, tzinfo=UTC)
    strategy = create("pure_lending")
    data = load_for(strategy, data_dir=ROOT, seed=0, start=start, end=end, days=None)  # fill="error"
    assert not any("spot" in key for key in data.rows[0])
    assert data.snapshot_at(datetime(2025, 3, 12, tzinfo=UTC))["eth_usd_price"] == _oracle("2025-03-12 00")
    config = build_config(strategy, data, db=f"sqlite:///{tmp_path / 'pl.db'}", seed=0,
                          overrides=seed_overrides(ROOT), params=recorded(strategy))
    summary = asyncio.run(run_backtest(config, strategy, data)).summary
    assert any("Aave WETH/USD oracle" in note for note in summary["notes"])
    with localcontext(MONEY):
        interest = D(100_000) * (usdt_index(end) / usdt_index(start) - 1)
    assert abs(summary["pnl"]["supply_interest"] - interest) < D("1e-9")
    # The whole 2024-06-01 → 2025-08-01 window loads as it is (fill="error"), where Binance ETH spot lacks
    # 508 hours; running it takes about 8 s, so only the loading is repeated here.
    year = load_for(create("pure_lending"), data_dir=ROOT, seed=0, start=JUNE,
                    end=datetime(2025, 8, 1, tzinfo=UTC), days=None)
    assert len(year) == 10_225  # 426 days x 24 + the closing hour


def _oracle(hour: str) -> D:
    with (ROOT / WETH_ORACLE).open() as f:
        return next(D(line.split(",")[1]) for line in f if line.startswith(hour))


def _cli(tmp_path: Path, *args: str, command: str = "backtest") -> Any:
    """`ledger backtest` in process on the shipped data (2024-06-01 → 06-03); db and report in tmp_path."""
    from typer.testing import CliRunner

    from ledger.cli import app

    argv = [command, "--db", str(tmp_path / "x.db"), "--report", str(tmp_path / "rep"), "--data", str(ROOT),
            "--start", "2024-06-01", "--end", "2024-06-03", *args] if command == "backtest" else list(args)
    result = CliRunner().invoke(app, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.mark.parametrize(("args", "message"), [
    (("--strategy", "moon_mode"), "strategy: unknown strategy 'moon_mode'"),
    (("--strategy", "eth_leveraged", "--param", "max_ltv=0.97"),
     "--param max_ltv: must be below 0.95, got 0.97"),
    (("--strategy", "eth_leveraged", "--param", "max_loops=2.5"),
     "--param max_loops: expected a whole number, got '2.5'"),
    (("--strategy", "eth_basis", "--param", 'hedge_split={"binance": 0.5, "bybit": 0.4}'),
     "--param hedge_split: weights must sum to 1, got binance 0.5, bybit 0.4 (sum 0.9)"),
    (("--strategy", "btc_basis", "--param", 'hedge_split={"binance": 0.4, "bybit": 0.3, "okx": 0.3}'),
     "--param hedge_split: no OKX BTC perp data for 2024-06-01 → 2024-06-03; pass --param "
     "'hedge_split={\"binance\": 0.57, \"bybit\": 0.43}' (venues with data: binance, bybit)"),
    (("--strategy", "eth_basis", "--param", "delta_tolerance=-0.1"),
     "--param delta_tolerance: must be at least 0, got -0.1"),
    (("--strategy", "pure_lending", "--start", "2023-01-01"), "2023-01-01"),
    (("--strategy", "pure_lending", "--param", "no_such=1"),
     "--param no_such: pure_lending has no parameter"),
    (("--strategy", "eth_leveraged", "--param", "needs=[]"), "--param needs: eth_leveraged has no parameter"),
    (("--strategy", "eth_basis", "--param", "capital=5"), "--param capital: set the capital with --capital"),
])
def test_bad_mode_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Unknown mode, out-of-range or mistyped parameter, weights not summing to 1, a venue without data
    named explicitly, an internal field, a date range outside the data: one `error:` line naming it,
    exit 2, and no ledger file."""
    result = _cli(tmp_path, *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_defaults_run_from_the_cli_and_rerun_identically(tmp_path: Path) -> None:
    """`ledger backtest --strategy eth_basis` with defaults on the shipped data: exit 0, the
    renormalisation in the JSON notes, and `ledger replay rerun` repeats it from the recorded split."""
    out = _cli(tmp_path, "--strategy", "eth_basis", "--fill", "previous", "--json")
    assert out.exit_code == 0, out.stderr
    summary = json.loads(out.stdout)
    assert ("hedge_split: no OKX ETH perp data for 2024-06-01 → 2024-06-03; the default 40/30/30 split was "
            "renormalised to binance 4/7, bybit 3/7") in summary["notes"]
    again = _cli(tmp_path, "replay", "rerun", "--db", str(tmp_path / "x.db"), "--json", command="replay")
    assert again.exit_code == 0, again.stdout + again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["identical"] and rerun["rerun"] == summary["digest"]


def _cells(line: str) -> list[str]:
    """The cells of a framed table row (`│ a │ b │`, the header's `┃ a ┃ b ┃`)."""
    return [cell.strip() for cell in line.replace("┃", "│").strip().strip("│").split("│")]


def test_strategies_lists_every_mode() -> None:
    """`ledger strategies` names all seven seed modes, each in the first cell of one row (one line each
    with --wide)."""
    out = _cli(Path("."), "strategies", command="strategies").stdout
    wide = _cli(Path("."), "strategies", "--wide", command="strategies").stdout
    for name in MODES:
        assert sum(_cells(line)[0] == name for line in out.splitlines() if line.startswith("│")) == 1, name
        assert sum(_cells(line)[0] == name for line in wide.splitlines() if line.startswith("│")) == 1, name


def test_strategies_name_shows_the_parameter_table() -> None:
    """`ledger strategies eth_basis --wide`: a header and one row per parameter with its type, default, range
    and meaning; --json the same as data; internal fields are not listed."""
    out = _cli(Path("."), "strategies", "eth_basis", "--wide", command="strategies")
    assert out.exit_code == 0, out.stderr
    lines = [_cells(line) for line in out.stdout.splitlines() if line.startswith(("┃", "│"))]
    assert lines[0] == ["name", "type", "default", "range", "meaning"]
    rows = {cells[0]: cells for cells in lines[1:]}
    assert list(rows) == ["capital", "spot_share", "hedge_split", "delta_tolerance"]
    assert rows["spot_share"][:4] == ["spot_share", "decimal", "0.5", "[0.05, 0.95]"]
    assert rows["hedge_split"][2] == "binance 0.4, bybit 0.3, okx 0.3"
    assert rows["hedge_split"][3].endswith("sum 1")
    assert rows["delta_tolerance"][3] == "[0, 0.5]" and rows["delta_tolerance"][4].startswith("re-hedge")
    data = json.loads(_cli(Path("."), "strategies", "eth_leveraged", "--json", command="strategies").stdout)
    table = {p["name"]: p for p in data["parameters"]}
    assert table["max_ltv"] == {"name": "max_ltv", "type": "decimal", "default": "0.86", "range": "[0, 0.95)",
                                "meaning": table["max_ltv"]["meaning"]}
    assert table["max_loops"]["type"] == "integer" and table["target_ltv"]["range"] == "[0, max_ltv]"
    assert not {"phase", "loops", "needs", "name", "liquidation_threshold"} & set(table)
    unknown = _cli(Path("."), "strategies", "moon_mode", command="strategies")
    assert unknown.exit_code == 2 and "moon_mode" in unknown.stderr


def test_backtest_help_lists_each_parameter_with_type_default_and_range() -> None:
    """`ledger backtest --help` at 80 columns: one line per parameter under its strategy (name, type,
    default, range), no line wider than 80, the capital as set with --capital, meanings left to
    `ledger strategies NAME`, which it names. Values as the README's mode table and the issue give them."""
    from typer.testing import CliRunner

    from ledger.cli import app

    help_text = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["backtest", "--help"]).stdout
    lines = help_text.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows: dict[str, dict[str, list[str]]] = {}
    strategy = ""
    for line in lines:
        if line.startswith(" ") and line.strip().endswith(":") and " " not in line.strip():
            strategy = line.strip().rstrip(":")
            rows[strategy] = {}
        elif strategy and line.strip() and line.startswith("   "):
            cells = [c for c in line.strip().split("  ") if c.strip()]
            rows[strategy][cells[0]] = [c.strip() for c in cells[1:]]
        elif line.startswith("╭"):
            strategy = ""
    assert set(rows) == {"demo_basis", *MODES}
    assert rows["eth_leveraged"] == {"gas_reserve": ["decimal", "0.05", "[0, 1]"],
                                     "target_ltv": ["decimal", "0.80", "[0, max_ltv]"],
                                     "max_ltv": ["decimal", "0.86", "[0, 0.95)"],
                                     "max_loops": ["integer", "8", "[0, 20]"]}
    assert rows["eth_basis"]["hedge_split"] == ["venue→weight", "binance 0.4, bybit 0.3, okx 0.3",
                                                "≥ 0, sum 1"]
    assert rows["eth_basis"]["delta_tolerance"] == ["decimal", "0.02", "[0, 0.5]"]
    assert rows["pure_lending"] == {"gas_reserve": ["decimal", "0.01", "[0, 1]"]}
    assert rows["demo_basis"]["hedge_venues"] == ["venue list", "bybit,okx", "some of binance, bybit, okx"]
    assert not any("capital" in params for params in rows.values())
    text = " ".join(help_text.split())
    assert "capital (set with --capital): decimal, default 100000, > 0" in text
    assert "`ledger strategies NAME` says what each one means" in text


def _example() -> Any:
    """`examples/seed_modes.py` as a module (its `run(argv, modes)` is what `python examples/…` runs)."""
    import importlib.util

    from tests.paths import REPO

    spec = importlib.util.spec_from_file_location("seed_modes_example", REPO / "examples" / "seed_modes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_seed_modes_example_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    """`python examples/seed_modes.py` with a data folder that does not exist, a 13th month or a 25th
    hour: one `error:` line (no traceback), exit 2, no reports folder."""
    import subprocess
    import sys

    from tests.paths import REPO

    for argv, message in (
        (["--data", "nonexist"], "--data: nonexist is not the seed data folder"),
        (["--start", "2024-13-01"], "--start: expected an ISO time or date, got '2024-13-01'"),
        (["--end", "2024-06-01T25:00"], "--end: expected an ISO time or date"),
    ):
        run = subprocess.run([sys.executable, str(REPO / "examples" / "seed_modes.py"), *argv], cwd=tmp_path,
                             capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert message in run.stderr and run.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_the_seed_modes_example_prints_the_runs_notes_after_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pure_lending over 2024-06-01 → 06-03 with LEDGER_MAX_DAYS=1: its table row, then the notes, among
    them the shortened window and the data's caveat that ETH is valued at the Aave oracle."""
    from ledger.strategies.seed_modes import PureLending

    monkeypatch.setenv("LEDGER_MAX_DAYS", "1")
    example = _example()
    assert example.run(["--data", str(ROOT), "--start", "2024-06-01", "--end", "2024-06-03", "--reports",
                        str(tmp_path)], modes=[PureLending]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| `pure_lending` |"))
    notes = lines[lines.index("Notes:"):]
    assert lines.index("Notes:") > row
    assert any(n.startswith("- pure_lending: LEDGER_MAX_DAYS=1: the window was shortened to "
                            "2024-06-01T00:00:00+00:00 → 2024-06-02T00:00:00+00:00") for n in notes), notes
    assert any(n.startswith("- pure_lending: eth_usd_price: the Aave WETH/USD oracle") for n in notes), notes
    assert (tmp_path / "pure_lending" / "report.md").exists()
