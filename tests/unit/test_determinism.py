"""Identical runs give a byte-identical log and the same digest, across processes and hash seeds."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given

from ledger import testing
from ledger.app import Ledger
from ledger.digest import log_digest
from ledger.engine import EventDrivenStrategyEngine
from ledger.marketdata import generate
from tests.scenario import write_scenario

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import sys; from ledger.app import Ledger; from ledger.digest import log_digest; "
    "from tests.scenario import write_scenario; "
    "l = Ledger.open(sys.argv[1], create=True, synchronous='NORMAL'); write_scenario(l); "
    "print(log_digest(l))"
)


def rows(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT rowid, * FROM stored_events ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_two_runs_write_identical_logs(tmp_path: Path) -> None:
    digests = []
    for name in ("a.db", "b.db"):
        ledger = Ledger.open(tmp_path / name, create=True)
        write_scenario(ledger)
        digests.append(log_digest(ledger))
    assert digests[0] == digests[1] and len(digests[0]) == 64
    assert rows(tmp_path / "a.db") == rows(tmp_path / "b.db")


def test_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    outputs = []
    for seed in ("0", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"{seed}.db")], env=env,
                             capture_output=True, text=True, check=True, cwd=ROOT)
        outputs.append(out.stdout.strip())
    assert len(set(outputs)) == 1
    assert rows(tmp_path / "0.db") == rows(tmp_path / "12345.db") == rows(tmp_path / "random.db")


def test_digest_changes_when_one_amount_changes(tmp_path: Path) -> None:
    """The digest is sensitive: a different run gives a different digest."""
    from decimal import Decimal as D

    a = Ledger.open(tmp_path / "a.db", create=True)
    write_scenario(a)
    b = Ledger.open(tmp_path / "b.db", create=True)
    write_scenario(b)
    venue = b.get_venue("main", "binance")
    venue.record_deposit("one-more", "spot", "USDT", D("0.01"), venue.modified_on)
    b.save(venue)
    assert log_digest(a) != log_digest(b)


def test_digest_ignores_code_version_and_data_path(tmp_path: Path) -> None:
    from aggregates.session import Session
    from tests.scenario import T0

    digests = []
    for version, path in (("1.0", "/data/a"), ("2.0", "/elsewhere/b")):
        ledger = Ledger.open(tmp_path / f"{version}.db", create=True)
        ledger.start_session(Session.start("s", "backtest", "{}", "c", path, "d", 7, version, T0))
        ledger.end_session("done", T0)
        digests.append(log_digest(ledger))
    assert digests[0] == digests[1]


# ---- engine level: the same instructions and market data give the same log digest -------------

ENGINE_SCRIPT = (
    "import sys; from tests.unit.test_determinism import engine_digest; print(engine_digest(sys.argv[1]))"
)
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def engine_run(url: str, amount: str = "1.5") -> EventDrivenStrategyEngine:
    """A backtest on seeded synthetic data touching every venue kind: spot, perps with funding, a resting
    order and a cancel, AAVE supply and borrow with interest, staking and unstaking, transfers."""
    config: dict[str, Any] = {
        "execution_mode": "backtest", "ledger": {"url": url, "views": False},
        "initial_balances": {"binance": {"USDT": 200_000, "ETH": 2}, "bybit": {"USDT": 100_000},
                             "ethereum": {"ETH": 20}},
        "fees": {"binance": {"maker": "0.0002", "taker": "0.001"}},
        "staking": {"unstake_delay_days": 1},
    }
    data = generate(5, DAY0, DAY0 + timedelta(days=3))
    engine = EventDrivenStrategyEngine(config, data=data)

    def cex(venue: str, side: str, qty: str, perp: bool = False, **extra: Any) -> dict[str, Any]:
        return {"venue_type": "cex", "venue": venue, "trade_type": "PERP" if perp else "SPOT",
                "pair": "ETHUSDT-PERP" if perp else "ETH/USDT", "side": side, "amount": qty, **extra}

    def chain(op: str, token: str, qty: Any) -> dict[str, Any]:
        return {"venue_type": "onchain", "operation": op, "token": token, "amount": qty}

    plan: list[tuple[int, list[dict[str, Any]]]] = [
        (0, [cex("binance", "BUY", amount), cex("bybit", "SHORT", amount, perp=True),
             chain("AAVE_SUPPLY", "ETH", 5), chain("STAKE", "ETH", 3.0)]),
        (1, [cex("binance", "BUY", "1", order_type="LIMIT", price="2900"), chain("AAVE_BORROW", "USDT", 2000),
             {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit", "asset": "USDT",
              "amount": 5000}]),
        (9, [cex("bybit", "LONG", "0.5", perp=True), chain("UNSTAKE", "WEETH", 1),
             cex("binance", "HOLD", "1")]),
        (30, [chain("AAVE_REPAY", "USDT", 500), cex("okx", "BUY", "1")]),
        (60, []),
    ]

    async def drive() -> None:
        for hours, instructions in plan:
            await engine.advance_to(DAY0 + timedelta(hours=hours))
            for instruction in instructions:
                await engine.execute_trade_with_interface(instruction)
            if hours == 30:
                await engine.execution_interfaces["cex"].cancel_all_orders()

    asyncio.run(drive())
    engine.close(views=False)
    return engine


def engine_digest(url: str, amount: str = "1.5") -> str:
    engine = engine_run(url, amount)
    try:
        return engine.digest()
    finally:
        engine.ledger.close()


def test_two_engines_give_the_same_digest(tmp_path: Path) -> None:
    """Two engines fed the same instructions and data write logs with the same digest."""
    first = engine_digest(f"sqlite:///{tmp_path}/a.db")
    second = engine_digest(f"sqlite:///{tmp_path}/b.db")
    assert first == second and len(first) == 64


def test_the_engine_digest_depends_on_the_instructions(tmp_path: Path) -> None:
    """One different amount gives a different digest (the comparison above can fail)."""
    assert engine_digest(f"sqlite:///{tmp_path}/a.db") != engine_digest(f"sqlite:///{tmp_path}/b.db", "1.6")


def test_the_engine_run_covers_every_venue_kind(tmp_path: Path) -> None:
    """The determinism run records fills, funding, interest, transfers, a cancel and an unstake claim."""
    engine = engine_run(f"sqlite:///{tmp_path}/a.db")
    try:
        names = {type(e).__name__ for _n, e in engine.ledger.iter_events()}
        purposes = {e.purpose for _n, e in engine.ledger.iter_events()
                    if type(e).__name__ == "TransactionSubmitted"}
    finally:
        engine.ledger.close()
    assert {"OrderFilled", "FundingSettled", "InterestAccrued", "TransferReceived", "OrderCancelled",
            "InstructionRejected"} <= names
    assert "CLAIM" in purposes


def test_engine_digest_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """Subprocesses with different PYTHONHASHSEED write the digest this process writes."""
    expected = engine_digest(f"sqlite:///{tmp_path}/here.db")
    outputs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT, f"sqlite:///{tmp_path}/{seed}.db"],
                             env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        outputs.append(out.stdout.strip())
    assert outputs == [expected, expected]


@given(testing.steps(malformed=True))
def test_random_runs_are_deterministic(run: list[testing.Step]) -> None:
    """Any run played twice, on fresh stores, gives the same digest."""
    digests = []
    for _ in range(2):
        engine = EventDrivenStrategyEngine({
            "initial_capital": 100_000, "ledger": {"url": "memory:", "views": False},
            "initial_balances": {"ethereum": {"ETH": 10}, "bybit": {"USDT": 50_000}}})
        try:
            asyncio.run(testing.play(engine, run))
            digests.append(engine.digest())
        finally:
            engine.ledger.close()
    assert digests[0] == digests[1]
