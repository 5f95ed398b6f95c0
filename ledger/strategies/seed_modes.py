"""The seed system's strategy modes (SPEC §11), built only on the execution interfaces.

Each mode is a small state machine over `decide(ts, market, view)`: set up the book once, then keep it
inside its limits (delta tolerance, LTV, health factor). Its parameters are the fields made from a
`Param` (`ledger strategies NAME` shows them); they are fractions of the capital, so a mode scales with
`--capital`, and `ledger.strategies.create` refuses unknown and out-of-range ones before anything is
written. Class constants (name, description, target_apy, base, needs) and run state (phase, notes,
loops) are not parameters.

Data: a mode reads only the series in its `needs`. The hedged modes `fit` `hedge_split` to the venues the
data has for the window before it is loaded: the default 40/30/30 drops a venue without perp or funding
data (no OKX ETH perp before 2024-08-01, no OKX BTC perp at all) and is renormalised over the rest
(`blocks.renormalise`: 4/7 and 3/7 to 18 decimal places, summing to exactly 1), with a note; a split the
user gave that names such a venue is refused. `pure_lending` values its ETH gas reserve at the Aave
WETH/USD oracle (the `eth_oracle` need: the price AAVE itself uses), so it needs no exchange price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from ledger.strategies import blocks as b
from ledger.strategies.base import StrategyView
from ledger.strategies.params import CAPITAL, DECIMAL, GAS_RESERVE, INT, WEIGHTS, Param

if TYPE_CHECKING:
    from ledger.marketdata import Availability

D = Decimal
SPLIT = {"binance": D("0.4"), "bybit": D("0.3"), "okx": D("0.3")}
PERP_VENUES = tuple(SPLIT)
LIQUIDATION_THRESHOLD = D("0.95")  # AAVE e-mode for weETH/WETH (seed risk parameters)
FEES = {
    "binance": {"SPOT": {"maker": "0.001", "taker": "0.001"}, "PERP": {"maker": "0.0002", "taker": "0.0005"}},
    "bybit": {"PERP": {"maker": "0.0002", "taker": "0.00055"}},
    "okx": {"PERP": {"maker": "0.0002", "taker": "0.0005"}},
}

HEDGE_SPLIT = Param("hedge_split", WEIGHTS, SPLIT, "perp shorts per venue, JSON {venue: weight}; by default "
                    "venues without data for the window are dropped and the rest renormalised",
                    choices=PERP_VENUES)
DELTA_TOLERANCE = Param("delta_tolerance", DECIMAL, D("0.02"), "re-hedge when |net delta| exceeds this "
                        "fraction of the hedged amount", low=b.ZERO, high=D("0.5"))
SPOT_SHARE = Param("spot_share", DECIMAL, D("0.5"), "share of the capital buying spot on Binance; the rest "
                   "is perp margin split by hedge_split", low=D("0.05"), high=D("0.95"))
STAKE_SHARE = Param("stake_share", DECIMAL, D("0.5"), "share of the capital bought and staked; the rest is "
                    "perp margin split by hedge_split", low=D("0.05"), high=D("0.95"))
TARGET_LTV = Param("target_ltv", DECIMAL, D("0.80"), "AAVE loan-to-value (debt / collateral in ETH) the "
                   "loop borrows up to", low=b.ZERO, high_param="max_ltv")
MAX_LTV = Param("max_ltv", DECIMAL, D("0.86"), "deleverage above this loan-to-value (below the e-mode "
                "liquidation threshold 0.95)", low=b.ZERO, high=LIQUIDATION_THRESHOLD, open_high=True)
MAX_LOOPS = Param("max_loops", INT, 8, "borrow-stake-supply turns of the leverage loop", low=b.ZERO,
                  high=D(20))


@dataclass
class Mode:
    """What every mode shares: capital, costs, notes for the report."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    target_apy: ClassVar[Decimal] = D(0)
    base: ClassVar[str] = "ETH"
    needs: ClassVar[tuple[str, ...]] = ()

    capital: Decimal = CAPITAL.field()
    phase: str = field(default="start", init=False)
    notes: list[str] = field(default_factory=list, init=False)
    explicit: frozenset[str] = field(default=frozenset(), init=False, repr=False)  # parameters given

    def data_needs(self) -> tuple[str, ...]:
        """The seed data series this mode reads."""
        return self.needs

    def fit(self, data: Availability) -> None:
        """Adapt to the venues the data has for the window; an unhedged mode needs no venue choice."""

    def config(self) -> dict[str, Any]:
        return {
            "fees": FEES,
            "risk": {"min_health_factor": "1.05"},
            "transfers": {
                "withdrawal_fees": {"binance": {"ETH": "0.0008", "USDT": "1"}},
                "delays_minutes": {"binance->ethereum": 20},
            },
        }


