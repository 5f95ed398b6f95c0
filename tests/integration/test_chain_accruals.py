"""Live AAVE interest and staking value pollers (`executors.live.chain_accruals`, SPEC §12.18) on a real
anvil with the real AAVE v3 Pool and the staking contract: what the chain accrued is recorded once, and
the projection then equals the chain's aToken, debt-token and receipt-token values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from executors.costs import ConfigError
from executors.live.chain_accruals import poll_interval
from tests.chain import abi
from tests.chain.harness import Chain
from tests.integration import test_live_chain as live
from tests.integration.test_live_chain import Desk, MakeDesk

pytest_plugins = ["tests.chain.fixtures"]
make_desk = live.make_desk  # the live chain tests' desk fixture: a funded actor and a live engine
_checks = live._checks

D = Decimal
YEAR_S = 365 * 24 * 3600
MARKET = {"eth_usd_price": "3000", "usdt_usd_price": "1"}
RATE_UNIT = 10**18


def _units(value: int, decimals: int) -> Decimal:
    return Decimal(value).scaleb(-decimals)


async def _advance(desk: Desk) -> None:
    await desk.engine.advance_to(datetime.now(UTC), MARKET)


async def _aave_balances(desk: Desk, chain: Chain, token: str) -> tuple[Decimal, Decimal]:
    """The wallet's aToken and variable-debt balances of `token` on chain, in token units."""
    a_token, debt = await desk.reserve_tokens(token)
    decimals = await chain.erc20(token).functions.decimals().call()
    supplied = await chain.erc20(a_token).functions.balanceOf(desk.address).call()
    borrowed = await chain.erc20(debt).functions.balanceOf(desk.address).call()
    return _units(supplied, decimals), _units(borrowed, decimals)


