"""The real ccxt async client trades against the emulated Binance, Bybit and OKX over TLS."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.emulator import Emulator
from tests.emulator.helpers import (
    MAKER_FEE,
    PERP_WALLET,
    SPOT_WALLET,
    TAKER_FEE,
    fetch_by_client_id,
    perp_amount,
)

pytest_plugins = ["tests.emulator.fixtures"]

D = Decimal


def dec(x: Any) -> Decimal:
    return D(str(x))


def balance(emu: Emulator, venue: str, wallet: str, asset: str) -> dict[str, Decimal]:
    return emu.inspect(venue)["balances"][wallet][asset]


async def test_load_markets_precision_and_limits(client: Any, venue: str, emulator: Emulator) -> None:
    """load_markets sees the four emulated markets with the venue's precision, minimums and units."""
    for symbol in ("ETH/USDT", "BTC/USDT", "ETH/USDT:USDT", "BTC/USDT:USDT"):
        assert symbol in client.markets
    spot, perp = client.market("ETH/USDT"), client.market("ETH/USDT:USDT")
    assert spot["spot"] and spot["active"]
    assert perp["swap"] and perp["linear"] and perp["settle"] == "USDT"
    spec = emulator.venue(venue).markets["ETH/USDT:USDT"]
    assert dec(perp["contractSize"]) == spec.contract_size
    assert dec(perp["precision"]["amount"]) == spec.step
    assert dec(perp["precision"]["price"]) == spec.tick
    assert dec(perp["limits"]["amount"]["min"]) == spec.min_qty
    assert dec(spot["precision"]["amount"]) == emulator.venue(venue).markets["ETH/USDT"].step
    if venue == "okx":
        assert dec(client.market("BTC/USDT:USDT")["contractSize"]) == D("0.01")
        assert dec(perp["contractSize"]) == D("0.1")
    assert emulator.inspect(venue)["orders"] == []


async def test_fetch_time_follows_emulator_clock(client: Any, venue: str, emulator: Emulator) -> None:
    """fetch_time returns the emulator clock, including an injected offset."""
    emulator.clock.set_source(lambda: 1_700_000_000_000.0)
    assert await client.fetch_time() == 1_700_000_000_000
    emulator.clock.offset_ms = 5_000
    assert await client.fetch_time() == 1_700_000_005_000
    assert emulator.clock.now_ms() == 1_700_000_005_000
    assert [r["name"] for r in emulator.requests(venue)][-2:] == ["fetch_time", "fetch_time"]
    assert emulator.inspect(venue)["orders"] == []


async def test_fetch_balance_matches_inspect(client: Any, venue: str, emulator: Emulator) -> None:
    """fetch_balance reports the seeded wallet exactly as the emulator holds it."""
    bal = await client.fetch_balance()
    state = emulator.inspect(venue)["balances"][SPOT_WALLET[venue]]
    for asset in ("USDT", "ETH", "BTC"):
        assert dec(bal[asset]["total"]) == state[asset]["total"]
        assert dec(bal[asset]["free"]) == state[asset]["free"]
    if venue == "binance":
        fut = await client.fetch_balance({"type": "swap"})
        assert dec(fut["USDT"]["total"]) == balance(emulator, venue, "futures", "USDT")["total"]


