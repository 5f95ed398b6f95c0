"""The seed data loader and parameter loaders, on the real files in data/ (seed/ and binance/)
and on small files written here. Expected values were read from the files' text."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from executors.costs import CostModel
from ledger.marketdata import (
    DataError,
    FundingPoint,
    MarketData,
    availability,
    availability_of,
    gas_units,
    load_aave_risk,
    load_execution_costs,
    load_margin,
    load_seed,
)
from ledger.marketdata.seed import NEEDS, VENUE_FILES
from ledger.marketdata.seed_files import parse_time
from tests.paths import DATA

H = timedelta(hours=1)
BINANCE_ETH_PERP = "binance/futures_um/binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv"
ALL_JUNE_JULY = ("eth_spot", "btc_spot", "eth_perp:binance,bybit", "btc_perp:binance,bybit", "funding_eth",
                 "funding_btc", "aave", "staking", "gas")


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def root() -> Path:
    """The real seed data folder shipped in data/ (seed/ and binance/)."""
    return DATA


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- rows on the real files ---------------------------------------------------------------------

def test_usdt_liquidity_index_steps_between_daily_snapshots(root: Path) -> None:
    """USDT liquidityIndex holds 1.070100426290384 all of 2024-06-01 and is 1.0720225570370203 at
    2024-06-10 00:00, so 1000 USDT supplied over the window grows by exactly that ratio."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 10, 1), ["aave"])
    first, last = D("1.070100426290384"), D("1.0720225570370203")
    for hour in (0, 12, 23):
        assert md.snapshot_at(utc(2024, 6, 1, hour))["aave_usdt_supply_index"] == first
    assert md.snapshot_at(utc(2024, 6, 9, 23))["aave_usdt_supply_index"] == D("1.071828375213561")
    assert md.snapshot_at(utc(2024, 6, 10))["aave_usdt_supply_index"] == last
    grown = D(1000) * md.rows[-1]["aave_usdt_supply_index"] / md.rows[0]["aave_usdt_supply_index"]
    assert grown == D(1000) * last / first
    assert grown.quantize(D("0.0001")) == D("1001.7962")
    assert md.rows[0]["aave_usdt_supply_apy"] == D("0.0663544096786912")  # currentLiquidityRate


def test_window_2024_06_01_to_06_10_has_216_hourly_rows(root: Path) -> None:
    """[2024-06-01, 2024-06-10) is 216 rows, one per hour, first 00:00 and last 2024-06-09 23:00."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 10), ["gas"])
    assert len(md) == 216
    assert (md.start, md.end) == (utc(2024, 6, 1), utc(2024, 6, 9, 23))
    assert all(b - a == H for a, b in zip(md.times, md.times[1:], strict=False))


KEYS = {
    "eth_spot": {"eth_usd_price", "binance_eth_spot_price", "bybit_eth_spot_price"},
    "btc_spot": {"btc_usd_price", "binance_btc_spot_price", "bybit_btc_spot_price"},
    "eth_perp:binance,bybit": {"binance_eth_perp_price", "bybit_eth_perp_price"},
    "btc_perp:binance,bybit": {"binance_btc_perp_price", "bybit_btc_perp_price"},
    "aave": {f"aave_{a}_{s}_{k}" for a in ("usdt", "weth", "weeth", "wsteth") for s in ("supply", "borrow")
             for k in ("index", "apy")},
    "staking": {"weeth_eth_rate", "wsteth_eth_rate", "weeth_oracle_usd_price", "wsteth_oracle_usd_price",
                "staking_apr"},
    "gas": {"gas_price_gwei"},
    "funding_eth": set(),
    "funding_btc": set(),
    "eth_oracle": {"eth_usd_price"},
    "aave:usdt": {f"aave_usdt_{s}_{k}" for s in ("supply", "borrow") for k in ("index", "apy")},
}


@pytest.mark.parametrize("need", sorted(KEYS))
def test_each_need_group_gives_its_keys(root: Path, need: str) -> None:
    """Every row holds exactly the keys the need group names, for 2024-06-01 → 06-03."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 3), [need])
    assert len(md) == 48
    assert all(set(row) == KEYS[need] for row in md.rows)
    assert bool(md.funding) == need.startswith("funding")


