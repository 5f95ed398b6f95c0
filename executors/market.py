"""Reading a market snapshot: the reference price of an instrument and the USD price of an asset.

Key order (SPEC §12.4): `{venue}_{base}_{spot|perp}_price`, then the seed's `{venue}_spot_price` /
`{venue}_perp_price` (which mean ETH), then `{base}_usd_price`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregates.values import Instrument

STABLE = frozenset({"USDT", "USDC", "USD", "BUSD", "FDUSD", "DAI"})
WRAPPED = {"WETH": "ETH", "WBTC": "BTC"}
ONE = Decimal(1)


def normalise(market_data: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """Numbers as Decimal (floats through `str`); anything that is not a finite number is left out."""
    out: dict[str, Decimal] = {}
    if not market_data:
        return out
    if all(type(v) is Decimal and type(k) is str and v.is_finite() for k, v in market_data.items()):
        return dict(market_data)
    for key, value in market_data.items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                continue
            number = Decimal(str(value))
        elif isinstance(value, str):
            try:
                number = Decimal(value)
            except InvalidOperation:
                continue
        else:
            continue
        if number.is_finite():
            out[key] = number
    return out


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
