"""Instruction dicts (the seed's keys and ours) parsed into typed, validated instructions.

Parsing is pure. A problem raises `Invalid` (a code plus an `InstructionError` naming the field);
the interface records it as `InstructionRejected` when the venue is known and re-raises otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aggregates.errors import InstructionError
from aggregates.values import (
    AMOUNT,
    INDEX,
    PRICE,
    Bound,
    Instrument,
    MarketType,
    parse_instrument,
    shown,
    text,
)

BUY_SIDES = frozenset({"BUY", "LONG"})
SELL_SIDES = frozenset({"SELL", "SHORT"})
TRADE_TYPES = {
    "SPOT": MarketType.SPOT,
    "PERP": MarketType.PERP,
    "PERPETUAL": MarketType.PERP,
    "SWAP": MarketType.PERP,
    "FUTURES": MarketType.PERP,
}
ORDER_TYPES = frozenset({"MARKET", "LIMIT"})
OPERATIONS = frozenset(
    {"AAVE_SUPPLY", "AAVE_WITHDRAW", "AAVE_BORROW", "AAVE_REPAY", "STAKE", "UNSTAKE", "TRANSFER"}
)


class Invalid(Exception):
    """Parsing failed: `code` for the rejection, `error` names the field."""

    def __init__(self, code: str, field: str, message: str) -> None:
        self.code = code
        self.error = InstructionError(field, message)
        super().__init__(str(self.error))


@dataclass(frozen=True, slots=True)
class OrderInstruction:
    """A CEX spot or perpetual order."""

    instruction_id: str
    venue: str
    instrument: Instrument
    side: str  # "buy" | "sell"
    amount: Decimal  # base units
    order_type: str  # "MARKET" | "LIMIT"
    price: Decimal | None
    reduce_only: bool
    max_slippage_bps: Decimal | None
    raw_side: str

    @property
    def market_type(self) -> str:
        return str(self.instrument.market_type)

    def record(self, wallet: str) -> dict[str, str]:
        """The normalised form stored in `InstructionAccepted`."""
        out = {
            "kind": "ORDER",
            "venue_type": "cex",
            "instrument": self.instrument.symbol,
            "venue_symbol": self.instrument.venue_symbol(self.venue),
            "market_type": self.market_type,
            "side": self.side,
            "amount": str(self.amount),
            "order_type": self.order_type,
            "wallet": wallet,
        }
        if self.price is not None:
            out["price"] = str(self.price)
        if self.reduce_only:
            out["reduce_only"] = "true"
        if self.max_slippage_bps is not None:
            out["max_slippage_bps"] = str(self.max_slippage_bps)
        return out


@dataclass(frozen=True, slots=True)
class ChainInstruction:
    """An on-chain operation at the chain venue."""

    instruction_id: str
    venue: str
    operation: str
    token: str  # the asset sent in (or borrowed / withdrawn / unstaked)
    token_out: str  # what comes back ("" when nothing does)
    amount: Decimal
    to_address: str  # TRANSFER only

    def record(self, wallet: str) -> dict[str, str]:
        out = {
            "kind": self.operation,
            "venue_type": "onchain",
            "operation": self.operation,
            "instrument": self.token,
            "asset": self.token,
            "amount": str(self.amount),
            "wallet": wallet,
        }
        if self.token_out:
            out["token_out"] = self.token_out
        if self.to_address:
            out["to"] = self.to_address
        return out


@dataclass(frozen=True, slots=True)
class TransferInstruction:
    """A move of funds between venues (or between wallets of one venue)."""

    instruction_id: str
    venue: str  # the source venue
    to_venue: str
    asset: str
    amount: Decimal
    from_wallet: str  # "" = the venue's default wallet for the asset
    to_wallet: str

    def record(self, from_wallet: str, to_wallet: str) -> dict[str, str]:
        return {
            "kind": "TRANSFER",
            "venue_type": "transfer",
            "instrument": self.asset,
            "asset": self.asset,
            "amount": str(self.amount),
            "wallet": from_wallet,
            "to_venue": self.to_venue,
            "to_wallet": to_wallet,
        }


Parsed = OrderInstruction | ChainInstruction | TransferInstruction


# Every key an instruction may carry (the parsers below, `BaseExecutionInterface` and the engine read no
# other): `received` records these and only names any other key, never its value (it may be a secret).
FIELDS = frozenset({
    "venue_type", "venue", "instruction_id", "from_venue", "source_venue", "to_venue", "target_venue",
    "trade_type", "pair", "symbol", "instrument", "side", "amount", "order_type", "type", "price",
    "reduce_only", "max_slippage_bps", "operation", "token", "token_in", "token_out", "asset", "to",
    "to_address", "recipient", "from_wallet", "to_wallet",
})
NOT_RECORDED = "<unknown field: value not recorded>"


def received(instruction: Mapping[Any, Any]) -> dict[str, str]:
    """What arrived: each known field's value as bounded text that never raises (`shown`, never a
    float or NaN in the log, SPEC §12.17); a key outside `FIELDS` is named with `NOT_RECORDED` in
    place of its value."""
    if not isinstance(instruction, Mapping):
        return {"instruction": shown(instruction, long=True)}
    named = ((_name(k), v) for k, v in instruction.items())
    return {k: shown(v, long=True) if k in FIELDS else NOT_RECORDED
            for k, v in sorted(named, key=lambda kv: kv[0])}


def _name(key: Any) -> str:
    plain = text(key)
    return plain if plain is not None else shown(key)


def _text(ins: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = ins.get(name)
        if value is not None:
            plain = text(value)
            if plain is None or not plain.strip():
                raise Invalid("invalid_field", name, f"expected text, got {shown(value)}")
            return plain.strip()
    return ""


def _number(ins: Mapping[str, Any], field: str, bound: Bound, code: str) -> Decimal:
    try:
        return bound.parse(ins[field], field)
    except InstructionError as e:
        raise Invalid(code, field, str(e).split(": ", 1)[1]) from None


def _amount(ins: Mapping[str, Any], field: str = "amount") -> Decimal:
    if ins.get(field) is None:
        raise Invalid("missing_field", field, "is required")
    return _number(ins, field, AMOUNT, "invalid_amount")


def _optional_decimal(ins: Mapping[str, Any], field: str, bound: Bound) -> Decimal | None:
    if ins.get(field) is None:
        return None
    return _number(ins, field, bound, "invalid_field")


def _flag(ins: Mapping[str, Any], field: str) -> bool:
    value = ins.get(field, False)
    if isinstance(value, bool):
        return value
    plain = text(value)
    if plain is not None and plain.lower() in ("true", "false"):
        return plain.lower() == "true"
    raise Invalid("invalid_field", field, f"expected true or false, got {shown(value)}")


def parse_order(ins: Mapping[str, Any], instruction_id: str, venue: str) -> OrderInstruction:
    trade_type = _text(ins, "trade_type").upper() or "SPOT"
    if trade_type not in TRADE_TYPES:
        got = shown(ins.get("trade_type"))
        raise Invalid("invalid_field", "trade_type", f"expected SPOT or PERP, got {got}")
    pair = _text(ins, "pair", "symbol", "instrument")
    if not pair:
        raise Invalid("missing_field", "pair", "is required")
    try:
        instrument = parse_instrument(pair, TRADE_TYPES[trade_type])
    except InstructionError as e:
        raise Invalid("invalid_instrument", "pair", str(e).split(": ", 1)[1]) from None
    if instrument.market_type is not TRADE_TYPES[trade_type]:
        instrument = Instrument(instrument.base, instrument.quote, TRADE_TYPES[trade_type])
    raw_side = _text(ins, "side").upper()
    if raw_side not in BUY_SIDES | SELL_SIDES:
        got = shown(ins.get("side"))
        raise Invalid("invalid_side", "side", f"expected BUY, SELL, LONG or SHORT, got {got}")
    amount = _amount(ins)
    order_type = (_text(ins, "order_type", "type") or "MARKET").upper()
    if order_type not in ORDER_TYPES:
        raise Invalid("invalid_field", "order_type", f"expected MARKET or LIMIT, got {order_type!r}")
    price = _optional_decimal(ins, "price", PRICE)
    if order_type == "LIMIT" and price is None:
        raise Invalid("missing_field", "price", "a LIMIT order needs a price")
    return OrderInstruction(
        instruction_id=instruction_id,
        venue=venue,
        instrument=instrument,
        side="buy" if raw_side in BUY_SIDES else "sell",
        amount=amount,
        order_type=order_type,
        price=price if order_type == "LIMIT" else None,
        reduce_only=_flag(ins, "reduce_only"),
        max_slippage_bps=_optional_decimal(ins, "max_slippage_bps", INDEX),
        raw_side=raw_side,
    )


def parse_chain(ins: Mapping[str, Any], instruction_id: str, venue: str) -> ChainInstruction:
    operation = _text(ins, "operation").upper()
    if not operation:
        raise Invalid("missing_field", "operation", "is required")
    if operation not in OPERATIONS:
        raise Invalid(
            "unknown_operation",
            "operation",
            f"expected one of {', '.join(sorted(OPERATIONS))}, got {shown(ins.get('operation'))}",
        )
    token = _text(ins, "token", "token_in", "asset").upper()
    if not token:
        raise Invalid("missing_field", "token", "is required")
    to_address = _text(ins, "to", "to_address", "recipient")
    if operation == "TRANSFER" and not to_address:
        raise Invalid("missing_field", "to", "an on-chain TRANSFER needs a recipient address")
    return ChainInstruction(
        instruction_id=instruction_id,
        venue=venue,
        operation=operation,
        token=token,
        token_out=_text(ins, "token_out").upper(),
        amount=_amount(ins),
        to_address=to_address,
    )


def parse_transfer(
    ins: Mapping[str, Any], instruction_id: str, venue: str, to_venue: str
) -> TransferInstruction:
    asset = _text(ins, "asset", "token").upper()
    if not asset:
        raise Invalid("missing_field", "asset", "is required")
    amount = _amount(ins)
    from_wallet, to_wallet = _text(ins, "from_wallet"), _text(ins, "to_wallet")
    if venue == to_venue and (not from_wallet or not to_wallet or from_wallet == to_wallet):
        raise Invalid(
            "same_venue",
            "to_venue",
            f"a transfer from {venue} to itself needs two different wallets (from_wallet, to_wallet)",
        )
    return TransferInstruction(
        instruction_id=instruction_id,
        venue=venue,
        to_venue=to_venue,
        asset=asset,
        amount=amount,
        from_wallet=from_wallet,
        to_wallet=to_wallet,
    )