def test_needs_constants_cover_every_group() -> None:
    """NEEDS lists the ten groups the loader knows."""
    assert set(NEEDS) == {k.partition(":")[0] for k in KEYS}


def test_spot_and_perp_prices_are_candle_closes(root: Path) -> None:
    """2024-06-01 00:00 closes: Binance spot 3764.15 (also eth_usd_price), Bybit spot 3764.36, Bybit
    perp 3766.02."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["eth_spot", "eth_perp:bybit"])
    row = md.rows[0]
    assert row["binance_eth_spot_price"] == row["eth_usd_price"] == D("3764.15")
    assert row["bybit_eth_spot_price"] == D("3764.36")
    assert row["bybit_eth_perp_price"] == D("3766.02")


def test_eth_usd_price_follows_the_first_listed_venue(root: Path) -> None:
    """With `eth_spot:bybit,binance` the index price is Bybit's close."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 1, 1), ["eth_spot:bybit,binance"])
    assert md.rows[0]["eth_usd_price"] == D("3764.36")


def test_okx_eth_perp_from_august_2024(root: Path) -> None:
    """`eth_perp` with all three venues loads from 2024-08-01; OKX closes 3235.43 at 00:00."""
    md = load_seed(root, utc(2024, 8, 1), utc(2024, 8, 2), ["eth_perp"])
    assert md.rows[0]["okx_eth_perp_price"] == D("3235.43")
    assert set(md.rows[0]) == {"binance_eth_perp_price", "bybit_eth_perp_price", "okx_eth_perp_price"}


def test_equal_duplicate_rows_are_one_row(root: Path) -> None:
    """The Bybit ETH perp repeats 2024-06-09 00:00 verbatim (lines 3845-3846); it loads as 3682.59."""
    md = load_seed(root, utc(2024, 6, 8), utc(2024, 6, 10), ["eth_perp:bybit"])
    assert md.snapshot_at(utc(2024, 6, 9))["bybit_eth_perp_price"] == D("3682.59")


def test_bybit_eth_funding_in_june_2024_settles_at_00_08_16(root: Path) -> None:
    """90 Bybit ETH settlements in June 2024 at 00/08/16 UTC; 0.0001 on 06-01 00:00, 3.015e-05 on
    06-30 16:00."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 7, 1), ["funding_eth:bybit"])
    points = md.funding
    assert len(points) == 90
    assert {p.ts.hour for p in points} == {0, 8, 16}
    assert all(p.ts.minute == 0 and p.venue == "bybit" and p.base == "ETH" for p in points)
    assert (points[0].ts, points[0].rate) == (utc(2024, 6, 1), D("0.0001"))
    assert (points[-1].ts, points[-1].rate) == (utc(2024, 6, 30, 16), D("3.015e-05"))


def test_staking_rates_and_apr(root: Path) -> None:
    """weETH/ETH 1.0396831081397173 and wstETH/ETH 1.1683075934979015 at 2024-06-01 00:00 (wstETH
    1.1683286855037598 at 05:00); staking_apr on 06-01 is 2024-05-31's base_staking_apr."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["staking"])
    row = md.rows[0]
    assert row["weeth_eth_rate"] == D("1.0396831081397173")
    assert row["wsteth_eth_rate"] == D("1.1683075934979015")
    assert md.snapshot_at(utc(2024, 6, 1, 5))["wsteth_eth_rate"] == D("1.1683286855037598")
    assert {r["staking_apr"] for r in md.rows} == {D("0.027709755140984837")}


