"""The synchronous ccxt client over TLS, and URL-rewrite mode, against the same emulator."""

from __future__ import annotations

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tests.emulator import Emulator, make_client
from tests.emulator.helpers import (
    fetch_by_client_id,
    fetch_by_client_id_sync,
    perp_amount,
)

pytest_plugins = ["tests.emulator.fixtures"]


def test_sync_client_round_trip(emulator: Emulator, venue: str) -> None:
    """The requests-based ccxt client loads markets, trades, and finds its order by client id."""
    ex = make_client(venue, emulator, async_=False)
    try:
        ex.load_markets()
        assert ex.fetch_time() > 0
        assert ex.fetch_balance()["USDT"]["total"] == 100000
        order = ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "sy1"})
        found = fetch_by_client_id_sync(ex, venue, "ETH/USDT", "sy1")
        assert found["id"] == order["id"] and found["status"] == "closed"
        ex.create_order("ETH/USDT:USDT", "market", "sell", perp_amount(venue, 0.5), None,
                        {"clientOrderId": "sy2"})
        [pos] = [p for p in ex.fetch_positions(["ETH/USDT:USDT"]) if p["contracts"]]
        assert pos["side"] == "short"
    finally:
        ex.session.close()
    state = emulator.inspect(venue)
    assert [o.client_id for o in state["orders"]] == ["sy1", "sy2"]
    assert state["positions"]["ETH/USDT:USDT"]["base_amount"] == -0.5


def test_sync_client_faults(emulator: Emulator, venue: str) -> None:
    """Sync client: a held reply is RequestTimeout, a dropped connection a NetworkError."""
    ex = make_client(venue, emulator, async_=False, timeout_ms=500)
    try:
        ex.load_markets()
        emulator.inject(venue, "create_order", "timeout")
        with pytest.raises(ccxt.RequestTimeout):
            ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "sf1"})
        assert fetch_by_client_id_sync(ex, venue, "ETH/USDT", "sf1")["status"] == "closed"
        emulator.inject(venue, "create_order", "drop")
        with pytest.raises(ccxt.NetworkError):
            ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "sf2"})
        ex.secret = "wrong"
        with pytest.raises(ccxt.AuthenticationError):
            ex.fetch_balance()
    finally:
        ex.session.close()
    assert [o.client_id for o in emulator.inspect(venue)["orders"]] == ["sf1"]


async def test_rewrite_mode_round_trip(emulator: Emulator, venue: str) -> None:
    """URL-rewrite mode (plain HTTP, host kept in the path) reaches the same venue state."""
    ex = make_client(venue, emulator, mode="rewrite")
    try:
        await ex.load_markets()
        assert "127.0.0.1" in str(ex.urls["api"])
        await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1900, {"clientOrderId": "rw1"})
        found = await fetch_by_client_id(ex, venue, "ETH/USDT", "rw1")
        assert found["status"] == "open"
        with pytest.raises(ccxt_async.AuthenticationError):
            ex.secret = "wrong"
            await ex.fetch_balance()
    finally:
        await ex.close()
    [o] = emulator.inspect(venue)["orders"]
    assert o.client_id == "rw1" and o.is_open
    assert all(r["host"] in ("api.binance.com", "fapi.binance.com", "api.bybit.com", "www.okx.com")
               for r in emulator.requests(venue))


async def test_loopback_resolver_refuses_other_hosts(emulator: Emulator) -> None:
    """The TLS session resolves only the emulated hostnames; anything else never leaves the box."""
    ex = make_client("binance", emulator)
    try:
        ex.urls["api"]["public"] = "https://api.example.invalid/api/v3"
        with pytest.raises(ccxt_async.ExchangeNotAvailable):
            await ex.fetch_time()
    finally:
        await ex.close()
    assert emulator.requests("binance") == []
