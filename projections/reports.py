"""Derived views over the folded state: balances, positions, exposure, risk and P&L by line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any, TypeVar

from aggregates.values import MONEY, Instrument
from aggregates.values import parse_instrument as _parse
from projections.prices import instrument_mark, rate, underlying, usd_price
from projections.state import EXACT, ZERO, LedgerState, exact_sum

F = TypeVar("F", bound=Callable[..., Any])


@functools.lru_cache(maxsize=4096)
def parse_instrument(symbol: str) -> Instrument:
    """Cached: reports run after every append and see the same few symbols."""
    return _parse(symbol)


def _money(fn: F) -> F:
    """Run a report under the ledger's explicit decimal context, whatever the caller's is."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with localcontext(MONEY):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


# AAVE v3 Ethereum liquidation thresholds (the seed's risk parameters use the same figures).
LIQUIDATION_THRESHOLDS = {
    "WETH": Decimal("0.83"), "ETH": Decimal("0.83"), "WSTETH": Decimal("0.81"),
    "WEETH": Decimal("0.78"), "STETH": Decimal("0.81"), "USDT": Decimal("0.78"),
    "USDC": Decimal("0.78"), "WBTC": Decimal("0.78"),
}


@dataclass(frozen=True)
class RiskParameters:
    """Limits and venue parameters the risk view checks against."""

    liquidation_thresholds: dict[str, Decimal] = field(default_factory=lambda: dict(LIQUIDATION_THRESHOLDS))
    initial_margin: Decimal = Decimal("0.1")
    maintenance_margin: Decimal = Decimal("0.005")
    exposure_limits: dict[str, Decimal] = field(default_factory=dict)
    min_health_factor: Decimal = Decimal("1.1")


@_money
def balances(state: LedgerState, venue: str | None = None) -> dict[str, Decimal]:
    """Held amount per asset, summed over venues and wallets (SPEC §12.12), funds in transit excluded."""
    totals: dict[str, Decimal] = {}
    for (v, _wallet, asset), amount in sorted(state.balances.items()):
        if venue is None or v == venue:
            totals[asset] = totals.get(asset, ZERO) + amount
    return {k: v for k, v in totals.items() if v}


@_money
def in_transit(state: LedgerState) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for t in sorted(state.transit.values(), key=lambda t: (t.from_venue, t.asset)):
        totals[t.asset] = totals.get(t.asset, ZERO) + t.amount
    return totals


@_money
def position(state: LedgerState, instrument: str, venue: str | None = None) -> Decimal:
    """Signed quantity in `instrument`, netted over venues unless one is named: a perpetual's position,
    or for a spot pair the base asset held (spot is inventory, never a short)."""
    inst = parse_instrument(instrument)
    canonical = inst.symbol
    perp = sum(
        (p.quantity for (v, sym), p in state.positions.items()
         if parse_instrument(sym).symbol == canonical and (venue is None or v == venue)),
        ZERO,
    )
    if perp or any(parse_instrument(sym).symbol == canonical for (_v, sym) in state.positions):
        return perp
    return sum((x for (v, _w, a), x in state.balances.items()
                if a == inst.base and (venue is None or v == venue)), ZERO)


def held(state: LedgerState, asset: str) -> Decimal:
    """Units of `asset` the desk holds: every venue and wallet, lent out, in transit (debt not netted)."""
    total = sum((x for (_v, _w, a), x in state.balances.items() if a == asset), ZERO)
    total += sum((x for (_v, a), x in state.supplied.items() if a == asset), ZERO)
    return total + sum((t.amount for t in state.transit.values() if t.asset == asset), ZERO)


def holdings(state: LedgerState) -> dict[str, Decimal]:
    """Net units per asset, pooled across the desk: held, lent and in transit, less debt."""
    out: dict[str, Decimal] = {}
    for (_v, _w, asset), amount in state.balances.items():
        out[asset] = out.get(asset, ZERO) + amount
    for (_v, asset), amount in state.supplied.items():
        out[asset] = out.get(asset, ZERO) + amount
    for (_v, asset), amount in state.borrowed.items():
        out[asset] = out.get(asset, ZERO) - amount
    for t in state.transit.values():
        out[t.asset] = out.get(t.asset, ZERO) + t.amount
    return out


