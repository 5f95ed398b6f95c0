"""Simulated execution against hand-computed numbers: costs by bucket, fees, perp P&L, resting orders,
funding from data, AAVE interest, staking rewards, transfer fees and delays, two-phase unstaking."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from executors.costs import SEED_BUCKETED
from ledger.engine import EventDrivenStrategyEngine
from ledger.marketdata import FundingPoint, MarketData
from projections.reports import in_transit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ETH = {"eth_usd_price": D(3000)}
Engines = Iterator[Any]


@pytest.fixture
def make() -> Engines:
    """Build engines on `memory:` stores and close every one afterwards (one memory store per process)."""
    built: list[EventDrivenStrategyEngine] = []

    def factory(config: dict[str, Any] | None = None, data: MarketData | None = None,
                ) -> EventDrivenStrategyEngine:
        base: dict[str, Any] = {
            "execution_mode": "backtest", "ledger": {"url": "memory:", "views": False},
            "initial_balances": {"binance": {"USDT": 1_000_000, "ETH": 10}, "bybit": {"USDT": 1_000_000},
                                 "ethereum": {"ETH": 10, "USDT": 10_000}},
        }
        engine = EventDrivenStrategyEngine({**base, **(config or {})}, data=data)
        built.append(engine)
        return engine

    yield factory
    for engine in built:
        engine.ledger.close()


def order(venue: str, side: str, amount: Any, perp: bool = False, **extra: Any) -> dict[str, Any]:
    return {"venue_type": "cex", "venue": venue, "trade_type": "PERP" if perp else "SPOT",
            "pair": "ETHUSDT-PERP" if perp else "ETH/USDT", "side": side, "amount": amount, **extra}


def chain(operation: str, token: str, amount: Any) -> dict[str, Any]:
    return {"venue_type": "onchain", "operation": operation, "token": token, "amount": amount}


def events(engine: EventDrivenStrategyEngine, name: str) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == name]


async def test_a_sell_fills_below_the_market(make: Any) -> None:
    """A 1 ETH spot sell at 3000 fills at 3000 x (1 - 0.0005) = 2998.5 and pays out 2998.5 USDT."""
    engine = make()
    result = await engine.execute_trade_with_interface(order("binance", "SELL", 1), ETH)
    assert result["status"] == "FILLED" and result["price"] == D("2998.5")
    assert engine.position_monitor.balance("USDT", "binance") == D(1_000_000) + D("2998.5")
    assert engine.position_monitor.balance("ETH", "binance") == D(9)


@pytest.mark.parametrize(("perp", "side", "amount", "bps", "price"), [
    (False, "BUY", "1", 5, "3001.5"),      # 3000 USD notional: up to 10k -> 5 bps
    (False, "BUY", "10", 7, "3002.1"),     # 30k: up to 100k -> 7 bps
    (False, "BUY", "100", 13, "3003.9"),   # 300k: up to 1M -> 13 bps
    (False, "SELL", "5", 7, "2997.9"),     # 15k: 7 bps below
    (True, "LONG", "1", 3, "3000.9"),      # perps: 3 / 4 / 8 bps
    (True, "LONG", "10", 4, "3001.2"),
    (True, "SHORT", "100", 8, "2997.6"),
    (True, "LONG", "400", 8, "3002.4"),    # 1.2M is above the last bucket: its rate still applies
])
async def test_seed_bucketed_costs_apply_by_size(
    make: Any, perp: bool, side: str, amount: str, bps: int, price: str,
) -> None:
    """The shipped SEED_BUCKETED table prices each order by its USD notional bucket."""
    engine = make({**SEED_BUCKETED, "risk": {"initial_margin": "0.5"}})
    result = await engine.execute_trade_with_interface(order("bybit" if perp else "binance", side, amount,
                                                             perp), ETH)
    assert result["status"] == "FILLED", result.get("reason")
    assert result["execution_cost"] == bps and result["price"] == D(price)


async def test_bucket_edge_belongs_to_the_lower_bucket(make: Any) -> None:
    """An order of exactly 10 000 USD notional is still in the 5 bps bucket."""
    engine = make(SEED_BUCKETED)
    result = await engine.execute_trade_with_interface(order("binance", "BUY", "4"), {"eth_usd_price": 2500})
    assert result["execution_cost"] == 5 and result["price"] == D("2501.25")


async def test_taker_and_maker_fees(make: Any) -> None:
    """Taker 10 bps on a market fill (3001.5 x 0.001 = 3.0015); maker 2 bps on a resting fill
    (2990 x 0.0002 = 0.598), both paid in USDT."""
    engine = make({"fees": {"binance": {"maker": "0.0002", "taker": "0.001"}}})
    taker = await engine.execute_trade_with_interface(order("binance", "BUY", 1), ETH)
    assert taker["fee"] == D("3.0015") and taker["fee_asset"] == "USDT"
    assert engine.position_monitor.balance("USDT", "binance") == D(1_000_000) - D("3001.5") - D("3.0015")
    resting = await engine.execute_trade_with_interface(
        order("binance", "BUY", 1, order_type="LIMIT", price="2990"), ETH)
    assert resting["status"] == "SUBMITTED"
    await engine.advance_to(T0 + timedelta(minutes=1), {"eth_usd_price": D(2985)})
    fill = events(engine, "OrderFilled")[-1]
    assert (fill.liquidity, fill.price, fill.fee) == ("maker", D(2990), D("0.598"))
    assert engine.projection.state.orders[resting["instruction_id"]].status == "FILLED"
    assert engine.position_monitor.pnl()["fees"] == -(D("3.0015") + D("0.598"))


async def test_fees_per_trade_type(make: Any) -> None:
    """A PERP fee table applies to perps only; spot at the same venue stays fee-free."""
    engine = make({"fees": {"bybit": {"PERP": {"taker": "0.00055"}}},
                   "initial_balances": {"bybit": {"USDT": 100_000, "ETH": 2}}})
    perp = await engine.execute_trade_with_interface(order("bybit", "LONG", 2, perp=True), ETH)
    spot = await engine.execute_trade_with_interface(order("bybit", "SELL", 1), ETH)
    assert perp["fee"] == D("3.301650")  # 2 x 3001.5 x 0.00055
    assert spot["fee"] == 0


async def test_perp_close_realises_pnl(make: Any) -> None:
    """Long 1 at 3001.5, closed at 3100 x 0.9995 = 3098.45: realised 96.95 USDT into the margin wallet."""
    engine = make()
    await engine.execute_trade_with_interface(order("bybit", "LONG", 1, perp=True), ETH)
    close = await engine.execute_trade_with_interface(order("bybit", "SHORT", 1, perp=True),
                                                      {"eth_usd_price": D(3100)})
    assert close["price"] == D("3098.45")
    position = await engine.execution_interfaces["cex"].get_position("ETHUSDT-PERP", "bybit")
    assert position["amount"] == 0 and position["realized_pnl"] == D("96.95")
    assert engine.position_monitor.balance("USDT", "bybit") == D(1_000_000) + D("96.95")
    assert engine.position_monitor.pnl()["realised"] == D("96.95")


async def test_perp_flip_closes_then_opens(make: Any) -> None:
    """Long 1 at 3001.5, sell 3 at 3098.45: realise 96.95 on the 1 closed, then short 2 at 3098.45."""
    engine = make()
    await engine.execute_trade_with_interface(order("bybit", "BUY", 1, perp=True), ETH)
    await engine.execute_trade_with_interface(order("bybit", "SELL", 3, perp=True), {"eth_usd_price": 3100})
    position = await engine.execution_interfaces["cex"].get_position("ETHUSDT-PERP", "bybit")
    assert position["amount"] == D(-2) and position["entry_price"] == D("3098.45")
    assert position["realized_pnl"] == D("96.95")
    assert engine.position_monitor.balance("USDT", "bybit") == D(1_000_000) + D("96.95")


async def test_resting_sell_fills_when_the_market_rises_through_it(make: Any) -> None:
    """A LIMIT sell at 3050 rests at 3000, stays at 3040, and fills at its own price at 3051."""
    engine = make()
    placed = await engine.execute_trade_with_interface(
        order("binance", "SELL", 2, order_type="LIMIT", price=3050), ETH)
    assert placed["status"] == "SUBMITTED"
    await engine.advance_to(T0 + timedelta(minutes=1), {"eth_usd_price": D(3040)})
    assert engine.projection.state.orders[placed["instruction_id"]].status == "ACKNOWLEDGED"
    await engine.advance_to(T0 + timedelta(minutes=2), {"eth_usd_price": D(3051)})
    assert engine.projection.state.orders[placed["instruction_id"]].status == "FILLED"
    assert engine.position_monitor.balance("USDT", "binance") == D(1_000_000) + 2 * D(3050)
    assert engine.position_monitor.balance("ETH", "binance") == D(8)


async def test_funding_is_settled_from_the_data(make: Any) -> None:
    """Funding = -position x mark x rate at the data's times: -2 x 3050 x 0.0001 = -0.61 on a long,
    then +1 x 3100 x 0.0002 = +0.62 once the position is short 1."""
    times = [T0, T0 + timedelta(hours=8), T0 + timedelta(hours=16)]
    rows = [{"eth_usd_price": D(3000), "bybit_eth_perp_price": D(3000)},
            {"eth_usd_price": D(3040), "bybit_eth_perp_price": D(3050)},
            {"eth_usd_price": D(3090), "bybit_eth_perp_price": D(3100)}]
    funding = [FundingPoint(times[1], "bybit", "ETH", D("0.0001")),
               FundingPoint(times[2], "bybit", "ETH", D("0.0002")),
               FundingPoint(times[1], "okx", "ETH", D("0.5"))]  # no position at okx: nothing to pay
    engine = make(data=MarketData.build("hand-built", times, rows, funding))
    await engine.advance_to(T0)
    await engine.execute_trade_with_interface(order("bybit", "LONG", 2, perp=True))
    await engine.advance_to(times[1])
    settled = events(engine, "FundingSettled")
    assert [(e.amount, e.mark_price, e.position, e.rate) for e in settled] == [
        (D("-0.61"), D(3050), D(2), D("0.0001"))]
    await engine.execute_trade_with_interface(order("bybit", "SHORT", 3, perp=True))
    await engine.advance_to(times[2])
    assert events(engine, "FundingSettled")[-1].amount == D("0.62")
    fills = events(engine, "OrderFilled")
    realised = 2 * (fills[1].price - fills[0].price)
    assert engine.position_monitor.balance("USDT", "bybit") == D(1_000_000) - D("0.61") + D("0.62") + realised
    assert engine.position_monitor.pnl()["funding"] == D("0.01")


async def test_aave_interest_follows_the_index_ratio(make: Any) -> None:
    """Supplied 2 WETH at index 1.25; at 1.2625 (x1.01) interest is 0.02, at 1.275125 (x1.01) 0.0202;
    a 1000 USDT debt at borrow index 1.1 grows to 1010 at 1.111."""
    engine = make()

    def market(supply: str, borrow: str) -> dict[str, Any]:
        return {**ETH, "gas_price_gwei": 0, "aave_weth_supply_index": D(supply),
                "aave_usdt_borrow_index": D(borrow)}

    await engine.advance_to(T0, market("1.25", "1.1"))
    first = market("1.25", "1.1")
    assert (await engine.execute_trade_with_interface(chain("AAVE_SUPPLY", "ETH", 2), first))[
        "status"] == "CONFIRMED"
    borrow = await engine.execute_trade_with_interface(chain("AAVE_BORROW", "USDT", 1000), first)
    assert borrow["status"] == "CONFIRMED", borrow.get("reason")
    await engine.advance_to(T0 + timedelta(hours=1), market("1.2625", "1.111"))
    monitor = engine.position_monitor
    assert monitor.supplied("ethereum", "WETH") == D("2.02")
    assert monitor.borrowed("ethereum", "USDT") == D(1010)
    await engine.advance_to(T0 + timedelta(hours=2), market("1.275125", "1.111"))
    assert monitor.supplied("ethereum", "WETH") == D("2.0402")
    accrued = [(e.asset, e.side, e.amount) for e in events(engine, "InterestAccrued")]
    assert accrued == [("USDT", "borrowed", D(10)), ("WETH", "supplied", D("0.02")),
                       ("WETH", "supplied", D("0.0202"))]
    assert monitor.pnl()["supply_interest"] == (D("0.02") + D("0.0202")) * 3000
    assert monitor.pnl()["borrow_cost"] == -10


async def test_interest_does_not_accrue_while_nothing_is_supplied(make: Any) -> None:
    """Supply, withdraw everything, let the index move, supply again: interest counts only held time."""
    engine = make()

    def market(index: str) -> dict[str, Any]:
        return {**ETH, "gas_price_gwei": 0, "aave_weth_supply_index": D(index)}

    await engine.advance_to(T0, market("1.0"))
    await engine.execute_trade_with_interface(chain("AAVE_SUPPLY", "ETH", 1), market("1.0"))
    await engine.advance_to(T0 + timedelta(hours=1), market("1.1"))
    await engine.execute_trade_with_interface(chain("AAVE_WITHDRAW", "ETH", "1.1"), market("1.1"))
    await engine.advance_to(T0 + timedelta(hours=2), market("1.2"))
    await engine.execute_trade_with_interface(chain("AAVE_SUPPLY", "ETH", 1), market("1.2"))
    await engine.advance_to(T0 + timedelta(hours=3), market("1.2"))
    assert engine.position_monitor.supplied("ethereum", "WETH") == D(1)
    await engine.advance_to(T0 + timedelta(hours=4), market("1.32"))
    assert engine.position_monitor.supplied("ethereum", "WETH") == D("1.1")


async def test_staking_receipt_and_rewards_follow_the_rate(make: Any) -> None:
    """1.05 ETH staked at weeth_eth_rate 1.05 gives 1 WEETH; the rate rising to 1.06 is a reward of
    1 x 0.01 ETH = 30 USD at 3000."""
    engine = make()
    market = {**ETH, "gas_price_gwei": 0, "weeth_eth_rate": D("1.05")}
    await engine.advance_to(T0, market)
    result = await engine.execute_trade_with_interface(chain("STAKE", "ETH", "1.05"), market)
    assert result["amount_out"] == D(1) and result["token_out"] == "WEETH"
    assert engine.position_monitor.balance("WEETH", "ethereum") == D(1)
    assert engine.position_monitor.pnl()["rewards"] == 0
    await engine.advance_to(T0 + timedelta(hours=1), {**market, "weeth_eth_rate": D("1.06")})
    assert engine.position_monitor.pnl()["rewards"] == D(30)
    assert engine.position_monitor.exposure()["ETH"] == D(10) - D("1.05") + D("1.06") + 10


async def test_staking_at_a_non_unit_rate(make: Any) -> None:
    """2 ETH at rate 1.04 gives 2 / 1.04 = 1.923076923076923077 WEETH (18 decimals)."""
    engine = make()
    result = await engine.execute_trade_with_interface(
        chain("STAKE", "ETH", 2), {**ETH, "weeth_eth_rate": D("1.04")})
    assert result["amount_out"] == D("1.923076923076923077")


async def test_transfer_withdrawal_fee_and_route_delay(make: Any) -> None:
    """binance -> bybit with a 1 USDT withdrawal fee and a 10 minute route: source -1001, arrives +1000
    after 10 minutes."""
    engine = make({"transfers": {"withdrawal_fees": {"binance": {"USDT": 1}},
                                 "delays_minutes": {"binance->bybit": 10}}})
    result = await engine.execute_trade_with_interface(
        {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit", "asset": "USDT",
         "amount": 1000}, ETH)
    assert result["status"] == "IN_TRANSIT" and result["fee"] == 1 and result["fee_asset"] == "USDT"
    assert result["expected_arrival"] == (T0 + timedelta(minutes=10)).isoformat()
    monitor = engine.position_monitor
    assert monitor.balance("USDT", "binance") == D(1_000_000) - 1001
    await engine.advance_to(T0 + timedelta(minutes=9), ETH)
    assert in_transit(engine.projection.state) == {"USDT": D(1000)}
    assert monitor.balance("USDT", "bybit") == D(1_000_000)
    await engine.advance_to(T0 + timedelta(minutes=10), ETH)
    assert monitor.balance("USDT", "bybit") == D(1_001_000)
    assert in_transit(engine.projection.state) == {}
    assert monitor.pnl()["withdrawal_fees"] == -1 and monitor.pnl()["fees"] == 0


async def test_transfer_default_delay_is_thirty_minutes(make: Any) -> None:
    """With no route configured the transfer arrives after the default 30 minutes, with no fee."""
    engine = make()
    await engine.execute_trade_with_interface(
        {"venue_type": "transfer", "source_venue": "ethereum", "target_venue": "binance", "asset": "ETH",
         "amount": "2"}, ETH)
    await engine.advance_to(T0 + timedelta(minutes=29, seconds=59), ETH)
    assert engine.position_monitor.balance("ETH", "binance") == D(10)
    await engine.advance_to(T0 + timedelta(minutes=30), ETH)
    assert engine.position_monitor.balance("ETH", "binance") == D(12)
    assert engine.position_monitor.balance("ETH", "ethereum") == D(8)


async def test_unstake_is_claimed_after_the_delay(make: Any) -> None:
    """Unstaking 1 WEETH at rate 1.02 requests 1.02 ETH; it is claimable after the 2-day delay, and the
    claim's 80k gas is paid at the gas price then (25 gwei: 0.002 ETH)."""
    engine = make({"staking": {"unstake_delay_days": 2}})
    market = {**ETH, "gas_price_gwei": 0, "weeth_eth_rate": D(1)}
    await engine.advance_to(T0, market)
    await engine.execute_trade_with_interface(chain("STAKE", "ETH", 2), market)
    later = {**market, "weeth_eth_rate": D("1.02")}
    result = await engine.execute_trade_with_interface(chain("UNSTAKE", "WEETH", 1), later)
    assert result["status"] == "CONFIRMED" and result["amount_out"] == D("1.02")
    assert result["token_out"] == "ETH"
    monitor, state = engine.position_monitor, engine.projection.state
    assert monitor.balance("WEETH", "ethereum") == D(1)
    assert monitor.balance("ETH", "ethereum", "wallet:unstaking") == D("1.02")
    assert state.orders[result["instruction_id"]].status == "TX_CONFIRMED"
    await engine.advance_to(T0 + timedelta(days=1), {**later, "gas_price_gwei": 25})
    assert monitor.balance("ETH", "ethereum", "wallet") == D(8)
    await engine.advance_to(T0 + timedelta(days=2), {**later, "gas_price_gwei": 25})
    assert monitor.balance("ETH", "ethereum", "wallet") == D(8) + D("1.02") - D("0.002")
    assert monitor.balance("ETH", "ethereum", "wallet:unstaking") == 0
    assert state.orders[result["instruction_id"]].status == "COMPLETED"


