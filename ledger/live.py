"""Live runs: open the engine on the venues (or simulated execution on live prices), reconcile first,
then let a strategy decide on ticker snapshots until stopped; and `reconcile` on its own.

Every start reconciles before the first order: in-flight instructions are resolved, missing fills
recorded once, balances observed. A venue whose instructions stay unresolved refuses new orders;
the others keep trading (SPEC §12.12).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from executors.live import LiveCEX
from executors.live.ccxt_client import VENUES, ClientFactory, VenueClient
from executors.live.cex_funding import funding_key, mark_key
from executors.live.chain import LiveChain
from executors.live.chain_client import ChainError
from executors.live.transfer import LiveTransfers
from ledger import config as cfg
from ledger.engine import EventDrivenStrategyEngine
from ledger.live_feed import LiveMarketFeed
from ledger.strategies.base import Strategy, StrategyView

MAX_ROUNDS = 8  # as in backtests: decide() is asked again after its instructions ran
Status = Callable[[str], None]


def live_config(
    config: Mapping[str, Any] | str | Any,
    *,
    dry_run: bool = False,
    mainnet: bool = False,
    strategy: Strategy | None = None,
) -> dict[str, Any]:
    """The engine config of a live run: the mode, a session key of its own, `live.mainnet` only with
    the flag, venue balances adopted on a first start (dry runs keep the configured balances)."""
    data = cfg.load_config(config)
    if strategy is not None:
        base = strategy.config()
        if not dry_run:
            base.pop("initial_balances", None)  # the venue's balances are the truth live
        data = {**base, **data}
    if not dry_run:
        data.pop("initial_balances", None)
        data.pop("initial_capital", None)
    now = datetime.now(UTC)
    mode = "dry-run" if dry_run else "live"
    live = dict(data.get("live") or {})
    live["mainnet"] = bool(mainnet)
    live.setdefault("adopt_balances", True)
    session = dict(data.get("session") or {})
    session.setdefault("key", f"{mode}-{now.strftime('%Y%m%dT%H%M%S%f')}")
    session["start"] = now.isoformat()
    data.update(execution_mode=mode, live=live, session=session)
    if strategy is not None:
        data["strategy"] = strategy.name
    return data


def open_engine(
    config: Mapping[str, Any], client_factory: ClientFactory | None = None
) -> EventDrivenStrategyEngine:
    """The engine of a live (or dry) run over a ledger that may hold earlier runs: the projection is
    rebuilt from every stored event, so balances and positions continue where the last run ended."""
    engine = EventDrivenStrategyEngine(dict(config))
    engine.projection.rebuild(engine.ledger)
    backend = live_backend(engine)
    if backend is not None:
        backend.client_factory = client_factory
    return engine


def live_backend(engine: EventDrivenStrategyEngine) -> LiveCEX | None:
    backend = getattr(engine.execution_interfaces["cex"], "backend", None)
    return backend if isinstance(backend, LiveCEX) else None


def cex_venues(engine: EventDrivenStrategyEngine) -> list[str]:
    return [v for v in VENUES if engine.event_logger.venue_type(v) == "cex"]


async def reconcile(engine: EventDrivenStrategyEngine, venues: Sequence[str] | None = None) -> dict[str, Any]:
    """Reconcile the live venues; the report per venue (resolved, unresolved, fills, balances…).
    Without `venues`: the CEX venues, the chain (transactions sent before a restart resolved, balances
    observed) and the transfers in flight (withdrawals looked up, arrivals matched)."""
    report: dict[str, Any] = {}
    backend = live_backend(engine)
    if backend is not None:
        interface = engine.execution_interfaces["cex"]
        report.update(await backend.reconcile(interface, list(venues) if venues else None))
    if venues:
        return report
    chain = getattr(engine.execution_interfaces["onchain"], "backend", None)
    if isinstance(chain, LiveChain):
        report[engine.execution_interfaces["onchain"].chain_venue] = await _reconcile_chain(engine, chain)
    transfers = engine.execution_interfaces["transfer"]
    if isinstance(transfers.transfers, LiveTransfers):
        found = await transfers.transfers.reconcile(transfers)
        if found["open"] or found["issues"]:
            report["transfers"] = _row(
                "transfers", unresolved=found["unresolved"], error="; ".join(
                    f"{v} {why}" for v, why in sorted(found["issues"].items())),
                open_orders=len(found["open"]),
            )
    return report


def _row(venue: str, **values: Any) -> dict[str, Any]:
    """A reconciliation report row in the CEX backend's shape."""
    row: dict[str, Any] = {"venue": venue, "resolved": [], "unresolved": [], "fills_recorded": 0,
                           "open_orders": 0, "foreign_open_orders": 0, "balances": [], "positions": [],
                           "error": ""}
    row.update(values)
    return row


