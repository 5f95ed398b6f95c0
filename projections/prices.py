"""Marks and valuation: which price key means what (SPEC §12.4), and each asset's underlying."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

STABLE = frozenset({"USDT", "USDC", "USD", "BUSD", "FDUSD", "DAI"})
# Wrapped and staked forms count as their underlying (SPEC §4 exposure, §12.15 counted once).
UNDERLYING = {
    "WETH": "ETH", "STETH": "ETH", "WSTETH": "ETH", "WEETH": "ETH", "EZETH": "ETH", "RETH": "ETH",
    "SETH": "ETH", "LSTETH": "ETH", "WBTC": "BTC",
}
ONE = Decimal(1)
ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def underlying(asset: str) -> str:
    upper = asset.upper()
    if upper in STABLE:
        return "USD"
    return UNDERLYING.get(upper, upper)


def mark_keys(key: str, value: Decimal) -> list[tuple[str, Decimal]]:
    """Translate one market-data key into mark entries: `px:ASSET` in USD, `perp:VENUE:BASE`,
    `spot:VENUE:BASE`, and `rate:ASSET` (units of underlying per token)."""
    return [(name, value) for name in mark_names(key)]


@functools.lru_cache(maxsize=4096)  # a handful of keys, asked at every observation: parsed once
def mark_names(key: str) -> tuple[str, ...]:
    """The mark entries one market-data key feeds (see `mark_keys`)."""
    if key.endswith("_rate"):
        parts = key[:-5].split("_")
        if len(parts) == 2 and parts[1] in ("eth", "btc", "usd"):
            return (f"rate:{parts[0].upper()}",)
        return ()
    if not key.endswith("_price"):
        return ()
    parts = key[:-6].split("_")
    if len(parts) == 2 and parts[1] == "usd":
        return (f"px:{parts[0].upper()}",)
    if len(parts) == 4 and parts[2:] == ["perp", "mark"]:
        return (f"pmark:{parts[0]}:{parts[1].upper()}",)
    if len(parts) == 2 and parts[1] in ("spot", "perp"):
        return (f"{parts[1]}:{parts[0]}:ETH",)
    if len(parts) == 3 and parts[2] in ("spot", "perp"):
        return (f"{parts[2]}:{parts[0]}:{parts[1].upper()}",)
    return ()


def usd_price(marks: dict[str, Decimal], asset: str) -> Decimal | None:
    """USD price of one unit of `asset`, through its underlying and rate when needed."""
    upper = asset.upper()
    direct = marks.get(f"px:{upper}")
    if direct is not None:
        return direct
    base = underlying(upper)
    if base == "USD":
        return ONE
    price = marks.get(f"px:{base}")
    if price is None:
        return None
    return price * marks.get(f"rate:{upper}", ONE)


# Which observation of a price wins (README "Valuation"): the newest by timestamp; at equal times
# the venue's mark price, then the venue's traded price, then `{base}_usd_price`, then a fill price.
RANK = {"pmark": 4, "perp": 3, "spot": 3, "px": 2, "fill": 1}


def stamp(ts: datetime, source: str) -> Decimal:
    """An observation's (time, source) as one comparable number: microseconds * 10 + rank."""
    micros = (ts - EPOCH) // timedelta(microseconds=1)
    return Decimal(micros * 10 + RANK[source])


def instrument_mark(marks: dict[str, Decimal], venue: str, base: str, market_type: str) -> Decimal | None:
    """The mark of a perpetual (`perp:VENUE:BASE`, kept by the folds as the winning observation among
    the venue's mark and perp prices, the base's USD price and fills) or of a spot asset (its USD price)."""
    usd = marks.get(f"px:{base}")
    if market_type == "perp":
        key = f"perp:{venue}:{base}"
        price = marks.get(key)
        newer = usd is None or marks.get(f"at:{key}", ZERO) >= marks.get(f"at:px:{base}", ZERO)
        if price is not None and newer:
            return price
    return usd


def rate(marks: dict[str, Decimal], asset: str) -> Decimal:
    return marks.get(f"rate:{asset.upper()}", ONE)
