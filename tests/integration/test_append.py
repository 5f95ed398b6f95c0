"""Appending to a ledger (issue 16): an engine opened on a ledger that has events starts from the log's
balances, an appended run's instruction ids are new, and `ledger backtest --append` continues a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aggregates.errors import LedgerError
from ledger.app import Ledger
from ledger.cli import app
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing.books import independent_books

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ETH = {"eth_usd_price": D(3000)}


def config(db: Path, start: datetime, append: bool = False) -> dict[str, Any]:
    return {
        "execution_mode": "backtest",
        "ledger": {"url": f"sqlite:///{db}", "views": False, "append": append},
        "session": {"start": start.isoformat()},
        "initial_balances": {"binance": {"USDT": 10_000}},
    }


def buy(amount: str) -> dict[str, Any]:
    return {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
            "amount": amount}


def balances(engine: EventDrivenStrategyEngine) -> dict[tuple[str, str, str], D]:
    return {k: v for k, v in engine.projection.state.balances.items() if v}


async def first_run(db: Path) -> dict[tuple[str, str, str], D]:
    """10,000 USDT; buy 1 ETH at 3000 + 5 bps = 3001.5 (no fee configured): 6,998.5 USDT left."""
    engine = EventDrivenStrategyEngine(config(db, T0))
    await engine.advance_to(T0, ETH)
    result = await engine.execute_trade_with_interface(buy("1"), ETH)
    assert result["status"] == "FILLED"
    engine.close()
    held = balances(engine)
    engine.ledger.close()
    return held


async def test_a_reopened_ledger_starts_from_the_log_and_a_buy_that_needs_it_fills(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    held = await first_run(db)
    usdt = held[("binance", "spot", "USDT")]
    assert held == {("binance", "spot", "USDT"): D("6998.5"), ("binance", "spot", "ETH"): D(1)}
    with Ledger.open(f"sqlite:///{db}") as ledger:
        first_ids = {e.instruction_id for _n, e in ledger.iter_events() if hasattr(e, "instruction_id")}
        stored = ledger.max_notification_id()

    later = T0 + timedelta(days=1)
    engine = EventDrivenStrategyEngine(config(db, later, append=True))
    try:
        # Before any command: exactly the balances an independent fold of the stored log gives.
        books = independent_books(engine.ledger)
        assert balances(engine) == {k: v for k, v in books.balances.items() if v} == held
        assert engine.position_monitor.balance("USDT", "binance") == usdt
        # 2 ETH at 3001.5 needs 6,003 USDT: only there if the first run's 6,998.5 are seen (the initial
        # 10,000 deposit is not made again: its id is in the log). 6,998.5 - 6,003 = 995.5 left.
        await engine.advance_to(later, ETH)
        result = await engine.execute_trade_with_interface(buy("2"), ETH)
        assert result["status"] == "FILLED", result
        assert engine.position_monitor.balance("ETH", "binance") == D(3)
        assert engine.position_monitor.balance("USDT", "binance") == D("995.5")
        engine.close()
        second_ids = {e.instruction_id for n, e in engine.ledger.iter_events()
                      if n > stored and hasattr(e, "instruction_id")}
        assert second_ids and not second_ids & first_ids  # the appended session's ids are new
        deposits = [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "FundsDeposited"]
        assert len(deposits) == 1
    finally:
        engine.ledger.close()


async def test_an_appended_run_must_start_after_the_last_event_and_writes_nothing_otherwise(
    tmp_path: Path,
) -> None:
    db = tmp_path / "run.db"
    await first_run(db)
    with Ledger.open(f"sqlite:///{db}") as ledger:
        stored = ledger.max_notification_id()
    with pytest.raises(LedgerError, match=r"^session\.start: 2024-01-01T00:00:00\+00:00 is not after the "
                                          r"ledger's last event \(2024-01-01T00:00:00\+00:00\)"):
        EventDrivenStrategyEngine(config(db, T0, append=True))
    with pytest.raises(LedgerError, match="already holds a ledger"):
        EventDrivenStrategyEngine(config(db, T0 + timedelta(days=1)))
    with Ledger.open(f"sqlite:///{db}") as ledger:
        assert ledger.max_notification_id() == stored


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def log_rows(ledger: Ledger) -> list[tuple[int, str, Any, int]]:
    return [(n, type(e).__name__, e.originator_id, e.originator_version) for n, e in ledger.iter_events()]


def test_backtest_append_continues_a_run(tmp_path: Path) -> None:
    db, report = str(tmp_path / "bt.db"), str(tmp_path / "report")
    common = ["backtest", "--db", db, "--report", report, "--json", "--days", "1"]
    first = cli(*common, "--start", "2024-01-01")
    assert first.exit_code == 0, first.output
    with Ledger.open(f"sqlite:///{db}") as ledger:
        before = log_rows(ledger)
    refused = cli(*common, "--start", "2024-01-01", "--append")
    assert refused.exit_code == 2
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: session.start: ")
    assert "is not after the ledger's last event" in refused.stderr
    second = cli(*common, "--start", "2024-01-03", "--append")
    assert second.exit_code == 0, second.output
    total = json.loads(second.stdout)["events"]
    with Ledger.open(f"sqlite:///{db}") as ledger:
        after = log_rows(ledger)
        sessions = [e.session_key for _n, e in ledger.iter_events() if type(e).__name__ == "SessionStarted"]
    # The first run's events stay as they were; the second run's follow them: total = first + second.
    assert after[: len(before)] == before and len(after) == total > len(before)
    assert len(sessions) == 2 and sessions[1] == f"{sessions[0]}-after-{len(before)}"
    verify = cli("audit", "verify", "--db", db)
    assert verify.exit_code == 0, verify.output


def test_append_and_force_exclude_each_other(tmp_path: Path) -> None:
    result = cli("backtest", "--db", str(tmp_path / "bt.db"), "--report", str(tmp_path / "r"), "--append",
                 "--force")
    expected = ("error: --append and --force: give one of them "
                "(--force replaces the ledger, --append continues it)")
    assert result.exit_code == 2 and result.stderr == expected + "\n"
    assert not list(tmp_path.iterdir())