async def _reconcile_chain(engine: EventDrivenStrategyEngine, chain: LiveChain) -> dict[str, Any]:
    iface = engine.execution_interfaces["onchain"]
    try:
        found = await chain.reconcile(iface)
    except ChainError as e:
        return _row(iface.chain_venue, error=str(e), unresolved=["(chain unreachable)"])
    wallet = iface.wallet(iface.chain_venue)
    balances = [
        {"wallet": wallet, "asset": asset, **values} for asset, values in sorted(found["balances"].items())
    ]
    return _row(iface.chain_venue, unresolved=list(found["unresolved"]), balances=balances)


async def close_backends(engine: EventDrivenStrategyEngine) -> None:
    """Close the live venue clients and the chain connection of `engine`."""
    backend = live_backend(engine)
    if backend is not None:
        await backend.close()
    chain = getattr(engine.execution_interfaces["onchain"], "backend", None)
    if isinstance(chain, LiveChain):
        await chain.close()


async def run_reconcile(
    config: Mapping[str, Any] | str | Any,
    *,
    client_factory: ClientFactory | None = None,
    mainnet: bool = False,
) -> dict[str, Any]:
    """`ledger reconcile`: one reconciliation of every configured venue, then the session ends."""
    engine = open_engine(live_config(config, mainnet=mainnet), client_factory)
    try:
        report = await reconcile(engine)
    finally:
        engine.close("reconciled", views=False)
        await close_backends(engine)
    return report


# ---- market data from the venues (the feed is in ledger.live_feed) ----------------------------------


class PublicClients:
    """Clients for market data in dry runs (no keys needed; the run never signs a request)."""

    def __init__(self, config: Mapping[str, Any], factory: ClientFactory | None) -> None:
        self.config, self.factory = config, factory
        self.clients: dict[str, VenueClient] = {}

    async def __call__(self, venue: str) -> VenueClient:
        client = self.clients.get(venue)
        if client is None:
            client = self.clients[venue] = VenueClient(venue, self.config, self.factory)
        await client.start(signed=False)
        return client

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients.clear()


# ---- the run -----------------------------------------------------------------------------------------


@dataclass
class LiveRun:
    """What a run did, for the status line and the final summary."""

    steps: int = 0
    instructions: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = ""

    def count(self, results: Sequence[Mapping[str, Any]]) -> None:
        for r in results:
            self.instructions += 1
            status = str(r.get("status", "?"))
            self.statuses[status] = self.statuses.get(status, 0) + 1


def status_fields(engine: EventDrivenStrategyEngine, run: LiveRun, feed_errors: Mapping[str, str],
                  ) -> dict[str, Any]:
    """What the status line shows, as data (`ledger live --json` prints one object per step)."""
    mon, market = engine.position_monitor, engine.market
    backend = live_backend(engine)
    venues = cex_venues(engine)
    fields: dict[str, Any] = {
        "time": engine.event_logger.now(),
        "mode": engine.execution_mode,
        "step": run.steps,
        "orders": run.instructions,
        "statuses": dict(sorted(run.statuses.items())),
        "eth_usd_price": market.get("eth_usd_price"),
        "net_eth": mon.exposure().get("ETH", Decimal(0)),
        "equity": mon.equity(),
        "marks": {v: m for v in venues if (m := market.get(mark_key(v, "ETH"))) is not None},
        "perps": [_perp(v, row, market) for v in venues for row in mon.positions(v)
                  if row["market_type"] == "perp"],
        "funding": mon.pnl().get("funding", Decimal(0)),
        "resting": None,
        "unresolved": None,
        "issues": dict(sorted(feed_errors.items())),
    }
    if backend is not None:
        interface = engine.execution_interfaces["cex"]
        fields["resting"] = len(backend.resting)
        fields["unresolved"] = sum(len(backend.unresolved(interface, v)) for v in venues)
        fields["issues"] = dict(sorted({**backend.errors, **feed_errors}.items()))
    return fields


def status_line(engine: EventDrivenStrategyEngine, run: LiveRun, feed_errors: Mapping[str, str]) -> str:
    return format_status(status_fields(engine, run, feed_errors))


