"""`OnChainExecutionInterface`: AAVE v3, staking and transfers at the chain venue.

Backtest and dry-run modes run through `SimulatedChain`; live mode sends through web3.py (the live
backend plugs in behind the same calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregates.errors import InstructionError, LedgerError
from executors.base import BaseExecutionInterface
from executors.instructions import Invalid, parse_chain
from executors.market import normalise
from executors.simulated.chain import SimulatedChain


class OnChainExecutionInterface(BaseExecutionInterface):
    """On-chain execution interface for blockchain operations."""

    interface_type = "onchain"

    def __init__(self, execution_mode: str, config: dict[str, Any]) -> None:
        super().__init__(execution_mode, config)
        self.web3_clients: dict[str, Any] = {}
        self.contracts: dict[str, Any] = {}
        self.backend: Any = SimulatedChain(config)
        if execution_mode == "live":
            self._init_web3_clients()

    def _init_web3_clients(self) -> None:
        """Live mode: the web3-backed chain replaces the simulator behind the same interface."""
        self.backend = None

    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """Run one on-chain operation; a REJECTED result (recorded) for bad input or failed checks."""
        if not isinstance(instruction, Mapping):
            raise InstructionError("instruction", f"expected a dict, got {type(instruction).__name__}")
        venue = self.known_venue(instruction.get("venue") or self.chain_venue, "venue")
        iid = self.instruction_id(instruction)
        if self.logger.venue_type(venue) != "onchain":
            return self.reject(
                venue,
                iid,
                "wrong_venue_type",
                f"venue: {venue} is not the chain venue (use venue_type 'cex')",
                instruction,
            )
        try:
            op = parse_chain(instruction, iid, venue)
        except Invalid as e:
            return self.invalid(venue, iid, e, instruction)
        return self._backend().execute(self, op, normalise(market_data), instruction)  # type: ignore[no-any-return]

    async def advance(self, ts: datetime, market: dict[str, Decimal]) -> None:
        self._backend().advance(self, ts, market)

    def next_due(self) -> datetime | None:
        if self.backend is None:
            return None
        return self.backend.next_due(self)  # type: ignore[no-any-return]

    def _backend(self) -> Any:
        if self.backend is None:
            raise LedgerError(
                "live on-chain execution is not configured in this build: run in backtest or dry-run mode"
            )
        return self.backend
