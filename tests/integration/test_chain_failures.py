"""Transaction failure modes on a real anvil, as an on-chain executor must handle them: a dropped
transaction, a same-nonce replacement with both fee fields bumped, and reorgs that remove or move
a mined transaction (detected by the block hash at its height changing)."""

from __future__ import annotations

import pytest
from web3.exceptions import TransactionNotFound

from tests.chain.anvil import ReorgBelowSnapshotError
from tests.chain.harness import ETHER, Chain, receipt_is_canonical
from tests.chain.tx import REPLACEMENT_BUMP

pytest_plugins = ["tests.chain.fixtures"]

REORG_DEPTH = 2


async def test_dropped_transaction_disappears_and_its_nonce_is_reusable(chain: Chain) -> None:
    """With automine off a tx stays pending; anvil_dropTransaction removes it, the nonce is free
    again, and rebroadcasting the same signed bytes gets it mined."""
    user = await chain.actor("dropped")
    w3, control, weth = chain.w3, chain.control, chain.weth
    nonce = await user.pending_nonce()

    await control.set_automine(False)
    tx = await user.build(weth.functions.deposit(), value=1 * ETHER)
    tx_hash, signed = await user.send(tx)
    pending = await w3.eth.get_transaction(tx_hash)
    assert pending["blockNumber"] is None
    assert (await control.txpool_status())["pending"] == 1
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction_receipt(tx_hash)
    assert await user.pending_nonce() == nonce + 1

    await control.drop_transaction(tx_hash)
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(tx_hash)
    assert (await control.txpool_status())["pending"] == 0
    assert await user.pending_nonce() == nonce
    await control.mine()
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction_receipt(tx_hash)
    assert await weth.functions.balanceOf(user.address).call() == 0

    # Recovery: the same raw bytes, same hash, mined once a block is produced.
    assert await user.send_raw(signed.raw_transaction) == tx_hash
    await control.mine()
    receipt = await user.wait(tx_hash)
    assert receipt["status"] == 1
    assert await weth.functions.balanceOf(user.address).call() == 1 * ETHER
    assert await w3.eth.get_transaction_count(user.address) == nonce + 1


async def test_replacement_with_both_fees_bumped_wins_the_nonce(chain: Chain) -> None:
    """A same-nonce tx with maxFeePerGas and maxPriorityFeePerGas both raised >= 12.5% replaces
    the pending one: the original hash vanishes, the replacement is mined, the nonce is used."""
    user = await chain.actor("replaced")
    w3, control, weth = chain.w3, chain.control, chain.weth
    nonce = await user.pending_nonce()
    fees = await user.fees()

    await control.set_automine(False)
    original = await user.build(weth.functions.deposit(), value=1 * ETHER, nonce=nonce, fees=fees)
    original_hash, _ = await user.send(original)

    bumped = fees.bumped()
    assert bumped.max_fee_per_gas >= fees.max_fee_per_gas * REPLACEMENT_BUMP
    assert bumped.max_priority_fee_per_gas >= fees.max_priority_fee_per_gas * REPLACEMENT_BUMP
    replacement = await user.build(
        weth.functions.deposit(), value=2 * ETHER, nonce=nonce, fees=bumped
    )
    replacement_hash, _ = await user.send(replacement)
    assert replacement_hash != original_hash

    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(original_hash)
    assert (await control.txpool_status())["pending"] == 1

    await control.mine()
    receipt = await user.wait(replacement_hash)
    assert receipt["status"] == 1
    assert receipt["effectiveGasPrice"] > 0
    mined = await w3.eth.get_transaction(replacement_hash)
    assert mined["maxFeePerGas"] == bumped.max_fee_per_gas
    assert mined["maxPriorityFeePerGas"] == bumped.max_priority_fee_per_gas
    # How an executor recognises "replaced": its nonce is consumed but its hash is unknown.
    assert await w3.eth.get_transaction_count(user.address) == nonce + 1
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction_receipt(original_hash)
    assert await weth.functions.balanceOf(user.address).call() == 2 * ETHER


async def _mine_past_snapshot(chain: Chain) -> None:
    """Reorgs must not reach the fixture's snapshot block (evm_revert would then break anvil)."""
    await chain.control.mine(REORG_DEPTH + 1)


async def test_reorg_removes_a_mined_transaction(chain: Chain) -> None:
    """After anvil_reorg the height is unchanged but the tx's block hash differs, its receipt is
    gone, its effects are undone and the sender's nonce is free again."""
    user = await chain.actor("reorged-out")
    w3, control, weth = chain.w3, chain.control, chain.weth
    await _mine_past_snapshot(chain)
    nonce = await user.pending_nonce()

    receipt = await user.transact(weth.functions.deposit(), value=1 * ETHER)
    await control.mine()  # the tx is now REORG_DEPTH blocks deep
    head = await w3.eth.block_number
    assert head - receipt["blockNumber"] + 1 == REORG_DEPTH
    assert await receipt_is_canonical(w3, receipt)
    head_hash = (await w3.eth.get_block(head))["hash"]

    await control.reorg(REORG_DEPTH)

    assert await w3.eth.block_number == head
    assert (await w3.eth.get_block(head))["hash"] != head_hash
    assert not await receipt_is_canonical(w3, receipt)
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction_receipt(receipt["transactionHash"])
    assert await weth.functions.balanceOf(user.address).call() == 0
    assert await user.pending_nonce() == nonce


async def test_reorg_can_reinclude_a_transaction_in_another_block(chain: Chain) -> None:
    """A reorg that replays the signed tx moves it: same hash, new block hash, still status 1."""
    user = await chain.actor("reorged-moved")
    w3, control, weth = chain.w3, chain.control, chain.weth
    await _mine_past_snapshot(chain)

    tx = await user.build(weth.functions.deposit(), value=1 * ETHER)
    tx_hash, signed = await user.send(tx)
    before = await user.wait(tx_hash)
    await control.mine()

    # Offset 1 = the second replaced block, i.e. the one after where the tx was.
    await control.reorg(REORG_DEPTH, replay=[(signed.raw_transaction, 1)])

    assert not await receipt_is_canonical(w3, before)
    after = await user.wait(tx_hash)
    assert after["status"] == 1
    assert after["blockNumber"] == before["blockNumber"] + 1
    assert after["blockHash"] != before["blockHash"]
    assert await receipt_is_canonical(w3, after)
    assert await weth.functions.balanceOf(user.address).call() == 1 * ETHER


async def test_reorg_below_the_test_snapshot_is_refused(chain: Chain) -> None:
    """The harness refuses a reorg reaching the per-test snapshot instead of breaking anvil."""
    head = await chain.w3.eth.block_number
    with pytest.raises(ReorgBelowSnapshotError, match="snapshot"):
        await chain.control.reorg(REORG_DEPTH)
    assert await chain.w3.eth.block_number == head
