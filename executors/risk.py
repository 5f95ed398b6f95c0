"""Pre-trade risk checks: each failure is a (code, reason) the interface records as a rejection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from executors.costs import ConfigError, setting

ZERO = Decimal(0)
Check = tuple[str, str] | None
# AAVE v3 Ethereum liquidation thresholds and LTVs (standard mode; e-mode raises both for ETH pairs).
THRESHOLDS = {
    "WETH": Decimal("0.83"),
    "ETH": Decimal("0.83"),
    "WEETH": Decimal("0.78"),
    "WSTETH": Decimal("0.81"),
    "USDT": Decimal("0.78"),
    "USDC": Decimal("0.78"),
    "WBTC": Decimal("0.78"),
}


@dataclass(frozen=True)
class RiskLimits:
    """Limits from the config's `risk` table (all optional)."""

    max_order_notional: Decimal | None = None
    venue_max_notional: dict[str, Decimal] = field(default_factory=dict)
    max_slippage_bps: Decimal | None = None
    min_health_factor: Decimal = Decimal("1.1")
    initial_margin: dict[str, Decimal] = field(default_factory=dict)
    default_initial_margin: Decimal = Decimal("0.1")
    maintenance_margin: Decimal = Decimal("0.005")
    liquidation_thresholds: dict[str, Decimal] = field(default_factory=lambda: dict(THRESHOLDS))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RiskLimits:
        risk = config.get("risk") or {}
        if not isinstance(risk, Mapping):
            raise ConfigError("risk", "expected a table")

        def opt(key: str) -> Decimal | None:
            return setting(risk[key], f"risk.{key}") if risk.get(key) is not None else None

        thresholds = dict(THRESHOLDS)
        for asset, value in sorted((risk.get("liquidation_thresholds") or {}).items()):
            thresholds[asset.upper()] = setting(value, f"risk.liquidation_thresholds.{asset}")
        margin = risk.get("initial_margin", "0.1")
        per_venue: dict[str, Decimal] = {}
        if isinstance(margin, Mapping):
            per_venue = {v: setting(x, f"risk.initial_margin.{v}") for v, x in sorted(margin.items())}
            margin = "0.1"
        return cls(
            max_order_notional=opt("max_order_notional"),
            venue_max_notional={
                v: setting(x, f"risk.venue_max_notional.{v}")
                for v, x in sorted((risk.get("venue_max_notional") or {}).items())
            },
            max_slippage_bps=opt("max_slippage_bps"),
            min_health_factor=setting(risk.get("min_health_factor", "1.1"), "risk.min_health_factor"),
            initial_margin=per_venue,
            default_initial_margin=setting(margin, "risk.initial_margin"),
            maintenance_margin=setting(risk.get("maintenance_margin", "0.005"), "risk.maintenance_margin"),
            liquidation_thresholds=thresholds,
        )

    def margin_rate(self, venue: str) -> Decimal:
        return self.initial_margin.get(venue, self.default_initial_margin)


def notional(limits: RiskLimits, venue: str, notional_usd: Decimal) -> Check:
    cap = limits.venue_max_notional.get(venue, limits.max_order_notional)
    if cap is not None and notional_usd > cap:
        return "notional_limit", f"amount: order notional {notional_usd:.2f} USD is above the limit {cap}"
    return None


def slippage(limits: RiskLimits, bps: Decimal, requested: Decimal | None) -> Check:
    cap = requested if requested is not None else limits.max_slippage_bps
    if cap is not None and bps > cap:
        return "slippage_limit", f"max_slippage_bps: expected slippage {bps} bps is above {cap} bps"
    return None


def balance(have: Decimal, need: Decimal, asset: str, where: str) -> Check:
    if need > have:
        return "insufficient_balance", f"amount: needs {need} {asset} at {where}, holds {have}"
    return None


def reduce_only(current: Decimal, side: str, amount: Decimal) -> Check:
    signed = amount if side == "buy" else -amount
    after = current + signed
    if (
        current == 0
        or (current > 0) == (signed > 0)
        or abs(after) > abs(current)
        or (after != 0 and (after > 0) != (current > 0))
    ):
        return "reduce_only", f"reduce_only: a {side} of {amount} would not reduce the position {current}"
    return None


def margin(equity: Decimal, required: Decimal, venue: str) -> Check:
    if required > equity:
        return (
            "insufficient_margin",
            f"amount: needs {required:.2f} of initial margin at {venue}, margin equity is {equity:.2f}",
        )
    return None


def health_factor(collateral: Decimal, debt: Decimal, minimum: Decimal) -> Check:
    if debt <= 0:
        return None
    hf = collateral / debt
    if hf < minimum:
        return "health_factor", f"amount: health factor after the borrow would be {hf:.4f}, below {minimum}"
    return None
