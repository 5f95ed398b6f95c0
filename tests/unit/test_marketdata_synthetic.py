"""The seeded generator: deterministic across processes, complete, and shaped like a basis-trade market."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import pairwise
from pathlib import Path

import pytest

from ledger.marketdata import DataError, MarketData, generate

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 4, 1, tzinfo=UTC)
VENUES = ("binance", "bybit", "okx")
ASSETS = ("usdt", "weth", "weeth")
ETH_KEYS = (
    {"eth_usd_price", "gas_price_gwei", "weeth_eth_rate", "staking_apr"}
    | {f"{v}_eth_{m}_price" for v in VENUES for m in ("spot", "perp")}
    | {f"aave_{a}_{s}_{k}" for a in ASSETS for s in ("supply", "borrow") for k in ("index", "apy")}
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quarter() -> MarketData:
    return generate(7, START, END)


def test_same_seed_same_digest_other_seed_other_digest(quarter: MarketData) -> None:
    """Generating twice with one seed gives identical content; another seed differs."""
    assert generate(7, START, END).digest == quarter.digest
    assert generate(8, START, END).digest != quarter.digest
    assert quarter.source == "synthetic(seed=7)"


def test_digest_is_the_same_in_other_processes_and_hash_seeds(quarter: MarketData) -> None:
    """Two fresh interpreters with different PYTHONHASHSEED produce the in-process digest."""
    code = ("from datetime import UTC, datetime; from ledger.marketdata import generate; "
            "print(generate(7, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)).digest)")
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == quarter.digest


def test_hourly_rows_with_every_documented_key(quarter: MarketData) -> None:
    """Three months hourly: one row per hour from start, each with exactly the documented keys."""
    assert len(quarter.times) == 91 * 24
    assert quarter.times[0] == START and quarter.times[-1] == END - timedelta(hours=1)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(quarter.times))
    assert all(set(row) == ETH_KEYS for row in quarter.rows)
    assert all(isinstance(v, D) for row in quarter.rows for v in row.values())


def test_values_are_quantised_decimals(quarter: MarketData) -> None:
    """Prices carry 2 decimals, gas 3, rates and indexes 12, funding 8."""
    row = quarter.rows[100]
    assert row["eth_usd_price"].as_tuple().exponent == -2
    assert row["bybit_eth_perp_price"].as_tuple().exponent == -2
    assert row["gas_price_gwei"].as_tuple().exponent == -3
    assert row["aave_usdt_supply_index"].as_tuple().exponent == -12
    assert row["weeth_eth_rate"].as_tuple().exponent == -12
    assert all(p.rate.as_tuple().exponent == -8 for p in quarter.funding)


def test_funding_every_8_hours_per_venue_within_caps(quarter: MarketData) -> None:
    """Funding settles at 00/08/16 UTC for each venue, typically near 0.0001, never past ±0.00075."""
    assert len(quarter.funding) == 91 * 3 * len(VENUES)
    assert {p.ts.hour for p in quarter.funding} == {0, 8, 16}
    assert all(p.ts.minute == 0 and p.base == "ETH" for p in quarter.funding)
    assert {p.venue for p in quarter.funding} == set(VENUES)
    rates = [p.rate for p in quarter.funding]
    assert all(D("-0.00075") <= r <= D("0.00075") for r in rates)
    assert D("0.00005") < statistics.median(rates) < D("0.00015")
    assert 0 < sum(r < 0 for r in rates) < len(rates) // 4


def test_spot_and_basis_look_like_a_basis_market(quarter: MarketData) -> None:
    """Venue spot stays within about 1 bp of the index; perp trades at a small positive premium."""
    for v in VENUES:
        spot_dev = [abs(r[f"{v}_eth_spot_price"] / r["eth_usd_price"] - 1) for r in quarter.rows]
        assert max(spot_dev) < D("0.00015")  # 1 bp of noise plus rounding to 0.01
        basis = [r[f"{v}_eth_perp_price"] / r[f"{v}_eth_spot_price"] - 1 for r in quarter.rows]
        assert D("0.0002") < statistics.mean(basis) < D("0.0006")
        assert max(abs(b) for b in basis) < D("0.003")


def test_eth_volatility_is_near_60_percent(quarter: MarketData) -> None:
    """Annualised realised volatility of hourly log returns is in a plausible band around 60 %."""
    logs = [math.log(float(r["eth_usd_price"])) for r in quarter.rows]
    returns = [b - a for a, b in pairwise(logs)]
    assert 0.4 < statistics.pstdev(returns) * math.sqrt(365 * 24) < 0.85


def test_indexes_and_staking_rate_grow_at_their_rates(quarter: MarketData) -> None:
    """AAVE indexes never fall and grow at about their APY; weETH/ETH grows at about the staking APR."""
    first, last = quarter.rows[0], quarter.rows[-1]
    years = D(len(quarter.rows) - 1) / D(365 * 24)
    for a in ASSETS:
        for side in ("supply", "borrow"):
            key = f"aave_{a}_{side}_index"
            series = [r[key] for r in quarter.rows]
            assert all(y >= x for x, y in pairwise(series))
            mean_apy = statistics.mean(r[f"aave_{a}_{side}_apy"] for r in quarter.rows)
            growth = last[key] / first[key] - 1
            assert abs(growth - mean_apy * years) < mean_apy * years * D("0.05") + D("1e-9")
    assert first["aave_usdt_supply_index"] == D("1.07")
    assert D("0.04") < first["aave_usdt_supply_apy"] < D("0.09")
    assert first["aave_usdt_borrow_apy"] > first["aave_usdt_supply_apy"]
    assert first["weeth_eth_rate"] == D("1.04")
    staking_growth = (last["weeth_eth_rate"] / first["weeth_eth_rate"] - 1) / years
    assert D("0.025") < staking_growth < D("0.045")


def test_gas_is_positive_around_10_gwei_with_spikes(quarter: MarketData) -> None:
    """Gas stays positive, centres near 10 gwei, and spikes well above it sometimes."""
    gas = [r["gas_price_gwei"] for r in quarter.rows]
    assert min(gas) > 0
    assert 6 < statistics.median(gas) < 16
    assert max(gas) > 25


def test_three_months_generate_quickly() -> None:
    """Three months of hourly rows take well under two seconds."""
    began = time.perf_counter()
    generate(11, START, END)
    assert time.perf_counter() - began < 2.0


def test_btc_adds_its_series_and_funding() -> None:
    """With btc=True each row also holds BTC index and venue prices, and BTC funding settles."""
    data = generate(3, START, START + timedelta(days=2), venues=("binance",), btc=True)
    assert {"btc_usd_price", "binance_btc_spot_price", "binance_btc_perp_price"} <= set(data.rows[0])
    assert D(30000) < data.rows[0]["btc_usd_price"] < D(120000)
    assert {p.base for p in data.funding} == {"ETH", "BTC"}


def test_other_steps_keep_funding_on_the_8_hour_marks() -> None:
    """With 5-minute or 4-hour steps rows follow the step and funding still settles at 00/08/16."""
    fine = generate(5, START, START + timedelta(days=1), step=timedelta(minutes=5))
    assert len(fine.times) == 288
    coarse = generate(5, START, START + timedelta(days=2), step=timedelta(hours=4), eth_start=D("2000"))
    assert len(coarse.times) == 12 and coarse.rows[0]["eth_usd_price"] == D("2000.00")
    for data in (fine, coarse):
        assert {p.ts.hour for p in data.funding} == {0, 8, 16}
        assert all(p.ts.minute == 0 for p in data.funding)


def test_bad_arguments_are_data_errors() -> None:
    """A naive time, an empty span or a non-positive step is refused in one line."""
    with pytest.raises(DataError, match="aware"):
        generate(1, datetime(2024, 1, 1), END)
    with pytest.raises(DataError, match="end > start"):
        generate(1, END, START)
    with pytest.raises(DataError, match="step > 0"):
        generate(1, START, END, step=timedelta(0))