def test_gas_price_is_the_gas_price_gwei_column(root: Path) -> None:
    """gas_price_gwei is 6.6 at 2024-06-01 00:00 and 5.39 at 01:00 (not the median 6.52 / 5.34)."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 1, 2), ["gas"])
    assert [r["gas_price_gwei"] for r in md.rows] == [D("6.6"), D("5.39")]


def test_eth_oracle_is_the_aave_weth_usd_oracle(root: Path) -> None:
    """`eth_oracle`: eth_usd_price is the WETH/USD oracle file's price (3762.17 at 2024-06-01 00:00, line
    3654; 1925.2891 at 2025-03-12 00:00, an hour Binance ETH spot lacks), with a note saying so."""
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 6, 1, 2), ["eth_oracle"])
    assert [r["eth_usd_price"] for r in md.rows] == [D("3762.17"), D("3764.3020219966666")]
    assert any("Aave WETH/USD oracle" in n for n in md.notes)
    across = load_seed(root, utc(2025, 3, 11, 23), utc(2025, 3, 12, 2), ["eth_oracle"])  # fill="error"
    assert across.snapshot_at(utc(2025, 3, 12))["eth_usd_price"] == D("1925.2891")
    with pytest.raises(DataError, match=r"Binance_ETHUSDT_1h\.csv: .*no row at 2025-03-12T00:00"):
        load_seed(root, utc(2025, 3, 11, 23), utc(2025, 3, 12, 2), ["eth_spot:binance"])
    with pytest.raises(DataError, match="'eth_oracle' and 'eth_spot' both give eth_usd_price"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["eth_oracle", "eth_spot"])


def test_aave_narrowed_to_assets(root: Path) -> None:
    """`aave:usdt,weth` reads only those reserves (the weETH/wstETH hourly files start 2024-05-12, so a
    USDT-only need works before that); an unknown asset is refused."""
    md = load_seed(root, utc(2024, 3, 1), utc(2024, 3, 2), ["aave:usdt,weth"])
    assert {k.split("_")[1] for k in md.rows[0]} == {"usdt", "weth"}
    with pytest.raises(DataError, match=r"weETH_rates_2024-05-12.*covers"):
        load_seed(root, utc(2024, 3, 1), utc(2024, 3, 2), ["aave"])
    with pytest.raises(DataError, match="assets must be some of usdt, weth, weeth, wsteth"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["aave:btc"])


# ---- which venues a window has -------------------------------------------------------------------

def test_availability_june_july_2024_lacks_okx(root: Path) -> None:
    """2024-06-01 → 08-01: OKX ETH perp starts 2024-08-01 (file coverage), OKX BTC perp is absent, and OKX
    funding has no settlement at 2024-08-01 00:00 (its August gap); Binance and Bybit have everything."""
    data = availability(root, utc(2024, 6, 1), utc(2024, 8, 1, 1),
                        ["eth_perp", "funding_eth", "btc_perp", "funding_btc", "gas"])
    assert data.window == "2024-06-01 → 2024-08-01"
    assert dict(data.venues) == {need: ("binance", "bybit") for need in
                                 ("eth_perp", "funding_eth", "btc_perp", "funding_btc")}
    assert data.missing[("eth_perp", "okx")] == (
        "seed/market_data/derivatives/futures_ohlcv/okx_ETHUSDT_perp_1h_2024-08-01_2025-09-18.csv covers "
        "2024-08-01T00:00 → 2025-08-31T23:00")
    assert "no OKX BTC perp" in data.missing[("btc_perp", "okx")]
    assert "no settlement at 2024-08-01T00:00" in data.missing[("funding_eth", "okx")]
    assert not data.has("eth_perp", "okx") and data.has("funding_btc", "bybit")


def test_availability_october_2024_has_every_venue(root: Path) -> None:
    """2024-10-01 → 10-03 00:00: every ETH perp and funding file covers the window without a funding gap."""
    data = availability(root, utc(2024, 10, 1), utc(2024, 10, 3, 1), ["eth_perp:bybit", "funding_eth"])
    assert data.window == "2024-10-01 → 2024-10-03"
    assert dict(data.venues) == {"eth_perp": ("binance", "bybit", "okx"),
                                 "funding_eth": ("binance", "bybit", "okx")}
    assert data.missing == {}


def test_availability_of_loaded_data() -> None:
    """After loading other data: the venues whose price keys are in the rows and whose funding points are
    in the data (here perps at Binance and Bybit, funding at Binance only)."""
    rows = [{"binance_eth_perp_price": D(1), "bybit_eth_perp_price": D(1), "eth_usd_price": D(1)}] * 2
    md = MarketData.build("test", [utc(2025, 4, 1), utc(2025, 4, 1, 1)], rows,
                          [FundingPoint(utc(2025, 4, 1), "binance", "ETH", D("0.0001"))])
    data = availability_of(md)
    assert data.venues["eth_perp"] == ("binance", "bybit") and data.venues["funding_eth"] == ("binance",)
    assert data.venues["btc_perp"] == () and data.missing[("eth_perp", "okx")] == "not in the data"
    assert data.window == "2025-04-01 → 2025-04-01 01:00"


def test_availability_drops_okx_eth_perp_inside_its_month_long_gaps(root: Path) -> None:
    """The OKX ETH perp file jumps from 2024-08-31 15:00 (line 737) to 2024-09-30 16:00 (line 738), and
    from 2025-03-31 15:00 to 2025-04-30 16:00: a window inside either gap would trade OKX at a price weeks
    old, so OKX is missing for it; the Binance perp's 23-hour gap on 2024-09-02 stays fillable."""
    sept = "okx ETH perp: no row between 2024-08-31 15:00 and 2024-09-30 16:00, a gap over 24 h"
    for start, end in ((utc(2024, 9, 10), utc(2024, 9, 14, 1)), (utc(2024, 9, 2), utc(2024, 9, 6, 1))):
        data = availability(root, start, end, ["eth_perp"])
        assert data.venues["eth_perp"] == ("binance", "bybit")
        assert data.missing == {("eth_perp", "okx"): sept} and data.gaps == data.missing
    # The gap counts from the last row at or before the window's start: 2024-09-30 15:00 alone is carried
    # from 2024-08-31 15:00; from 16:00 on OKX has rows again.
    assert availability(root, utc(2024, 9, 30, 15), utc(2024, 9, 30, 16), ["eth_perp"]).gaps == {
        ("eth_perp", "okx"): sept}
    assert availability(root, utc(2024, 9, 30, 16), utc(2024, 10, 1), ["eth_perp"]).missing == {}
    april = availability(root, utc(2025, 4, 10), utc(2025, 4, 12), ["eth_perp"])
    assert april.gaps == {("eth_perp", "okx"): "okx ETH perp: no row between 2025-03-31 15:00 and "
                                                "2025-04-30 16:00, a gap over 24 h"}


