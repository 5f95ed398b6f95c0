"""The live on-chain backend (`executors.live.chain.LiveChain`) through the engine, on a real anvil with
the real AAVE v3 Pool and the Lido-style staking contract (tests/chain): every scenario ends with the
projection equal to what the chain says the wallet holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from aggregates.transitions import State
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing.checkers import check_conservation, check_lifecycle, check_no_floats, check_rebuild_equals
from tests.chain import abi
from tests.chain.anvil import CHAIN_ID, AnvilControl, AnvilNode
from tests.chain.harness import ETHER, USDT_UNIT, Chain
from tests.chain.staking import INITIAL_RATE
from tests.chain.tx import actor_key

pytest_plugins = ["tests.chain.fixtures"]

VENUE = "ethereum"
LIVE_FINAL = (State.COMPLETED, State.REJECTED, State.FAILED, State.TX_REVERTED, State.TX_CONFIRMED)
GWEI = 10**9
FUNDED_ETH = 1_000
FUNDED_USDT = 20_000
D = Decimal


def _units(value: int, decimals: int) -> Decimal:
    return Decimal(value).scaleb(-decimals)


@dataclass
class Desk:
    """One live engine trading from one funded anvil account, plus the chain's view of that account."""

    engine: EventDrivenStrategyEngine
    w3: AsyncWeb3
    address: str
    key: str
    config: dict[str, Any]
    market: Any = None
    saved: list[Any] = field(default_factory=list)

    async def run(self, **instruction: Any) -> dict[str, Any]:
        result = await self.engine.execute_trade_with_interface({"venue_type": "onchain", **instruction})
        return result

    @property
    def wallet(self) -> str:
        return self.address

    def held(self, asset: str) -> Decimal:
        return self.engine.position_monitor.balance(asset, VENUE, self.wallet)

    def supplied(self, asset: str) -> Decimal:
        return self.engine.position_monitor.supplied(VENUE, asset)

    def borrowed(self, asset: str) -> Decimal:
        return self.engine.position_monitor.borrowed(VENUE, asset)

    def events(self, *names: str) -> list[Any]:
        self.engine.event_logger.flush()
        return [e for _n, e in self.engine.ledger.iter_events() if not names or type(e).__name__ in names]

    def tx_events(self, instruction_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events()
                if getattr(e, "instruction_id", None) == instruction_id]

    async def erc20(self, token: str, who: str | None = None) -> Decimal:
        contract = self.w3.eth.contract(address=token, abi=abi.ERC20)
        decimals = await contract.functions.decimals().call()
        return _units(await contract.functions.balanceOf(who or self.address).call(), decimals)

    async def eth(self, who: str | None = None) -> Decimal:
        return _units(await self.w3.eth.get_balance(who or self.address), 18)

    async def reserve_tokens(self, asset: str) -> tuple[str, str]:
        provider = self.w3.eth.contract(address=self.market.data_provider, abi=abi.POOL_DATA_PROVIDER)
        a_token, _stable, variable = await provider.functions.getReserveTokensAddresses(asset).call()
        return a_token, variable

    async def assert_matches_chain(self, tolerance_units: int = 0, interest: Decimal = D(0)) -> None:
        """ETH and every token balance equal what the chain says; the AAVE books too, to the unit, or
        within `interest` (relative) where a borrowed reserve accrues between our blocks."""
        assert self.held("ETH") == await self.eth()
        m = self.market
        if m is None:
            return
        for symbol, token in (("USDT", m.usdt), ("WETH", m.weth), ("STKETH", m.stketh)):
            assert self.held(symbol) == await self.erc20(token), symbol
            a_token, debt = await self.reserve_tokens(token)
            unit = Decimal(1).scaleb(-6 if symbol == "USDT" else -18)
            supplied, borrowed = await self.erc20(a_token), await self.erc20(debt)
            # Interest accrues per block on the chain; the live interest poller (not part of this
            # backend) records it. Between two of our blocks it stays within a base unit or so.
            for ours, theirs in ((self.supplied(symbol), supplied), (self.borrowed(symbol), borrowed)):
                assert abs(ours - theirs) <= tolerance_units * unit + interest * ours, (symbol, ours, theirs)


def desk_config(node: AnvilNode, key: bytes, db: Path, market: Any = None, **extra: Any) -> dict[str, Any]:
    address = Account.from_key(key).address
    config: dict[str, Any] = {
        "execution_mode": "live",
        "account": "desk",
        "venues": ["binance"],
        "ledger": {"url": f"sqlite:///{db}", "views": False},
        "session": {"key": f"live-chain-{db.stem}"},
        "rpc_url": node.rpc_url,
        "wallet_private_key": "0x" + key.hex(),
        "wallet_address": address,
        "chain_id": CHAIN_ID,
        "confirmations": 1,
        "max_fee_per_gas_gwei": "100",
        "max_priority_fee_gwei": "2",
        "poll_s": 0.005,
        "drop_after_s": 0.2,
        "confirm_timeout_s": 20,
        "initial_balances": {VENUE: {"ETH": str(FUNDED_ETH)}},
    }
    if market is not None:
        config.update(
            pool_addresses_provider=market.addresses_provider,
            staking_contract=market.stketh,
            staking={"receipt_token": "STKETH"},
            tokens={"USDT": market.usdt, "WETH": market.weth},
        )
        config["initial_balances"] = {VENUE: {"ETH": str(FUNDED_ETH), "USDT": str(FUNDED_USDT)}}
    config.update(extra)
    return config


MakeDesk = Callable[..., Any]


