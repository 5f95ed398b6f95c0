"""What a strategy is: a name, a config, and `decide` — instructions from the market and the ledger's view.

Strategies never touch the ledger: they read through `StrategyView` and return instruction dicts,
which the runner sends through the engine (and so through the execution interfaces).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol


class StrategyView:
    """Read-only answers a strategy may ask for, from the engine's projection."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    @property
    def monitor(self) -> Any:
        return self._engine.position_monitor

    def balance(self, asset: str, venue: str | None = None, wallet: str | None = None) -> Decimal:
        return self.monitor.balance(asset, venue, wallet)  # type: ignore[no-any-return]

    def position(self, symbol: str, venue: str | None = None) -> Decimal:
        return Decimal(self.monitor.position(symbol, venue)["amount"])

    def exposure(self, asset: str) -> Decimal:
        return self.monitor.exposure().get(asset, Decimal(0))  # type: ignore[no-any-return]

    def supplied(self, venue: str, asset: str) -> Decimal:
        return self.monitor.supplied(venue, asset)  # type: ignore[no-any-return]

    def borrowed(self, venue: str, asset: str) -> Decimal:
        return self.monitor.borrowed(venue, asset)  # type: ignore[no-any-return]

    def in_transit(self) -> dict[str, Decimal]:
        from projections import reports  # here, so that listing strategies does not load the SQL views

        return reports.in_transit(self.monitor.state)

    def margin_use(self, venue: str) -> Decimal | None:
        return self.monitor.risk()["margin_use"].get(venue)  # type: ignore[no-any-return]

    def health_factor(self, venue: str) -> Decimal | None:
        return self.monitor.risk()["health_factor"].get(venue)  # type: ignore[no-any-return]

    def wallet(self, venue: str, market_type: str = "spot") -> str:
        return self._engine.execution_interfaces["cex"].wallet(venue, market_type)  # type: ignore[no-any-return]

    def initial_margin(self, venue: str) -> Decimal:
        """The initial-margin rate the venue's perp orders are checked against (the config's `risk`)."""
        return self._engine.execution_interfaces["cex"].limits.margin_rate(venue)  # type: ignore[no-any-return]

    def margin(self, venue: str) -> tuple[Decimal, Decimal]:
        """(margin equity, initial margin required) of the venue's perp wallet at the current marks."""
        equity, required = self.monitor.margin_equity(venue, self.wallet(venue, "perp"), self._engine.market)
        return equity, required


class Strategy(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]

    def config(self) -> dict[str, Any]:
        """The engine config this strategy runs with by default (balances, costs, fees, risk)."""
        ...

    def decide(self, ts: datetime, market: dict[str, Decimal], view: StrategyView) -> list[dict[str, Any]]:
        """Instructions for now; called again after they execute until it returns none."""
        ...
