"""`BaseExecutionInterface`: the seed's abstract execution interface, backed by the ledger.

Every interface parses an instruction, runs pre-trade checks, appends events through the injected
event logger (never anything else) and answers queries from the injected position monitor. Each
public command (`COMMANDS`, in every subclass too) runs as one unit of work of the event logger:
all of its events are committed or none (see `ledger.recorder`).
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

from aggregates.errors import DataError, DuplicateError, InstructionError, LedgerError
from aggregates.values import shown, text
from executors import results
from executors.costs import CostModel
from executors.instructions import Invalid, Parsed, parse_transfer, received
from executors.market import normalise
from executors.ports import DataProvider, EventLogger, PositionMonitor
from executors.risk import RiskLimits

MODES = ("backtest", "live", "dry-run")
DEFAULT_WALLETS = {
    "binance": ("spot", "futures"),
    "bybit": ("unified", "unified"),
    "okx": ("trading", "trading"),
}
UpdateHandler = Callable[[dict[str, Any]], Any]
P = ParamSpec("P")
R = TypeVar("R")
Self_ = TypeVar("Self_", bound="BaseExecutionInterface")
COMMANDS = ("execute_trade", "execute_transfer", "cancel_all_orders", "advance", "refresh")


def command(
    method: Callable[Concatenate[Self_, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Self_, P], Coroutine[Any, Any, R]]:
    """Run an interface method as one unit of work of its event logger (nested calls join it)."""

    async def unit_of_work(self: Self_, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.logger.unit():
            return await method(self, *args, **kwargs)

    functools.update_wrapper(unit_of_work, method)
    unit_of_work.__command__ = True  # type: ignore[attr-defined]
    return unit_of_work


async def settle(value: Any) -> Any:
    """A backend's answer: simulated backends answer at once, live ones with a coroutine."""
    return await value if inspect.isawaitable(value) else value