def test_a_gap_of_24_hours_is_fillable_and_25_is_missing(tmp_path: Path) -> None:
    """Bybit ETH perp rows at 06-01 00:00, 06-02 01:00 and 06-03 03:00: the first gap has 24 hours without
    a row (01:00 → 00:00, the price at most a day old), the second 25 (06-02 02:00 → 06-03 02:00)."""
    root = fake_root(tmp_path)
    header = "timestamp,open,high,low,close,volume,quote_volume,trades_count,source,symbol,data_type\n"
    full = "".join(f"{(utc(2024, 6, 1) + i * H).isoformat()},1,1,1,1,1,1,1,x,ETHUSDT,futures\n"
                   for i in range(60))
    for venue in ("binance", "okx"):
        write(root, VENUE_FILES[("perp", "eth", venue)], header + full)
    write(root, VENUE_FILES[("perp", "eth", "bybit")], header + "".join(
        f"{t}:00:00Z,1,1,1,{close},1,1,1,x,ETHUSDT,futures\n"
        for t, close in (("2024-06-01T00", 1), ("2024-06-02T01", 2), ("2024-06-03T03", 3))))
    one_day = availability(root, utc(2024, 6, 1), utc(2024, 6, 2, 2), ["eth_perp"])
    assert one_day.venues["eth_perp"] == ("binance", "bybit", "okx") and one_day.missing == {}
    longer = availability(root, utc(2024, 6, 2, 1), utc(2024, 6, 3, 3), ["eth_perp"])
    assert longer.venues["eth_perp"] == ("binance", "okx")
    assert longer.gaps == {("eth_perp", "bybit"): "bybit ETH perp: no row between 2024-06-02 01:00 and "
                                                  "2024-06-03 03:00, a gap over 24 h"}


