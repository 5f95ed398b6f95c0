"""`position_monitor` of the seed's interfaces: balances, positions and risk inputs read from the
projection the engine keeps in step with every append."""

from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

from aggregates.values import MONEY, Instrument, parse_instrument
from executors.risk import RiskLimits
from projections import reports
from projections.memory import InMemoryProjection
from projections.prices import instrument_mark, mark_keys, underlying, usd_price
from projections.state import ZERO, LedgerState


@lru_cache(maxsize=4096)
def _instrument(symbol: str) -> Instrument:
    return parse_instrument(symbol)


def _canonical(symbol: str) -> str:
    try:
        return _instrument(symbol).symbol
    except ValueError:
        return symbol


class PositionMonitor:
    """Reads the folded state; never writes."""

    def __init__(self, projection: InMemoryProjection, limits: RiskLimits) -> None:
        self.projection = projection
        self.limits = limits

    @property
    def state(self) -> LedgerState:
        return self.projection.state

    def balance(self, asset: str, venue: str | None = None, wallet: str | None = None) -> Decimal:
        if venue is not None and wallet is not None:
            return self.state.balances.get((venue, wallet, asset), ZERO)
        total = ZERO
        for (v, w, a), amount in self.state.balances.items():
            if a == asset and (venue is None or v == venue) and (wallet is None or w == wallet):
                total += amount
        return total

    def position(self, symbol: str, venue: str | None = None) -> dict[str, Any]:
        """Signed amount, average entry and unrealised P&L at the latest marks (netted over venues)."""
        canonical = _canonical(symbol)
        amount = cost = realised = unrealised = ZERO
        market_type = "perp" if ":" in canonical else "spot"
        if market_type == "spot":
            return self._spot(canonical, venue)
        with localcontext(MONEY):
            for (v, sym), p in sorted(self.state.positions.items()):
                if (venue is not None and v != venue) or _canonical(sym) != canonical:
                    continue
                amount += p.quantity
                cost += p.quantity * p.avg_entry
                realised += p.realised
                mark = instrument_mark(self.state.marks, v, _instrument(sym).base, p.market_type)
                if mark is not None and p.quantity:
                    unrealised += p.quantity * (mark - p.avg_entry)
            entry = cost / amount if amount else ZERO
        return {
            "symbol": canonical,
            "venue": venue,
            "amount": amount,
            "entry_price": entry,
            "unrealized_pnl": unrealised,
            "realized_pnl": realised,
            "market_type": market_type,
        }

    def _spot(self, symbol: str, venue: str | None) -> dict[str, Any]:
        """Spot is inventory: the base held (at `venue` or across the desk), at the desk's average cost."""
        state = self.state
        base = _instrument(symbol).base
        with localcontext(MONEY):
            amount = reports.position(state, symbol, venue)
            pooled = reports.held(state, base)
            entry = state.pnl_usd.get(f"cost:{base}", ZERO) / pooled if pooled > 0 else ZERO
            price = usd_price(state.marks, base)
            unrealised = amount * (price - entry) if price is not None and amount else ZERO
        return {"symbol": symbol, "venue": venue, "amount": amount, "entry_price": entry,
                "unrealized_pnl": unrealised, "realized_pnl": state.pnl_usd.get(f"realised:{base}", ZERO),
                "market_type": "spot"}

    def positions(self, venue: str) -> list[dict[str, Any]]:
        return [
            {"symbol": sym, "market_type": p.market_type, "amount": p.quantity, "entry_price": p.avg_entry}
            for (v, sym), p in sorted(self.state.positions.items())
            if v == venue and p.quantity
        ]

    def perp_venues(self) -> list[str]:
        positions = self.state.positions.items()
        return sorted({v for (v, _s), p in positions if p.market_type == "perp" and p.quantity})

    def has_perps(self) -> bool:
        return any(p.quantity and p.market_type == "perp" for p in self.state.positions.values())

    def has_lending(self, venue: str) -> bool:
        state = self.state
        return any(x and v == venue for (v, _a), x in state.supplied.items()) or any(
            x and v == venue for (v, _a), x in state.borrowed.items())

    def supplied(self, venue: str, asset: str) -> Decimal:
        return self.state.supplied.get((venue, asset), ZERO)

    def borrowed(self, venue: str, asset: str) -> Decimal:
        return self.state.borrowed.get((venue, asset), ZERO)

    def lending(self, venue: str) -> list[tuple[str, str, Decimal]]:
        out = [("supplied", a, x) for (v, a), x in sorted(self.state.supplied.items()) if v == venue and x]
        out += [("borrowed", a, x) for (v, a), x in sorted(self.state.borrowed.items()) if v == venue and x]
        return out

    def _marks(self, market: dict[str, Decimal]) -> dict[str, Decimal]:
        marks = dict(self.state.marks)
        for key, value in market.items():
            for mark, price in mark_keys(key, value):
                marks[mark] = price
        return marks

    def aave_totals(self, venue: str, market: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
        marks = self._marks(market)
        collateral = debt = ZERO
        with localcontext(MONEY):
            for (v, asset), amount in sorted(self.state.supplied.items()):
                price = usd_price(marks, asset)
                if v == venue and amount and price is not None:
                    collateral += amount * price * self.limits.liquidation_thresholds.get(asset.upper(), ZERO)
            for (v, asset), amount in sorted(self.state.borrowed.items()):
                price = usd_price(marks, asset)
                if v == venue and amount and price is not None:
                    debt += amount * price
        return collateral, debt

    def margin_equity(self, venue: str, wallet: str, market: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
        marks = self._marks(market) if market else self.state.marks
        equity = required = ZERO
        rate = self.limits.margin_rate(venue)
        with localcontext(MONEY):
            for (v, w, asset), amount in self.state.balances.items():
                if v == venue and w == wallet and underlying(asset) == "USD":
                    equity += amount
            for (v, sym), p in self.state.positions.items():
                if v != venue or p.market_type != "perp" or not p.quantity:
                    continue
                mark = instrument_mark(marks, v, _instrument(sym).base, "perp") or p.avg_entry
                equity += p.quantity * (mark - p.avg_entry)
                required += abs(p.quantity) * mark * rate
        return equity, required

    # ---- the reports the update handler and the summary use ------------------------------------------

    def exposure(self) -> dict[str, Decimal]:
        return reports.exposure(self.state)

    def risk(self, expo: dict[str, Decimal] | None = None) -> dict[str, object]:
        return reports.risk(self.state, self._params, expo)

    @property
    def _params(self) -> reports.RiskParameters:
        params: reports.RiskParameters | None = self.__dict__.get("_risk_params")
        if params is None:
            params = self.__dict__["_risk_params"] = reports.RiskParameters(
                liquidation_thresholds=dict(self.limits.liquidation_thresholds),
                initial_margin=self.limits.default_initial_margin,
                maintenance_margin=self.limits.maintenance_margin,
                min_health_factor=self.limits.min_health_factor,
            )
        return params

    def pnl(self) -> dict[str, Decimal]:
        return reports.pnl(self.state)

    def equity(self) -> Decimal:
        return reports.equity(self.state)
