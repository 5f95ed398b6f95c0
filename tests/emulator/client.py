"""Real ccxt clients (async and sync) wired to the emulator.

Default wiring is *transparent TLS*: ccxt keeps its production URLs (``https://api.binance.com/...``);
only the transport changes — the venues' hostnames resolve to 127.0.0.1:<tls_port>, TLS and SNI run
as in production against a certificate of the test CA, and any other hostname fails to resolve (so
nothing can leave the machine). ``mode="rewrite"`` instead points every ``urls['api']`` entry at
``http://127.0.0.1:<http_port>/_h/<host>/...``.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import requests
import urllib3
from aiohttp.abc import AbstractResolver, ResolveResult
from requests.adapters import HTTPAdapter

from .tls import VENUE_HOSTS

if TYPE_CHECKING:
    from .server import Emulator

# Options that keep load_markets to the markets the emulator lists (see notes §1.3).
MINIMAL_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchMargins": False,
                "fetchCurrencies": False},
    "bybit": {"fetchMarkets": {"types": ["spot", "linear"]}, "enableUnifiedAccount": True,
              "enableUnifiedMargin": False},
    "okx": {"fetchMarkets": {"types": ["spot", "swap"]}},
}


class LoopbackResolver(AbstractResolver):
    """Resolves only the emulated hostnames, all to 127.0.0.1:<port>; everything else fails."""

    def __init__(self, hosts: tuple[str, ...], port: int) -> None:
        self.hosts = frozenset(hosts)
        self.port = port

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.hosts:
            raise OSError(f"{host} is not an emulated host (loopback-only resolver)")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self.port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


def loopback_session(emulator: Emulator) -> aiohttp.ClientSession:
    """An aiohttp session whose connector reaches the emulator's TLS port under the real hostnames."""
    hosts = tuple(h for hs in VENUE_HOSTS.values() for h in hs)
    connector = aiohttp.TCPConnector(
        resolver=LoopbackResolver(hosts, emulator.tls_port),
        ssl=emulator.pki.client_context(),
        use_dns_cache=False,
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


class LoopbackAdapter(HTTPAdapter):
    """requests transport: HTTPS to an emulated hostname goes to 127.0.0.1:<port> with real SNI."""

    def __init__(self, hosts: tuple[str, ...], port: int, cafile: str) -> None:
        super().__init__(max_retries=0)
        self.hosts = frozenset(hosts)
        self.port = port
        self.cafile = cafile
        self._pools: dict[str, urllib3.HTTPSConnectionPool] = {}
        self._pool_lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        host = str(urlparse(str(request.url)).hostname or "")
        if host not in self.hosts or not str(request.url).startswith("https://"):
            raise requests.ConnectionError(f"{host} is not an emulated host", request=request)
        request.headers["Host"] = host
        return super().send(request, stream=stream, timeout=timeout, verify=self.cafile, cert=cert,
                            proxies=proxies)

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any,
                                        proxies: Any = None, cert: Any = None) -> Any:
        host = str(urlparse(str(request.url)).hostname or "")
        with self._pool_lock:
            pool = self._pools.get(host)
            if pool is None:
                pool = urllib3.HTTPSConnectionPool(
                    "127.0.0.1", self.port, server_hostname=host, assert_hostname=host,
                    cert_reqs="CERT_REQUIRED", ca_certs=self.cafile, maxsize=4,
                )
                self._pools[host] = pool
            return pool

    def close(self) -> None:
        with self._pool_lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
        super().close()


def loopback_requests_session(emulator: Emulator) -> requests.Session:
    hosts = tuple(h for hs in VENUE_HOSTS.values() for h in hs)
    session = requests.Session()
    session.trust_env = False
    adapter = LoopbackAdapter(hosts, emulator.tls_port, str(emulator.pki.ca_pem))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _rewrite_urls(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith("https://"):
        return base + "/_h/" + value[len("https://"):]
    if isinstance(value, dict):
        return {k: _rewrite_urls(v, base) for k, v in value.items()}
    return value


def point_to_loopback(exchange: Any, base_url: str) -> None:
    """Rewrite mode: https://HOST/PATH -> {base_url}/_h/HOST/PATH for every urls['api'] entry."""
    exchange.urls["api"] = _rewrite_urls(exchange.urls["api"], base_url)


def _async_class(base: type) -> Any:
    class LoopbackExchange(base):  # type: ignore[misc]
        """Creates the loopback session lazily, inside the running event loop, and owns it."""

        _emulator: Emulator
        _mode: str = "tls"

        def open(self, lazy: bool = False) -> None:
            session: Any = getattr(self, "session", None)
            if self._mode == "tls" and session is None and not (lazy and self.closed_by_user):
                self.session = loopback_session(self._emulator)
            super().open(lazy)

    LoopbackExchange.__name__ = base.__name__
    LoopbackExchange.__qualname__ = base.__qualname__
    return LoopbackExchange


def make_client(venue: str, emulator: Emulator, async_: bool = True, *, mode: str = "tls",
                timeout_ms: int = 10000, enable_rate_limit: bool = False, minimal: bool = True,
                credentials: dict[str, str] | None = None, options: dict[str, Any] | None = None,
                currencies: bool = False, **config: Any) -> Any:
    """A configured ccxt exchange (``ccxt.async_support`` unless ``async_=False``) for the emulator.

    ``credentials`` overrides apiKey/secret/password (e.g. a wrong secret to test auth errors).
    ``minimal`` applies :data:`MINIMAL_OPTIONS` so load_markets only asks for what is emulated.
    ``currencies=True`` (OKX only) keeps ``fetchCurrencies`` on so ccxt loads ``/asset/currencies``:
    OKX's deposit-address network mapping and withdraw fee need it.
    Async clients must be closed with ``await ex.close()`` (the loopback session is closed too).
    """
    if venue not in VENUE_HOSTS:
        raise ValueError(f"unknown venue {venue!r}")
    if mode not in ("tls", "rewrite"):
        raise ValueError("mode must be 'tls' or 'rewrite'")
    creds = emulator.credentials[venue]
    merged_options: dict[str, Any] = {}
    if minimal:
        merged_options.update(MINIMAL_OPTIONS[venue])
    merged_options.update(options or {})
    settings: dict[str, Any] = {
        "apiKey": creds.api_key,
        "secret": creds.secret,
        "timeout": timeout_ms,
        "enableRateLimit": enable_rate_limit,
        "timeout_on_exit": 0,  # ccxt sleeps 250 ms in close() by default
        "options": merged_options,
    }
    if creds.passphrase:
        settings["password"] = creds.passphrase
    if credentials:
        settings.update(credentials)
    settings.update(config)
    if async_:
        cls = _async_class(getattr(ccxt_async, venue))
        cls._emulator = emulator
        cls._mode = mode  # in rewrite mode ccxt creates its own plain session
        exchange = cls(settings)
    else:
        if mode == "tls":
            settings["session"] = loopback_requests_session(emulator)
        exchange = getattr(ccxt, venue)(settings)
    if mode == "rewrite":
        point_to_loopback(exchange, f"http://127.0.0.1:{emulator.http_port}")
    if minimal and venue in ("bybit", "okx") and not (currencies and venue == "okx"):
        exchange.has["fetchCurrencies"] = False
    return exchange
