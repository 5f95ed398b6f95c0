"""One CEX contract, two backends: the same instructions through the simulator (backtest) and through
the live ccxt backend on the loopback emulator, per venue (SPEC §5, §12.10).

Both event sequences must be allowed by the same lifecycle grammar, the results must have the same
shape and the same status class; partial fills, prices and timings may differ. Bad input is a
recorded refusal with a code in both (an `InstructionRejected` before sending, or — when only the
venue can tell, as with a balance the venue holds — an `OrderFailed` with the venue's code).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aggregates.transitions import State
from ledger.engine import EventDrivenStrategyEngine
from ledger.live import live_config, open_engine, reconcile
from ledger.testing import LIVE_FINAL_STATES, check_conservation, check_lifecycle, check_rebuild_equals
from tests.emulator import Emulator
from tests.integration.test_live_cex import FAST, assert_matches_venue, close_all, factory, keys

pytest_plugins = ["tests.emulator.fixtures"]

D = Decimal
Engine = EventDrivenStrategyEngine
# the emulator's opening balances, per ledger wallet (tests/emulator/README.md)
OPENING = {"USDT": "100000", "ETH": "10", "BTC": "1", "LTC": "100"}
SIM_BALANCES = {
    "binance": {"binance.spot": OPENING, "binance.futures": {"USDT": "100000"}},
    "bybit": {"bybit.unified": OPENING},
    "okx": {"okx.trading": OPENING},
}
# Status classes: what a caller may rely on whichever backend answered (SPEC §12.10).
CLASSES = {
    "FILLED": "done",
    "PARTIALLY_FILLED": "done",
    "SUBMITTED": "working",
    "REJECTED": "refused",
    "FAILED": "refused",
}
STATE_CLASSES = {
    State.FILLED: "done",
    State.PARTIALLY_FILLED: "done",
    State.SUBMITTED: "working",
    State.ACKNOWLEDGED: "working",
    State.CANCELLED: "cancelled",
    State.REJECTED: "refused",
    State.FAILED: "refused",
}
# The keys every CEX result carries, with their types, whatever the status (SPEC §5).
COMMON = {
    "status": str,
    "amount": Decimal,
    "price": Decimal,
    "order_id": str,
    "execution_mode": str,
    "instruction_id": str,
    "venue": str,
    "symbol": str,
    "side": str,
    "trade_type": str,
    "fee": Decimal,
    "fee_asset": str,
}


def ins(iid: str, pair: str, side: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "instruction_id": iid,
        "venue_type": "cex",
        "trade_type": "PERP" if ":" in pair else "SPOT",
        "pair": pair,
        "side": side,
        "amount": amount,
        **extra,
    }


def below_minimum(venue: str) -> str:
    """An ETH/USDT amount the venue refuses: 2 USDT is under Binance's and Bybit's minimum value;
    OKX lists no minimum value but a minimum size of 0.001 ETH."""
    return "0.0005" if venue == "okx" else "0.001"


# (instruction, status class) in the order they run; the perp legs build on each other.
def cases(venue: str) -> list[tuple[dict[str, Any], str]]:
    return [
        (ins("spot-buy", "ETH/USDT", "BUY", "0.5"), "done"),
        (ins("spot-sell", "ETH/USDT", "SELL", "0.3"), "done"),
        (ins("perp-open", "ETH/USDT:USDT", "SHORT", "1"), "done"),
        (ins("perp-reduce", "ETH/USDT:USDT", "LONG", "0.4", reduce_only=True), "done"),
        (ins("perp-close", "ETH/USDT:USDT", "LONG", "0.6"), "done"),
        (ins("limit-rests", "ETH/USDT", "BUY", "0.2", order_type="LIMIT", price="1900"), "working"),
        (ins("unknown-symbol", "DOGE/USDT", "BUY", "1"), "refused"),
        (ins("insufficient", "ETH/USDT", "BUY", "1000"), "refused"),
        (ins("reduce-nothing", "ETH/USDT:USDT", "LONG", "0.1", reduce_only=True), "refused"),
    ]


# A difference of the two backends that this suite pins so it cannot change unnoticed: the
# simulator models no venue minimums (lot step, minimum size or value), the live backend refuses
# such an order before sending. When the simulator learns them, this case joins `cases`.
SIM_HAS_NO_MINIMUMS = "below-minimum"


def market(venue: str) -> dict[str, Any]:
    return {f"{venue}_eth_spot_price": "2000", f"{venue}_eth_perp_price": "2000", "eth_usd_price": "2000"}


Start = Callable[[str], Awaitable[Engine]]


@pytest.fixture
async def live(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Start]:
    """`await live(venue)`: a reconciled live engine for one venue (balances adopted)."""
    engines: list[Engine] = []

    async def _start(venue: str) -> Engine:
        config = {
            "ledger": {"url": f"sqlite:///{tmp_path / 'live.db'}", "views": False},
            "venues": [venue],
            **keys(emulator, (venue,)),
            "live": dict(FAST),
        }
        engine = open_engine(live_config(config), factory(emulator))
        engines.append(engine)
        await reconcile(engine)
        return engine

    yield _start
    await close_all(engines)


def simulated(venue: str, tmp_path: Path) -> Engine:
    return EventDrivenStrategyEngine(
        {
            "execution_mode": "backtest",
            "venues": [venue],
            "ledger": {"url": f"sqlite:///{tmp_path / 'sim.db'}", "views": False},
            "initial_balances": SIM_BALANCES[venue],
        }
    )


async def run_all(engine: Engine, venue: str) -> dict[str, dict[str, Any]]:
    """Every case in order; the resting limit order is then cancelled with cancel_all_orders."""
    out: dict[str, dict[str, Any]] = {}
    for instruction, _class in cases(venue):
        out[instruction["instruction_id"]] = await engine.execute_trade_with_interface(
            {**instruction, "venue": venue}, market(venue)
        )
    small = ins(SIM_HAS_NO_MINIMUMS, "ETH/USDT", "BUY", below_minimum(venue))
    out[SIM_HAS_NO_MINIMUMS] = await engine.execute_trade_with_interface(
        {**small, "venue": venue}, market(venue)
    )
    cancelled = await engine.execution_interfaces["cex"].cancel_all_orders(venue)
    assert cancelled["cancelled_orders"] == ["limit-rests"]
    return out


def sequences(engine: Engine) -> dict[str, list[str]]:
    engine.event_logger.flush()
    out: dict[str, list[str]] = {}
    for _nid, event in engine.ledger.iter_events():
        iid = getattr(event, "instruction_id", None)
        if iid is not None:
            out.setdefault(iid, []).append(type(event).__name__)
    return out


def refusal_codes(engine: Engine, iid: str) -> list[str]:
    """The codes the ledger recorded for refusing `iid` (before sending or by the venue)."""
    engine.event_logger.flush()
    return [
        e.code
        for _n, e in engine.ledger.iter_events()
        if getattr(e, "instruction_id", None) == iid
        and type(e).__name__ in ("InstructionRejected", "OrderFailed")
    ]


def assert_same_shape(sim: dict[str, Any], got: dict[str, Any]) -> None:
    """Same status: the same keys with the same value types. Same class, different status (a
    rejection before sending against a venue's refusal): the common keys with the same types."""
    if sim["status"] == got["status"]:
        assert set(got) == set(sim), sorted(set(got) ^ set(sim))
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in sim.items()}
    for result in (sim, got):
        assert {k: type(result.get(k)) for k in COMMON} == COMMON, result


