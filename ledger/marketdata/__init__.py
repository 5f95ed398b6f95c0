"""Market data for backtests and replays: the `MarketData` frame and its sources (a seeded generator,
Binance archive files, a folder of them, an existing event log)."""

from __future__ import annotations

from ledger.marketdata.binance import Kline, load_funding, load_klines
from ledger.marketdata.eventlog import load_event_log
from ledger.marketdata.folder import data_digest_of_folder, load_folder
from ledger.marketdata.frame import DataError, FundingPoint, MarketData, canonical_digest
from ledger.marketdata.synthetic import generate

__all__ = [
    "DataError", "FundingPoint", "Kline", "MarketData", "canonical_digest", "data_digest_of_folder",
    "generate", "load_event_log", "load_folder", "load_funding", "load_klines",
]
