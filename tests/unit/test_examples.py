"""The shipped example configs load, and the seed's size-bucketed cost table reads as the seed intends."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from executors.costs import SEED_BUCKETED, CostModel
from executors.risk import RiskLimits
from ledger.config import initial_balances, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_seed_bucketed_table_gives_5_7_13_and_3_4_8_bps() -> None:
    """ETH/USDT spot 5/7/13 bps and perps 3/4/8 bps up to $10k/$100k/$1M, the last bucket beyond."""
    for costs in (
        CostModel.from_config(load_config(EXAMPLES / "costs-seed-bucketed.toml")),
        CostModel.from_config(SEED_BUCKETED),
    ):
        spot = [
            costs.execution_bps("binance", "SPOT", D(n)) for n in (5_000, 10_000, 50_000, 500_000, 5_000_000)
        ]
        perp = [
            costs.execution_bps("okx", "PERP", D(n)) for n in (5_000, 10_001, 100_000, 1_000_000, 2_000_000)
        ]
        assert spot == [5, 5, 7, 13, 13]
        assert perp == [3, 4, 4, 8, 8]


def test_full_example_config_loads_every_table() -> None:
    """examples/backtest.toml: balances, costs, fees, gas, transfers and risk limits all parse."""
    config = load_config(EXAMPLES / "backtest.toml")
    costs, limits = CostModel.from_config(config), RiskLimits.from_config(config)
    assert ("ethereum", "", "ETH", D("0.3")) in initial_balances(config)
    assert (
        costs.execution_bps("binance", "SPOT", D(1)) == 4 and costs.execution_bps("bybit", "PERP", D(1)) == 5
    )
    assert costs.fee_rate("bybit", "PERP", "taker") == D("0.00055")
    assert costs.withdrawal_fee("binance", "ETH") == D("0.0008") and costs.default_gas_gwei == 12
    assert limits.max_order_notional == 250_000 and limits.max_slippage_bps == 25
    assert limits.min_health_factor == D("1.5")


def test_an_rpc_url_is_kept_out_of_the_recorded_config() -> None:
    """RPC URLs often carry an API key in their path, so the recorded config leaves them out."""
    from ledger.config import canonical_json, recorded_config

    recorded = canonical_json(recorded_config(
        {"rpc_url": "https://eth.example/v2/KEY123", "chain": {"rpc_url": "x/KEY456"}}))
    assert "KEY123" not in recorded and "KEY456" not in recorded
