"""Property-testing kit for strategies built on the ledger: hypothesis strategies and invariant checkers.

Strategies draw the inputs a desk's code meets: `instructions` (valid and, with `malformed=True`,
malformed instruction dicts), `market_data` (seed-style snapshots, Decimal or float), `steps` (a run:
time moves, markets and instructions), and `event_sequences` (valid `VenueLedger.record_*` commands,
for fold and rebuild properties). The checkers read the stored log and raise `InvariantError` (an
`AssertionError`) naming the first violations:

- `check_conservation(engine)`: an independent fold of the stored events gives the same balances,
  AAVE books, positions, funds in transit and P&L lines as the projection; per asset, everything
  held equals the sum of its recorded flows; transfers neither create nor lose funds; and no balance
  was driven below zero except by venue-side P&L (perpetual fills and funding).
- `check_no_floats(ledger)`: no stored payload holds a JSON float, and no number in it is NaN or
  infinite (the text `received` of a rejection keeps the `repr` of what arrived, SPEC §12.17).
- `check_lifecycle(ledger)`: every instruction's events follow `aggregates.transitions` and end in an
  allowed state (filled, resting, cancelled, rejected with a code, confirmed, completed, in transit).
- `check_rebuild_equals(engine)`: a fresh `InMemoryProjection` rebuilt from the store equals the live one.

Usage with pytest and hypothesis::

    import asyncio
    from hypothesis import given
    from ledger.engine import EventDrivenStrategyEngine
    from ledger import testing

    @given(testing.steps(malformed=True))
    def test_my_strategy_keeps_the_books(steps):
        engine = EventDrivenStrategyEngine({"initial_capital": 100_000, "ledger": {"url": "memory:"}})
        try:
            asyncio.run(testing.play(engine, steps))   # or drive your own strategy here
            testing.check_all(engine)
        finally:
            engine.ledger.close()                      # `memory:` is one database per process
"""

from __future__ import annotations

from ledger.testing.books import Books, independent_books
from ledger.testing.checkers import (
    BACKTEST_FINAL_STATES,
    LIVE_FINAL_STATES,
    check_all,
    check_conservation,
    check_lifecycle,
    check_no_floats,
    check_rebuild_equals,
)
from ledger.testing.common import CEX_VENUES, CHAIN_VENUE, InvariantError
from ledger.testing.inputs import (
    Step,
    amounts,
    cex_orders,
    chain_operations,
    instructions,
    malformed_instructions,
    market_data,
    play,
    steps,
    transfers,
)
from ledger.testing.sequences import Command, event_sequences, record_commands

__all__ = [
    "BACKTEST_FINAL_STATES",
    "CEX_VENUES",
    "CHAIN_VENUE",
    "LIVE_FINAL_STATES",
    "Books",
    "Command",
    "InvariantError",
    "Step",
    "amounts",
    "cex_orders",
    "chain_operations",
    "check_all",
    "check_conservation",
    "check_lifecycle",
    "check_no_floats",
    "check_rebuild_equals",
    "event_sequences",
    "independent_books",
    "instructions",
    "malformed_instructions",
    "market_data",
    "play",
    "record_commands",
    "steps",
    "transfers",
]
