"""`EventDrivenStrategyEngine`: the composition root of a run (SPEC §5).

It builds the ledger, the three execution interfaces (through the factory), the projection and
its position monitor, the event recorder and the data provider; wires them; installs the position
update handler; owns time (`advance_to`) and routes instructions on `venue_type`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from importlib import metadata
from typing import Any

from aggregates.errors import DataError, InstructionError, LedgerError
from aggregates.session import Session
from aggregates.values import MONEY, shown, text, to_utc
from executors import BaseExecutionInterface, ExecutionInterfaceFactory
from executors.costs import ConfigError
from executors.market import checked, normalise
from executors.risk import RiskLimits
from executors.simulated.volatile import Volatile
from ledger import config as cfg
from ledger.app import Ledger, config_digest
from ledger.digest import log_digest
from ledger.marketdata import MarketData
from ledger.monitor import PositionMonitor
from ledger.provider import DataProvider, describe
from ledger.recorder import EventRecorder
from projections import reports
from projections.memory import InMemoryProjection

MARKS_EVERY = timedelta(hours=1)
BACKTEST_BATCH = 2_000


def code_version() -> str:
    try:
        return metadata.version("execution-ledger")
    except metadata.PackageNotFoundError:
        return "unknown"


class EventDrivenStrategyEngine:
    """Builds and wires everything a run needs; strategies talk to it only through instructions."""

    def __init__(
        self,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        data: MarketData | None = None,
    ) -> None:
        self.config = cfg.load_config(config)
        self.execution_mode = str(self.config.get("execution_mode", "backtest"))
        self.account = str(self.config.get("account", "main"))
        backtest = self.execution_mode == "backtest"
        store = self.config.get("ledger") or {}
        # What the config says is checked before the store is opened, so a bad value writes nothing.
        self._balances = initial_balances(self.config)
        self.data_provider = DataProvider(self.config.get("data"), data, cfg.session_start(self.config))
        self.limits = RiskLimits.from_config(self.config)
        # A backtest holds its aggregates in memory for the whole run: snapshots there only serve later
        # readers, so they are taken ten times less often than in long-lived live ledgers.
        durable_replies = _flag(store, "durable_replies")  # before anything is written
        self.ledger = Ledger.open(
            cfg.ledger_url(self.config),
            create=True,
            synchronous=str(store.get("synchronous", "NORMAL" if backtest else "FULL")),
            snapshot_every=int(store.get("snapshot_every", 100_000 if backtest else 10_000)),
        )
        stored = self.ledger.max_notification_id()
        if backtest and stored > 0 and not _flag(store, "append"):
            self.ledger.close()
            raise LedgerError(
                f"{self.ledger.url.redacted} already holds a ledger; a backtest writes a fresh one "
                "(choose another database, or set ledger.append = true: `ledger backtest --append`)"
            )
        self.projection = InMemoryProjection()
        self.position_monitor = PositionMonitor(self.projection, self.limits)
        self.start = cfg.session_start(self.config)
        # An engine on a ledger that has events starts from them (the views as the log says, before its
        # first command), whatever the mode: a restarted live engine, an appended backtest.
        self.projection.catch_up(self.ledger)
        last = self.projection.state.last_ts
        if backtest and last is not None and self.start <= last:
            self.ledger.close()
            raise LedgerError(
                f"session.start: {self.start.isoformat()} is not after the ledger's last event "
                f"({last.isoformat()}); an appended backtest continues after it"
            )
        recorded = cfg.canonical_json(cfg.recorded_config(self.config))  # the allow-list: no secret, no path
        digest = config_digest(recorded)
        session_cfg = cfg.session_table(self.config)
        default_key = f"{self.execution_mode}-{digest[:16]}"
        if not backtest:  # every live run is a session of its own: its ids must not collide with the last
            default_key += "-" + _wall_clock().strftime("%Y%m%dT%H%M%S%f")
        self.session_key = str(session_cfg.get("key") or default_key)
        if backtest and stored > 0:  # an appended run is a session of its own too: new instruction ids
            self.session_key += f"-after-{stored}"
        live_clock = None if self.execution_mode == "backtest" else _wall_clock
        self.event_logger = EventRecorder(
            self.ledger,
            self.account,
            cfg.venues(self.config),
            self.execution_mode,
            self.session_key,
            self.start,
            flush_every=int(store.get("batch", BACKTEST_BATCH)) if backtest else 0,
            clock=live_clock,
            durable_replies=durable_replies,
        )
        self.event_logger.subscribe(self.projection.handle)
        self.event_logger.rebuild_views = self._rebuild_views
        self.event_logger.participate(self)
        self.execution_interfaces = ExecutionInterfaceFactory.create_all_interfaces(
            execution_mode=self.execution_mode, config=self.config
        )
        ExecutionInterfaceFactory.set_interface_dependencies(
            interfaces=self.execution_interfaces,
            position_monitor=self.position_monitor,
            event_logger=self.event_logger,
            data_provider=self.data_provider,
        )
        self.latest: dict[str, Any] = {}
        self._set_position_update_handler_on_interfaces()
        self.market: dict[str, Decimal] = {}
        self._marks_due: datetime | None = None
        self.exposure_series: list[tuple[str, dict[str, Decimal]]] = []
        self.risk_series: list[tuple[str, dict[str, Decimal]]] = []  # health factor per venue, hourly
        self.closed = False
        self._due: list[tuple[BaseExecutionInterface, datetime | None]] = []
        self._due_at = -1
        for backend in _simulated_backends(self.execution_interfaces.values()):
            self.event_logger.participate(backend)
        source, data_digest = self._data_reference()
        self.ledger.start_session(
            Session.start(
                self.session_key,
                self.execution_mode,
                recorded,
                digest,
                source,
                data_digest,
                int(session_cfg.get("seed", 0)),
                code_version(),
                self.start,
                now=self.event_logger.now(),
            )
        )
        self._deposit_initial_balances()

    @property
    def session(self) -> Session:
        """The active session (the ledger's: it is reloaded from the store after a failed command)."""
        if self.ledger.session is None:
            raise LedgerError("the engine is closed; start a new one")
        return self.ledger.session

    # ---- units of work (ledger.recorder.unit) --------------------------------------------------------

    def save_state(self) -> tuple[Any, ...]:
        return (self.market, self._marks_due, len(self.exposure_series), len(self.risk_series))

    def restore_state(self, saved: tuple[Any, ...]) -> None:
        self.market, self._marks_due, exposures, risks = saved
        del self.exposure_series[exposures:], self.risk_series[risks:]
        self._due_at = -1

    def _rebuild_views(self) -> None:
        """The in-memory views again from the log alone, in log order (after a failed command): what
        is stored, then what waits in the write buffer."""
        self.projection.reset()
        for pair in self.event_logger.committed():
            self.projection.handle([pair])

    def _data_reference(self) -> tuple[str, str]:
        """(source, content digest) for `SessionStarted`; data that cannot be loaded now is recorded as
        such and raises its own clear error the first time it is needed."""
        provider = self.data_provider
        if not provider.configured:
            return "none", "-"
        if not provider.available:
            return f"{describe(provider.config)} (not loaded: {provider.error})", "-"
        path = provider.config.get("data_dir")  # where a rerun finds the data again
        return (str(path) if path else provider.data.source), provider.data.digest

    # ---- wiring ------------------------------------------------------------------------------------

    def _set_position_update_handler_on_interfaces(self) -> None:
        """Set Position Update Handler on all execution interfaces for tight loop management."""
        for _interface_type, interface in self.execution_interfaces.items():
            if interface:
                interface.position_update_handler = self.position_update_handler

    def position_update_handler(self, result: dict[str, Any]) -> dict[str, Any]:
        """After every append: position → exposure → risk → P&L, kept as `latest`."""
        mon = self.position_monitor
        symbol, venue = result.get("symbol"), result.get("venue")
        latest = {"result": result}
        if symbol:
            latest["position"] = mon.position(str(symbol), str(venue) if venue else None)
        latest["exposure"] = expo = mon.exposure()
        latest["risk"] = mon.risk(expo)
        latest["pnl"] = mon.pnl()
        self.latest = latest
        return latest

    def _deposit_initial_balances(self) -> None:
        interface = self.execution_interfaces["cex"]
        touched = []
        for venue, wallet, asset, amount in self._balances:
            agg = self.event_logger.venue(venue)
            where = wallet or interface.wallet(venue)
            agg.record_deposit(
                f"initial:{venue}:{where}:{asset}",
                where,
                asset,
                amount,
                self.start,
                now=self.event_logger.now(),
            )
            touched.append(agg)
        unique = list({id(a): a for a in touched}.values())
        if unique:
            self.event_logger.commit(*unique)

    # ---- time --------------------------------------------------------------------------------------

    async def advance_to(self, ts: datetime | str, market: Mapping[str, Any] | None = None) -> None:
        """Move the clock to `ts`: record the market, then everything that fell due (funding, interest,
        arrivals, resting orders, liquidations)."""
        market = checked(market)  # bad market data is refused before anything moves (DataError)
        when = ts if isinstance(ts, datetime) and ts.tzinfo is UTC else to_utc(ts, "timestamp")
        with self.event_logger.unit():
            await self._advance(when, market)

    async def _advance(self, when: datetime, market: Mapping[str, Any] | None) -> None:
        self.event_logger.set_time(when)
        if market is not None:
            self.market = normalise(market)
        elif self.data_provider.configured:
            self.market = self.data_provider.snapshot(when)
        if self.market and (self._marks_due is None or when >= self._marks_due):
            self.event_logger.record_market(self.session, self.market, when)
            self._marks_due = when + MARKS_EVERY
            self.exposure_series.append((when.isoformat(), self.position_monitor.exposure()))
            risk = self.position_monitor.risk()
            self.risk_series.append((when.isoformat(), dict(risk["health_factor"])))  # type: ignore[call-overload]
        # Due times only change when something is appended: ask again only then.
        if self._due_at != self.event_logger.events:
            self._due = [(i, i.next_due()) for i in self.execution_interfaces.values()]
            self._due_at = self.event_logger.events
        for interface, due in self._due:
            if due is not None and due <= when:
                await interface.advance(when, self.market)
                self._due_at = -1  # time-driven work may have changed what is due next

    # ---- instructions ------------------------------------------------------------------------------

    async def execute_trade_with_interface(
        self, instruction: Mapping[str, Any], market_data: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Route one instruction on `venue_type`: cex, onchain, or transfer (to `execute_transfer`)."""
        if self.closed:
            raise LedgerError("the engine is closed; start a new one")
        if not isinstance(instruction, Mapping):
            raise InstructionError("instruction", f"expected a dict, got {type(instruction).__name__}")
        with self.event_logger.unit():
            return await self._execute(instruction, market_data)

    async def _execute(
        self, instruction: Mapping[str, Any], market_data: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        market: Any = market_data if market_data is not None else self.market  # checked where received
        if self._marks_due is None and market:
            self._observe_first(market)
        kind = text(instruction.get("venue_type"))  # plain text or None: a str subclass is never asked
        ins = dict(instruction)
        if kind in ("cex", "onchain"):
            return await self.execution_interfaces[str(kind)].execute_trade(ins, market)
        if kind == "transfer":
            return await self.execution_interfaces["transfer"].execute_transfer(ins, market)
        interface: BaseExecutionInterface = self.execution_interfaces["cex"]
        named = (text(instruction.get(k)) for k in ("venue", "from_venue", "source_venue"))
        venue = next((v.strip().lower() for v in named if v and v.strip()), None)
        reason = f"venue_type: expected cex, onchain or transfer, got {shown(instruction.get('venue_type'))}"
        if venue is not None and self.event_logger.venue_type(venue) is not None:
            return interface.reject(venue, interface.instruction_id(ins), "unknown_venue_type", reason, ins)
        raise InstructionError("venue_type", reason.split(": ", 1)[1])

    def _observe_first(self, market: Any) -> None:
        try:
            self.market = normalise(market)
        except DataError:
            return  # the interface that receives it records the refusal
        self.event_logger.record_market(self.session, self.market, self.event_logger.now())
        self._marks_due = self.event_logger.now() + MARKS_EVERY

    async def execute_decision(
        self,
        decision: Any,
        timestamp: datetime | str | None = None,
        execution_interfaces: Any = None,
        market_data: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """A decision is a timestamp plus an ordered list of instructions, executed one after another."""
        if timestamp is not None:
            await self.advance_to(timestamp, market_data)
        if isinstance(decision, Mapping):
            instructions: Sequence[Any] = decision.get("instructions") or [decision]
        else:
            instructions = decision or []
        return [await self.execute_trade_with_interface(i, market_data) for i in instructions]

    # ---- ending and reporting ----------------------------------------------------------------------

    def close(self, reason: str = "completed", views: bool | None = None) -> None:
        """Flush, checkpoint and end the session; write the SQL views unless `views` is False."""
        if self.closed:
            return
        self.event_logger.flush()
        self.ledger.end_session(reason, self.event_logger.now())
        self.closed = True
        want = views if views is not None else bool((self.config.get("ledger") or {}).get("views", True))
        if want:
            from projections.sql import SQLProjection

            view = SQLProjection.for_ledger(self.ledger)
            try:
                view.run(self.ledger)
            finally:
                view.close()
        self.ledger.release_writer()  # the session has ended: another process may write now

    @property
    def event_count(self) -> int:
        return self.event_logger.events

    def digest(self) -> str:
        self.event_logger.flush()
        return log_digest(self.ledger)

    def summary(self) -> dict[str, Any]:
        """Balances per venue, positions, exposure, risk, P&L by line, equity and APY."""
        self.event_logger.flush()
        state = self.projection.state
        mon = self.position_monitor
        per_venue: dict[str, dict[str, Decimal]] = {}
        for (venue, _wallet, asset), amount in sorted(state.balances.items()):
            if amount:
                per_venue.setdefault(venue, {})
                per_venue[venue][asset] = per_venue[venue].get(asset, Decimal(0)) + amount
        for (venue, asset), amount in sorted(state.supplied.items()):
            if amount:
                per_venue.setdefault(venue, {})[f"{asset} (supplied)"] = amount
        for (venue, asset), amount in sorted(state.borrowed.items()):
            if amount:
                per_venue.setdefault(venue, {})[f"{asset} (borrowed)"] = -amount
        statement = reports.statement(state)
        final = statement["final_equity"]
        initial = reports.initial_equity(state)
        initial = initial if initial is not None else final
        days = Decimal((self.event_logger.now() - self.start).total_seconds()) / Decimal(86_400)
        return {
            "events": self.ledger.max_notification_id(),
            "fills": state.fills_count,
            "start": self.start.isoformat(),
            "end": self.event_logger.now().isoformat(),
            "balances": per_venue,
            "positions": reports.positions(state),
            "exposure": mon.exposure(),
            "in_transit": reports.in_transit(state),
            "pnl": statement["pnl"],
            "risk": mon.risk(),
            "initial_equity": initial,
            "external_flows": statement["external_flows"],
            "final_equity": final,
            "apy": apy(initial, final, days),
            "unpriced": statement["unpriced"],
        }


APY_MIN_DAYS = Decimal(7)


def apy(initial: Decimal, final: Decimal, days: Decimal) -> Decimal | None:
    """Annualised growth, compounded: (final / initial) ^ (365 / days) - 1; None for windows shorter
    than 7 days (annualising them says nothing) or when it cannot be computed. Never raises."""
    if initial <= 0 or final <= 0 or days < APY_MIN_DAYS:
        return None
    try:
        with localcontext(MONEY) as ctx:
            growth = final / initial
            return (ctx.power(growth, Decimal(365) / days) - 1).quantize(Decimal("1e-12"))
    except ArithmeticError:
        return None


def _simulated_backends(interfaces: Any) -> list[Volatile]:
    """Each simulated venue backend of the interfaces once (the transfer backend is shared)."""
    found: dict[int, Volatile] = {}
    for interface in interfaces:
        for backend in (getattr(interface, "backend", None), interface.transfer_backend):
            if isinstance(backend, Volatile):
                found.setdefault(id(backend), backend)
    return list(found.values())


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def initial_balances(config: Mapping[str, Any]) -> list[tuple[str, str, str, Decimal]]:
    """The config's initial balances (`cfg.initial_balances`), each at a venue the config has."""
    balances = cfg.initial_balances(config)
    known = cfg.venues(config)
    for venue, _wallet, _asset, _amount in balances:
        if venue not in known:
            raise InstructionError(f"initial_balances.{venue}", f"unknown venue {venue!r}")
    return balances


def _flag(table: Mapping[str, Any], key: str) -> bool:
    """A true/false setting of the `[ledger]` table; anything else names the setting."""
    value = table.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"ledger.{key}", f"expected true or false, got {value!r}")