@pytest.fixture
async def make_desk(chain: Chain, tmp_path: Path) -> AsyncIterator[MakeDesk]:
    """Build a desk: a fresh actor funded with ETH and USDT on chain and the same in the ledger."""
    made: list[Desk] = []

    async def make(label: str, db_name: str = "ledger", **extra: Any) -> Desk:
        key = actor_key(label)
        address = Account.from_key(key).address
        if not any(d.address == address for d in made):
            await chain.control.set_balance(address, FUNDED_ETH * ETHER)
            await chain.admin.transact(chain.usdt.functions.mint(address, FUNDED_USDT * USDT_UNIT))
        config = desk_config(chain.node, key, tmp_path / f"{db_name}.db", chain.market, **extra)
        engine = EventDrivenStrategyEngine(config)
        desk = Desk(engine, chain.w3, address, config["wallet_private_key"], config, chain.market)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        backend = desk.engine.execution_interfaces["onchain"].backend
        await backend.client.close()


def _effects(desk: Desk, instruction_id: str) -> list[dict[str, str]]:
    return [fx for e in desk.events("TransactionConfirmed") if e.instruction_id == instruction_id
            for fx in e.effects]


def _purposes(desk: Desk, instruction_id: str) -> list[str]:
    return [e.purpose for e in desk.events("TransactionSubmitted") if e.instruction_id == instruction_id]


def _checks(desk: Desk) -> None:
    check_lifecycle(desk.engine, LIVE_FINAL)
    check_conservation(desk.engine)
    check_no_floats(desk.engine)
    check_rebuild_equals(desk.engine)


# ---- AAVE ------------------------------------------------------------------------------------------


async def test_supply_borrow_repay_withdraw_on_the_real_pool(make_desk: MakeDesk) -> None:
    """ETH is wrapped, approved and supplied (three transactions, each with its own events); USDT is
    borrowed, repaid and the WETH withdrawn and unwrapped; after every step the projection equals the
    wallet's ETH, token, aToken and debt-token balances on chain."""
    desk = await make_desk("live-aave")
    await desk.assert_matches_chain()

    supplied = await desk.run(operation="AAVE_SUPPLY", token="ETH", amount="10")
    assert supplied["status"] == "CONFIRMED", supplied
    iid = supplied["instruction_id"]
    assert _purposes(desk, iid) == ["WRAP", "APPROVE", "AAVE_SUPPLY"]
    per_tx = ["TransactionSubmitted", "TransactionMined", "TransactionConfirmed"]
    assert desk.tx_events(iid) == ["InstructionAccepted", *per_tx * 3, "InstructionCompleted"]
    kinds = [(fx["kind"], fx["asset"], fx["amount"]) for fx in _effects(desk, iid)]
    assert kinds == [("wrapped", "ETH", "10"), ("approved", "WETH", "10"), ("supplied", "WETH", "10")]
    for fx in _effects(desk, iid):
        tx_hash, log_index = fx["trade_id"].split(":")
        assert tx_hash.startswith("0x") and log_index.isdigit()
    assert supplied["amount_out"] == D(10) and supplied["token_out"] == "WETH"
    assert supplied["gas_cost"] > 0 and supplied["gas_used"] > 0 and supplied["fee_asset"] == "ETH"
    assert desk.supplied("WETH") == D(10)
    await desk.assert_matches_chain()

    borrowed = await desk.run(operation="AAVE_BORROW", token="USDT", amount="5000")
    assert borrowed["status"] == "CONFIRMED", borrowed
    assert _purposes(desk, borrowed["instruction_id"]) == ["AAVE_BORROW"]
    assert desk.borrowed("USDT") == D(5000)
    assert desk.held("USDT") == D(FUNDED_USDT + 5000)
    await desk.assert_matches_chain(tolerance_units=1)

    repaid = await desk.run(operation="AAVE_REPAY", token="USDT", amount="4000")
    assert repaid["status"] == "CONFIRMED", repaid
    assert _purposes(desk, repaid["instruction_id"]) == ["APPROVE", "AAVE_REPAY"]
    assert desk.borrowed("USDT") == D(1000)
    await desk.assert_matches_chain(tolerance_units=1)

    withdrawn = await desk.run(operation="AAVE_WITHDRAW", token="ETH", amount="4")
    assert withdrawn["status"] == "CONFIRMED", withdrawn
    assert _purposes(desk, withdrawn["instruction_id"]) == ["AAVE_WITHDRAW", "UNWRAP"]
    assert (withdrawn["amount_out"], withdrawn["token_out"]) == (D(4), "ETH")
    assert desk.supplied("WETH") == D(6)
    await desk.assert_matches_chain(tolerance_units=1)

    gas = sum((e.gas_fee for e in desk.events("TransactionConfirmed")), D(0))
    assert desk.engine.projection.state.pnl[("gas", "ETH")] == -gas
    _checks(desk)