def test_availability_of_loaded_data_drops_a_price_missing_over_24_hours() -> None:
    """Loaded rows where OKX's price is absent 01:00 → 00:00 next day (24 hours: kept) or one hour longer
    (25 hours, the last row it had then a day and an hour old: missing)."""
    def rows(absent: int) -> MarketData:
        times = [utc(2025, 4, 1) + i * H for i in range(30)]
        return MarketData.build("test", times, [
            {"bybit_eth_perp_price": D(1), **({} if 1 <= i <= absent else {"okx_eth_perp_price": D(1)})}
            for i in range(30)])
    assert availability_of(rows(24)).venues["eth_perp"] == ("bybit", "okx")
    data = availability_of(rows(25))
    assert data.venues["eth_perp"] == ("bybit",)
    assert data.missing[("eth_perp", "okx")] == ("okx ETH perp: no row between 2025-04-01 00:00 and "
                                                 "2025-04-02 02:00, a gap over 24 h")


# ---- gaps, coverage and absent series ------------------------------------------------------------

def test_okx_eth_perp_before_august_names_the_okx_file(root: Path) -> None:
    """OKX ETH perp starts 2024-08-01, so a June window fails naming the OKX file and its coverage."""
    with pytest.raises(DataError, match=r"okx_ETHUSDT_perp_1h_2024-08-01_2025-09-18\.csv: covers "
                                        r"2024-08-01T00:00 → 2025-08-31T23:00 .*2024-06-01T00:00"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["eth_perp"])


def test_okx_btc_perp_is_absent(root: Path) -> None:
    """The seed has no OKX BTC perp: `btc_perp` fails naming the series and the window start."""
    with pytest.raises(DataError, match=r"okx_btc_perp_price is needed from 2024-06-01T00:00.*no OKX BTC"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["btc_perp"])


def test_binance_perp_gap_fails_by_default(root: Path) -> None:
    """The Binance ETH perp has no rows 2024-06-12 00:00-22:00: fill="error" names the file and 00:00."""
    with pytest.raises(DataError, match=r"binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26\.csv: "
                                        r"binance_eth_perp_price \(close\) has no row at 2024-06-12T00:00 "
                                        r"\(23 of 48 hours"):
        load_seed(root, utc(2024, 6, 11), utc(2024, 6, 13), ["eth_perp:binance"])


def test_binance_perp_gap_is_carried_forward_and_noted(root: Path) -> None:
    """fill="previous" repeats 2024-06-11 23:00's close 3498.16 through 22:00 and writes one note."""
    md = load_seed(root, utc(2024, 6, 11), utc(2024, 6, 13), ["eth_perp:binance"], fill="previous")
    filled = {md.snapshot_at(utc(2024, 6, 12, h))["binance_eth_perp_price"] for h in range(23)}
    assert filled == {D("3498.16")}
    assert md.snapshot_at(utc(2024, 6, 12, 23))["binance_eth_perp_price"] == D("3560.45")
    assert md.notes == (f"binance_eth_perp_price: 23 hours 2024-06-12T00:00 → 22:00 carried forward from "
                        f"2024-06-11T23:00 (file {BINANCE_ETH_PERP})",)
    assert "fill=previous" in md.source


def test_window_outside_coverage_fails(root: Path) -> None:
    """The Bybit ETH perp ends 2025-09-25 23:00; an hour after that fails naming the file's coverage."""
    with pytest.raises(DataError, match=r"bybit_ETHUSDT_perp_1h_2024-01-01_2025-09-26\.csv: covers "
                                        r"2024-01-01T00:00 → 2025-09-25T23:00"):
        load_seed(root, utc(2025, 9, 25, 23), utc(2025, 9, 26, 1), ["eth_perp:bybit"], fill="previous")


