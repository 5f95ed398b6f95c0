"""A golden backtest: four hours of hand-made market data and a scripted strategy; every total below is
computed by hand from the inputs (fill = reference x (1 +/- 5 bps), fee = notional x rate, funding = rate x
mark notional, interest = supplied x index ratio, gas = units x gas price), never captured from a run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext
from itertools import pairwise
from pathlib import Path
from typing import Any

from aggregates.values import MONEY
from ledger.backtest import run_backtest
from ledger.marketdata import FundingPoint, MarketData

T0 = datetime(2024, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
INDEX = [D("1.07"), D("1.0701"), D("1.0702"), D("1.0703")]
PERP = [D("3010"), D("3012"), D("3020"), D("3015")]


def market() -> MarketData:
    rows = [
        {
            "eth_usd_price": D("3000"),
            "binance_eth_spot_price": D("3000"),
            "bybit_eth_perp_price": PERP[i],
            "gas_price_gwei": D("20"),
            "aave_usdt_supply_index": INDEX[i],
        }
        for i in range(4)
    ]
    return MarketData.build(
        "golden",
        [T0 + i * HOUR for i in range(4)],
        rows,
        [FundingPoint(T0 + 2 * HOUR, "bybit", "ETH", D("0.0001"))],
    )


class Scripted:
    name = "golden"
    description = "scripted instructions at t0"
    notes: list[str] = []

    def __init__(self) -> None:
        self.done = False

    def config(self) -> dict[str, Any]:
        return {
            "initial_balances": {
                "binance": {"USDT": "10000"},
                "bybit": {"USDT": "5000"},
                "ethereum": {"ETH": "1", "USDT": "2000"},
            },
            "fees": {"binance": {"SPOT": {"taker": "0.001"}}, "bybit": {"PERP": {"taker": "0.0005"}}},
            "transfers": {
                "withdrawal_fees": {"binance": {"ETH": "0.001"}},
                "delays_minutes": {"binance->ethereum": 60},
            },
        }

    def decide(self, ts: datetime, m: dict[str, D], view: Any) -> list[dict[str, Any]]:
        if self.done:
            return []
        self.done = True
        return [
            {
                "venue_type": "cex",
                "venue": "binance",
                "trade_type": "SPOT",
                "pair": "ETH/USDT",
                "side": "BUY",
                "amount": "1",
            },
            {
                "venue_type": "cex",
                "venue": "bybit",
                "trade_type": "PERP",
                "pair": "ETHUSDT-PERP",
                "side": "SHORT",
                "amount": "1",
            },
            {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "USDT", "amount": "2000"},
            {
                "venue_type": "transfer",
                "from_venue": "binance",
                "to_venue": "ethereum",
                "asset": "ETH",
                "amount": "0.5",
            },
        ]


def test_golden_totals(tmp_path: Path) -> None:
    """Balances, supplied amount, P&L lines and equity equal their hand computation exactly."""
    strategy = Scripted()
    config = {
        **strategy.config(),
        "execution_mode": "backtest",
        "ledger": {"url": f"sqlite:///{tmp_path}/g.db"},
        "session": {"start": T0.isoformat(), "seed": 0, "key": "golden"},
    }
    result = asyncio.run(run_backtest(config, strategy, market()))  # type: ignore[arg-type]
    s = result.summary
    with localcontext(MONEY):
        spot_fee = D("3001.5") * D("0.001")  # buy 1 ETH at 3000 x 1.0005
        perp_fee = D("3008.495") * D("0.0005")  # short 1 at 3010 x 0.9995
        gas_eth = D(46_000 + 210_000) * D(20) / D(10) ** 9  # approve + supply at 20 gwei
        supplied = D(2000)
        interest = D(0)
        for before, after in pairwise(INDEX):
            step = (supplied * (after / before - 1)).quantize(D("1e-18"))
            interest += step
            supplied += step
        funding = D(1) * D("3020") * D("0.0001")  # short receives when the rate is positive
    assert s["fills"] == 2
    assert s["balances"]["binance"] == {"ETH": D("0.499"), "USDT": D(10000) - D("3001.5") - spot_fee}
    assert s["balances"]["bybit"] == {"USDT": D(5000) - perp_fee + funding}
    assert s["balances"]["ethereum"] == {"ETH": D(1) - gas_eth + D("0.5"), "USDT (supplied)": supplied}
    pnl = s["pnl"]
    assert pnl["fees"] == -(spot_fee + perp_fee)
    assert pnl["withdrawal_fees"] == -D("0.001") * D(3000)
    assert pnl["gas"] == -gas_eth * D(3000)
    assert pnl["funding"] == funding
    assert pnl["supply_interest"] == interest
    assert len(s["positions"]) == 1  # spot is inventory (the balances), never a position
    assert s["positions"][0]["quantity"] == D(-1) and s["positions"][0]["avg_entry"] == D("3008.495")
    unrealised_perp = D(-1) * (PERP[-1] - D("3008.495"))
    equity = (
        D(10000)
        - D("3001.5")
        - spot_fee
        + D("0.499") * 3000
        + D(5000)
        - perp_fee
        + funding
        + (D(1) - gas_eth + D("0.5")) * 3000
        + supplied
        + unrealised_perp
    )
    assert s["final_equity"] == equity
    assert s["initial_equity"] == D(10000 + 5000 + 2000 + 3000)
    # the statement reconciles exactly: no flow after the funding, so its total is the equity change
    assert pnl["total"] == s["final_equity"] - s["initial_equity"]
    assert s["external_flows"] == s["initial_equity"]
    assert s["in_transit"] == {}
