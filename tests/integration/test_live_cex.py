"""Live CEX execution: the real ccxt client against the loopback emulator, through the engine.

Every test ends by comparing what the ledger says with what the emulated venue holds (SPEC §12.20).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aggregates.transitions import State
from ledger.app import Ledger
from ledger.cli_output import plain
from ledger.engine import EventDrivenStrategyEngine
from ledger.live import (
    format_status,
    live_backend,
    live_config,
    open_engine,
    reconcile,
    run_live,
    run_reconcile,
)
from ledger.strategies import create
from ledger.testing.checkers import check_lifecycle, check_no_floats, check_rebuild_equals
from tests.emulator import Emulator, make_client
from tests.emulator.helpers import orders_with_client_id

pytest_plugins = ["tests.emulator.fixtures"]

D = Decimal
VENUES = ("binance", "bybit", "okx")
# ledger wallet -> emulator wallet
WALLETS = {
    "binance": {"spot": "spot", "futures": "futures"},
    "bybit": {"unified": "unified"},
    "okx": {"trading": "unified"},
}
LIVE_FINAL = frozenset(State) - {State.ACCEPTED, State.SUBMITTED, State.CANCEL_REQUESTED}
FAST = {
    "lookup_attempts": 3,
    "lookup_backoff_s": 0.05,
    "retry_backoff_s": 0.01,
    "fill_poll_s": 0.02,
    "fill_timeout_s": 3,
    "poll_interval_s": 0,
    "symbols": ["ETH/USDT", "ETH/USDT:USDT"],
}
Engine = EventDrivenStrategyEngine


SETTINGS: list[dict[str, Any]] = []


def factory(
    emulator: Emulator, *, rate_limit: bool = False, timeout_ms: int | None = None
) -> Callable[[str, dict[str, Any]], Any]:
    """Build the venue clients through the emulator's transport from the settings the backend made
    (ccxt's rate limiter, on in those settings, is switched off except where a test keeps it: the
    emulator does not throttle, and the suite would take minutes)."""

    def build(venue: str, settings: dict[str, Any]) -> Any:
        SETTINGS.append(settings)
        creds = {k: settings[k] for k in ("apiKey", "secret", "password") if k in settings}
        return make_client(
            venue,
            emulator,
            credentials=creds,
            options=settings["options"],
            enable_rate_limit=settings["enableRateLimit"] and rate_limit,
            timeout_ms=timeout_ms or settings["timeout"],
        )

    return build


def keys(emulator: Emulator, venues: tuple[str, ...] = VENUES) -> dict[str, str]:
    out = {}
    for venue in venues:
        c = emulator.credentials[venue]
        out[f"{venue}_api_key"], out[f"{venue}_secret"] = c.api_key, c.secret
        if c.passphrase:
            out[f"{venue}_passphrase"] = c.passphrase
    return out


Start = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def start(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Start]:
    """`await start(**live_settings)`: a reconciled live engine on a ledger in tmp_path (balances adopted)."""
    engines: list[Engine] = []

    async def _start(
        *,
        db: str = "live.db",
        timeout_ms: int | None = None,
        credentials: dict[str, str] | None = None,
        do_reconcile: bool = True,
        rate_limit: bool = False,
        **live: Any,
    ) -> Engine:
        config = {
            "ledger": {"url": f"sqlite:///{tmp_path / db}"},
            "venues": list(VENUES),
            **(credentials if credentials is not None else keys(emulator)),
            "live": {**FAST, **live},
        }
        engine = open_engine(
            live_config(config), factory(emulator, rate_limit=rate_limit, timeout_ms=timeout_ms)
        )
        engines.append(engine)
        if do_reconcile:
            await reconcile(engine)
        return engine

    yield _start
    await close_all(engines)


async def close_all(engines: list[Engine]) -> None:
    """Close each engine's venue clients and the engine (a test's teardown)."""
    for engine in engines:
        backend = live_backend(engine)
        if backend is not None:
            await backend.close()
        chain = getattr(engine.execution_interfaces["onchain"], "backend", None)
        close = getattr(chain, "close", None)
        if close is not None:
            await close()
        if not engine.closed:
            engine.close(views=False)


def order(
    venue: str, pair: str = "ETH/USDT", side: str = "BUY", amount: str = "0.5", **extra: Any
) -> dict[str, Any]:
    kind = "PERP" if ":" in pair else "SPOT"
    return {
        "venue_type": "cex",
        "venue": venue,
        "trade_type": kind,
        "pair": pair,
        "side": side,
        "amount": amount,
        **extra,
    }


async def trade(engine: Engine, ins: dict[str, Any]) -> dict[str, Any]:
    return await engine.execute_trade_with_interface(ins, {})


def events_of(engine: Engine, iid: str) -> list[Any]:
    return [e for _nid, e in engine.ledger.iter_events() if getattr(e, "instruction_id", None) == iid]


def names(engine: Engine, iid: str) -> list[str]:
    return [type(e).__name__ for e in events_of(engine, iid)]


def assert_matches_venue(engine: Engine, emulator: Emulator, venue: str) -> None:
    """Ledger balances per wallet and perp positions equal the emulator's account."""
    state = emulator.inspect(venue)
    balances = engine.projection.state.balances
    for wallet, emu_wallet in WALLETS[venue].items():
        venue_side = {a: v["total"] for a, v in state["balances"].get(emu_wallet, {}).items() if v["total"]}
        ledger_side = {a: amt for (v, w, a), amt in balances.items() if v == venue and w == wallet and amt}
        assert ledger_side == venue_side, f"{venue}/{wallet}"
    mon = engine.position_monitor
    for symbol in ("ETH/USDT:USDT", "BTC/USDT:USDT"):
        held = state["positions"].get(symbol, {}).get("base_amount", D(0))
        assert mon.position(symbol, venue)["amount"] == held, symbol