async def test_interest_accrued_is_recorded_once_and_books_equal_the_chain(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """Supply 10,000 USDT (and 100 ETH as collateral), borrow 200,000 USDT, travel a year (the next
    block's timestamp): an advance records `InterestAccrued` for
    the supplied and the borrowed side (amount = chain balance - book, index = the reserve's normalised
    income / variable debt in ray), after which both books equal the aToken and debt-token balances to
    the base unit; a second advance at the same block records nothing; the P&L attribution shows the
    supply interest and the borrow cost."""
    desk = await make_desk("accrual-aave", accrual_poll_s=0)
    await _advance(desk)
    usdt = chain.market.usdt
    assert (await desk.run(operation="AAVE_SUPPLY", token="USDT", amount="10000"))["status"] == "CONFIRMED"
    assert (await desk.run(operation="AAVE_SUPPLY", token="ETH", amount="100"))["status"] == "CONFIRMED"
    assert (await desk.run(operation="AAVE_BORROW", token="USDT", amount="200000"))["status"] == "CONFIRMED"
    await _advance(desk)  # whatever accrued over the few blocks of the instructions
    before = desk.events("InterestAccrued")

    # Blocks are 12 s apart by the harness's interval, which `evm_increaseTime` does not move.
    await chain.control.mine_at(await chain.control.latest_timestamp() + YEAR_S)
    await _advance(desk)
    block = await chain.w3.eth.get_block("latest")
    new = desk.events("InterestAccrued")[len(before):]
    assert sorted((e.asset, e.side) for e in new) == [("USDT", "borrowed"), ("USDT", "supplied")]
    assert all(e.accrual_id == f"USDT:{e.side}:{block['number']}" for e in new)
    assert all(e.ts_event == datetime.fromtimestamp(block["timestamp"], UTC) for e in new)
    assert all(isinstance(e.amount, Decimal) and e.amount > 0 for e in new)

    supplied, borrowed = await _aave_balances(desk, chain, usdt)
    assert desk.supplied("USDT") == supplied
    assert desk.borrowed("USDT") == borrowed
    # The book is exactly the principal plus every recorded accrual (nothing else moved it).
    accrued = {side: sum((e.amount for e in desk.events("InterestAccrued") if e.side == side), D(0))
               for side in ("supplied", "borrowed")}
    assert supplied == D(10000) + accrued["supplied"]
    assert borrowed == D(200000) + accrued["borrowed"]
    # A year of 200,000 USDT borrowed from a 10M reserve (2 % utilisation, ~0.09 %/year) is about
    # 180 USDT; our 0.1 % of the reserve's supply earns about 0.16 of it.
    assert D(100) < accrued["borrowed"] < D(300) and D("0.05") < accrued["supplied"] < D(1)
    weth_supplied, weth_borrowed = await _aave_balances(desk, chain, chain.market.weth)
    assert (desk.supplied("WETH"), desk.borrowed("WETH")) == (weth_supplied, weth_borrowed)

    pool = chain.w3.eth.contract(address=chain.market.pool, abi=_INDEX_ABI)
    income = await pool.functions.getReserveNormalizedIncome(usdt).call()
    debt_index = await pool.functions.getReserveNormalizedVariableDebt(usdt).call()
    by_side = {e.side: e for e in new}
    assert by_side["supplied"].index == Decimal(income).scaleb(-27)
    assert by_side["borrowed"].index == Decimal(debt_index).scaleb(-27)

    count = len(desk.events())
    backend = desk.engine.execution_interfaces["onchain"].backend
    assert await backend.accruals.poll(desk.engine.execution_interfaces["onchain"], force=True) == 0
    await _advance(desk)
    assert len(desk.events("InterestAccrued")) == len(before) + 2
    assert len(desk.events()) - count <= 1  # at most the engine's own market observation

    attribution = desk.engine.summary()["pnl"]
    assert attribution["supply_interest"] == accrued["supplied"]  # USDT at 1 USD; WETH earned nothing
    assert attribution["borrow_cost"] == -accrued["borrowed"]
    _checks(desk)


_INDEX_ABI: list[Any] = [
    {"type": "function", "name": name, "stateMutability": "view",
     "inputs": [{"name": "asset", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}
    for name in ("getReserveNormalizedIncome", "getReserveNormalizedVariableDebt")
]


async def test_staking_value_is_observed_from_the_rate_and_books_the_rewards_line(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """12 ETH staked at rate 1.2 gives 10 receipt tokens; the rate set to 1.26 before any poll, then to
    1.3: the poller observes `wsteth_eth_rate` as the simulator does (stake rate as the baseline, then
    each new rate), so the rewards line is 10 x 0.1 ETH = 3,000 USD, the projection values the receipt
    at the chain's balance x rate, the receipt balance still equals the chain's, and an unchanged
    rate records nothing."""
    desk = await make_desk("accrual-stake", accrual_poll_s=0, staking={"receipt_token": "WSTETH"})
    await _advance(desk)
    staked = await desk.run(operation="STAKE", token="ETH", amount="12")
    assert staked["status"] == "CONFIRMED" and staked["amount_out"] == D(10), staked
    await chain.set_staking_rate(1_260_000_000_000_000_000)
    await _advance(desk)
    rates = [e.market["wsteth_eth_rate"] for e in desk.events("MarketObserved")
             if "wsteth_eth_rate" in e.market]
    assert rates == [D("1.2"), D("1.26")]
    monitor = desk.engine.position_monitor
    assert monitor.pnl()["rewards"] == D(10) * D("0.06") * 3000

    observed = len(desk.events("MarketObserved"))
    await _advance(desk)
    assert len(desk.events("MarketObserved")) == observed  # same rate: nothing new

    await chain.set_staking_rate(1_300_000_000_000_000_000)
    await _advance(desk)
    assert monitor.pnl()["rewards"] == D(3000)
    assert desk.engine.summary()["pnl"]["rewards"] == D(3000)
    assert desk.engine.projection.state.pnl[("rewards", "ETH")] == D(1)

    staking = chain.w3.eth.contract(address=chain.market.stketh, abi=abi.STAKED_ETHER)
    shares = await staking.functions.balanceOf(desk.address).call()
    rate = await staking.functions.exchangeRate().call()
    assert desk.held("WSTETH") == _units(shares, 18)
    from projections.prices import usd_price

    value = desk.held("WSTETH") * usd_price(desk.engine.projection.state.marks, "WSTETH")  # type: ignore[operator]
    assert value == _units(shares * rate, 36) * 3000
    assert desk.held("ETH") == await desk.eth()
    _checks(desk)


async def test_nothing_is_polled_without_positions_and_the_interval_holds(make_desk: MakeDesk) -> None:
    """With no lending or staking position the poller is never due; with one and a 60 s interval it is
    due at once, then not again before the interval has passed."""
    desk = await make_desk("accrual-interval", accrual_poll_s=60)
    iface = desk.engine.execution_interfaces["onchain"]
    backend = iface.backend
    await _advance(desk)
    assert backend.accruals.next_due(iface) is None
    assert (await desk.run(operation="AAVE_SUPPLY", token="USDT", amount="100"))["status"] == "CONFIRMED"
    now = desk.engine.event_logger.now()
    assert backend.accruals.next_due(iface) <= now
    await _advance(desk)
    assert backend.accruals.last_poll is not None
    due = backend.accruals.next_due(iface)
    assert due is not None and (due - desk.engine.event_logger.now()).total_seconds() > 50
    assert await backend.accruals.poll(iface) == 0  # not due yet: no RPC, nothing recorded


def test_poll_interval_config() -> None:
    """`[chain] accrual_poll_s` wins over the top level, defaults to 60 s, and refuses negatives."""
    assert poll_interval({}) == 60
    assert poll_interval({"accrual_poll_s": 5, "chain": {"accrual_poll_s": 0}}) == 0
    with pytest.raises(ConfigError):
        poll_interval({"accrual_poll_s": -1})
