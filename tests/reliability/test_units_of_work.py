"""A command is a unit of work (issue: one odd input poisoned the engine and acknowledged fills were
lost). Failures are injected at the points a command can fail — after the aggregate applied events in
memory, in the store, in a view, in the update handler — in both commit styles (backtest batches,
dry-run saves every commit). After each: the caller got one typed error (or its committed result),
the next command works, every acknowledged result is in the log, nothing of the failed command is,
the views equal a rebuild and the chain and lifecycle verify."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from aggregates.errors import CommandError, InstructionError, StoreError
from aggregates.venue import VenueLedger
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_all
from replays.verify import verify_chain
from tests.faults import once

MARKET = {"eth_usd_price": "3000", "binance_spot_price": "3000", "binance_eth_perp_price": "3000"}
BUY = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT",
       "side": "BUY", "amount": "0.1"}
LIMIT = {**BUY, "order_type": "LIMIT", "price": "2500"}  # rests: the simulated venue keeps it in memory
STAKE = {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": "0.5"}
MOVE = {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit", "asset": "USDT",
        "amount": "100"}
MODES = ("backtest", "dry-run")


def build(tmp_path: Path, mode: str) -> EventDrivenStrategyEngine:
    return EventDrivenStrategyEngine({
        "execution_mode": mode,
        "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}", "views": False, "batch": 7,
                   "snapshot_every": 5},
        "initial_balances": {"binance": {"USDT": 100000}, "ethereum": {"ETH": 5}},
    })


@pytest.fixture(params=MODES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventDrivenStrategyEngine]:
    built = build(tmp_path, request.param)
    yield built
    built.ledger.close()


def stored(engine: EventDrivenStrategyEngine) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events()]


def ids_in_log(engine: EventDrivenStrategyEngine) -> set[str]:
    return {e.instruction_id for e in stored(engine) if hasattr(e, "instruction_id")}


def assert_sound(engine: EventDrivenStrategyEngine, acknowledged: list[dict[str, Any]]) -> None:
    """Every acknowledged result is in the log; views equal a rebuild; chain and lifecycle verify."""
    in_log = ids_in_log(engine)
    missing = [r["instruction_id"] for r in acknowledged if r["instruction_id"] not in in_log]
    assert not missing, f"acknowledged but not in the log: {missing}"
    check_all(engine)
    assert verify_chain(engine.ledger).ok


async def test_events_applied_in_memory_then_a_decimal_error_leave_nothing_behind(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported loss: the aggregate applied accepted/submitted/fill in memory, then the decimal
    module raised. Before, every later save failed (`has no version N`) while orders said FILLED."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    acknowledged = [await engine.execute_trade_with_interface(BUY, MARKET)]
    original = VenueLedger.record_fill

    def poisoned(self: VenueLedger, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        raise ArithmeticError("[<class 'decimal.InvalidOperation'>]")

    monkeypatch.setattr(VenueLedger, "record_fill", poisoned)
    with pytest.raises(InstructionError, match="InvalidOperation"):
        await engine.execute_trade_with_interface(BUY, MARKET)
    monkeypatch.setattr(VenueLedger, "record_fill", original)
    for _ in range(3):
        result = await engine.execute_trade_with_interface(BUY, MARKET)
        assert result["status"] == "FILLED"
        acknowledged.append(result)
    engine.close(views=False)
    names = [type(e).__name__ for e in stored(engine)]
    assert names.count("OrderFilled") == 4 and names.count("InstructionAccepted") == 4
    assert_sound(engine, acknowledged)
    # the failed command gave its instruction id back: the ids are the run's first five, in order
    assert engine.event_logger.sequence == 4


async def test_a_resting_order_of_a_failed_command_is_not_left_in_the_simulated_venue(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit order rests in the venue's memory before its events are committed: a failure between
    the two must not leave an order that the log never saw (it would fill later out of nowhere)."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    original = type(engine.event_logger).commit
    monkeypatch.setattr(type(engine.event_logger), "commit", once(lambda: RuntimeError("boom"), original))
    with pytest.raises(CommandError, match="RuntimeError: boom"):
        await engine.execute_trade_with_interface(LIMIT, MARKET)
    monkeypatch.setattr(type(engine.event_logger), "commit", original)
    assert engine.execution_interfaces["cex"].backend.resting == []
    await engine.advance_to("2024-01-01T01:00:00Z", {**MARKET, "binance_spot_price": "2400"})
    assert not [e for e in stored(engine) if type(e).__name__ == "OrderFilled"]
    assert_sound(engine, [])


@pytest.mark.parametrize("where", ["first write", "later write"])
async def test_a_store_failure_is_a_store_error_and_the_engine_recovers(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """`database or disk is full` from the store: the caller gets StoreError naming it, nothing of
    the command is kept, acknowledged results are never dropped, and once the store works again the
    engine goes on."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    acknowledged = []
    if where == "later write":
        acknowledged = [await engine.execute_trade_with_interface(BUY, MARKET) for _ in range(3)]
    recorder = engine.ledger.recorder
    full = once(lambda: OperationalError("database or disk is full"), recorder.insert_events)
    monkeypatch.setattr(recorder, "insert_events", full)
    failed = 0
    for _ in range(8):  # backtests write in batches of 7: some command meets the failing write
        try:
            acknowledged.append(await engine.execute_trade_with_interface(BUY, MARKET))
        except StoreError as e:
            assert "database or disk is full" in str(e)
            failed += 1
    assert failed == 1
    acknowledged.append(await engine.execute_trade_with_interface(STAKE, MARKET))
    engine.close(views=False)
    assert_sound(engine, acknowledged)
    fills = [e for e in stored(engine) if type(e).__name__ == "OrderFilled"]
    assert len(fills) == len([r for r in acknowledged if r["status"] == "FILLED" and "symbol" in r])


