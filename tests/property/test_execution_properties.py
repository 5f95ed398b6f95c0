"""Random runs through the engine, malformed instructions included, and random valid event sequences,
checked with the public `ledger.testing` invariants (the CI profile runs 200 examples each)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given

from ledger import testing
from ledger.app import Ledger
from ledger.engine import EventDrivenStrategyEngine
from ledger.marketdata import generate
from projections import InMemoryProjection, fold

BALANCES = {
    "binance": {"USDT": 100_000, "ETH": 5}, "bybit": {"USDT": 50_000}, "okx": {"USDT": 50_000},
    "ethereum": {"ETH": 10, "USDT": 10_000},
}
CONFIG: dict[str, Any] = {
    "execution_mode": "backtest", "initial_balances": BALANCES,
    "ledger": {"url": "memory:", "views": False},
    "fees": {"binance": {"maker": "0.0002", "taker": "0.001"}, "bybit": {"taker": "0.00055"}},
    "transfers": {"withdrawal_fees": {"binance": {"USDT": 1, "ETH": "0.0005"}}},
    "staking": {"unstake_delay_days": 7},
}
START = datetime(2024, 1, 1, tzinfo=UTC)
SYNTHETIC = generate(11, START, START + timedelta(days=40))


@contextmanager
def engine_for(run: list[testing.Step], data: Any = None) -> Iterator[EventDrivenStrategyEngine]:
    """An engine on a `memory:` store that has played `run`; the store is closed afterwards."""
    engine = EventDrivenStrategyEngine(CONFIG, data=data)
    try:
        asyncio.run(testing.play(engine, run))
        yield engine
    finally:
        engine.ledger.close()


@given(testing.steps(malformed=True))
def test_random_runs_conserve_funds(run: list[testing.Step]) -> None:
    """Whatever is instructed, the books recomputed from the log balance and match the projection."""
    with engine_for(run) as engine:
        testing.check_conservation(engine)


@given(testing.steps(malformed=True))
def test_random_runs_never_record_a_float(run: list[testing.Step]) -> None:
    """Float and NaN inputs (instructions and market data) never reach the stored log as floats."""
    with engine_for(run) as engine:
        testing.check_no_floats(engine)


@given(testing.steps(malformed=True))
def test_random_runs_follow_the_lifecycle_grammar(run: list[testing.Step]) -> None:
    """Every instruction's events are allowed moves and end filled, resting, cancelled, rejected with
    a code, confirmed, completed or in transit."""
    with engine_for(run) as engine:
        testing.check_lifecycle(engine)


@given(testing.steps(malformed=True))
def test_random_runs_rebuild_to_the_live_projection(run: list[testing.Step]) -> None:
    """A projection rebuilt from the store equals the one the engine kept live, also after close()."""
    with engine_for(run) as engine:
        testing.check_rebuild_equals(engine)
        engine.close(views=False)
        testing.check_rebuild_equals(engine)


@given(testing.steps(malformed=False, markets=False))
def test_runs_on_recorded_data_keep_every_invariant(run: list[testing.Step]) -> None:
    """With market data from the provider (funding, AAVE indexes, staking rate) all invariants hold."""
    with engine_for(run, data=SYNTHETIC) as engine:
        testing.check_all(engine)


@given(testing.event_sequences())
def test_event_sequences_fold_like_the_live_view(commands: list[testing.Command]) -> None:
    """Valid VenueLedger commands: the live view, a rebuild and a plain fold agree, and the books,
    the lifecycle and the no-float rule hold on the ledger alone."""
    ledger = Ledger.open("memory:", create=True)
    try:
        live = InMemoryProjection().attach(ledger)
        testing.record_commands(ledger, commands)
        rebuilt = InMemoryProjection()
        rebuilt.rebuild(ledger)
        folded = fold(e for _n, e in ledger.iter_events())
        assert live.state.comparable() == rebuilt.state.comparable() == folded.comparable()
        testing.check_conservation(ledger)
        testing.check_no_floats(ledger)
        testing.check_lifecycle(ledger, final_states=testing.LIVE_FINAL_STATES, state=live.state)
    finally:
        ledger.close()