@_money
def valuation(state: LedgerState) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(USD value per holding, unpriced units per asset): each asset pooled at its USD mark, each
    perpetual as quantity * (mark - average entry) in its settlement asset. Equity is their sum."""
    values: dict[str, Decimal] = {}
    unpriced: dict[str, Decimal] = {}
    for asset, units in sorted(holdings(state).items()):
        if not units:
            continue
        price = usd_price(state.marks, asset)
        if price is None:
            unpriced[asset] = units
        else:
            values[asset] = MONEY.multiply(units, price)
    for (venue, instrument), p in sorted(state.positions.items()):
        if not p.quantity or p.market_type != "perp":
            continue
        inst = parse_instrument(instrument)
        mark = instrument_mark(state.marks, venue, inst.base, "perp")
        settle = usd_price(state.marks, inst.settle)
        if mark is None or settle is None:
            unpriced[f"{instrument} perp at {venue}"] = p.quantity
            continue
        pnl_units = MONEY.multiply(p.quantity, mark - p.avg_entry)
        values[f"perp:{venue}:{instrument}"] = MONEY.multiply(pnl_units, settle)
    return values, unpriced


@_money
def unrealised(state: LedgerState, perp_only: bool = False) -> Decimal:
    total = ZERO
    for (venue, instrument), p in sorted(state.positions.items()):
        if not p.quantity or (perp_only and p.market_type != "perp"):
            continue
        base = parse_instrument(instrument).base
        mark = instrument_mark(state.marks, venue, base, p.market_type)
        if mark is not None:
            total += MONEY.multiply(p.quantity, mark - p.avg_entry)
    return total


def _value(state: LedgerState, asset: str, amount: Decimal) -> Decimal:
    price = usd_price(state.marks, asset)
    return MONEY.multiply(amount, price) if price is not None else ZERO


@_money
def equity(state: LedgerState) -> Decimal:
    """USD value of everything held, lent and in transit, minus debt, plus perp unrealised P&L; holdings
    without a price are left out (`statement` lists them)."""
    return exact_sum(valuation(state)[0].values())


@_money
def exposure(state: LedgerState) -> dict[str, Decimal]:
    """Net exposure per underlying, each unit counted once (SPEC §4, §12.15)."""
    out: dict[str, Decimal] = {}

    def add(asset: str, amount: Decimal) -> None:
        key = underlying(asset)
        out[key] = out.get(key, ZERO) + MONEY.multiply(amount, rate(state.marks, asset))

    for (_v, _w, asset), amount in sorted(state.balances.items()):
        add(asset, amount)
    for (_v, asset), amount in sorted(state.supplied.items()):
        add(asset, amount)
    for (_v, asset), amount in sorted(state.borrowed.items()):
        add(asset, -amount)
    for t in sorted(state.transit.values(), key=lambda t: (t.from_venue, t.asset, t.amount)):
        add(t.asset, t.amount)
    for (_v, instrument), p in sorted(state.positions.items()):
        if p.market_type == "perp" and p.quantity:
            add(parse_instrument(instrument).base, p.quantity)
    return {k: v for k, v in sorted(out.items()) if v}


@_money
def health_factor(state: LedgerState, venue: str, params: RiskParameters) -> Decimal | None:
    """AAVE health factor at `venue`; None when nothing is borrowed."""
    debt = sum((_value(state, a, x) for (v, a), x in state.borrowed.items() if v == venue and x), ZERO)
    if debt <= 0:
        return None
    collateral = sum(
        (_value(state, a, x) * params.liquidation_thresholds.get(a.upper(), ZERO)
         for (v, a), x in state.supplied.items() if v == venue and x),
        ZERO,
    )
    return MONEY.divide(collateral, debt)


@_money
def margin_use(state: LedgerState, venue: str, params: RiskParameters) -> Decimal | None:
    """Initial margin of open perps over the margin wallet's equity at `venue`."""
    required = ZERO
    margin_equity = ZERO
    for (v, instrument), p in sorted(state.positions.items()):
        if v != venue or p.market_type != "perp" or not p.quantity:
            continue
        inst = parse_instrument(instrument)
        mark = instrument_mark(state.marks, venue, inst.base, "perp") or p.avg_entry
        required += abs(p.quantity) * mark * params.initial_margin
        margin_equity += MONEY.multiply(p.quantity, mark - p.avg_entry)
    if not required:
        return None
    for (v, _w, asset), amount in state.balances.items():
        if v == venue and underlying(asset) == "USD":
            margin_equity += amount
    return MONEY.divide(required, margin_equity) if margin_equity > 0 else Decimal("Infinity")