def test_okx_funding_gap_in_august_2024_fails_even_with_fill(root: Path) -> None:
    """OKX funding has no settlements in August 2024; funding is never filled."""
    with pytest.raises(DataError, match=r"okx_ETHUSDT_funding_rates.*(no settlement|covers)"):
        load_seed(root, utc(2024, 8, 1), utc(2024, 8, 3), ["funding_eth:okx"], fill="previous")


def test_bad_arguments_fail(root: Path) -> None:
    """Unknown needs or venues, naive times, an unknown fill and a folder without seed/ are DataErrors."""
    with pytest.raises(DataError, match="unknown need 'prices'"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["prices"])
    with pytest.raises(DataError, match="venues must be some of binance, bybit"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["eth_spot:okx"])
    with pytest.raises(DataError, match="aware UTC"):
        load_seed(root, datetime(2024, 6, 1), utc(2024, 6, 2), ["gas"])  # naive on purpose
    with pytest.raises(DataError, match="fill must be one of"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 2), ["gas"], fill="linear")
    with pytest.raises(DataError, match="not a seed data folder"):
        load_seed(root / "binance", utc(2024, 6, 1), utc(2024, 6, 2), ["gas"])


def test_all_needs_june_july_2024(root: Path) -> None:
    """All needs over 2024-06-01 → 2024-08-01 (OKX perp left out) with fill="previous": 1,464 rows, 6 x 183
    settlements, 8 filled spans noted, and the same digest twice."""
    began = time.perf_counter()
    md = load_seed(root, utc(2024, 6, 1), utc(2024, 8, 1), ALL_JUNE_JULY, fill="previous")
    print(f"seed load 2024-06-01 → 2024-08-01, all needs: {time.perf_counter() - began:.2f} s")
    assert len(md) == 1464
    assert len(md.funding) == 6 * 183
    filled = [n for n in md.notes if "carried forward" in n]
    assert len(filled) == 8  # Binance BTC spot (+ btc_usd_price), ETH perp, BTC perp x 06-12 and 07-23
    again = load_seed(root, utc(2024, 6, 1), utc(2024, 8, 1), ALL_JUNE_JULY, fill="previous")
    assert md.digest == again.digest


# ---- small files written here -------------------------------------------------------------------

def test_timestamp_formats() -> None:
    """Every seed timestamp format reads as the same UTC instant."""
    want = utc(2024, 5, 12)
    for text in ("2024-05-12T00:00:00Z", "2024-05-12 00:00:00+00:00", "2024-05-12T00:00:00+00:00Z",
                 "2024-05-12 00:00", "2024-05-12", "1715472000", "1715472000000",
                 "2024-05-12T02:00:00+02:00"):
        assert parse_time(text) == want, text


def fake_root(tmp: Path) -> Path:
    (tmp / "seed").mkdir(parents=True, exist_ok=True)
    return tmp


def test_conflicting_funding_duplicate_fails(tmp_path: Path) -> None:
    """Two rows for one settlement with different rates fail, naming both lines."""
    root = fake_root(tmp_path)
    write(root, VENUE_FILES[("funding", "eth", "bybit")], "funding_timestamp,funding_rate,symbol,source\n"
          "2024-06-01T00:00:00Z,0.0001,ETHUSDT,bybit\n2024-06-01T00:00:00Z,0.0002,ETHUSDT,bybit\n")
    with pytest.raises(DataError, match=r"2024-06-01T00:00:00\+00:00 appears twice.*line 2 has 0.0001, "
                                        r"line 3 has 0.0002"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 1, 1), ["funding_eth:bybit"])


