"""Result dicts in the seed's shape (SPEC §5): the seed's keys, the seed system's own keys, and ours."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from executors.instructions import ChainInstruction, OrderInstruction, Parsed, TransferInstruction

ZERO = Decimal(0)
STATUSES = (
    "FILLED",
    "PARTIALLY_FILLED",
    "SUBMITTED",
    "REJECTED",
    "FAILED",
    "UNKNOWN",
    "CONFIRMED",
    "IN_TRANSIT",
    "COMPLETED",
)


def trim(value: Decimal) -> Decimal:
    """The same number without trailing zeros (3001.50000 -> 3001.5, 3000.0 -> 3000)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def rejected(
    mode: str, instruction_id: str, code: str, reason: str, venue: str = "", parsed: Parsed | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": "REJECTED",
        "amount": ZERO,
        "price": ZERO,
        "order_id": "",
        "execution_mode": mode,
        "instruction_id": instruction_id,
        "venue": venue,
        "fee": ZERO,
        "fee_asset": "",
        "code": code,
        "reason": reason,
    }
    if isinstance(parsed, OrderInstruction):
        result.update(
            symbol=parsed.instrument.symbol, side=parsed.raw_side, trade_type=parsed.market_type.upper()
        )
    elif isinstance(parsed, ChainInstruction):
        result.update(operation=parsed.operation, token=parsed.token)
    elif isinstance(parsed, TransferInstruction):
        result.update(asset=parsed.asset, to_venue=parsed.to_venue)
    return result


def order(
    mode: str,
    o: OrderInstruction,
    status: str,
    order_id: str,
    filled: Decimal,
    price: Decimal,
    market_price: Decimal,
    bps: Decimal,
    fee: Decimal,
    fee_asset: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "amount": filled,
        "price": price,
        "order_id": order_id,
        "execution_mode": mode,
        "instruction_id": o.instruction_id,
        "venue": o.venue,
        "symbol": o.instrument.symbol,
        "venue_symbol": o.instrument.venue_symbol(o.venue),
        "trade_type": o.market_type.upper(),
        "side": o.raw_side,
        "order_type": o.order_type,
        "requested_amount": o.amount,
        "market_price": market_price,
        "execution_cost": bps,
        "slippage": bps / Decimal(10_000),
        "fee": fee,
        "fee_asset": fee_asset,
    }


def chain(
    mode: str,
    c: ChainInstruction,
    status: str,
    amount_out: Decimal,
    token_out: str,
    tx_hash: str,
    gas_used: int,
    gas_price: int,
    gas_cost: Decimal,
    price: Decimal,
) -> dict[str, Any]:
    return {
        "status": status,
        "amount": c.amount,
        "price": price,
        "order_id": tx_hash,
        "execution_mode": mode,
        "instruction_id": c.instruction_id,
        "venue": c.venue,
        "operation": c.operation,
        "token": c.token,
        "amount_out": amount_out,
        "token_out": token_out,
        "tx_hash": tx_hash,
        "gas_used": gas_used,
        "gas_price": gas_price,
        "gas_cost": gas_cost,
        "fee": gas_cost,
        "fee_asset": "ETH",
    }


def transfer(
    mode: str, t: TransferInstruction, status: str, transfer_id: str, fee: Decimal, arrives: str
) -> dict[str, Any]:
    return {
        "status": status,
        "amount": t.amount,
        "price": ZERO,
        "order_id": transfer_id,
        "execution_mode": mode,
        "instruction_id": t.instruction_id,
        "venue": t.venue,
        "from_venue": t.venue,
        "to_venue": t.to_venue,
        "asset": t.asset,
        "transfer_id": transfer_id,
        "fee": fee,
        "fee_asset": t.asset,
        "expected_arrival": arrives,
    }
