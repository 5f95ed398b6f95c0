"""A venue's circuit breaker and the ccxt client that reports every request's outcome to it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt

from executors.live import ccxt_parse as parse
from executors.live.ccxt_client import ClientFactory, VenueClient

log = logging.getLogger("executors.live")
DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # before any step: the engine's clock runs on


@dataclass
class CircuitBreaker:
    """One venue's breaker: `failures` consecutive outage errors (ExchangeNotAvailable, OnMaintenance
    included) open it for `cooldown_s`, during which new orders are refused unsent; then one order
    may try (half-open). Any answer from the venue closes it; an outage in half-open opens it again."""

    venue: str
    failures: int
    cooldown_s: float
    errors: dict[str, str] = field(repr=False)  # the backend's status-line problems, per venue
    state: str = "closed"  # closed | open | half_open
    consecutive: int = 0
    until: float = 0.0  # time.monotonic() at which the cooldown ends
    until_utc: datetime = DUE_NOW
    last: str = ""

    def allow(self) -> bool:
        """May a new order go out now? After the cooldown the first caller becomes the probe."""
        if self.state == "open" and time.monotonic() >= self.until:
            self.state = "half_open"
            return True
        return self.state == "closed"

    def release(self) -> None:
        """A probe that ended without reaching the venue lets the next order probe instead."""
        if self.state == "half_open":
            self.state, self.until = "open", time.monotonic()

    def observe(self, error: BaseException | None, why: str = "") -> None:
        """Count an outage; any answer from the venue (a result or a venue error) closes the breaker.
        Other transport errors (a timeout) say nothing about the venue's state and change nothing."""
        if isinstance(error, ccxt.ExchangeNotAvailable):
            self.consecutive += 1
            self.last = why
            if self.state == "half_open" or (self.state == "closed" and self.consecutive >= self.failures):
                self.state = "open"
                self.until = time.monotonic() + self.cooldown_s
                self.until_utc = datetime.now(UTC) + timedelta(seconds=self.cooldown_s)
                self.errors[self.venue] = self.describe()
                log.warning("%s: %s", self.venue, self.errors[self.venue])
        elif error is None or isinstance(
            error, ccxt.ExchangeError | ccxt.RateLimitExceeded | ccxt.DDoSProtection | ccxt.InvalidNonce
        ):
            if self.state != "closed":
                log.info("%s: circuit breaker closed (the venue answers again)", self.venue)
                if self.errors.get(self.venue, "").startswith("circuit breaker"):
                    self.errors.pop(self.venue, None)
            self.state, self.consecutive = "closed", 0

    def describe(self) -> str:
        return (
            f"circuit breaker open until {self.until_utc.isoformat(timespec='seconds')} after "
            f"{self.consecutive} consecutive outage errors (last: {self.last})"
        )


class WatchedClient(VenueClient):
    """A venue client whose every request outcome is reported to the venue's circuit breaker."""

    def __init__(
        self, breaker: CircuitBreaker, venue: str, config: Mapping[str, Any], factory: ClientFactory | None
    ) -> None:
        super().__init__(venue, config, factory)
        self.breaker = breaker

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            answer = await super().call(method, *args, **kwargs)
        except Exception as e:
            self.breaker.observe(e, parse.reason(e, self.secrets))
            raise
        self.breaker.observe(None)
        return answer

    async def check(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read between resends: its failures count, its answer does not close the breaker (a venue
        that answers reads while it refuses orders is not back)."""
        try:
            return await super().call(method, *args, **kwargs)
        except ccxt.OrderNotFound:
            raise
        except Exception as e:
            self.breaker.observe(e, parse.reason(e, self.secrets))
            raise

    async def submit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            answer = await super().submit(method, *args, **kwargs)
        except Exception as e:
            self.breaker.observe(e, parse.reason(e, self.secrets))
            raise
        self.breaker.observe(None)
        return answer


__all__ = ["DUE_NOW", "CircuitBreaker", "WatchedClient"]
