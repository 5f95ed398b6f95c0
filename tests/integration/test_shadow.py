"""`ledger replay shadow`: live fills against the simulator's on a hand-made live log whose live prices sit
at known offsets; the report folder; JSON; bad input; the live database is never written."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import struct
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ledger.cli_shadow import shadow
from ledger.demo import run_demo
from tests.integration.live_log import build_empty_live_log, build_live_log

BPS = D(10_000)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _app() -> typer.Typer:
    """The command mounted the way `ledger.cli` mounts it: `ledger replay shadow`."""
    app = typer.Typer(add_completion=False)
    replay = typer.Typer()
    replay.command("shadow")(shadow)
    app.add_typer(replay, name="replay")
    return app


def run(*args: str) -> Any:
    return CliRunner().invoke(_app(), ["replay", "shadow", *args])


def sim_price(ref: str, bps: str, side: str) -> D:
    """The simulator's fill: the reference moved by the execution cost against the taker."""
    sign = 1 if side == "buy" else -1
    return D(ref) * (1 + sign * D(bps) / BPS)


def bps_gap(live: D, sim: D, ref: str, side: str) -> D:
    """Signed so that positive means live was worse for the desk (paid more, received less)."""
    sign = 1 if side == "buy" else -1
    return sign * (live - sim) / D(ref) * BPS


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("live") / "live.db"
    return path, build_live_log(path)


