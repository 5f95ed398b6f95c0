"""The demo: a delta-neutral ETH basis trade across all three interfaces and a transfer.

Buy spot ETH on Binance, send part of it to the chain wallet, stake it, supply the receipt token to
AAVE, borrow ETH against it and stake that too; short the perpetual to hedge, and trade the hedge back
whenever net ETH exposure drifts outside a band.

The hedge goes to `hedge_venues` (Bybit and OKX by default); `fit` keeps those the data has for the
window and, when it has none of them, takes whatever perpetual it has (Binance's, in a folder of Binance
files). The capital's hedge share (40 %) is split over the hedge venues; where a perp margins from a
wallet of its own (Binance futures), USDT is moved there from the spot wallet before the order, enough
for the venue's initial margin on the position after the order with cover, and topped up when the
margin equity falls below 1.5 times the requirement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from ledger.strategies.base import StrategyView
from ledger.strategies.blocks import hedgeable, missing_text
from ledger.strategies.params import CAPITAL, DECIMAL, GAS_RESERVE, VENUES, Param

if TYPE_CHECKING:
    from ledger.marketdata import Availability

STEP = Decimal("0.001")
CENT = Decimal("0.01")
ZERO = Decimal(0)
CHAIN = "ethereum"
PERP_VENUES = ("binance", "bybit", "okx")
SYMBOL = "ETH/USDT:USDT"
HEDGE_CAPITAL = Decimal("0.4")  # of the capital, perp margin split over the hedge venues
MARGIN_COVER = Decimal(2)  # move USDT until margin equity is this many times the initial margin required
MARGIN_FLOOR = Decimal("1.5")  # ... whenever it is below this many times
FEE_ALLOWANCE = Decimal("0.01")  # of notional, kept free of the initial margin for the fee and costs

SPOT_FRACTION = Param("spot_fraction", DECIMAL, Decimal("0.55"), "share of the capital bought as spot ETH "
                      "on Binance (Binance holds 60 % for it)", low=Decimal("0.05"), high=Decimal("0.59"))
CHAIN_FRACTION = Param("chain_fraction", DECIMAL, Decimal("0.6"), "share of the bought ETH moved on chain, "
                       "staked and supplied to AAVE", low=ZERO, high=Decimal(1))
BORROW_LTV = Param("borrow_ltv", DECIMAL, Decimal("0.35"), "ETH borrowed against the supplied weETH, as a "
                   "loan-to-value", low=ZERO, high=Decimal("0.5"))
BAND = Param("band", DECIMAL, Decimal("0.005"), "re-hedge when |net ETH| exceeds this fraction of gross ETH",
             low=ZERO, high=Decimal("0.1"))
HEDGE_VENUES = Param("hedge_venues", VENUES, ("bybit", "okx"), "perp venues the hedge is split over equally; "
                     "by default those the data has, else any perp it has", choices=PERP_VENUES)


def _lot(x: Decimal) -> Decimal:
    return x.quantize(STEP, rounding=ROUND_DOWN) if x > 0 else ZERO


@dataclass
class DemoBasis:
    """Parameters are fractions of what is held, so the strategy scales with `--capital`."""

    name: ClassVar[str] = "demo_basis"
    description: ClassVar[str] = ("delta-neutral ETH basis: spot + staked/AAVE loop, hedged with perp shorts "
                                  "(Bybit/OKX, else the perps the data has)")

    capital: Decimal = CAPITAL.field()
    spot_fraction: Decimal = SPOT_FRACTION.field()
    chain_fraction: Decimal = CHAIN_FRACTION.field()
    borrow_ltv: Decimal = BORROW_LTV.field()
    band: Decimal = BAND.field()
    gas_reserve: Decimal = GAS_RESERVE.field()
    hedge_venues: tuple[str, ...] = HEDGE_VENUES.field()
    phase: str = field(default="buy", init=False)
    notes: list[str] = field(default_factory=list, init=False)
    explicit: frozenset[str] = field(default=frozenset(), init=False, repr=False)  # parameters given

    def data_needs(self) -> tuple[str, ...]:
        """The seed data series the demo reads (with `--data` on the seed folder)."""
        venues = ",".join(self.hedge_venues)
        hedge = (f"eth_perp:{venues}", f"funding_eth:{venues}") if venues else ()
        return ("eth_spot:binance", *hedge, "aave:weth,weeth", "staking", "gas")

    def fit(self, data: Availability) -> None:
        """Hedge on the `hedge_venues` that have perp and funding data for the window; with none of them,
        on every venue that has (a note says so). Venues the user named that lack data are refused."""
        kept = tuple(v for v in self.hedge_venues if hedgeable(data, "ETH", v))
        if kept == self.hedge_venues:
            return
        have = tuple(v for v in PERP_VENUES if hedgeable(data, "ETH", v))
        what = missing_text(data, "ETH", [v for v in self.hedge_venues if v not in kept])
        if HEDGE_VENUES.name in self.explicit:
            hint = f"pass --param hedge_venues={','.join(have)}" if have else "no venue has it"
            raise HEDGE_VENUES.fail(f"{what}; {hint}")
        chosen = kept or have
        self.notes.append(f"hedge_venues: {what}; "
                          + (f"hedging on {', '.join(chosen)}" if chosen else "the ETH is left unhedged"))
        self.hedge_venues = chosen

    def config(self) -> dict[str, Any]:
        c = self.capital
        hedge = self.hedge_venues
        share = (c * HEDGE_CAPITAL / len(hedge)).quantize(CENT, rounding=ROUND_DOWN) if hedge else ZERO
        elsewhere = [v for v in hedge if v != "binance"]  # Binance's share waits in its spot wallet
        balances: dict[str, dict[str, Decimal]] = {"binance": {"USDT": c - share * len(elsewhere)}}
        balances.update({v: {"USDT": share} for v in elsewhere})
        return {
            "initial_balances": {**balances, CHAIN: {"ETH": Decimal("0.3")}},
            "fees": {
                "binance": {"SPOT": {"maker": "0.001", "taker": "0.001"},
                            "PERP": {"maker": "0.0002", "taker": "0.0005"}},
                "bybit": {"PERP": {"maker": "0.0002", "taker": "0.00055"}},
                "okx": {"PERP": {"maker": "0.0002", "taker": "0.0005"}},
            },
            "transfers": {
                "withdrawal_fees": {"binance": {"ETH": "0.0008", "USDT": "1"}},
                "delays_minutes": {"binance->ethereum": 20, "binance->bybit": 5, "binance->okx": 5},
            },
            "risk": {"min_health_factor": "1.5", "max_order_notional": str(c * 2)},
        }

    # ---- deciding ------------------------------------------------------------------------------------

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        price = market.get("binance_eth_spot_price") or market.get("eth_usd_price")
        if price is None:
            return []
        if self.phase == "buy":
            self.phase = "send"
            qty = _lot(self.capital * self.spot_fraction / price)
            return [
                {
                    "venue_type": "cex",
                    "venue": "binance",
                    "trade_type": "SPOT",
                    "pair": "ETH/USDT",
                    "side": "BUY",
                    "amount": qty,
                }
            ]
        if self.phase == "send":
            self.phase = "wait"
            if not self._chain_ready(market):
                self.notes.append("no AAVE/staking series in the data: the on-chain leg was skipped")
                self.phase = "hedge"
                return []
            qty = _lot(view.balance("ETH", "binance") * self.chain_fraction)
            return [
                {
                    "venue_type": "transfer",
                    "from_venue": "binance",
                    "to_venue": CHAIN,
                    "asset": "ETH",
                    "amount": qty,
                }
            ]
        if self.phase == "wait":
            if view.in_transit():
                return self._hedge(market, view)
            self.phase = "stake"
        if self.phase == "stake":
            self.phase = "loop"
            eth = _lot(view.balance("ETH", CHAIN) - self.gas_reserve)
            rate = market["weeth_eth_rate"]
            return [
                {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": eth},
                {
                    "venue_type": "onchain",
                    "operation": "AAVE_SUPPLY",
                    "token": "WEETH",
                    "amount": _lot(eth / rate),
                },
            ]
        if self.phase == "loop":
            self.phase = "hedge"
            collateral_eth = view.supplied(CHAIN, "WEETH") * market["weeth_eth_rate"]
            borrow = _lot(collateral_eth * self.borrow_ltv)
            rate = market["weeth_eth_rate"]
            return [
                {"venue_type": "onchain", "operation": "AAVE_BORROW", "token": "ETH", "amount": borrow},
                {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": borrow},
                {
                    "venue_type": "onchain",
                    "operation": "AAVE_SUPPLY",
                    "token": "WEETH",
                    "amount": _lot(borrow / rate),
                },
            ]
        return self._hedge(market, view)

    def _chain_ready(self, market: dict[str, Decimal]) -> bool:
        return "weeth_eth_rate" in market and "aave_weeth_supply_index" in market

    def _venues(self, market: dict[str, Decimal]) -> list[str]:
        """The hedge venues with a perp price now; with none of them, any venue that has one (live); none
        when `hedge_venues` is empty (unhedged)."""
        if not self.hedge_venues:
            return []
        venues = [v for v in self.hedge_venues if f"{v}_eth_perp_price" in market]
        return venues or [v for v in PERP_VENUES if f"{v}_eth_perp_price" in market]

    def _hedge(self, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        """Trade the perps so that net ETH exposure returns to zero when it leaves the band; margin moves
        come first in the decision, so each order finds its margin in place."""
        venues = self._venues(market)
        if not venues:
            return []
        net = view.exposure("ETH")
        gross = sum((abs(view.position(SYMBOL, v)) for v in venues), ZERO) + abs(net)
        side, share = "SHORT", ZERO
        if abs(net) > max(self.band * gross, Decimal("0.01")):
            side = "SHORT" if net > 0 else "LONG"
            share = _lot(abs(net) / len(venues))
        moves: list[dict[str, Any]] = []
        orders: list[dict[str, Any]] = []
        for venue in venues:
            move, qty = self._margin(venue, side, share, market[f"{venue}_eth_perp_price"], view)
            if move is not None:
                moves.append(move)
            if qty > 0:
                orders.append({"venue_type": "cex", "venue": venue, "trade_type": "PERP",
                               "pair": "ETHUSDT-PERP", "side": side, "amount": qty})
        return moves + orders

    def _margin(
        self, venue: str, side: str, qty: Decimal, price: Decimal, view: StrategyView
    ) -> tuple[dict[str, Any] | None, Decimal]:
        """A USDT move into the venue's perp wallet (None when it needs none or has its own), and the
        order size its margin carries.

        The risk check asks margin equity ≥ required + added + fee, where added = the growth of |position|
        x price x the venue's initial-margin rate; below MARGIN_FLOOR x that, USDT moves from the spot
        wallet up to MARGIN_COVER x it. An order the margin cannot carry is cut down (and noted), never
        sent to be rejected."""
        rate = view.initial_margin(venue)
        current = view.position(SYMBOL, venue)
        after = current + (qty if side == "LONG" else -qty)
        added = max((abs(after) - abs(current)) * price * rate, ZERO)
        equity, required = view.margin(venue)
        move = None
        spot, perp = view.wallet(venue), view.wallet(venue, "perp")
        if spot != perp and equity < (required + added) * MARGIN_FLOOR:
            amount = min((required + added) * MARGIN_COVER - equity, view.balance("USDT", venue, spot))
            amount = amount.quantize(CENT, rounding=ROUND_DOWN)
            if amount > 0:
                move = {"venue_type": "transfer", "from_venue": venue, "to_venue": venue,
                        "from_wallet": spot, "to_wallet": perp, "asset": "USDT", "amount": amount}
                equity += amount
        if added > 0:
            most = _lot((equity - required) / (price * (rate + FEE_ALLOWANCE)))
            if most < qty:
                note = f"{venue}: hedge orders were cut to what the perp margin carries"
                if note not in self.notes:
                    self.notes.append(note)
                qty = most
        return move, qty
