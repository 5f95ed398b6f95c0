"""The seed system's strategy modes (SPEC §11), built only on the execution interfaces.

Each mode is a small state machine over `decide(ts, market, view)`: set up the book once, then keep it
inside its limits (delta tolerance, LTV, health factor). Parameters are fractions of the capital, so a
mode scales with `--capital`; `validate()` refuses out-of-range parameters before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.strategies import blocks as b
from ledger.strategies.base import StrategyView

D = Decimal
SPLIT = {"binance": D("0.4"), "bybit": D("0.3"), "okx": D("0.3")}
FEES = {
    "binance": {"SPOT": {"maker": "0.001", "taker": "0.001"}, "PERP": {"maker": "0.0002", "taker": "0.0005"}},
    "bybit": {"PERP": {"maker": "0.0002", "taker": "0.00055"}},
    "okx": {"PERP": {"maker": "0.0002", "taker": "0.0005"}},
}


@dataclass
class Mode:
    """What every mode shares: capital, costs, the gas reserve, notes for the report."""

    name: str = ""
    description: str = ""
    target_apy: Decimal = Decimal(0)
    capital: Decimal = Decimal(100_000)
    gas_reserve: Decimal = Decimal("0.05")  # ETH kept on chain for gas
    delta_tolerance: Decimal = Decimal("0.02")  # re-hedge when |net delta| > tolerance x gross
    hedge_split: dict[str, Decimal] = field(default_factory=lambda: dict(SPLIT))
    base: str = "ETH"
    phase: str = "start"
    notes: list[str] = field(default_factory=list)

    needs: tuple[str, ...] = ()

    def split_capital(self, share: Decimal) -> dict[str, dict[str, Decimal]]:
        """`share` of the capital as USDT on Binance spot, the rest as perp margin by `hedge_split`."""
        balances: dict[str, dict[str, Decimal]] = {"binance": {"USDT": self.capital * share}}
        for venue, weight in sorted(self.hedge_split.items()):
            if weight:
                where = "binance.futures" if venue == "binance" else venue
                balances.setdefault(where, {})["USDT"] = self.capital * (1 - share) * weight
        return balances

    def data_needs(self) -> tuple[str, ...]:
        """The seed data series this mode reads; perps and funding only at venues with a hedge weight."""
        venues = ",".join(v for v, w in sorted(self.hedge_split.items()) if w)
        narrowed = ("_perp", "funding_")
        return tuple(f"{n}:{venues}" if any(k in n for k in narrowed) else n for n in self.needs)

    def validate(self) -> None:
        b.check_fraction("delta_tolerance", self.delta_tolerance, b.ZERO, D("0.5"))
        b.check_weights("hedge_split", self.hedge_split)
        if self.capital <= 0:
            raise b.StrategyConfigError(f"capital: must be positive, got {self.capital}")

    def config(self) -> dict[str, Any]:
        return {
            "fees": FEES,
            "risk": {"min_health_factor": "1.05"},
            "transfers": {
                "withdrawal_fees": {"binance": {"ETH": "0.0008", "USDT": "1"}},
                "delays_minutes": {"binance->ethereum": 20},
            },
        }

    # ---- shared steps ------------------------------------------------------------------------------

    def buy_and_send(
        self, market: dict[str, Decimal], view: StrategyView, usd: Decimal
    ) -> list[dict[str, Any]]:
        price = market["binance_eth_spot_price"]
        return [b.spot("binance", "ETH", "BUY", b.lot(usd / price / D("1.002")))]

    def stake_all(self, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        eth = b.lot(view.balance("ETH", b.CHAIN) - self.gas_reserve)
        return [b.chain("STAKE", "ETH", eth)] if eth > 0 else []

    def hedged_target(
        self, view: StrategyView, market: dict[str, Decimal], weights: dict[str, Decimal], exposure: Decimal
    ) -> list[dict[str, Any]]:
        return b.hedge(view, self.base, -exposure, weights, self.delta_tolerance, abs(exposure))


@dataclass
class PureLending(Mode):
    name: str = "pure_lending"
    description: str = "all USDT supplied to AAVE v3; earns the USDT reserve's index growth, pays gas"
    target_apy: Decimal = Decimal("0.05")
    gas_reserve: Decimal = Decimal("0.01")
    needs: tuple[str, ...] = ("eth_spot", "aave", "gas")

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "initial_balances": {b.CHAIN: {"USDT": self.capital, "ETH": self.gas_reserve}},
        }

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        idle = view.balance("USDT", b.CHAIN)
        return [b.chain("AAVE_SUPPLY", "USDT", idle)] if idle > 0 else []


@dataclass
class Basis(Mode):
    """Long spot, equal short perp split over venues; re-hedged when net delta leaves the tolerance."""

    name: str = "eth_basis"
    description: str = "long ETH spot on Binance, short perps 40/30/30 Binance/Bybit/OKX, funding carry"
    target_apy: Decimal = Decimal("0.08")
    spot_share: Decimal = Decimal("0.5")  # of capital buying spot; the rest is perp margin by split
    needs: tuple[str, ...] = ("eth_spot", "eth_perp", "funding_eth")

    def validate(self) -> None:
        super().validate()
        b.check_fraction("spot_share", self.spot_share, D("0.05"), D("0.95"))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "initial_balances": self.split_capital(self.spot_share)}

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        key = f"binance_{self.base.lower()}_spot_price"
        if self.phase == "start":
            self.phase = "run"
            qty = b.lot(self.capital * self.spot_share / market[key] / D("1.002"), "0.00001")
            return [b.spot("binance", self.base, "BUY", qty)]
        held = view.balance(self.base, "binance")
        return b.hedge(view, self.base, -held, self.hedge_split, self.delta_tolerance, held)


@dataclass
class BtcBasis(Basis):
    name: str = "btc_basis"
    description: str = "long BTC spot on Binance, short perps 40/30/30 Binance/Bybit/OKX, funding carry"
    base: str = "BTC"
    needs: tuple[str, ...] = ("btc_spot", "btc_perp", "funding_btc")


@dataclass
class StakingOnly(Mode):
    """Buy ETH, move it on chain, stake it into weETH, hold it unhedged."""

    name: str = "eth_staking_only"
    description: str = "buy ETH, stake it into weETH, hold unhedged (staking yield plus ETH price)"
    target_apy: Decimal = Decimal("0.03")
    needs: tuple[str, ...] = ("eth_spot", "staking", "gas")

    def config(self) -> dict[str, Any]:
        return {**super().config(), "initial_balances": {"binance": {"USDT": self.capital}}}

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        return self.setup(market, view, self.capital)

    def setup(self, market: dict[str, Decimal], view: StrategyView, usd: Decimal) -> list[dict[str, Any]]:
        """buy → send to the chain wallet → (arrived) stake; returns [] once staked."""
        if self.phase == "start":
            self.phase = "send"
            return self.buy_and_send(market, view, usd)
        if self.phase == "send":
            self.phase = "wait"
            return [
                b.transfer("binance", b.CHAIN, "ETH", b.lot(view.balance("ETH", "binance") - D("0.0008")))
            ]
        if self.phase == "wait":
            if view.in_transit():
                return []
            self.phase = "staked"
            return self.stake_all(market, view)
        return []


@dataclass
class Leveraged(StakingOnly):
    """Stake, supply weETH to AAVE, borrow ETH, loop up to the target LTV; deleverage above the max."""

    name: str = "eth_leveraged"
    description: str = "staked ETH looped on AAVE (weETH collateral, WETH debt) to a target LTV"
    target_apy: Decimal = Decimal("0.20")
    target_ltv: Decimal = Decimal("0.80")
    max_ltv: Decimal = Decimal("0.86")
    liquidation_threshold: Decimal = Decimal("0.95")  # AAVE e-mode for weETH/WETH (seed risk parameters)
    max_loops: int = 8
    loops: int = 0
    needs: tuple[str, ...] = ("eth_spot", "aave", "staking", "gas")

    def validate(self) -> None:
        super().validate()
        b.check_fraction("target_ltv", self.target_ltv, b.ZERO, self.max_ltv)
        if self.max_ltv >= self.liquidation_threshold:
            raise b.StrategyConfigError(
                f"max_ltv: {self.max_ltv} must be below the liquidation threshold "
                f"{self.liquidation_threshold}"
            )
        if not 0 <= self.max_loops <= 20:
            raise b.StrategyConfigError(f"max_loops: must be between 0 and 20, got {self.max_loops}")

    def config(self) -> dict[str, Any]:
        base = super().config()
        base["risk"] = {
            "min_health_factor": "1.05",
            "liquidation_thresholds": {"WEETH": str(self.liquidation_threshold)},
        }
        return base

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        return self.lever(market, view, self.capital)

    def lever(self, market: dict[str, Decimal], view: StrategyView, usd: Decimal) -> list[dict[str, Any]]:
        if self.phase != "staked" or view.in_transit():
            return self.setup(market, view, usd)
        idle = view.balance("WEETH", b.CHAIN)
        if idle >= D("0.000001"):
            return [b.chain("AAVE_SUPPLY", "WEETH", b.lot(idle, "0.000001"))]
        current = b.ltv(view, market)
        if current > self.max_ltv:
            return self.deleverage(market, view)
        if self.loops < self.max_loops:
            step = b.loop_step(view, market, self.target_ltv)
            self.loops += 1 if step else self.max_loops
            return step
        return []

    def deleverage(self, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        """Repay from idle ETH first; otherwise withdraw weETH and unstake it (repaid when claimed)."""
        spare = b.lot(view.balance("ETH", b.CHAIN) - self.gas_reserve)
        debt = view.borrowed(b.CHAIN, "WETH")
        if spare > 0 and debt > 0:
            return [b.chain("AAVE_REPAY", "ETH", min(spare, b.lot(debt)))]
        rate = market["weeth_eth_rate"]
        excess = debt - self.target_ltv * view.supplied(b.CHAIN, "WEETH") * rate
        units = b.lot(excess / rate / (1 - self.target_ltv), "0.000001")
        if units <= 0 or view.in_transit():
            return []
        self.notes.append(f"LTV {b.ltv(view, market):.4f} above {self.max_ltv}: unstaking {units} weETH")
        return [b.chain("AAVE_WITHDRAW", "WEETH", units), b.chain("UNSTAKE", "WEETH", units)]


@dataclass
class MarketNeutralNoLeverage(StakingOnly):
    """Half the capital staked, the other half USDT margin for perp shorts equal to the staked ETH."""

    name: str = "usdt_market_neutral_no_leverage"
    description: str = "half staked ETH, half USDT margin for perp shorts 40/30/30 hedging it"
    target_apy: Decimal = Decimal("0.08")
    stake_share: Decimal = Decimal("0.5")
    needs: tuple[str, ...] = ("eth_spot", "eth_perp", "funding_eth", "staking", "gas")

    def validate(self) -> None:
        super().validate()
        b.check_fraction("stake_share", self.stake_share, D("0.05"), D("0.95"))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "initial_balances": self.split_capital(self.stake_share)}

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        setup = self.setup(market, view, self.capital * self.stake_share)
        if setup:
            return setup
        exposure = view.balance("ETH", "binance") + view.balance("ETH", b.CHAIN) + b.staked_eth(view, market)
        exposure += view.in_transit().get("ETH", b.ZERO)
        return self.hedged_target(view, market, self.hedge_split, exposure)


@dataclass
class MarketNeutral(Leveraged):
    """Leveraged staking hedged with perp shorts on the net ETH (collateral minus debt)."""

    name: str = "usdt_market_neutral"
    description: str = "leveraged staking (AAVE loop) hedged with perp shorts 40/30/30 on the net ETH"
    target_apy: Decimal = Decimal("0.15")
    stake_share: Decimal = Decimal("0.5")
    needs: tuple[str, ...] = ("eth_spot", "eth_perp", "funding_eth", "aave", "staking", "gas")

    def config(self) -> dict[str, Any]:
        base = super().config()
        base["initial_balances"] = self.split_capital(self.stake_share)
        return base

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        steps = self.lever(market, view, self.capital * self.stake_share)
        if steps:
            return steps
        net = view.balance("ETH", b.CHAIN) + b.staked_eth(view, market) - view.borrowed(b.CHAIN, "WETH")
        net += view.balance("ETH", "binance")
        return self.hedged_target(view, market, self.hedge_split, net)


MODES = (PureLending, BtcBasis, Basis, StakingOnly, Leveraged, MarketNeutralNoLeverage, MarketNeutral)