class BaseExecutionInterface(ABC):
    """One execution API for backtest and live; subclasses differ in venues, not in shape."""

    interface_type = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in COMMANDS:
            method = cls.__dict__.get(name)
            if inspect.iscoroutinefunction(method) and not getattr(method, "__command__", False):
                setattr(cls, name, command(method))

    def __init__(self, execution_mode: str, config: dict[str, Any]) -> None:
        if execution_mode not in MODES:
            raise InstructionError(
                "execution_mode", f"expected one of {', '.join(MODES)}, got {execution_mode!r}"
            )
        self.execution_mode = execution_mode
        self.config = config
        self.position_monitor: PositionMonitor | None = None
        self.event_logger: EventLogger | None = None
        self.data_provider: DataProvider | None = None
        self.position_update_handler: UpdateHandler | None = None
        self.transfer_backend: Any = None
        self.costs = CostModel.from_config(config)
        self.limits = RiskLimits.from_config(config)
        self.chain_venue = str(config.get("chain_venue", "ethereum"))
        self.chain_wallet = str(config.get("wallet_address") or "wallet")

    def set_dependencies(self, position_monitor: Any, event_logger: Any, data_provider: Any) -> None:
        """Set component dependencies."""
        self.position_monitor = position_monitor
        self.event_logger = event_logger
        self.data_provider = data_provider

    # ---- the seed's interface ------------------------------------------------------------------

    @abstractmethod
    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """Execute a trade instruction."""

    async def get_balance(self, asset: str, venue: str | None = None) -> Decimal:
        """Held amount of `asset` (summed over venues and wallets when `venue` is None)."""
        return self.monitor.balance(asset.upper(), venue)

    async def get_position(self, symbol: str, venue: str | None = None) -> dict[str, Any]:
        """Position in `symbol`, netted over venues when `venue` is None; short is negative."""
        return self.monitor.position(symbol, venue)

    @command
    async def cancel_all_orders(self, venue: str | None = None) -> dict[str, Any]:
        """Cancel all open orders (interfaces without resting orders have none to cancel)."""
        return {"status": "COMPLETED", "cancelled_orders": [], "execution_mode": self.execution_mode}

    @command
    async def execute_transfer(
        self, instruction: dict[str, Any], market_data: dict[str, Any]
    ) -> dict[str, Any]:
        """Execute a cross-venue transfer (the transfer backend does the work for every interface)."""
        try:
            market = normalise(market_data)
        except DataError as e:
            venue, iid, _parsed = self.parse_transfer_at(instruction)
            return self.reject(venue, iid, "invalid_field", str(e), instruction)
        answer = self.transfers.transfer(self, instruction, market)
        result: dict[str, Any] = await settle(answer)
        return result

    async def advance(self, ts: datetime, market: dict[str, Decimal]) -> None:  # noqa: B027 (optional hook)
        """Time-driven work due by `ts` (fills of resting orders, funding, interest, arrivals)."""

    def next_due(self) -> datetime | None:
        return None

    # ---- shared plumbing -----------------------------------------------------------------------

    @property
    def monitor(self) -> PositionMonitor:
        if self.position_monitor is None:
            raise LedgerError(f"{type(self).__name__}: call set_dependencies(...) before using it")
        return self.position_monitor

    @property
    def logger(self) -> EventLogger:
        if self.event_logger is None:
            raise LedgerError(f"{type(self).__name__}: call set_dependencies(...) before using it")
        return self.event_logger

    @property
    def transfers(self) -> Any:
        """The transfer backend; the factory gives all interfaces of an engine the same one."""
        if self.transfer_backend is None:
            from executors.simulated.transfer import SimulatedTransfers

            self.transfer_backend = SimulatedTransfers()
        return self.transfer_backend

    def wallet(self, venue: str, market_type: str = "spot") -> str:
        """The wallet an asset lives in at `venue` (SPEC §12.3)."""
        if venue == self.chain_venue:
            return self.chain_wallet
        wallets = (self.config.get("wallets") or {}).get(venue) or {}
        spot, perp = DEFAULT_WALLETS.get(venue, ("spot", "futures"))
        if market_type == "perp":
            return str(wallets.get("perp", perp))
        return str(wallets.get("spot", spot))

    def instruction_id(self, instruction: Mapping[str, Any]) -> str:
        supplied = instruction.get("instruction_id")
        if supplied is None:
            return self.logger.next_instruction_id()
        plain = (text(supplied) or "").strip()
        if not plain or len(plain) > 128:
            raise InstructionError(
                "instruction_id", f"expected non-empty text of at most 128 characters, got {shown(supplied)}"
            )
        self.logger.claim_instruction_id(plain)
        return plain

    def reject(
        self,
        venue: str,
        instruction_id: str,
        code: str,
        reason: str,
        raw: Mapping[str, Any],
        parsed: Parsed | None = None,
    ) -> dict[str, Any]:
        """Record `InstructionRejected` at a known venue and return the REJECTED result."""
        agg = self.logger.venue(venue)
        if agg.state_of(instruction_id) is not None:
            raise DuplicateError(f"instruction_id: {instruction_id} was already used at {venue}")
        agg.record_rejected(instruction_id, code, reason, received(raw), self.logger.now())
        self.logger.commit(agg)
        result = results.rejected(self.execution_mode, instruction_id, code, reason, venue, parsed)
        self.notify(result)
        return result

    def invalid(
        self, venue: str, instruction_id: str, error: Invalid, raw: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self.reject(venue, instruction_id, error.code, str(error.error), raw)

    def notify(self, result: dict[str, Any]) -> None:
        """Run the position update handler (position → exposure → risk → P&L) after an append."""
        if self.position_update_handler is not None:
            try:
                self.position_update_handler(result)
            except Exception as e:  # the result is committed: it stands; the views are rebuilt
                self.logger.views_failed(e)

    def known_venue(self, name: Any, field: str) -> str:
        venue = (text(name) or "").strip().lower()
        if not venue:
            raise InstructionError(field, f"expected a venue name, got {shown(name)}")
        if self.logger.venue_type(venue) is None:
            raise InstructionError(field, f"unknown venue {shown(name)}")
        return venue

    def parse_transfer_at(self, instruction: Mapping[str, Any]) -> tuple[str, str, Any]:
        """(source venue, instruction id, parsed transfer or Invalid) for a transfer instruction."""
        if not isinstance(instruction, Mapping):
            raise InstructionError("instruction", f"expected a dict, got {type(instruction).__name__}")
        source = instruction.get("from_venue", instruction.get("source_venue"))
        if source is None:
            raise InstructionError("from_venue", "is required")
        venue = self.known_venue(source, "from_venue")
        iid = self.instruction_id(instruction)
        target = instruction.get("to_venue", instruction.get("target_venue"))
        try:
            if target is None:
                raise Invalid("missing_field", "to_venue", "is required")
            to_venue = (text(target) or "").strip().lower()
            if self.logger.venue_type(to_venue) is None:
                raise Invalid("unknown_venue", "to_venue", f"unknown venue {shown(target)}")
            return venue, iid, parse_transfer(instruction, iid, venue, to_venue)
        except Invalid as e:
            return venue, iid, e


class BackedInterface(BaseExecutionInterface):
    """An interface whose venue work is done by a backend (simulated now, live behind the same calls)."""

    venue_kind = ""  # the venue type this interface trades at: "cex" or "onchain"
    other_kind = ""  # the venue_type to suggest when an instruction names the other kind
    backend: Any = None

    def admit(
        self, instruction: Any, default_venue: str | None = None
    ) -> tuple[str, str, dict[str, Any] | None]:
        """(venue, instruction id, a REJECTED result or None) for an instruction this interface received."""
        if not isinstance(instruction, Mapping):
            raise InstructionError("instruction", f"expected a dict, got {type(instruction).__name__}")
        venue = self.known_venue(instruction.get("venue") or default_venue, "venue")
        iid = self.instruction_id(instruction)
        if self.logger.venue_type(venue) != self.venue_kind:
            reason = f"venue: {venue} is not a {self.venue_kind} venue (use venue_type '{self.other_kind}')"
            return venue, iid, self.reject(venue, iid, "wrong_venue_type", reason, instruction)
        return venue, iid, None

    async def advance(self, ts: datetime, market: dict[str, Decimal]) -> None:
        await settle(self.running().advance(self, ts, market))

    def next_due(self) -> datetime | None:
        if self.backend is None:
            return None
        due: datetime | None = self.backend.next_due(self)
        return due

    def running(self) -> Any:
        """The backend, or a clear error where this build has none for the mode (live, until it lands)."""
        if self.backend is None:
            raise LedgerError(
                f"live {self.venue_kind} execution is not configured in this build: run in "
                "backtest or dry-run mode"
            )
        return self.backend
