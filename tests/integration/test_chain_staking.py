"""The Lido/wstETH-style staking contract on anvil: stake at a set rate, loop the receipt through
the real Aave Pool (stake -> supply -> borrow WETH), and the two-phase unstake with its delay."""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from tests.chain.aave import ETH_PRICE, STKETH_PARAMS, aave_health_factor, receipt_token_price
from tests.chain.abi import VARIABLE_RATE
from tests.chain.harness import ETHER, Chain
from tests.chain.staking import INITIAL_RATE, UNSTAKE_DELAY_S, eth_for_shares, shares_for_eth

pytest_plugins = ["tests.chain.fixtures"]

WAD = 10**18
CLAIM_NOT_READY = function_signature_to_4byte_selector("ClaimNotReady(uint256,uint256,uint256)")


async def test_stake_mints_receipt_tokens_at_the_set_rate(chain: Chain) -> None:
    """Staking mints ETH / rate receipt tokens; after a rate change new stakes use the new rate."""
    user = await chain.actor("stake-rate")
    stketh = chain.stketh
    assert await stketh.functions.exchangeRate().call() == INITIAL_RATE

    receipt = await user.transact(stketh.functions.stake(), value=12 * ETHER)
    (staked,) = stketh.events.Staked().process_receipt(receipt, errors=DISCARD)
    assert staked["args"]["shares"] == shares_for_eth(12 * ETHER, INITIAL_RATE) == 10 * ETHER
    assert await stketh.functions.balanceOf(user.address).call() == 10 * ETHER

    new_rate = 1_250_000_000_000_000_000
    await chain.set_staking_rate(new_rate)
    assert await stketh.functions.exchangeRate().call() == new_rate
    price = await chain.oracle.functions.getAssetPrice(stketh.address).call()
    assert price == receipt_token_price(ETH_PRICE, new_rate) == 3_750 * 10**8

    await user.transact(stketh.functions.stake(), value=5 * ETHER)
    assert await stketh.functions.balanceOf(user.address).call() == 10 * ETHER + 4 * ETHER
    # The rate also values what was minted earlier (a non-rebasing, wstETH-like receipt).
    assert await stketh.functions.previewUnstake(10 * ETHER).call() == 12_500 * 10**15


async def test_stake_supply_borrow_loop(chain: Chain) -> None:
    """Stake ETH, supply the receipt to Aave, borrow WETH against it, unwrap and stake again."""
    user = await chain.actor("stake-loop")
    me = user.address
    pool, stketh, weth = chain.pool, chain.stketh, chain.weth
    await user.transact(stketh.functions.approve(pool.address, 2**256 - 1))

    total_shares = 0
    stake_eth = 60 * ETHER
    for _ in range(3):
        await user.transact(stketh.functions.stake(), value=stake_eth)
        shares = await stketh.functions.balanceOf(me).call()
        total_shares += shares
        await user.transact(pool.functions.supply(stketh.address, shares, me, 0))
        # Borrow half of what the new collateral allows, in WETH (1 WETH = $3,000).
        _, _, available, _, _, _ = await pool.functions.getUserAccountData(me).call()
        borrow_weth = available * WAD // ETH_PRICE // 2
        await user.transact(pool.functions.borrow(weth.address, borrow_weth, VARIABLE_RATE, 0, me))
        await user.transact(weth.functions.withdraw(borrow_weth))
        stake_eth = borrow_weth

    collateral, debt, _, threshold, ltv, health = await pool.functions.getUserAccountData(me).call()
    assert collateral == total_shares * receipt_token_price(ETH_PRICE, INITIAL_RATE) // WAD
    assert ltv == STKETH_PARAMS.ltv
    assert threshold == STKETH_PARAMS.liquidation_threshold
    assert debt > 0
    assert health > WAD
    assert health == aave_health_factor(collateral, threshold, debt)

    # A lower staking rate lowers the collateral value and hence the health factor.
    await chain.set_staking_rate(INITIAL_RATE * 9 // 10)
    *_, health_after = await pool.functions.getUserAccountData(me).call()
    assert WAD < health_after < health


async def test_unstake_request_then_claim_after_delay(chain: Chain) -> None:
    """Unstaking burns receipts at request time; the claim fails before the delay, pays after."""
    user = await chain.actor("unstake")
    me = user.address
    stketh, control, w3 = chain.stketh, chain.control, chain.w3
    await user.transact(stketh.functions.stake(), value=24 * ETHER)
    shares = await stketh.functions.balanceOf(me).call()
    assert shares == 20 * ETHER

    request_at = await control.latest_timestamp() + 100
    await control.set_next_block_timestamp(request_at)
    receipt = await user.transact(stketh.functions.requestUnstake(shares))
    (requested,) = stketh.events.UnstakeRequested().process_receipt(receipt, errors=DISCARD)
    request_id = requested["args"]["requestId"]
    owed = eth_for_shares(shares, INITIAL_RATE)
    assert requested["args"]["ethAmount"] == owed == 24 * ETHER
    assert requested["args"]["claimableAt"] == request_at + UNSTAKE_DELAY_S
    assert await stketh.functions.balanceOf(me).call() == 0
    assert await stketh.functions.pendingClaims().call() == owed
    # A rate change after the request does not alter what is owed.
    await chain.set_staking_rate(INITIAL_RATE * 2)

    # One second early: mined at an exact timestamp, the claim reverts with ClaimNotReady.
    await control.set_next_block_timestamp(request_at + UNSTAKE_DELAY_S - 1)
    early = await user.transact(
        stketh.functions.claim(request_id), gas=200_000, require_success=False
    )
    assert early["status"] == 0
    tx = await w3.eth.get_transaction(early["transactionHash"])
    with pytest.raises(ContractCustomError) as raised:
        await w3.eth.call({"from": me, "to": tx["to"], "data": tx["input"]}, early["blockNumber"])
    data = HexBytes(str(raised.value.data))
    assert data[:4] == CLAIM_NOT_READY
    assert abi_decode(["uint256", "uint256", "uint256"], data[4:]) == (
        request_id,
        request_at + UNSTAKE_DELAY_S,
        request_at + UNSTAKE_DELAY_S - 1,
    )

    # eth_estimateGas runs on the latest block's time, not on evm_setNextBlockTimestamp's, so mine
    # a block at the claim time first; the claim then lands at or after it.
    await control.mine_at(request_at + UNSTAKE_DELAY_S)
    balance_before = await w3.eth.get_balance(me)
    claim = await user.transact(stketh.functions.claim(request_id))
    gas_cost = claim["gasUsed"] * claim["effectiveGasPrice"]
    assert await w3.eth.get_balance(me) == balance_before + owed - gas_cost
    (claimed,) = stketh.events.Claimed().process_receipt(claim, errors=DISCARD)
    assert claimed["args"]["ethAmount"] == owed
    account, amount, claimable_at, done = await stketh.functions.getRequest(request_id).call()
    assert (account, amount, claimable_at, done) == (me, owed, request_at + UNSTAKE_DELAY_S, True)
    assert await stketh.functions.pendingClaims().call() == 0
