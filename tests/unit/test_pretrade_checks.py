"""Pre-trade checks: each failure is one recorded `InstructionRejected` with its code, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest

from ledger.engine import EventDrivenStrategyEngine

MARKET = {"eth_usd_price": D(3000), "gas_price_gwei": D(0)}


@pytest.fixture
def make() -> Iterator[Any]:
    """Engines on `memory:` stores, warmed up with one market observation, closed afterwards."""
    built: list[EventDrivenStrategyEngine] = []

    async def factory(config: dict[str, Any] | None = None) -> EventDrivenStrategyEngine:
        base: dict[str, Any] = {
            "execution_mode": "backtest", "ledger": {"url": "memory:", "views": False},
            "initial_balances": {"binance": {"USDT": 100_000}, "bybit": {"USDT": 50_000},
                                 "ethereum": {"ETH": 10}},
        }
        engine = EventDrivenStrategyEngine({**base, **(config or {})})
        built.append(engine)
        await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
        return engine

    yield factory
    for engine in built:
        engine.ledger.close()


async def rejected(engine: EventDrivenStrategyEngine, instruction: dict[str, Any],
                   market: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `instruction`; assert it was rejected and that the rejection is the only event appended."""
    engine.event_logger.flush()
    before = engine.ledger.max_notification_id()
    result = await engine.execute_trade_with_interface(instruction, market or MARKET)
    engine.event_logger.flush()
    appended = [e for _n, e in engine.ledger.iter_events(after=before)]
    assert result["status"] == "REJECTED", result
    assert [type(e).__name__ for e in appended] == ["InstructionRejected"]
    event = appended[0]
    assert event.instruction_id == result["instruction_id"]
    assert (event.code, event.reason) == (result["code"], result["reason"])
    assert engine.projection.state.orders[result["instruction_id"]].status == "REJECTED"
    return result


def spot(side: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": side,
            "amount": amount, **extra}


def perp(side: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETHUSDT-PERP",
            "side": side, "amount": amount, **extra}


def onchain(operation: str, token: str, amount: Any) -> dict[str, Any]:
    return {"venue_type": "onchain", "operation": operation, "token": token, "amount": amount}


async def test_insufficient_balance(make: Any) -> None:
    """Buying 34 ETH needs 34 x 3001.5 = 102 051 USDT but binance holds 100 000."""
    engine = await make()
    result = await rejected(engine, spot("BUY", 34))
    assert result["code"] == "insufficient_balance" and "102051" in result["reason"]
    assert result["reason"].startswith("amount:")
    assert (await engine.execute_trade_with_interface(spot("BUY", 33), MARKET))["status"] == "FILLED"


async def test_insufficient_balance_to_sell(make: Any) -> None:
    """Selling ETH that the spot wallet does not hold is refused."""
    engine = await make()
    assert (await rejected(engine, spot("SELL", "0.1")))["code"] == "insufficient_balance"


async def test_insufficient_balance_on_chain_counts_gas(make: Any) -> None:
    """Staking all 10 ETH leaves nothing for 90k gas at 50 gwei (0.0045 ETH)."""
    engine = await make()
    result = await rejected(engine, onchain("STAKE", "ETH", 10), {**MARKET, "gas_price_gwei": 50})
    assert result["code"] == "insufficient_balance" and "gas included" in result["reason"]


async def test_insufficient_margin(make: Any) -> None:
    """A 170 ETH perp needs 170 x 3000 x 10 % = 51 000 of initial margin; bybit holds 50 000."""
    engine = await make()
    result = await rejected(engine, perp("LONG", 170))
    assert result["code"] == "insufficient_margin"
    assert (await engine.execute_trade_with_interface(perp("LONG", 160), MARKET))["status"] == "FILLED"


async def test_reducing_a_perp_needs_no_margin(make: Any) -> None:
    """Once a position is open, an order that only reduces it passes whatever the margin."""
    engine = await make({"risk": {"initial_margin": "0.2"}})
    assert (await engine.execute_trade_with_interface(perp("LONG", 80), MARKET))["status"] == "FILLED"
    assert (await rejected(engine, perp("LONG", 10)))["code"] == "insufficient_margin"
    assert (await engine.execute_trade_with_interface(perp("SHORT", 30), MARKET))["status"] == "FILLED"


