"""Live CEX under venue faults: rate-limit storms, fills reported twice, maintenance and the
per-venue circuit breaker. Each test ends comparing the emulator's account with the projections
(SPEC §9, §12.20); the ledger stays consistent (grammar, conservation, rebuild).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aggregates.transitions import State
from ledger.engine import EventDrivenStrategyEngine
from ledger.live import LiveRun, live_backend, live_config, open_engine, reconcile, status_line
from ledger.testing import check_conservation
from tests.emulator import Emulator
from tests.emulator.helpers import orders_with_client_id
from tests.integration.test_live_cex import (
    FAST,
    VENUES,
    assert_matches_venue,
    check_log,
    close_all,
    factory,
    keys,
    order,
)

pytest_plugins = ["tests.emulator.fixtures"]

D = Decimal
Engine = EventDrivenStrategyEngine
Start = Callable[..., Awaitable[Engine]]
COOLDOWN_S = 0.4


@pytest.fixture
async def start(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Start]:
    """`await start(do_reconcile=True, **live_settings)`: a live engine on a ledger in tmp_path."""
    engines: list[Engine] = []

    async def _start(*, do_reconcile: bool = True, db: str = "live.db", **live: Any) -> Engine:
        config = {
            "ledger": {"url": f"sqlite:///{tmp_path / db}"},
            "venues": list(VENUES),
            **keys(emulator),
            "live": {**FAST, **live},
        }
        engine = open_engine(live_config(config), factory(emulator))
        engines.append(engine)
        if do_reconcile:
            await reconcile(engine)
        return engine

    yield _start
    await close_all(engines)


async def trade(engine: Engine, ins: dict[str, Any], market: dict[str, Any] | None = None) -> dict[str, Any]:
    return await engine.execute_trade_with_interface(ins, market or {})


def fills_by_instruction(engine: Engine) -> Counter[str]:
    engine.event_logger.flush()
    return Counter(
        e.instruction_id for _n, e in engine.ledger.iter_events() if type(e).__name__ == "OrderFilled"
    )


def creates(emulator: Emulator, venue: str) -> int:
    return [r["name"] for r in emulator.requests(venue)].count("create_order")


def consistent(engine: Engine, emulator: Emulator, *venues: str) -> None:
    for v in venues:
        assert_matches_venue(engine, emulator, v)
    check_log(engine)
    check_conservation(engine)


# ---- rate limits ---------------------------------------------------------------------------------------


async def test_rate_limit_storm_places_every_order_exactly_once(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """20 rate-limit rejections of create_order (rejected before execution, so re-sent with the same
    client id) and 20 each on the order and trades reads (answered after the venue did the work —
    harmless for a read) while 10 orders run concurrently: each order is placed once, filled once,
    and nothing stays unresolved after reconciliation."""
    engine = await start(submit_retries=30, read_retries=30, retry_backoff_s=0.002, max_concurrency=4)
    storm = [
        emulator.inject(venue, "create_order", "error", error="rate_limit", apply=False, count=20),
        emulator.inject(venue, "fetch_order", "error", error="rate_limit", apply=True, count=20),
        emulator.inject(venue, "fetch_my_trades", "error", error="rate_limit", apply=True, count=20),
    ]
    batch = [order(venue, amount="0.1") for _ in range(5)] + [
        order(venue, "ETH/USDT:USDT", "LONG" if i % 2 else "SHORT", "0.2") for i in range(5)
    ]
    results = await asyncio.gather(*(trade(engine, ins) for ins in batch))
    assert storm[0].hits == 20  # the storm really hit the submissions
    assert all(r["status"] in ("FILLED", "SUBMITTED") for r in results), [r.get("reason") for r in results]
    emulator.faults.clear()
    report = await reconcile(engine, [venue])
    assert report[venue]["unresolved"] == [] and report[venue]["error"] == ""
    agg = engine.event_logger.venue(venue)
    fills = fills_by_instruction(engine)
    trades = emulator.inspect(venue)["trades"]
    for r in results:
        [placed] = orders_with_client_id(emulator, venue, r["order_id"])
        assert agg.state_of(r["instruction_id"]) is State.FILLED
        mine = [t for t in trades if (t.order_id, t.symbol) == (placed.order_id, placed.symbol)]
        assert fills[r["instruction_id"]] == len(mine) >= 1
    assert len(emulator.inspect(venue)["orders"]) == len(batch)
    assert creates(emulator, venue) == len(batch) + 20
    consistent(engine, emulator, venue)


@pytest.mark.parametrize("failed_lookups", [0, 2])
async def test_a_venue_that_executes_then_answers_429_still_gets_the_order_once(
    start: Start, emulator: Emulator, venue: str, failed_lookups: int
) -> None:
    """The notes say a rate-limit answer means "not executed"; a venue that breaks that rule (the
    order is filled, the reply is a 429) would get a second order from a blind resend on Binance,
    which reuses filled client ids, and a duplicate-id rejection recorded as a failure on Bybit and
    OKX. The executor asks for the order by its client id before sending again, and while those
    lookups fail (rate-limited too) it sends nothing: one order, its fill recorded once."""
    engine = await start(submit_retries=5, read_retries=0, retry_backoff_s=0.002)
    emulator.inject(venue, "create_order", "error", error="rate_limit", apply=True, count=1)
    if failed_lookups:
        emulator.inject(venue, "fetch_order", "error", error="rate_limit", count=failed_lookups)
    result = await trade(engine, order(venue, amount="0.1"))
    assert result["status"] == "FILLED", result
    assert creates(emulator, venue) == 1
    [placed] = orders_with_client_id(emulator, venue, result["order_id"])
    trades = [t for t in emulator.inspect(venue)["trades"] if t.order_id == placed.order_id]
    assert fills_by_instruction(engine)[result["instruction_id"]] == len(trades) >= 1
    assert len(emulator.inspect(venue)["orders"]) == 1
    consistent(engine, emulator, venue)


async def test_lookups_failing_until_the_retries_run_out_leave_an_unknown_outcome_not_a_resend(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """Every lookup before the resend fails: the instruction is an unknown outcome (never failed,
    never sent again), the venue refuses new orders until reconciliation finds it."""
    engine = await start(submit_retries=2, read_retries=0, retry_backoff_s=0.002, lookup_attempts=1,
                         lookup_backoff_s=0.002)
    emulator.inject(venue, "create_order", "error", error="rate_limit", apply=True, count=1)
    emulator.inject(venue, "fetch_order", "error", error="rate_limit", apply=False, count=10)
    result = await trade(engine, order(venue, amount="0.1"))
    assert result["status"] == "UNKNOWN" or result.get("code") == "unknown_outcome", result
    assert creates(emulator, venue) == 1
    agg = engine.event_logger.venue(venue)
    assert agg.state_of(result["instruction_id"]) in (State.UNKNOWN, State.SUBMITTED)
    emulator.faults.clear()
    report = await reconcile(engine, [venue])
    assert report[venue]["unresolved"] == []
    assert agg.state_of(result["instruction_id"]) is State.FILLED
    assert creates(emulator, venue) == 1
    consistent(engine, emulator, venue)


# ---- fills reported more than once ----------------------------------------------------------------------


async def test_a_fill_reported_twice_is_recorded_once(
    start: Start, emulator: Emulator, venue: str, tmp_path: Path
) -> None:
    """The same venue trades come back from the order reply, the order's trades, my-trades in two
    concurrent reconciliations, and again after a restart: each is one OrderFilled."""
    engine = await start()
    emulator.venue(venue).set_fill_ratio("ETH/USDT:USDT", "0.5")
    partial = await trade(engine, order(venue, "ETH/USDT:USDT", "SHORT", "1"))
    emulator.venue(venue).set_fill_ratio("ETH/USDT:USDT", "1")
    spot = await trade(engine, order(venue))
    assert partial["status"] == "PARTIALLY_FILLED" and spot["status"] == "FILLED"
    trades = emulator.inspect(venue)["trades"]
    assert sorted(fills_by_instruction(engine).values()) == [1, 1] and len(trades) == 2

    backend = live_backend(engine)
    assert backend is not None
    iface = engine.execution_interfaces["cex"]
    client = await backend.client(venue)
    t = backend.tracked[spot["instruction_id"]]
    spec = client.market(t.symbol) or {}
    again = await backend._order_fills(client, t, spec)  # the order endpoint reports it again
    assert again and backend._record_fills(iface, t, again) == 0

    both = await asyncio.gather(reconcile(engine, [venue]), reconcile(engine, [venue]))
    assert [r[venue]["fills_recorded"] for r in both] == [0, 0]
    await backend.close()
    engine.close(views=False)

    restarted = await start(do_reconcile=False)  # a new process knows nothing of what was recorded
    report = await reconcile(restarted, [venue])
    assert report[venue]["fills_recorded"] == 0 and report[venue]["unresolved"] == []
    ids = [e.trade_id for _n, e in restarted.ledger.iter_events() if type(e).__name__ == "OrderFilled"]
    assert sorted(ids) == sorted(t.trade_id for t in trades)
    assert all(row["difference"] == 0 for row in report[venue]["balances"])
    consistent(restarted, emulator, venue)


# ---- maintenance and the circuit breaker ------------------------------------------------------------------


def breaker_of(engine: Engine, venue: str) -> Any:
    backend = live_backend(engine)
    assert backend is not None
    return backend.breaker(venue)


async def test_outage_opens_the_breaker_then_one_probe_closes_it(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The venue answers maintenance to everything: after 3 consecutive failures (here the ticker
    reads of orders without prices) the breaker opens, new orders there are recorded
    `venue_unavailable` rejections naming the venue and the time it reopens, and nothing is sent;
    other venues trade. After the cooldown one order probes (a second one meanwhile is refused) and
    its success closes the breaker."""
    engine = await start(breaker_failures=3, breaker_cooldown_s=COOLDOWN_S)
    emulator.inject(venue, "*", "error", error="maintenance", count=10_000)
    for _ in range(3):
        r = await trade(engine, order(venue))
        assert (r["status"], r["code"]) == ("REJECTED", "no_price")
    breaker = breaker_of(engine, venue)
    assert breaker.state == "open"
    backend = live_backend(engine)
    assert backend is not None and backend.errors[venue].startswith("circuit breaker open until")
    assert f"{venue} circuit breaker open" in status_line(engine, LiveRun(), {})
    sent = len(emulator.requests(venue))
    refused = await trade(engine, order(venue))
    assert (refused["status"], refused["code"]) == ("REJECTED", "venue_unavailable")
    assert venue in refused["reason"] and breaker.until_utc.isoformat(timespec="seconds") in refused["reason"]
    assert len(emulator.requests(venue)) == sent  # nothing was sent
    engine.event_logger.flush()
    [rejected] = [
        e
        for _n, e in engine.ledger.iter_events()
        if getattr(e, "instruction_id", None) == refused["instruction_id"]
    ]
    assert type(rejected).__name__ == "InstructionRejected" and rejected.code == "venue_unavailable"
    other = next(v for v in VENUES if v != venue)
    assert (await trade(engine, order(other)))["status"] == "FILLED"

    emulator.faults.clear()
    await asyncio.sleep(COOLDOWN_S)
    probe, meanwhile = await asyncio.gather(trade(engine, order(venue)), trade(engine, order(venue)))
    assert probe["status"] == "FILLED"
    assert (meanwhile["status"], meanwhile["code"]) == ("REJECTED", "venue_unavailable")
    assert breaker.state == "closed" and venue not in backend.errors
    assert "circuit breaker" not in status_line(engine, LiveRun(), {})
    assert (await trade(engine, order(venue)))["status"] == "FILLED"
    assert creates(emulator, venue) == 2
    await reconcile(engine, [venue, other])
    consistent(engine, emulator, venue, other)


