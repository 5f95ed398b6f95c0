"""Market data for backtests and replays: the `MarketData` frame and its sources (a seeded generator,
Binance archive files, a folder of them, the seed data folder, an existing event log)."""

from __future__ import annotations

from ledger.marketdata.binance import Kline, load_funding, load_klines
from ledger.marketdata.eventlog import load_event_log
from ledger.marketdata.folder import data_digest_of_folder, load_folder
from ledger.marketdata.frame import DataError, FundingPoint, MarketData, canonical_digest
from ledger.marketdata.seed import NEEDS as SEED_NEEDS
from ledger.marketdata.seed import Availability, availability, availability_of, load_seed, seed_root
from ledger.marketdata.seed_files import gas_units, load_aave_risk, load_execution_costs, load_margin
from ledger.marketdata.synthetic import generate

__all__ = [
    "SEED_NEEDS", "Availability", "DataError", "FundingPoint", "Kline", "MarketData", "availability",
    "availability_of", "canonical_digest", "data_digest_of_folder", "gas_units", "generate", "load_aave_risk",
    "load_event_log", "load_execution_costs", "load_folder", "load_funding", "load_klines", "load_margin",
    "load_seed", "seed_root",
]