class Hedged:
    """Perp shorts split over venues by `hedge_split`, re-hedged when net delta leaves `delta_tolerance`;
    mixed into a mode whose dataclass declares those two parameters."""

    base: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]
    capital: Decimal
    hedge_split: Mapping[str, Decimal]
    delta_tolerance: Decimal
    notes: list[str]
    explicit: frozenset[str]

    def data_needs(self) -> tuple[str, ...]:
        """`needs` with perps and funding only at the venues with a hedge weight."""
        venues = ",".join(v for v, w in sorted(self.hedge_split.items()) if w)
        narrowed = ("_perp", "funding_")
        return tuple(f"{n}:{venues}" if any(k in n for k in narrowed) else n for n in self.needs)

    def fit(self, data: Availability) -> None:
        """Hedge only where the data has both the perp and its funding for the window (`b.fit_weights`)."""
        self.hedge_split, note = b.fit_weights(HEDGE_SPLIT, self.hedge_split, data, self.base,
                                               explicit=HEDGE_SPLIT.name in self.explicit)
        if note:
            self.notes.append(note)

    def split_capital(self, share: Decimal) -> dict[str, dict[str, Decimal]]:
        """`share` of the capital as USDT on Binance spot, the rest as perp margin by `hedge_split`."""
        balances: dict[str, dict[str, Decimal]] = {"binance": {"USDT": self.capital * share}}
        for venue, weight in sorted(self.hedge_split.items()):
            if weight:
                where = "binance.futures" if venue == "binance" else venue
                balances.setdefault(where, {})["USDT"] = self.capital * (1 - share) * weight
        return balances

    def hedged_target(self, view: StrategyView, exposure: Decimal) -> list[dict[str, Any]]:
        return b.hedge(view, self.base, -exposure, self.hedge_split, self.delta_tolerance, abs(exposure))


@dataclass
class PureLending(Mode):
    name = "pure_lending"
    description = "all USDT supplied to AAVE v3; earns the USDT reserve's index growth, pays gas"
    target_apy = D("0.05")
    # ETH (for gas and the reserve) at the Aave WETH/USD oracle: no exchange price is needed
    needs: ClassVar[tuple[str, ...]] = ("eth_oracle", "aave:usdt", "gas")

    gas_reserve: Decimal = GAS_RESERVE.but(D("0.01")).field()

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "initial_balances": {b.CHAIN: {"USDT": self.capital, "ETH": self.gas_reserve}},
        }

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        idle = view.balance("USDT", b.CHAIN)
        return [b.chain("AAVE_SUPPLY", "USDT", idle)] if idle > 0 else []


@dataclass
class Basis(Hedged, Mode):
    """Long spot, short perps split over venues; re-hedged when net delta leaves the tolerance."""

    name = "eth_basis"
    description = ("long ETH spot on Binance, short perps split by hedge_split (default 40/30/30 "
                   "Binance/Bybit/OKX), funding carry")
    target_apy = D("0.08")
    needs: ClassVar[tuple[str, ...]] = ("eth_spot:binance", "eth_perp", "funding_eth")

    spot_share: Decimal = SPOT_SHARE.field()
    hedge_split: Mapping[str, Decimal] = HEDGE_SPLIT.field()
    delta_tolerance: Decimal = DELTA_TOLERANCE.field()

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
    name = "btc_basis"
    description = ("long BTC spot on Binance, short perps split by hedge_split (default 40/30/30 "
                   "Binance/Bybit/OKX), funding carry")
    base = "BTC"
    needs: ClassVar[tuple[str, ...]] = ("btc_spot:binance", "btc_perp", "funding_btc")