async def test_an_outage_in_half_open_opens_the_breaker_again(start: Start, emulator: Emulator) -> None:
    """A probe after the cooldown that meets the outage (HTTP 500) again reopens the breaker for a new
    cooldown; once the venue is back, the next probe closes it and the ledger matches the venue."""
    venue = "binance"
    engine = await start(breaker_failures=2, breaker_cooldown_s=COOLDOWN_S)
    emulator.inject(venue, "*", "error", error="server_error", count=10_000)
    for _ in range(2):  # orders without prices: the ticker reads fail
        assert (await trade(engine, order(venue)))["code"] == "no_price"
    breaker = breaker_of(engine, venue)
    first_until = breaker.until
    await asyncio.sleep(COOLDOWN_S)
    sent = len(emulator.requests(venue))
    probe = await trade(engine, order(venue))
    assert (probe["status"], probe["code"]) == ("REJECTED", "no_price")
    assert len(emulator.requests(venue)) > sent  # the probe did try
    assert breaker.state == "open" and breaker.until > first_until > 0
    assert breaker.until > time.monotonic()
    refused = await trade(engine, order(venue))
    assert refused["code"] == "venue_unavailable" and "circuit breaker open until" in refused["reason"]
    emulator.faults.clear()
    await asyncio.sleep(COOLDOWN_S)
    assert (await trade(engine, order(venue)))["status"] == "FILLED"
    assert breaker.state == "closed"
    await reconcile(engine, [venue])
    consistent(engine, emulator, venue)