async def test_spot_market_buy_and_sell(client: Any, venue: str, emulator: Emulator) -> None:
    """A market buy then a market sell move balances by amount x mid less the taker fee."""
    rate = D(TAKER_FEE[venue][0])
    wallet = SPOT_WALLET[venue]
    buy = await client.create_order("ETH/USDT", "market", "buy", 0.5, None, {"clientOrderId": "mb1"})
    assert buy["clientOrderId"] == "mb1"
    emulator.set_mid("ETH/USDT", "2100", venues=(venue,))
    sell = await client.create_order("ETH/USDT", "market", "sell", 0.25, None,
                                     {"clientOrderId": "ms1"})
    for cid, order_id in (("mb1", buy["id"]), ("ms1", sell["id"])):
        fetched = await fetch_by_client_id(client, venue, "ETH/USDT", cid)
        assert fetched["id"] == order_id and fetched["status"] == "closed"
    eth = balance(emulator, venue, wallet, "ETH")["total"]
    usdt = balance(emulator, venue, wallet, "USDT")["total"]
    assert eth == D("10") + D("0.5") * (1 - rate) - D("0.25")
    assert usdt == D("100000") - D("1000") + D("525") * (1 - rate)
    bal = await client.fetch_balance()
    assert dec(bal["ETH"]["total"]) == eth and dec(bal["USDT"]["total"]) == usdt
    state = emulator.inspect(venue)
    assert [t.side for t in state["trades"]] == ["buy", "sell"]
    assert [o.status for o in state["orders"]] == ["filled", "filled"]


async def test_spot_market_buy_by_quote_amount(client: Any, venue: str, emulator: Emulator) -> None:
    """ccxt's quote-amount market buy (amount x price) spends that much quote on every venue."""
    if venue == "okx":
        order = await client.create_order("ETH/USDT", "market", "buy", 1000, None,
                                          {"tgtCcy": "quote_ccy", "clientOrderId": "qb1"})
    else:
        # Binance sends quoteOrderQty, Bybit qty in quote coin (its default for spot market buys)
        order = await client.create_order("ETH/USDT", "market", "buy", 0.5, 2000,
                                          {"clientOrderId": "qb1"})
    fetched = await fetch_by_client_id(client, venue, "ETH/USDT", "qb1")
    assert fetched["id"] == order["id"] and dec(fetched["filled"]) == D("0.5")
    assert balance(emulator, venue, SPOT_WALLET[venue], "USDT")["total"] == D("99000")
    [o] = emulator.inspect(venue)["orders"]
    assert o.quote_qty == D("1000") and o.filled == D("0.5")


async def test_perp_long_then_short_positions(client: Any, venue: str, emulator: Emulator) -> None:
    """A market long, a flip to short, then a reduce-only close; positions and PnL as expected."""
    rate = D(TAKER_FEE[venue][1])
    sym = "ETH/USDT:USDT"
    await client.create_order(sym, "market", "buy", perp_amount(venue, 1), None, {"clientOrderId": "pl1"})
    [pos] = [p for p in await client.fetch_positions([sym]) if p["contracts"]]
    assert pos["side"] == "long" and dec(pos["contracts"]) == dec(perp_amount(venue, 1))
    assert dec(pos["entryPrice"]) == D("2000")
    state = emulator.inspect(venue)["positions"][sym]
    assert state["base_amount"] == D("1") and state["side"] == "long"

    emulator.set_mid(sym, "2100", venues=(venue,))
    await client.create_order(sym, "market", "sell", perp_amount(venue, 2), None, {"clientOrderId": "ps1"})
    [pos] = [p for p in await client.fetch_positions([sym]) if p["contracts"]]
    assert pos["side"] == "short" and dec(pos["entryPrice"]) == D("2100")
    assert emulator.inspect(venue)["positions"][sym]["base_amount"] == D("-1")

    await client.create_order(sym, "market", "buy", perp_amount(venue, 1), None,
                              {"clientOrderId": "pc1", "reduceOnly": True})
    assert [p for p in await client.fetch_positions([sym]) if p["contracts"]] == []
    state = emulator.inspect(venue)
    assert state["positions"] == {}
    fees = D("2000") * rate + D("4200") * rate + D("2100") * rate
    expected = D("100000") + D("100") - fees
    assert state["balances"][PERP_WALLET[venue]]["USDT"]["total"] == expected
    params = {"type": "swap"} if venue == "binance" else {}
    bal = await client.fetch_balance(params)
    assert dec(bal["USDT"]["total"]) == expected
    assert [t.realized_pnl for t in state["trades"]] == [D(0), D(100), D(0)]


