"""The seed's execution-interfaces usage examples, run as written through `EventDrivenStrategyEngine`.

Every expected number is computed by hand from the inputs (SPEC §12.20): 5 bps execution cost and no
fees by default (SPEC §12.12), gas = units x gas price.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from executors import (
    BaseExecutionInterface,
    CEXExecutionInterface,
    ExecutionInterfaceFactory,
    OnChainExecutionInterface,
    TransferExecutionInterface,
)
from ledger.engine import EventDrivenStrategyEngine
from ledger.monitor import PositionMonitor
from ledger.provider import DataProvider
from ledger.recorder import EventRecorder
from projections.reports import in_transit

START = datetime(2024, 1, 1, tzinfo=UTC)
SEED_KEYS = {"status", "amount", "price", "order_id", "execution_mode"}
CEX_KEYS = {"venue", "symbol", "side", "market_price", "execution_cost", "slippage"}
CHAIN_KEYS = {"operation", "amount_out", "tx_hash", "gas_used", "gas_price", "gas_cost"}
OURS = {"instruction_id", "fee", "fee_asset"}
AMOUNT_KEYS = ("amount", "price", "market_price", "execution_cost", "slippage", "fee", "amount_out",
               "gas_cost")

# The seed's instructions, exactly as its "Usage Examples" and "Testing" sections write them.
cex_instruction = {
    "venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
    "amount": 1.0,
}
perp_instruction = {
    "venue_type": "cex", "venue": "bybit", "trade_type": "PERP", "pair": "ETHUSDT-PERP", "side": "LONG",
    "amount": 1.0,
}
aave_instruction = {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "ETH", "amount": 1.0}
staking_instruction = {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": 1.0}
market_data = {"eth_usd_price": 3000.0, "binance_spot_price": 3000.0}


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EventDrivenStrategyEngine]:
    """The seed's backtest config plus opening balances at bybit and the chain wallet."""
    monkeypatch.chdir(tmp_path)  # the seed's relative data/ folder must not resolve to anything real
    config = {
        "execution_mode": "backtest", "data": {"data_dir": "data/"}, "initial_capital": 100000,
        "initial_balances": {"bybit": {"USDT": 50000}, "okx": {"USDT": 50000}, "ethereum": {"ETH": 5}},
        "ledger": {"url": f"sqlite:///{tmp_path}/x.db"},
    }
    built = EventDrivenStrategyEngine(config)
    yield built
    built.ledger.close()


def assert_amounts_are_decimals(result: dict[str, Any]) -> None:
    for key in AMOUNT_KEYS:
        if key in result:
            assert type(result[key]) is D, f"{key} is {type(result[key]).__name__}"
    for key in ("gas_used", "gas_price"):
        if key in result:
            assert type(result[key]) is int


async def test_spot_buy_fills_at_3001_5(engine: EventDrivenStrategyEngine) -> None:
    """The seed's spot buy of 1 ETH at 3000 fills at 3000 x 1.0005 = 3001.5 with the seed's result keys."""
    result = await engine.execute_trade_with_interface(cex_instruction, market_data)
    assert result["status"] == "FILLED"
    assert result["price"] == D("3001.5") and result["amount"] == D("1.0")
    assert result["market_price"] == D("3000.0") and result["execution_cost"] == D(5)
    assert result["slippage"] == D("0.0005") and result["fee"] == 0
    assert result["execution_mode"] == "backtest" and result["order_id"]
    assert set(result) >= SEED_KEYS | CEX_KEYS | OURS
    assert_amounts_are_decimals(result)
    assert await engine.execution_interfaces["cex"].get_balance("USDT", "binance") == D("96998.5")
    assert await engine.execution_interfaces["cex"].get_balance("ETH", "binance") == D(1)


async def test_perp_long_on_bybit_fills_at_3011_505(engine: EventDrivenStrategyEngine) -> None:
    """The seed's perp long quoted at 3010 fills at 3010 x 1.0005 = 3011.505 and opens a +1 position."""
    quoted = {**market_data, "bybit_perp_price": 3010.0}
    result = await engine.execute_trade_with_interface(perp_instruction, quoted)
    assert result["status"] == "FILLED" and result["price"] == D("3011.505")
    assert result["symbol"] == "ETH/USDT:USDT" and result["side"] == "LONG"
    assert set(result) >= SEED_KEYS | CEX_KEYS | OURS
    assert_amounts_are_decimals(result)
    position = await engine.execution_interfaces["cex"].get_position("ETHUSDT-PERP", "bybit")
    assert position["amount"] == D(1) and position["entry_price"] == D("3011.505")
    assert await engine.execution_interfaces["cex"].get_balance("USDT", "bybit") == D(50000)


