"""Live transfers between venues, end to end: the real ccxt client against the loopback emulator and
the live chain backend on anvil with the real tokens (SPEC §12.18). The emulator's withdrawals are
real transactions from its hot wallet on the same anvil, and it credits deposits it sees on chain,
so every arrival is matched by the txid the other side reported.

Every test ends with the ledger equal to the emulated venue's wallets and to the chain's balances.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from aggregates.ids import transfer_id
from aggregates.transitions import State
from ledger.engine import EventDrivenStrategyEngine
from ledger.live import live_backend, live_config, open_engine, reconcile
from ledger.strategies.blocks import transfer
from ledger.testing.checkers import check_conservation, check_lifecycle, check_no_floats, check_rebuild_equals
from tests.chain import abi
from tests.chain.anvil import CHAIN_ID
from tests.chain.harness import ETHER, USDT_UNIT, Chain
from tests.chain.tx import actor_key
from tests.emulator import Emulator
from tests.integration.test_live_cex import FAST, VENUES, close_all, factory, keys

pytest_plugins = ["tests.emulator.fixtures", "tests.chain.fixtures"]

D = Decimal
CHAIN = "ethereum"
FUNDED_ETH = 100
FUNDED_USDT = 5_000
LIVE_FINAL = frozenset(State) - {State.ACCEPTED, State.SUBMITTED, State.CANCEL_REQUESTED}
# ledger wallet -> emulator wallet, for the wallets a transfer touches
EMU_WALLET = {
    "spot": "spot",
    "futures": "futures",
    "funding": "funding",
    "unified": "unified",
    "trading": "unified",
}
Engine = EventDrivenStrategyEngine


def names(engine: Engine, iid: str) -> list[str]:
    out = []
    for _n, e in engine.ledger.iter_events():
        if getattr(e, "instruction_id", None) == iid or (
            type(e).__name__ == "TransferReceived" and e.transfer_id == transfer_id(iid)
        ):
            out.append(type(e).__name__)
    return out




def events(engine: Engine, name: str) -> list[Any]:
    return [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == name]


def held(engine: Engine, venue: str, wallet: str, asset: str) -> Decimal:
    return engine.position_monitor.balance(asset, venue, wallet)


def assert_wallets_match(engine: Engine, emulator: Emulator, venue: str, *wallets: str) -> None:
    state = emulator.inspect(venue)["balances"]
    for wallet in wallets:
        emu = {a: v["total"] for a, v in state.get(EMU_WALLET[wallet], {}).items() if v["total"]}
        ours = {
            a: x
            for (v, w, a), x in engine.projection.state.balances.items()
            if v == venue and w == wallet and x
        }
        assert ours == emu, f"{venue}/{wallet}"


def checks(engine: Engine) -> None:
    engine.event_logger.flush()
    check_lifecycle(engine, LIVE_FINAL)
    check_conservation(engine)
    check_no_floats(engine)
    check_rebuild_equals(engine)


async def settle(engine: Engine, done: Callable[[], bool], rounds: int = 60) -> None:
    """Advance the live engine (pollers, chain legs, arrivals) until `done()` or the rounds run out."""
    import asyncio

    for _ in range(rounds):
        await engine.advance_to(engine.event_logger.now(), {})
        if done():
            return
        await asyncio.sleep(0.05)
    backend = engine.execution_interfaces["transfer"].transfers
    stages = {k: m.stage for k, m in getattr(backend, "moving", {}).items()}
    raise AssertionError(f"the transfer did not settle: {stages} {getattr(backend, 'errors', {})}")


def arrived(engine: Engine, iid: str) -> Callable[[], bool]:
    return lambda: "TransferReceived" in names(engine, iid)


# ---- CEX only: moves between wallets of one venue ------------------------------------------------------

Start = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def start(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Start]:
    engines: list[Engine] = []

    async def _start(db: str = "live.db", **extra: Any) -> Engine:
        config = {
            "ledger": {"url": f"sqlite:///{tmp_path / db}"},
            "venues": list(VENUES),
            **keys(emulator),
            "live": dict(FAST),
            "transfers": {"poll_s": 0, "lookup_attempts": 2},
            **extra,
        }
        engine = open_engine(live_config(config), factory(emulator))
        engines.append(engine)
        await reconcile(engine)
        return engine

    yield _start
    await close_all(engines)


MOVES = {"binance": ("spot", "futures"), "bybit": ("unified", "funding"), "okx": ("trading", "funding")}


@pytest.mark.parametrize("venue", VENUES)
async def test_a_move_between_wallets_of_one_venue(start: Start, emulator: Emulator, venue: str) -> None:
    engine = await start()
    src, dst = MOVES[venue]
    before = held(engine, venue, src, "USDT")
    ours_dst = held(engine, venue, dst, "USDT")
    emu_dst = emulator.inspect(venue)["balances"].get(EMU_WALLET[dst], {}).get("USDT", {}).get("total", D(0))
    result = await engine.execute_trade_with_interface(
        transfer(venue, venue, "USDT", "250", from_wallet=src, to_wallet=dst)
    )
    assert result["status"] == "COMPLETED", result
    iid = result["instruction_id"]
    assert names(engine, iid) == [
        "InstructionAccepted",
        "TransferSent",
        "TransferObserved",
        "TransferReceived",
    ]
    assert held(engine, venue, src, "USDT") == before - 250
    assert held(engine, venue, dst, "USDT") == ours_dst + 250
    assert_wallets_match(engine, emulator, venue, src)
    after = emulator.inspect(venue)["balances"][EMU_WALLET[dst]]["USDT"]["total"]
    assert after == emu_dst + 250  # a funding wallet the ledger never adopted moved by exactly the same
    checks(engine)


@pytest.mark.parametrize("venue", VENUES)
async def test_a_move_the_venue_refuses_is_a_recorded_failure(
    start: Start, emulator: Emulator, venue: str
) -> None:
    engine = await start()
    src, dst = MOVES[venue]
    emulator.inject(venue, "transfer", "error", error="insufficient_balance")
    result = await engine.execute_trade_with_interface(
        transfer(venue, venue, "USDT", "10", from_wallet=src, to_wallet=dst)
    )
    assert result["status"] == "FAILED" and result["code"] == "insufficient_balance", result
    assert names(engine, result["instruction_id"]) == ["InstructionAccepted", "TransferFailed"]
    assert_wallets_match(engine, emulator, venue, src)
    checks(engine)


async def test_bad_transfers_are_refused_before_anything_is_sent(start: Start, emulator: Emulator) -> None:
    engine = await start()
    sent_before = len(emulator.requests("binance"))
    same = await engine.execute_trade_with_interface(
        transfer("binance", "binance", "USDT", "1", from_wallet="spot", to_wallet="spot")
    )
    assert same["status"] == "REJECTED" and "to_wallet" in same["reason"]
    unknown = await engine.execute_trade_with_interface(
        transfer("binance", "binance", "USDT", "1", from_wallet="spot", to_wallet="margin")
    )
    assert unknown["status"] == "REJECTED" and "margin" in unknown["reason"]
    too_much = await engine.execute_trade_with_interface(
        transfer("binance", "binance", "USDT", "1000000000", from_wallet="spot", to_wallet="futures")
    )
    assert too_much["status"] == "REJECTED" and too_much["code"] == "insufficient_balance"
    no_chain = await engine.execute_trade_with_interface(transfer("binance", CHAIN, "USDT", "1"))
    assert no_chain["status"] == "REJECTED" and no_chain["code"] == "not_configured"
    assert not [
        r
        for r in emulator.requests("binance")[sent_before:]
        if "withdraw" in r.get("path", "") or "asset/transfer" in r.get("path", "")
    ]
    checks(engine)


# ---- with the chain: withdrawals and deposits matched by txid -----------------------------------------


Desk = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def desk(emulator: Emulator, chain: Chain, tmp_path: Path) -> AsyncIterator[Desk]:
    """A live engine on the three venues and the chain; the emulator's withdrawals are real transfers
    from its hot wallet, its deposits are what it sees arriving at its deposit addresses."""
    engines: list[Engine] = []
    key = actor_key("transfer-desk")
    address = Account.from_key(key).address
    hot_key = actor_key("cex-hot-wallet")
    hot = Account.from_key(hot_key).address
    for who in (address, hot):
        await chain.control.set_balance(who, FUNDED_ETH * ETHER)
        await chain.admin.transact(chain.usdt.functions.mint(who, FUNDED_USDT * USDT_UNIT))
    m = chain.market
    emulator.attach_chain(
        chain.node.rpc_url, tokens={"USDT": m.usdt}, hot_wallet_key="0x" + hot_key.hex(), confirmations=1
    )
    for venue in VENUES:
        emulator.venue(venue).auto_process_withdrawals = True

    async def make(db: str = "desk.db", **extra: Any) -> Engine:
        base = {
            "ledger": {"url": f"sqlite:///{tmp_path / db}", "views": False},
            "venues": list(VENUES),
            **keys(emulator),
            "live": dict(FAST),
            "transfers": {"poll_s": 0, "lookup_attempts": 2},
            "rpc_url": chain.node.rpc_url,
            "wallet_private_key": "0x" + key.hex(),
            "wallet_address": address,
            "chain_id": CHAIN_ID,
            "confirmations": 1,
            "max_fee_per_gas_gwei": "100",
            "max_priority_fee_gwei": "2",
            "poll_s": 0.005,
            "confirm_timeout_s": 20,
            "pool_addresses_provider": m.addresses_provider,
            "tokens": {"USDT": m.usdt, "WETH": m.weth},
            **extra,
        }
        config = live_config(base)
        config["initial_balances"] = {CHAIN: {"ETH": str(FUNDED_ETH), "USDT": str(FUNDED_USDT)}}
        engine = open_engine(config, factory(emulator))
        engines.append(engine)
        await reconcile(engine)
        return engine

    try:
        yield make
    finally:
        emulator.detach_chain()
        await close_all(engines)


async def chain_usdt(chain: Chain, who: str) -> Decimal:
    token = chain.w3.eth.contract(address=chain.market.usdt, abi=abi.ERC20)
    return Decimal(await token.functions.balanceOf(who).call()).scaleb(-6)


@pytest.mark.parametrize("venue", VENUES)
async def test_withdrawal_to_the_chain_is_matched_by_its_txid(
    desk: Desk, emulator: Emulator, chain: Chain, venue: str
) -> None:
    engine = await desk()
    me = engine.execution_interfaces["onchain"].backend.address
    emulator.venue(venue).set_withdrawal_fee("USDT", "1")
    wallet = "spot" if venue == "binance" else "funding"
    if venue != "binance":  # withdrawals leave from the funding wallet: move some there first
        trading = MOVES[venue][0]
        moved = await engine.execute_trade_with_interface(
            transfer(venue, venue, "USDT", "500", from_wallet=trading, to_wallet="funding")
        )
        assert moved["status"] == "COMPLETED", moved
    before = held(engine, venue, wallet, "USDT")
    emu_before = emulator.inspect(venue)["balances"][wallet]["USDT"]["total"]
    on_chain = await chain_usdt(chain, me)
    result = await engine.execute_trade_with_interface(transfer(venue, CHAIN, "USDT", "300"))
    assert result["status"] == "IN_TRANSIT" and result["withdrawal_id"], result
    iid = result["instruction_id"]
    assert held(engine, venue, wallet, "USDT") == before - 301  # amount + the venue's fee
    assert emulator.inspect(venue)["balances"][wallet]["USDT"]["total"] == emu_before - 301
    await settle(engine, arrived(engine, iid))
    observed = [e for e in events(engine, "TransferObserved") if e.instruction_id == iid]
    txid = next(e.txid for e in observed if e.stage == "broadcast")
    assert txid == emulator.venue(venue).withdrawals()[0].txid and txid.startswith("0x")
    assert [e.stage for e in observed] == ["withdrawal", "broadcast", "deposit"]
    assert observed[0].external_id == result["withdrawal_id"]
    assert await chain_usdt(chain, me) == on_chain + 300
    assert held(engine, CHAIN, me, "USDT") == await chain_usdt(chain, me)
    assert engine.projection.state.orders[iid].status == "COMPLETED"
    if venue == "binance":
        assert_wallets_match(engine, emulator, venue, "spot")
    checks(engine)


@pytest.mark.parametrize("venue", VENUES)
async def test_deposit_from_the_chain_is_matched_at_the_venue(
    desk: Desk, emulator: Emulator, chain: Chain, venue: str
) -> None:
    engine = await desk()
    me = engine.execution_interfaces["onchain"].backend.address
    address = emulator.venue(venue).deposit_address("USDT")
    wallet = "spot" if venue == "binance" else "funding"
    before = held(engine, venue, wallet, "USDT")
    result = await engine.execute_trade_with_interface(transfer(CHAIN, venue, "USDT", "120"))
    assert result["status"] == "IN_TRANSIT", (result.get("code"), result.get("reason"))
    iid = result["instruction_id"]
    assert result["address"] == address and result["tx_hash"]
    assert held(engine, CHAIN, me, "USDT") == D(FUNDED_USDT) - 120
    await settle(engine, arrived(engine, iid))
    seq = names(engine, iid)
    assert seq[:4] == [
        "InstructionAccepted",
        "TransactionSubmitted",
        "TransactionMined",
        "TransactionConfirmed",
    ]
    assert seq[4:] == ["TransferSent", "TransferObserved", "TransferObserved", "TransferReceived"]
    deposits = emulator.venue(venue).deposits()
    assert [d.txid.lower() for d in deposits] == [result["tx_hash"].lower()]
    assert held(engine, venue, wallet, "USDT") == before + 120
    if venue == "binance":
        assert_wallets_match(engine, emulator, venue, "spot")
    assert held(engine, CHAIN, me, "USDT") == await chain_usdt(chain, me)
    assert held(engine, CHAIN, me, "ETH") == D(await chain.w3.eth.get_balance(me)).scaleb(-18)
    checks(engine)


async def test_cex_to_cex_goes_through_the_chain(desk: Desk, emulator: Emulator) -> None:
    """Binance withdraws to Bybit's deposit address; Bybit's deposit with that txid is the arrival."""
    engine = await desk()
    result = await engine.execute_trade_with_interface(transfer("binance", "bybit", "USDT", "75"))
    assert result["status"] == "IN_TRANSIT", (result.get("code"), result.get("reason"))
    assert result["address"] == emulator.venue("bybit").deposit_address("USDT")
    await settle(engine, arrived(engine, result["instruction_id"]))
    assert held(engine, "bybit", "funding", "USDT") == D(75)
    assert_wallets_match(engine, emulator, "binance", "spot")
    checks(engine)


async def test_a_lost_withdrawal_reply_is_found_by_client_id_and_never_sent_twice(
    desk: Desk, emulator: Emulator
) -> None:
    engine = await desk(live={**FAST, "fill_timeout_s": 1})
    emulator.venue("okx").auto_process_withdrawals = False
    # fund OKX's funding wallet in the ledger first (withdrawals leave from it)
    moved = await engine.execute_trade_with_interface(
        transfer("okx", "okx", "USDT", "500", from_wallet="trading", to_wallet="funding")
    )
    assert moved["status"] == "COMPLETED"
    fault = emulator.inject("okx", "withdraw", "timeout", apply=True)
    result = await engine.execute_trade_with_interface(
        transfer("okx", CHAIN, "USDT", "40", from_wallet="funding")
    )
    assert fault.hits == 1
    assert result["status"] in ("IN_TRANSIT", "UNKNOWN"), result
    iid = result["instruction_id"]
    await settle(engine, lambda: "TransferSent" in names(engine, iid))
    assert len(emulator.venue("okx").withdrawals()) == 1
    assert names(engine, iid).count("TransferSent") == 1
    emulator.venue("okx").process_withdrawals()
    await settle(engine, arrived(engine, iid))
    assert len(emulator.venue("okx").withdrawals()) == 1
    checks(engine)


async def test_a_withdrawal_the_venue_fails_later_is_refunded(desk: Desk, emulator: Emulator) -> None:
    engine = await desk()
    emulator.venue("binance").auto_process_withdrawals = False
    spot = held(engine, "binance", "spot", "USDT")
    result = await engine.execute_trade_with_interface(transfer("binance", CHAIN, "USDT", "60"))
    assert result["status"] == "IN_TRANSIT"
    emulator.venue("binance").fail_withdrawal(result["withdrawal_id"])
    iid = result["instruction_id"]
    await settle(engine, lambda: "TransferFailed" in names(engine, iid))
    assert held(engine, "binance", "spot", "USDT") == spot
    assert engine.projection.state.transit == {}
    assert_wallets_match(engine, emulator, "binance", "spot")
    checks(engine)


async def test_a_restart_follows_transfers_sent_before_it(
    desk: Desk, emulator: Emulator, chain: Chain
) -> None:
    """The first process withdrew and stopped; the second finds the withdrawal, waits for its txid and
    matches the arrival, once."""
    first = await desk()
    emulator.venue("binance").auto_process_withdrawals = False
    result = await first.execute_trade_with_interface(transfer("binance", CHAIN, "USDT", "33"))
    iid = result["instruction_id"]
    backend = live_backend(first)
    assert backend is not None
    await backend.close()
    await first.execution_interfaces["onchain"].backend.close()
    first.close("stopped", views=False)
    first.ledger.close()
    emulator.venue("binance").process_withdrawals()
    second = await desk()
    await settle(second, arrived(second, iid))
    assert names(second, iid).count("TransferReceived") == 1
    assert names(second, iid).count("TransferSent") == 1
    me = second.execution_interfaces["onchain"].backend.address
    assert held(second, CHAIN, me, "USDT") == await chain_usdt(chain, me)
    checks(second)
