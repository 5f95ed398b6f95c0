"""Building blocks the seed's strategy modes share: instruction builders, the perp hedge, the AAVE loop.

Everything here returns instruction dicts; nothing touches the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aggregates.errors import LedgerError
from ledger.strategies.base import StrategyView

CHAIN = "ethereum"
ZERO = Decimal(0)
ONE = Decimal(1)


class StrategyConfigError(LedgerError):
    """A strategy parameter is out of range; the message names it."""


def lot(x: Decimal, step: str = "0.001") -> Decimal:
    return x.quantize(Decimal(step), rounding=ROUND_DOWN) if x > 0 else ZERO


def check_fraction(name: str, value: Decimal, low: Decimal = ZERO, high: Decimal = ONE) -> None:
    if not low <= value <= high:
        raise StrategyConfigError(f"{name}: must be between {low} and {high}, got {value}")


def check_weights(name: str, weights: Mapping[str, Decimal]) -> None:
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) != ONE:
        raise StrategyConfigError(
            f"{name}: weights must be non-negative and sum to 1, got "
            + ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))
        )


def spot(venue: str, base: str, side: str, amount: Decimal) -> dict[str, Any]:
    return {
        "venue_type": "cex",
        "venue": venue,
        "trade_type": "SPOT",
        "pair": f"{base}/USDT",
        "side": side,
        "amount": amount,
    }


def perp(venue: str, base: str, side: str, amount: Decimal, reduce_only: bool = False) -> dict[str, Any]:
    out = {
        "venue_type": "cex",
        "venue": venue,
        "trade_type": "PERP",
        "pair": f"{base}USDT-PERP",
        "side": side,
        "amount": amount,
    }
    if reduce_only:
        out["reduce_only"] = True
    return out


def chain(operation: str, token: str, amount: Decimal) -> dict[str, Any]:
    return {"venue_type": "onchain", "operation": operation, "token": token, "amount": amount}


def transfer(src: str, dst: str, asset: str, amount: Decimal, **wallets: str) -> dict[str, Any]:
    return {
        "venue_type": "transfer",
        "from_venue": src,
        "to_venue": dst,
        "asset": asset,
        "amount": amount,
        **wallets,
    }


def hedge(
    view: StrategyView,
    base: str,
    target: Decimal,
    weights: Mapping[str, Decimal],
    tolerance: Decimal,
    gross: Decimal,
) -> list[dict[str, Any]]:
    """Trade each venue's perp towards `weight x target` (target is the signed total perp position, short
    negative) once the net delta leaves `tolerance x gross`."""
    symbol = f"{base}/USDT:USDT"
    held = {v: view.position(symbol, v) for v in sorted(weights)}
    net = target - sum(held.values(), ZERO)
    if abs(net) <= max(tolerance * gross, Decimal("0.001")):
        return []
    out = []
    for venue, weight in sorted(weights.items()):
        change = target * weight - held[venue]
        qty = lot(abs(change))
        if qty > 0:
            out.append(perp(venue, base, "SELL" if change < 0 else "BUY", qty))
    return out


def staked_eth(view: StrategyView, market: Mapping[str, Decimal], token: str = "WEETH") -> Decimal:
    """ETH held as the staking token, in the wallet and supplied to AAVE, at the token's rate."""
    rate = market.get(f"{token.lower()}_eth_rate", ONE)
    units = view.balance(token, CHAIN) + view.supplied(CHAIN, token)
    return units * rate


def ltv(view: StrategyView, market: Mapping[str, Decimal], token: str = "WEETH") -> Decimal:
    """Debt over collateral, both in ETH (AAVE's own measure for an ETH-correlated loop)."""
    collateral = view.supplied(CHAIN, token) * market.get(f"{token.lower()}_eth_rate", ONE)
    debt = view.borrowed(CHAIN, "WETH")
    return debt / collateral if collateral else ZERO


def loop_step(
    view: StrategyView, market: Mapping[str, Decimal], target: Decimal, token: str = "WEETH"
) -> list[dict[str, Any]]:
    """One turn of the leverage loop: borrow ETH up to `target` LTV, stake it, supply the receipt token."""
    rate = market.get(f"{token.lower()}_eth_rate")
    if rate is None:
        return []
    collateral = view.supplied(CHAIN, token) * rate
    room = lot(collateral * target - view.borrowed(CHAIN, "WETH"))
    if room < Decimal("0.01"):
        return []
    return [
        chain("AAVE_BORROW", "ETH", room),
        chain("STAKE", "ETH", room),
        chain("AAVE_SUPPLY", token, lot(room / rate, "0.000001")),
    ]