async def test_aave_supply_and_staking_are_confirmed_with_gas_from_the_gas_price(
    engine: EventDrivenStrategyEngine,
) -> None:
    """AAVE supply (wrap 45k + approve 46k + supply 210k gas) and staking (90k gas) at 20 gwei charge
    0.00602 and 0.0018 ETH."""
    market = {**market_data, "gas_price_gwei": 20}
    supply = await engine.execute_trade_with_interface(aave_instruction, market)
    assert supply["status"] == "CONFIRMED" and supply["operation"] == "AAVE_SUPPLY"
    assert supply["gas_used"] == 301_000 and supply["gas_price"] == 20 * 10**9
    assert supply["gas_cost"] == D("0.00602") and supply["fee"] == D("0.00602")
    assert supply["amount_out"] == D(1) and supply["tx_hash"].startswith("0x")
    stake = await engine.execute_trade_with_interface(staking_instruction, market)
    assert stake["status"] == "CONFIRMED" and stake["gas_cost"] == D("0.0018")
    assert stake["amount_out"] == D(1) and stake["token_out"] == "WEETH"
    for result in (supply, stake):
        assert set(result) >= SEED_KEYS | CHAIN_KEYS | OURS
        assert_amounts_are_decimals(result)
    monitor = engine.position_monitor
    assert monitor.balance("ETH", "ethereum") == D(5) - 2 - D("0.00602") - D("0.0018")
    assert monitor.supplied("ethereum", "WETH") == D(1)
    assert monitor.balance("WEETH", "ethereum") == D(1)
    assert monitor.pnl()["gas"] == -(D("0.00602") + D("0.0018")) * 3000


async def test_transfer_is_in_transit_until_the_delay_has_passed(engine: EventDrivenStrategyEngine) -> None:
    """binance -> ethereum is IN_TRANSIT (visible in the projection) and arrives 30 minutes later."""
    await engine.execute_trade_with_interface(cex_instruction, market_data)
    transfer = {"venue_type": "transfer", "from_venue": "binance", "to_venue": "ethereum", "asset": "ETH",
                "amount": 0.5}
    result = await engine.execute_trade_with_interface(transfer, market_data)
    assert result["status"] == "IN_TRANSIT" and result["transfer_id"] and result["amount"] == D("0.5")
    assert SEED_KEYS | OURS | {"transfer_id"} <= set(result)
    assert_amounts_are_decimals(result)
    state = engine.projection.state
    assert in_transit(state) == {"ETH": D("0.5")}
    assert engine.position_monitor.balance("ETH", "binance") == D("0.5")
    await engine.advance_to(START + timedelta(minutes=29), market_data)
    assert in_transit(state) == {"ETH": D("0.5")}
    await engine.advance_to(START + timedelta(minutes=30), market_data)
    assert in_transit(state) == {}
    assert engine.position_monitor.balance("ETH", "ethereum") == D("5.5")
    assert state.orders[result["instruction_id"]].status == "COMPLETED"


def test_factory_refuses_an_unknown_interface_type() -> None:
    """`create_interface('bogus', ...)` raises the seed's ValueError."""
    with pytest.raises(ValueError, match="Unsupported interface type: bogus"):
        ExecutionInterfaceFactory.create_interface("bogus", "backtest", {})


def test_factory_creates_and_wires_all_interfaces(tmp_path: Path) -> None:
    """`create_all_interfaces` gives cex/onchain/transfer; `set_interface_dependencies` wires each one."""
    interfaces = ExecutionInterfaceFactory.create_all_interfaces("backtest", {})
    assert {k: type(v) for k, v in interfaces.items()} == {
        "cex": CEXExecutionInterface, "onchain": OnChainExecutionInterface,
        "transfer": TransferExecutionInterface,
    }
    assert all(isinstance(i, BaseExecutionInterface) and i.execution_mode == "backtest"
               for i in interfaces.values())
    assert all(i.position_update_handler is None for i in interfaces.values())
    assert len({id(i.transfers) for i in interfaces.values()}) == 1
    monitor, logger, provider = object(), object(), object()
    ExecutionInterfaceFactory.set_interface_dependencies(interfaces, monitor, logger, provider)
    for interface in interfaces.values():
        assert interface.position_monitor is monitor
        assert interface.event_logger is logger and interface.data_provider is provider


