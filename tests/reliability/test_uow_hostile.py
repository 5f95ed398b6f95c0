"""Hostile tests of "a command is a unit of work" (issue 15): failures injected where the existing tests
do not put them — a snapshot written after the events, a real full disk, a step of time, a session end,
an update handler failing before a batch boundary, a command that stored part of its events (dry-run),
and checkpoints every N events in a backtest (a rolled-back command must leave no trace in the log)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from aggregates.errors import LedgerError, StoreError
from aggregates.session import Session
from aggregates.venue import VenueLedger
from executors.simulated.transfer import SimulatedTransfers
from ledger.app import Ledger
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_all
from replays.verify import verify_chain
from tests.faults import once

MARKET = {"eth_usd_price": "3000", "usdt_usd_price": "1", "binance_spot_price": "3000",
          "bybit_eth_perp_price": "3000"}
BUY = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT",
       "side": "BUY", "amount": "0.1"}
PERP = {"venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETH/USDT:USDT",
        "side": "BUY", "amount": "1"}
MOVE = {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit", "asset": "USDT",
        "amount": "100"}
MODES = ("backtest", "dry-run")


def build(where: Path, mode: str, name: str = "l.db", **ledger: Any) -> EventDrivenStrategyEngine:
    return EventDrivenStrategyEngine({
        "execution_mode": mode,
        "ledger": {"url": f"sqlite:///{where / name}", "views": False, "batch": 7, "snapshot_every": 5,
                   **ledger},
        "initial_balances": {"binance": {"USDT": 100000}, "bybit": {"USDT": 1000}, "ethereum": {"ETH": 5}},
    })


def start_of(mode: str) -> datetime:
    """Backtests run on their own clock; dry-run engines on the wall clock (steps must be ahead of it)."""
    return datetime(2024, 1, 1, tzinfo=UTC) if mode == "backtest" else datetime.now(UTC)


def stored(engine: EventDrivenStrategyEngine) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events()]


def assert_sound(engine: EventDrivenStrategyEngine, acknowledged: list[dict[str, Any]]) -> None:
    in_log = {getattr(e, "instruction_id", None) for e in stored(engine)}
    missing = [r["instruction_id"] for r in acknowledged if r["instruction_id"] not in in_log]
    assert not missing, f"acknowledged but not in the log: {missing}"
    check_all(engine)
    assert verify_chain(engine.ledger).ok


# ---- the store fails after the events were written ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_snapshot_that_fails_after_the_events_were_written_does_not_poison_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Ledger._save writes the events, then the snapshot in its own write. If only the snapshot fails
    (a disk that fills up between the two), the command's events are in the log: the command must return
    its result (or, at the very least, not give its instruction id back). Now it raises StoreError
    ("nothing of this command was kept", a lie) and gives the id back, so every later command is refused
    with DuplicateError for that id, forever."""
    engine = build(tmp_path, mode, batch=1)
    await engine.advance_to(start_of(mode), MARKET)
    snapshots = engine.ledger.snapshots
    assert snapshots is not None
    monkeypatch.setattr(snapshots, "put", once(lambda: OperationalError("database or disk is full"),
                                               snapshots.put))
    results = []
    for _ in range(4):  # the binance stream crosses a multiple of snapshot_every within these
        results.append(await engine.execute_trade_with_interface(BUY, MARKET))
    assert [r["status"] for r in results] == ["FILLED"] * 4
    engine.close(views=False)
    assert_sound(engine, results)


