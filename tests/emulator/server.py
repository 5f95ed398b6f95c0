"""The emulator process part: one aiohttp server in a background thread serving all three venues.

It listens on 127.0.0.1 twice: a TLS port that answers under the venues' real hostnames (the client
resolves them to 127.0.0.1 and verifies the test CA), and a plain-HTTP port for URL-rewrite mode
(``http://127.0.0.1:PORT/_h/<host>/<path>``). Requests are routed by hostname and path.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .chainlink import ChainLink
from .engine import D, VenueEngine
from .faults import Fault, FaultPlan
from .signing import ApiCredentials
from .tls import LoopbackPKI, get_pki
from .venue import HttpReply, HttpRequest, Route, VenueAPI


def wall_clock_ms() -> float:
    """Wall time in ms: the default source of the emulator clock (server-time and recvWindow only)."""
    return time.time() * 1000.0


class Clock:
    """The emulator's clock: a replaceable source plus an offset that tests set to skew the server."""

    def __init__(self, source: Callable[[], float] | None = None) -> None:
        self._source = source or wall_clock_ms
        self.offset_ms = 0

    def set_source(self, source: Callable[[], float] | None) -> None:
        self._source = source or wall_clock_ms

    def now_ms(self) -> int:
        return int(self._source()) + self.offset_ms


DEFAULT_MIDS = {"ETH": "2000", "BTC": "60000", "LTC": "70"}
DEFAULT_BALANCES = {"USDT": "100000", "ETH": "10", "BTC": "1", "LTC": "100"}


