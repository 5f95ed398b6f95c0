"""Malformed instructions: REJECTED and recorded when they name a known venue, `InstructionError`
otherwise; the field is named either way and nothing else reaches the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest

from aggregates.errors import InstructionError
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_no_floats

MARKET = {"eth_usd_price": 3000.0, "binance_spot_price": 3000.0}
SPOT = {
    "venue_type": "cex",
    "venue": "binance",
    "trade_type": "SPOT",
    "pair": "ETH/USDT",
    "side": "BUY",
    "amount": 1.0,
}
STAKE = {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": 1.0}
MOVE = {
    "venue_type": "transfer",
    "from_venue": "binance",
    "to_venue": "bybit",
    "asset": "USDT",
    "amount": 100,
}


def without(instruction: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in instruction.items() if k != key}


RECORDED = [
    ("unknown venue type", {**SPOT, "venue_type": "dex"}, "unknown_venue_type", "venue_type"),
    ("missing amount", without(SPOT, "amount"), "missing_field", "amount"),
    ("negative amount", {**SPOT, "amount": -1}, "invalid_amount", "amount"),
    ("zero amount", {**SPOT, "amount": "0"}, "invalid_amount", "amount"),
    ("non-numeric amount", {**SPOT, "amount": "one"}, "invalid_amount", "amount"),
    ("NaN amount", {**SPOT, "amount": float("nan")}, "invalid_amount", "amount"),
    ("infinite amount", {**SPOT, "amount": float("inf")}, "invalid_amount", "amount"),
    ("Decimal NaN amount", {**SPOT, "amount": D("NaN")}, "invalid_amount", "amount"),
    ("list amount", {**SPOT, "amount": [1]}, "invalid_amount", "amount"),
    ("boolean amount", {**SPOT, "amount": True}, "invalid_amount", "amount"),
    ("unknown side", {**SPOT, "side": "HOLD"}, "invalid_side", "side"),
    ("missing side", without(SPOT, "side"), "invalid_side", "side"),
    ("LIMIT without price", {**SPOT, "order_type": "LIMIT"}, "missing_field", "price"),
    ("NaN limit price", {**SPOT, "order_type": "LIMIT", "price": float("nan")}, "invalid_field", "price"),
    ("unknown order type", {**SPOT, "order_type": "STOP"}, "invalid_field", "order_type"),
    ("unreadable pair", {**SPOT, "pair": "???"}, "invalid_instrument", "pair"),
    ("unknown operation", {**STAKE, "operation": "FLASHLOAN"}, "unknown_operation", "operation"),
    ("on-chain amount NaN", {**STAKE, "amount": float("nan")}, "invalid_amount", "amount"),
    ("on-chain op at a CEX", {**STAKE, "venue": "binance"}, "wrong_venue_type", "venue"),
    ("order at the chain venue", {**SPOT, "venue": "ethereum"}, "wrong_venue_type", "venue"),
    ("transfer to the same venue", {**MOVE, "to_venue": "binance"}, "same_venue", "to_venue"),
    ("transfer to an unknown venue", {**MOVE, "to_venue": "kraken"}, "unknown_venue", "to_venue"),
    ("transfer with a negative amount", {**MOVE, "amount": "-5"}, "invalid_amount", "amount"),
    ("transfer without an asset", without(MOVE, "asset"), "missing_field", "asset"),
]

RAISED = [
    ("unknown venue type, no venue", without({**SPOT, "venue_type": "dex"}, "venue"), "venue_type"),
    ("no venue type, no venue", without(without(SPOT, "venue_type"), "venue"), "venue_type"),
    ("unknown venue", {**SPOT, "venue": "kraken"}, "venue"),
    ("missing venue", without(SPOT, "venue"), "venue"),
    ("unknown chain venue", {**STAKE, "venue": "solana"}, "venue"),
    ("transfer without a source", without(MOVE, "from_venue"), "from_venue"),
    ("transfer from an unknown venue", {**MOVE, "from_venue": "kraken"}, "from_venue"),
    ("not a dict", "BUY 1 ETH", "instruction"),
    ("None", None, "instruction"),
    ("a float", 1.5, "instruction"),
    ("instruction id not text", {**SPOT, "instruction_id": 5}, "instruction_id"),
]


@pytest.fixture
def engine() -> Iterator[EventDrivenStrategyEngine]:
    built = EventDrivenStrategyEngine(
        {
            "execution_mode": "backtest",
            "initial_capital": 100000,
            "ledger": {"url": "memory:", "views": False},
            "initial_balances": {"ethereum": {"ETH": 5}},
        }
    )
    yield built
    built.ledger.close()


async def warm(engine: EventDrivenStrategyEngine) -> int:
    """Record the first market observation, so the instruction under test is all that is appended."""
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    engine.event_logger.flush()
    return engine.ledger.max_notification_id()


@pytest.mark.parametrize(("label", "instruction", "code", "field"), RECORDED, ids=[r[0] for r in RECORDED])
async def test_bad_input_at_a_known_venue_is_a_recorded_rejection(
    engine: EventDrivenStrategyEngine,
    label: str,
    instruction: dict[str, Any],
    code: str,
    field: str,
) -> None:
    """Rejected with its code and a reason naming the field; only the rejection is stored, holding the
    repr of what arrived."""
    before = await warm(engine)
    result = await engine.execute_trade_with_interface(instruction, MARKET)
    assert result["status"] == "REJECTED" and result["code"] == code
    assert result["reason"].startswith(f"{field}:"), result["reason"]
    assert result["amount"] == 0 and type(result["amount"]) is D
    engine.event_logger.flush()
    appended = [e for _n, e in engine.ledger.iter_events(after=before)]
    assert [type(e).__name__ for e in appended] == ["InstructionRejected"]
    stored = appended[0]
    assert (stored.code, stored.reason) == (code, result["reason"])
    assert stored.received == {k: repr(v) for k, v in instruction.items()}
    assert all(type(v) is str for v in stored.received.values())
    check_no_floats(engine)


@pytest.mark.parametrize(("label", "instruction", "field"), RAISED, ids=[r[0] for r in RAISED])
async def test_bad_input_naming_no_known_venue_raises(
    engine: EventDrivenStrategyEngine,
    label: str,
    instruction: Any,
    field: str,
) -> None:
    """`InstructionError` (a ValueError) names the field, and nothing is appended."""
    before = await warm(engine)
    with pytest.raises(InstructionError) as raised:
        await engine.execute_trade_with_interface(instruction, MARKET)
    assert isinstance(raised.value, ValueError)
    assert raised.value.field == field and str(raised.value).startswith(f"{field}:")
    engine.event_logger.flush()
    assert engine.ledger.max_notification_id() == before
    assert engine.projection.state.orders == {}


async def test_every_interface_refuses_a_non_dict(engine: EventDrivenStrategyEngine) -> None:
    """Calling an interface directly with a non-dict raises `InstructionError` too."""
    for interface in engine.execution_interfaces.values():
        with pytest.raises(InstructionError):
            await interface.execute_trade("not a dict", MARKET)  # type: ignore[arg-type]


async def test_a_rejected_instruction_id_cannot_be_reused(engine: EventDrivenStrategyEngine) -> None:
    """A caller-supplied id that was rejected stays taken at its venue."""
    from aggregates.errors import DuplicateError

    await warm(engine)
    bad = {**SPOT, "side": "HOLD", "instruction_id": "x-1"}
    first = await engine.execute_trade_with_interface(bad, MARKET)
    assert first["status"] == "REJECTED" and first["instruction_id"] == "x-1"
    with pytest.raises(DuplicateError):
        await engine.execute_trade_with_interface({**SPOT, "instruction_id": "x-1"}, MARKET)


def test_a_caller_supplied_instruction_id_is_unique_across_venues(tmp_path: Any) -> None:
    """The same instruction_id at a second venue is refused before anything is recorded there."""
    import asyncio

    from aggregates.errors import DuplicateError

    engine = EventDrivenStrategyEngine(
        {
            "ledger": {"url": f"sqlite:///{tmp_path}/ids.db"},
            "initial_balances": {"binance": {"USDT": 10_000}, "bybit": {"USDT": 10_000}},
        }
    )
    market = {"eth_usd_price": 3000}
    order = {
        "venue_type": "cex",
        "venue": "binance",
        "trade_type": "SPOT",
        "pair": "ETH/USDT",
        "side": "BUY",
        "amount": "1",
        "instruction_id": "same",
    }
    try:
        assert asyncio.run(engine.execute_trade_with_interface(order, market))["status"] == "FILLED"
        with pytest.raises(DuplicateError, match="instruction_id"):
            asyncio.run(engine.execute_trade_with_interface({**order, "venue": "bybit"}, market))
        assert engine.projection.state.orders["same"].venue == "binance"
    finally:
        engine.ledger.close()


def test_a_negative_gas_price_is_refused_not_credited(tmp_path: Any) -> None:
    """A market snapshot with a negative gas price gives a recorded rejection, never an ETH credit."""
    import asyncio

    engine = EventDrivenStrategyEngine(
        {"ledger": {"url": f"sqlite:///{tmp_path}/gas.db"}, "initial_balances": {"ethereum": {"ETH": 1}}}
    )
    try:
        result = asyncio.run(
            engine.execute_trade_with_interface(
                {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": "0.5"},
                {"eth_usd_price": 3000, "gas_price_gwei": -100},
            )
        )
        assert result["status"] == "REJECTED" and "gas_price_gwei" in result["reason"]
        assert engine.position_monitor.balance("ETH", "ethereum") == D(1)
    finally:
        engine.ledger.close()
