"""CSV export cells never start a spreadsheet formula (OWASP CSV injection: `=`, `+`, `-`, `@`, tab,
carriage return get a leading `'`), and numbers stay numbers; read back with Python's csv module."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from aggregates.session import Session
from ledger.app import Ledger
from replays.export import CSV_COLUMNS, csv_cell, export, resolve_target

T0 = datetime(2024, 6, 1, tzinfo=UTC)
FORMULAS = ('=HYPERLINK("http://x")', "+1+1", "-1+cmd|' /C calc'!A0", "@SUM(A1:A2)", "\t=1+1", "\r=1+1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-1.5", "-1.5"),  # a plain negative number stays a number
        ("-7", "-7"),
        (D("-1.5"), D("-1.5")),
        (-3, -3),
        ("ETH/USDT", "ETH/USDT"),
        ("{\"a\": \"=1\"}", "{\"a\": \"=1\"}"),
    ],
)
def test_csv_cell_neutralises_formulas_and_keeps_numbers(value: object, expected: object) -> None:
    assert csv_cell(value) == expected


def test_the_csv_export_neutralises_formula_cells_and_keeps_negative_amounts(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'c.db'}", create=True)
    try:
        ledger.start_session(Session.start("csv", "backtest", "{}", "-", "-", "-", 1, "test", T0))
        binance = ledger.venue("main", "binance", "cex", T0)
        for iid in (*FORMULAS, "-1.5"):
            binance.record_accepted(iid, {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy",
                                          "amount": "0.5", "wallet": "spot"}, {"eth_usd_price": D(3000)}, T0)
        binance.record_adjustment("adj-1", "spot", "USDT", D("-1.5"), "=HYPERLINK(\"http://x\")", T0)
        ledger.save(binance)
        export(ledger, resolve_target(tmp_path / "c.csv"))
    finally:
        ledger.close()
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(CSV_COLUMNS)
    ids = {r["instruction_id"] for r in rows if r["type"] == "InstructionAccepted"}
    assert ids == {"'" + f for f in FORMULAS} | {"-1.5"}
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (column, cell)
            assert not cell.startswith("-") or cell == "-1.5", (column, cell)
        assert int(row["notification_id"]) > 0 and int(row["version"]) > 0
    (adjusted,) = [json.loads(r["event"]) for r in rows if r["type"] == "BalanceAdjusted"]
    assert adjusted["delta"] == "-1.5" and adjusted["reason"] == '=HYPERLINK("http://x")'
