"""Reading a market snapshot: the reference price of an instrument and the USD price of an asset.

Key order (SPEC §12.4): `{venue}_{base}_{spot|perp}_price`, then the seed's `{venue}_spot_price` /
`{venue}_perp_price` (which mean ETH), then `{base}_usd_price`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregates.errors import DataError, InstructionError
from aggregates.values import NUMBER, Instrument, bound_of, shown, text

STABLE = frozenset({"USDT", "USDC", "USD", "BUSD", "FDUSD", "DAI"})
WRAPPED = {"WETH": "ETH", "WBTC": "BTC"}
ONE = Decimal(1)


class Snapshot(dict[str, Decimal]):
    """Market data that `normalise` built and checked: passed through again as a copy, unchecked (a
    snapshot goes through `advance_to`, the engine and an interface; it is checked once)."""


def normalise(market_data: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """Numbers as Decimal (floats through `str`), each inside its key's bound (`bound_of`; any other
    number inside `NUMBER`); `DataError` naming `market_data.<key>` otherwise. A None value, and a value
    that is not a number under a key that is not a price, rate, index or gas price, is left out."""
    if market_data is None:
        return Snapshot()
    if type(market_data) is Snapshot:
        return Snapshot(market_data)
    if not isinstance(market_data, Mapping):
        raise DataError(f"market_data: expected a mapping of names to numbers, got {shown(market_data)}")
    out = Snapshot()
    for key, value in market_data.items():
        name = text(key)
        if name is None or value is None:
            continue
        bound = bound_of(name)
        try:
            if bound is None:
                if isinstance(value, bool) or not _is_number(value):
                    continue
                bound = NUMBER
            out[name] = bound.parse(value, name)
        except InstructionError as e:
            problem = str(e)[len(e.field) + 2 :]
            raise DataError(f"market_data.{name if len(name) <= 80 else shown(name)}: {problem}") from None
    return out


def checked(market_data: Mapping[str, Any] | None) -> dict[str, Decimal] | None:
    """`normalise`, with None kept as None (no market given): for the top of `advance_to`, so that
    bad market data is refused before the clock moves."""
    return None if market_data is None else normalise(market_data)


def _is_number(value: Any) -> bool:
    """A number or the text of one (NaN and infinities included: they are refused as numbers)."""
    if isinstance(value, str):
        try:
            Decimal(str.strip(value))
        except InvalidOperation:
            return False
        return True
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def reference_price(market: Mapping[str, Decimal], venue: str, instrument: Instrument) -> Decimal | None:
    kind = "perp" if instrument.market_type == "perp" else "spot"
    base = instrument.base.lower()
    keys = [f"{venue}_{base}_{kind}_price"]
    if base == "eth":
        keys.append(f"{venue}_{kind}_price")
    keys.append(f"{base}_usd_price")
    for key in keys:
        price = market.get(key)
        if price is not None and price > 0:
            quote = usd_price(market, instrument.quote) if key.endswith("_usd_price") else ONE
            return price / quote if quote else None
    return None


def usd_price(market: Mapping[str, Decimal], asset: str) -> Decimal | None:
    """USD per unit of `asset`; staking receipt tokens through `{token}_eth_rate`."""
    upper = asset.upper()
    if upper in STABLE:
        return market.get(f"{upper.lower()}_usd_price", ONE)
    direct = market.get(f"{upper.lower()}_usd_price")
    if direct is not None:
        return direct
    if upper in WRAPPED:
        return market.get(f"{WRAPPED[upper].lower()}_usd_price")
    rate = market.get(f"{upper.lower()}_eth_rate")
    eth = market.get("eth_usd_price")
    if rate is not None and eth is not None:
        return rate * eth
    return None
