"""Value conversions: Decimal money from any numeric input, UTC time, canonical instruments."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from aggregates import InstructionError
from aggregates.transitions import FACTS, INTENTS, State, is_allowed
from aggregates.values import MarketType, parse_instrument, to_decimal, to_utc


@pytest.mark.parametrize(("raw", "expected"), [(1, D(1)), ("1.10", D("1.10")), (0.1, D("0.1")),
                                               (D("3001.5"), D("3001.5"))])
def test_to_decimal_accepts_int_str_decimal_and_float_through_str(raw: object, expected: D) -> None:
    assert to_decimal(raw) == expected and str(to_decimal(raw)) == str(expected)


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), "abc", None, True, "NaN"])
def test_to_decimal_rejects_naming_the_field(raw: object) -> None:
    with pytest.raises(InstructionError, match=r"^price: "):
        to_decimal(raw, "price")


def test_to_utc_requires_aware_times() -> None:
    from datetime import datetime

    with pytest.raises(InstructionError, match="timezone-aware"):
        to_utc(datetime(2024, 1, 1))
    assert to_utc("2024-06-01T00:00:00Z").isoformat() == "2024-06-01T00:00:00+00:00"


@pytest.mark.parametrize(("text", "symbol"), [
    ("ETH/USDT", "ETH/USDT"), ("ETH/USDT:USDT", "ETH/USDT:USDT"), ("ETHUSDT-PERP", "ETH/USDT:USDT"),
    ("BTCUSDT", "BTC/USDT"), ("ETH-USDT-SWAP", "ETH/USDT:USDT"), ("eth/usdt", "ETH/USDT"),
])
def test_instrument_aliases_resolve_to_ccxt_symbols(text: str, symbol: str) -> None:
    assert parse_instrument(text).symbol == symbol


def test_perp_alias_with_explicit_market_type_and_venue_symbols() -> None:
    inst = parse_instrument("ETHUSDT", MarketType.PERP)
    assert inst.symbol == "ETH/USDT:USDT"
    assert inst.venue_symbol("okx") == "ETH-USDT-SWAP" and inst.venue_symbol("binance") == "ETHUSDT"


@pytest.mark.parametrize("bad", ["", "???", "ETH", 42])
def test_unreadable_instruments_name_the_pair_field(bad: object) -> None:
    with pytest.raises(InstructionError, match=r"^pair: "):
        parse_instrument(bad)  # type: ignore[arg-type]


def test_every_state_has_an_entry_for_every_fact() -> None:
    """Venue facts are never refused from any state (SPEC §12.1)."""
    for fact, table in FACTS.items():
        assert set(table) == {*State, None}, fact
        assert all(is_allowed(s, fact) for s in table)


def test_terminal_states_allow_no_intent() -> None:
    for terminal in (State.REJECTED, State.FILLED, State.CANCELLED, State.FAILED, State.COMPLETED):
        assert not [e for (s, e) in INTENTS if s is terminal]
