"""`CEXExecutionInterface`: spot and perpetual orders on Binance, Bybit and OKX.

Backtest and dry-run modes fill through `SimulatedCEX`; live mode sends through ccxt (the live
backend plugs in behind the same calls).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aggregates.errors import DataError
from executors.base import BackedInterface, settle
from executors.instructions import Invalid, parse_order
from executors.market import normalise
from executors.simulated.cex import SimulatedCEX

CEX_VENUES = ("binance", "bybit", "okx")


class CEXExecutionInterface(BackedInterface):
    """CEX execution interface for centralized exchange trading."""

    interface_type = "cex"
    venue_kind, other_kind = "cex", "onchain"

    def __init__(self, execution_mode: str, config: dict[str, Any]) -> None:
        super().__init__(execution_mode, config)
        self.exchange_clients: dict[str, Any] = {}
        self.backend: Any = SimulatedCEX()
        if execution_mode == "live":
            self._init_exchange_clients()

    def _init_exchange_clients(self) -> None:
        """Live mode: the ccxt-backed venue replaces the simulator behind the same interface."""
        from executors.live import LiveCEX

        self.backend = LiveCEX(self.config)
        self.exchange_clients = self.backend.clients

    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """Place one spot or perpetual order; a REJECTED result (recorded) when the venue is known."""
        venue, iid, refused = self.admit(instruction)
        if refused is not None:
            return refused
        try:
            order = parse_order(instruction, iid, venue)
            market = normalise(market_data)
        except Invalid as e:
            return self.invalid(venue, iid, e, instruction)
        except DataError as e:
            return self.reject(venue, iid, "invalid_field", str(e), instruction)
        result: dict[str, Any] = await settle(
            self.running().place(self, order, market, instruction)
        )
        return result

    async def get_balance(self, asset: str, venue: str | None = None, refresh: bool = False) -> Decimal:
        """Held amount of `asset` from the ledger; `refresh=True` reconciles with the venue(s) first."""
        if refresh:
            await self.refresh(venue)
        return await super().get_balance(asset, venue)

    async def get_position(
        self, symbol: str, venue: str | None = None, refresh: bool = False
    ) -> dict[str, Any]:
        """Position in `symbol` from the ledger; `refresh=True` reconciles with the venue(s) first."""
        if refresh:
            await self.refresh(venue)
        return await super().get_position(symbol, venue)

    async def refresh(self, venue: str | None = None) -> dict[str, Any]:
        """Reconcile the ledger with the venue(s) (live mode); simulated venues have nothing to fetch."""
        if venue is not None:
            venue = self.known_venue(venue, "venue")
        refresh = getattr(self.running(), "refresh", None)
        report: dict[str, Any] = await settle(refresh(self, venue)) if refresh is not None else {}
        return report

    async def cancel_all_orders(self, venue: str | None = None) -> dict[str, Any]:
        """Cancel every resting order (at one venue, or everywhere)."""
        if venue is not None:
            venue = self.known_venue(venue, "venue")
        cancelled = await settle(self.running().cancel_all(self, venue))
        for iid in cancelled:
            self.notify({"status": "CANCELLED", "instruction_id": iid})
        return {"status": "COMPLETED", "cancelled_orders": cancelled, "execution_mode": self.execution_mode}
