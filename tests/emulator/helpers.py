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


# ---------------------------------------------------------------------------- wallet operations
# ccxt network codes per venue (ccxt maps Bybit's chain "ETH" and OKX's "*-ERC20" to ERC20 for ETH too)
NETWORK = {
    "binance": {"USDT": "ERC20", "ETH": "ETH"},
    "bybit": {"USDT": "ERC20", "ETH": "ERC20"},
    "okx": {"USDT": "ERC20", "ETH": "ERC20"},
}
# the withdraw() param that carries the client id (idempotency key) per venue
WITHDRAW_CLIENT_ID = {"binance": "withdrawOrderId", "bybit": "requestId", "okx": "clientId"}
# the engine wallet deposits land in / withdrawals come from, and ccxt's transfer account names
DEPOSIT_WALLET = {"binance": "spot", "bybit": "funding", "okx": "funding"}
TRANSFER_ACCOUNTS = {  # venue -> (ccxt from, ccxt to, engine wallet of from, engine wallet of to)
    "binance": ("spot", "swap", "spot", "futures"),
    "bybit": ("funding", "unified", "funding", "unified"),
    "okx": ("funding", "trading", "funding", "unified"),
}


def withdraw_params(venue: str, code: str, client_id: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"network": NETWORK[venue][code]}
    if client_id:
        params[WITHDRAW_CLIENT_ID[venue]] = client_id
    return params


async def fetch_withdrawal_by_client_id(ex: Any, venue: str, code: str, client_id: str) -> list[Any]:
    """Withdrawals with that client id: Binance/OKX filter server-side (``withdrawOrderId`` /
    ``clientId``); Bybit's records carry ``requestId``, matched here on the raw row."""
    if venue == "bybit":
        rows = await ex.fetch_withdrawals(code)
        return [w for w in rows if w["info"].get("requestId") == client_id]
    return list(await ex.fetch_withdrawals(code, None, None, {WITHDRAW_CLIENT_ID[venue]: client_id}))
