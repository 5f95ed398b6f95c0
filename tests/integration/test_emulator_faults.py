"""Injected faults and authentication failures reach ccxt as the error classes the notes list."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.emulator import Emulator, make_client
from tests.emulator.helpers import (
    fetch_by_client_id,
    orders_with_client_id,
)

pytest_plugins = ["tests.emulator.fixtures"]

ERROR_CASES = [
    ("insufficient_balance", (ccxt.InsufficientFunds,)),
    ("rate_limit", (ccxt.RateLimitExceeded, ccxt.DDoSProtection)),
    ("invalid_timestamp", (ccxt.InvalidNonce,)),
    ("maintenance", (ccxt.ExchangeNotAvailable,)),
    ("server_error", (ccxt.ExchangeNotAvailable,)),
    ("invalid_api_key", (ccxt.AuthenticationError,)),
]


@pytest.mark.parametrize(("error", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
async def test_injected_rejection_maps_to_ccxt_error(client: Any, venue: str, emulator: Emulator,
                                                     error: str, expected: tuple[type, ...]) -> None:
    """A venue-format rejection of create_order raises the mapped ccxt error; nothing is placed."""
    fault = emulator.inject(venue, "create_order", "error", error=error)
    with pytest.raises(expected):
        await client.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "fe1"})
    assert fault.hits == 1 and emulator.faults.pending() == []
    assert emulator.inspect(venue)["orders"] == []
    # the fault fired once; the same request now goes through
    await client.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "fe2"})
    assert [o.client_id for o in emulator.inspect(venue)["orders"]] == ["fe2"]


async def test_injected_error_on_read_endpoint(client: Any, venue: str, emulator: Emulator) -> None:
    """Faults target any endpoint by logical name, e.g. fetch_balance during maintenance."""
    emulator.inject(venue, "fetch_balance", "error", error="maintenance")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_balance()
    assert (await client.fetch_balance())["USDT"]["total"] == 100000
    assert emulator.inspect(venue)["orders"] == []


async def test_unknown_status_error_after_acceptance(client: Any, venue: str,
                                                     emulator: Emulator) -> None:
    """Binance -1007 / OKX 50004 / Bybit 10016 after acceptance: RequestTimeout, order exists."""
    emulator.inject(venue, "create_order", "error", error="unknown_status")
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "us1"})
    found = await fetch_by_client_id(client, venue, "ETH/USDT", "us1")
    assert found["status"] == "closed"
    assert len(orders_with_client_id(emulator, venue, "us1")) == 1


async def test_dropped_connection_is_network_error(emulator: Emulator, venue: str) -> None:
    """A connection dropped before processing raises a NetworkError and places nothing."""
    ex = make_client(venue, emulator)
    try:
        await ex.load_markets()
        emulator.inject(venue, "create_order", "drop")
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "dr1"})
    finally:
        await ex.close()
    assert emulator.inspect(venue)["orders"] == []


async def test_drop_after_acceptance_leaves_order(emulator: Emulator, venue: str) -> None:
    """A connection dropped after the venue accepted: NetworkError, but the order exists."""
    ex = make_client(venue, emulator)
    try:
        await ex.load_markets()
        emulator.inject(venue, "create_order", "drop", apply=True)
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1900, {"clientOrderId": "dr2"})
        found = await fetch_by_client_id(ex, venue, "ETH/USDT", "dr2")
        assert found["status"] == "open"
    finally:
        await ex.close()
    [o] = emulator.inspect(venue)["orders"]
    assert o.client_id == "dr2" and o.is_open


async def test_timeout_on_submit_then_found_by_client_id(emulator: Emulator, venue: str) -> None:
    """Accepted but the reply never comes: RequestTimeout, then the lookup finds one order."""
    ex = make_client(venue, emulator, timeout_ms=500)
    sym = "ETH/USDT:USDT"
    amount = 1 if venue != "okx" else 10
    try:
        await ex.load_markets()
        fault = emulator.inject(venue, "create_order", "timeout")
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(sym, "market", "buy", amount, None, {"clientOrderId": "to1"})
        assert fault.hits == 1
        # unknown outcome: look it up by client id instead of re-sending
        found = await fetch_by_client_id(ex, venue, sym, "to1")
        assert found["clientOrderId"] == "to1" and found["status"] == "closed"
        assert found["filled"] == amount
        [pos] = [p for p in await ex.fetch_positions([sym]) if p["contracts"]]
        assert pos["contracts"] == amount
    finally:
        await ex.close()
    state = emulator.inspect(venue)
    assert len(orders_with_client_id(emulator, venue, "to1")) == 1
    assert len(state["trades"]) == 1
    assert state["positions"][sym]["base_amount"] == 1


async def test_delay_shorter_than_timeout_succeeds(emulator: Emulator, venue: str) -> None:
    """A slow answer inside the client timeout is just slow."""
    ex = make_client(venue, emulator, timeout_ms=2000)
    try:
        await ex.load_markets()
        emulator.inject(venue, "fetch_balance", "delay", delay_s=0.2)
        bal = await ex.fetch_balance()
        assert bal["USDT"]["total"] == 100000
    finally:
        await ex.close()
    assert emulator.inspect(venue)["orders"] == []


async def test_blind_retry_semantics_differ_by_venue(emulator: Emulator, venue: str) -> None:
    """Re-sending the same client id after a fill: Binance/OKX accept a 2nd order, Bybit refuses."""
    ex = make_client(venue, emulator)
    try:
        await ex.load_markets()
        await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "br1"})
        if venue == "bybit":
            with pytest.raises(ccxt.InvalidOrder):
                await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "br1"})
        else:
            await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "br1"})
        # while an order with the id is open, every venue rejects a duplicate
        await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1500, {"clientOrderId": "br2"})
        with pytest.raises(ccxt.InvalidOrder):
            await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1500, {"clientOrderId": "br2"})
    finally:
        await ex.close()
    expected = 1 if venue == "bybit" else 2
    assert len(orders_with_client_id(emulator, venue, "br1")) == expected
    assert len(orders_with_client_id(emulator, venue, "br2")) == 1


async def test_bad_signature_is_authentication_error(emulator: Emulator, venue: str) -> None:
    """A request signed with the wrong secret is rejected like the venue does."""
    ex = make_client(venue, emulator, credentials={"secret": "not-the-secret"})
    try:
        await ex.load_markets()  # public endpoints need no signature
        with pytest.raises(ccxt.AuthenticationError):
            await ex.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError):
            await ex.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "bs1"})
    finally:
        await ex.close()
    assert emulator.inspect(venue)["orders"] == []
    names = [r["name"] for r in emulator.requests(venue)]
    assert "create_order" in names


async def test_wrong_api_key_or_passphrase(emulator: Emulator, venue: str) -> None:
    """An unknown API key (and on OKX a wrong passphrase) is an AuthenticationError."""
    bad = [{"apiKey": "unknown-key"}]
    if venue == "okx":
        bad.append({"password": "wrong-passphrase"})
    for creds in bad:
        ex = make_client(venue, emulator, credentials=creds)
        try:
            await ex.load_markets()
            with pytest.raises(ccxt.AuthenticationError):
                await ex.fetch_balance()
        finally:
            await ex.close()
    assert emulator.inspect(venue)["orders"] == []


async def test_clock_skew_is_invalid_nonce_until_resync(client: Any, venue: str,
                                                        emulator: Emulator) -> None:
    """A server clock 2 minutes ahead makes signed calls fail with InvalidNonce until resync."""
    emulator.clock.offset_ms = 120_000
    with pytest.raises(ccxt.InvalidNonce):
        await client.fetch_balance()
    with pytest.raises(ccxt.InvalidNonce):
        await client.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "ck1"})
    await client.load_time_difference()
    await client.create_order("ETH/USDT", "market", "buy", 0.1, None, {"clientOrderId": "ck2"})
    assert [o.client_id for o in emulator.inspect(venue)["orders"]] == ["ck2"]


async def test_faults_target_one_venue_and_endpoint(emulator: Emulator) -> None:
    """A fault armed for one venue and endpoint leaves other venues and endpoints alone."""
    fault = emulator.inject("okx", "create_order", "error", error="rate_limit", count=2)
    ex = make_client("binance", emulator)
    try:
        await ex.create_order("ETH/USDT", "market", "buy", 0.1)
    finally:
        await ex.close()
    ex = make_client("okx", emulator)
    try:
        await ex.fetch_balance()
        for _ in range(2):
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.create_order("ETH/USDT", "market", "buy", 0.1)
        await ex.create_order("ETH/USDT", "market", "buy", 0.1)
    finally:
        await ex.close()
    assert fault.hits == 2
    assert len(emulator.inspect("binance")["orders"]) == 1
    assert len(emulator.inspect("okx")["orders"]) == 1