async def test_stake_supply_receipt_borrow_loop(make_desk: MakeDesk) -> None:
    """Stake ETH, supply the receipt token to AAVE, borrow WETH against it (unwrapped to ETH) and stake
    again: the example strategy's loop on the real contracts, books equal to the chain's."""
    desk = await make_desk("live-loop")
    stake = D(12)
    for _round in range(2):
        staked = await desk.run(operation="STAKE", token="ETH", amount=str(stake))
        assert staked["status"] == "CONFIRMED", staked
        assert staked["token_out"] == "STKETH"
        shares = stake * 10**18 / D(INITIAL_RATE)
        assert staked["amount_out"] == shares
        supplied = await desk.run(operation="AAVE_SUPPLY", token="STKETH", amount=str(staked["amount_out"]))
        assert supplied["status"] == "CONFIRMED", supplied
        stake = (stake * D("0.4")).quantize(D("0.001"))
        borrowed = await desk.run(operation="AAVE_BORROW", token="ETH", amount=str(stake))
        assert borrowed["status"] == "CONFIRMED", borrowed
        assert _purposes(desk, borrowed["instruction_id"]) == ["AAVE_BORROW", "UNWRAP"]
        # WETH is borrowed here, so its debt (and the reserve's supply) accrue every 12 s block:
        # ~1e-10 of the debt per block at this utilisation.
        await desk.assert_matches_chain(tolerance_units=1, interest=D("1e-8"))
    assert desk.supplied("STKETH") == D(10) + D(4)
    assert desk.borrowed("WETH") == D("4.8") + D("1.92")
    risk = desk.engine.position_monitor.risk()
    assert risk is not None
    _checks(desk)


# ---- transfers -------------------------------------------------------------------------------------


async def test_eth_and_erc20_transfers(make_desk: MakeDesk, chain: Chain) -> None:
    """ETH and USDT sent to another address: the recipient's balances rise by exactly the amount, the
    ledger's fall by it plus gas; a plain ETH transfer uses 21,000 gas."""
    desk = await make_desk("live-transfer")
    recipient = chain.accounts[5].address
    eth_before, usdt_before = await desk.eth(recipient), await desk.erc20(chain.market.usdt, recipient)

    sent = await desk.run(operation="TRANSFER", token="ETH", amount="1.5", to=recipient)
    assert sent["status"] == "CONFIRMED", sent
    assert sent["gas_used"] == 21_000
    (fx,) = _effects(desk, sent["instruction_id"])
    assert (fx["kind"], fx["asset"], fx["amount"], fx["to"]) == ("sent", "ETH", "1.5", recipient.lower())
    assert fx["trade_id"] == f"{sent['tx_hash']}:value"

    token = await desk.run(operation="TRANSFER", token="USDT", amount="250.5", to=recipient)
    assert token["status"] == "CONFIRMED", token
    (fx,) = _effects(desk, token["instruction_id"])
    assert (fx["kind"], fx["asset"], fx["amount"]) == ("sent", "USDT", "250.5")

    assert await desk.eth(recipient) == eth_before + D("1.5")
    assert await desk.erc20(chain.market.usdt, recipient) == usdt_before + D("250.5")
    assert desk.held("USDT") == D(FUNDED_USDT) - D("250.5")
    await desk.assert_matches_chain()

    bad = await desk.run(operation="TRANSFER", token="ETH", amount="1", to="0x1234")
    assert (bad["status"], bad["code"]) == ("REJECTED", "invalid_address")
    unknown = await desk.run(operation="TRANSFER", token="DOGE", amount="1", to=recipient)
    assert (unknown["status"], unknown["code"]) == ("REJECTED", "unknown_token")
    _checks(desk)


# ---- write-ahead, pre-flight, fee cap ----------------------------------------------------------------