async def test_limit_order_rests_then_cancel(client: Any, venue: str, emulator: Emulator) -> None:
    """A limit buy below the mid rests and locks quote; cancel releases it."""
    order = await client.create_order("ETH/USDT", "limit", "buy", 0.1, 1900, {"clientOrderId": "lr1"})
    open_orders = await client.fetch_open_orders("ETH/USDT")
    assert [o["id"] for o in open_orders] == [order["id"]]
    assert open_orders[0]["status"] == "open" and dec(open_orders[0]["price"]) == D("1900")
    usdt = balance(emulator, venue, SPOT_WALLET[venue], "USDT")
    assert usdt["locked"] == D("190") and usdt["free"] == D("99810")
    bal = await client.fetch_balance()
    assert dec(bal["USDT"]["used"]) == D("190")
    await client.cancel_order(order["id"], "ETH/USDT")
    fetched = await fetch_by_client_id(client, venue, "ETH/USDT", "lr1")
    assert fetched["status"] == "canceled"
    assert await client.fetch_open_orders("ETH/USDT") == []
    usdt = balance(emulator, venue, SPOT_WALLET[venue], "USDT")
    assert usdt["locked"] == 0 and usdt["free"] == D("100000")
    [o] = emulator.inspect(venue)["orders"]
    assert o.status == "canceled" and o.client_id == "lr1"


async def test_fetch_order_by_client_order_id(client: Any, venue: str, emulator: Emulator) -> None:
    """Open and filled orders are found by client order id with the venue's native parameters."""
    resting = await client.create_order("ETH/USDT", "limit", "sell", 0.2, 2500, {"clientOrderId": "co1"})
    filled = await client.create_order("ETH/USDT", "market", "buy", 0.2, None, {"clientOrderId": "co2"})
    a = await fetch_by_client_id(client, venue, "ETH/USDT", "co1")
    b = await fetch_by_client_id(client, venue, "ETH/USDT", "co2")
    assert (a["id"], a["status"], a["clientOrderId"]) == (resting["id"], "open", "co1")
    assert (b["id"], b["status"], b["clientOrderId"]) == (filled["id"], "closed", "co2")
    assert dec(b["filled"]) == D("0.2")
    with pytest.raises(ccxt.OrderNotFound):
        await fetch_by_client_id(client, venue, "ETH/USDT", "nosuchid")
    assert [o.client_id for o in emulator.inspect(venue)["orders"]] == ["co1", "co2"]


async def test_duplicate_client_id_answers_are_classified_as_ours(client: Any, venue: str) -> None:
    """Each venue's real answer to a second order with the client id of a working one: ccxt raises
    a plain InvalidOrder; the executor must read it as "that order exists" (look it up), not as a
    failure of the instruction."""
    from executors.live import ccxt_parse as parse

    await client.create_order("ETH/USDT", "limit", "buy", 0.1, 1900, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder) as caught:
        await client.create_order("ETH/USDT", "limit", "buy", 0.1, 1900, {"clientOrderId": "dup1"})
    assert parse.classify(caught.value) == parse.ErrorClass("unknown", "duplicate_client_id")


async def test_fetch_my_trades(client: Any, venue: str, emulator: Emulator) -> None:
    """fetch_my_trades returns every fill with the venue's trade id, price, amount and fee."""
    await client.create_order("ETH/USDT", "market", "buy", 0.3, None, {"clientOrderId": "tr1"})
    emulator.set_mid("ETH/USDT", "2050", venues=(venue,))
    await client.create_order("ETH/USDT", "market", "sell", 0.1, None, {"clientOrderId": "tr2"})
    trades = sorted(await client.fetch_my_trades("ETH/USDT"), key=lambda t: (t["timestamp"], t["id"]))
    state = emulator.inspect(venue)["trades"]
    assert [t["id"] for t in trades] == [t.trade_id for t in state]
    assert [t["side"] for t in trades] == ["buy", "sell"]
    assert [dec(t["amount"]) for t in trades] == [D("0.3"), D("0.1")]
    assert [dec(t["price"]) for t in trades] == [D("2000"), D("2050")]
    assert [t["fee"]["currency"] for t in trades] == ["ETH", "USDT"]
    assert [dec(t["fee"]["cost"]) for t in trades] == [t.fee for t in state]
    assert all(t["takerOrMaker"] == "taker" for t in trades)


