"""Building blocks the seed's strategy modes share: instruction builders, the perp hedge, the AAVE loop.

Everything here returns instruction dicts; nothing touches the ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import ROUND_DOWN, Decimal, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from aggregates.values import MONEY
from ledger.strategies.base import StrategyView
from ledger.strategies.params import Param, weights_json

if TYPE_CHECKING:
    from ledger.marketdata import Availability

CHAIN = "ethereum"
ZERO = Decimal(0)
ONE = Decimal(1)
WEIGHT_QUANTUM = Decimal("1e-18")  # renormalised weights: 18 decimal places, the last one the remainder
VENUE_NAMES = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}


def lot(x: Decimal, step: str = "0.001") -> Decimal:
    return x.quantize(Decimal(step), rounding=ROUND_DOWN) if x > 0 else ZERO


def renormalise(weights: Mapping[str, Decimal], quantum: Decimal = WEIGHT_QUANTUM) -> dict[str, Decimal]:
    """`weights` scaled to sum to 1: each w / sum rounded half-even to `quantum` (in venue order), the last
    venue taking the remainder, so the result sums to exactly 1 (40/30 → 4/7 = 0.571428571428571429 and
    3/7 = 0.428571428571428571 at the default 1e-18)."""
    total = sum(weights.values(), ZERO)
    names = sorted(weights)
    with localcontext(MONEY):
        out = {v: (weights[v] / total).quantize(quantum) for v in names[:-1]}
        out[names[-1]] = ONE - sum(out.values(), ZERO)
    return out


def hedgeable(data: Availability, base: str, venue: str) -> bool:
    """The data has the venue's perp and its funding for the window."""
    return data.has(f"{base.lower()}_perp", venue) and data.has(f"funding_{base.lower()}", venue)


def lacking(data: Availability, base: str, venue: str) -> str:
    """What keeps a venue from hedging, e.g. "no OKX ETH perp data"."""
    what = "perp" if not data.has(f"{base.lower()}_perp", venue) else "funding"
    return f"no {VENUE_NAMES[venue]} {base} {what} data"


def missing_text(data: Availability, base: str, venues: Collection[str]) -> str:
    """What `venues` lack for the data's window: `no OKX ETH perp data for 2024-09-10 → 2024-09-14`, then
    in brackets the gaps that made a venue missing (`okx ETH perp: no row between …, a gap over 24 h`)."""
    what = "; ".join(lacking(data, base, v) for v in venues)
    gaps = [why for v in venues for need in (f"{base.lower()}_perp", f"funding_{base.lower()}")
            if (why := data.gaps.get((need, v))) is not None]
    return f"{what} for {data.window}" + (f" ({'; '.join(gaps)})" if gaps else "")


def fit_weights(
    param: Param,
    weights: Mapping[str, Decimal],
    data: Availability,
    base: str,
    *,
    explicit: bool,
) -> tuple[dict[str, Decimal], str | None]:
    """Venue weights over the venues with `base` perp and funding data for the window (`hedgeable`), and
    a note when they changed.

    Every weighted venue usable: unchanged. Otherwise the default is renormalised over its usable venues
    (the note names what is missing, `missing_text`, and the new weights as fractions); weights the user
    gave (`explicit`) that name a missing venue are refused, with a `--param` over the usable venues to
    pass instead."""
    usable = [v for v in param.choices if hedgeable(data, base, v)]
    absent = [v for v, w in sorted(weights.items()) if w and v not in usable]
    if not absent:
        return dict(weights), None
    kept = {v: w for v, w in sorted(weights.items()) if w and v in usable}
    what = missing_text(data, base, absent)
    if explicit or not kept:
        fallback = kept or {v: ONE for v in sorted(usable)}
        if not fallback:
            raise param.fail(f"{what}, and no other venue has it")
        example = weights_json(renormalise(fallback, Decimal("0.01")))
        raise param.fail(f"{what}; pass --param '{param.name}={example}' (venues with data: "
                         f"{', '.join(sorted(usable))})")
    fitted = renormalise(kept)
    total = sum((Fraction(w) for w in kept.values()), Fraction(0))
    shares = ", ".join(f"{v} {Fraction(w) / total}" for v, w in kept.items())
    split = "/".join(_percent(w) for _v, w in sorted(weights.items()))
    return fitted, f"{param.name}: {what}; the default {split} split was renormalised to {shares}"


def _percent(weight: Decimal) -> str:
    text = format(weight * 100, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


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
