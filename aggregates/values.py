"""Value types and conversions shared by events: Decimal money, UTC time, canonical instruments."""

from __future__ import annotations

import builtins
import decimal
import functools
import math
import reprlib
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
    """Turn int, str, Decimal or float (through str) into a finite Decimal, naming the field on error.

    Finite only: the bounds of each kind of number are the `Bound`s below."""
    if isinstance(value, bool):
        raise InstructionError(field, f"expected a number, got {shown(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if value.bit_length() > _INT_BITS:  # far outside every bound; also spares a huge conversion
            raise InstructionError(field, f"out of range: an integer of {value.bit_length()} bits")
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InstructionError(field, f"expected a finite number, got {shown(value)}")
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(str.strip(value))  # str's own strip: a subclass's is not trusted
        except decimal.InvalidOperation:
            raise InstructionError(field, f"expected a number, got {shown(value)}") from None
    else:
        raise InstructionError(field, f"expected a number, got {shown(value)}")
    if not result.is_finite():
        raise InstructionError(field, f"expected a finite number, got {shown(value)}")
    return result


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # times outside [EARLIEST, LATEST) are refused
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # room for any run; far from datetime's year 9999 overflow


def to_utc(value: object, field: str = "ts_event") -> datetime:
    """Accept an aware datetime, an ISO string or epoch milliseconds; return aware UTC inside
    [EARLIEST, LATEST) (a time after it cannot be stepped past: an hour later overflows)."""
    when = _utc(value, field)
    if not EARLIEST <= when < LATEST:
        raise InstructionError(field, f"out of range (1970 to 2199), got {when.isoformat()}")
    return when


def _utc(value: object, field: str) -> datetime:
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise InstructionError(field, "datetime must be timezone-aware (UTC)")
            return value.astimezone(UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(str.replace(value, "Z", "+00:00"))
            except ValueError:
                raise InstructionError(field, f"expected an ISO time, got {shown(value)}") from None
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, tz=UTC)
    except InstructionError:
        raise
    except (OverflowError, OSError, ValueError):
        raise InstructionError(field, f"out of range (1970 to 2199), got {shown(value)}") from None
    raise InstructionError(field, f"expected a time, got {shown(value)}")


def figure(number: Decimal) -> str:
    """A Decimal as its text, shortened in the middle past 40 characters."""
    digits = str(number)
    return digits if len(digits) <= 40 else f"{digits[:20]}...{digits[-12:]}"


def text(value: object) -> str | None:
    """`value` as a plain `str` when it is text, else None: a str subclass's own methods (strip, lower,
    __eq__...) are never called on input."""
    return str.__str__(value) if isinstance(value, str) else None


class _Shown(reprlib.Repr):
    """reprlib with a length limit and no way out: a value whose repr raises is shown by its type
    (no address, which would make what is stored depend on the run)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = limit
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 20
        self.maxarray = 20
        self.maxlevel = 4

    def repr1(self, x: object, level: int) -> str:
        try:
            return super().repr1(x, level)
        except Exception:  # hostile input: any failure of its repr is shown the same way
            return f"<{type(x).__name__} that cannot be shown>"

    def repr_instance(self, x: object, level: int) -> str:
        shown = builtins.repr(x)  # a failure goes to `repr1` (reprlib's own answer holds an address)
        if len(shown) <= self.maxother:
            return shown
        head = (self.maxother - 3) // 2
        return f"{shown[:head]}...{shown[len(shown) - (self.maxother - 3 - head):]}"


_SHORT, _LONG = _Shown(80), _Shown(1000)


def shown(value: object, long: bool = False) -> str:
    """A repr for messages (80 characters) or for storing what arrived (`long`: 1,000), bounded in
    length and depth, that never raises."""
    return (_LONG if long else _SHORT).repr(value)


# ---- bounds: every number that enters is checked against one of these, here and nowhere else -------
# Why each figure: docs/values.md.

AMOUNT_MAX = Decimal("1e15")  # any desk balance or order, in base units (1e15 USDT, 1e15 ETH)
AMOUNT_PLACES = 18  # wei: the smallest unit of ETH and of most ERC-20 tokens
PRICE_MAX = Decimal("1e12")  # a trillion quote units for one unit of base
PRICE_PLACES = 18
RATE_MAX = Decimal("1e6")  # exchange rates (weETH/ETH), reserve indexes, bps: far below any real one
RATE_PLACES = 27  # ray: AAVE keeps indexes and rates in units of 1e-27
FUNDING_RATE_MAX = Decimal("0.05")  # per funding interval; venues cap far lower (Binance 0.75 % on ETH)
GAS_PRICE_MAX = Decimal("1e6")  # gwei: 1,000x the highest mainnet spikes
_INT_BITS = 128  # ints wider than this are out of every bound before any conversion

POSITIVE, NON_NEGATIVE, SIGNED = "positive", "non-negative", "signed"


_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def within_places(number: Decimal, places: int) -> bool:
    """True when `number` has no digit beyond `places` decimal places (`1.50` has one), exactly."""
    scaled = number.scaleb(places, _EXACT)  # no rounding: the context holds any number of digits
    return scaled == scaled.to_integral_value(context=_EXACT)


@dataclass(frozen=True, slots=True)
class Bound:
    """What one kind of number may be: its sign, its largest magnitude and its decimal places.

    `parse` is for input (int, str, Decimal or float through str); `require` is for values the code
    built itself (a Decimal already: anything else is a bug, and places are the input's rule, since a
    product of two inputs has more)."""

    kind: str
    sign: str
    maximum: Decimal
    places: int

    def parse(self, value: object, field: str) -> Decimal:
        is_ready = type(value) is Decimal and value.is_finite()  # the common case, without a call
        number = value if is_ready else to_decimal(value, field)
        assert isinstance(number, Decimal)
        self._check(number, field)
        if not within_places(number, self.places):
            raise InstructionError(
                field, f"at most {self.places} decimal places for {self.kind}, got {figure(number)}"
            )
        return number

    def require(self, value: object, field: str) -> Decimal:
        if type(value) is not Decimal:
            raise InstructionError(field, f"expected a Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise InstructionError(field, f"expected a finite number, got {figure(value)}")
        self._check(value, field)
        return value

    def _check(self, number: Decimal, field: str) -> None:
        if self.sign == POSITIVE and number <= 0:
            raise InstructionError(field, f"must be positive, got {figure(number)}")
        if self.sign == NON_NEGATIVE and number < 0:
            raise InstructionError(field, f"must not be negative, got {figure(number)}")
        if number.copy_abs() > self.maximum:  # copy_abs: exact, whatever the exponent
            limit = f"{self.maximum:,f}"
            raise InstructionError(
                field, f"out of range for {self.kind} (at most {limit} in size), got {figure(number)}"
            )


AMOUNT = Bound("an amount", POSITIVE, AMOUNT_MAX, AMOUNT_PLACES)  # order and transfer sizes
BALANCE = Bound("an amount", NON_NEGATIVE, AMOUNT_MAX, AMOUNT_PLACES)  # opening balances, fees charged
SIGNED_AMOUNT = Bound("an amount", SIGNED, AMOUNT_MAX, AMOUNT_PLACES)  # funding, adjustments, positions
PRICE = Bound("a price", POSITIVE, PRICE_MAX, PRICE_PLACES)
RATE = Bound("a rate", SIGNED, RATE_MAX, RATE_PLACES)  # any other rate or ratio
INDEX = Bound("a rate or index", POSITIVE, RATE_MAX, RATE_PLACES)  # reserve indexes, staking rates
FUNDING_RATE = Bound("a funding rate", SIGNED, FUNDING_RATE_MAX, RATE_PLACES)
GAS_PRICE = Bound("a gas price", NON_NEGATIVE, GAS_PRICE_MAX, PRICE_PLACES)  # gwei; 0 on devnets
NUMBER = Bound("a number", SIGNED, AMOUNT_MAX, RATE_PLACES)  # any other figure in market data (an APY)


@functools.lru_cache(maxsize=4096)
def bound_of(key: str) -> Bound | None:
    """The bound of a market-data value, from its key (a data file's column): `{x}_gwei` gas price,
    `{x}_funding_rate` funding rate, `aave_{x}_index` and `{token}_eth_rate` index, `{x}_price` price;
    None for any other key (informational: `NUMBER` where it is a number)."""
    if key.endswith("_gwei"):
        return GAS_PRICE
    if key.endswith("_funding_rate"):
        return FUNDING_RATE
    if (key.startswith("aave_") and key.endswith("_index")) or key.endswith("_eth_rate"):
        return INDEX  # reserve indexes and staking exchange rates: one divides by them
    if key.endswith("_price"):
        return PRICE
    return None


def amount(value: object, field: str = "amount") -> Decimal:
    """A positive order or transfer size."""
    return AMOUNT.parse(value, field)


def price(value: object, field: str = "price") -> Decimal:
    return PRICE.parse(value, field)


def rate(value: object, field: str = "rate") -> Decimal:
    return RATE.parse(value, field)


def index(value: object, field: str) -> Decimal:
    """A reserve index or an exchange rate such as ETH per weETH: positive (one divides by it)."""
    return INDEX.parse(value, field)


def funding_rate(value: object, field: str = "funding_rate") -> Decimal:
    return FUNDING_RATE.parse(value, field)


def gas_price(value: object, field: str = "gas_price_gwei") -> Decimal:
    return GAS_PRICE.parse(value, field)


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
    raw = str.strip(text).upper() if isinstance(text, str) else ""  # str's own methods, not a subclass's
    if not raw:
        raise InstructionError("pair", f"expected an instrument symbol, got {shown(text)}")
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
        raise InstructionError("pair", f"cannot read an instrument from {shown(text)}")
    return Instrument(base=base, quote=quote, market_type=kind or MarketType.SPOT)
