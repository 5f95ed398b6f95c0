"""Where the tests find what the repository ships: the market data (`data/`) and fixtures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"  # holds seed/ and binance/ (data/README.md)
BINANCE = DATA / "binance"
FIXTURES = REPO / "tests" / "fixtures"
