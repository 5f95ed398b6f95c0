"""Output that fits: every command that prints data fits 80 columns without cutting a number or an id,
prints its full-width layout with --wide, and prints clean JSON with --json (ledger.cli_output)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Context
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ledger.cli import app
from tests.integration.live_log import T0, build_live_log

PRICE = D("3001.123456789012345678")  # 18 decimals
QUANTITY = D("0.123456789012345678")
FEE = D("0.000000000000000001")
NARROW = {"COLUMNS": "80"}


class Run:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self) -> Any:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, self.stdout  # one object, nothing else on stdout
        return json.loads(lines[0])


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Run:
    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def narrow(*args: str | Path, code: int = 0, width: int = 80) -> str:
    """The command at COLUMNS=80 (or `width`): no line longer than that but a single word (a path, an id,
    a digest: never broken, it stands whole on a line of its own) or the `digest: <hex>` line (never
    wrapped), nothing cut with an ellipsis."""
    run = cli(*args, env={"COLUMNS": str(width)})
    assert run.code == code, (args, run.stdout, run.stderr)
    long = [line for line in run.stdout.splitlines()
            if len(line) > width and len(line.split()) > 1 and not line.startswith("digest: ")]
    assert not long, (args, long)
    assert "…" not in run.stdout
    return run.stdout


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-made live log (tests/integration/live_log.py) plus one fill whose price, quantity and fee
    carry 18 decimals."""
    from ledger.app import Ledger

    path = tmp_path_factory.mktemp("output") / "live.db"
    build_live_log(path)
    ledger = Ledger.open(path, synchronous="NORMAL")
    venue = ledger.venue("main", "binance")
    ts = T0 + timedelta(hours=2)
    instruction = {"kind": "ORDER", "instrument": "ETH/USDT", "market_type": "spot", "side": "buy",
                   "amount": str(QUANTITY), "wallet": "spot"}
    venue.record_accepted("precise-1", instruction, {"eth_usd_price": PRICE}, ts)
    venue.record_submitted("precise-1", "c-precise-1", ts)
    venue.record_fill("precise-1", "t-precise", "spot", "ETH/USDT", "buy", QUANTITY, PRICE, FEE, "USDT", ts,
                      "taker", "spot")
    ledger.save(venue)
    ledger.close()
    return path


