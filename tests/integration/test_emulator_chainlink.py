"""The emulator linked to a real anvil chain (tests/chain): on-chain transfers to a venue's deposit
address become that venue's deposits with the real tx hash, and processed withdrawals are really sent
from the hot wallet (ERC-20 ``transfer`` / ETH value), checked on chain, through the real ccxt client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account

from tests.chain.harness import ETHER, USDT_UNIT, Chain
from tests.chain.tx import AsyncSender, actor_key
from tests.emulator import make_client
from tests.emulator.helpers import DEPOSIT_WALLET, fetch_withdrawal_by_client_id, withdraw_params
from tests.emulator.server import Emulator

pytest_plugins = ["tests.emulator.fixtures", "tests.chain.fixtures"]

D = Decimal
HOT_LABEL = "emulator-hot-wallet"


@pytest.fixture
async def linked(emulator: Emulator, chain: Chain) -> AsyncIterator[tuple[Emulator, Chain]]:
    """The emulator attached to the test's chain; the hot wallet holds 1,000 ETH and 50,000 USDT."""
    hot = await chain.actor(HOT_LABEL)
    await chain.admin.transact(chain.usdt.functions.mint(hot.address, 50_000 * USDT_UNIT))
    emulator.attach_chain(chain.node.rpc_url, tokens={"USDT": chain.market.usdt},
                          hot_wallet_key="0x" + actor_key(HOT_LABEL).hex(), confirmations=1)
    try:
        yield emulator, chain
    finally:
        emulator.detach_chain()


async def _usdt(chain: Chain, who: str) -> int:
    return int(await chain.usdt.functions.balanceOf(chain.w3.to_checksum_address(who)).call())


async def _depositor(chain: Chain) -> AsyncSender:
    sender = await chain.actor("depositor")
    await chain.admin.transact(chain.usdt.functions.mint(sender.address, 10_000 * USDT_UNIT))
    return sender


def _client(venue: str, emulator: Emulator) -> Any:
    return make_client(venue, emulator, currencies=True)


async def test_erc20_deposit_on_chain_appears(linked: tuple[Emulator, Chain], venue: str) -> None:
    emulator, chain = linked
    wallet = DEPOSIT_WALLET[venue]
    before = emulator.inspect(venue)["balances"][wallet]["USDT"]["total"]
    ex = _client(venue, emulator)
    try:
        address = (await ex.fetch_deposit_address("USDT", withdraw_params(venue, "USDT")))["address"]
        sender = await _depositor(chain)
        receipt = await sender.transact(chain.usdt.functions.transfer(address, 1_234_500_000))  # 1234.5
        txid = receipt["transactionHash"].to_0x_hex()
        deposits = await ex.fetch_deposits("USDT")
        again = await ex.fetch_deposits("USDT")  # scanning again credits nothing twice
    finally:
        await ex.close()
    assert [(d["txid"], d["amount"], d["status"]) for d in deposits] == [(txid, 1234.5, "ok")]
    assert [d["id"] for d in again] == [deposits[0]["id"]]
    assert emulator.inspect(venue)["balances"][wallet]["USDT"]["total"] == before + D("1234.5")
    # other venues saw nothing
    assert all(emulator.venue(v).deposits() == [] for v in emulator.VENUES if v != venue)


async def test_eth_deposit_on_chain_appears(linked: tuple[Emulator, Chain]) -> None:
    emulator, chain = linked
    address = emulator.venue("okx").deposit_address("ETH")
    sender = await _depositor(chain)
    receipt = await sender.transact({"to": address, "value": 3 * ETHER // 2, "data": b""})
    assert emulator.scan_chain() == 1
    [dep] = emulator.venue("okx").deposits()
    assert dep.txid == receipt["transactionHash"].to_0x_hex() and dep.amount == D("1.5")
    assert dep.asset == "ETH" and dep.status == "ok"


async def test_usdt_withdrawal_arrives_on_chain(linked: tuple[Emulator, Chain], venue: str) -> None:
    emulator, chain = linked
    dest = Account.from_key(actor_key(f"withdrawal-destination-{venue}")).address
    ex = _client(venue, emulator)
    try:
        made = await ex.withdraw("USDT", 250.75, dest, params=withdraw_params(venue, "USDT", "chain1"))
        assert await _usdt(chain, dest) == 0
        [processed] = emulator.venue(venue).process_withdrawals()
        [w] = await fetch_withdrawal_by_client_id(ex, venue, "USDT", "chain1")
    finally:
        await ex.close()
    assert w["id"] == made["id"] and w["status"] == "ok"
    receipt = await chain.w3.eth.get_transaction_receipt(w["txid"])
    assert receipt["status"] == 1 and w["txid"] == processed.txid
    assert receipt["to"].lower() == chain.market.usdt.lower()
    assert await _usdt(chain, dest) == 250_750_000


async def test_eth_withdrawal_to_another_venue_is_its_deposit(linked: tuple[Emulator, Chain]) -> None:
    emulator, chain = linked
    target = emulator.venue("bybit").deposit_address("ETH")
    start = await chain.w3.eth.get_balance(target)
    engine = emulator.venue("binance")
    engine.auto_process_withdrawals = True
    ex = _client("binance", emulator)
    bybit = _client("bybit", emulator)
    try:
        await ex.withdraw("ETH", 0.25, target, params=withdraw_params("binance", "ETH", "hop1"))
        [w] = await fetch_withdrawal_by_client_id(ex, "binance", "ETH", "hop1")  # processes first
        [dep] = await bybit.fetch_deposits("ETH")
    finally:
        await ex.close()
        await bybit.close()
    assert w["status"] == "ok"
    assert await chain.w3.eth.get_balance(target) - start == ETHER // 4
    assert dep["txid"] == w["txid"] and dep["amount"] == 0.25


async def test_reverted_withdrawal_fails_and_refunds(linked: tuple[Emulator, Chain]) -> None:
    emulator, chain = linked
    engine = emulator.venue("okx")
    engine.set_balance("funding", "USDT", "10000000")
    before = engine.balances[("funding", "USDT")]
    ex = _client("okx", emulator)
    try:
        # more than the hot wallet holds: the ERC-20 transfer cannot be sent (estimate reverts)
        await ex.withdraw("USDT", 60_000, chain.admin.address, params=withdraw_params("okx", "USDT", "big"))
    finally:
        await ex.close()
    assert engine.process_withdrawals() == []
    [w] = engine.withdrawals()
    assert w.status == "pending" and not w.txid and "execution reverted" in w.extra["last_error"]
    engine.fail_withdrawal(w.withdrawal_id)
    assert engine.balances[("funding", "USDT")] == before
