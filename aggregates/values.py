"""Value types and conversions shared by events: Decimal money, UTC time, canonical instruments."""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from aggregates.errors import InstructionError

# Explicit context: AAVE ray x wei products need far more than the default 28 digits.
MONEY = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])
ZERO = Decimal(0)
QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD")


class MarketType(StrEnum):
    SPOT = "spot"
    PERP = "perp"
    CHAIN = "chain"
    TRANSFER = "transfer"


def to_decimal(value: object, field: str = "amount") -> Decimal:
    """Turn int, str, Decimal or float (through str) into a finite Decimal, naming the field on error."""
    if isinstance(value, bool):
        raise InstructionError(field, f"expected a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InstructionError(field, f"expected a finite number, got {value!r}")
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise InstructionError(field, f"expected a number, got {value!r}") from None
    else:
        raise InstructionError(field, f"expected a number, got {value!r}")
    if not result.is_finite():
        raise InstructionError(field, f"expected a finite number, got {value!r}")
    return result


def to_utc(value: object, field: str = "ts_event") -> datetime:
    """Accept an aware datetime, an ISO string or epoch milliseconds; return aware UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InstructionError(field, "datetime must be timezone-aware (UTC)")
        return value.astimezone(UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InstructionError(field, f"expected an ISO time, got {value!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    raise InstructionError(field, f"expected a time, got {value!r}")


@dataclass(frozen=True, slots=True)
class Instrument:
    """A canonical instrument: ccxt's unified symbol plus its parts."""

    base: str
    quote: str
    market_type: MarketType

    @property
    def symbol(self) -> str:
        if self.market_type is MarketType.PERP:
            return f"{self.base}/{self.quote}:{self.quote}"
        return f"{self.base}/{self.quote}"

    @property
    def settle(self) -> str:
        return self.quote

    def venue_symbol(self, venue: str) -> str:
        """The venue's own symbol for this instrument."""
        if venue == "okx":
            suffix = "-SWAP" if self.market_type is MarketType.PERP else ""
            return f"{self.base}-{self.quote}{suffix}"
        return f"{self.base}{self.quote}"


def parse_instrument(text: str, market_type: MarketType | None = None) -> Instrument:
    """Parse ccxt symbols (`ETH/USDT`, `ETH/USDT:USDT`) and the seed's aliases (`ETHUSDT-PERP`, `BTCUSDT`)."""
    if not isinstance(text, str) or not text.strip():
        raise InstructionError("pair", f"expected an instrument symbol, got {text!r}")
    raw = text.strip().upper()
    kind = market_type
    if raw.endswith("-PERP") or raw.endswith("-SWAP"):
        raw, kind = raw[:-5], MarketType.PERP
    if ":" in raw:
        raw, kind = raw.split(":", 1)[0], MarketType.PERP
    if "/" in raw:
        base, _, quote = raw.partition("/")
    elif "-" in raw:
        base, _, quote = raw.partition("-")
    else:
        quote = next((q for q in QUOTES if raw.endswith(q) and len(raw) > len(q)), "")
        base = raw[: -len(quote)] if quote else ""
    if not base.isalnum() or not quote.isalnum():
        raise InstructionError("pair", f"cannot read an instrument from {text!r}")
    return Instrument(base=base, quote=quote, market_type=kind or MarketType.SPOT)
