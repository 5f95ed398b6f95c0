"""A loopback exchange emulator (Binance, Bybit v5, OKX v5) that the real ccxt client talks to."""

from .client import make_client, point_to_loopback
from .engine import EngineError, MarketSpec, Order, Position, Trade, VenueEngine
from .faults import ERROR_KINDS, FAULT_KINDS, Fault, FaultPlan
from .server import Clock, Emulator

__all__ = [
    "ERROR_KINDS",
    "FAULT_KINDS",
    "Clock",
    "Emulator",
    "EngineError",
    "Fault",
    "FaultPlan",
    "MarketSpec",
    "Order",
    "Position",
    "Trade",
    "VenueEngine",
    "make_client",
    "point_to_loopback",
]