@dataclass
class StakingOnly(Mode):
    """Buy ETH, move it on chain, stake it into weETH, hold it unhedged."""

    name = "eth_staking_only"
    description = "buy ETH, stake it into weETH, hold unhedged (staking yield plus ETH price)"
    target_apy = D("0.03")
    needs: ClassVar[tuple[str, ...]] = ("eth_spot:binance", "staking", "gas")

    gas_reserve: Decimal = GAS_RESERVE.field()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "initial_balances": {"binance": {"USDT": self.capital}}}

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        return self.setup(market, view, self.capital)

    def setup(self, market: dict[str, Decimal], view: StrategyView, usd: Decimal) -> list[dict[str, Any]]:
        """buy → send to the chain wallet → (arrived) stake; returns [] once staked."""
        if self.phase == "start":
            self.phase = "send"
            price = market["binance_eth_spot_price"]
            return [b.spot("binance", "ETH", "BUY", b.lot(usd / price / D("1.002")))]
        if self.phase == "send":
            self.phase = "wait"
            return [
                b.transfer("binance", b.CHAIN, "ETH", b.lot(view.balance("ETH", "binance") - D("0.0008")))
            ]
        if self.phase == "wait":
            if view.in_transit():
                return []
            self.phase = "staked"
            eth = b.lot(view.balance("ETH", b.CHAIN) - self.gas_reserve)
            return [b.chain("STAKE", "ETH", eth)] if eth > 0 else []
        return []


@dataclass
class Leveraged(StakingOnly):
    """Stake, supply weETH to AAVE, borrow ETH, loop up to the target LTV; deleverage above the max."""

    name = "eth_leveraged"
    description = "staked ETH looped on AAVE (weETH collateral, WETH debt) to a target LTV"
    target_apy = D("0.20")
    liquidation_threshold: ClassVar[Decimal] = LIQUIDATION_THRESHOLD
    needs: ClassVar[tuple[str, ...]] = ("eth_spot:binance", "aave:weth,weeth", "staking", "gas")

    target_ltv: Decimal = TARGET_LTV.field()
    max_ltv: Decimal = MAX_LTV.field()
    max_loops: int = MAX_LOOPS.field()
    loops: int = field(default=0, init=False)

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
class MarketNeutralNoLeverage(Hedged, StakingOnly):
    """Half the capital staked, the other half USDT margin for perp shorts equal to the staked ETH."""

    name = "usdt_market_neutral_no_leverage"
    description = "half staked ETH, half USDT margin for perp shorts (split by hedge_split) hedging it"
    target_apy = D("0.08")
    needs: ClassVar[tuple[str, ...]] = ("eth_spot:binance", "eth_perp", "funding_eth", "staking", "gas")

    stake_share: Decimal = STAKE_SHARE.field()
    hedge_split: Mapping[str, Decimal] = HEDGE_SPLIT.field()
    delta_tolerance: Decimal = DELTA_TOLERANCE.field()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "initial_balances": self.split_capital(self.stake_share)}

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        setup = self.setup(market, view, self.capital * self.stake_share)
        if setup:
            return setup
        exposure = view.balance("ETH", "binance") + view.balance("ETH", b.CHAIN) + b.staked_eth(view, market)
        exposure += view.in_transit().get("ETH", b.ZERO)
        return self.hedged_target(view, exposure)


@dataclass
class MarketNeutral(Hedged, Leveraged):
    """Leveraged staking hedged with perp shorts on the net ETH (collateral minus debt)."""

    name = "usdt_market_neutral"
    description = "leveraged staking (AAVE loop) hedged with perp shorts (split by hedge_split) on net ETH"
    target_apy = D("0.15")
    needs: ClassVar[tuple[str, ...]] = ("eth_spot:binance", "eth_perp", "funding_eth", "aave:weth,weeth",
                                        "staking", "gas")

    stake_share: Decimal = STAKE_SHARE.field()
    hedge_split: Mapping[str, Decimal] = HEDGE_SPLIT.field()
    delta_tolerance: Decimal = DELTA_TOLERANCE.field()

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
        return self.hedged_target(view, net)


MODES = (PureLending, BtcBasis, Basis, StakingOnly, Leveraged, MarketNeutralNoLeverage, MarketNeutral)
