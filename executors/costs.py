"""Cost models for simulated execution: execution cost in bps, maker/taker fees, gas, transfer fees/delays.

With no configuration the seed system's defaults hold: 5 bps on every venue and trade type and no
fees (SPEC §12.12), so a 1 ETH spot buy at 3000 fills at 3001.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from aggregates.errors import InstructionError
from aggregates.values import BALANCE, GAS_PRICE, Bound

DEFAULT_BPS = Decimal(5)
ZERO = Decimal(0)
# Gas units per operation, the figures AAVE v3 and Lido-style staking spend on mainnet.
GAS_UNITS = {
    "AAVE_SUPPLY": 210_000,
    "AAVE_WITHDRAW": 190_000,
    "AAVE_BORROW": 260_000,
    "AAVE_REPAY": 180_000,
    "STAKE": 90_000,
    "UNSTAKE": 120_000,
    "CLAIM": 80_000,
    "WRAP": 45_000,
    "APPROVE": 46_000,
    "TRANSFER_ETH": 21_000,
    "TRANSFER_ERC20": 65_000,
    "LIQUIDATION": 0,
}
# Buckets are (notional in USD up to, bps); the last bucket covers anything larger.
Buckets = tuple[tuple[Decimal, Decimal], ...]


class ConfigError(InstructionError):
    """A configuration value is malformed; the message names the key."""


def setting(value: Any, key: str, bound: Bound = BALANCE) -> Decimal:
    """A cost setting inside `bound` (not negative, by default); ConfigError naming `key` otherwise."""
    try:
        return bound.parse(value, key)
    except InstructionError as e:
        raise ConfigError(key, str(e).split(": ", 1)[1]) from None


def _buckets(value: Any, key: str) -> Buckets:
    if isinstance(value, Mapping):
        rows = sorted(((setting(k, key), setting(v, key)) for k, v in value.items()), key=lambda r: r[0])
        if not rows:
            raise ConfigError(key, "needs at least one bucket")
        return tuple(rows)
    return ((Decimal("Infinity"), setting(value, key)),)


@dataclass(frozen=True)
class CostModel:
    """Execution cost, fees, gas and transfer costs, looked up per venue and trade type."""

    default_bps: Decimal = DEFAULT_BPS
    execution: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    fees: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    gas_units: dict[str, int] = field(default_factory=lambda: dict(GAS_UNITS))
    default_gas_gwei: Decimal = Decimal(10)
    withdrawal_fees: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    transfer_delay: timedelta = timedelta(minutes=30)
    transfer_delays: dict[tuple[str, str], timedelta] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CostModel:
        """Read `execution_costs`, `fees`, `gas` and `transfers` from an engine config."""
        execution: dict[tuple[str, str], Buckets] = {}
        costs = config.get("execution_costs") or {}
        default = setting(costs.get("default_bps", DEFAULT_BPS), "execution_costs.default_bps")
        for venue, by_type in sorted(costs.items()):
            if venue == "default_bps":
                continue
            if not isinstance(by_type, Mapping):
                raise ConfigError(f"execution_costs.{venue}", "expected a table of trade types")
            for trade_type, value in sorted(by_type.items()):
                key = f"execution_costs.{venue}.{trade_type}"
                execution[(venue, trade_type.upper())] = _buckets(value, key)
        fees: dict[tuple[str, str, str], Decimal] = {}
        for venue, table in sorted((config.get("fees") or {}).items()):
            if not isinstance(table, Mapping):
                raise ConfigError(f"fees.{venue}", "expected maker/taker rates")
            for k, v in sorted(table.items()):
                if isinstance(v, Mapping):
                    for liq, rate in sorted(v.items()):
                        fees[(venue, k.upper(), liq)] = setting(rate, f"fees.{venue}.{k}.{liq}")
                else:
                    fees[(venue, "*", k)] = setting(v, f"fees.{venue}.{k}")
        gas = config.get("gas") or {}
        units = dict(GAS_UNITS)
        for op, n in sorted((gas.get("units") or {}).items()):
            units[op.upper()] = int(setting(n, f"gas.units.{op}"))
        transfers = config.get("transfers") or {}
        withdrawal: dict[tuple[str, str], Decimal] = {}
        for venue, table in sorted((transfers.get("withdrawal_fees") or {}).items()):
            for asset, fee in sorted(table.items()):
                key = f"transfers.withdrawal_fees.{venue}.{asset}"
                withdrawal[(venue, asset.upper())] = setting(fee, key)
        delays: dict[tuple[str, str], timedelta] = {}
        for route, minutes in sorted((transfers.get("delays_minutes") or {}).items()):
            src, _, dst = route.partition("->")
            if not dst:
                raise ConfigError(f"transfers.delays_minutes.{route}", "expected 'from->to'")
            delays[(src.strip(), dst.strip())] = timedelta(minutes=float(setting(minutes, route)))
        return cls(
            default_bps=default,
            execution=execution,
            fees=fees,
            gas_units=units,
            default_gas_gwei=setting(gas.get("default_gwei", 10), "gas.default_gwei", GAS_PRICE),
            withdrawal_fees=withdrawal,
            transfer_delay=timedelta(
                minutes=float(setting(transfers.get("delay_minutes", 30), "transfers.delay_minutes"))
            ),
            transfer_delays=delays,
        )

    def execution_bps(self, venue: str, trade_type: str, notional_usd: Decimal) -> Decimal:
        """The execution cost for an order of `notional_usd` (most specific table entry wins)."""
        kind = trade_type.upper()
        for key in ((venue, kind), (venue, "*"), ("*", kind), ("*", "*")):
            buckets = self.execution.get(key)
            if buckets is not None:
                for upto, bps in buckets:
                    if notional_usd <= upto:
                        return bps
                return buckets[-1][1]
        return self.default_bps

    def fee_rate(self, venue: str, trade_type: str, liquidity: str) -> Decimal:
        kind = trade_type.upper()
        for key in ((venue, kind, liquidity), (venue, "*", liquidity)):
            rate = self.fees.get(key)
            if rate is not None:
                return rate
        return ZERO

    def gas_fee(self, operation: str, gas_price_gwei: Decimal | None) -> tuple[int, int, Decimal]:
        """(gas units, gas price in wei, fee in ETH) for one transaction of `operation`."""
        units = self.gas_units.get(operation, 100_000)
        gwei = gas_price_gwei if gas_price_gwei is not None else self.default_gas_gwei
        wei = int(gwei * Decimal(10) ** 9)
        return units, wei, Decimal(units * wei) / Decimal(10) ** 18

    def withdrawal_fee(self, venue: str, asset: str) -> Decimal:
        return self.withdrawal_fees.get((venue, asset.upper()), ZERO)

    def delay(self, from_venue: str, to_venue: str) -> timedelta:
        if from_venue == to_venue:
            return timedelta(0)
        return self.transfer_delays.get((from_venue, to_venue), self.transfer_delay)


# The seed system's intended size-bucketed table, shipped as an example (examples/costs.toml too).
SEED_BUCKETED: dict[str, Any] = {
    "execution_costs": {
        "*": {
            "SPOT": {"10000": 5, "100000": 7, "1000000": 13},
            "PERP": {"10000": 3, "100000": 4, "1000000": 8},
        },
    },
}