def test_engine_wires_the_seeds_components(engine: EventDrivenStrategyEngine) -> None:
    """The engine's interfaces share its monitor, event logger and data provider and its handler."""
    assert set(engine.execution_interfaces) == {"cex", "onchain", "transfer"}
    assert isinstance(engine.position_monitor, PositionMonitor)
    assert isinstance(engine.event_logger, EventRecorder)
    assert isinstance(engine.data_provider, DataProvider)
    for interface in engine.execution_interfaces.values():
        assert interface.position_monitor is engine.position_monitor
        assert interface.event_logger is engine.event_logger
        assert interface.data_provider is engine.data_provider
        assert interface.position_update_handler == engine.position_update_handler


async def test_update_handler_runs_after_every_append(engine: EventDrivenStrategyEngine) -> None:
    """After each instruction `engine.latest` holds that result with position, exposure, risk and P&L."""
    seen = []
    for instruction, market in [
        (cex_instruction, market_data), (perp_instruction, {**market_data, "bybit_perp_price": 3010.0}),
        (aave_instruction, market_data), (staking_instruction, market_data),
    ]:
        result = await engine.execute_trade_with_interface(instruction, market)
        assert engine.latest["result"] is result
        assert {"exposure", "risk", "pnl"} <= set(engine.latest)
        seen.append(engine.latest)
    assert seen[0]["position"]["symbol"] == "ETH/USDT" and seen[0]["position"]["amount"] == D(1)
    assert seen[1]["position"]["amount"] == D(1) and seen[1]["position"]["venue"] == "bybit"
    # 1 spot + 1 perp + 5 at the chain wallet, less the gas spent by then (10 gwei by default).
    assert seen[1]["exposure"]["ETH"] == D(7)
    assert seen[2]["exposure"]["ETH"] == D(7) - D("0.00301")
    assert seen[1]["risk"]["margin_use"]["bybit"] > 0
    assert set(seen[3]["pnl"]) >= {
        "realised", "revaluation", "fees", "funding", "gas", "supply_interest", "borrow_cost", "rewards",
        "withdrawal_fees", "liquidation", "total"}


async def test_balance_sums_and_position_nets_over_venues(engine: EventDrivenStrategyEngine) -> None:
    """`get_balance(asset)` sums every venue; `get_position(symbol)` nets a bybit long and an okx short."""
    cex = engine.execution_interfaces["cex"]
    market = {"eth_usd_price": 3000}
    await engine.execute_trade_with_interface(cex_instruction, market)
    await engine.execute_trade_with_interface({**perp_instruction, "amount": "1"}, market)
    await engine.execute_trade_with_interface(
        {**perp_instruction, "venue": "okx", "side": "SHORT", "amount": "0.4"}, market)
    assert await cex.get_balance("ETH") == D(6)
    assert await cex.get_balance("ETH", "binance") == D(1)
    assert await cex.get_balance("USDT") == D("96998.5") + 50000 + 50000
    net = await cex.get_position("ETHUSDT-PERP")
    assert net["amount"] == D("0.6") and net["symbol"] == "ETH/USDT:USDT"
    assert (await cex.get_position("ETHUSDT-PERP", "okx"))["amount"] == D("-0.4")
    assert {"symbol", "venue", "amount", "entry_price", "unrealized_pnl"} <= set(net)


async def test_cancel_all_orders_cancels_a_resting_limit_order(engine: EventDrivenStrategyEngine) -> None:
    """A LIMIT buy below the market rests (SUBMITTED); `cancel_all_orders` cancels it."""
    limit = {**cex_instruction, "order_type": "LIMIT", "price": "2900"}
    placed = await engine.execute_trade_with_interface(limit, market_data)
    assert placed["status"] == "SUBMITTED" and placed["amount"] == 0
    state = engine.projection.state
    assert state.orders[placed["instruction_id"]].status == "ACKNOWLEDGED"
    answer = await engine.execution_interfaces["cex"].cancel_all_orders()
    assert answer == {"status": "COMPLETED", "cancelled_orders": [placed["instruction_id"]],
                      "execution_mode": "backtest"}
    assert state.orders[placed["instruction_id"]].status == "CANCELLED"
    assert (await engine.execution_interfaces["cex"].cancel_all_orders())["cancelled_orders"] == []
    engine.event_logger.flush()
    names = [type(e).__name__ for _n, e in engine.ledger.iter_events()
             if getattr(e, "instruction_id", None) == placed["instruction_id"]]
    assert names == ["InstructionAccepted", "OrderSubmitted", "OrderAcknowledged", "CancelRequested",
                     "OrderCancelled"]