async def test_orders_in_flight_when_the_breaker_trips_stay_resolvable(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The venue executes an order but answers 500, then every lookup fails: the order's outcome is
    unknown when the breaker opens; the venue stays closed, other venues trade; once the venue is back
    reconciliation finds the order by client id and records its fill once, and trading resumes."""
    engine = await start(breaker_failures=3, breaker_cooldown_s=COOLDOWN_S)
    emulator.inject(venue, "create_order", "error", error="server_error", apply=True)
    emulator.inject(venue, "*", "error", error="server_error", count=10_000)
    prices = {f"{venue}_eth_perp_price": "2000", f"{venue}_eth_spot_price": "2000"}  # no ticker reads
    inflight = await trade(engine, order(venue, "ETH/USDT:USDT", "LONG", "1"), prices)
    assert (inflight["status"], inflight["code"]) == ("UNKNOWN", "unknown_outcome")
    assert breaker_of(engine, venue).state == "open"
    backend = live_backend(engine)
    assert backend is not None and "circuit breaker open until" in backend.errors[venue]
    refused = await trade(engine, order(venue), prices)
    # refused unsent; the unknown outcome is named first (it says what it takes to trade again)
    assert (refused["status"], refused["code"]) == ("REJECTED", "unresolved")
    assert "circuit breaker open until" in backend.errors[venue]
    other = next(v for v in VENUES if v != venue)
    assert (await trade(engine, order(other)))["status"] == "FILLED"
    assert len(orders_with_client_id(emulator, venue, inflight["order_id"])) == 1

    emulator.faults.clear()
    await asyncio.sleep(COOLDOWN_S)
    report = await reconcile(engine, [venue])
    assert report[venue]["resolved"] == [inflight["instruction_id"]] and report[venue]["unresolved"] == []
    assert breaker_of(engine, venue).state == "closed"
    assert engine.event_logger.venue(venue).state_of(inflight["instruction_id"]) is State.FILLED
    assert fills_by_instruction(engine)[inflight["instruction_id"]] == 1
    assert (await trade(engine, order(venue)))["status"] == "FILLED"
    assert len(orders_with_client_id(emulator, venue, inflight["order_id"])) == 1
    assert creates(emulator, venue) == 2
    await reconcile(engine, [venue, other])
    consistent(engine, emulator, venue, other)


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_maintenance_on_submit_stops_resending_once_the_breaker_opens(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """Binance and OKX say OnMaintenance (rejected before execution, so re-sent): with the breaker
    at 2 failures the order is sent twice, not 1 + submit_retries times, and fails unplaced."""
    engine = await start(submit_retries=5, breaker_failures=2, breaker_cooldown_s=30)
    emulator.inject(venue, "create_order", "error", error="maintenance", count=100)
    result = await trade(engine, order(venue))
    assert (result["status"], result["code"]) == ("FAILED", "maintenance")
    assert creates(emulator, venue) == 2 and emulator.inspect(venue)["orders"] == []
    assert breaker_of(engine, venue).state == "open"
    consistent(engine, emulator, venue)


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_giving_up_on_a_maintenance_answer_first_asks_whether_the_order_exists(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The order executes, the answer says maintenance, the breaker opens at once so nothing is
    sent again: before the instruction is recorded failed the order is looked up, found and filled."""
    engine = await start(submit_retries=5, breaker_failures=1, breaker_cooldown_s=30)
    emulator.inject(venue, "create_order", "error", error="maintenance", apply=True, count=1)
    result = await trade(engine, order(venue))
    assert result["status"] == "FILLED", result
    assert creates(emulator, venue) == 1 and len(emulator.inspect(venue)["orders"]) == 1
    consistent(engine, emulator, venue)
