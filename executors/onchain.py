"""`OnChainExecutionInterface`: AAVE v3, staking and transfers at the chain venue.

Backtest and dry-run modes run through `SimulatedChain`; live mode sends through web3.py (the live
backend plugs in behind the same calls).
"""

from __future__ import annotations

from typing import Any

from aggregates.errors import DataError
from executors.base import BackedInterface, settle
from executors.instructions import Invalid, parse_chain
from executors.market import normalise
from executors.simulated.chain import SimulatedChain


class OnChainExecutionInterface(BackedInterface):
    """On-chain execution interface for blockchain operations."""

    interface_type = "onchain"
    venue_kind, other_kind = "onchain", "cex"

    def __init__(self, execution_mode: str, config: dict[str, Any]) -> None:
        super().__init__(execution_mode, config)
        self.web3_clients: dict[str, Any] = {}
        self.contracts: dict[str, Any] = {}
        self.backend: Any = SimulatedChain(config)
        if execution_mode == "live":
            self._init_web3_clients()

    def _init_web3_clients(self) -> None:
        """Live mode: the web3-backed chain replaces the simulator behind the same interface."""
        from executors.live.chain import LiveChain, live_chain  # web3 only when trading live

        self.backend = live_chain(self.config)
        if isinstance(self.backend, LiveChain):
            self.web3_clients[self.chain_venue] = self.backend.client.w3

    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """Run one on-chain operation; a REJECTED result (recorded) for bad input or failed checks."""
        venue, iid, refused = self.admit(instruction, self.chain_venue)
        if refused is not None:
            return refused
        try:
            op = parse_chain(instruction, iid, venue)
            market = normalise(market_data)
        except Invalid as e:
            return self.invalid(venue, iid, e, instruction)
        except DataError as e:
            return self.reject(venue, iid, "invalid_field", str(e), instruction)
        result: dict[str, Any] = await settle(
            self.running().execute(self, op, market, instruction)
        )
        return result