def test_gap_at_window_start_carries_the_row_before_the_window(tmp_path: Path) -> None:
    """A gap at the window's first hours carries the last row before the window, and says so."""
    root = fake_root(tmp_path)
    rel = "seed/blockchain_data/gas_prices/ethereum_gas_prices_2024-01-01_2025-09-26.csv"
    write(root, rel, "# comment\ntimestamp,gas_price_gwei\n2024-06-01T00:00:00Z,7\n2024-06-01T03:00:00Z,9\n")
    md = load_seed(root, utc(2024, 6, 1, 1), utc(2024, 6, 1, 4), ["gas"], fill="previous")
    assert [r["gas_price_gwei"] for r in md.rows] == [D(7), D(7), D(9)]
    assert md.notes == (f"gas_price_gwei: 2 hours 2024-06-01T01:00 → 02:00 carried forward from "
                        f"2024-06-01T00:00 (file {rel})",)


def test_row_between_hours_fails(tmp_path: Path) -> None:
    """A row off the hourly grid inside the window fails instead of being ignored."""
    root = fake_root(tmp_path)
    rel = "seed/blockchain_data/gas_prices/ethereum_gas_prices_2024-01-01_2025-09-26.csv"
    write(root, rel, "timestamp,gas_price_gwei\n2024-06-01T00:00:00Z,7\n2024-06-01T00:30:00Z,8\n")
    with pytest.raises(DataError, match=r"2024-06-01T00:30:00\+00:00 is not on the file's hourly grid"):
        load_seed(root, utc(2024, 6, 1), utc(2024, 6, 1, 1), ["gas"])


# ---- parameter files ----------------------------------------------------------------------------

def test_execution_costs_table(root: Path) -> None:
    """SPOT is ETH_USDT's 5 / 7 / 13 bp and PERP the perps' 3 / 4 / 8 bp for 10k / 100k / 1m USD."""
    table = load_execution_costs(root)
    assert table == {"*": {"SPOT": {"10000": D(5), "100000": D(7), "1000000": D(13)},
                           "PERP": {"10000": D(3), "100000": D(4), "1000000": D(8)}}}
    costs = CostModel.from_config({"execution_costs": table})
    assert costs.execution_bps("binance", "SPOT", D(10_000)) == 5
    assert costs.execution_bps("okx", "PERP", D(500_000)) == 8


def test_aave_risk_parameters(root: Path) -> None:
    """e-mode LTV 0.93, LT 0.95, bonus 0.01; standard 0.80 / 0.85 / 0.05; reserve factors 0.10."""
    risk = load_aave_risk(root)
    for pair in ("weETH_WETH", "wstETH_WETH", "ETH_WETH"):
        assert risk["emode"][pair] == {"ltv": D("0.93"), "liquidation_threshold": D("0.95"),
                                       "liquidation_bonus": D("0.01")}
        assert risk["standard"][pair] == {"ltv": D("0.80"), "liquidation_threshold": D("0.85"),
                                          "liquidation_bonus": D("0.05")}
    assert risk["reserve_factors"] == {a: D("0.10") for a in ("weETH", "wstETH", "WETH", "USDT")}


def test_margin_requirements(root: Path) -> None:
    """All three venues: IMR 0.05, MMR 0.1, liquidation threshold 0.05, max leverage 20, margin call 0.15."""
    margin = load_margin(root)
    assert set(margin) == {"binance", "bybit", "okx"}
    for venue in margin.values():
        assert venue == {"initial_margin": D("0.05"), "maintenance_margin": D("0.1"),
                         "liquidation_threshold": D("0.05"), "max_leverage": D(20),
                         "margin_call_threshold": D("0.15"), "funding_interval_hours": D(8)}


def test_gas_units_per_operation(root: Path) -> None:
    """Gas units mapped onto the cost model's operations (COLLATERAL_SUPPLIED 250k → AAVE_SUPPLY, …)."""
    units = gas_units(root)
    assert units == {"AAVE_SUPPLY": 250_000, "AAVE_WITHDRAW": 220_000, "AAVE_BORROW": 300_000,
                     "AAVE_REPAY": 280_000, "STAKE": 150_000, "UNSTAKE": 200_000, "APPROVE": 55_000,
                     "TRANSFER_ERC20": 100_000}
    model = CostModel.from_config({"gas": {"units": units}})
    assert model.gas_units["AAVE_BORROW"] == 300_000
    assert model.gas_units["WRAP"] == 45_000  # not in the file: the cost model's default stays