def check_log(engine: Engine) -> None:
    check_lifecycle(engine, LIVE_FINAL)
    check_no_floats(engine)
    check_rebuild_equals(engine)


# ---- placing -------------------------------------------------------------------------------------------


async def test_market_orders_fill_and_match_the_venue(start: Start, emulator: Emulator, venue: str) -> None:
    """Spot and perp market orders fill; every venue trade is one OrderFilled in base units (with
    ccxt's rate limiter on, as live runs have it, and library retries off)."""
    SETTINGS.clear()
    engine = await start(rate_limit=True)
    assert SETTINGS and all(
        s["enableRateLimit"] and s["options"]["maxRetriesOnFailure"] == 0 for s in SETTINGS
    )
    buy = await trade(engine, order(venue))
    short = await trade(engine, order(venue, "ETH/USDT:USDT", "SHORT", "1"))
    emulator.set_mid("ETH/USDT:USDT", "1900", venues=(venue,))
    cover = await trade(engine, order(venue, "ETH/USDT:USDT", "LONG", "0.4", reduce_only=True))
    assert [r["status"] for r in (buy, short, cover)] == ["FILLED"] * 3
    assert (buy["amount"], buy["price"], buy["fee_asset"]) == (D("0.5"), D("2000"), "ETH")
    assert (short["amount"], short["fee_asset"]) == (D("1"), "USDT")
    assert cover["price"] == D("1900")
    assert names(engine, buy["instruction_id"]) == [
        "InstructionAccepted",
        "OrderSubmitted",
        "OrderAcknowledged",
        "OrderFilled",
    ]
    state = emulator.inspect(venue)
    fills = [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "OrderFilled"]
    assert sorted(f.trade_id for f in fills) == sorted(t.trade_id for t in state["trades"])
    assert sum(f.quantity for f in fills) == D("1.9")  # OKX contracts converted to ETH
    assert [o.client_id for o in state["orders"]] == [r["order_id"] for r in (buy, short, cover)]
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_intent_is_durable_before_the_request_leaves(
    start: Start, emulator: Emulator, venue: str, tmp_path: Path
) -> None:
    """While the venue holds the create request, another reader already sees OrderSubmitted."""
    engine = await start()
    emulator.inject(venue, "create_order", "delay", apply=False, delay_s=0.6)
    task = asyncio.create_task(trade(engine, order(venue)))
    for _ in range(200):
        if any(r["name"] == "create_order" for r in emulator.requests(venue)):
            break
        await asyncio.sleep(0.01)
    assert emulator.inspect(venue)["orders"] == []  # the venue has not processed it yet
    reader = Ledger.open(f"sqlite:///{tmp_path / 'live.db'}", synchronous="NORMAL")
    submitted = [e for _n, e in reader.iter_events() if type(e).__name__ == "OrderSubmitted"]
    assert len(submitted) == 1
    result = await task
    assert result["status"] == "FILLED"
    assert submitted[0].client_order_id == result["order_id"]
    assert len(orders_with_client_id(emulator, venue, result["order_id"])) == 1
    assert_matches_venue(engine, emulator, venue)


