"""ccxt.async_support clients for Binance, Bybit and OKX: credentials from the config or the
environment, sandbox/demo/mainnet selection, minimal `load_markets`, clock offset, rate limiter,
a per-venue concurrency bound, and read retries. Secrets never leave this module in clear."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async

from executors.costs import ConfigError
from executors.live import ccxt_parse as parse

log = logging.getLogger("executors.live")

VENUES = ("binance", "bybit", "okx")
# The options of notes §1.3: load_markets asks only for spot and linear perpetual markets.
MINIMAL_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot", "linear"]},
        "fetchMargins": False,
        "fetchCurrencies": False,
    },
    "bybit": {
        "fetchMarkets": {"types": ["spot", "linear"]},
        "enableUnifiedAccount": True,
        "enableUnifiedMargin": False,
    },
    "okx": {"fetchMarkets": {"types": ["spot", "swap"]}},
}
# fetch2() re-sends every request (POST included) after any OperationFailed when this is on: an
# order whose reply was lost would be placed twice (notes §5). Kept off, whatever the config says.
NO_LIBRARY_RETRIES = {"maxRetriesOnFailure": 0, "maxRetriesOnFailureDelay": 0}

ClientFactory = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class Credentials:
    """API credentials of one venue; the repr never shows them."""

    venue: str
    api_key: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)

    @property
    def missing(self) -> list[str]:
        need = [("api_key", self.api_key), ("secret", self.secret)]
        if self.venue == "okx":
            need.append(("passphrase", self.passphrase))
        return [f"{self.venue}_{name}" for name, value in need if not value]

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.secret, self.passphrase) if s)


def credentials(venue: str, config: Mapping[str, Any]) -> Credentials:
    """`{venue}_api_key`, `{venue}_secret` (and `okx_passphrase`) from the config, else the environment."""

    def value(key: str) -> str:
        found = config.get(key)
        if found is None or found == "":
            found = os.environ.get(key.upper(), "")
        return str(found)

    return Credentials(
        venue,
        value(f"{venue}_api_key"),
        value(f"{venue}_secret"),
        value(f"{venue}_passphrase") if venue == "okx" else "",
    )


def _flag(config: Mapping[str, Any], key: str) -> bool | None:
    value = config.get(key)
    if value is None:
        env = os.environ.get(key.upper())
        value = env if env else None
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(key, f"expected true or false, got {value!r}")


def network(venue: str, config: Mapping[str, Any]) -> str:
    """`demo`, `sandbox` or `mainnet`; mainnet only with `live.mainnet = true` (the CLI's --mainnet)."""
    live = config.get("live") or {}
    mainnet_allowed = bool(live.get("mainnet", False))
    if _flag(config, f"{venue}_demo"):
        return "demo"
    sandbox = _flag(config, f"{venue}_sandbox")
    if sandbox or (sandbox is None and not mainnet_allowed):
        return "sandbox"
    if not mainnet_allowed:
        raise ConfigError(f"{venue}_sandbox", "is false, but mainnet trading needs --mainnet (live.mainnet)")
    return "mainnet"


def settings(venue: str, config: Mapping[str, Any], creds: Credentials) -> dict[str, Any]:
    """The ccxt constructor settings: keys, rate limiter on, timeout, minimal markets, no library retries."""
    live = config.get("live") or {}
    options: dict[str, Any] = {
        **MINIMAL_OPTIONS[venue],
        **dict(live.get("ccxt_options") or {}),
        **NO_LIBRARY_RETRIES,
    }
    out: dict[str, Any] = {
        "apiKey": creds.api_key,
        "secret": creds.secret,
        "enableRateLimit": True,
        "timeout": int(live.get("timeout_ms", 10_000)),
        "options": options,
    }
    if creds.passphrase:
        out["password"] = creds.passphrase
    return out


def build_exchange(venue: str, config: Mapping[str, Any], factory: ClientFactory | None = None) -> Any:
    """A ccxt async exchange for `venue`; `factory(venue, settings)` builds it instead (tests: the
    emulator's transport), in which case the factory also owns the URLs (no sandbox switch here)."""
    if venue not in VENUES:
        raise ConfigError("venues", f"{venue!r} has no live ccxt client (known: {', '.join(VENUES)})")
    creds = credentials(venue, config)
    conf = settings(venue, config, creds)
    if factory is not None:
        exchange = factory(venue, conf)
    else:
        mode = network(venue, config)
        exchange = getattr(ccxt_async, venue)(conf)
        if mode == "demo":
            exchange.enable_demo_trading(True)
        elif mode == "sandbox":
            exchange.set_sandbox_mode(True)
    exchange.options.update(NO_LIBRARY_RETRIES)
    exchange.verbose = False  # verbose prints signed request headers (the API key) to stdout
    # ccxt logs every request with its headers at DEBUG: route it through a logger that redacts
    exchange.logger = redacting_logger(venue, creds.secrets)
    if venue in ("bybit", "okx"):
        exchange.has["fetchCurrencies"] = False  # a private call before the clock offset is known
    if venue == "binance":
        exchange.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
    return exchange


class Redact(logging.Filter):
    """Replaces the secrets in every record of a logger (ccxt's request and response lines)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = parse.redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redacting_logger(venue: str, secrets: tuple[str, ...]) -> logging.Logger:
    """`executors.live.ccxt.<venue>`, whose records never carry that venue's secrets."""
    logger = logging.getLogger(f"executors.live.ccxt.{venue}")
    for old in [f for f in logger.filters if isinstance(f, Redact)]:
        logger.removeFilter(old)
    logger.addFilter(Redact(secrets))
    return logger


class VenueClient:
    """One venue's ccxt client with its concurrency bound; `call` retries reads, `submit` never does."""

    def __init__(self, venue: str, config: Mapping[str, Any], factory: ClientFactory | None = None) -> None:
        live = config.get("live") or {}
        self.venue = venue
        self.creds = credentials(venue, config)
        self.exchange: Any = build_exchange(venue, config, factory)
        self.max_concurrency = max(1, int(live.get("max_concurrency", 4)))
        self.read_retries = max(0, int(live.get("read_retries", 2)))
        self.backoff_s = float(live.get("retry_backoff_s", 0.5))
        self._sem: asyncio.Semaphore | None = None
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"VenueClient({self.venue!r}, started={self._started})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.creds.secrets

    @property
    def sem(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        return self._sem

    @property
    def started(self) -> bool:
        return self._started

    async def start(self, signed: bool = True) -> None:
        """Clock offset first (the first signed call needs it), then the markets; `signed=False` for
        clients that only read public market data."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if signed:
                await self.call("load_time_difference")
            await self.call("load_markets")
            self._started = True

    def market(self, symbol: str) -> dict[str, Any] | None:
        markets = getattr(self.exchange, "markets", None) or {}
        found = markets.get(symbol)
        return dict(found) if found else None

    @property
    def precision_mode(self) -> int:
        return int(getattr(self.exchange, "precisionMode", parse.TICK_SIZE))

    async def resync_clock(self) -> None:
        async with self.sem:
            await self.exchange.load_time_difference()

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read: retried on network errors with backoff; an InvalidNonce resyncs the clock first."""
        attempt = 0
        while True:
            try:
                async with self.sem:
                    return await getattr(self.exchange, method)(*args, **kwargs)
            except ccxt.InvalidNonce:
                if attempt >= self.read_retries:
                    raise
                await self.resync_clock()
            except (ccxt.NetworkError, ccxt.BadResponse) as e:
                if attempt >= self.read_retries:
                    raise
                log.info("%s %s: %s; retrying", self.venue, method, parse.reason(e, self.secrets))
                await asyncio.sleep(self.backoff_s * (2**attempt))
            attempt += 1

    async def check(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read made between resends of a write (a circuit breaker does not count its success)."""
        return await self.call(method, *args, **kwargs)

    async def submit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A write: sent once; the caller classifies what it raises."""
        async with self.sem:
            return await getattr(self.exchange, method)(*args, **kwargs)

    async def close(self) -> None:
        close: Callable[[], Awaitable[Any]] | None = getattr(self.exchange, "close", None)
        if close is not None:
            await close()