async def test_transaction_submitted_is_stored_before_the_node_sees_it(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """At the moment `TransactionSubmitted` is saved the node does not know the hash yet; with automine
    off the stored intent sits there while the transaction is pending, and is confirmed once mined."""
    desk = await make_desk("live-write-ahead")
    seen_by_node: dict[str, Any] = {}

    def on_save(pairs: Any) -> None:
        for _nid, event in pairs:
            if type(event).__name__ == "TransactionSubmitted":
                seen_by_node[event.tx_hash] = chain.node.rpc("eth_getTransactionByHash", [event.tx_hash])

    desk.engine.ledger.subscribe(on_save)
    await chain.control.set_automine(False)
    task = asyncio.create_task(
        desk.run(operation="TRANSFER", token="ETH", amount="2", to=chain.accounts[6].address)
    )
    while not seen_by_node:
        await asyncio.sleep(0.005)
    (tx_hash,) = seen_by_node
    assert seen_by_node[tx_hash] is None  # saved first, broadcast after
    while (await chain.control.txpool_status())["pending"] == 0:
        await asyncio.sleep(0.005)
    stored = desk.events("TransactionSubmitted")
    assert [e.tx_hash for e in stored] == [tx_hash]
    assert desk.events("TransactionMined") == []
    assert not task.done()
    pending = await chain.w3.eth.get_transaction(tx_hash)
    assert pending["blockNumber"] is None
    assert stored[0].nonce == pending["nonce"]
    assert stored[0].max_fee_per_gas == pending["maxFeePerGas"]

    await chain.control.mine()
    result = await asyncio.wait_for(task, 10)
    assert result["status"] == "CONFIRMED" and result["tx_hash"] == tx_hash
    await desk.assert_matches_chain()


async def test_would_be_revert_is_a_rejection_and_spends_no_gas(make_desk: MakeDesk, chain: Chain) -> None:
    """Pre-flight simulation turns AAVE's revert into a recorded rejection naming the code; nothing is
    signed or sent, so no nonce and no gas are used."""
    desk = await make_desk("live-preflight")
    nonce = await chain.w3.eth.get_transaction_count(desk.address)
    eth = await desk.eth()

    no_collateral = await desk.run(operation="AAVE_BORROW", token="USDT", amount="100")
    assert (no_collateral["status"], no_collateral["code"]) == ("REJECTED", "would_revert")
    assert "COLLATERAL_BALANCE_IS_ZERO (Aave error 34)" in no_collateral["reason"]

    assert (await desk.run(operation="AAVE_SUPPLY", token="ETH", amount="1"))["status"] == "CONFIRMED"
    nonce_after_supply = await chain.w3.eth.get_transaction_count(desk.address)
    eth_after_supply = await desk.eth()
    over = await desk.run(operation="AAVE_BORROW", token="USDT", amount="2401")  # LTV 80% of $3,000
    assert (over["status"], over["code"]) == ("REJECTED", "would_revert")
    assert "COLLATERAL_CANNOT_COVER_NEW_BORROW (Aave error 36)" in over["reason"]
    # The desk's own limit (min health factor 1.1) is stricter than AAVE's: refused before AAVE would.
    risky = await desk.run(operation="AAVE_BORROW", token="USDT", amount="2390")
    assert (risky["status"], risky["code"]) == ("REJECTED", "health_factor")

    assert await chain.w3.eth.get_transaction_count(desk.address) == nonce_after_supply == nonce + 3
    assert await desk.eth() == eth_after_supply < eth
    rejected = {e.instruction_id: e.code for e in desk.events("InstructionRejected")}
    assert sorted(rejected.values()) == ["health_factor", "would_revert", "would_revert"]
    assert not [e for e in desk.events("TransactionSubmitted") if e.instruction_id in rejected]
    await desk.assert_matches_chain()
    _checks(desk)


async def test_fee_above_the_cap_is_a_rejection(make_desk: MakeDesk, chain: Chain) -> None:
    """With the base fee at 300 gwei and a 100 gwei cap, the instruction is refused (`fee_cap`) and
    nothing is sent; once the base fee is back under the cap it goes through with fees within it."""
    desk = await make_desk("live-fee-cap")
    await chain.control.set_next_block_base_fee(300 * GWEI)
    await chain.control.mine()
    nonce = await chain.w3.eth.get_transaction_count(desk.address)
    refused = await desk.run(operation="TRANSFER", token="ETH", amount="1", to=chain.accounts[7].address)
    assert (refused["status"], refused["code"]) == ("REJECTED", "fee_cap")
    assert "above the cap of 100 gwei" in refused["reason"]
    assert await chain.w3.eth.get_transaction_count(desk.address) == nonce
    assert desk.events("TransactionSubmitted") == []

    await chain.control.set_next_block_base_fee(1 * GWEI)
    await chain.control.mine()
    ok = await desk.run(operation="TRANSFER", token="ETH", amount="1", to=chain.accounts[7].address)
    assert ok["status"] == "CONFIRMED", ok
    (submitted,) = desk.events("TransactionSubmitted")
    assert submitted.max_fee_per_gas <= 100 * GWEI and submitted.max_priority_fee_per_gas <= 2 * GWEI
    await desk.assert_matches_chain()


# ---- nonces and restarts ----------------------------------------------------------------------------


async def test_restart_recovers_the_nonce_and_resolves_what_was_in_flight(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """A new engine on the same ledger continues the nonce from the ledger and the chain; a transaction
    submitted before the 'crash' and still pending blocks new instructions (fail closed) until it is
    mined, and is then recorded exactly once."""
    to = chain.accounts[8].address
    first = await make_desk("live-restart", session={"key": "run-1"})
    done = await first.run(operation="TRANSFER", token="ETH", amount="1", to=to)
    assert done["status"] == "CONFIRMED"
    n0 = first.events("TransactionSubmitted")[0].nonce

    # The first process sends one more and "dies" before it is mined.
    await chain.control.set_automine(False)
    first.engine.execution_interfaces["onchain"].backend.settings = _quick(first)
    pending = await first.run(operation="TRANSFER", token="ETH", amount="2", to=to)
    assert pending["status"] == "SUBMITTED"
    in_flight = pending["tx_hash"]

    second = await make_desk("live-restart", session={"key": "run-2"})
    blocked = await second.run(operation="TRANSFER", token="ETH", amount="3", to=to)
    assert (blocked["status"], blocked["code"]) == ("REJECTED", "unresolved_transactions")
    assert in_flight in blocked["reason"]

    await chain.control.mine()
    await chain.control.set_automine(True)
    await second.engine.advance_to(datetime.now(UTC))
    mined = [e for e in second.events("TransactionConfirmed") if e.tx_hash == in_flight]
    assert len(mined) == 1

    after = await second.run(operation="TRANSFER", token="ETH", amount="3", to=to)
    assert after["status"] == "CONFIRMED", after
    nonces = [e.nonce for e in second.events("TransactionSubmitted")]
    assert nonces == [n0, n0 + 1, n0 + 2]
    assert await chain.w3.eth.get_transaction_count(second.address) == n0 + 3
    # Projection of the second engine is built from its own session's events only; the ledger's
    # stream as a whole balances against the chain.
    check_lifecycle(second.engine.ledger, LIVE_FINAL)


def _quick(desk: Desk) -> Any:
    """Settings of a desk's backend with a short confirmation wait (to leave a transaction pending)."""
    import dataclasses

    settings = desk.engine.execution_interfaces["onchain"].backend.settings
    return dataclasses.replace(settings, confirm_timeout_s=0.3)


# ---- secrets -----------------------------------------------------------------------------------------


async def test_secrets_never_reach_events_or_errors(
    make_desk: MakeDesk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The wallet key and an Alchemy key appear in no stored event, no rejection reason and no log
    line (web3.py logs the endpoint URI at debug level), even when the RPC is down."""
    caplog.set_level(logging.DEBUG)
    desk = await make_desk("live-secrets")
    await desk.run(operation="TRANSFER", token="ETH", amount="1", to="0x" + "22" * 20)
    await desk.run(operation="AAVE_BORROW", token="USDT", amount="5")  # rejected: would revert
    alchemy = "alchemyKEY0123456789secret"
    down = dict(desk.config, rpc_url="", alchemy_api_key=alchemy,
                alchemy_url="http://127.0.0.1:9/v2/{key}", ledger={"url": f"sqlite:///{tmp_path}/down.db"},
                session={"key": "down"})
    engine = EventDrivenStrategyEngine(down)
    result = await engine.execute_trade_with_interface(
        {"venue_type": "onchain", "operation": "TRANSFER", "token": "ETH", "amount": "1", "to": desk.address}
    )
    assert (result["status"], result["code"]) == ("REJECTED", "rpc_unavailable")
    key = desk.key.removeprefix("0x").lower()
    for target in (desk.engine, engine):
        target.event_logger.flush()
        for _nid, event in target.ledger.iter_events():
            text = repr(vars(event)).lower()
            assert key not in text and alchemy.lower() not in text
    assert key not in result["reason"].lower() and alchemy.lower() not in result["reason"].lower()
    assert "127.0.0.1:9" in result["reason"]
    backend = engine.execution_interfaces["onchain"].backend
    assert key not in repr(backend.settings).lower()
    logged = "\n".join(r.getMessage() for r in caplog.records).lower()
    assert "127.0.0.1:9" in logged  # web3 did log the endpoint, without its path
    assert key not in logged and alchemy.lower() not in logged
    await backend.client.close()


# ---- drops, replacements, reorgs (their own anvil where the chain is rewritten) ----------------------


async def test_dropped_transaction_is_rebroadcast(make_desk: MakeDesk, chain: Chain) -> None:
    """A pending transaction dropped by the node is recorded as dropped and the same signed bytes are
    sent again; it is mined once, its effects counted once."""
    desk = await make_desk("live-dropped")
    await chain.control.set_automine(False)
    to = chain.accounts[4].address
    task = asyncio.create_task(desk.run(operation="TRANSFER", token="ETH", amount="1", to=to))
    tx_hash = await _wait_pending(chain)
    await chain.control.drop_transaction(tx_hash)
    while not desk.events("TransactionDropped"):
        await asyncio.sleep(0.01)
    await _wait_pending(chain)  # rebroadcast
    await chain.control.mine()
    result = await asyncio.wait_for(task, 10)
    assert result["status"] == "CONFIRMED" and result["tx_hash"] == tx_hash
    assert desk.tx_events(result["instruction_id"]) == [
        "InstructionAccepted", "TransactionSubmitted", "TransactionDropped", "TransactionMined",
        "TransactionConfirmed", "InstructionCompleted",
    ]
    await desk.assert_matches_chain()
    _checks(desk)


async def test_stuck_transaction_is_replaced_with_both_fees_raised(make_desk: MakeDesk, chain: Chain) -> None:
    """A transaction pending longer than `replace_after_s` is replaced: same nonce, both fee fields
    raised by at least 12.5 %, `TransactionReplaced` written before the broadcast; the replacement is
    the one confirmed."""
    desk = await make_desk("live-replaced", replace_after_s=0.3, drop_after_s=30)
    await chain.control.set_automine(False)
    to = chain.accounts[3].address
    task = asyncio.create_task(desk.run(operation="TRANSFER", token="ETH", amount="1", to=to))
    original = await _wait_pending(chain)
    while not desk.events("TransactionReplaced"):
        await asyncio.sleep(0.02)
    (submitted,) = desk.events("TransactionSubmitted")
    (replaced,) = desk.events("TransactionReplaced")
    assert replaced.old_tx_hash == original == submitted.tx_hash
    assert replaced.max_fee_per_gas * 1000 >= submitted.max_fee_per_gas * 1125
    assert replaced.max_priority_fee_per_gas * 1000 >= submitted.max_priority_fee_per_gas * 1125
    # TransactionReplaced is written before the replacement is broadcast: mine only once the node holds
    # it, or the original could (legitimately) win the race.
    await _wait_in_pool(chain, replaced.tx_hash)
    while not task.done():
        await chain.control.mine()
        await asyncio.sleep(0.05)
    result = await asyncio.wait_for(task, 10)
    assert result["status"] == "CONFIRMED"
    winner = result["tx_hash"]
    assert winner in {e.tx_hash for e in desk.events("TransactionReplaced")}
    tx = await chain.w3.eth.get_transaction(winner)
    assert tx["nonce"] == submitted.nonce
    await desk.assert_matches_chain()
    _checks(desk)


async def _wait_in_pool(chain: Chain, tx_hash: str) -> None:
    for _ in range(2_000):
        content = await chain.control.request("txpool_content")
        hashes = {str(tx["hash"]).lower() for by_nonce in (content.get("pending") or {}).values()
                  for tx in by_nonce.values()}
        if tx_hash.lower() in hashes:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{tx_hash} never reached the pool")


async def _wait_pending(chain: Chain) -> str:
    for _ in range(2_000):
        content = await chain.control.request("txpool_content")
        for by_nonce in (content.get("pending") or {}).values():
            for tx in by_nonce.values():
                return str(tx["hash"])
        await asyncio.sleep(0.005)
    raise AssertionError("no pending transaction")


@pytest.fixture
async def reorg_desk(fresh_anvil: AnvilNode, tmp_path: Path) -> AsyncIterator[tuple[Desk, AnvilControl]]:
    """A desk on its own anvil: reorgs rewrite history, so they never share the session's node."""
    w3 = AsyncWeb3(AsyncHTTPProvider(fresh_anvil.rpc_url))
    control = AnvilControl(w3)
    key = actor_key("live-reorg")
    address = Account.from_key(key).address
    await control.set_balance(address, FUNDED_ETH * ETHER)
    await control.mine(20)  # anvil_reorg re-executes from head - depth; keep the funding below it
    config = desk_config(fresh_anvil, key, tmp_path / "reorg.db")
    desk = Desk(EventDrivenStrategyEngine(config), w3, address, config["wallet_private_key"], config)
    yield desk, control
    await desk.engine.execution_interfaces["onchain"].backend.client.close()
    await w3.provider.disconnect()


async def test_reorg_removing_a_confirmed_transaction_undoes_then_redoes_its_effects(
    reorg_desk: tuple[Desk, AnvilControl],
) -> None:
    """A reorg drops the block of a confirmed transfer: `TransactionReorged` is recorded and the
    projection gives the ETH back; the transaction is sent again, lands in a new block and is confirmed
    there, and the projection equals the chain again."""
    desk, control = reorg_desk
    to = "0x" + "33" * 20
    sent = await desk.run(operation="TRANSFER", token="ETH", amount="5", to=to)
    assert sent["status"] == "CONFIRMED"
    (confirmed,) = desk.events("TransactionConfirmed")
    await control.mine(1)
    await control.reorg(2)  # replaces the transaction's block and the one after it
    assert await desk.w3.eth.get_balance(to) == 0

    await desk.engine.advance_to(datetime.now(UTC))
    (reorged,) = desk.events("TransactionReorged")
    assert reorged.old_block_hash == confirmed.block_hash
    assert desk.held("ETH") == D(FUNDED_ETH)  # undone: the transfer and its gas
    for _ in range(200):
        await desk.engine.advance_to(datetime.now(UTC))
        if len(desk.events("TransactionConfirmed")) == 2:
            break
        await asyncio.sleep(0.02)
    again = desk.events("TransactionConfirmed")[-1]
    assert again.tx_hash == confirmed.tx_hash and again.block_hash != confirmed.block_hash
    assert _units(await desk.w3.eth.get_balance(to), 18) == D(5)
    await desk.assert_matches_chain()
    state = desk.engine.event_logger.venue(VENUE).state_of(sent["instruction_id"])
    assert state is State.COMPLETED
    _checks(desk)


async def test_reorg_moving_a_transaction_is_recorded_once_in_its_new_block(
    reorg_desk: tuple[Desk, AnvilControl],
) -> None:
    """A reorg that re-includes the transaction one block later: reorged, then mined and confirmed in
    the new block; its effects count once."""
    desk, control = reorg_desk
    to = "0x" + "44" * 20
    backend = desk.engine.execution_interfaces["onchain"].backend
    sent = await desk.run(operation="TRANSFER", token="ETH", amount="2", to=to)
    assert sent["status"] == "CONFIRMED"
    raw = backend.watch[-1].raw
    await control.mine(1)
    await control.reorg(2, replay=[(raw, 1)])
    for _ in range(200):
        await desk.engine.advance_to(datetime.now(UTC))
        if len(desk.events("TransactionConfirmed")) == 2:
            break
        await asyncio.sleep(0.02)
    first, second = desk.events("TransactionConfirmed")
    assert first.tx_hash == second.tx_hash and first.block_hash != second.block_hash
    assert second.block_number == first.block_number + 1
    assert len(desk.events("TransactionReorged")) == 1
    assert _units(await desk.w3.eth.get_balance(to), 18) == D(2)
    await desk.assert_matches_chain()
    _checks(desk)


# ---- unstake and claim, mined reverts, concurrency, crashes, bad input ------------------------------


async def test_unstake_is_claimed_after_the_delay(make_desk: MakeDesk, chain: Chain) -> None:
    """UNSTAKE burns the receipt tokens and leaves the ETH owed pending; once the chain passes the
    claimable time `advance_to` sends the claim and completes the instruction."""
    desk = await make_desk("live-unstake")
    assert (await desk.run(operation="STAKE", token="ETH", amount="12"))["status"] == "CONFIRMED"
    unstaked = await desk.run(operation="UNSTAKE", token="STKETH", amount="4")
    assert unstaked["status"] == "CONFIRMED", unstaked
    assert (unstaked["amount_out"], unstaked["token_out"]) == (D("4.8"), "ETH")
    iid = unstaked["instruction_id"]
    agg = desk.engine.event_logger.venue(VENUE)
    assert agg.state_of(iid) is State.TX_CONFIRMED
    assert desk.held("STKETH") == D(6)
    assert desk.engine.position_monitor.balance("ETH", VENUE, f"{desk.wallet}:unstaking") == D("4.8")
    backend = desk.engine.execution_interfaces["onchain"].backend
    (claim,) = backend.claims
    await desk.engine.advance_to(datetime.now(UTC))
    assert backend.claims  # not yet claimable on chain: nothing sent
    await chain.control.mine_at(claim.claimable_at)
    await desk.engine.advance_to(datetime.now(UTC))
    assert not backend.claims
    assert _purposes(desk, iid) == ["UNSTAKE", "CLAIM"]
    assert agg.state_of(iid) is State.COMPLETED
    assert desk.engine.position_monitor.balance("ETH", VENUE, f"{desk.wallet}:unstaking") == 0
    await desk.assert_matches_chain()
    _checks(desk)


async def test_a_revert_at_mining_is_recorded_with_aaves_reason_and_its_gas(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """The borrow passes pre-flight, then the node drops it and the collateral price falls before it is
    sent again: it is mined with status 0, `TransactionReverted` names AAVE's code (replayed on the
    parent block) and the gas it burnt is charged."""
    desk = await make_desk("live-mined-revert", drop_after_s=0.3)
    assert (await desk.run(operation="AAVE_SUPPLY", token="ETH", amount="1"))["status"] == "CONFIRMED"
    await chain.control.set_automine(False)
    task = asyncio.create_task(desk.run(operation="AAVE_BORROW", token="USDT", amount="2000"))
    tx_hash = await _wait_pending(chain)
    await chain.control.drop_transaction(tx_hash)
    await chain.control.set_automine(True)
    await chain.set_price(chain.market.weth, 2_000 * 10**8)  # 1 WETH now covers $1,600 of debt
    result = await asyncio.wait_for(task, 20)
    assert (result["status"], result["code"]) == ("FAILED", "reverted")
    assert "COLLATERAL_CANNOT_COVER_NEW_BORROW (Aave error 36)" in result["reason"]
    (reverted,) = desk.events("TransactionReverted")
    assert reverted.tx_hash == tx_hash and reverted.gas_fee > 0
    assert "Aave error 36" in reverted.reason
    assert desk.engine.event_logger.venue(VENUE).state_of(result["instruction_id"]) is State.TX_REVERTED
    assert desk.borrowed("USDT") == 0
    await desk.assert_matches_chain()
    _checks(desk)


async def test_concurrent_instructions_from_one_wallet_leave_no_nonce_gap(make_desk: MakeDesk) -> None:
    """Six instructions at once from one wallet: consecutive, distinct nonces, all confirmed."""
    desk = await make_desk("live-concurrent")
    start = await desk.w3.eth.get_transaction_count(desk.address)
    instructions = [
        {"operation": "TRANSFER", "token": "ETH", "amount": str(i + 1), "to": "0x" + f"{i + 1:02x}" * 20}
        for i in range(4)
    ] + [
        {"operation": "TRANSFER", "token": "USDT", "amount": "10", "to": "0x" + "55" * 20},
        {"operation": "STAKE", "token": "ETH", "amount": "1.2"},
    ]
    outcomes = await asyncio.gather(*(desk.run(**i) for i in instructions))
    assert [o["status"] for o in outcomes] == ["CONFIRMED"] * 6, outcomes
    nonces = sorted(e.nonce for e in desk.events("TransactionSubmitted"))
    assert nonces == list(range(start, start + 6))
    assert await desk.w3.eth.get_transaction_count(desk.address) == start + 6
    await desk.assert_matches_chain()
    _checks(desk)


async def test_crash_between_write_ahead_and_broadcast_frees_the_nonce(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """The process dies after `TransactionSubmitted` is stored and before the broadcast: the restarted
    engine finds the transaction on no node, records it dropped, fails the instruction (its signed
    bytes died with the process) and reuses the nonce, so no gap is left."""
    to = chain.accounts[2].address
    first = await make_desk("live-crash", session={"key": "crash-1"})
    backend = first.engine.execution_interfaces["onchain"].backend

    async def die(raw: bytes) -> str:
        raise asyncio.CancelledError  # stands in for kill -9 at this point

    backend.client.send_raw = die
    with pytest.raises(asyncio.CancelledError):
        await first.run(operation="TRANSFER", token="ETH", amount="1", to=to)
    (lost,) = first.events("TransactionSubmitted")
    assert await chain.w3.eth.get_transaction_count(first.address) == lost.nonce

    second = await make_desk("live-crash", session={"key": "crash-2"})
    blocked = await second.run(operation="TRANSFER", token="ETH", amount="1", to=to)
    assert blocked["code"] == "unresolved_transactions"
    await asyncio.sleep(0.25)  # drop_after_s
    await second.engine.advance_to(datetime.now(UTC))
    assert [e.tx_hash for e in second.events("TransactionDropped")] == [lost.tx_hash]
    (failed,) = second.events("OrderFailed")
    assert failed.instruction_id == lost.instruction_id and "lost with the restart" in failed.reason
    ok = await second.run(operation="TRANSFER", token="ETH", amount="1", to=to)
    assert ok["status"] == "CONFIRMED", ok
    reused = [e for e in second.events("TransactionSubmitted") if e.instruction_id == ok["instruction_id"]]
    assert reused[0].nonce == lost.nonce
    check_lifecycle(second.engine.ledger, LIVE_FINAL)


async def test_bad_input_is_refused_with_a_reason_and_nothing_is_sent(make_desk: MakeDesk) -> None:
    """Too many decimals, an operation without its contract configured, a token STAKE does not take,
    a wrong chain id: recorded rejections naming the field; the wallet's nonce does not move."""
    desk = await make_desk("live-bad-input")
    nonce = await desk.w3.eth.get_transaction_count(desk.address)
    cases = [
        ({"operation": "TRANSFER", "token": "USDT", "amount": "1.0000001", "to": desk.address},
         "invalid_amount"),
        ({"operation": "STAKE", "token": "USDT", "amount": "1"}, "invalid_field"),
        ({"operation": "UNSTAKE", "token": "USDT", "amount": "1"}, "invalid_field"),
        ({"operation": "AAVE_SUPPLY", "token": "USDT", "amount": "0"}, "invalid_amount"),
        ({"operation": "AAVE_WITHDRAW", "token": "USDT", "amount": "5"}, "would_revert"),
    ]
    for instruction, code in cases:
        result = await desk.run(**instruction)
        assert (result["status"], result["code"]) == ("REJECTED", code), result
        assert result["reason"]
    no_pool = await make_desk("live-bad-input", db_name="no-pool", pool_addresses_provider="",
                              session={"key": "no-pool"})
    result = await no_pool.run(operation="AAVE_SUPPLY", token="USDT", amount="1")
    assert (result["status"], result["code"]) == ("REJECTED", "not_configured")
    assert "pool_addresses_provider" in result["reason"]
    wrong = await make_desk("live-bad-input", db_name="wrong-chain", chain_id=1, session={"key": "wrong"})
    result = await wrong.run(operation="TRANSFER", token="ETH", amount="1", to=desk.address)
    assert (result["status"], result["code"]) == ("REJECTED", "wrong_chain")
    assert "31337" in result["reason"]
    assert await desk.w3.eth.get_transaction_count(desk.address) == nonce


async def test_an_rpc_answering_garbage_is_a_clear_rejection(tmp_path: Path) -> None:
    """A node that answers HTML instead of JSON-RPC: one recorded rejection, no traceback."""
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html>502 bad gateway</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        key = actor_key("live-garbage")
        node = AnvilNode()
        node.port = server.server_address[1]
        engine = EventDrivenStrategyEngine(desk_config(node, key, tmp_path / "garbage.db"))
        result = await engine.execute_trade_with_interface(
            {"venue_type": "onchain", "operation": "TRANSFER", "token": "ETH", "amount": "1",
             "to": "0x" + "66" * 20}
        )
        assert (result["status"], result["code"]) == ("REJECTED", "rpc_unavailable")
        assert "eth_chainId" in result["reason"]
        await engine.execution_interfaces["onchain"].backend.client.close()
    finally:
        server.shutdown()


async def test_reconcile_records_what_the_chain_holds_against_the_ledger(
    make_desk: MakeDesk, chain: Chain
) -> None:
    """`reconcile` records `BalanceObserved` per asset; funds that arrived outside the ledger show as a
    difference, the rest agree."""
    desk = await make_desk("live-reconcile")
    assert (await desk.run(operation="STAKE", token="ETH", amount="6"))["status"] == "CONFIRMED"
    await chain.admin.transact(chain.usdt.functions.mint(desk.address, 7 * USDT_UNIT))
    backend = desk.engine.execution_interfaces["onchain"].backend
    report = await backend.reconcile(desk.engine.execution_interfaces["onchain"])
    assert report["unresolved"] == []
    differences = {asset: row["difference"] for asset, row in report["balances"].items()}
    assert differences == {"ETH": 0, "STKETH": 0, "USDT": D(7), "WETH": 0}
    observed = {e.asset: e.difference for e in desk.events("BalanceObserved")}
    assert observed == differences


async def test_same_grammar_and_result_shapes_as_the_simulated_chain(
    make_desk: MakeDesk, tmp_path: Path
) -> None:
    """The same instructions through the simulator (backtest) and through anvil (live): same statuses,
    same result keys, and per instruction the same sequence of lifecycle events (SPEC §12.10)."""
    instructions = [
        {"operation": "AAVE_SUPPLY", "token": "ETH", "amount": "2"},
        {"operation": "AAVE_BORROW", "token": "USDT", "amount": "100"},
        {"operation": "AAVE_REPAY", "token": "USDT", "amount": "50"},
        {"operation": "AAVE_WITHDRAW", "token": "ETH", "amount": "1"},
        {"operation": "STAKE", "token": "ETH", "amount": "1.2"},
        {"operation": "TRANSFER", "token": "ETH", "amount": "0.5", "to": "0x" + "77" * 20},
        {"operation": "AAVE_BORROW", "token": "USDT", "amount": "1000000"},
    ]
    market = {"eth_usd_price": 3000, "stketh_eth_rate": "1.2", "gas_price_gwei": 2}
    live = await make_desk("live-contract")
    simulated = EventDrivenStrategyEngine({
        "execution_mode": "backtest", "account": "desk", "venues": ["binance"],
        "ledger": {"url": f"sqlite:///{tmp_path}/sim.db", "views": False},
        "wallet_address": live.address, "staking": {"receipt_token": "STKETH", "rate": "1.2"},
        "initial_balances": {VENUE: {"ETH": str(FUNDED_ETH), "USDT": str(FUNDED_USDT)}},
    })  # fmt: skip
    sim_results, live_results = [], []
    for instruction in instructions:
        ins = {"venue_type": "onchain", **instruction}
        sim_results.append(await simulated.execute_trade_with_interface(ins, market))
        live_results.append(await live.engine.execute_trade_with_interface(ins, market))
    assert [r["status"] for r in live_results] == [r["status"] for r in sim_results]
    assert live_results[-1]["status"] == "REJECTED"  # too much debt: the simulator's risk check, AAVE's 36
    for sim, got in zip(sim_results, live_results, strict=True):
        assert set(got) == set(sim), (sorted(set(got) ^ set(sim)))
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in sim.items()}

    def sequences(engine: EventDrivenStrategyEngine) -> list[list[str]]:
        engine.event_logger.flush()
        by_instruction: dict[str, list[str]] = {}
        for _nid, event in engine.ledger.iter_events():
            iid = getattr(event, "instruction_id", None)
            if iid is not None:
                by_instruction.setdefault(iid, []).append(type(event).__name__)
        return list(by_instruction.values())

    assert sequences(live.engine) == sequences(simulated)
    check_lifecycle(simulated)
    check_lifecycle(live.engine, LIVE_FINAL)