@_money
def risk(state: LedgerState, params: RiskParameters | None = None,
         expo: dict[str, Decimal] | None = None) -> dict[str, object]:
    params = params or RiskParameters()
    venues = sorted({v for (v, _a) in state.supplied} | {v for (v, _a) in state.borrowed}
                    | {v for (v, _i) in state.positions})
    breaches = []
    if params.exposure_limits and expo is None:
        expo = exposure(state)
    for asset, limit in sorted(params.exposure_limits.items()):
        assert expo is not None
        if abs(expo.get(asset, ZERO)) > limit:
            breaches.append(f"exposure {asset} {expo.get(asset, ZERO)} > {limit}")
    hf = {v: health_factor(state, v, params) for v in venues}
    for v, value in hf.items():
        if value is not None and value < params.min_health_factor:
            breaches.append(f"health factor {v} {value:.4f} < {params.min_health_factor}")
    return {
        "health_factor": {v: x for v, x in hf.items() if x is not None},
        "margin_use": {v: x for v in venues if (x := margin_use(state, v, params)) is not None},
        "breaches": breaches,
    }


PNL_LINES = ("realised", "revaluation", "funding", "supply_interest", "borrow_cost", "rewards", "fees",
             "gas", "withdrawal_fees", "liquidation")


@_money
def revaluation(state: LedgerState) -> dict[str, Decimal]:
    """Per holding: its market value now less what flowed into it (fills at their prices, everything
    else at the mark of its time). Summed, less realised trading, it is the revaluation line."""
    values, _unpriced = valuation(state)
    carried = {k[8:]: v for k, v in state.pnl_usd.items() if k.startswith("carried:")}
    return {h: EXACT.subtract(values.get(h, ZERO), carried.get(h, ZERO))
            for h in sorted(set(values) | set(carried)) if values.get(h, ZERO) != carried.get(h, ZERO)}


@_money
def pnl(state: LedgerState) -> dict[str, Decimal]:
    """The P&L statement in USD, a fold of events: its lines add up exactly to the change in equity net
    of external flows (deposits, withdrawals, adjustments at the marks of their time)."""
    lines = {line: state.pnl_usd.get(line, ZERO) for line in PNL_LINES}
    lines["revaluation"] = EXACT.subtract(exact_sum(revaluation(state).values()), lines["realised"])
    lines["total"] = exact_sum(lines[k] for k in PNL_LINES)
    return lines


@_money
def statement(state: LedgerState) -> dict[str, Any]:
    """The statement with its reconciliation: initial equity (the funding), external flows, final
    equity, P&L lines, and what is held or was booked without a price (in its own units)."""
    values, unpriced = valuation(state)
    final = exact_sum(values.values())
    external = state.pnl_usd.get("external", ZERO)
    booked = {f"{line[9:]} {asset}": x for (line, asset), x in sorted(state.pnl.items())
              if line.startswith("unpriced ") and x}
    return {
        "initial_equity": state.pnl_usd.get("initial", ZERO),
        "external_flows": external,
        "final_equity": final,
        "pnl": pnl(state),
        "unpriced": {**{f"held {k}": v for k, v in unpriced.items()}, **booked},
    }


def initial_equity(state: LedgerState) -> Decimal | None:
    """Equity after the initial funding (external flows before the first instruction), from events."""
    return state.pnl_usd.get("initial")


@_money
def equity_series(state: LedgerState) -> list[tuple[str, Decimal]]:
    """The hourly samples, starting at the funded equity and ending at the equity now."""
    series = list(state.equity)
    initial = initial_equity(state)
    if initial is not None and state.last_ts is not None:
        first = series[0][0] if series else state.last_ts.isoformat()
        series.insert(0, (first, initial))
    if state.last_ts is not None and state.marks:
        series.append((state.last_ts.isoformat(), equity(state)))
    return series


@_money
def positions(state: LedgerState) -> list[dict[str, object]]:
    rows = []
    for (venue, instrument), p in sorted(state.positions.items()):
        if p.quantity or p.realised:
            rows.append({"venue": venue, "instrument": instrument, "market_type": p.market_type,
                         "quantity": p.quantity, "avg_entry": p.avg_entry, "realised": p.realised,
                         "fees": p.fees})
    return rows
