"""Wallet operations of the emulator through the real ccxt async client, on all three venues:
deposit addresses, withdrawals (life cycle, fees, refunds, errors, lost replies), deposits, internal
transfers, funding payments and funding rates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests.emulator import make_client
from tests.emulator.helpers import (
    DEPOSIT_WALLET,
    TRANSFER_ACCOUNTS,
    fetch_withdrawal_by_client_id,
    perp_amount,
    withdraw_params,
)
from tests.emulator.server import Emulator
from tests.emulator.wallets import default_deposit_address

pytest_plugins = ["tests.emulator.fixtures"]

D = Decimal
DEST = "0x" + "ab" * 20
PERP = "ETH/USDT:USDT"


def _client(venue: str, emulator: Emulator, **kw: Any) -> Any:
    return make_client(venue, emulator, currencies=True, **kw)


def _bal(emulator: Emulator, venue: str, wallet: str, asset: str) -> Decimal:
    return emulator.inspect(venue)["balances"][wallet][asset]["total"]


async def test_deposit_address(emulator: Emulator, venue: str) -> None:
    ex = _client(venue, emulator)
    try:
        usdt = await ex.fetch_deposit_address("USDT", withdraw_params(venue, "USDT"))
        eth = await ex.fetch_deposit_address("ETH", withdraw_params(venue, "ETH"))
        assert usdt["address"] == eth["address"] == default_deposit_address(venue)
        emulator.venue(venue).set_deposit_address("USDT", "ETH", "0x" + "12" * 20)
        again = await ex.fetch_deposit_address("USDT", withdraw_params(venue, "USDT"))
        assert again["address"] == "0x" + "12" * 20
    finally:
        await ex.close()
    assert default_deposit_address("binance") != default_deposit_address("okx")


async def test_withdraw_lifecycle(emulator: Emulator, venue: str) -> None:
    wallet = DEPOSIT_WALLET[venue]
    before = _bal(emulator, venue, wallet, "USDT")
    ex = _client(venue, emulator)
    try:
        made = await ex.withdraw("USDT", 25, DEST, params=withdraw_params(venue, "USDT", "wd1"))
        assert made["id"]
        assert _bal(emulator, venue, wallet, "USDT") == before - D(26)  # amount + fee 1
        [pending] = await fetch_withdrawal_by_client_id(ex, venue, "USDT", "wd1")
        assert pending["id"] == made["id"]
        assert pending["status"] == "pending" and not pending["txid"]
        assert pending["amount"] == 25 and pending["fee"]["cost"] == 1
        processed = emulator.venue(venue).process_withdrawals()
        assert [w.withdrawal_id for w in processed] == [made["id"]]
        [done] = await fetch_withdrawal_by_client_id(ex, venue, "USDT", "wd1")
        assert done["status"] == "ok"
        assert done["txid"] == processed[0].txid and len(done["txid"]) == 66
        assert (done["addressTo"] or done["address"]).lower() == DEST
        assert done["network"] == "ERC20"
        assert await fetch_withdrawal_by_client_id(ex, venue, "USDT", "other") == []
    finally:
        await ex.close()
    assert _bal(emulator, venue, wallet, "USDT") == before - D(26)


async def test_withdraw_eth_with_fee_setting_and_auto_process(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    engine.set_withdrawal_fee("ETH", "0.002")
    engine.auto_process_withdrawals = True
    wallet = DEPOSIT_WALLET[venue]
    before = _bal(emulator, venue, wallet, "ETH")
    ex = _client(venue, emulator)
    try:
        await ex.withdraw("ETH", 0.5, DEST, params=withdraw_params(venue, "ETH", "eth1"))
        [w] = await fetch_withdrawal_by_client_id(ex, venue, "ETH", "eth1")
        assert w["status"] == "ok" and w["txid"]
    finally:
        await ex.close()
    assert _bal(emulator, venue, wallet, "ETH") == before - D("0.502")


async def test_fail_withdrawal_refunds(emulator: Emulator, venue: str) -> None:
    wallet = DEPOSIT_WALLET[venue]
    before = _bal(emulator, venue, wallet, "USDT")
    ex = _client(venue, emulator)
    try:
        made = await ex.withdraw("USDT", 40, DEST, params=withdraw_params(venue, "USDT", "wdfail"))
        emulator.venue(venue).fail_withdrawal(made["id"])
        [w] = await fetch_withdrawal_by_client_id(ex, venue, "USDT", "wdfail")
        assert w["status"] == "failed"
    finally:
        await ex.close()
    assert _bal(emulator, venue, wallet, "USDT") == before
    assert emulator.venue(venue).process_withdrawals() == []


async def test_withdraw_errors_change_nothing(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    engine.set_balance(DEPOSIT_WALLET[venue], "USDT", "10")
    if venue == "bybit":
        engine.set_balance("unified", "USDT", "0")  # UTA withdrawals draw FUND, then UNIFIED
    ex = _client(venue, emulator)
    try:
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.withdraw("USDT", 9.5, DEST, params=withdraw_params(venue, "USDT", "big"))
        with pytest.raises((ccxt.InvalidAddress, ccxt.BadRequest)):
            await ex.withdraw("USDT", 1, "0x1234" + "z" * 36, params=withdraw_params(venue, "USDT", "bad"))
        assert await ex.fetch_withdrawals("USDT") == []
        await ex.withdraw("USDT", 2, DEST, params=withdraw_params(venue, "USDT", "dup"))
        with pytest.raises(ccxt.ExchangeError) as dup:
            await ex.withdraw("USDT", 2, DEST, params=withdraw_params(venue, "USDT", "dup"))
        assert not isinstance(dup.value, ccxt.InsufficientFunds)
        assert len(await ex.fetch_withdrawals("USDT")) == 1
    finally:
        await ex.close()
    assert _bal(emulator, venue, DEPOSIT_WALLET[venue], "USDT") == D(7)


async def test_withdraw_reply_lost_leaves_one_withdrawal(emulator: Emulator, venue: str) -> None:
    fault = emulator.inject(venue, "withdraw", "timeout", apply=True)
    ex = _client(venue, emulator, timeout_ms=600)
    try:
        with pytest.raises(ccxt.RequestTimeout):
            await ex.withdraw("USDT", 30, DEST, params=withdraw_params(venue, "USDT", "lost1"))
        assert fault.hits == 1
        found = await fetch_withdrawal_by_client_id(ex, venue, "USDT", "lost1")
        assert len(found) == 1 and found[0]["amount"] == 30
        # a blind re-send with the same client id is refused, not executed twice
        with pytest.raises(ccxt.ExchangeError):
            await ex.withdraw("USDT", 30, DEST, params=withdraw_params(venue, "USDT", "lost1"))
    finally:
        await ex.close()
    assert len(emulator.venue(venue).withdrawals()) == 1


async def test_credit_deposit_once(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    wallet = DEPOSIT_WALLET[venue]
    before = _bal(emulator, venue, wallet, "USDT")
    txid = "0x" + "c1" * 32
    first = engine.credit_deposit("USDT", "123.45", txid)
    assert engine.credit_deposit("USDT", "123.45", txid) == first
    ex = _client(venue, emulator)
    try:
        deposits = await ex.fetch_deposits("USDT")
    finally:
        await ex.close()
    assert [(d["id"], d["txid"], d["amount"], d["status"]) for d in deposits] == [
        (first, txid, 123.45, "ok")]
    assert _bal(emulator, venue, wallet, "USDT") == before + D("123.45")


async def test_pending_deposit_credited_when_ok(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    wallet = DEPOSIT_WALLET[venue]
    before = _bal(emulator, venue, wallet, "ETH")
    txid = "0x" + "d2" * 32
    engine.credit_deposit("ETH", "1.5", txid, status="pending")
    assert _bal(emulator, venue, wallet, "ETH") == before
    ex = _client(venue, emulator)
    try:
        [d] = await ex.fetch_deposits("ETH")
        assert d["status"] == "pending"
        engine.credit_deposit("ETH", "1.5", txid)
        [d] = await ex.fetch_deposits("ETH")
        assert d["status"] == "ok"
    finally:
        await ex.close()
    assert _bal(emulator, venue, wallet, "ETH") == before + D("1.5")


async def test_internal_transfer_both_ways(emulator: Emulator, venue: str) -> None:
    src, dst, src_wallet, dst_wallet = TRANSFER_ACCOUNTS[venue]
    a0, b0 = _bal(emulator, venue, src_wallet, "USDT"), _bal(emulator, venue, dst_wallet, "USDT")
    ex = _client(venue, emulator)
    try:
        await ex.transfer("USDT", 500, src, dst)
        assert (_bal(emulator, venue, src_wallet, "USDT"), _bal(emulator, venue, dst_wallet, "USDT")) == (
            a0 - 500, b0 + 500)
        await ex.transfer("USDT", 200, dst, src)
        assert (_bal(emulator, venue, src_wallet, "USDT"), _bal(emulator, venue, dst_wallet, "USDT")) == (
            a0 - 300, b0 + 300)
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.transfer("USDT", 10_000_000, src, dst)
        if venue != "binance":  # funding-wallet balance through fetch_balance
            funding = await ex.fetch_balance({"type": "funding"})
            assert D(str(funding["USDT"]["total"])) == a0 - 300
    finally:
        await ex.close()


async def test_funding_settlement_in_history(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    margin_wallet = engine.wallet_of("perp")
    ex = _client(venue, emulator)
    try:
        await ex.load_markets()
        await ex.create_order(PERP, "market", "buy", perp_amount(venue, 1.0))
        before = _bal(emulator, venue, margin_wallet, "USDT")
        long_pays = engine.settle_funding(PERP, "0.0001", ts_ms=1_800_000_000_000)
        assert long_pays.amount == D("-0.2")  # -1 ETH * 2000 * 0.0001
        engine.settle_funding(PERP, "-0.0002", mark="2100", ts_ms=1_800_028_800_000)
        history = await ex.fetch_funding_history(PERP)
    finally:
        await ex.close()
    assert _bal(emulator, venue, margin_wallet, "USDT") == before - D("0.2") + D("0.42")
    history = sorted(history, key=lambda h: h["timestamp"])
    assert [h["timestamp"] for h in history] == [1_800_000_000_000, 1_800_028_800_000]
    assert all(h["code"] == "USDT" and h["symbol"] == PERP and h["id"] for h in history)
    assert history[0]["id"] != history[1]["id"]
    # ccxt's sign: Binance income / OKX balChg are "+ received"; Bybit's is execFee, "+ paid"
    sign = -1 if venue == "bybit" else 1
    assert [round(h["amount"] * sign, 8) for h in history] == [-0.2, 0.42]


async def test_funding_rate_and_mark(emulator: Emulator, venue: str) -> None:
    engine = emulator.venue(venue)
    engine.set_funding_rate(PERP, "0.00037")
    emulator.set_mid(PERP, "2345.5")
    ex = _client(venue, emulator)
    try:
        fr = await ex.fetch_funding_rate(PERP)
        mark = fr["markPrice"]
        if venue == "okx":  # ccxt's okx parse_funding_rate has no markPrice: read the mark-price endpoint
            assert mark is None
            mark = (await ex.fetch_mark_price(PERP))["markPrice"]
    finally:
        await ex.close()
    assert fr["fundingRate"] == pytest.approx(0.00037)
    assert mark == pytest.approx(2345.5)


async def test_faults_on_wallet_endpoints(emulator: Emulator, venue: str) -> None:
    ex = _client(venue, emulator)
    try:
        for endpoint, call in [
            ("fetch_withdrawals", lambda: ex.fetch_withdrawals("USDT")),
            ("fetch_deposits", lambda: ex.fetch_deposits("USDT")),
            ("fetch_deposit_address", lambda: ex.fetch_deposit_address("USDT",
                                                                       withdraw_params(venue, "USDT"))),
            ("transfer", lambda: ex.transfer("USDT", 1, *TRANSFER_ACCOUNTS[venue][:2])),
            ("fetch_funding_history", lambda: ex.fetch_funding_history(PERP)),
            ("withdraw", lambda: ex.withdraw("USDT", 1, DEST, params=withdraw_params(venue, "USDT"))),
        ]:
            await ex.load_markets()
            fault = emulator.inject(venue, endpoint, "error", error="rate_limit")
            with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
                await call()
            assert fault.hits == 1, endpoint
    finally:
        await ex.close()
    assert emulator.venue(venue).withdrawals() == []


def test_reset_clears_wallet_state(emulator: Emulator) -> None:
    engine = emulator.venue("okx")
    engine.credit_deposit("USDT", "1", "0x" + "ee" * 32)
    engine.request_withdrawal(asset="USDT", amount=D(1), address=DEST, client_id="x")
    engine.set_funding_rate(PERP, "0.5")
    engine.set_withdrawal_fee("USDT", "9")
    engine.set_deposit_address("USDT", "ETH", "0x" + "34" * 20)
    engine.auto_process_withdrawals = True
    emulator.reset()
    assert engine.withdrawals() == [] and engine.deposits() == [] and engine.incomes == []
    assert engine.funding_rate(PERP) == D("0.0001") and engine.withdrawal_fee("USDT") == D(1)
    assert engine.deposit_address("USDT") == default_deposit_address("okx")
    assert engine.auto_process_withdrawals is False and emulator.chain is None
