"""Live market data and funding: the feed and the funding poller with the real ccxt client against the
loopback emulator, through the engine; funding tests end comparing the ledger with the emulator's
account (SPEC §12.20)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from executors.live.cex_funding import to_ms
from ledger.live import live_backend, live_config, run_live
from ledger.live_feed import LiveMarketFeed
from ledger.strategies import create
from tests.emulator import Emulator
from tests.integration import test_live_cex
from tests.integration.test_live_cex import (
    FAST,
    VENUES,
    WALLETS,
    Engine,
    Start,
    assert_matches_venue,
    check_log,
    factory,
    keys,
    order,
    trade,
)

pytest_plugins = ["tests.emulator.fixtures"]
start = test_live_cex.start  # the fixture: a reconciled live engine on the emulator, as test_live_cex has it

D = Decimal
SPOT, PERP = "ETH/USDT", "ETH/USDT:USDT"
MIDS = {"binance": "2001.5", "bybit": "2003", "okx": "1999.8"}
RATES = {"binance": "0.00031", "bybit": "-0.00012", "okx": "0.0005"}


def feed_of(engine: Engine) -> LiveMarketFeed:
    backend = live_backend(engine)
    assert backend is not None
    return LiveMarketFeed(engine.config, list(VENUES), backend.client)


def funding_events(engine: Engine) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "FundingSettled"]


async def test_snapshot_has_prices_marks_and_funding_on_every_venue(start: Start, emulator: Emulator) -> None:
    """Spot, perp, bid/ask, mark and funding keys come back as Decimals equal to what each venue was
    set to (OKX's mark through its mark-price endpoint)."""
    engine = await start()
    for venue in VENUES:
        emulator.set_mid(SPOT, MIDS[venue], venues=(venue,))
        emulator.set_mid(PERP, MIDS[venue], venues=(venue,))
        emulator.venue(venue).set_funding_rate(PERP, RATES[venue])
    feed = feed_of(engine)
    market = await feed.snapshot()
    assert feed.errors == {}
    assert all(type(v) is Decimal for v in market.values())
    for venue in VENUES:
        mid, rate = D(MIDS[venue]), D(RATES[venue])
        assert market[f"{venue}_eth_spot_price"] == market[f"{venue}_spot_price"] == mid
        assert market[f"{venue}_eth_perp_price"] == market[f"{venue}_perp_price"] == mid
        assert market[f"{venue}_eth_mark_price"] == market[f"{venue}_mark_price"] == mid
        assert market[f"{venue}_eth_funding_rate"] == market[f"{venue}_funding_rate"] == rate
        for kind in ("spot", "perp"):
            assert market[f"{venue}_eth_{kind}_bid_price"] < mid < market[f"{venue}_eth_{kind}_ask_price"]
        assert f"{venue}_eth_spot_funding_rate" not in market  # spot markets have no funding
    assert market["eth_usd_price"] == D(MIDS["binance"])  # the first venue's spot price
    assert [r["name"] for r in emulator.requests("okx")].count("fetch_mark_price") == 1


async def test_a_venue_failing_its_tickers_leaves_the_others_answering(
    start: Start, emulator: Emulator
) -> None:
    """An outage on Bybit's ticker endpoint is an error entry for Bybit only; Binance and OKX still
    give their prices, marks and funding rates, and Bybit's keys are simply absent."""
    engine = await start()
    fault = emulator.inject("bybit", "fetch_ticker", "error", error="server_error", count=100)
    feed = feed_of(engine)
    market = await feed.snapshot()
    assert fault.hits >= 1
    assert set(feed.errors) == {"bybit"} and "fetch_ticker" in feed.errors["bybit"]
    assert not any(k.startswith("bybit_") for k in market)
    for venue in ("binance", "okx"):
        assert market[f"{venue}_eth_perp_price"] == D(2000)
        assert market[f"{venue}_eth_mark_price"] == D(2000)
        assert market[f"{venue}_eth_funding_rate"] == D("0.0001")  # the emulator's default
    emulator.faults.clear()
    await feed.snapshot()
    assert feed.errors == {}  # recovered: the entry goes away


async def test_funding_is_recorded_once_and_matches_the_venue(
    start: Start, emulator: Emulator, venue: str
) -> None:
    """A short perp opened live, one funding settlement at the venue: `advance` records exactly one
    FundingSettled with the venue's amount, rate and mark; the funding P&L equals it; a second advance
    and a restart record nothing more; the ledger's balances equal the emulator's."""
    engine = await start(funding_poll_s=0)
    short = await trade(engine, order(venue, PERP, "SHORT", "1"))
    assert short["status"] == "FILLED"
    emulator.venue(venue).set_funding_rate(PERP, "0.0001")
    entry = emulator.venue(venue).settle_funding(PERP, "0.0001")
    assert entry.amount == D("0.2")  # -(-1 ETH) x 2000 x 0.0001: a short receives positive funding
    backend = live_backend(engine)
    assert backend is not None
    iface = engine.execution_interfaces["cex"]
    market = await feed_of(engine).snapshot()
    await backend.advance(iface, engine.event_logger.now(), market)
    [settled] = funding_events(engine)
    assert (settled.instrument, settled.wallet, settled.asset) == (PERP, iface.wallet(venue, "perp"), "USDT")
    assert (settled.amount, settled.rate, settled.mark_price, settled.position) == (
        entry.amount,
        D("0.0001"),
        D(2000),
        D(-1),
    )
    assert to_ms(settled.ts_event) == entry.ts
    assert engine.projection.state.pnl[("funding", "USDT")] == entry.amount
    assert engine.position_monitor.pnl()["funding"] == entry.amount  # USDT at 1 USD
    await backend.advance(iface, engine.event_logger.now(), market)
    assert len(funding_events(engine)) == 1
    assert_matches_venue(engine, emulator, venue)
    engine.close(views=False)
    await backend.close()

    again = await start(funding_poll_s=0)  # a restart on the same ledger
    restarted = live_backend(again)
    assert restarted is not None
    await restarted.advance(again.execution_interfaces["cex"], again.event_logger.now(), market)
    assert len(funding_events(again)) == 1
    assert again.projection.state.pnl[("funding", "USDT")] == entry.amount
    assert_matches_venue(again, emulator, venue)
    check_log(again)


async def test_funding_history_outage_is_reported_and_caught_up(start: Start, emulator: Emulator) -> None:
    """A venue failing its funding history is a status-line problem, not a crash; the payment is
    recorded at the next poll once the venue answers."""
    venue = "binance"
    engine = await start(funding_poll_s=0)
    assert (await trade(engine, order(venue, PERP, "LONG", "0.5")))["status"] == "FILLED"
    entry = emulator.venue(venue).settle_funding(PERP, "0.0002")
    backend = live_backend(engine)
    assert backend is not None
    iface = engine.execution_interfaces["cex"]
    emulator.inject(venue, "fetch_funding_history", "error", error="rate_limit", count=100)
    prices = {f"{venue}_eth_perp_price": D(2000)}  # no mark or funding keys: the rate is implied
    await backend.advance(iface, engine.event_logger.now(), prices)
    assert funding_events(engine) == [] and backend.errors[venue].startswith("funding history:")
    emulator.faults.clear()
    await backend.advance(iface, engine.event_logger.now(), prices)
    [settled] = funding_events(engine)
    assert settled.amount == entry.amount == D("-0.2") and venue not in backend.errors
    assert settled.rate == D("0.0002")  # neither venue nor feed said: implied by amount / notional
    assert_matches_venue(engine, emulator, venue)


async def test_run_live_records_snapshots_and_shows_marks_and_funding(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`run_live`: every InstructionAccepted carries the feed's mark and funding keys, funding settled
    between steps is recorded by the next step, and the status line shows the marks, the held perps'
    funding rates and the funding received."""
    for v in VENUES:
        for wallet in WALLETS[v].values():
            emulator.venue(v).set_balance(wallet, "ETH", "0")
    strategy = create("demo_basis", capital=D(4000))
    config = live_config(
        {
            "ledger": {"url": f"sqlite:///{tmp_path / 'run.db'}"},
            "venues": list(VENUES),
            **keys(emulator),
            "live": {**FAST, "funding_poll_s": 0},
        },
        strategy=strategy,
    )
    lines: list[str] = []
    settled: list[Any] = []
    settled_after: list[int] = []

    def status(line: str) -> None:
        lines.append(line)
        if not settled:  # once the hedges are on: the venues holding a perp settle funding
            for v in VENUES:
                if emulator.inspect(v)["positions"].get(PERP, {}).get("base_amount"):
                    settled.append(emulator.venue(v).settle_funding(PERP, "0.0001"))
            if settled:
                settled_after.append(len(lines))

    run, engine = await run_live(
        config, strategy, interval_s=0, max_steps=3, status=status, client_factory=factory(emulator)
    )
    assert run.steps == 3 and len(lines) == 3 and settled and settled_after[0] < 3
    accepted = [e for _n, e in engine.ledger.iter_events() if type(e).__name__ == "InstructionAccepted"]
    assert accepted
    for e in accepted:
        for v in VENUES:
            assert e.market[f"{v}_eth_mark_price"] == D(2000)
            assert e.market[f"{v}_eth_funding_rate"] == D("0.0001")
    assert [e.amount for e in funding_events(engine)] == [s.amount for s in settled]
    total = sum((s.amount for s in settled), D(0))
    line = lines[-1]
    assert len(line.splitlines()) == 1
    assert "marks binance 2000.00 bybit 2000.00 okx 2000.00" in line
    assert "fr +0.0100%" in line and "perps " in line
    assert f"funding {'received' if total >= 0 else 'paid'} {abs(total):,.2f} USD" in line
    assert "funding received 0.00 USD" in lines[settled_after[0] - 1]  # before the settlement
    for v in VENUES:
        assert_matches_venue(engine, emulator, v)
