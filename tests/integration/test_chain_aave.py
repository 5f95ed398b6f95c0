"""The real Aave v3 Pool on anvil through web3.py 8 `AsyncWeb3`: a full lending round trip and
Aave's numeric revert codes, as the on-chain executors will see them."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from tests.chain.aave import (
    ETH_PRICE,
    USDT_PRICE,
    WETH_PARAMS,
    aave_health_factor,
    decode_aave_revert,
)
from tests.chain.abi import VARIABLE_RATE
from tests.chain.harness import ETHER, USDT_UNIT, Chain

pytest_plugins = ["tests.chain.fixtures"]

MAX_UINT256 = 2**256 - 1
WAD = 10**18


async def test_wrap_supply_borrow_repay_withdraw_round_trip(chain: Chain) -> None:
    """Wrap ETH, supply WETH and USDT, borrow USDT against WETH, repay all, withdraw all."""
    user = await chain.actor("aave-round-trip")
    me = user.address
    pool, weth, usdt = chain.pool, chain.weth, chain.usdt

    receipt = await user.transact(weth.functions.deposit(), value=10 * ETHER)
    assert receipt["status"] == 1
    assert await weth.functions.balanceOf(me).call() == 10 * ETHER

    await user.transact(weth.functions.approve(pool.address, 10 * ETHER))
    supply = await user.transact(pool.functions.supply(weth.address, 10 * ETHER, me, 0))
    (event,) = pool.events.Supply().process_receipt(supply, errors=DISCARD)
    assert event["args"]["reserve"] == weth.address
    assert event["args"]["amount"] == 10 * ETHER

    await user.transact(usdt.functions.mint(me, 2_000 * USDT_UNIT))
    await user.transact(usdt.functions.approve(pool.address, MAX_UINT256))
    await user.transact(pool.functions.supply(usdt.address, 1_000 * USDT_UNIT, me, 0))

    a_weth, _, _ = await chain.data_provider.functions.getReserveTokensAddresses(
        weth.address
    ).call()
    a_usdt, _, debt_usdt = await chain.data_provider.functions.getReserveTokensAddresses(
        usdt.address
    ).call()
    assert await chain.erc20(a_weth).functions.balanceOf(me).call() == 10 * ETHER
    assert await chain.erc20(a_usdt).functions.balanceOf(me).call() == 1_000 * USDT_UNIT

    collateral, debt, available, _, ltv, health = await pool.functions.getUserAccountData(me).call()
    assert collateral == 10 * ETH_PRICE + 1_000 * USDT_PRICE
    assert debt == 0
    assert health == MAX_UINT256  # no debt: infinite health factor

    await user.transact(
        pool.functions.borrow(usdt.address, 15_000 * USDT_UNIT, VARIABLE_RATE, 0, me)
    )
    assert await usdt.functions.balanceOf(me).call() == 16_000 * USDT_UNIT
    _, debt, available_after, threshold, ltv, health = await pool.functions.getUserAccountData(
        me
    ).call()
    assert debt == 15_000 * USDT_PRICE
    assert available_after < available
    assert WETH_PARAMS.ltv > ltv > 0
    assert threshold > ltv
    assert health > WAD
    # health = collateral * liquidation threshold / debt, in wad.
    assert health == aave_health_factor(collateral, threshold, debt)

    # Interest accrues per second, so repaying "max" needs a little more than was borrowed.
    repay = await user.transact(pool.functions.repay(usdt.address, MAX_UINT256, VARIABLE_RATE, me))
    (repaid,) = pool.events.Repay().process_receipt(repay, errors=DISCARD)
    assert repaid["args"]["amount"] >= 15_000 * USDT_UNIT
    assert await chain.erc20(debt_usdt).functions.balanceOf(me).call() == 0

    await user.transact(pool.functions.withdraw(weth.address, MAX_UINT256, me))
    await user.transact(pool.functions.withdraw(usdt.address, MAX_UINT256, me))
    assert await weth.functions.balanceOf(me).call() == 10 * ETHER
    assert await chain.erc20(a_weth).functions.balanceOf(me).call() == 0
    collateral, debt, *_ = await pool.functions.getUserAccountData(me).call()
    assert (collateral, debt) == (0, 0)

    await user.transact(weth.functions.withdraw(10 * ETHER))
    assert await weth.functions.balanceOf(me).call() == 0


async def test_borrow_above_ltv_reverts_with_aave_code_36(chain: Chain) -> None:
    """Borrowing past the LTV fails pre-flight with COLLATERAL_CANNOT_COVER_NEW_BORROW (36)."""
    user = await chain.actor("aave-over-borrow")
    me = user.address
    pool, weth, usdt = chain.pool, chain.weth, chain.usdt
    await user.transact(weth.functions.deposit(), value=1 * ETHER)
    await user.transact(weth.functions.approve(pool.address, 1 * ETHER))
    await user.transact(pool.functions.supply(weth.address, 1 * ETHER, me, 0))

    # 1 WETH at $3,000 with LTV 80% allows $2,400; ask for $2,401.
    too_much = 2_401 * USDT_UNIT
    with pytest.raises(ContractLogicError) as raised:
        await user.build(pool.functions.borrow(usdt.address, too_much, VARIABLE_RATE, 0, me))
    decoded = decode_aave_revert(raised.value)
    assert decoded is not None
    assert (decoded.code, decoded.name) == (36, "COLLATERAL_CANNOT_COVER_NEW_BORROW")

    # The allowed amount goes through: the limit is exactly Aave's LTV check.
    await user.transact(
        pool.functions.borrow(usdt.address, 2_400 * USDT_UNIT, VARIABLE_RATE, 0, me)
    )


async def test_supply_zero_reverts_with_aave_code_26(chain: Chain) -> None:
    """Supplying 0 fails with INVALID_AMOUNT (26)."""
    user = await chain.actor("aave-zero-supply")
    with pytest.raises(ContractLogicError) as raised:
        await user.build(chain.pool.functions.supply(chain.usdt.address, 0, user.address, 0))
    decoded = decode_aave_revert(raised.value)
    assert decoded is not None
    assert (decoded.code, decoded.name) == (26, "INVALID_AMOUNT")


async def test_mined_revert_has_status_0_and_replay_recovers_the_code(chain: Chain) -> None:
    """A borrow sent with an explicit gas limit is mined with status 0; replaying it with
    eth_call on the parent block's state recovers Aave's code."""
    user = await chain.actor("aave-mined-revert")
    me = user.address
    pool, usdt = chain.pool, chain.usdt
    call = pool.functions.borrow(usdt.address, 1 * USDT_UNIT, VARIABLE_RATE, 0, me)

    receipt = await user.transact(call, gas=1_000_000, require_success=False)
    assert receipt["status"] == 0

    tx = await chain.w3.eth.get_transaction(receipt["transactionHash"])
    replay = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
    with pytest.raises(ContractLogicError) as raised:
        await chain.w3.eth.call(replay, receipt["blockNumber"] - 1)
    decoded = decode_aave_revert(raised.value)
    assert decoded is not None
    assert (decoded.code, decoded.name) == (34, "COLLATERAL_BALANCE_IS_ZERO")
