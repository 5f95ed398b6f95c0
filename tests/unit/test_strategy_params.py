"""Typed strategy parameters: parsing, ranges, refusals, the record, and fitting venue weights to the data.

Expected values are worked out by hand in the comments (4/7 to 18 places, the messages' numbers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from ledger.backtest import load_for
from ledger.marketdata import Availability, availability
from ledger.strategies import STRATEGIES, StrategyConfigError, create, params_of, recorded
from ledger.strategies.blocks import renormalise
from tests.paths import DATA

MODES_HEDGED = ("eth_basis", "btc_basis", "usdt_market_neutral_no_leverage", "usdt_market_neutral")
# 4/7 = 0.571428571428571428|571…, rounded half-even at 18 places: …429; 1 - that = 0.428571428571428571,
# which is also 3/7 = 0.428571428571428571|428… rounded.
FOUR_SEVENTHS, THREE_SEVENTHS = D("0.571428571428571429"), D("0.428571428571428571")
JUNE_JULY = "2024-06-01 → 2024-08-01"


def refused(name: str, /, **params: Any) -> str:
    with pytest.raises(StrategyConfigError) as info:
        create(name, **params)
    return str(info.value)


def available(perp: tuple[str, ...], funding: tuple[str, ...] | None = None,
              base: str = "eth") -> Availability:
    """What `marketdata.availability` reports: the venues with perp and funding data for the window."""
    return Availability(JUNE_JULY, {f"{base}_perp": perp,
                                    f"funding_{base}": perp if funding is None else funding})


# ---- parsing and ranges -----------------------------------------------------------------------------------

def test_text_json_and_typed_values_become_the_declared_types() -> None:
    """Decimal from text, a JSON number text, a TOML float (its shortest text) or a Decimal; an integer from
    text or an integral Decimal; venue weights from JSON text or a mapping; venues from commas or a list."""
    a = create("eth_leveraged", max_ltv="0.9", target_ltv=0.75, max_loops="3", gas_reserve=D("0.02"))
    assert (a.max_ltv, a.target_ltv, a.gas_reserve) == (D("0.9"), D("0.75"), D("0.02"))
    assert a.max_loops == 3 and type(a.max_loops) is int
    assert create("eth_leveraged", max_loops=D("4")).max_loops == 4
    b = create("eth_basis", hedge_split='{"bybit": 0.45, "binance": 0.55}')
    assert b.hedge_split == {"binance": D("0.55"), "bybit": D("0.45")}
    assert list(b.hedge_split) == ["binance", "bybit"]
    c = create("eth_basis", hedge_split={"binance": 0.25, "bybit": "0.25", "okx": D("0.5")})
    assert c.hedge_split == {"binance": D("0.25"), "bybit": D("0.25"), "okx": D("0.5")}
    assert create("demo_basis", hedge_venues="binance, okx").hedge_venues == ("binance", "okx")
    assert create("demo_basis", hedge_venues='["okx"]').hedge_venues == ("okx",)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("eth_leveraged", {"max_ltv": "0.97"}, "max_ltv: must be below 0.95, got 0.97"),
    ("eth_leveraged", {"max_ltv": "0.95"}, "max_ltv: must be below 0.95, got 0.95"),
    ("eth_leveraged", {"max_loops": "21"}, "max_loops: must be at most 20, got 21"),
    ("eth_leveraged", {"max_loops": "-1"}, "max_loops: must be at least 0, got -1"),
    ("eth_basis", {"delta_tolerance": "-0.1"}, "delta_tolerance: must be at least 0, got -0.1"),
    ("eth_basis", {"spot_share": "0.96"}, "spot_share: must be at most 0.95, got 0.96"),
    ("pure_lending", {"capital": "0"}, "capital: must be above 0, got 0"),
    ("demo_basis", {"band": "0.2"}, "band: must be at most 0.1, got 0.2"),
])
def test_out_of_range_values_are_refused_naming_the_parameter(name: str, params: dict[str, Any],
                                                              message: str) -> None:
    assert refused(name, **params) == message


@pytest.mark.parametrize(("params", "message"), [
    ({"max_loops": "8.5"}, "max_loops: expected a whole number, got '8.5'"),
    ({"max_loops": "many"}, "max_loops: expected a whole number, got 'many'"),
    ({"max_loops": True}, "max_loops: expected a whole number, got true"),
    ({"max_ltv": "high"}, "max_ltv: expected a number, got 'high'"),
    ({"max_ltv": "NaN"}, "max_ltv: expected a finite number, got 'NaN'"),
    ({"max_ltv": [0.8]}, "max_ltv: expected a number, got [0.8]"),
])
def test_wrong_types_are_refused_naming_the_parameter(params: dict[str, Any], message: str) -> None:
    assert refused("eth_leveraged", **params) == message


@pytest.mark.parametrize(("split", "message"), [
    ('{"binance": 0.5, "bybit": 0.4}',
     "hedge_split: weights must sum to 1, got binance 0.5, bybit 0.4 (sum 0.9)"),
    ('{"binance": 0.7, "bybit": 0.4, "okx": -0.1}',
     "hedge_split: okx weight must be between 0 and 1, got -0.1"),
    ('{"kraken": 1}', "hedge_split: unknown venue 'kraken' (venues: binance, bybit, okx)"),
    ('{"binance": 0.5, "Binance": 0.5}', "hedge_split: venue binance is given twice"),
    ('{"binance": "lots"}', "hedge_split: expected a number for binance, got 'lots'"),
    ("0.5", "hedge_split: expected a JSON object of venue weights such as "
            '{"binance": 0.4, "bybit": 0.3, "okx": 0.3}, got \'0.5\''),
])
def test_hedge_splits_that_are_not_weights_summing_to_one_are_refused(split: str, message: str) -> None:
    assert refused("eth_basis", hedge_split=split) == message


@pytest.mark.parametrize(("params", "message"), [
    # A JSON object naming a venue twice: json.loads alone would keep the last weight (0.6) silently.
    ({"hedge_split": '{"binance": 0.4, "bybit": 0.1, "bybit": 0.6}'},
     "hedge_split: venue bybit is given twice"),
    ({"hedge_split": '{"binance": 1, "moon": 0, "moon": 0}'}, "hedge_split: venue 'moon' is given twice"),
    # Decimal() reads "\u0660.\u0661" as 0.1: Arabic-Indic digits (U+0660, U+0661), not ASCII ones;
    # U+FF13 is a full-width 3.
    ({"delta_tolerance": "\u0660.\u0661"},
     "delta_tolerance: expected a number in ASCII digits, got '\u0660.\u0661'"),
    ({"max_loops": "\uff13"}, "max_loops: expected a whole number in ASCII digits, got '\uff13'"),
    ({"hedge_split": {"binance": "\u0660.\u0664", "bybit": "0.6"}},
     "hedge_split: expected a number for binance in ASCII digits, got '\u0660.\u0664'"),
])
def test_repeated_json_keys_and_non_ascii_digits_are_refused(params: dict[str, Any], message: str) -> None:
    assert refused("usdt_market_neutral", **params) == message


def test_deeply_nested_json_is_one_error_with_the_value_cut_short() -> None:
    """5000 nested lists overflow json's recursion: one error naming the parameter, the value shown in at
    most 80 characters (79 and an ellipsis)."""
    nested = "[" * 5000 + "]" * 5000
    for name, value in (("hedge_split", nested), ("hedge_venues", nested)):
        strategy = "eth_basis" if name == "hedge_split" else "demo_basis"
        message = refused(strategy, **{name: value})
        assert message == f"{name}: JSON nested too deeply in '" + "[" * 78 + "…"
    assert refused("eth_basis", delta_tolerance="x" * 500) == ("delta_tolerance: expected a number, got '"
                                                              + "x" * 78 + "…")


def test_negative_zero_is_recorded_as_zero_and_quoted_numbers_still_count() -> None:
    """-0 behaves as 0, so it is recorded as "0" (one digest for one behaviour), also inside weights and
    from a TOML float -0.0; numbers written as JSON or TOML strings ("0.4") are still numbers."""
    assert recorded(create("eth_basis", delta_tolerance="-0"))["delta_tolerance"] == "0"
    assert recorded(create("eth_basis", delta_tolerance=-0.0))["delta_tolerance"] == "0.0"
    assert create("eth_basis", delta_tolerance="-0").delta_tolerance.is_signed() is False
    split = create("eth_basis", hedge_split='{"binance": "0.4", "bybit": "0.6", "okx": "-0"}').hedge_split
    assert recorded(create("eth_basis", hedge_split=split))["hedge_split"] == {
        "binance": "0.4", "bybit": "0.6", "okx": "0"}
    assert create("eth_basis", delta_tolerance="0.05", spot_share=" 0.6 ").spot_share == D("0.6")
    assert create("eth_leveraged", max_loops="3").max_loops == 3


def test_venue_lists_are_checked() -> None:
    assert refused("demo_basis", hedge_venues="bybit,ftx") == (
        "hedge_venues: unknown venue 'ftx' (venues: binance, bybit, okx)")
    assert refused("demo_basis", hedge_venues="okx,okx") == "hedge_venues: a venue is given twice in okx,okx"
    assert refused("demo_basis", hedge_venues="{}").startswith("hedge_venues: expected venue names")
    assert create("demo_basis", hedge_venues="[]").hedge_venues == ()  # no hedge at all


def test_a_bound_set_by_another_parameter_blames_the_one_given() -> None:
    """target_ltv ≤ max_ltv: a target above the default max names target_ltv; a max below the default
    target 0.80 names max_ltv."""
    assert refused("eth_leveraged", target_ltv="0.9") == "target_ltv: must be at most max_ltv (0.86), got 0.9"
    assert refused("eth_leveraged", max_ltv="0.7") == "max_ltv: must be at least target_ltv (0.80), got 0.7"
    assert refused("eth_leveraged", max_ltv="0.7", target_ltv="0.75") == (
        "target_ltv: must be at most max_ltv (0.7), got 0.75")
    assert create("eth_leveraged", max_ltv="0.7", target_ltv="0.6").target_ltv == D("0.6")


INTERNAL = ("name", "description", "phase", "notes", "needs", "target_apy", "base", "loops", "explicit",
            "liquidation_threshold", "foo")


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("field", INTERNAL)
def test_internal_fields_and_unknown_names_are_not_parameters(strategy: str, field: str) -> None:
    """Only declared parameters can be set; the error names the field and lists the parameters."""
    message = refused(strategy, **{field: "1"})
    known = ", ".join(p.name for p in params_of(STRATEGIES[strategy]))
    assert message == (f"{field}: {strategy} has no parameter {field!r} (its parameters: {known}; "
                       f"`ledger strategies {strategy}` describes them)")
    with pytest.raises(StrategyConfigError) as info:
        create(strategy, **{field: "1"})
    assert info.value.param == field


def test_each_strategy_declares_what_it_uses() -> None:
    """pure_lending has no hedge parameters and the unhedged modes no hedge_split; the hedged ones do."""
    names = {key: [p.name for p in params_of(f)] for key, f in STRATEGIES.items()}
    assert names["pure_lending"] == ["capital", "gas_reserve"]
    assert names["eth_basis"] == ["capital", "spot_share", "hedge_split", "delta_tolerance"]
    assert names["eth_leveraged"] == ["capital", "gas_reserve", "target_ltv", "max_ltv", "max_loops"]
    for name in MODES_HEDGED:
        assert "hedge_split" in names[name] and "delta_tolerance" in names[name]
    for name in ("pure_lending", "eth_staking_only", "eth_leveraged"):
        assert "hedge_split" not in names[name]
    for key, factory in STRATEGIES.items():  # every declared default passes its own parameter's checks
        for p in params_of(factory):
            assert p.parse(p.plain(p.default)) == p.default, (key, p.name)
            assert p.meaning and p.range_text() and p.type_name(), (key, p.name)


def test_pure_lending_does_not_need_an_exchange_price() -> None:
    """Its ETH price is the Aave WETH/USD oracle, and it reads only the USDT reserve."""
    assert create("pure_lending").data_needs() == ("eth_oracle", "aave:usdt", "gas")


# ---- the record ------------------------------------------------------------------------------------------

def test_recorded_holds_every_effective_value_and_reads_back() -> None:
    strategy = create("usdt_market_neutral", capital=D(50_000), max_loops="5", hedge_split='{"bybit": 1}')
    record = recorded(strategy)
    assert record == {"capital": "50000", "gas_reserve": "0.05", "target_ltv": "0.80", "max_ltv": "0.86",
                      "max_loops": 5, "stake_share": "0.5", "hedge_split": {"bybit": "1"},
                      "delta_tolerance": "0.02"}
    assert json.loads(json.dumps(record)) == record
    again = create("usdt_market_neutral", **record)
    assert recorded(again) == record and again.explicit == frozenset(record)
    assert strategy.explicit == {"capital", "max_loops", "hedge_split"}
    demo = recorded(create("demo_basis"))
    assert demo["hedge_venues"] == ["bybit", "okx"] and demo["capital"] == "100000"


# ---- fitting the hedge to the venues the data has ---------------------------------------------------------

def test_renormalise_sums_to_exactly_one() -> None:
    assert renormalise({"binance": D("0.4"), "bybit": D("0.3")}) == {"binance": FOUR_SEVENTHS,
                                                                    "bybit": THREE_SEVENTHS}
    thirds = renormalise({"binance": D(1), "bybit": D(1), "okx": D(1)})
    # 1/3 = 0.333…3 at 18 places, twice; the last takes 1 - 0.666666666666666666
    assert thirds == {"binance": D("0.333333333333333333"), "bybit": D("0.333333333333333333"),
                      "okx": D("0.333333333333333334")}
    assert sum(thirds.values()) == 1 and sum(renormalise({"a": D("0.3"), "b": D("0.3")}).values()) == 1


@pytest.mark.parametrize("name", MODES_HEDGED)
def test_the_default_split_is_renormalised_without_okx_and_noted(name: str) -> None:
    base = "BTC" if name == "btc_basis" else "ETH"
    strategy = create(name)
    strategy.fit(available(("binance", "bybit"), base=base.lower()))
    assert strategy.hedge_split == {"binance": FOUR_SEVENTHS, "bybit": THREE_SEVENTHS}
    assert sum(strategy.hedge_split.values()) == 1
    assert strategy.notes == [
        f"hedge_split: no OKX {base} perp data for {JUNE_JULY}; the default 40/30/30 split was renormalised "
        "to binance 4/7, bybit 3/7"]
    needs = strategy.data_needs()
    assert f"{base.lower()}_perp:binance,bybit" in needs and f"funding_{base.lower()}:binance,bybit" in needs


def test_a_venue_lacking_funding_is_dropped_too_and_a_full_set_is_kept() -> None:
    strategy = create("eth_basis")
    strategy.fit(available(("binance", "bybit", "okx"), ("bybit", "okx")))
    # 0.3 / 0.6 = 0.5 each, exactly
    assert strategy.hedge_split == {"bybit": D("0.5"), "okx": D("0.5")}
    assert strategy.notes == [f"hedge_split: no Binance ETH funding data for {JUNE_JULY}; the default "
                              "40/30/30 split was renormalised to bybit 1/2, okx 1/2"]
    full = create("eth_basis")
    full.fit(available(("binance", "bybit", "okx")))
    assert full.hedge_split == {"binance": D("0.4"), "bybit": D("0.3"), "okx": D("0.3")}
    assert full.notes == []


def test_an_explicit_split_naming_a_missing_venue_is_refused_with_the_param_to_pass() -> None:
    """The user's 40/30/30 without OKX becomes 0.57/0.43 at two places (4/7 = 0.5714…, 3/7 = 0.4285…) in
    the suggested --param; a split over the venues the data has is kept as given."""
    strategy = create("btc_basis", hedge_split='{"binance": 0.4, "bybit": 0.3, "okx": 0.3}')
    with pytest.raises(StrategyConfigError) as info:
        strategy.fit(available(("binance", "bybit"), base="btc"))
    assert info.value.param == "hedge_split"
    assert str(info.value) == (
        f"hedge_split: no OKX BTC perp data for {JUNE_JULY}; pass --param "
        "'hedge_split={\"binance\": 0.57, \"bybit\": 0.43}' (venues with data: binance, bybit)")
    suggested = str(info.value).split("--param '")[1].split("'")[0]
    assert create("btc_basis", **dict([suggested.split("=", 1)])).hedge_split == {
        "binance": D("0.57"), "bybit": D("0.43")}
    kept = create("btc_basis", hedge_split='{"binance": 0.55, "bybit": 0.45}')
    kept.fit(available(("binance", "bybit"), base="btc"))
    assert kept.hedge_split == {"binance": D("0.55"), "bybit": D("0.45")} and kept.notes == []


def test_okx_inside_its_september_2024_gap_is_dropped_and_the_split_renormalised() -> None:
    """The OKX ETH perp file has no row from 2024-08-31 15:00 to 2024-09-30 16:00: over 2024-09-10 → 09-11
    its price would be ten days old, so the default split drops OKX (4/7, 3/7 as for June-July, the gap
    named in the note) and the OKX series is not even read."""
    strategy = create("eth_basis")
    market = load_for(strategy, data_dir=DATA, seed=7, start=datetime(2024, 9, 10, tzinfo=UTC),
                      end=datetime(2024, 9, 11, tzinfo=UTC), days=None, fill="previous")
    assert strategy.hedge_split == {"binance": FOUR_SEVENTHS, "bybit": THREE_SEVENTHS}
    assert strategy.notes == [
        "hedge_split: no OKX ETH perp data for 2024-09-10 → 2024-09-11 (okx ETH perp: no row between "
        "2024-08-31 15:00 and 2024-09-30 16:00, a gap over 24 h); the default 40/30/30 split was "
        "renormalised to binance 4/7, bybit 3/7"]
    assert not any("okx_eth_perp_price" in row for row in market.rows) and market.notes == ()
    demo = create("demo_basis")  # hedges on Bybit and OKX by default: OKX is dropped with the same reason
    demo.fit(availability(DATA, datetime(2024, 9, 10, tzinfo=UTC), datetime(2024, 9, 11, tzinfo=UTC),
                          demo.data_needs()))
    assert demo.hedge_venues == ("bybit",)
    assert demo.notes == ["hedge_venues: no OKX ETH perp data for 2024-09-10 → 2024-09-10 23:00 (okx ETH "
                          "perp: no row between 2024-08-31 15:00 and 2024-09-30 16:00, a gap over 24 h); "
                          "hedging on bybit"]


def test_the_demo_hedges_on_whatever_perp_the_data_has() -> None:
    """Without Bybit and OKX data the demo hedges on Binance and keeps the whole capital there (the perp
    margin moves to the futures wallet when it trades); venues the user named that lack data are refused."""
    demo = create("demo_basis", capital=D(100_000))
    demo.fit(available(("binance",)))
    assert demo.hedge_venues == ("binance",)
    assert demo.notes == [f"hedge_venues: no Bybit ETH perp data; no OKX ETH perp data for {JUNE_JULY}; "
                          "hedging on binance"]
    assert demo.config()["initial_balances"] == {"binance": {"USDT": D(100_000)},
                                                 "ethereum": {"ETH": D("0.3")}}
    default = create("demo_basis").config()["initial_balances"]
    assert default == {"binance": {"USDT": D(60_000)}, "bybit": {"USDT": D(20_000)},
                       "okx": {"USDT": D(20_000)}, "ethereum": {"ETH": D("0.3")}}
    named = create("demo_basis", hedge_venues="bybit")
    with pytest.raises(StrategyConfigError, match=r"^hedge_venues: no Bybit ETH perp data for .*; pass "
                                                  r"--param hedge_venues=binance$"):
        named.fit(available(("binance",)))


def test_nesting_is_bounded_by_depth_not_by_the_stack() -> None:
    """Nine levels are refused and the refusal does not depend on Python's recursion limit (another test
    or library may have raised it, and then json.loads parses 5000 levels happily)."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        message = refused("eth_basis", hedge_split="[" * 5000 + "]" * 5000)
    finally:
        sys.setrecursionlimit(old)
    assert message.startswith("hedge_split: JSON nested too deeply in ")
    assert refused("eth_basis", hedge_split='{"binance": ' + "[" * 8 + "1" + "]" * 8 + "}").startswith(
        "hedge_split: JSON nested too deeply")
    assert "nested" not in refused("eth_basis", hedge_split='{"binance": [[1]]}')  # depth 3: typed refusal


def test_a_config_nested_too_deeply_is_refused_by_depth_not_by_the_stack(tmp_path: Any) -> None:
    """With a raised recursion limit tomllib parses 5000 nested arrays; the depth check still refuses."""
    import sys

    from executors.costs import ConfigError
    from ledger.config import load_config

    path = tmp_path / "deep.toml"
    path.write_text("[strategy_params]\nhedge_split = " + "[" * 5000 + "]" * 5000 + "\n")
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        with pytest.raises(ConfigError, match="nested too deeply"):
            load_config(path)
    finally:
        sys.setrecursionlimit(old)
    (tmp_path / "ok.toml").write_text('[transfers.networks.binance]\nETH = "ETH"\n')
    assert load_config(tmp_path / "ok.toml")["transfers"]["networks"]["binance"] == {"ETH": "ETH"}
