"""What the three venue modules share: the parsed HTTP request, the reply, and the route table."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .engine import D, EngineError, MarketSpec, Order, VenueEngine

if TYPE_CHECKING:
    from .server import Emulator


@dataclass
class HttpRequest:
    method: str
    host: str
    path: str
    raw_query: str
    body: str
    headers: dict[str, str]  # lower-case names

    @cached_property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    @cached_property
    def form(self) -> dict[str, str]:
        ctype = self.headers.get("content-type", "")
        if self.body and "json" not in ctype and not self.body.lstrip().startswith(("{", "[")):
            return dict(parse_qsl(self.body, keep_blank_values=True))
        return {}

    @cached_property
    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def params(self) -> dict[str, str]:
        """Query and urlencoded-body parameters together (Binance sends POST params in the body)."""
        merged = dict(self.query)
        merged.update(self.form)
        return merged


@dataclass
class HttpReply:
    status: int
    body: Any  # JSON-serialisable, or str for a raw body
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain"
        return json.dumps(self.body, separators=(",", ":")).encode(), "application/json"


Handler = Callable[[HttpRequest], HttpReply]


@dataclass
class Route:
    method: str
    host: str
    path: str
    name: str  # logical endpoint name used by fault injection, e.g. 'create_order'
    handler: Handler
    signed: bool
    kind: str | None = None  # 'spot' | 'perp' where the endpoint is specific to one market type
    # a request-dependent logical name, for endpoints that serve two unified calls (e.g. Bybit's
    # /v5/execution/list: fetch_my_trades, or fetch_funding_history with execType=Funding)
    classify: Callable[[HttpRequest], str | None] | None = None

    def name_for(self, req: HttpRequest) -> str:
        if self.classify is not None:
            return self.classify(req) or self.name
        return self.name


class VenueAPI:
    """Base of the venue modules: route lookup, authentication, and error rendering hooks."""

    name = ""
    hosts: tuple[str, ...] = ()

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.engine: VenueEngine = emulator.engines[self.name]
        self.routes: dict[tuple[str, str, str], Route] = {}
        self.register()

    # subclasses fill the route table
    def register(self) -> None:
        raise NotImplementedError

    def add(self, method: str, host: str, path: str, name: str, handler: Handler, *,
            signed: bool = False, kind: str | None = None,
            classify: Callable[[HttpRequest], str | None] | None = None) -> None:
        self.routes[(method, host, path)] = Route(method, host, path, name, handler, signed, kind, classify)

    def route(self, method: str, host: str, path: str) -> Route | None:
        return self.routes.get((method, host, path))

    def now_ms(self) -> int:
        return self.emu.clock.now_ms()

    def dispatch(self, route: Route, req: HttpRequest) -> HttpReply:
        if route.signed:
            denied = self.authenticate(req)
            if denied is not None:
                return denied
        try:
            return route.handler(req)
        except EngineError as exc:
            return self.engine_error(exc, route, req)

    def authenticate(self, req: HttpRequest) -> HttpReply | None:
        raise NotImplementedError

    def engine_error(self, exc: EngineError, route: Route, req: HttpRequest) -> HttpReply:
        raise NotImplementedError

    def injected_error(self, error: str, route: Route, req: HttpRequest) -> HttpReply:
        raise NotImplementedError

    def not_found(self, req: HttpRequest) -> HttpReply:
        return HttpReply(404, "<html><body><h1>404 Not Found</h1></body></html>")

    # helpers for the venue modules
    def market_for(self, kind: str, venue_id: str | None) -> MarketSpec:
        if not venue_id:
            raise EngineError("bad_param", "symbol is required")
        return self.engine.market_by_id(kind, venue_id)

    def find(self, m: MarketSpec, order_id: str | None, client_id: str | None) -> Order:
        return self.engine.find_order(m.symbol, order_id=order_id or None,
                                      client_id=client_id or None, kind=m.kind)


def decimals_of(step: Any) -> int:
    """Number of decimal places of a step such as Decimal('0.001') -> 3."""
    exponent = D(step).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)
