"""Hypothesis state machine: valid commands interleaved with poisoned ones — extreme Decimals in
instructions and market data, and exceptions injected into the store, the views, the update handler
and the middle of a command — in both commit styles. After every step: each acknowledged result is
in the log, the in-memory views equal a rebuild from the log, the hash chain verifies and every
instruction's lifecycle is legal."""

from __future__ import annotations

import tempfile
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import projections.memory
from aggregates.errors import LedgerError
from aggregates.venue import VenueLedger
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_lifecycle, check_rebuild_equals
from replays.verify import verify_chain

MARKET = {"eth_usd_price": "3000", "usdt_usd_price": "1", "binance_spot_price": "3000",
          "bybit_eth_perp_price": "3001"}
SPOT = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT"}
PERP = {"venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETH/USDT:USDT"}
VALID = st.one_of(
    st.builds(lambda side, amt: {**SPOT, "side": side, "amount": amt},
              st.sampled_from(["BUY", "SELL"]), st.decimals("0.01", "0.5", places=2)),
    st.builds(lambda side, amt: {**PERP, "side": side, "amount": amt},
              st.sampled_from(["BUY", "SELL"]), st.decimals("0.01", "0.5", places=2)),
    st.builds(lambda px: {**SPOT, "side": "BUY", "amount": "0.1", "order_type": "LIMIT", "price": px},
              st.decimals("2800", "2990", places=1)),
    st.builds(lambda amt: {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": amt},
              st.decimals("0.01", "0.2", places=2)),
    st.builds(lambda amt: {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit",
                           "asset": "USDT", "amount": amt}, st.decimals("1", "500", places=0)),
)
EXTREME = st.sampled_from([
    D("1e-999999999"), D("1E+1000000"), "1e999999", D("NaN"), D("sNaN"), D("-0"), 10**30,
    D("1e-40"), "0.0000000000000000001", D("Infinity"), -1,
])
INJECTIONS = ("store", "view", "handler", "mid-command")


class UnitOfWorkMachine(RuleBasedStateMachine):
    mode = "backtest"

    @initialize()
    def start(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.engine = EventDrivenStrategyEngine({
            "execution_mode": self.mode,
            "ledger": {"url": f"sqlite:///{Path(self.dir.name) / 'l.db'}", "views": False,
                       "batch": 5, "snapshot_every": 4, "synchronous": "OFF"},
            "initial_balances": {"binance": {"USDT": 50000}, "bybit": {"USDT": 50000},
                                 "ethereum": {"ETH": 3}},
        })
        self.hour = 0
        self.acknowledged: list[str] = []
        self.armed: str | None = None
        self.undo: list[Any] = []
        self._run(self.engine.advance_to("2024-01-01T00:00:00Z", MARKET))

    def teardown(self) -> None:
        self._disarm()
        if hasattr(self, "engine"):
            self.engine.ledger.close()
            self.dir.cleanup()

    def _run(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run(coroutine)

    def _disarm(self) -> None:
        while self.undo:
            self.undo.pop()()
        self.armed = None

    def _arm(self, kind: str) -> None:
        """Make the next matching call raise once."""
        self.armed = kind
        fired = {"done": False}

        def once(original: Any, error: BaseException) -> Any:
            def patched(*args: Any, **kwargs: Any) -> Any:
                if not fired["done"]:
                    fired["done"] = True
                    raise error
                return original(*args, **kwargs)
            return patched

        if kind == "store":
            recorder = self.engine.ledger.recorder
            original = recorder.insert_events
            recorder.insert_events = once(original, OperationalError("database or disk is full"))
            self.undo.append(lambda: setattr(recorder, "insert_events", original))
        elif kind == "view":
            original = projections.memory.apply
            projections.memory.apply = once(original, KeyError("fold"))
            self.undo.append(lambda: setattr(projections.memory, "apply", original))
        elif kind == "handler":
            interfaces = list(self.engine.execution_interfaces.values())
            handler = self.engine.position_update_handler
            for i in interfaces:
                i.position_update_handler = once(handler, ZeroDivisionError("risk"))

            def restore() -> None:
                for i in interfaces:
                    i.position_update_handler = handler
            self.undo.append(restore)
        else:
            original = VenueLedger.record_fill

            def poisoned(agg: VenueLedger, *args: Any, **kwargs: Any) -> Any:
                original(agg, *args, **kwargs)
                if not fired["done"]:
                    fired["done"] = True
                    raise ArithmeticError("decimal.InvalidOperation")
            VenueLedger.record_fill = poisoned  # type: ignore[method-assign]
            self.undo.append(lambda: setattr(VenueLedger, "record_fill", original))

    def _execute(self, instruction: dict[str, Any], market: dict[str, Any] | None = None) -> None:
        try:
            result = self._run(self.engine.execute_trade_with_interface(instruction, market or MARKET))
        except LedgerError:
            return
        finally:
            self._disarm()
        assert isinstance(result, dict) and result.get("instruction_id"), result
        self.acknowledged.append(result["instruction_id"])

    @rule(instruction=VALID)
    def valid(self, instruction: dict[str, Any]) -> None:
        self._execute(instruction)

    @rule(instruction=VALID, field=st.sampled_from(["amount", "price"]), value=EXTREME)
    def extreme_instruction(self, instruction: dict[str, Any], field: str, value: Any) -> None:
        self._execute({**instruction, field: value})

    @rule(instruction=VALID, key=st.sampled_from(sorted(MARKET)), value=EXTREME)
    def extreme_market(self, instruction: dict[str, Any], key: str, value: Any) -> None:
        self._execute(instruction, {**MARKET, key: value})

    @rule(instruction=VALID, kind=st.sampled_from(INJECTIONS))
    def injected(self, instruction: dict[str, Any], kind: str) -> None:
        self._arm(kind)
        self._execute(instruction)

    @rule(hours=st.integers(1, 9), move=st.decimals("-100", "100", places=0), kind=st.sampled_from(
        (None, *INJECTIONS)))
    def advance(self, hours: int, move: D, kind: str | None) -> None:
        self.hour += hours
        px = str(D(3000) + move)
        market = {**MARKET, "eth_usd_price": px, "binance_spot_price": px, "bybit_eth_perp_price": px}
        if kind is not None:
            self._arm(kind)
        try:
            self._run(self.engine.advance_to(_hour(self.hour), market))
        except LedgerError:
            pass
        finally:
            self._disarm()

    @invariant()
    def sound(self) -> None:
        if not hasattr(self, "engine"):
            return
        engine = self.engine
        engine.event_logger.flush()
        in_log = {getattr(e, "instruction_id", None) for _n, e in engine.ledger.iter_events()}
        missing = [i for i in self.acknowledged if i not in in_log]
        assert not missing, f"acknowledged but not in the log: {missing}"
        check_rebuild_equals(engine)
        check_lifecycle(engine)
        assert verify_chain(engine.ledger).ok


def _hour(n: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n)).isoformat()


class DryRunMachine(UnitOfWorkMachine):
    mode = "dry-run"


@pytest.mark.parametrize("machine", [UnitOfWorkMachine, DryRunMachine], ids=["backtest", "dry-run"])
def test_commands_are_units_of_work(machine: type[UnitOfWorkMachine]) -> None:
    base = settings()
    run_state_machine_as_test(
        machine, settings=settings(base, max_examples=base.max_examples, stateful_step_count=12)
    )