def format_status(f: Mapping[str, Any]) -> str:
    """The one-line status `ledger live` rewrites after every step."""
    price, exposure = f["eth_usd_price"], f["net_eth"]
    parts = [
        f"{f['time']:%H:%M:%S}",
        f"{f['mode']}",
        f"step {f['step']}",
        f"orders {f['orders']} " + " ".join(f"{k.lower()} {v}" for k, v in f["statuses"].items()),
        f"ETH {price:.2f}" if price else "ETH ?",
        f"net ETH {exposure:+.4f}",
        f"equity {f['equity']:,.2f} USD",
    ]
    if f["marks"]:
        parts.append("marks " + " ".join(f"{v} {m:.2f}" for v, m in f["marks"].items()))
    if f["perps"]:
        parts.append("perps " + ", ".join(_perp_status(p) for p in f["perps"]))
    funding = f["funding"]
    parts.append(f"funding {'received' if funding >= 0 else 'paid'} {abs(funding):,.2f} USD")
    if f["resting"] is not None:
        parts.append(f"resting {f['resting']} unresolved {f['unresolved']}")
    if f["issues"]:
        parts.append("issues: " + ", ".join(f"{v} {why[:40]}" for v, why in f["issues"].items()))
    return " | ".join(parts)


def _perp(venue: str, row: Mapping[str, Any], market: Mapping[str, Decimal]) -> dict[str, Any]:
    base = str(row["symbol"]).split("/")[0]
    return {"venue": venue, "base": base, "amount": Decimal(row["amount"]),
            "mark": market.get(mark_key(venue, base)), "funding_rate": market.get(funding_key(venue, base))}


def _perp_status(p: Mapping[str, Any]) -> str:
    """`bybit ETH -1.0000 fr +0.0100%` (the mark too when the base is not ETH, whose marks lead)."""
    text = f"{p['venue']} {p['base']} {p['amount']:+.4f}"
    if p["base"].upper() != "ETH" and p["mark"] is not None:
        text += f" mark {p['mark']:.2f}"
    rate = p["funding_rate"]
    return text + (f" fr {rate:+.4%}" if rate is not None else " fr ?")


async def run_live(
    config: Mapping[str, Any],
    strategy: Strategy,
    *,
    interval_s: float = 5.0,
    max_steps: int | None = None,
    status: Status | None = None,
    status_data: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
    client_factory: ClientFactory | None = None,
) -> tuple[LiveRun, EventDrivenStrategyEngine]:
    """Reconcile, then step: snapshot → advance (resting orders) → decide → execute, until `stop` is set
    (Ctrl-C sets it: the instruction at hand finishes first, so none is left half-recorded)."""
    engine = open_engine(config, client_factory)
    backend = live_backend(engine)
    stop = stop or asyncio.Event()
    run = LiveRun()
    public = None
    if backend is not None:
        feed = LiveMarketFeed(engine.config, cex_venues(engine), backend.client)
    else:
        public = PublicClients(engine.config, client_factory)
        feed = LiveMarketFeed(engine.config, cex_venues(engine), public)
    view = StrategyView(engine)
    reason = "stopped"
    restore = _install_stop(stop)
    try:
        if engine.execution_mode == "live":
            run.reconciliation = await reconcile(engine)
        while not stop.is_set() and (max_steps is None or run.steps < max_steps):
            started = time.monotonic()
            market = await feed.snapshot()
            now = engine.event_logger.now()
            await engine.advance_to(now, market or None)
            if backend is not None:  # funding is polled whether or not orders rest (its own interval)
                await backend.funding.poll(engine.execution_interfaces["cex"], engine.market)
            for _ in range(MAX_ROUNDS):
                if stop.is_set() or not engine.market:
                    break
                decision = strategy.decide(now, engine.market, view)
                if not decision:
                    break
                run.count(await engine.execute_decision(decision, market_data=engine.market))
            run.steps += 1
            engine.event_logger.sync()  # a step ends with its venue replies on disk too
            if status is not None or status_data is not None:
                fields = status_fields(engine, run, feed.errors)
                if status is not None:
                    status(format_status(fields))
                if status_data is not None:
                    status_data(fields)
            if max_steps is not None and run.steps >= max_steps:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval_s - (time.monotonic() - started)))
        run.stopped_by = "signal" if stop.is_set() else "steps"
    except BaseException:
        reason = "interrupted"
        raise
    finally:
        restore()
        try:
            engine.close(reason, views=False)
        finally:
            await close_backends(engine)
            if public is not None:
                await public.close()
    return run, engine


def _install_stop(stop: asyncio.Event) -> Callable[[], None]:
    """First Ctrl-C: stop after the current step; a second one interrupts at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return lambda: None

    def first() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, first)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        return lambda: None

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGINT)

    return restore