async def test_a_claim_waits_until_the_wallet_can_pay_its_gas(make: Any) -> None:
    """With no ETH left for the claim's gas (80k at 100 gwei = 0.008 ETH) the claim waits; once gas is
    affordable it goes through, and no balance ever went negative."""
    from ledger.testing import check_conservation

    engine = make({"staking": {"unstake_delay_days": 1}, "initial_balances": {"ethereum": {"ETH": "0.002"}}})
    market = {**ETH, "gas_price_gwei": 0}
    await engine.advance_to(T0, market)
    await engine.execute_trade_with_interface(chain("STAKE", "ETH", "0.002"), market)
    result = await engine.execute_trade_with_interface(chain("UNSTAKE", "WEETH", "0.002"), market)
    await engine.advance_to(T0 + timedelta(days=2), {**market, "gas_price_gwei": 100})
    monitor, state = engine.position_monitor, engine.projection.state
    assert monitor.balance("ETH", "ethereum", "wallet") == 0
    assert state.orders[result["instruction_id"]].status == "TX_CONFIRMED"
    await engine.advance_to(T0 + timedelta(days=3), market)
    assert monitor.balance("ETH", "ethereum", "wallet") == D("0.002")
    assert state.orders[result["instruction_id"]].status == "COMPLETED"
    check_conservation(engine)