@pytest.fixture(scope="module")
def edited(live: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the live log whose precise fill says another price (for `replay diff`)."""
    copy = tmp_path_factory.mktemp("edited") / "edited.db"
    shutil.copy(live, copy)
    con = sqlite3.connect(copy)
    nid, state = con.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE '%OrderFilled' "
                             "ORDER BY rowid DESC LIMIT 1").fetchone()
    body = msgspec.json.decode(state)
    body["price"] = str(PRICE + D("0.000000000000000001"))
    con.execute("UPDATE stored_events SET state=? WHERE rowid=?", (msgspec.json.encode(body), nid))
    con.commit()
    con.close()
    return copy


# Inside the value bounds (docs/values.md: amounts <= 1e15, prices <= 1e12, 18 places), beyond 28 digits.
BIG_FILL = D("100000000001")  # the second fill's price: 1e11 + 1
FEE_A = D("10000000000.123456789012345678")  # 29 digits: 10 % of a 1e11 notional, to the wei
FEE_B = D("10000000000.123456789012345679")


def _big_log(path: Path, deposit: D, fee: D) -> None:
    """A log beyond the default 28-digit Decimal context: `deposit` USDT at binance, then a buy of 1 ETH
    at 1e11 and 2 ETH at 1e11 + 1, each with `fee` USDT, accepted with an ETH mark of 1e11."""
    from aggregates.ids import client_order_id, instruction_id
    from aggregates.session import Session
    from aggregates.venue import VenueLedger
    from ledger.app import Ledger, config_digest

    config = '{"strategy":"big"}'
    ledger = Ledger.open(path, create=True, synchronous="NORMAL")
    ledger.start_session(Session.start("big", "backtest", config, config_digest(config), "scripted", "-", 0,
                                       "test", T0))
    venue = VenueLedger.open("main", "binance", "cex", T0)
    venue.record_deposit("seed", "spot", "USDT", deposit, T0)
    buy = instruction_id("big", 1)
    venue.record_accepted(buy, {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "3",
                                "wallet": "spot"}, {"eth_usd_price": D("1e11")}, T0)
    venue.record_submitted(buy, client_order_id(buy), T0)
    venue.record_fill(buy, "t1", "spot", "ETH/USDT", "buy", D(1), D("1e11"), fee, "USDT", T0)
    venue.record_fill(buy, "t2", "spot", "ETH/USDT", "buy", D(2), BIG_FILL, fee, "USDT", T0)
    ledger.save(venue)
    ledger.end_session("completed", T0)
    ledger.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two such logs: A (1e14 USDT deposited, fee FEE_A) and B (2e14, FEE_B)."""
    folder = tmp_path_factory.mktemp("big")
    _big_log(folder / "a.db", D("1e14"), FEE_A)
    _big_log(folder / "b.db", D("2e14"), FEE_B)
    return folder / "a.db", folder / "b.db"


def test_summary_and_state_fit_80_columns_with_every_amount_whole(live: Path) -> None:
    """Balances, positions, exposure and P&L: at 80 columns every amount the JSON holds appears whole
    in the text (a USDT balance with 36 decimals included); --wide keeps each row on one line."""
    data = cli("summary", "--db", live, "--json").json()
    text = narrow("summary", "--db", live)
    words = text.replace("│", " ").split()
    usdt = D(data["balances"]["USDT"])
    assert -usdt.as_tuple().exponent == 36  # the fill's quantity x price, kept exact
    for value in (*data["balances"].values(), *data["exposure"].values(), *data["pnl"].values()):
        assert format(D(value), "f") in words, value
    for p in data["positions"]:
        assert p["quantity"] in words and format(D(p["avg_entry"]), "f") in words
    assert len(D(data["pnl"]["total"]).as_tuple().digits) <= 12 + 6  # derived numbers: 12 decimals
    wide = cli("summary", "--db", live, "--wide", env=NARROW)
    # (spot is inventory now: no position row is wider than 80 columns here) no row is wrapped
    assert len(wide.stdout.splitlines()) <= len(text.splitlines())
    assert any(str(usdt) in line and "USDT" in line for line in wide.stdout.splitlines())
    state = cli("replay", "state", "--db", live, "--no-cache", "--json").json()
    shown = narrow("replay", "state", "--db", live, "--no-cache").replace("│", " ").split()
    for venue, assets in state["balances"].items():
        for amount in assets.values():
            assert format(D(amount), "f") in shown, (venue, amount)
    assert state["pnl"] == data["pnl"] and state["equity"] == data["equity"]  # one rule for both


def test_audit_commands_fit_80_columns_and_show_the_18_decimal_price(live: Path) -> None:
    """events, instruction and verify at 80 columns; the fill's price, quantity and fee appear whole."""
    events = narrow("audit", "events", "--db", live, "--instruction", "precise-1").split()
    for value in (f"price={PRICE}", f"quantity={QUANTITY}", "fee=0.000000000000000001"):
        assert value in events, value
    story = narrow("audit", "instruction", "precise-1", "--db", live)
    average = PRICE.quantize(D("1e-12"))  # a derived number (notional / quantity): 12 decimals
    words = story.split()
    assert f"filled {QUANTITY} at {average} on average; fees 0.000000000000000001 USDT" in " ".join(words)
    assert f"@ {PRICE}, fee 0.000000000000000001 USDT" in " ".join(words)  # the fill itself: exact
    data = cli("audit", "instruction", "precise-1", "--db", live, "--json").json()
    assert data["average_price"] == str(average) and data["filled"] == str(QUANTITY)
    narrow("audit", "verify", "--db", live)
    assert cli("audit", "verify", "--db", live, "--json").json()["ok"] is True
    anchor = cli("audit", "anchor", "--db", live, "--json").json()
    assert anchor == cli("audit", "anchor", "--db", live).json() and anchor["events"] > 10
    lines = cli("audit", "events", "--db", live, "--json").stdout.splitlines()
    assert all(isinstance(json.loads(line)["notification_id"], int) for line in lines)


def test_diff_fits_80_columns_one_field_per_line_and_wide_side_by_side(live: Path, edited: Path) -> None:
    """`replay diff`: at 80 columns both prices appear whole; --wide puts them side by side on one
    line (the old layout cut values at 44 characters with "…")."""
    text = narrow("replay", "diff", live, edited, code=1)
    changed = str(PRICE + D("0.000000000000000001"))
    assert str(PRICE) in text.split() and changed in text.split()
    wide = cli("replay", "diff", live, edited, "--wide", env=NARROW)
    price = next(line for line in wide.stdout.splitlines() if " price " in line)
    assert str(PRICE) in price and changed in price and price.index(str(PRICE)) < price.index(changed)
    data = cli("replay", "diff", live, edited, "--json", env=NARROW)
    assert data.code == 1 and data.json()["divergence"]["fields"] == [
        {"field": "price", "a": str(PRICE), "b": changed}]


def test_shadow_fits_80_columns(live: Path, tmp_path: Path) -> None:
    """`replay shadow`: each instruction on a line, its live and simulated outcomes wrapped below."""
    text = narrow("replay", "shadow", "--db", live, "--out", tmp_path / "r")
    data = cli("replay", "shadow", "--db", live, "--out", tmp_path / "r", "--json").json()
    assert len(data["instructions"]) >= 10
    for row in data["instructions"]:
        assert any(line.split()[:2] == [str(row["seq"]), row["venue"]] for line in text.splitlines())
    assert "live: FILLED 1 @ 3003; sim: FILLED 1 @ 3001.5" in text


def test_reconcile_table_fits_80_columns(live: Path) -> None:
    """The reconciliation table (from a report in the live backend's shape): venues on a line each,
    differences whole below; --wide: one row per venue."""
    from ledger.cli_live import _print_report
    from ledger.cli_output import Output

    def _row(venue: str, **values: Any) -> dict[str, Any]:  # the shape of ledger.live._row
        return {"venue": venue, "resolved": [], "unresolved": [], "fills_recorded": 0, "open_orders": 0,
                "foreign_open_orders": 0, "balances": [], "positions": [], "error": "", **values}

    balances = [{"wallet": "spot", "asset": "USDT", "difference": D("-0.000000000000000001")},
                {"wallet": "futures", "asset": "ETH", "difference": D("12345.678901234567")}]
    report = {
        "binance": _row("binance", resolved=["a", "b"], fills_recorded=3, open_orders=2,
                        foreign_open_orders=1, balances=balances,
                        positions=[{"symbol": "ETH/USDT:USDT", "difference": D("0.5")}]),
        "okx": _row("okx", unresolved=["0f0e1d2c-3b4a-5968-8776-a5b4c3d2e1f0"],
                    error="okx_passphrase missing"),
    }
    for width, wide in ((80, False), (80, True)):
        console = Console(width=100_000 if wide else width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        _print_report(Output(wide, console=console), report)
        text = console.export_text()
        console.file.close()
        joined = " ".join(text.split())
        assert "…" not in text
        for value in ("spot/USDT -0.000000000000000001", "futures/ETH +12345.678901234567",
                      "ETH/USDT:USDT +0.5", "okx_passphrase missing"):
            assert value in joined, (wide, value)
        if wide:
            assert any("binance" in line and "spot/USDT" in line for line in text.splitlines())
        else:
            assert max(len(line) for line in text.splitlines()) <= 80, text


def test_every_command_that_prints_data_has_json(live: Path, tmp_path: Path) -> None:
    """--json on digest, demo, rebuild, replay index, strategies: one JSON object on stdout."""
    digest = cli("digest", "--db", live).stdout.strip()
    assert cli("digest", "--db", live, "--json").json() == {"digest": digest}
    demo = cli("demo", "--db", tmp_path / "demo.db", "--json").json()
    assert demo["verified"] is True and isinstance(demo["equity"], str)
    narrow("demo", "--db", tmp_path / "demo2.db")
    copy = tmp_path / "copy.db"
    shutil.copy(live, copy)
    events = cli("audit", "anchor", "--db", copy).json()["events"]
    assert cli("rebuild", "--db", copy, "--json").json() == {"rebuilt": events}
    index = cli("replay", "index", "--db", copy, "--json").json()
    assert index["cache"] == f"{copy}.states" and index["notification"] > 0
    assert "demo_basis" in cli("strategies", "--json").json()


# ---- backtest and strategies -------------------------------------------------------------------------

BALANCE_EVENTS = {"Opened", "FundsDeposited", "InstructionAccepted", "OrderSubmitted", "OrderFilled",
                  "InstructionCompleted", "FundingSettled"}


def _bybit_usdt(db: Path) -> D:
    """Bybit's USDT summed here from the stored events: deposits plus funding minus fees. Every Bybit fill
    is a perp sell that opens the short (no realised P&L, no USDT moved by the fill itself) and nothing
    else happens at Bybit in a one-day demo run (checked)."""
    from ledger.app import Ledger

    book = Ledger.open(db)
    try:
        events = [e for _n, e in book.iter_events()]
    finally:
        book.close()
    venue = {e.originator_id: e.venue for e in events if type(e).__name__ == "Opened"}
    mine = [e for e in events if venue.get(e.originator_id) == "bybit"]
    assert {type(e).__name__ for e in mine} <= BALANCE_EVENTS, {type(e).__name__ for e in mine}
    fills = [e for e in mine if type(e).__name__ == "OrderFilled"]
    assert fills and all(e.market_type == "perp" and e.side == "sell" for e in fills)
    credits = sum((D(e.amount) for e in mine
                   if type(e).__name__ in ("FundsDeposited", "FundingSettled") and e.asset == "USDT"), D(0))
    return credits - sum((D(e.fee) for e in fills if e.fee_asset == "USDT"), D(0))


def test_backtest_keeps_recorded_balances_exact_and_rounds_derived_numbers(tmp_path: Path) -> None:
    """`ledger backtest` (one synthetic day): Bybit's USDT balance carries more than 12 decimals (a fee with
    14); it appears exactly in --json and in the 80-column tables (it was rounded to 12 decimals in both).
    Derived numbers (P&L lines, attribution, equity, APY) carry at most 12 decimals, the same digits in the
    tables as in the JSON. --wide prints the positions table framed, one line per position."""
    data = cli("backtest", "--days", "1", "--db", tmp_path / "j.db", "--report", tmp_path / "rj",
               "--json").json()
    expected = _bybit_usdt(tmp_path / "j.db")
    assert -expected.as_tuple().exponent > 12, expected  # else the run no longer tests the rule
    assert data["balances"]["bybit"]["USDT"] == format(expected, "f")
    derived = [*data["pnl"].values(), *data["exposure"].values(),
               data["initial_equity"], data["final_equity"]]
    assert data["apy"] is None  # a one-day window is not annualised
    assert all(-D(v).as_tuple().exponent <= 12 for v in derived), derived
    assert any(-D(v).as_tuple().exponent == 12 for v in data["pnl"].values())  # rounding did happen

    text = narrow("backtest", "--days", "1", "--db", tmp_path / "t.db", "--report", tmp_path / "rt")
    words = text.replace("│", " ").split()
    assert format(_bybit_usdt(tmp_path / "t.db"), "f") in words
    for venue, assets in data["balances"].items():
        for asset, amount in assets.items():
            assert amount in words, (venue, asset, amount)
    for value in (*data["pnl"].values(), *data["exposure"].values()):
        assert value in words, value
    for p in data["positions"]:
        assert {p["quantity"], p["avg_entry"], p["realised"], p["fees"]} <= set(words), p

    wide = cli("backtest", "--days", "1", "--db", tmp_path / "w.db", "--report", tmp_path / "rw", "--wide",
               env=NARROW)
    assert wide.code == 0, wide.stderr
    rows = [line for line in wide.stdout.splitlines() if "ETH/USDT:USDT" in line]
    assert len(rows) == len([p for p in data["positions"] if p["instrument"] == "ETH/USDT:USDT"]) == 2
    assert all(len(line) > 80 and line.startswith("│") for line in rows), rows
    for p in (p for p in data["positions"] if p["instrument"] == "ETH/USDT:USDT"):
        assert any(p["venue"] in line and p["fees"] in line for line in rows), p


def test_strategies_fit_80_columns_and_wide_keeps_a_parameter_on_one_line() -> None:
    """`ledger strategies` and `ledger strategies NAME` for every strategy: at 80 columns no line is longer
    and every name, default and range appears whole, every word of a meaning too; --wide puts each
    parameter on one line; --json is one object as before."""
    from ledger.strategies import STRATEGIES, params_of

    listing = narrow("strategies")
    assert [line.split()[1] for line in listing.splitlines() if line.startswith("│ ") and
            line.split()[1] in STRATEGIES] == sorted(STRATEGIES)
    assert cli("strategies", "--json").json() == {k: f.description for k, f in STRATEGIES.items()}
    for name, factory in sorted(STRATEGIES.items()):
        declared = params_of(factory)
        data = cli("strategies", name, "--json").json()
        assert data["name"] == name and data["description"] == factory.description
        assert [p["name"] for p in data["parameters"]] == [p.name for p in declared]
        assert all(set(p) == {"name", "type", "default", "range", "meaning"} for p in data["parameters"])
        text = narrow("strategies", name)
        lines = text.splitlines()
        for p in data["parameters"]:
            for value in (p["name"], p["default"], p["range"]):
                assert any(value in line for line in lines), (name, value)
            assert set(p["meaning"].split()) <= set(text.split()), (name, p["meaning"])
        wide = cli("strategies", name, "--wide", env=NARROW).stdout.splitlines()
        for p in data["parameters"]:
            assert any(all(p[k] in line for k in ("name", "type", "default", "range", "meaning"))
                       for line in wide), (name, p)


# ---- hostile widths and sizes ------------------------------------------------------------------------


def _cap_memory() -> None:  # the child's address space: 512 MB (it needs about 70)
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


def test_a_zero_or_tiny_width_prints_the_40_column_layout_and_ends(live: Path) -> None:
    """COLUMNS=0 never ended (8.5 GB seen) and COLUMNS=5 split numbers over lines ("7.371" / "44799"):
    a width below 40 prints exactly what COLUMNS=40 prints, every amount whole; at 40 no line is longer
    but one word standing alone (an amount with 36 decimals) and the `digest:` line, never wrapped."""
    def child(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ledger.cli", *map(str, args)],
                              env={**os.environ, "COLUMNS": "0"}, capture_output=True, text=True,
                              timeout=120, preexec_fn=_cap_memory, cwd=Path(__file__).resolve().parents[2])

    zero = child("summary", "--db", live)
    assert zero.returncode == 0, zero.stderr[-2000:]
    absent = live.with_name("absent.db")
    missing = child("summary", "--db", absent)  # its error line was not printed at all
    assert missing.returncode == 2 and missing.stderr == f"error: no ledger database at {absent}\n"
    forty = narrow("summary", "--db", live, width=40)
    assert zero.stdout == forty
    data = cli("summary", "--db", live, "--json").json()
    words = forty.replace("│", " ").split()
    for value in (*data["balances"].values(), *data["exposure"].values(), *data["pnl"].values()):
        assert format(D(value), "f") in words, value
    assert f"digest: {data['digest']}" in forty.splitlines()
    for args in (["summary", "--db", live], ["strategies"], ["strategies", "eth_basis"],
                 ["audit", "events", "--db", live, "--limit", "12"]):
        expected = narrow(*args, width=40)
        for width in ("0", "5", "39"):
            assert cli(*args, env={"COLUMNS": width}).stdout == expected, (args, width)


def test_amounts_beyond_28_digits_print_exactly_in_summary_state_and_diff(big: tuple[Path, Path]) -> None:
    """A 1e14 balance, 18-decimal fees (32 digits): `summary`, `replay state --at N` and `replay diff` crashed
    (InvalidOperation rounding in the 28-digit default context) and `diff` would round B - A. Recorded
    amounts print exactly; derived ones (equity, average entry) rounded half-even to 12 decimals."""
    a, b = big
    # By hand. A's USDT: 1e14 - 1e11 - 2 x (1e11 + 1) - 2 x FEE_A
    #   = 99700000000000 - 2 - 20000000000.246913578024691356
    usdt_a = D("99679999999997.753086421975308644")
    usdt_b = D("199679999999997.753086421975308642")  # 2e14 - 3e11 - 2 - 2 x FEE_B
    wide = Context(prec=100)
    assert usdt_a == wide.subtract(D("99700000000000") - 2, wide.multiply(2, FEE_A))
    assert usdt_b == wide.subtract(D("199700000000000") - 2, wide.multiply(2, FEE_B))
    # equity: USDT + 3 ETH at the 1e11 mark; 12 decimals of .753086421975|308644
    equity_a, equity_b = "99979999999997.753086421975", "199979999999997.753086421975"

    data = cli("summary", "--db", a, "--json").json()
    assert data["balances"]["USDT"] == str(usdt_a) and data["balances"]["ETH"] == "3"
    assert data["equity"] == equity_a and data["positions"] == []  # spot is inventory, not a position
    text = narrow("summary", "--db", a).replace("│", " ").split()
    assert {str(usdt_a), equity_a} <= set(text)
    events = cli("audit", "anchor", "--db", a).json()["events"]
    state = cli("replay", "state", "--db", a, "--at", str(events), "--no-cache", "--json").json()
    assert state["balances"]["binance"]["USDT"] == str(usdt_a) and state["equity"] == equity_a
    assert equity_a in narrow("replay", "state", "--db", a, "--at", str(events), "--no-cache").split()

    diff = " ".join(narrow("replay", "diff", a, b, code=1, width=200).replace("│", " ").split())
    fees_a, fees_b = "20000000000.246913578024691356", "20000000000.246913578024691358"
    assert f"USDT {fees_a} {fees_b} 0.000000000000000002" in diff  # summed exactly (28 digits: equal)
    assert f"binance spot USDT {usdt_a} {usdt_b} 99999999999999.999999999999999998" in diff
    assert f"equity: A {equity_a}, B {equity_b}, B - A 100000000000000.000000000000 USD" in diff