async def test_cancel_all_orders(client: Any, venue: str, emulator: Emulator) -> None:
    """cancel_all_orders (Binance, Bybit) or list-and-cancel (OKX has no cancel-all) clears a book."""
    for i, price in enumerate((1800, 1850)):
        await client.create_order("ETH/USDT", "limit", "buy", 0.05, price, {"clientOrderId": f"ca{i}"})
    await client.create_order("ETH/USDT:USDT", "limit", "sell", perp_amount(venue, 0.1), 2500,
                              {"clientOrderId": "ca9"})
    if venue == "okx":
        assert client.has["cancelAllOrders"] is False
        for symbol in ("ETH/USDT", "ETH/USDT:USDT"):
            ids = [o["id"] for o in await client.fetch_open_orders(symbol)]
            cancelled = await client.cancel_orders(ids, symbol)
            assert sorted(o["id"] for o in cancelled) == sorted(ids)
    else:
        await client.cancel_all_orders("ETH/USDT")
        await client.cancel_all_orders("ETH/USDT:USDT")
    assert await client.fetch_open_orders("ETH/USDT") == []
    assert await client.fetch_open_orders("ETH/USDT:USDT") == []
    state = emulator.inspect(venue)
    assert [o.status for o in state["orders"]] == ["canceled"] * 3
    assert state["balances"][SPOT_WALLET[venue]]["USDT"]["locked"] == 0


async def test_partial_fills(client: Any, venue: str, emulator: Emulator) -> None:
    """With a fill ratio, a market order fills in part; a resting remainder fills later as maker."""
    engine = emulator.venue(venue)
    engine.set_fill_ratio("ETH/USDT", "0.5")
    await client.create_order("ETH/USDT", "market", "buy", 0.4, None, {"clientOrderId": "pf1"})
    market = await fetch_by_client_id(client, venue, "ETH/USDT", "pf1")
    assert dec(market["filled"]) == D("0.2") and market["status"] != "open"
    # a crossing limit order: half now as taker, the rest rests and fills as maker
    await client.create_order("ETH/USDT", "limit", "buy", 0.4, 2010, {"clientOrderId": "pf2"})
    limit = await fetch_by_client_id(client, venue, "ETH/USDT", "pf2")
    assert limit["status"] == "open" and dec(limit["filled"]) == D("0.2")
    [resting] = [o for o in engine.open_orders("ETH/USDT")]
    engine.fill_resting(resting)
    limit = await fetch_by_client_id(client, venue, "ETH/USDT", "pf2")
    assert limit["status"] == "closed" and dec(limit["filled"]) == D("0.4")
    trades = await client.fetch_my_trades("ETH/USDT")
    assert sorted(t["takerOrMaker"] for t in trades) == ["maker", "taker", "taker"]
    state = emulator.inspect(venue)
    assert [(o.client_id, o.filled) for o in state["orders"]] == [("pf1", D("0.2")), ("pf2", D("0.4"))]
    spot_rate, maker_rate = D(TAKER_FEE[venue][0]), D(MAKER_FEE[venue][0])
    eth = D("10") + D("0.4") * (1 - spot_rate) + D("0.2") * (1 - maker_rate)
    assert state["balances"][SPOT_WALLET[venue]]["ETH"]["total"] == eth