async def test_same_grammar_and_result_shapes_as_the_simulated_cex(
    live: Start, emulator: Emulator, venue: str, tmp_path: Path
) -> None:
    """Spot buy and sell, perp open / reduce-only / close, a limit that rests and is cancelled, an
    unknown symbol, too little balance and a reduce-only with nothing to reduce give the same status
    class, result shape and lifecycle grammar in the simulator and live; refusals carry a code."""
    sim_engine = simulated(venue, tmp_path)
    live_engine = await live(venue)
    sim = await run_all(sim_engine, venue)
    got = await run_all(live_engine, venue)

    for instruction, klass in cases(venue):
        iid = instruction["instruction_id"]
        assert CLASSES[sim[iid]["status"]] == CLASSES[got[iid]["status"]] == klass, (
            iid,
            sim[iid].get("reason"),
            got[iid].get("reason"),
        )
        assert_same_shape(sim[iid], got[iid])
        if klass == "refused":
            for engine, result in ((sim_engine, sim[iid]), (live_engine, got[iid])):
                assert result["code"] and result["reason"], result
                assert refusal_codes(engine, iid) == [result["code"]]
            # the same refusal has the same code, whichever side decided it; a backtest knows no
            # venue listing, only its data: an unlisted symbol is one it has no price for
            want = "no_price" if iid == "unknown-symbol" else got[iid]["code"]
            assert sim[iid]["code"] == want, (iid, sim[iid]["code"], got[iid]["code"])
    assert got["insufficient"]["code"] == "insufficient_balance"
    assert got["unknown-symbol"]["code"] == "unknown_symbol"
    assert got["reduce-nothing"]["code"] == "reduce_only"

    # the same grammar (one table, one set of allowed end states) accepts both logs ...
    sim_final = check_lifecycle(sim_engine, LIVE_FINAL_STATES)
    live_final = check_lifecycle(live_engine, LIVE_FINAL_STATES)
    # ... and per instruction both end in the same class of state
    ids = [i["instruction_id"] for i, _c in cases(venue)]
    assert [STATE_CLASSES[sim_final[i]] for i in ids] == [STATE_CLASSES[live_final[i]] for i in ids]
    assert sim_final["limit-rests"] == live_final["limit-rests"] == State.CANCELLED
    sim_seq, live_seq = sequences(sim_engine), sequences(live_engine)
    for iid in ("limit-rests", "unknown-symbol"):
        assert sim_seq[iid] == live_seq[iid], (iid, sim_seq[iid], live_seq[iid])
    assert live_seq["insufficient"][-1] == "OrderFailed"  # only the venue knows its balance for sure
    assert sim_seq["insufficient"] == ["InstructionRejected"]

    # the pinned difference: the live backend refuses below the venue's minimum without sending
    small = got[SIM_HAS_NO_MINIMUMS]
    code = "min_amount" if venue == "okx" else "min_notional"
    assert (small["status"], small["code"]) == ("REJECTED", code)
    assert live_seq[SIM_HAS_NO_MINIMUMS] == ["InstructionRejected"]
    assert sim[SIM_HAS_NO_MINIMUMS]["status"] == "FILLED"

    for engine in (sim_engine, live_engine):
        check_conservation(engine)
        check_rebuild_equals(engine)
    assert_matches_venue(live_engine, emulator, venue)
    sim_engine.close(views=False)
