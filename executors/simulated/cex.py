"""Simulated CEX venue: fills at the reference price moved by the execution cost, resting limit
orders matched as the market moves, funding settled at the data's timestamps, perp liquidation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from aggregates.ids import client_order_id
from aggregates.values import MONEY, Instrument, MarketType, parse_instrument
from executors import results, risk
from executors.instructions import OrderInstruction
from executors.market import reference_price, usd_price
from executors.simulated.volatile import Volatile

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

BPS = Decimal(10_000)
ZERO = Decimal(0)


@dataclass
class Resting:
    order: OrderInstruction
    client_order_id: str
    wallet: str


class SimulatedCEX(Volatile):
    """The venue side of a backtest; it only reports what happened, as ledger facts."""

    volatile = ("resting", "funding_cursor")

    def __init__(self) -> None:
        self.resting: list[Resting] = []
        self.funding_cursor: datetime | None = None

    # ---- placing ---------------------------------------------------------------------------------

    def place(
        self, iface: BaseExecutionInterface, order: OrderInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        with localcontext(MONEY):
            return self._place(iface, order, market, raw)

    def _place(
        self, iface: BaseExecutionInterface, order: OrderInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        venue, inst = order.venue, order.instrument
        ref = reference_price(market, venue, inst)
        if ref is None:
            base = inst.base.lower()
            return iface.reject(
                venue,
                order.instruction_id,
                "no_price",
                f"market_data: no price for {inst.symbol} at {venue} (give "
                f"{venue}_{base}_{order.market_type}_price or {base}_usd_price)",
                raw,
                order,
            )
        notional_usd = order.amount * ref * (usd_price(market, inst.quote) or Decimal(1))
        bps = iface.costs.execution_bps(venue, order.market_type, notional_usd)
        sign = Decimal(1) if order.side == "buy" else Decimal(-1)
        fill_px = results.trim(ref * (1 + sign * bps / BPS))
        limit = order.price
        marketable = limit is None or (limit >= fill_px if order.side == "buy" else limit <= fill_px)
        price = fill_px if marketable else limit
        assert price is not None
        liquidity = "taker" if marketable else "maker"
        fee = results.trim(order.amount * price * iface.costs.fee_rate(venue, order.market_type, liquidity))
        wallet = iface.wallet(venue, order.market_type)
        problem = (
            (risk.slippage(iface.limits, bps, order.max_slippage_bps) if marketable else None)
            or risk.notional(iface.limits, venue, notional_usd)
            or self._funds(iface, order, price, fee, ref, wallet, market)
        )
        if problem is not None:
            return iface.reject(venue, order.instruction_id, problem[0], problem[1], raw, order)
        logger = iface.logger
        now = logger.now()
        if order.instrument.market_type is MarketType.PERP:
            self._funding(iface, now)  # settle what fell due on the position as it stood
        agg = logger.venue(venue)
        agg.record_accepted(order.instruction_id, order.record(wallet), market, now)
        coid = client_order_id(order.instruction_id, agg.next_attempt(order.instruction_id))
        agg.record_submitted(order.instruction_id, coid, now)
        if marketable:
            agg.record_fill(
                order.instruction_id,
                f"sim-{coid}-1",
                order.market_type,
                inst.symbol,
                order.side,
                order.amount,
                price,
                fee,
                inst.settle,
                now,
                liquidity,
                wallet,
                ref,
                bps,
            )
            status, filled = "FILLED", order.amount
        else:
            agg.record_acknowledged(order.instruction_id, coid, now)
            self.resting.append(Resting(order, coid, wallet))
            status, filled, bps, fee = "SUBMITTED", ZERO, ZERO, ZERO
        logger.commit(agg)
        result = results.order(
            iface.execution_mode,
            order,
            status,
            coid,
            filled,
            price if filled else ZERO,
            ref,
            bps,
            fee,
            inst.settle,
        )
        iface.notify(result)
        return result

    def _funds(
        self,
        iface: BaseExecutionInterface,
        order: OrderInstruction,
        price: Decimal,
        fee: Decimal,
        ref: Decimal,
        wallet: str,
        market: dict[str, Decimal],
    ) -> risk.Check:
        mon, venue, inst = iface.monitor, order.venue, order.instrument
        spot = order.instrument.market_type is MarketType.SPOT
        current = (
            Decimal(0)
            if spot and not order.reduce_only
            else Decimal(mon.position(inst.symbol, venue)["amount"])
        )
        if order.reduce_only:
            problem = risk.reduce_only(current, order.side, order.amount)
            if problem is not None:
                return problem
        if spot:
            if order.side == "buy":
                quote = inst.quote
                return risk.balance(
                    mon.balance(quote, venue, wallet), order.amount * price + fee, quote, f"{venue}/{wallet}"
                )
            return risk.balance(
                mon.balance(inst.base, venue, wallet), order.amount, inst.base, f"{venue}/{wallet}"
            )
        after = current + (order.amount if order.side == "buy" else -order.amount)
        if abs(after) <= abs(current) and (after == 0 or (after > 0) == (current > 0)):
            return None  # reducing a position never needs more margin
        equity, required = mon.margin_equity(venue, wallet, market)
        rate = iface.limits.margin_rate(venue)
        needed = required + (abs(after) - abs(current)) * ref * rate
        return risk.margin(equity - fee, needed, venue)

    # ---- time-driven -------------------------------------------------------------------------------

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        """Due at every step while orders rest or perps are open (matching, funding, liquidation)."""
        if self.resting or iface.monitor.has_perps():
            return iface.logger.now()
        return None

    def advance(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        with localcontext(MONEY):
            if self.resting:
                self._match(iface, market)
            self._funding(iface, ts)
            self._liquidations(iface, market)

    def _match(self, iface: BaseExecutionInterface, market: dict[str, Decimal]) -> None:
        logger = iface.logger
        still: list[Resting] = []
        for rest in self.resting:
            o = rest.order
            ref = reference_price(market, o.venue, o.instrument)
            assert o.price is not None
            if ref is None or (ref > o.price if o.side == "buy" else ref < o.price):
                still.append(rest)
                continue
            now = logger.now()
            agg = logger.venue(o.venue)
            fee = results.trim(o.amount * o.price * iface.costs.fee_rate(o.venue, o.market_type, "maker"))
            problem = self._funds(iface, o, o.price, fee, ref, rest.wallet, market)
            if problem is not None:
                agg.record_cancelled(o.instruction_id, f"{problem[0]}: {problem[1]}", now)
                status = "CANCELLED"
            else:
                agg.record_fill(
                    o.instruction_id,
                    f"sim-{rest.client_order_id}-1",
                    o.market_type,
                    o.instrument.symbol,
                    o.side,
                    o.amount,
                    o.price,
                    fee,
                    o.instrument.settle,
                    now,
                    "maker",
                    rest.wallet,
                    ref,
                    ZERO,
                )
                status = "FILLED"
            logger.commit(agg)
            iface.notify({"status": status, "instruction_id": o.instruction_id, "venue": o.venue})
        self.resting = still

    def _funding(self, iface: BaseExecutionInterface, ts: datetime) -> None:
        provider = iface.data_provider
        if provider is None:
            return
        if self.funding_cursor is not None and ts <= self.funding_cursor:
            return
        points = provider.funding(self.funding_cursor, ts)
        self.funding_cursor = ts
        logger, mon = iface.logger, iface.monitor
        for point in points:
            if logger.venue_type(point.venue) != "cex":
                continue
            for row in mon.positions(point.venue):
                inst = parse_instrument(row["symbol"])
                if inst.market_type is not MarketType.PERP or inst.base != point.base or not row["amount"]:
                    continue
                mark = reference_price(provider.snapshot(point.ts), point.venue, inst)
                if mark is None:
                    continue
                qty = Decimal(row["amount"])
                amount = -qty * mark * point.rate
                agg = logger.venue(point.venue)
                if agg.record_funding(
                    inst.symbol,
                    iface.wallet(point.venue, "perp"),
                    inst.settle,
                    point.rate,
                    mark,
                    qty,
                    amount,
                    point.ts,
                    now=logger.now(),
                ):
                    logger.commit(agg)
                    iface.notify({"status": "FUNDING", "venue": point.venue, "amount": amount})

    def _liquidations(self, iface: BaseExecutionInterface, market: dict[str, Decimal]) -> None:
        """Close every perp at a venue whose margin equity fell below maintenance (one-way, cross)."""
        logger, mon = iface.logger, iface.monitor
        for venue in mon.perp_venues():
            rows = [r for r in mon.positions(venue) if r["market_type"] == "perp" and r["amount"]]
            if not rows:
                continue
            wallet = iface.wallet(venue, "perp")
            marks = [(parse_instrument(r["symbol"]), Decimal(r["amount"])) for r in rows]
            priced = [(i, q, reference_price(market, venue, i)) for i, q in marks]
            if any(p is None for _i, _q, p in priced):
                continue
            maintenance = sum(
                (abs(q) * p * iface.limits.maintenance_margin for _i, q, p in priced if p), ZERO
            )
            equity, _required = mon.margin_equity(venue, wallet, market)
            if equity >= maintenance:
                continue
            agg = logger.venue(venue)
            now = logger.now()
            for inst, qty, price in priced:
                assert price is not None
                iid = logger.next_instruction_id()
                side = "sell" if qty > 0 else "buy"
                agg.record_accepted(
                    iid,
                    {
                        "kind": "LIQUIDATION",
                        "venue_type": "cex",
                        "instrument": inst.symbol,
                        "market_type": "perp",
                        "side": side,
                        "amount": str(abs(qty)),
                        "wallet": wallet,
                    },
                    market,
                    now,
                )
                coid = client_order_id(iid)
                agg.record_submitted(iid, coid, now)
                agg.record_fill(
                    iid,
                    f"liq-{coid}",
                    "perp",
                    inst.symbol,
                    side,
                    abs(qty),
                    price,
                    ZERO,
                    inst.settle,
                    now,
                    "liquidation",
                    wallet,
                    price,
                    ZERO,
                )
            logger.commit(agg)
            iface.notify({"status": "LIQUIDATED", "venue": venue})

    def cancel_all(self, iface: BaseExecutionInterface, venue: str | None) -> list[str]:
        logger = iface.logger
        cancelled: list[str] = []
        keep: list[Resting] = []
        for rest in self.resting:
            if venue is not None and rest.order.venue != venue:
                keep.append(rest)
                continue
            agg = logger.venue(rest.order.venue)
            now = logger.now()
            agg.record_cancel_requested(rest.order.instruction_id, now)
            agg.record_cancelled(rest.order.instruction_id, "cancel_all_orders", now)
            logger.commit(agg)
            cancelled.append(rest.order.instruction_id)
        self.resting = keep
        return cancelled


__all__ = ["Instrument", "SimulatedCEX"]