async def test_a_store_that_keeps_failing_refuses_commands_and_changes_nothing(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    acknowledged = [await engine.execute_trade_with_interface(BUY, MARKET)]
    recorder = engine.ledger.recorder
    working = recorder.insert_events

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("database or disk is full")

    monkeypatch.setattr(recorder, "insert_events", full)
    errors = 0
    for _ in range(10):
        try:
            acknowledged.append(await engine.execute_trade_with_interface(BUY, MARKET))
        except StoreError:
            errors += 1
    assert errors >= 1
    monkeypatch.setattr(recorder, "insert_events", working)  # space is back
    acknowledged.append(await engine.execute_trade_with_interface(MOVE, MARKET))
    engine.close(views=False)
    assert_sound(engine, acknowledged)


async def test_a_view_that_fails_after_the_commit_does_not_fail_the_command(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The events are committed: the result stands, the failure is logged, the views are rebuilt."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    import projections.memory

    monkeypatch.setattr(projections.memory, "apply", once(lambda: KeyError("fold"), projections.memory.apply))
    result = await engine.execute_trade_with_interface(BUY, MARKET)
    assert result["status"] == "FILLED"
    assert "rebuilt from the log" in caplog.text
    assert await engine.execution_interfaces["cex"].get_balance("ETH", "binance") == D("0.1")
    assert_sound(engine, [result])


async def test_an_update_handler_that_fails_does_not_fail_the_command(
    engine: EventDrivenStrategyEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    calls = []

    def handler(result: dict[str, Any]) -> None:
        calls.append(result)
        raise ZeroDivisionError("risk")

    for interface in engine.execution_interfaces.values():
        interface.position_update_handler = handler
    result = await engine.execute_trade_with_interface(BUY, MARKET)
    assert result["status"] == "FILLED" and calls
    assert "ZeroDivisionError: risk" in caplog.text
    assert_sound(engine, [result])


async def test_a_failed_step_of_time_is_rolled_back_too(
    engine: EventDrivenStrategyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`advance_to` is a command: a failure in it keeps neither its market record nor its clock state."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    before = len(stored(engine))
    session_type = type(engine.session)
    original = session_type.record_market
    monkeypatch.setattr(session_type, "record_market", once(lambda: OSError(28, "No space left"), original))
    with pytest.raises(StoreError, match="No space left"):
        await engine.advance_to("2024-01-01T02:00:00Z", {**MARKET, "eth_usd_price": "3100"})
    assert len(stored(engine)) == before and engine.market["eth_usd_price"] == D("3000")
    await engine.advance_to("2024-01-01T03:00:00Z", {**MARKET, "eth_usd_price": "3200"})
    result = await engine.execute_trade_with_interface(BUY, MARKET)
    engine.close(views=False)
    assert_sound(engine, [result])


async def test_a_backtest_refuses_a_second_command_while_one_runs(tmp_path: Path) -> None:
    """A backtest runs one command at a time: one from another task while a command is inside its
    unit of work is refused rather than interleaved with it in the write buffer."""
    import asyncio

    engine = build(tmp_path, "backtest")
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    logger = engine.event_logger

    async def inside() -> None:
        with logger.unit():
            await asyncio.sleep(0.01)

    async def other() -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return await engine.execute_trade_with_interface(BUY, MARKET)

    results = await asyncio.gather(inside(), other(), return_exceptions=True)
    assert "another command is running" in str(results[1])
    result = await engine.execute_trade_with_interface(BUY, MARKET)
    assert_sound(engine, [result])


async def test_concurrent_dry_run_commands_one_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live and dry-run engines run commands concurrently (a live desk sends several orders at once):
    one failing does not disturb the others, whose results are all in the log."""
    import asyncio

    engine = build(tmp_path, "dry-run")
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    original = VenueLedger.record_fill
    calls = {"n": 0}

    def third_fails(self: VenueLedger, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("third")

    monkeypatch.setattr(VenueLedger, "record_fill", third_fails)

    async def order() -> dict[str, Any]:
        await asyncio.sleep(0)
        return await engine.execute_trade_with_interface(BUY, MARKET)

    results = await asyncio.gather(*(order() for _ in range(6)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], CommandError)
    acknowledged = [r for r in results if isinstance(r, dict)]
    assert len(acknowledged) == 5 and all(r["status"] == "FILLED" for r in acknowledged)
    engine.close(views=False)
    assert_sound(engine, acknowledged)
    assert len([e for e in stored(engine) if type(e).__name__ == "OrderFilled"]) == 5
