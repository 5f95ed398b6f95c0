"""The demo: a delta-neutral ETH basis trade across all three interfaces and a transfer.

Buy spot ETH on Binance, send part of it to the chain wallet, stake it, supply the receipt token to
AAVE, borrow ETH against it and stake that too; short the perpetual on Bybit and OKX to hedge, and
trade the hedge back whenever net ETH exposure drifts outside a band.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ledger.strategies.base import StrategyView

STEP = Decimal("0.001")
CHAIN = "ethereum"


def _lot(x: Decimal) -> Decimal:
    return x.quantize(STEP, rounding=ROUND_DOWN)


@dataclass
class DemoBasis:
    """Parameters are fractions of what is held, so the strategy scales with `--capital`."""

    name: str = "demo_basis"
    description: str = "delta-neutral ETH basis: spot + staked/AAVE loop, hedged with Bybit/OKX perp shorts"
    capital: Decimal = Decimal(100_000)
    spot_fraction: Decimal = Decimal("0.55")  # of total capital, bought as spot ETH on Binance
    chain_fraction: Decimal = Decimal("0.6")  # of that ETH, moved on chain and staked
    borrow_ltv: Decimal = Decimal("0.35")  # ETH borrowed against the supplied receipt token
    band: Decimal = Decimal("0.005")  # re-hedge when |net ETH| > band x gross ETH
    gas_reserve: Decimal = Decimal("0.05")
    hedge_venues: tuple[str, ...] = ("bybit", "okx")
    phase: str = field(default="buy")
    notes: list[str] = field(default_factory=list)

    def config(self) -> dict[str, Any]:
        c = self.capital
        return {
            "initial_balances": {
                "binance": {"USDT": c * Decimal("0.6")},
                "bybit": {"USDT": c * Decimal("0.2")},
                "okx": {"USDT": c * Decimal("0.2")},
                CHAIN: {"ETH": Decimal("0.3")},
            },
            "fees": {
                "binance": {"SPOT": {"maker": "0.001", "taker": "0.001"}},
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
        venues = [v for v in self.hedge_venues if f"{v}_eth_perp_price" in market]
        return venues or (["binance"] if "binance_eth_perp_price" in market else [])

    def _hedge(self, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        """Trade the perps so that net ETH exposure returns to zero when it leaves the band."""
        venues = self._venues(market)
        if not venues:
            return []
        net = view.exposure("ETH")
        gross = sum((abs(view.position("ETH/USDT:USDT", v)) for v in venues), Decimal(0)) + abs(net)
        if abs(net) <= max(self.band * gross, Decimal("0.01")):
            return []
        side = "SHORT" if net > 0 else "LONG"
        share = _lot(abs(net) / len(venues))
        if share <= 0:
            return []
        price = market.get("eth_usd_price") or Decimal(0)
        funding = [m for v in venues if (m := self._margin_move(v, share * price, view))]
        if funding:
            return funding
        return [
            {
                "venue_type": "cex",
                "venue": v,
                "trade_type": "PERP",
                "pair": "ETHUSDT-PERP",
                "side": side,
                "amount": share,
            }
            for v in venues
        ]

    def _margin_move(self, venue: str, notional: Decimal, view: StrategyView) -> dict[str, Any] | None:
        """Where perps margin from a wallet of their own (Binance futures), move USDT into it first."""
        spot, perp = view.wallet(venue), view.wallet(venue, "perp")
        need = notional * Decimal("0.25")
        if spot == perp or view.balance("USDT", venue, perp) >= need:
            return None
        amount = min(need * 2, view.balance("USDT", venue, spot)).quantize(
            Decimal("0.01"), rounding=ROUND_DOWN
        )
        if amount <= 0:
            return None
        return {
            "venue_type": "transfer",
            "from_venue": venue,
            "to_venue": venue,
            "from_wallet": spot,
            "to_wallet": perp,
            "asset": "USDT",
            "amount": amount,
        }
