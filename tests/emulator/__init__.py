"""A loopback exchange emulator (Binance, Bybit v5, OKX v5) that the real ccxt client talks to."""

from .chainlink import ChainError, ChainLink
from .client import make_client, point_to_loopback
from .engine import EngineError, MarketSpec, Order, Position, Trade, VenueEngine
from .faults import ERROR_KINDS, FAULT_KINDS, Fault, FaultPlan
from .server import Clock, Emulator
from .wallets import Deposit, IncomeEntry, Withdrawal, default_deposit_address

__all__ = [
    "ERROR_KINDS",
    "FAULT_KINDS",
    "ChainError",
    "ChainLink",
    "Clock",
    "Deposit",
    "Emulator",
    "EngineError",
    "Fault",
    "FaultPlan",
    "IncomeEntry",
    "MarketSpec",
    "Order",
    "Position",
    "Trade",
    "VenueEngine",
    "Withdrawal",
    "default_deposit_address",
    "make_client",
    "point_to_loopback",
]
