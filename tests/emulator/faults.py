"""Fault injection for the emulator: the next matching request times out, fails or loses its connection."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# Venue-neutral names of injectable venue errors; each venue module renders them in its own format.
ERROR_KINDS = (
    "insufficient_balance",  # -> ccxt.InsufficientFunds
    "rate_limit",  # -> ccxt.RateLimitExceeded / DDoSProtection (Binance answers 429)
    "invalid_timestamp",  # -> ccxt.InvalidNonce
    "maintenance",  # -> ccxt.ExchangeNotAvailable (OnMaintenance where the venue says so)
    "server_error",  # HTTP 500 -> ccxt.ExchangeNotAvailable
    "unknown_status",  # Binance -1007 / OKX 50004 / HTTP 504 -> ccxt.RequestTimeout
    "invalid_api_key",  # -> ccxt.AuthenticationError
)
FAULT_KINDS = ("timeout", "drop", "error", "delay")


@dataclass
class Fault:
    """One armed fault.

    ``endpoint`` is a logical name (``create_order``, ``fetch_order``, ``cancel_order``, ...), a
    ``"METHOD /path"`` or a ``"/path"``, or ``"*"`` for any request of the venue.
    ``apply`` says whether the venue processes the request before the fault hits: a timeout with
    ``apply=True`` is the classic unknown outcome (the order exists, the client never hears of it).
    """

    venue: str
    endpoint: str
    kind: str
    error: str | None = None
    apply: bool = False
    count: int = 1
    delay_s: float = 0.0
    max_hold_s: float = 30.0
    hits: int = 0
    seen: list[str] = field(default_factory=list)

    def matches(self, venue: str, name: str, method: str, path: str) -> bool:
        if self.venue != venue:
            return False
        ep = self.endpoint
        if ep in ("*", name, path):
            return True
        return ep == f"{method} {path}"


class FaultPlan:
    """Thread-safe list of armed faults; each one fires ``count`` times, then disarms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.history: list[Fault] = []

    def inject(
        self,
        venue: str,
        endpoint: str,
        kind: str,
        *,
        error: str | None = None,
        apply: bool | None = None,
        count: int = 1,
        delay_s: float = 0.0,
        max_hold_s: float = 30.0,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if kind == "error" and error not in ERROR_KINDS:
            raise ValueError(f"unknown error {error!r}; one of {ERROR_KINDS}")
        if apply is None:
            # a timeout models "accepted but the answer was lost"; errors model rejections
            apply = kind in ("timeout", "delay") or error == "unknown_status"
        fault = Fault(venue=venue, endpoint=endpoint, kind=kind, error=error, apply=apply,
                      count=count, delay_s=delay_s, max_hold_s=max_hold_s)
        with self._lock:
            self._faults.append(fault)
            self.history.append(fault)
        return fault

    def take(self, venue: str, name: str, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(venue, name, method, path):
                    fault.hits += 1
                    fault.seen.append(f"{method} {path}")
                    if fault.hits >= fault.count:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.history.clear()