class Emulator:
    """Binance, Bybit and OKX emulated behind one loopback server; start() before use.

    State control and inspection are plain Python calls on :attr:`engines` (via :meth:`venue`),
    :attr:`faults` and :attr:`clock`; all of them are safe to call while the server runs.
    """

    VENUES = ("binance", "bybit", "okx")

    def __init__(self, clock: Clock | None = None) -> None:
        from . import binance, bybit, okx

        self.clock = clock or Clock()
        self.faults = FaultPlan()
        self.pki: LoopbackPKI = get_pki()
        self.credentials: dict[str, ApiCredentials] = {
            "binance": ApiCredentials("binance-test-key", "binance-test-secret"),
            "bybit": ApiCredentials("bybit-test-key", "bybit-test-secret"),
            "okx": ApiCredentials("okx-test-key", "okx-test-secret", "okx-test-passphrase"),
        }
        self.engines: dict[str, VenueEngine] = {
            "binance": VenueEngine(binance.build_config()),
            "bybit": VenueEngine(bybit.build_config()),
            "okx": VenueEngine(okx.build_config()),
        }
        self.apis: dict[str, VenueAPI] = {
            "binance": binance.BinanceAPI(self),
            "bybit": bybit.BybitAPI(self),
            "okx": okx.OkxAPI(self),
        }
        for engine in self.engines.values():
            engine.now_ms_source = self.clock.now_ms
        self.chain: ChainLink | None = None
        self._by_host: dict[str, VenueAPI] = {h: api for api in self.apis.values() for h in api.hosts}
        self.tls_port = 0
        self.http_port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.reset()

    # ----------------------------------------------------------------- state
    def venue(self, name: str) -> VenueEngine:
        return self.engines[name]

    def inspect(self, name: str) -> dict[str, Any]:
        """A deep copy of one venue account: balances, orders, trades, positions, mids."""
        return self.engines[name].snapshot()

    def requests(self, name: str) -> list[dict[str, Any]]:
        with self.engines[name].lock:
            return list(self.engines[name].requests)

    def reset(self, seed: bool = True) -> None:
        """Forget all orders, trades, positions and faults; optionally seed balances and mid prices."""
        self.faults.clear()
        self.clock.offset_ms = 0
        self.detach_chain()
        for name, engine in self.engines.items():
            engine.reset()
            if not seed:
                continue
            for m in engine.markets.values():
                engine.mids[m.symbol] = D(DEFAULT_MIDS[m.base])
            for wallet in engine.wallet_names:
                perp_only = name == "binance" and wallet == "futures"
                for asset, amount in DEFAULT_BALANCES.items():
                    if perp_only and asset != "USDT":
                        continue
                    engine.set_balance(wallet, asset, amount)

    def set_mid(self, symbol: str, price: Any, venues: tuple[str, ...] | None = None) -> None:
        """Set the mid of ``symbol`` on every venue that lists it (resting orders may fill)."""
        now = self.clock.now_ms()
        for name in venues or self.VENUES:
            engine = self.engines[name]
            if symbol in engine.markets:
                engine.set_mid(symbol, price, now)

    # ----------------------------------------------------------------- chain link
    def attach_chain(self, rpc_url: str, tokens: dict[str, str] | None = None,
                     hot_wallet_key: str = "", confirmations: int = 1) -> ChainLink:
        """Link all venues to a local chain: withdrawals are sent from ``hot_wallet_key``'s account,
        on-chain transfers to a venue's deposit address become that venue's deposits."""
        link = ChainLink(rpc_url, dict(tokens or {}), hot_wallet_key, confirmations, self.engines)
        self.chain = link
        for engine in self.engines.values():
            with engine.lock:
                engine.chain = link
        return link

    def detach_chain(self) -> None:
        self.chain = None
        for engine in self.engines.values():
            with engine.lock:
                engine.chain = None

    def scan_chain(self) -> int:
        """Read new blocks now and credit deposits (returns how many were found); 0 without a chain."""
        return self.chain.scan() if self.chain is not None else 0

    def inject(self, venue: str, endpoint: str, kind: str, **kwargs: Any) -> Fault:
        """Arm a fault; see :meth:`FaultPlan.inject`."""
        return self.faults.inject(venue, endpoint, kind, **kwargs)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="exchange-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("exchange emulator did not start")
        if self._startup_error is not None:
            raise RuntimeError("exchange emulator failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(self._request_stop)
        thread.join(15)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            app = web.Application(client_max_size=4 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.pki.server_context())
            http_site = web.TCPSite(runner, "127.0.0.1", 0)
            await tls_site.start()
            await http_site.start()
            self._runner = runner
            self.tls_port = _port_of(tls_site)
            self.http_port = _port_of(http_site)
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopping.wait()
        await runner.cleanup()

    # ----------------------------------------------------------------- HTTP
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        path = request.rel_url.path
        if path.startswith("/_h/"):
            host, _, rest = path[len("/_h/"):].partition("/")
            path = "/" + rest
        api = self._by_host.get(host)
        if api is None:
            return web.Response(status=421, text=f"unknown host {host}")
        req = HttpRequest(
            method=request.method.upper(),
            host=host,
            path=path,
            raw_query=request.rel_url.raw_query_string,
            body=await request.text(),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        route = api.route(req.method, host, path)
        if route is None:
            return _to_response(api.not_found(req))
        name = route.name_for(req)
        api.engine.log_request({
            "name": name, "method": req.method, "host": host, "path": path,
            "query": req.raw_query, "body": req.body, "headers": dict(req.headers),
        })
        fault = self.faults.take(api.name, name, req.method, path)
        if fault is not None and not fault.apply:
            if fault.kind == "error":
                assert fault.error is not None
                return _to_response(api.injected_error(fault.error, route, req))
            if fault.kind in ("drop", "timeout"):
                return await self._lose(request, fault)
            await asyncio.sleep(fault.delay_s)
        reply = self._dispatch(api, route, req)
        if fault is not None and fault.apply:
            if fault.kind == "error":
                assert fault.error is not None
                return _to_response(api.injected_error(fault.error, route, req))
            if fault.kind in ("drop", "timeout"):
                return await self._lose(request, fault)
            await asyncio.sleep(fault.delay_s)
        return _to_response(reply)

    def _dispatch(self, api: VenueAPI, route: Route, req: HttpRequest) -> HttpReply:
        with api.engine.lock:
            return api.dispatch(route, req)

    async def _lose(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        """Drop the connection now, or (timeout) hold the answer until the client gives up."""
        if fault.kind == "timeout":
            assert self._stopping is not None
            waited = 0.0
            while waited < fault.max_hold_s and not self._stopping.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                await asyncio.sleep(0.02)
                waited += 0.02
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=499, text="")


def _to_response(reply: HttpReply) -> web.Response:
    body, ctype = reply.encode()
    headers = dict(reply.headers)
    return web.Response(status=reply.status, body=body, content_type=ctype, headers=headers)


def _port_of(site: web.TCPSite) -> int:
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None)
    assert sockets
    return int(sockets[0].getsockname()[1])


@contextlib.contextmanager
def running_emulator() -> Any:
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()