async def test_resting_limit_fills_when_mid_moves(client: Any, venue: str, emulator: Emulator) -> None:
    """A resting limit buy fills at its own price as maker once the mid trades through it."""
    order = await client.create_order("ETH/USDT:USDT", "limit", "buy", perp_amount(venue, 0.5), 1950,
                                      {"clientOrderId": "mv1"})
    emulator.set_mid("ETH/USDT:USDT", "1940", venues=(venue,))
    fetched = await fetch_by_client_id(client, venue, "ETH/USDT:USDT", "mv1")
    assert fetched["id"] == order["id"] and fetched["status"] == "closed"
    [trade] = await client.fetch_my_trades("ETH/USDT:USDT")
    assert trade["takerOrMaker"] == "maker" and dec(trade["price"]) == D("1950")
    assert dec(trade["fee"]["cost"]) == D("975") * D(MAKER_FEE[venue][1])
    [pos] = [p for p in await client.fetch_positions(["ETH/USDT:USDT"]) if p["contracts"]]
    assert pos["side"] == "long" and dec(pos["entryPrice"]) == D("1950")
    assert emulator.inspect(venue)["positions"]["ETH/USDT:USDT"]["base_amount"] == D("0.5")


async def test_real_insufficient_balance(client: Any, venue: str, emulator: Emulator) -> None:
    """Orders beyond the account's funds or margin are rejected with InsufficientFunds."""
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "market", "buy", 10, None, {"clientOrderId": "ib1"})
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("ETH/USDT:USDT", "market", "buy", perp_amount(venue, 5000), None,
                                  {"clientOrderId": "ib2"})
    state = emulator.inspect(venue)
    assert state["orders"] == [] and state["trades"] == []


async def test_reduce_only_without_position_is_rejected(client: Any, venue: str,
                                                        emulator: Emulator) -> None:
    """A reduce-only order with no position is refused (InvalidOrder, or ExchangeError on OKX)."""
    expected = ccxt.ExchangeError if venue == "okx" else ccxt.InvalidOrder  # 51169 is unmapped
    with pytest.raises(expected):
        await client.create_order("ETH/USDT:USDT", "market", "sell", perp_amount(venue, 1), None,
                                  {"reduceOnly": True, "clientOrderId": "ro1"})
    assert emulator.inspect(venue)["orders"] == []


async def test_binance_trade_ids_per_symbol_and_market_type(emulator: Emulator) -> None:
    """Binance numbers trades per symbol and separately for spot and USDⓈ-M (ids collide)."""
    from tests.emulator import make_client

    ex = make_client("binance", emulator)
    try:
        await ex.create_order("ETH/USDT", "market", "buy", 0.1)
        await ex.create_order("ETH/USDT:USDT", "market", "buy", 0.1)
        await ex.create_order("BTC/USDT", "market", "buy", 0.001)
        ids = {s: [t["id"] for t in await ex.fetch_my_trades(s)]
               for s in ("ETH/USDT", "ETH/USDT:USDT", "BTC/USDT")}
        assert ids == {"ETH/USDT": ["1"], "ETH/USDT:USDT": ["1"], "BTC/USDT": ["1"]}
    finally:
        await ex.close()
    state = emulator.inspect("binance")
    assert sorted((t.kind, t.symbol, t.trade_id) for t in state["trades"]) == [
        ("perp", "ETH/USDT:USDT", "1"), ("spot", "BTC/USDT", "1"), ("spot", "ETH/USDT", "1")]


async def test_bybit_generic_client_id_lookup_pitfall(emulator: Emulator) -> None:
    """ccxt's generic fetch_order_with_client_order_id on Bybit returns *another* open order.

    Bybit has no clientOrderId query parameter, so the venue ignores it and lists open orders;
    ccxt takes the first. Use orderLinkId (``fetch_by_client_id``) instead.
    """
    from tests.emulator import make_client

    ex = make_client("bybit", emulator)
    try:
        await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1500, {"clientOrderId": "other"})
        await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "wanted"})
        wrong = await ex.fetch_order_with_client_order_id("wanted", "ETH/USDT", {"acknowledged": True})
        right = await fetch_by_client_id(ex, "bybit", "ETH/USDT", "wanted")
    finally:
        await ex.close()
    assert wrong["clientOrderId"] == "other"
    assert right["clientOrderId"] == "wanted" and right["status"] == "closed"
    assert "clientOrderId=wanted" in emulator.requests("bybit")[-2]["query"]
    assert [o.client_id for o in emulator.inspect("bybit")["orders"]] == ["other", "wanted"]
