"""Simulated venues for backtests and dry runs: they report fills and effects as ledger facts."""
