"""Plain helpers for tests that use the emulator: venue units, wallets, fees, client-id lookups."""

from __future__ import annotations

from typing import Any

from .server import Emulator

VENUES = ("binance", "bybit", "okx")
PERP_UNITS_PER_BASE = {"binance": 1, "bybit": 1, "okx": 10}  # OKX ETH-USDT-SWAP: 0.1 ETH per contract


def perp_amount(venue: str, eth: float) -> float:
    """The ccxt amount for ``eth`` ETH of the ETH/USDT:USDT perpetual (contracts on OKX)."""
    return eth * PERP_UNITS_PER_BASE[venue]


async def fetch_by_client_id(ex: Any, venue: str, symbol: str, client_id: str) -> Any:
    """Look an order up by client order id with each venue's native parameter (notes §5)."""
    if venue == "bybit":
        # Bybit has no clientOrderId query parameter: orderLinkId, and an empty order id
        return await ex.fetch_order("", symbol, {"orderLinkId": client_id, "acknowledged": True})
    return await ex.fetch_order(None, symbol, {"clientOrderId": client_id})


def fetch_by_client_id_sync(ex: Any, venue: str, symbol: str, client_id: str) -> Any:
    if venue == "bybit":
        return ex.fetch_order("", symbol, {"orderLinkId": client_id, "acknowledged": True})
    return ex.fetch_order(None, symbol, {"clientOrderId": client_id})


def orders_with_client_id(emu: Emulator, venue: str, client_id: str) -> list[Any]:
    return [o for o in emu.inspect(venue)["orders"] if o.client_id == client_id]


SPOT_WALLET = {"binance": "spot", "bybit": "unified", "okx": "unified"}
PERP_WALLET = {"binance": "futures", "bybit": "unified", "okx": "unified"}
TAKER_FEE = {  # (spot, perp)
    "binance": ("0.001", "0.0005"),
    "bybit": ("0.001", "0.00055"),
    "okx": ("0.001", "0.0005"),
}
MAKER_FEE = {
    "binance": ("0.001", "0.0002"),
    "bybit": ("0.001", "0.0002"),
    "okx": ("0.0008", "0.0002"),
}
