"""`CEXExecutionInterface`: spot and perpetual orders on Binance, Bybit and OKX.

Backtest and dry-run modes fill through `SimulatedCEX`; live mode sends through ccxt (the live
backend plugs in behind the same calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregates.errors import InstructionError, LedgerError
from executors.base import BaseExecutionInterface
from executors.instructions import Invalid, parse_order
from executors.market import normalise
from executors.simulated.cex import SimulatedCEX

CEX_VENUES = ("binance", "bybit", "okx")


class CEXExecutionInterface(BaseExecutionInterface):
    """CEX execution interface for centralized exchange trading."""

    interface_type = "cex"

    def __init__(self, execution_mode: str, config: dict[str, Any]) -> None:
        super().__init__(execution_mode, config)
        self.exchange_clients: dict[str, Any] = {}
        self.backend: Any = SimulatedCEX()
        if execution_mode == "live":
            self._init_exchange_clients()

    def _init_exchange_clients(self) -> None:
        """Live mode: the ccxt-backed venue replaces the simulator behind the same interface."""
        self.backend = None

    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """Place one spot or perpetual order; a REJECTED result (recorded) when the venue is known."""
        if not isinstance(instruction, Mapping):
            raise InstructionError("instruction", f"expected a dict, got {type(instruction).__name__}")
        venue = self.known_venue(instruction.get("venue"), "venue")
        iid = self.instruction_id(instruction)
        if self.logger.venue_type(venue) != "cex":
            return self.reject(
                venue,
                iid,
                "wrong_venue_type",
                f"venue: {venue} is not a CEX venue (use venue_type 'onchain')",
                instruction,
            )
        try:
            order = parse_order(instruction, iid, venue)
        except Invalid as e:
            return self.invalid(venue, iid, e, instruction)
        return self._backend().place(self, order, normalise(market_data), instruction)  # type: ignore[no-any-return]

    async def cancel_all_orders(self, venue: str | None = None) -> dict[str, Any]:
        """Cancel every resting order (at one venue, or everywhere)."""
        if venue is not None:
            venue = self.known_venue(venue, "venue")
        cancelled = self._backend().cancel_all(self, venue)
        for iid in cancelled:
            self.notify({"status": "CANCELLED", "instruction_id": iid})
        return {"status": "COMPLETED", "cancelled_orders": cancelled, "execution_mode": self.execution_mode}

    async def advance(self, ts: datetime, market: dict[str, Decimal]) -> None:
        self._backend().advance(self, ts, market)

    def next_due(self) -> datetime | None:
        if self.backend is None:
            return None
        return self.backend.next_due(self)  # type: ignore[no-any-return]

    def _backend(self) -> Any:
        if self.backend is None:
            raise LedgerError(
                "live CEX execution is not configured in this build: run in backtest or dry-run mode"
            )
        return self.backend
