"""Value bounds (docs/values.md): every number that enters is inside its kind's bound or refused with
a typed error naming the field (a recorded rejection where the venue is known), and the engine goes on
working after a refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Context, Decimal
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.errors import DataError, InstructionError
from aggregates.values import (
    BALANCE,
    NUMBER,
    SIGNED_AMOUNT,
    amount,
    bound_of,
    funding_rate,
    gas_price,
    index,
    price,
    rate,
    shown,
    within_places,
)
from aggregates.venue import VenueLedger
from executors.costs import ConfigError
from ledger.engine import EventDrivenStrategyEngine
from ledger.testing import check_no_floats

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MARKET = {"eth_usd_price": 3000.0, "binance_spot_price": 3000.0}
SPOT = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
        "amount": 1.0}
STAKE = {"venue_type": "onchain", "operation": "STAKE", "token": "ETH", "amount": 1.0}
SUPPLY = {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "ETH", "amount": 1}
CONFIG = {"execution_mode": "backtest", "initial_capital": 100000,
          "ledger": {"url": "memory:", "views": False}, "initial_balances": {"ethereum": {"ETH": 5}}}


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class StripRaises(str):
    def strip(self, chars: str | None = None) -> str:
        raise RuntimeError("no strip")


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def engine() -> Iterator[EventDrivenStrategyEngine]:
    built = EventDrivenStrategyEngine(CONFIG)
    yield built
    built.ledger.close()


async def warm(engine: EventDrivenStrategyEngine) -> int:
    await engine.advance_to("2024-01-01T00:00:00Z", MARKET)
    engine.event_logger.flush()
    return engine.ledger.max_notification_id()


def appended(engine: EventDrivenStrategyEngine, after: int) -> list[Any]:
    engine.event_logger.flush()
    return [e for _n, e in engine.ledger.iter_events(after=after)]


async def still_fills(engine: EventDrivenStrategyEngine) -> None:
    """A valid order after the refusal fills at 3000 + 5 bps."""
    result = await engine.execute_trade_with_interface({**SPOT, "amount": "0.1"}, MARKET)
    assert result["status"] == "FILLED" and result["price"] == D("3001.5")


# ---- instructions: refused at the door, recorded at the known venue --------------------------------

REJECTED = [
    ("amount 1e999999", {**SPOT, "amount": "1e999999"}, MARKET, "amount"),
    ("amount Decimal 1E+1000000", {**SPOT, "amount": D("1E+1000000")}, MARKET, "amount"),
    ("amount Decimal 1e-999999999", {**SPOT, "amount": D("1e-999999999")}, MARKET, "amount"),
    ("amount over 1e15", {**SPOT, "amount": "1000000000000000.000000000000000001"}, MARKET, "amount"),
    ("amount with 19 places", {**SPOT, "amount": "0.0000000000000000001"}, MARKET, "amount"),
    ("amount as a huge int", {**SPOT, "amount": 10**400}, MARKET, "amount"),
    ("amount nested 5000 deep", {**SPOT, "amount": nested(5000)}, MARKET, "amount"),
    ("amount whose repr raises", {**SPOT, "amount": ReprRaises()}, MARKET, "amount"),
    ("side whose repr raises", {**SPOT, "side": ReprRaises()}, MARKET, "side"),
    ("amount text whose strip raises", {**SPOT, "amount": StripRaises("lots")}, MARKET, "amount"),
    ("limit price 0", {**SPOT, "order_type": "LIMIT", "price": 0}, MARKET, "price"),
    ("limit price over 1e12", {**SPOT, "order_type": "LIMIT", "price": "1e12000"}, MARKET, "price"),
    ("on-chain amount 1e999999", {**STAKE, "amount": "1e999999"}, MARKET, "amount"),
    ("transfer amount 1E+1000000", {"venue_type": "transfer", "from_venue": "binance", "to_venue": "bybit",
                                    "asset": "USDT", "amount": D("1E+1000000")}, MARKET, "amount"),
    ("market_data a string", SPOT, "abc", "market_data"),
    ("market_data a list", SPOT, [1, 2], "market_data"),
    ("market price 1e999999", SPOT, {**MARKET, "binance_spot_price": "1e999999"},
     "market_data.binance_spot_price"),
    ("market price 0", SPOT, {**MARKET, "binance_spot_price": 0}, "market_data.binance_spot_price"),
    ("market price NaN", SPOT, {**MARKET, "binance_spot_price": float("nan")},
     "market_data.binance_spot_price"),
    ("staking rate 0 on STAKE", STAKE, {**MARKET, "weeth_eth_rate": 0}, "market_data.weeth_eth_rate"),
    ("gas price 1e999999", STAKE, {**MARKET, "gas_price_gwei": "1e999999"}, "market_data.gas_price_gwei"),
    ("gas price negative", STAKE, {**MARKET, "gas_price_gwei": -100}, "market_data.gas_price_gwei"),
    ("AAVE index 0 with an order", SUPPLY, {**MARKET, "aave_weth_supply_index": 0},
     "market_data.aave_weth_supply_index"),
    ("funding rate over 5 %", SPOT, {**MARKET, "binance_eth_funding_rate": "0.0500000001"},
     "market_data.binance_eth_funding_rate"),
    ("transfer with market_data a string", {"venue_type": "transfer", "from_venue": "binance",
                                            "to_venue": "bybit", "asset": "USDT", "amount": 5}, "abc",
     "market_data"),
]


@pytest.mark.parametrize(("label", "instruction", "market", "field"), REJECTED, ids=[r[0] for r in REJECTED])
async def test_out_of_bounds_input_at_a_known_venue_is_a_recorded_rejection(
    engine: EventDrivenStrategyEngine, label: str, instruction: dict[str, Any], market: Any, field: str
) -> None:
    """REJECTED with a reason naming the field; only `InstructionRejected` is stored (what arrived as
    bounded text, no float); the next valid order fills."""
    before = await warm(engine)
    result = await engine.execute_trade_with_interface(instruction, market)
    assert result["status"] == "REJECTED", result
    assert result["code"] == ("invalid_amount" if field == "amount" else "invalid_field"), result
    assert result["reason"].startswith(f"{field}:"), result["reason"]
    assert "\n" not in result["reason"] and len(result["reason"]) < 300
    events = appended(engine, before)
    assert [type(e).__name__ for e in events] == ["InstructionRejected"]
    assert all(type(v) is str and len(v) <= 1000 for v in events[0].received.values())
    check_no_floats(engine)
    await still_fills(engine)


async def test_what_arrived_is_kept_as_bounded_text(engine: EventDrivenStrategyEngine) -> None:
    """A value whose repr raises is stored by its type (no address: the log must not depend on the run);
    a list 5000 deep by its first levels."""
    before = await warm(engine)
    await engine.execute_trade_with_interface(
        {**SPOT, "amount": nested(5000), "order_type": ReprRaises()}, MARKET)
    stored = appended(engine, before)[0].received
    assert stored["order_type"] == "<ReprRaises that cannot be shown>"
    assert stored["amount"] == "[[[[[...]]]]]"


async def test_text_is_read_with_str_methods_not_a_subclass_s(engine: EventDrivenStrategyEngine) -> None:
    """A str subclass whose strip() raises is read as the text it holds: this order is a valid one."""
    await warm(engine)
    result = await engine.execute_trade_with_interface(
        {**SPOT, "venue": StripRaises("binance"), "pair": StripRaises(" ETH/USDT "),
         "side": StripRaises("BUY"), "amount": StripRaises("0.5"), "instruction_id": StripRaises("strip-1")},
        MARKET)
    assert result["status"] == "FILLED" and result["amount"] == D("0.5")
    assert result["instruction_id"] == "strip-1" and type(result["instruction_id"]) is str


@pytest.mark.parametrize("venue", [ReprRaises(), StripRaises("kraken")])
async def test_a_hostile_venue_name_raises_naming_the_field(
    engine: EventDrivenStrategyEngine, venue: Any
) -> None:
    before = await warm(engine)
    with pytest.raises(InstructionError) as raised:
        await engine.execute_trade_with_interface({**SPOT, "venue": venue}, MARKET)
    assert raised.value.field == "venue"
    assert appended(engine, before) == []
    await still_fills(engine)


# ---- time and market data through advance_to --------------------------------------------------------


@pytest.mark.parametrize(("ts", "market", "error", "field"), [
    (10**20, None, InstructionError, "timestamp"),
    (-(10**20), None, InstructionError, "timestamp"),
    ("2024-01-01T01:00:00Z", "abc", DataError, "market_data"),
    ("2024-01-01T01:00:00Z", [1, 2], DataError, "market_data"),
    ("2024-01-01T01:00:00Z", {**MARKET, "eth_usd_price": "1e999999"}, DataError, "market_data.eth_usd_price"),
    ("2024-01-01T01:00:00Z", {**MARKET, "gas_price_gwei": "1e999999"}, DataError,
     "market_data.gas_price_gwei"),
    ("2024-01-01T01:00:00Z", {**MARKET, "weeth_eth_rate": 0}, DataError, "market_data.weeth_eth_rate"),
    ("2024-01-01T01:00:00Z", {**MARKET, "okx_funding_rate": -0.06}, DataError,
     "market_data.okx_funding_rate"),
    ("2024-01-01T01:00:00Z", {**MARKET, "open_interest": "1e16"}, DataError, "market_data.open_interest"),
])
async def test_advance_to_refuses_bad_time_or_market_before_anything_moves(
    engine: EventDrivenStrategyEngine, ts: Any, market: Any, error: type[Exception], field: str
) -> None:
    """A typed error naming the field; the clock and the log stay where they were."""
    before = await warm(engine)
    clock = engine.event_logger.now()
    with pytest.raises(error, match=rf"^{field}: "):
        await engine.advance_to(ts, market)
    assert engine.event_logger.now() == clock
    assert appended(engine, before) == []
    await still_fills(engine)


async def test_an_aave_index_of_zero_is_refused_and_the_supply_is_kept(
    engine: EventDrivenStrategyEngine,
) -> None:
    """Before the fix the balance was wiped and booked as interest (index 0 / index before - 1 = -100 %)."""
    market = {**MARKET, "gas_price_gwei": 0, "aave_weth_supply_index": D("1.01")}
    await engine.advance_to("2024-01-01T00:00:00Z", market)
    assert (await engine.execute_trade_with_interface(SUPPLY, market))["status"] == "CONFIRMED"
    with pytest.raises(DataError, match=r"^market_data\.aave_weth_supply_index: must be positive"):
        await engine.advance_to("2024-01-01T01:00:00Z", {**market, "aave_weth_supply_index": 0})
    assert engine.position_monitor.supplied("ethereum", "WETH") == D(1)
    assert not [e for e in appended(engine, 0) if type(e).__name__ == "InterestAccrued"]
    # the run goes on: at index 1.0201 (+1 %) one WETH earns 0.01
    await engine.advance_to("2024-01-01T02:00:00Z", {**market, "aave_weth_supply_index": D("1.0201")})
    assert engine.position_monitor.supplied("ethereum", "WETH") == D("1.01")


# ---- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "key"), [
    ({"initial_balances": {"ethereum": {"ETH": "1e999999"}}}, "initial_balances.ethereum.ETH"),
    ({"initial_capital": D("1e-999999999")}, "initial_capital"),
    ({"staking": {"rate": 0}}, "staking.rate"),
    ({"staking": {"rate": "1e999999"}}, "staking.rate"),
    ({"gas": {"default_gwei": "1e999999"}}, "gas.default_gwei"),
    ({"transfers": {"withdrawal_fees": {"binance": {"USDT": "1e16"}}}},
     "transfers.withdrawal_fees.binance.USDT"),
])
def test_config_values_out_of_bounds_are_refused_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        EventDrivenStrategyEngine({**CONFIG, **change})
    assert raised.value.field == key


# ---- the aggregate refuses anything but a Decimal inside its bound ------------------------------------


def ledger_at(venue: str = "bybit") -> VenueLedger:
    return VenueLedger.open("main", venue, "cex", T0)


RECORDS: list[tuple[str, Callable[[VenueLedger, Any], Any], str]] = [
    ("funding rate", lambda v, x: v.record_funding("ETH/USDT:USDT", "unified", "USDT", x, D(3000), D(-1),
                                                   D("0.3"), T0), "rate"),
    ("funding mark", lambda v, x: v.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), x, D(-1),
                                                   D("0.3"), T0), "mark_price"),
    ("funding position", lambda v, x: v.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"),
                                                       D(3000), x, D("0.3"), T0), "position"),
    ("funding amount", lambda v, x: v.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), D(3000),
                                                     D(-1), x, T0), "amount"),
    ("interest amount", lambda v, x: v.record_interest("i1", "WETH", "supplied", x, D("1.01"), T0), "amount"),
    ("interest index", lambda v, x: v.record_interest("i1", "WETH", "supplied", D("0.01"), x, T0), "index"),
    ("transfer received", lambda v, x: v.record_transfer_received("t1", "binance", "unified", "USDT", x, T0),
     "amount"),
    ("adjustment", lambda v, x: v.record_adjustment("a1", "unified", "USDT", x, "manual fix", T0), "delta"),
    ("reward", lambda v, x: v.record_reward("r1", "unified", "USDT", x, "staking", T0), "amount"),
    ("deposit", lambda v, x: v.record_deposit("d1", "unified", "USDT", x, T0), "amount"),
]


@pytest.mark.parametrize("bad", [1.5, 1, "1.5", float("nan"), D("NaN"), D("1E+1000000")],
                         ids=["float", "int", "str", "float NaN", "Decimal NaN", "Decimal 1E+1000000"])
@pytest.mark.parametrize(("label", "record", "field"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_methods_refuse_anything_but_a_bounded_decimal(
    label: str, record: Callable[[VenueLedger, Any], Any], field: str, bad: Any
) -> None:
    """InstructionError naming the field, and no event."""
    venue = ledger_at()
    pending = len(venue.pending_events)
    with pytest.raises(InstructionError) as raised:
        record(venue, bad)
    assert raised.value.field == field and str(raised.value).startswith(f"{field}: ")
    assert len(venue.pending_events) == pending


def test_an_interest_index_of_zero_is_refused_by_the_aggregate() -> None:
    with pytest.raises(InstructionError, match=r"^index: must be positive"):
        ledger_at().record_interest("i1", "WETH", "supplied", D("0.01"), D(0), T0)


# ---- the bounds themselves: figures from docs/values.md, not from the code ----------------------------


@pytest.mark.parametrize(("check", "inside", "outside"), [
    (amount, ["1000000000000000", "0.000000000000000001", "1e15", 7, 0.25],
     ["1000000000000000.000000000000000001", "0.0000000000000000001", "0", "-1", "1e16"]),
    (price, ["1000000000000", "0.000000000000000001", 3001.5],
     ["1000000000000.1", "0", "-3000", "1e-19", "inf"]),
    (rate, ["1.000000000000000000000000001", "-0.5", "1000000", "0"],
     ["1.0000000000000000000000000001", "1000000.1", "-1000001", "nan"]),
    (index, ["1.000200113095123456789012345", "0.000000000000000000000000001"],
     ["0", "-1", "1000001", "1e-28"]),
    (funding_rate, ["0.05", "-0.05", "0", "0.000123456789012345678901234"],
     ["0.0500000000000000000000000001", "-0.051", "1e999999"]),
    (gas_price, ["0", "1000000", "12.345"], ["-0.001", "1000000.000000000000000001", "1e999999"]),
])
def test_each_bound_holds_at_its_edges(
    check: Callable[[Any, str], D], inside: list[Any], outside: list[Any]
) -> None:
    """Values on the edge pass unchanged; one step beyond (size, sign or one more place) is refused."""
    for value in inside:
        assert check(value, "x") == D(str(value))
    for value in outside:
        with pytest.raises(InstructionError, match=r"^x: "):
            check(value, "x")


def test_places_count_the_digits_that_carry_a_value() -> None:
    """Trailing zeros carry nothing: `1.50` has one place; exponents count, whatever their size."""
    cases = [("1.50", 1), ("100", 0), ("1E+5", 0), ("0.000", 0), ("1e-27", 27), ("-0.10", 1),
             ("1e-999999999", 999999999), ("0." + "0" * 5000 + "1", 5001), ("1" + "0" * 99 + ".5", 1)]
    for text, count in cases:
        assert within_places(D(text), count) and (count == 0 or not within_places(D(text), count - 1))


def test_market_keys_find_their_bound_by_name() -> None:
    from aggregates.values import FUNDING_RATE, GAS_PRICE, INDEX, PRICE

    assert bound_of("bybit_eth_perp_price") is PRICE and bound_of("eth_usd_price") is PRICE
    assert bound_of("gas_price_gwei") is GAS_PRICE
    assert bound_of("binance_eth_funding_rate") is FUNDING_RATE
    assert bound_of("aave_weth_borrow_index") is INDEX and bound_of("weeth_eth_rate") is INDEX
    assert bound_of("staking_apr") is None


def test_shown_never_raises_and_stays_short() -> None:
    assert shown(ReprRaises()) == "<ReprRaises that cannot be shown>"
    assert shown(10**5000) == "<int that cannot be shown>"
    assert len(shown("x" * 10_000)) <= 80 and len(shown("x" * 10_000, long=True)) <= 1000


# ---- property: any input either lands inside the bound or is refused, nothing else --------------------

NUMBERS = st.one_of(
    st.decimals(),  # NaN, sNaN, infinities and wide exponents included
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-(10**30), 10**30), st.integers(-(10**9), 10**9)),
    st.builds(lambda m, e: D(m).scaleb(e, Context(prec=100, Emax=10**9, Emin=-(10**9))),
              st.integers(-(10**30), 10**30), st.integers(-40, 40)),
)
WIDE = Context(prec=200)
CHECKS = [  # (helper, sign, largest magnitude, places): the figures, written again here
    (amount, "positive", D("1e15"), 18),
    (price, "positive", D("1e12"), 18),
    (rate, "signed", D("1e6"), 27),
    (index, "positive", D("1e6"), 27),
    (funding_rate, "signed", D("0.05"), 27),
    (gas_price, "non-negative", D("1e6"), 18),
    (BALANCE.parse, "non-negative", D("1e15"), 18),
    (SIGNED_AMOUNT.parse, "signed", D("1e15"), 18),
    (NUMBER.parse, "signed", D("1e15"), 27),
]


@given(value=NUMBERS, which=st.integers(0, len(CHECKS) - 1))
def test_any_input_is_inside_the_bound_or_an_instruction_error(value: Any, which: int) -> None:
    check, sign, largest, most_places = CHECKS[which]
    try:
        result = check(value, "field")
    except InstructionError as e:
        assert e.field == "field" and str(e).startswith("field: ") and "\n" not in str(e)
        return
    assert type(result) is Decimal and result.is_finite()
    assert {"positive": result > 0, "non-negative": result >= 0, "signed": True}[sign]
    assert -largest <= result <= largest
    scaled = WIDE.multiply(result, D(10) ** most_places)
    assert scaled == scaled.to_integral_value()  # no digit beyond `most_places`


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                "0001-01-01T00:00:00+05:00", 253402300799999, -1])
async def test_times_outside_1970_to_2199_are_refused_naming_the_field(
    engine: EventDrivenStrategyEngine, ts: Any
) -> None:
    """A step to 9999-12-31 used to be taken, then overflowed when the next hourly mark was computed
    (a view failed, and the caller got an `instruction:` error for a time); now it is refused at once."""
    before = await warm(engine)
    with pytest.raises(InstructionError) as raised:
        await engine.advance_to(ts, MARKET)
    assert raised.value.field == "timestamp" and "out of range (1970 to 2199)" in str(raised.value)
    engine.event_logger.flush()
    assert engine.ledger.max_notification_id() == before
    await engine.advance_to("2199-12-31T23:00:00Z", MARKET)  # the last hour inside is a time like any
    await still_fills(engine)