@pytest.mark.parametrize("mode", MODES)
async def test_a_real_full_disk_then_space_again(tmp_path: Path, mode: str) -> None:
    """A 300 KiB tmpfs fills up mid-run; then it is made larger. Once there is space again the engine
    must carry on, and nothing acknowledged may be lost. Now the write that fills the disk is the
    snapshot after the events (see above): the engine refuses every later command with DuplicateError,
    even with 8 MiB free."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], check=True)
    try:
        engine = build(disk, mode, batch=3, snapshot_every=4)
        base = start_of(mode)
        await engine.advance_to(base, MARKET)
        small = {**BUY, "amount": "0.01"}
        acknowledged, failed = [], 0
        for i in range(400):
            try:
                if i % 5 == 4:
                    await engine.advance_to(base + timedelta(hours=i), MARKET)
                else:
                    acknowledged.append(await engine.execute_trade_with_interface(small, MARKET))
            except LedgerError:
                failed += 1
                break
        assert failed, "the disk never filled up"
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        for _ in range(3):
            acknowledged.append(await engine.execute_trade_with_interface(small, MARKET))
        engine.close(views=False)
        assert_sound(engine, acknowledged)
        engine.ledger.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


async def test_a_committed_command_whose_handler_failed_is_not_turned_into_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backtest, below a batch boundary: the update handler raises after the commit (the result stands,
    the views are to be rebuilt), and the store is full for one write. unit() ends with recover(), which
    flushes the buffer first: the StoreError reaches the caller of a command whose events stay buffered
    and are written later. The caller was told it failed; the log says FILLED (a retry trades twice)."""
    engine = build(tmp_path, "backtest", batch=50)
    await engine.advance_to(start_of("backtest"), MARKET)
    recorder = engine.ledger.recorder
    monkeypatch.setattr(recorder, "insert_events",
                        once(lambda: OperationalError("database or disk is full"), recorder.insert_events))
    handler = engine.position_update_handler
    for interface in engine.execution_interfaces.values():
        interface.position_update_handler = once(lambda: ZeroDivisionError("risk"), handler)
    outcome: dict[str, Any] | LedgerError
    try:
        outcome = await engine.execute_trade_with_interface(BUY, MARKET)
    except LedgerError as e:
        outcome = e
    try:  # the one failing write may be met here instead (recovery writes nothing): closing again works
        engine.close(views=False)
    except StoreError:
        engine.close(views=False)
    fills = [e.instruction_id for e in stored(engine) if type(e).__name__ == "OrderFilled"]
    assert not isinstance(outcome, LedgerError) or not fills, (
        f"the command raised {outcome!r} but its fill {fills} is in the log")


# ---- a command that stored part of its events (dry-run) -------------------------------------------