@pytest.fixture(scope="module")
def report(live: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    result = run("--db", str(live[0]), "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    data["by_label"] = {label: next(r for r in data["instructions"] if r["instruction_id"] == iid)
                        for label, iid in live[1].items()}
    return data


def test_each_cex_order_reports_its_known_price_fee_and_fill_difference(report: dict[str, Any]) -> None:
    """Every CEX order shows the price gap in bps, the fee gap and the fill outcome computed by hand."""
    rows = report["by_label"]
    # spot buy: sim 3000 x 1.0005 = 3001.5, fee 0.1 %; live 3003 (ref x 1.0010), fee 3.003.
    sim = sim_price("3000", "5", "buy")
    assert sim == D("3001.5")
    assert D(rows["spot_buy"]["price_diff_bps"]) == bps_gap(D("3003"), sim, "3000", "buy") == D(5)
    assert D(rows["spot_buy"]["fee_diff"]["USDT"]) == D("3.003") - sim * D("0.001")
    assert D(rows["spot_buy"]["cost_diff"]) == D("1.5")
    assert rows["spot_buy"]["fill"] == "both_filled"
    # perp sell in two fills: VWAP (1.5 x 3007.5 + 0.5 x 3006.664) / 2 against 3010 x 0.9995.
    vwap = (D("1.5") * D("3007.5") + D("0.5") * D("3006.664")) / 2
    sim = sim_price("3010", "5", "sell")
    assert D(rows["perp_sell"]["live"]["price"]) == vwap == D("3007.291")
    assert rows["perp_sell"]["live"]["fills"] == 2
    assert D(rows["perp_sell"]["price_diff_bps"]) == bps_gap(vwap, sim, "3010", "sell") == D(4)
    assert D(rows["perp_sell"]["fee_diff"]["USDT"]) == D("2.48") + D("0.83") - 2 * sim * D("0.00055")
    assert D(rows["perp_sell"]["cost_diff"]) == (sim - vwap) * 2 == D("2.408")
    # partial: live sold 0.4 of 1 then cancelled; sim sold all of it.
    sim = sim_price("3005", "5", "sell")
    assert D(rows["partial"]["price_diff_bps"]) == bps_gap(D("3002.8965"), sim, "3005", "sell") == D(2)
    assert (rows["partial"]["fill"], rows["partial"]["live"]["filled"], rows["partial"]["sim"]["filled"]) == (
        "partial", "0.4", "1")
    assert rows["partial"]["live"]["status"] == "CANCELLED"
    assert D(rows["partial"]["fee_diff"]["USDT"]) == D("0.6005793") - sim * D("0.0005")
    # the venue refused it; the simulator (okx perps 3 bps) filled it.
    failed = rows["failed"]
    assert (failed["fill"], failed["live"]["status"], failed["live"]["code"]) == (
        "sim_only", "FAILED", "insufficient_margin")
    assert D(failed["sim"]["price"]) == sim_price("3012", "3", "buy") == D("3012.9036")
    assert failed["price_diff_bps"] is None
    assert D(failed["fee_diff"]["USDT"]) == -D("0.5") * D("3012.9036") * D("0.0005")
    # a resting limit: neither side filled, the simulated twin was cancelled with the live one.
    resting = rows["resting"]
    assert (resting["fill"], resting["live"]["status"], resting["sim"]["status"]) == (
        "both_unfilled", "CANCELLED", "CANCELLED")
    assert resting["fee_diff"] == {}
    # live better than the model: 60012 against 60030 is -3 bps.
    sim = sim_price("60000", "5", "buy")
    assert D(rows["btc_buy"]["price_diff_bps"]) == bps_gap(D("60012"), sim, "60000", "buy") == D(-3)
    assert D(rows["btc_buy"]["fee_diff"]["USDT"]) == D("6.0012") - D("0.1") * sim * D("0.001")
    # the snapshot had no BTC price: the simulator rejects, live filled.
    no_price = rows["no_price"]
    assert (no_price["fill"], no_price["sim"]["status"], no_price["sim"]["code"]) == (
        "live_only", "REJECTED", "no_price")
    assert D(no_price["fee_diff"]["USDT"]) == D("1.525")


def test_on_chain_instructions_compare_gas_and_amount_out_and_transfers_compare_fees(
    report: dict[str, Any],
) -> None:
    """Gas is live minus simulated ETH, amount out live minus simulated, transfer fee live minus sim."""
    rows = report["by_label"]
    gwei = D(10) ** 9
    wei = D(10) ** 18
    supply = rows["supply"]  # sim: approve 46000 + supply 210000 gas at 20 gwei
    assert D(supply["sim"]["gas_fee"]) == (46_000 + 210_000) * 20 * gwei / wei
    assert D(supply["gas_diff"]) == (45_000 + 180_000 - 46_000 - 210_000) * 20 * gwei / wei == D("-0.00062")
    assert D(supply["amount_out_diff"]) == 0
    stake = rows["stake"]  # sim: 90000 gas at 20 gwei, 2 / 1.25 receipts
    assert D(stake["sim"]["amount_out"]) == D(2) / D("1.25")
    assert D(stake["gas_diff"]) == (95_000 * 22 - 90_000 * 20) * gwei / wei == D("0.00029")
    assert D(stake["amount_out_diff"]) == D("1.599") - D("1.6")
    assert stake["live"]["out_asset"] == stake["sim"]["out_asset"] == "WEETH"
    transfer = rows["transfer"]
    assert D(transfer["fee_diff"]["USDT"]) == D(1) - D("0.8")
    assert transfer["fill"] == "both_filled"
    assert (transfer["live"]["status"], transfer["sim"]["status"]) == ("COMPLETED", "IN_TRANSIT")


def test_totals_give_mean_median_fee_and_fill_counts(report: dict[str, Any]) -> None:
    """Mean and median over the four priced orders, fee and gas sums, and every fill-outcome count."""
    t = report["totals"]
    gaps = sorted([D(5), D(4), D(2), D(-3)])
    assert t["priced"] == 4 and t["instructions"] == 10
    assert D(t["mean_bps"]) == sum(gaps) / 4 == D(2)
    assert D(t["median_bps"]) == (gaps[1] + gaps[2]) / 2 == D(3)
    assert (D(t["min_bps"]), D(t["max_bps"])) == (D(-3), D(5))
    fees = [D("0.0015"), D("0.0006555"), D("-0.90116945"), D("-0.7532259"), D("-0.0018"), D("1.525"),
            D("0.2")]
    assert D(t["fee_diff"]["USDT"]) == sum(fees) == D("0.07096015")
    assert D(t["cost_diff"]["USDT"]) == D("1.5") + D("2.408") + D("0.2404") - D("1.8")
    assert D(t["gas_diff"]) == D("-0.00062") + D("0.00029")
    assert {k: D(v) for k, v in t["amount_out_diff"].items()} == {"USDT": 0, "WEETH": D("-0.001")}
    assert t["fills"] == {"both_filled": 6, "both_unfilled": 1, "live_only": 1, "sim_only": 1, "partial": 1}
    assert t["skipped"] == {"rejected_before_acceptance": 1, "venue_initiated": 0, "outside_live_sessions": 0}


def test_json_has_the_documented_shape(report: dict[str, Any]) -> None:
    """One object: source, sessions, config and balance choice, rows with both sides, totals, report paths."""
    assert {"source", "sessions", "config_source", "balances", "instructions", "totals", "notes",
            "report"} <= set(report)
    assert report["sessions"] == ["live-2024-06-03"]
    assert report["balances"].startswith("generous")
    row = report["instructions"][0]
    for key in ("seq", "instruction_id", "ts", "venue", "venue_type", "instrument", "side", "amount",
                "live", "sim", "fill", "price_diff_bps", "cost_diff", "fee_diff", "gas_diff",
                "amount_out_diff", "note"):
        assert key in row, key
    for key in ("status", "filled", "price", "fills", "fees", "gas_fee", "amount_out", "code", "reason"):
        assert key in row["live"] and key in row["sim"], key
    assert [r["seq"] for r in report["instructions"]] == list(range(1, 11))
    assert all(not isinstance(v, float) for v in report["totals"].values())
    assert set(report["report"]) == {"png", "markdown"}


def test_the_report_folder_holds_a_valid_png_and_the_markdown_summary(report: dict[str, Any]) -> None:
    """shadow.png is a PNG of sensible size that matplotlib reads back; shadow.md carries the totals."""
    from matplotlib.image import imread

    png = Path(report["report"]["png"])
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 400
    assert imread(png).shape[:2] == (height, width)
    page = Path(report["report"]["markdown"]).read_text()
    assert "![price differences](shadow.png)" in page
    assert "| mean / median price difference | +2.0000 / +3.0000 bps |" in page
    assert "| live only | 1 |" in page and "| sim only | 1 |" in page and "| partial | 1 |" in page
    assert "no_price" in page and page.count("\n| ") >= 10 + 12


def test_reports_are_byte_identical_across_runs(live: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Two runs over the same log write the same PNG and page (no clock, no version stamp)."""
    for name in ("a", "b"):
        assert run("--db", str(live[0]), "--out", str(tmp_path / name)).exit_code == 0
    for file in ("shadow.png", "shadow.md"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_the_live_database_is_never_written(live: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The live file's sha256 and the files beside it are the same before and after a shadow run."""
    path = live[0]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    beside = sorted(p.name for p in path.parent.iterdir())
    result = run("--db", f"sqlite:///{path}", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    assert "mean +2.0000 bps, median +3.0000 bps over 4 fills" in result.stdout
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir()) == beside


def test_config_file_overrides_the_recorded_costs(live: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """--config merges over the recorded config: 10 bps instead of 5 moves every gap by the difference."""
    cfg = tmp_path / "costs.toml"
    cfg.write_text('[execution_costs]\ndefault_bps = "10"\n')
    result = run("--db", str(live[0]), "--out", str(tmp_path / "r"), "--config", str(cfg), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {r["instruction_id"]: r for r in data["instructions"]}
    ids = live[1]
    assert D(rows[ids["spot_buy"]]["price_diff_bps"]) == bps_gap(
        D("3003"), sim_price("3000", "10", "buy"), "3000", "buy") == 0
    assert D(rows[ids["btc_buy"]]["price_diff_bps"]) == D(-8)
    assert D(rows[ids["failed"]]["sim"]["price"]) == sim_price("3012", "3", "buy")  # okx perp kept
    assert "--config" in data["config_source"]


def test_config_balances_replace_the_generous_ones(live: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """initial_balances in --config are used as they are, so the simulator can fail for funds too."""
    cfg = tmp_path / "funds.toml"
    cfg.write_text('[initial_balances."binance.spot"]\nUSDT = "100"\n')
    result = run("--db", str(live[0]), "--out", str(tmp_path / "r"), "--config", str(cfg), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    spot_buy = next(r for r in data["instructions"] if r["instruction_id"] == live[1]["spot_buy"])
    assert (spot_buy["fill"], spot_buy["sim"]["code"]) == ("live_only", "insufficient_balance")
    assert "--config" in data["balances"]


def test_a_backtest_log_shadowed_with_force_reproduces_itself(tmp_path: Path) -> None:
    """The simulator's own log, replayed through the simulator, differs by nothing: the instructions
    rebuilt from their normalised records are the ones that were sent."""
    from ledger.engine import EventDrivenStrategyEngine

    db = tmp_path / "bt.db"
    engine = EventDrivenStrategyEngine({
        "ledger": {"url": str(db)},
        "fees": {"binance": {"taker": "0.001"}, "bybit": {"taker": "0.00055"}},
        "execution_costs": {"default_bps": "4", "bybit": {"PERP": "2"}},
        "transfers": {"withdrawal_fees": {"binance": {"USDT": "1"}}},
        "initial_balances": {"binance": {"USDT": "100000"}, "bybit": {"USDT": "50000"},
                             "ethereum": {"ETH": "10", "USDT": "20000"}},
    })
    market = {"binance_eth_spot_price": "3000", "bybit_eth_perp_price": "3010", "eth_usd_price": "3000",
              "gas_price_gwei": "15", "weeth_eth_rate": "1.05"}
    orders = [
        {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
         "amount": "3"},
        {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "SELL",
         "amount": "1"},
        {"venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETHUSDT-PERP",
         "side": "SHORT", "amount": "2"},
        {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "USDT", "amount": "5000"},
        {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": "1"},
        {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit", "asset": "USDT",
         "amount": "1000"},
    ]

    async def trade() -> None:
        for i, order in enumerate(orders):
            await engine.advance_to(f"2024-01-01T0{i}:00:00+00:00", market)
            result = await engine.execute_trade_with_interface(order, market)
            assert result["status"] in ("FILLED", "CONFIRMED", "IN_TRANSIT"), result

    asyncio.run(trade())
    engine.close(views=False)
    engine.ledger.close()
    refused = run("--db", str(db), "--out", str(tmp_path / "r"))
    assert refused.exit_code == 2 and "--force" in refused.stderr
    result = run("--db", str(db), "--out", str(tmp_path / "r"), "--json", "--force")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["fills"]["both_filled"] == len(orders) == data["totals"]["instructions"]
    for row in data["instructions"]:
        assert row["price_diff_bps"] in (None, "0"), row
        assert all(D(v) == 0 for v in row["fee_diff"].values()), row
        assert row["gas_diff"] in (None, "0") and row["amount_out_diff"] in (None, "0"), row
        assert row["live"]["price"] == row["sim"]["price"], row


def _not_a_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE things (x INTEGER)")
    con.commit()
    con.close()
    return path


def _backtest_log(tmp_path: Path) -> Path:
    from ledger.app import Ledger

    path = tmp_path / "demo.db"
    ledger = Ledger.open(path, create=True)
    run_demo(ledger)
    ledger.close()
    return path


def _empty_live_log(tmp_path: Path) -> Path:
    path = tmp_path / "empty.db"
    build_empty_live_log(path)
    return path


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("not a database\n")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.db", "no ledger database at"),
        (_text_file, "is not a SQLite database"),
        (_not_a_ledger, "not a ledger (no stored_events table)"),
        (_backtest_log, "is not a live log (only backtest sessions)"),
        (_empty_live_log, "no accepted instructions in the live sessions of"),
    ],
    ids=["missing", "text-file", "foreign-sqlite", "backtest-log", "no-instructions"],
)
def test_bad_input_is_one_line_and_exit_2(make: Any, message: str, tmp_path: Path) -> None:
    """Each bad input prints one clear error line, exits 2, writes no report and no traceback."""
    db = make(tmp_path)
    result = run("--db", str(db), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "r").exists()


def test_a_bad_config_file_is_one_line_and_exit_2(live: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A missing or malformed --config file is named in one line before anything is read."""
    broken = tmp_path / "broken.toml"
    broken.write_text("execution_costs = [\n")
    for cfg, message in ((tmp_path / "none.toml", "--config: no such file"), (broken, "cannot read")):
        result = run("--db", str(live[0]), "--config", str(cfg), "--out", str(tmp_path / "r"))
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_hand_made_live_log_is_an_intact_ledger(live: tuple[Path, dict[str, str]]) -> None:
    """The builder writes through the real Ledger: the hash chain and checkpoints verify."""
    from ledger.app import Ledger
    from replays.verify import verify_chain

    ledger = Ledger.open(live[0])
    try:
        result = verify_chain(ledger)
    finally:
        ledger.close()
    assert result.ok, result.first
    assert result.checkpoints >= 1