async def test_no_price(make: Any) -> None:
    """With no bybit perp, ETH spot or ETH USD price in the market data there is nothing to fill at."""
    engine = await make()
    result = await rejected(engine, perp("LONG", 1), {"btc_usd_price": D(60000)})
    assert result["code"] == "no_price" and result["reason"].startswith("market_data:")


async def test_notional_limit(make: Any) -> None:
    """`risk.max_order_notional` 5000: 2 ETH at 3000 (6000 USD) is refused, 1 ETH passes."""
    engine = await make({"risk": {"max_order_notional": 5000}})
    assert (await rejected(engine, spot("BUY", 2)))["code"] == "notional_limit"
    assert (await engine.execute_trade_with_interface(spot("BUY", 1), MARKET))["status"] == "FILLED"


async def test_venue_notional_limit(make: Any) -> None:
    """`risk.venue_max_notional` caps one venue only."""
    engine = await make({"risk": {"venue_max_notional": {"bybit": 1000}}})
    assert (await rejected(engine, perp("SHORT", 1)))["code"] == "notional_limit"
    assert (await engine.execute_trade_with_interface(spot("BUY", 1), MARKET))["status"] == "FILLED"


async def test_slippage_limit_from_the_instruction(make: Any) -> None:
    """`max_slippage_bps` 4 refuses the default 5 bps cost; 5 accepts it."""
    engine = await make()
    result = await rejected(engine, spot("BUY", 1, max_slippage_bps=4))
    assert result["code"] == "slippage_limit" and result["reason"].startswith("max_slippage_bps:")
    assert (await engine.execute_trade_with_interface(spot("BUY", 1, max_slippage_bps=5), MARKET))[
        "status"] == "FILLED"


async def test_slippage_limit_from_the_config(make: Any) -> None:
    """`risk.max_slippage_bps` 3 refuses 5 bps unless the instruction allows more itself."""
    engine = await make({"risk": {"max_slippage_bps": 3}})
    assert (await rejected(engine, spot("BUY", 1)))["code"] == "slippage_limit"
    assert (await engine.execute_trade_with_interface(spot("BUY", 1, max_slippage_bps=10), MARKET))[
        "status"] == "FILLED"


async def test_health_factor(make: Any) -> None:
    """1 ETH supplied at 3000 is 2490 of collateral at the 0.83 threshold: borrowing 2300 USDT would
    leave a health factor of 1.0826, below 1.1; 2000 leaves 1.245."""
    engine = await make()
    supply = await engine.execute_trade_with_interface(onchain("AAVE_SUPPLY", "ETH", 1), MARKET)
    assert supply["status"] == "CONFIRMED"
    result = await rejected(engine, onchain("AAVE_BORROW", "USDT", 2300))
    assert result["code"] == "health_factor" and "1.0826" in result["reason"]
    assert (await engine.execute_trade_with_interface(onchain("AAVE_BORROW", "USDT", 2000), MARKET))[
        "status"] == "CONFIRMED"


async def test_health_factor_from_the_config(make: Any) -> None:
    """`risk.min_health_factor` 1.5 refuses the borrow that leaves 1.245."""
    engine = await make({"risk": {"min_health_factor": "1.5"}})
    await engine.execute_trade_with_interface(onchain("AAVE_SUPPLY", "ETH", 1), MARKET)
    result = await rejected(engine, onchain("AAVE_BORROW", "USDT", 2000))
    assert result["code"] == "health_factor" and "1.2450" in result["reason"]


async def test_reduce_only(make: Any) -> None:
    """reduce_only refuses an order with no position, one that adds, and one that would flip it."""
    engine = await make()
    assert (await rejected(engine, perp("SELL", 1, reduce_only=True)))["code"] == "reduce_only"
    assert (await engine.execute_trade_with_interface(perp("BUY", 2), MARKET))["status"] == "FILLED"
    assert (await rejected(engine, perp("BUY", 1, reduce_only=True)))["code"] == "reduce_only"
    assert (await rejected(engine, perp("SELL", 3, reduce_only=True)))["code"] == "reduce_only"
    reduced = await engine.execute_trade_with_interface(perp("SELL", 2, reduce_only=True), MARKET)
    assert reduced["status"] == "FILLED"
    position = await engine.execution_interfaces["cex"].get_position("ETHUSDT-PERP", "bybit")
    assert position["amount"] == 0