async def test_a_dry_run_step_that_stored_a_liquidation_does_not_give_its_id_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dry-run saves every commit at once. A step of time liquidates a perp (stored, with an instruction
    id from the session's sequence), then a transfer arrival fails later in the same step. The rollback
    resets the sequence to before the step, so the next order is given the liquidation's id: two
    instructions share one id in the log (lifecycle: InstructionAccepted from state FILLED)."""
    engine = build(tmp_path, "dry-run")
    base = start_of("dry-run")
    await engine.advance_to(base, MARKET)
    acknowledged = [await engine.execute_trade_with_interface(PERP, MARKET),
                    await engine.execute_trade_with_interface(MOVE, MARKET)]
    monkeypatch.setattr(SimulatedTransfers, "advance",
                        once(lambda: RuntimeError("arrival"), SimulatedTransfers.advance))
    crash = {**MARKET, "bybit_eth_perp_price": "1500", "eth_usd_price": "1500"}
    with pytest.raises(LedgerError, match="arrival"):
        await engine.advance_to(base + timedelta(hours=1), crash)
    assert "LIQUIDATION" in [getattr(e, "instruction", {}).get("kind") for e in stored(engine)
                             if type(e).__name__ == "InstructionAccepted"]
    acknowledged.append(await engine.execute_trade_with_interface(BUY, crash))
    accepted = [e.instruction_id for e in stored(engine) if type(e).__name__ == "InstructionAccepted"]
    assert len(accepted) == len(set(accepted)), "one instruction id was used twice"
    engine.close(views=False)
    assert_sound(engine, acknowledged)


async def test_ctrl_c_in_the_update_handler_after_a_dry_run_commit_does_not_poison_the_engine(
    tmp_path: Path,
) -> None:
    """Dry-run: the order's events are saved, then Ctrl-C arrives in the update handler (notify catches
    Exception only). The unit rolls back and gives the instruction id back although its events are
    stored, so the next order is given the same id and is refused with DuplicateError (and so is every
    order after it)."""
    engine = build(tmp_path, "dry-run")
    await engine.advance_to(start_of("dry-run"), MARKET)
    handler = engine.position_update_handler
    for interface in engine.execution_interfaces.values():
        interface.position_update_handler = once(KeyboardInterrupt, handler)
    with pytest.raises(KeyboardInterrupt):
        await engine.execute_trade_with_interface(BUY, MARKET)
    acknowledged = [await engine.execute_trade_with_interface(BUY, MARKET)]
    engine.close(views=False)
    assert_sound(engine, acknowledged)


# ---- time and the session ---------------------------------------------------------------------------


async def test_a_failed_step_of_time_does_not_move_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """advance_to sets the recorder's clock before anything can fail, and the clock is not part of the
    state a unit of work puts back: after a failed step to 05:00 a step to 01:00 is refused ("time cannot
    go backwards"), and later events carry the failed step's time, so the log differs from a run
    without the failed step."""
    engine = build(tmp_path, "backtest")
    base = start_of("backtest")
    await engine.advance_to(base, MARKET)
    monkeypatch.setattr(Session, "record_market", once(lambda: OSError(28, "No space left on device"),
                                                       Session.record_market))
    with pytest.raises(LedgerError, match="No space left"):
        await engine.advance_to(base + timedelta(hours=5), MARKET)
    await engine.advance_to(base + timedelta(hours=1), MARKET)
    result = await engine.execute_trade_with_interface(BUY, MARKET)
    engine.close(views=False)
    assert_sound(engine, [result])


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_end_that_fails_can_be_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """close() is not a unit of work: end_session applies SessionEnded to the session in memory, then
    the write fails; the session is left ended in memory but not in the log, so every later close()
    raises "session ... has ended" and the session can never be ended."""
    engine = build(tmp_path, mode)
    await engine.advance_to(start_of(mode), MARKET)
    acknowledged = [await engine.execute_trade_with_interface(BUY, MARKET)]
    recorder = engine.ledger.recorder
    working = recorder.insert_events

    def full_at_the_end(stored_events: Any, *args: Any, **kwargs: Any) -> Any:
        if any("Ended" in s.topic for s in stored_events):  # the SessionEnded write
            raise OperationalError("database or disk is full")
        return working(stored_events, *args, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", full_at_the_end)
    with pytest.raises(LedgerError, match="full"):
        engine.close(views=False)
    monkeypatch.setattr(recorder, "insert_events", working)  # space again
    engine.close(views=False)
    assert engine.closed
    assert [type(e).__name__ for e in stored(engine)][-1] == "SessionEnded"
    assert_sound(engine, acknowledged)


# ---- determinism: a rolled-back command leaves no trace in a backtest log ---------------------------


async def _run(where: Path, name: str, failure: str | None, batch: int = 7) -> str:
    """Twelve steps and orders with a checkpoint every 10 events; `failure` at step 4."""
    engine = build(where, "backtest", name=name, batch=batch)
    engine.ledger.checkpoint_every = 10
    base = start_of("backtest")
    with pytest.MonkeyPatch.context() as mp:
        for i in range(12):
            await engine.advance_to(base + timedelta(hours=i), MARKET)
            if i == 4 and failure == "command":
                mp.setattr(VenueLedger, "record_fill",
                           once(lambda: RuntimeError("boom"), VenueLedger.record_fill))
                with pytest.raises(LedgerError):
                    await engine.execute_trade_with_interface(BUY, MARKET)
            if i == 4 and failure == "handler":  # after the commit: the result stands
                handler = engine.position_update_handler
                for interface in engine.execution_interfaces.values():
                    interface.position_update_handler = once(lambda: ZeroDivisionError("risk"), handler)
            assert (await engine.execute_trade_with_interface(BUY, MARKET))["status"] == "FILLED"
    engine.close(views=False)
    check_all(engine)
    return engine.digest()


@pytest.mark.parametrize("failure", ["command", "handler"])
async def test_a_failure_leaves_no_trace_in_a_backtest_log_with_checkpoints(
    tmp_path: Path, failure: str
) -> None:
    """A rolled-back command (or an update handler that failed after a commit) must not change the log
    of a backtest. Both make the recorder flush its buffer off the batch boundary (rollback -> recover,
    or unit end -> recover), and Ledger._save checkpoints after the save that crosses checkpoint_every,
    so the Session.Checkpointed events land elsewhere (one more of them) and the digest differs."""
    clean = await _run(tmp_path, "clean.db", None)
    assert await _run(tmp_path, f"{failure}.db", failure) == clean


async def test_the_batch_size_moves_only_the_checkpoints_of_a_backtest_log(tmp_path: Path) -> None:
    """Checkpoints are taken after the write that reaches `checkpoint_every`, so in a backtest they
    follow the batch writes (`ledger.batch`, a setting: the same settings give the same log). Every
    other stored row is byte-identical whatever the batch size: the venue streams, and the session's
    own events in order."""
    logs = []
    for batch in (7, 1):
        await _run(tmp_path, f"b{batch}.db", None, batch=batch)
        ledger = Ledger.open(f"sqlite:///{tmp_path / f'b{batch}.db'}")
        rows = list(ledger.iter_rows())
        session = {r[1] for r in rows if "Session" in r[3]}
        venues = [(r[1], r[2], r[3], r[4]) for r in rows if r[1] not in session]
        events = [(r[3], ledger.decode_row(r)) for r in rows
                  if r[1] in session and "Checkpointed" not in r[3]]
        logs.append((sorted(venues), [(t, getattr(e, "market", None)) for t, e in events]))
        assert any("Checkpointed" in r[3] for r in rows[:-3])  # checkpoints were taken during the run
        ledger.close()
    assert logs[0] == logs[1]