async def test_timeout_after_acceptance_is_resolved_by_client_id(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The reply never comes: OrderOutcomeUnknown, the lookup by client id finds the order, it fills
    once and is never sent again."""
    engine = await start(timeout_ms=700)
    emulator.inject(venue, "create_order", "timeout")
    result = await trade(engine, order(venue, "ETH/USDT:USDT", "LONG", "1"))
    assert result["status"] == "FILLED" and result["amount"] == D("1")
    assert names(engine, result["instruction_id"]) == [
        "InstructionAccepted",
        "OrderSubmitted",
        "OrderOutcomeUnknown",
        "OrderReconciled",
        "OrderFilled",
    ]
    [reconciled] = [
        e for e in events_of(engine, result["instruction_id"]) if type(e).__name__ == "OrderReconciled"
    ]
    assert reconciled.outcome == "filled" and reconciled.venue_order_id
    assert len(orders_with_client_id(emulator, venue, result["order_id"])) == 1
    assert len(emulator.inspect(venue)["trades"]) == 1
    assert [r["name"] for r in emulator.requests(venue)].count("create_order") == 1
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_lost_request_is_not_placed_and_not_sent_again(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """A connection dropped before the venue processed it: not found by client id, recorded
    not_found, nothing re-sent; the venue keeps trading."""
    engine = await start()
    emulator.inject(venue, "create_order", "drop")
    lost = await trade(engine, order(venue))
    assert (lost["status"], lost["code"]) == ("FAILED", "not_placed")
    assert names(engine, lost["instruction_id"])[-2:] == ["OrderOutcomeUnknown", "OrderReconciled"]
    assert emulator.inspect(venue)["orders"] == []
    assert [r["name"] for r in emulator.requests(venue)].count("create_order") == 1
    again = await trade(engine, order(venue))
    assert again["status"] == "FILLED"
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_insufficient_funds_is_a_recorded_failure(start: Start, emulator: Emulator, venue: str) -> None:
    """The venue refuses (InsufficientFunds): OrderFailed with a code; nothing placed."""
    engine = await start()
    result = await trade(engine, order(venue, amount="1000"))
    assert (result["status"], result["code"]) == ("FAILED", "insufficient_balance")
    assert "InsufficientFunds" in result["reason"]
    [failed] = [e for e in events_of(engine, result["instruction_id"]) if type(e).__name__ == "OrderFailed"]
    assert failed.code == "insufficient_balance"
    assert emulator.inspect(venue)["orders"] == []
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_precision_and_minimums_are_rejected_before_sending(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """Amounts off the step, below the minimum or under the minimum notional, prices off the tick and
    unknown symbols are recorded rejections with a code; no order request reaches the venue."""
    engine = await start()
    small = (
        (order(venue, amount="0.0005"), "min_amount")
        if venue == "okx"
        else (order(venue, amount="0.001"), "min_notional")
    )  # OKX lists no minimum value, a minimum size
    cases = [
        (order(venue, amount="0.0000001"), "precision"),
        (order(venue, "ETH/USDT:USDT", "SHORT", "0.0001"), "precision"),  # OKX: 0.001 contracts
        small,
        (order(venue, amount="0.1", order_type="LIMIT", price="1900.001"), "precision"),
        (order(venue, "DOGE/USDT"), "unknown_symbol"),
    ]
    for ins, code in cases:
        result = await trade(engine, ins)
        assert (result["status"], result["code"]) == ("REJECTED", code), (ins, result["reason"])
        assert names(engine, result["instruction_id"]) == ["InstructionRejected"]
    assert "create_order" not in [r["name"] for r in emulator.requests(venue)]
    check_log(engine)


async def test_partial_fills_of_a_market_order(start: Start, emulator: Emulator, venue: str) -> None:
    """The venue fills half and expires the rest: one fill recorded, then OrderCancelled."""
    engine = await start()
    emulator.venue(venue).set_fill_ratio("ETH/USDT", "0.5")
    result = await trade(engine, order(venue, amount="1"))
    assert (result["status"], result["amount"]) == ("PARTIALLY_FILLED", D("0.5"))
    assert names(engine, result["instruction_id"])[-2:] == ["OrderFilled", "OrderCancelled"]
    assert engine.projection.state.orders[result["instruction_id"]].status == "CANCELLED"
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_resting_limit_order_filled_later_by_advance(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """A limit buy rests (SUBMITTED); fills the venue reports later are picked up by advance()."""
    engine = await start()
    result = await trade(engine, order(venue, amount="0.2", order_type="LIMIT", price="1900"))
    iid = result["instruction_id"]
    assert result["status"] == "SUBMITTED"
    assert live_backend(engine).next_due(engine.execution_interfaces["cex"]) is not None  # type: ignore[union-attr]
    emulator.venue(venue).set_fill_ratio("ETH/USDT", "0.5")
    emulator.set_mid("ETH/USDT", "1890", venues=(venue,))
    await engine.advance_to(datetime.now(UTC), {})
    assert engine.projection.state.orders[iid].status == "PARTIALLY_FILLED"
    emulator.venue(venue).set_fill_ratio("ETH/USDT", "1")
    emulator.set_mid("ETH/USDT", "1880", venues=(venue,))
    await engine.advance_to(datetime.now(UTC), {})
    assert engine.projection.state.orders[iid].status == "FILLED"
    assert names(engine, iid).count("OrderFilled") == len(emulator.inspect(venue)["trades"]) == 2
    assert live_backend(engine).next_due(engine.execution_interfaces["cex"]) is None  # type: ignore[union-attr]
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_cancel_all_orders(start: Start, emulator: Emulator, venue: str) -> None:
    """cancel_all_orders(venue) cancels spot and perp orders (OKX: listed, then cancelled)."""
    engine = await start()
    a = await trade(engine, order(venue, amount="0.1", order_type="LIMIT", price="1500"))
    b = await trade(engine, order(venue, "ETH/USDT:USDT", "SHORT", "0.5", order_type="LIMIT", price="2500"))
    assert a["status"] == b["status"] == "SUBMITTED"
    done = await engine.execution_interfaces["cex"].cancel_all_orders(venue)
    assert sorted(done["cancelled_orders"]) == sorted([a["instruction_id"], b["instruction_id"]])
    assert emulator.venue(venue).open_orders() == []
    for r in (a, b):
        assert names(engine, r["instruction_id"])[-2:] == ["CancelRequested", "OrderCancelled"]
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


# ---- unknown outcomes, restarts, reconciliation --------------------------------------------------------


async def test_fail_closed_while_unresolved_other_venues_trade(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """An outcome that cannot be looked up keeps the venue closed (code `unresolved`, one message);
    other venues trade; reconciliation resolves it and the venue trades again."""
    engine = await start(timeout_ms=700)
    emulator.inject(venue, "create_order", "timeout")
    emulator.inject(venue, "fetch_order", "error", error="server_error", count=100)
    first = await trade(engine, order(venue))
    assert (first["status"], first["code"]) == ("UNKNOWN", "unknown_outcome")
    refused = await trade(engine, order(venue))
    assert (refused["status"], refused["code"]) == ("REJECTED", "unresolved")
    assert "ledger reconcile" in refused["reason"] and "\n" not in refused["reason"]
    other = next(v for v in VENUES if v != venue)
    assert (await trade(engine, order(other)))["status"] == "FILLED"
    emulator.faults.clear()
    report = await reconcile(engine, [venue])
    assert report[venue]["resolved"] == [first["instruction_id"]] and report[venue]["unresolved"] == []
    assert (await trade(engine, order(venue)))["status"] == "FILLED"
    assert len(orders_with_client_id(emulator, venue, first["order_id"])) == 1
    for v in (venue, other):
        assert_matches_venue(engine, emulator, v)
    check_log(engine)


async def test_restart_after_a_kill_reconciles_the_fill_once(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The process dies between OrderSubmitted and the reply; the next start refuses the venue until
    reconciliation finds the order by client id and records its fill, once even when run twice."""
    first = await start()
    emulator.inject(venue, "create_order", "delay", apply=True, delay_s=3)
    task = asyncio.create_task(trade(first, order(venue, "ETH/USDT:USDT", "LONG", "1")))
    for _ in range(300):
        if emulator.inspect(venue)["orders"]:
            break
        await asyncio.sleep(0.01)
    task.cancel()  # the kill: nothing after OrderSubmitted reaches the log
    with pytest.raises(asyncio.CancelledError):
        await task
    await live_backend(first).close()  # type: ignore[union-attr]
    first.closed = True  # a killed process writes no SessionEnded
    [cid] = [o.client_id for o in emulator.inspect(venue)["orders"]]

    second = await start(do_reconcile=False)
    refused = await trade(second, order(venue))
    assert (refused["status"], refused["code"]) == ("REJECTED", "unresolved")
    report = await reconcile(second)
    [iid] = report[venue]["resolved"]
    again = await reconcile(second)
    assert again[venue]["fills_recorded"] == 0 and again[venue]["resolved"] == []
    assert names(second, iid) == ["InstructionAccepted", "OrderSubmitted", "OrderReconciled", "OrderFilled"]
    assert [e.client_order_id for e in events_of(second, iid) if type(e).__name__ == "OrderSubmitted"] == [
        cid
    ]
    assert len(orders_with_client_id(emulator, venue, cid)) == 1
    assert (await trade(second, order(venue)))["status"] == "FILLED"
    assert_matches_venue(second, emulator, venue)
    check_log(second)


async def test_reconciliation_records_a_missing_fill_exactly_once(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """The trades endpoint fails while the order fills: the fill is missing until reconciliation
    records it; a second reconciliation records nothing more; balances then agree."""
    engine = await start()
    emulator.inject(venue, "fetch_my_trades", "error", error="server_error", count=100)
    result = await trade(engine, order(venue, "ETH/USDT:USDT", "SHORT", "1"))
    assert result["status"] == "SUBMITTED" and result["amount"] == 0
    iface = engine.execution_interfaces["cex"]
    assert (await iface.get_position("ETH/USDT:USDT", venue))["amount"] == 0
    emulator.faults.clear()
    position = await iface.get_position("ETH/USDT:USDT", venue, refresh=True)  # reconciles first
    assert position["amount"] == D("-1")
    report = await reconcile(engine, [venue])
    assert report[venue]["fills_recorded"] == 0
    assert names(engine, result["instruction_id"]).count("OrderFilled") == 1
    observed = [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "BalanceObserved"]
    assert observed and all(e.difference == 0 for e in observed[-3:])
    assert_matches_venue(engine, emulator, venue)
    check_log(engine)


async def test_balance_differences_are_observed(start: Start, emulator: Emulator) -> None:
    """A deposit made outside the ledger shows up as BalanceObserved with its difference; the ledger's
    own balance is not changed by an observation."""
    engine = await start()
    emulator.venue("binance").set_balance("spot", "USDT", "100500")
    iface = engine.execution_interfaces["cex"]
    assert await iface.get_balance("USDT", "binance", refresh=True) == D("200000")
    [row] = [
        e
        for _n, e in engine.ledger.iter_events()
        if type(e).__name__ == "BalanceObserved" and e.asset == "USDT" and e.wallet == "spot"
    ][-1:]
    assert (row.observed, row.ledger, row.difference) == (D("100500"), D("100000"), D("500"))


async def test_clock_skew_and_rate_limits_are_retried_safely(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """A skewed venue clock is measured before the first signed call; InvalidNonce and rate-limit
    rejections of a submit are sent again (they never executed): one order, one fill."""
    emulator.clock.offset_ms = 120_000
    engine = await start()
    emulator.inject(venue, "create_order", "error", error="invalid_timestamp")
    emulator.inject(venue, "create_order", "error", error="rate_limit")
    result = await trade(engine, order(venue))
    assert result["status"] == "FILLED"
    assert [r["name"] for r in emulator.requests(venue)].count("create_order") == 3
    assert len(emulator.inspect(venue)["orders"]) == 1
    assert_matches_venue(engine, emulator, venue)


async def test_missing_credentials_and_unreachable_venues(start: Start, emulator: Emulator) -> None:
    """No keys for a venue: a recorded rejection naming the keys, nothing sent; others trade."""
    engine = await start(credentials=keys(emulator, ("binance",)))
    result = await trade(engine, order("okx"))
    assert (result["status"], result["code"]) == ("REJECTED", "missing_credentials")
    assert "okx_api_key" in result["reason"] and "OKX_API_KEY" in result["reason"]
    assert emulator.requests("okx") == []
    assert (await trade(engine, order("binance")))["status"] == "FILLED"
    emulator.inject("bybit", "*", "error", error="maintenance", count=1000)
    engine2 = await start(db="other.db", credentials=keys(emulator))
    refused = await trade(engine2, order("bybit"))
    assert (refused["status"], refused["code"]) == ("REJECTED", "venue_unavailable")
    check_log(engine)


async def test_secrets_never_reach_events_logs_or_errors(
    start: Start,
    emulator: Emulator,
    venue: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """API keys, secrets and passphrases appear in no stored byte, event, result, log line, output or
    error message — also when the venue refuses the credentials."""
    caplog.set_level(logging.DEBUG)
    engine = await start()
    texts: list[str] = []
    texts.append(repr(await trade(engine, order(venue))))
    emulator.inject(venue, "create_order", "error", error="invalid_api_key")
    texts.append(repr(await trade(engine, order(venue))))
    texts.append(repr(live_backend(engine)))
    wrong = {**keys(emulator), f"{venue}_secret": "wrong-secret-0123456789"}
    bad = await start(db="bad.db", credentials=wrong)
    texts.append(repr(await trade(bad, order(venue))))
    texts.append(repr(await reconcile(bad)))
    texts.extend(repr(e) for _n, e in engine.ledger.iter_events())
    texts.extend(repr(e) for _n, e in bad.ledger.iter_events())
    for engine_ in (engine, bad):
        texts.append(repr(live_backend(engine_).errors))  # type: ignore[union-attr]
        texts.append(repr(live_backend(engine_).clients))  # type: ignore[union-attr]
    texts.append(caplog.text)
    texts.append("".join(capsys.readouterr()))
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    c = emulator.credentials[venue]
    for secret in (c.api_key, c.secret, c.passphrase, "wrong-secret-0123456789"):
        if not secret:
            continue
        assert secret.encode() not in stored
        for text in texts:
            assert secret not in text


# ---- the runner ----------------------------------------------------------------------------------------


async def test_run_live_demo_strategy_and_reconcile_command(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_live` reconciles, runs the demo strategy on ticker snapshots (spot on Binance, perp hedges on
    Bybit and OKX), prints status lines, puts each step's venue replies on disk, and ends its session;
    `run_reconcile` then finds nothing open."""
    from ledger.app import Ledger

    syncs: list[int] = []
    real_sync = Ledger.sync

    def counting(self: Ledger) -> None:
        syncs.append(self.max_notification_id())
        real_sync(self)

    monkeypatch.setattr(Ledger, "sync", counting)
    for venue in VENUES:
        for wallet in WALLETS[venue].values():
            emulator.venue(venue).set_balance(wallet, "ETH", "0")
    strategy = create("demo_basis", capital=D(4000))
    config = live_config(
        {
            "ledger": {"url": f"sqlite:///{tmp_path / 'run.db'}"},
            "venues": list(VENUES),
            **keys(emulator),
            "live": dict(FAST),
        },
        strategy=strategy,
    )
    lines: list[str] = []
    records: list[dict[str, Any]] = []
    run, engine = await run_live(
        config, strategy, interval_s=0, max_steps=3, status=lines.append, status_data=records.append,
        client_factory=factory(emulator),
    )
    assert run.steps == 3 and len(lines) == 3 and "equity" in lines[-1]
    # `ledger live --json`: the status line's data, one JSON object per step (Decimals as text).
    assert [format_status(r) for r in records] == lines
    step = json.loads(json.dumps(plain(records[-1])))
    assert step["step"] == 3 and step["mode"] == "live" and step["unresolved"] == 0
    assert D(step["equity"]) == records[-1]["equity"] and isinstance(step["net_eth"], str)
    assert run.statuses.get("FILLED", 0) >= 3, run.statuses
    assert syncs, "steps that traded ended without putting their replies on disk"
    assert engine.closed
    for venue in VENUES:
        assert_matches_venue(engine, emulator, venue)
    net = engine.position_monitor.exposure().get("ETH", D(0))
    assert abs(net) <= D("0.01")
    report = await run_reconcile(
        {
            "ledger": {"url": f"sqlite:///{tmp_path / 'run.db'}"},
            "venues": list(VENUES),
            **keys(emulator),
            "live": dict(FAST),
        },
        client_factory=factory(emulator),
    )
    assert all(r["unresolved"] == [] and r["error"] == "" for r in report.values())
    assert all(row["difference"] == 0 for r in report.values() for row in r["balances"])


async def test_dry_run_fills_simulated_on_live_prices(emulator: Emulator, tmp_path: Path) -> None:
    """--dry-run: market data from the venues' tickers, fills from the simulator, nothing sent."""
    emulator.set_mid("ETH/USDT", "2100")
    strategy = create("demo_basis", capital=D(4000))
    config = live_config(
        {"ledger": {"url": f"sqlite:///{tmp_path / 'dry.db'}"}, "venues": list(VENUES), "live": dict(FAST)},
        dry_run=True,
        strategy=strategy,
    )
    run, engine = await run_live(
        config, strategy, interval_s=0, max_steps=2, client_factory=factory(emulator)
    )
    assert engine.execution_mode == "dry-run" and run.statuses.get("FILLED", 0) >= 1
    fills = [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "OrderFilled"]
    assert fills and fills[0].reference_price == D("2100")  # the Binance ticker, moved by the cost model
    for venue in VENUES:
        assert "create_order" not in [r["name"] for r in emulator.requests(venue)]


# ---- the commands ----------------------------------------------------------------------------------------


def _cli() -> Any:
    import typer

    from ledger.cli_live import live, reconcile

    app = typer.Typer()
    app.command()(live)
    app.command()(reconcile)
    return app


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    """A missing config file or a bad option: one `error:` line, exit 2, no traceback."""
    from typer.testing import CliRunner

    runner = CliRunner()
    for args in (
        ["reconcile", "--config", str(tmp_path / "nope.toml")],
        ["live", "--config", str(tmp_path / "nope.toml")],
        ["live", "--config", str(tmp_path / "nope.toml"), "--capital", "-1"],
        ["live", "--config", str(tmp_path / "nope.toml"), "--steps", "0"],
    ):
        result = runner.invoke(_cli(), args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "Traceback" not in result.output


def test_cli_reconcile_without_keys_reports_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    """Venues without credentials: reconcile names the missing keys per venue, sends nothing, exit 1."""
    from typer.testing import CliRunner

    for venue in VENUES:
        for key in ("API_KEY", "SECRET", "PASSPHRASE"):
            monkeypatch.delenv(f"{venue.upper()}_{key}", raising=False)
    path = tmp_path / "live.toml"
    path.write_text(f'venues = ["binance", "okx"]\n[ledger]\nurl = "sqlite:///{tmp_path / "r.db"}"\n')
    result = CliRunner().invoke(_cli(), ["reconcile", "--config", str(path), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output.splitlines()[0])
    assert set(report) == {"binance", "okx"}
    assert "binance_api_key" in report["binance"]["error"] and "okx_passphrase" in report["okx"]["error"]
    assert emulator.requests("binance") == [] and emulator.requests("okx") == []
