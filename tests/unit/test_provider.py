"""The engine's data provider on the shipped seed data folder (`data.data_dir = "data/"`, as the seed's
usage examples write it). Expected values were read from the files' text by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from executors.costs import ConfigError
from ledger.marketdata import DataError
from ledger.provider import DataProvider
from tests.paths import BINANCE, DATA

JUNE = datetime(2024, 6, 1, tzinfo=UTC)


def test_the_seed_folder_loads_from_the_session_start_with_the_venues_it_has() -> None:
    provider = DataProvider({"data_dir": str(DATA), "days": 1}, start=JUNE)
    row = provider.snapshot(datetime(2024, 6, 1, 9, 30, tzinfo=UTC))
    # data/binance/spot/Binance_ETHUSDT_1h.csv "2024-06-01 09:00,…,3793.14" and the Bybit perp file's
    # "2024-06-01T09:00:00Z,…,3794.75": closes of the candles opening at 09:00.
    assert row["binance_eth_spot_price"] == D("3793.14") == row["eth_usd_price"]
    assert row["bybit_eth_perp_price"] == D("3794.75")
    assert "okx_eth_perp_price" not in row  # the seed data has no OKX ETH perp before 2024-08-01
    assert {"aave_weth_supply_index", "weeth_eth_rate", "gas_price_gwei"} <= set(row)
    at_eight = [p for p in provider.funding(JUNE, datetime(2024, 6, 1, 8, tzinfo=UTC)) if p.ts.hour == 8]
    assert {(p.venue, p.rate) for p in at_eight} == {
        ("binance", D("0.00013009")), ("bybit", D("0.0001")), ("okx", D("7.1643506254e-05"))}
    assert provider.data.start == JUNE and provider.data.end == datetime(2024, 6, 1, 23, tzinfo=UTC)


def test_data_start_end_and_needs_override_the_defaults() -> None:
    provider = DataProvider({"data_dir": str(DATA), "start": "2024-06-02", "end": "2024-06-02T03:00:00Z",
                             "needs": ["eth_spot", "gas"]}, start=JUNE)
    assert len(provider.data) == 3
    assert set(provider.data.keys()) == {"binance_eth_spot_price", "bybit_eth_spot_price", "eth_usd_price",
                                         "gas_price_gwei"}


@pytest.mark.parametrize(
    ("config", "start", "error", "needle"),
    [
        ({"data_dir": str(DATA)}, None, ConfigError, "data.start"),
        ({"data_dir": str(DATA), "needs": "eth_spot"}, JUNE, ConfigError, "data.needs"),
        ({"data_dir": str(DATA), "needs": ["moon"]}, JUNE, DataError, "moon"),
        ({"data_dir": str(DATA), "start": "2023-01-01"}, None, DataError, "covers"),
    ],
)
def test_a_seed_window_it_cannot_serve_is_one_clear_error(
    config: dict[str, object], start: datetime | None, error: type[Exception], needle: str
) -> None:
    provider = DataProvider(config, start=start)
    assert not provider.available
    assert isinstance(provider.error, error) and needle in str(provider.error)


def test_any_other_folder_is_read_as_binance_files() -> None:
    provider = DataProvider({"data_dir": str(BINANCE / "spot"), "start": "2025-04-01", "end": "2025-04-02"})
    assert provider.snapshot(datetime(2025, 4, 1, 5, tzinfo=UTC))["binance_eth_spot_price"] > 0


@pytest.mark.parametrize("days", ["abc", "nan", "inf", 1e9, 36_501, 0, -1, True, "\u0663", [1]])
def test_data_days_must_be_a_positive_number_of_at_most_36500(days: object) -> None:
    """Text that is no number, NaN, infinity, a billion days (past the calendar), zero, negative, a bool,
    non-ASCII digits or a list: one ConfigError naming data.days, never a raw ValueError/OverflowError."""
    provider = DataProvider({"data_dir": str(DATA) + "/", "days": days}, start=JUNE)
    assert not provider.available
    assert isinstance(provider.error, ConfigError) and str(provider.error).startswith("data.days: ")


def test_data_days_sets_the_end_of_a_binance_folder_too() -> None:
    """data/binance from 2025-04-01 for one day: 24 hourly rows, 00:00 → 23:00 (not to the folder's end);
    the perp close at 23:00 is the futures file's "2025-04-01T23:00:00Z,…,1904.21" and the spot close at
    00:00 the April archive's first row, 1831.94."""
    provider = DataProvider({"data_dir": str(BINANCE), "start": "2025-04-01", "days": "1"})
    data = provider.data
    assert (len(data), data.start, data.end) == (24, datetime(2025, 4, 1, tzinfo=UTC),
                                                 datetime(2025, 4, 1, 23, tzinfo=UTC))
    assert data.rows[-1]["binance_eth_perp_price"] == D("1904.21")
    assert data.rows[0]["binance_eth_spot_price"] == D("1831.94")
