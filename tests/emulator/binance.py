"""Binance spot (api.binance.com /api/v3) and USDⓈ-M futures (fapi.binance.com /fapi) REST emulation."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .engine import (
    ZERO,
    D,
    EngineError,
    FeeSchedule,
    IdScheme,
    MarketSpec,
    Order,
    Trade,
    VenueConfig,
    fmt,
)
from .signing import binance_signature_ok
from .venue import HttpReply, HttpRequest, Route, VenueAPI, decimals_of

SPOT = "api.binance.com"
FAPI = "fapi.binance.com"
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
STATUS = {
    "new": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
# (notional floor, maintenance margin ratio, max leverage) — a short version of the real brackets
BRACKETS = [(0, "0.004", 125), (50000, "0.005", 100), (250000, "0.01", 50), (1000000, "0.025", 20)]


def build_config() -> VenueConfig:
    def spot(base: str, tick: str, step: str, min_notional: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT", venue_id=f"{base}USDT", kind="spot", base=base,
                          quote="USDT", tick=D(tick), step=D(step), min_qty=D(step),
                          max_qty=D("9000000"), min_notional=D(min_notional))

    def perp(base: str, tick: str, step: str, min_notional: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT:USDT", venue_id=f"{base}USDT", kind="perp", base=base,
                          quote="USDT", settle="USDT", tick=D(tick), step=D(step), min_qty=D(step),
                          max_qty=D("100000"), min_notional=D(min_notional), max_leverage=125)

    return VenueConfig(
        name="binance",
        markets=[
            spot("ETH", "0.01", "0.0001", "5"),
            spot("BTC", "0.01", "0.00001", "5"),
            spot("LTC", "0.01", "0.001", "5"),
            perp("ETH", "0.01", "0.001", "20"),
            perp("BTC", "0.10", "0.001", "100"),
            perp("LTC", "0.01", "0.001", "20"),
        ],
        fees={"spot": FeeSchedule(D("0.001"), D("0.001")),
              "perp": FeeSchedule(D("0.0002"), D("0.0005"))},
        wallets={"spot": "spot", "perp": "futures"},
        # Binance numbers orders and trades per symbol, separately for spot and USDⓈ-M.
        ids=IdScheme(order_id=lambda m, n: str(n), trade_id=lambda m, n: str(n)),
        client_id_unique="open",
        deposit_wallet="spot",
        withdrawal_wallets=("spot",),
        wallet_ids={
            # Binance withdrawal ids are 32 hex digits, deposit ids and income tranIds large integers
            "withdrawal": lambda n: hashlib.md5(f"binance-withdrawal-{n}".encode()).hexdigest(),
            "deposit": lambda n: str(769_800_000_000_000_000 + n),
            "income": lambda n: str(4_480_321_991_774_000_000 + n),
        },
    )


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _dec(params: dict[str, str], key: str) -> Decimal | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return D(value)
    except InvalidOperation:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{key}'.") from None


def f8(value: Decimal | None) -> str:
    return fmt(value if value is not None else ZERO, 8)


class BinanceAPI(VenueAPI):
    name = "binance"
    hosts = (SPOT, FAPI)

    def register(self) -> None:
        a = self.add
        a("GET", SPOT, "/api/v3/ping", "ping", lambda r: HttpReply(200, {}))
        a("GET", SPOT, "/api/v3/time", "fetch_time", self.time)
        a("GET", SPOT, "/api/v3/exchangeInfo", "load_markets", self.spot_exchange_info)
        a("GET", SPOT, "/api/v3/ticker/24hr", "fetch_ticker", lambda r: self.ticker(r, "spot"))
        a("GET", SPOT, "/api/v3/depth", "fetch_order_book", lambda r: self.depth(r, "spot"))
        a("GET", SPOT, "/api/v3/account", "fetch_balance", self.spot_account, signed=True)
        a("POST", SPOT, "/api/v3/order", "create_order", lambda r: self.create(r, "spot"), signed=True)
        a("GET", SPOT, "/api/v3/order", "fetch_order", lambda r: self.get_order(r, "spot"), signed=True)
        a("DELETE", SPOT, "/api/v3/order", "cancel_order", lambda r: self.cancel(r, "spot"),
          signed=True)
        a("GET", SPOT, "/api/v3/openOrders", "fetch_open_orders",
          lambda r: self.open_orders(r, "spot"), signed=True)
        a("DELETE", SPOT, "/api/v3/openOrders", "cancel_all_orders",
          lambda r: self.cancel_all(r, "spot"), signed=True)
        a("GET", SPOT, "/api/v3/allOrders", "fetch_orders", lambda r: self.all_orders(r, "spot"),
          signed=True)
        a("GET", SPOT, "/api/v3/myTrades", "fetch_my_trades", lambda r: self.my_trades(r, "spot"),
          signed=True)
        a("POST", SPOT, "/sapi/v1/asset/transfer", "transfer", self.transfer, signed=True)
        a("GET", SPOT, "/sapi/v1/capital/deposit/address", "fetch_deposit_address", self.deposit_address,
          signed=True)
        a("POST", SPOT, "/sapi/v1/capital/withdraw/apply", "withdraw", self.withdraw, signed=True)
        a("GET", SPOT, "/sapi/v1/capital/withdraw/history", "fetch_withdrawals", self.withdraw_history,
          signed=True)
        a("GET", SPOT, "/sapi/v1/capital/deposit/hisrec", "fetch_deposits", self.deposit_history,
          signed=True)
        a("GET", FAPI, "/fapi/v1/income", "fetch_funding_history", self.income, signed=True)

        a("GET", FAPI, "/fapi/v1/ping", "ping", lambda r: HttpReply(200, {}))
        a("GET", FAPI, "/fapi/v1/time", "fetch_time", self.time)
        a("GET", FAPI, "/fapi/v1/exchangeInfo", "load_markets", self.fapi_exchange_info)
        a("GET", FAPI, "/fapi/v1/ticker/24hr", "fetch_ticker", lambda r: self.ticker(r, "perp"))
        a("GET", FAPI, "/fapi/v1/depth", "fetch_order_book", lambda r: self.depth(r, "perp"))
        a("GET", FAPI, "/fapi/v1/premiumIndex", "fetch_funding_rate", self.premium_index)
        a("GET", FAPI, "/fapi/v3/account", "fetch_balance", self.fapi_account, signed=True)
        a("GET", FAPI, "/fapi/v2/account", "fetch_balance", self.fapi_account, signed=True)
        a("GET", FAPI, "/fapi/v2/balance", "fetch_balance", self.fapi_balance, signed=True)
        a("POST", FAPI, "/fapi/v1/order", "create_order", lambda r: self.create(r, "perp"),
          signed=True)
        a("GET", FAPI, "/fapi/v1/order", "fetch_order", lambda r: self.get_order(r, "perp"),
          signed=True)
        a("DELETE", FAPI, "/fapi/v1/order", "cancel_order", lambda r: self.cancel(r, "perp"),
          signed=True)
        a("GET", FAPI, "/fapi/v1/openOrders", "fetch_open_orders",
          lambda r: self.open_orders(r, "perp"), signed=True)
        a("DELETE", FAPI, "/fapi/v1/allOpenOrders", "cancel_all_orders",
          lambda r: self.cancel_all(r, "perp"), signed=True)
        a("GET", FAPI, "/fapi/v1/allOrders", "fetch_orders", lambda r: self.all_orders(r, "perp"),
          signed=True)
        a("GET", FAPI, "/fapi/v1/userTrades", "fetch_my_trades",
          lambda r: self.my_trades(r, "perp"), signed=True)
        a("GET", FAPI, "/fapi/v1/leverageBracket", "fetch_leverage_tiers", self.leverage_bracket,
          signed=True)
        a("GET", FAPI, "/fapi/v3/positionRisk", "fetch_positions", self.position_risk, signed=True)
        a("GET", FAPI, "/fapi/v2/positionRisk", "fetch_positions", self.position_risk, signed=True)
        a("POST", FAPI, "/fapi/v1/leverage", "set_leverage", self.set_leverage, signed=True)
        a("GET", FAPI, "/fapi/v1/positionSide/dual", "fetch_position_mode",
          lambda r: HttpReply(200, {"dualSidePosition": False}), signed=True)

    # ----------------------------------------------------------------- plumbing
    def dispatch(self, route: Route, req: HttpRequest) -> HttpReply:
        try:
            return super().dispatch(route, req)
        except BinanceError as exc:
            return self.error(exc.status, exc.code, exc.msg)

    @staticmethod
    def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> HttpReply:
        return HttpReply(status, {"code": code, "msg": msg}, headers or {})

    def authenticate(self, req: HttpRequest) -> HttpReply | None:
        creds = self.emu.credentials["binance"]
        key = req.headers.get("x-mbx-apikey")
        if not key:
            return self.error(401, -2014, "API-key format invalid.")
        if key != creds.api_key:
            return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        params = req.params
        timestamp = params.get("timestamp")
        if not timestamp or not timestamp.isdigit():
            return self.error(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, "
                                          "or malformed.")
        if "signature" not in params:
            return self.error(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                                          "or malformed.")
        if not binance_signature_ok(creds.secret, req.raw_query, req.body):
            return self.error(400, -1022, "Signature for this request is not valid.")
        recv_window = int(params.get("recvWindow") or 5000)
        if recv_window > 60000:
            return self.error(400, -1131, "recvWindow must be less than 60000")
        now = self.now_ms()
        if int(timestamp) >= now + 1000:
            return self.error(400, -1021, "Timestamp for this request was 1000ms ahead of the server's "
                                          "time.")
        if now - int(timestamp) > recv_window:
            return self.error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    def engine_error(self, exc: EngineError, route: Route, req: HttpRequest) -> HttpReply:
        perp = route.host == FAPI
        r = exc.reason
        if route.name == "withdraw":
            if r == "insufficient_balance":
                return self.error(400, -4026, "You have insufficient balance.")
            if r == "invalid_address":
                return self.error(400, -4033, "Illegal address.")
            if r == "duplicate_withdrawal":
                return self.error(400, -4001, "Invalid operation. withdrawOrderId is duplicated.")
        if r == "insufficient_balance" and route.name == "transfer":
            return self.error(400, -5013, "Asset transfer failed: insufficient balance")
        if r == "insufficient_balance":
            if perp:
                return self.error(400, -2019, "Margin is insufficient.")
            return self.error(400, -2010, "Account has insufficient balance for requested action.")
        if r in ("lot_size", "min_qty", "max_qty"):
            return self.error(400, -1013, "Filter failure: LOT_SIZE")
        if r == "tick_size":
            return self.error(400, -1013, "Filter failure: PRICE_FILTER")
        if r == "min_notional":
            if perp:
                m = self.engine.market_by_id("perp", req.params.get("symbol", ""))
                return self.error(400, -4164, f"Order's notional must be no smaller than "
                                              f"{fmt(m.min_notional)} (unless you choose reduce only).")
            return self.error(400, -1013, "Filter failure: NOTIONAL")
        if r == "duplicate_client_id":
            if perp:
                return self.error(400, -4116, "ClientOrderId is duplicated.")
            return self.error(400, -2010, "Duplicate order sent.")
        if r == "post_only_would_take":
            if perp:
                return self.error(400, -5022, "Due to the order could not be executed as maker, the Post "
                                              "Only order will be rejected.")
            return self.error(400, -2010, "Order would immediately match and take.")
        if r == "reduce_only_rejected":
            return self.error(400, -2022, "ReduceOnly Order is rejected.")
        if r == "order_not_found" and route.name == "fetch_order":
            return self.error(400, -2013, "Order does not exist.")
        if r in ("order_not_found", "order_not_open"):
            return self.error(400, -2011, "Unknown order sent.")
        if r == "unknown_symbol":
            return self.error(400, -1121, "Invalid symbol.")
        if r == "bad_order_type":
            return self.error(400, -1116, "Invalid orderType.")
        if r in ("bad_param", "bad_price"):
            return self.error(400, -1102, f"Mandatory parameter was not sent or malformed: {exc.message}")
        return self.error(400, -1000, "An unknown error occurred while processing the request.")

    def injected_error(self, error: str, route: Route, req: HttpRequest) -> HttpReply:
        perp = route.host == FAPI
        if error == "insufficient_balance":
            return self.engine_error(EngineError("insufficient_balance"), route, req)
        if error == "rate_limit":
            return self.error(429, -1003, "Too many requests; current limit of IP(127.0.0.1) is 6000 "
                                          "requests per minute. Please use WebSocket Streams for live "
                                          "updates to avoid polling the API.", {"Retry-After": "1"})
        if error == "invalid_timestamp":
            return self.error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        if error == "maintenance":
            return self.error(503, 1, "System is under maintenance.")
        if error == "server_error":
            return HttpReply(500, "Internal Server Error")
        if error == "unknown_status":
            return self.error(503, -1007, "Timeout waiting for response from backend server. Send status "
                                          "unknown; execution status unknown.")
        if error == "invalid_api_key":
            return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        del perp
        raise ValueError(error)

    # ----------------------------------------------------------------- public
    def time(self, req: HttpRequest) -> HttpReply:
        return HttpReply(200, {"serverTime": self.now_ms()})

    def _markets(self, kind: str) -> list[MarketSpec]:
        return [m for m in self.engine.markets.values() if m.kind == kind]

    def _filters(self, m: MarketSpec) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [
            {"filterType": "PRICE_FILTER", "minPrice": f8(m.tick), "maxPrice": "1000000.00000000",
             "tickSize": f8(m.tick)},
            {"filterType": "LOT_SIZE", "minQty": f8(m.min_qty), "maxQty": f8(m.max_qty),
             "stepSize": f8(m.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": f8(m.min_qty), "maxQty": f8(m.max_qty),
             "stepSize": f8(m.step)},
        ]
        if m.contract:
            filters.append({"filterType": "MIN_NOTIONAL", "notional": fmt(m.min_notional)})
        else:
            filters.append({"filterType": "NOTIONAL", "minNotional": f8(m.min_notional),
                            "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False, "avgPriceMins": 5})
        return filters

    def spot_exchange_info(self, req: HttpRequest) -> HttpReply:
        symbols = []
        for m in self._markets("spot"):
            symbols.append({
                "symbol": m.venue_id, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
                "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
                "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "filters": self._filters(m), "permissions": [],
                "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            })
        return HttpReply(200, {"timezone": "UTC", "serverTime": self.now_ms(), "rateLimits": [],
                               "exchangeFilters": [], "symbols": symbols})

    def fapi_exchange_info(self, req: HttpRequest) -> HttpReply:
        symbols = []
        for m in self._markets("perp"):
            symbols.append({
                "symbol": m.venue_id, "pair": m.venue_id, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": m.base, "quoteAsset": m.quote, "marginAsset": m.settle,
                "pricePrecision": decimals_of(m.tick), "quantityPrecision": decimals_of(m.step),
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": self._filters(m),
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            })
        assets = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        return HttpReply(200, {"timezone": "UTC", "serverTime": self.now_ms(), "futuresType": "U_MARGINED",
                               "rateLimits": [], "exchangeFilters": [], "assets": assets,
                               "symbols": symbols})

    def ticker(self, req: HttpRequest, kind: str) -> HttpReply:
        venue_id = req.query.get("symbol")
        markets = [self.market_for(kind, venue_id)] if venue_id else self._markets(kind)
        out = []
        now = self.now_ms()
        for m in markets:
            mid = self.engine.mids.get(m.symbol, ZERO)
            px = self._px(m)
            out.append({"symbol": m.venue_id, "priceChange": "0", "priceChangePercent": "0",
                        "weightedAvgPrice": px(mid), "lastPrice": px(mid), "lastQty": "0",
                        "bidPrice": px(mid - m.tick), "bidQty": "1", "askPrice": px(mid + m.tick),
                        "askQty": "1", "openPrice": px(mid), "highPrice": px(mid), "lowPrice": px(mid),
                        "volume": "0", "quoteVolume": "0", "openTime": now - 86400000, "closeTime": now,
                        "firstId": 0, "lastId": 0, "count": 0})
        return HttpReply(200, out[0] if venue_id else out)

    def depth(self, req: HttpRequest, kind: str) -> HttpReply:
        m = self.market_for(kind, req.query.get("symbol"))
        mid = self.engine.mid(m.symbol)
        px, qty = self._px(m), self._qty(m)
        body: dict[str, Any] = {"lastUpdateId": 1,
                                "bids": [[px(mid - m.tick), qty(D(1000))]],
                                "asks": [[px(mid + m.tick), qty(D(1000))]]}
        if kind == "perp":
            body["E"] = body["T"] = self.now_ms()
        return HttpReply(200, body)

    def premium_index(self, req: HttpRequest) -> HttpReply:
        now = self.now_ms()
        out = []
        venue_id = req.query.get("symbol")
        markets = [self.market_for("perp", venue_id)] if venue_id else self._markets("perp")
        for m in markets:
            mid = self.engine.mids.get(m.symbol, ZERO)
            out.append({"symbol": m.venue_id, "markPrice": self._px(m)(mid), "indexPrice": self._px(m)(mid),
                        "estimatedSettlePrice": self._px(m)(mid),
                        "lastFundingRate": fmt(self.engine.funding_rate(m.symbol), 8),
                        "interestRate": "0.00010000", "nextFundingTime": (now // 28800000 + 1) * 28800000,
                        "time": now})
        return HttpReply(200, out[0] if venue_id else out)

    # ----------------------------------------------------------------- formatting
    @staticmethod
    def _px(m: MarketSpec) -> Any:
        places = decimals_of(m.tick)
        return lambda v: f8(v) if not m.contract else fmt(v if v is not None else ZERO, places)

    @staticmethod
    def _qty(m: MarketSpec) -> Any:
        places = decimals_of(m.step)
        return lambda v: f8(v) if not m.contract else fmt(v if v is not None else ZERO, places)

    def spot_order(self, o: Order, m: MarketSpec) -> dict[str, Any]:
        return {
            "symbol": m.venue_id, "orderId": int(o.order_id), "orderListId": -1,
            "clientOrderId": o.client_id, "price": f8(o.price), "origQty": f8(o.qty),
            "executedQty": f8(o.filled), "cummulativeQuoteQty": f8(o.cum_quote),
            "status": STATUS[o.status], "timeInForce": o.extra.get("tif", "GTC"),
            "type": o.extra.get("venue_type", o.type.upper()), "side": o.side.upper(),
            "stopPrice": f8(ZERO), "icebergQty": f8(ZERO), "time": o.created_ms,
            "updateTime": o.updated_ms, "isWorking": True, "workingTime": o.created_ms,
            "origQuoteOrderQty": f8(o.quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def fapi_order(self, o: Order, m: MarketSpec, with_time: bool = True) -> dict[str, Any]:
        px, qty = self._px(m), self._qty(m)
        venue_type = o.extra.get("venue_type", o.type.upper())
        d: dict[str, Any] = {
            "orderId": int(o.order_id), "symbol": m.venue_id, "status": STATUS[o.status],
            "clientOrderId": o.client_id, "price": px(o.price), "avgPrice": px(o.avg_price),
            "origQty": qty(o.qty), "executedQty": qty(o.filled), "cumQty": qty(o.filled),
            "cumQuote": fmt(o.cum_quote, 5), "timeInForce": o.extra.get("tif", "GTC"),
            "type": venue_type, "reduceOnly": o.reduce_only, "closePosition": False,
            "side": o.side.upper(), "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": venue_type,
            "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
            "updateTime": o.updated_ms,
        }
        if with_time:
            d["time"] = o.created_ms
        return d

    def order_json(self, o: Order) -> dict[str, Any]:
        m = self.engine.markets[o.symbol]
        return self.fapi_order(o, m) if m.contract else self.spot_order(o, m)

    def spot_trade(self, t: Trade, m: MarketSpec) -> dict[str, Any]:
        return {"symbol": m.venue_id, "id": int(t.trade_id), "orderId": int(t.order_id),
                "orderListId": -1, "price": f8(t.price), "qty": f8(t.qty), "quoteQty": f8(t.quote_qty),
                "commission": f8(t.fee), "commissionAsset": t.fee_asset, "time": t.ts,
                "isBuyer": t.side == "buy", "isMaker": t.maker, "isBestMatch": True}

    def fapi_trade(self, t: Trade, m: MarketSpec) -> dict[str, Any]:
        px, qty = self._px(m), self._qty(m)
        return {"buyer": t.side == "buy", "commission": fmt(t.fee, 8), "commissionAsset": t.fee_asset,
                "id": int(t.trade_id), "maker": t.maker, "orderId": int(t.order_id), "price": px(t.price),
                "qty": qty(t.qty), "quoteQty": fmt(t.quote_qty, 5), "realizedPnl": fmt(t.realized_pnl, 8),
                "side": t.side.upper(), "positionSide": "BOTH", "symbol": m.venue_id, "time": t.ts,
                "marginAsset": m.settle}

    # ----------------------------------------------------------------- orders
    def create(self, req: HttpRequest, kind: str) -> HttpReply:
        p = req.params
        m = self.market_for(kind, p.get("symbol"))
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or "
                                           "malformed.")
        venue_type = (p.get("type") or "").upper()
        allowed = ("MARKET", "LIMIT", "LIMIT_MAKER") if kind == "spot" else ("MARKET", "LIMIT")
        if venue_type not in allowed:
            raise BinanceError(400, -1116, "Invalid orderType.")
        qty = _dec(p, "quantity")
        quote_qty = _dec(p, "quoteOrderQty") if kind == "spot" else None
        price = _dec(p, "price")
        tif = p.get("timeInForce") or ""
        if venue_type == "LIMIT" and not tif:
            raise BinanceError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was "
                                           "empty/null, or malformed.")
        if venue_type in ("LIMIT", "LIMIT_MAKER") and price is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or "
                                           "malformed.")
        if qty is None and quote_qty is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, "
                                           "or malformed.")
        if qty is not None and quote_qty is not None:
            raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        position_side = p.get("positionSide", "BOTH")
        if kind == "perp" and position_side != "BOTH":
            raise BinanceError(400, -4061, "Order's position side does not match user's setting.")
        client_id = p.get("newClientOrderId") or f"emu{len(self.engine.orders) + 1:08d}"
        if not CLIENT_ID_RE.match(client_id):
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                           "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        engine_tif = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "GTX": "PO", "": "GTC"}.get(tif, "GTC")
        if venue_type == "LIMIT_MAKER":
            engine_tif = "PO"
        order = self.engine.submit(
            symbol=m.symbol, side=side, type="market" if venue_type == "MARKET" else "limit",
            qty=qty, price=price, quote_qty=quote_qty, client_id=client_id,
            time_in_force=engine_tif, reduce_only=p.get("reduceOnly", "false").lower() == "true",
            now_ms=self.now_ms(),
            extra={"venue_type": venue_type, "tif": tif or "GTC"},
        )
        resp_type = (p.get("newOrderRespType") or ("FULL" if kind == "spot" else "ACK")).upper()
        if kind == "perp":
            body = self.fapi_order(order, m, with_time=False)
            if resp_type == "ACK":
                body.update({"status": "NEW", "executedQty": self._qty(m)(ZERO),
                             "cumQty": self._qty(m)(ZERO), "cumQuote": fmt(ZERO, 5),
                             "avgPrice": self._px(m)(ZERO)})
            return HttpReply(200, body)
        if resp_type == "ACK":
            return HttpReply(200, {"symbol": m.venue_id, "orderId": int(order.order_id), "orderListId": -1,
                                   "clientOrderId": order.client_id, "transactTime": order.created_ms})
        body = self.spot_order(order, m)
        body["transactTime"] = order.created_ms
        for k in ("stopPrice", "time", "updateTime", "isWorking"):
            body.pop(k)
        if resp_type == "FULL":
            body["fills"] = [
                {"price": f8(t.price), "qty": f8(t.qty), "commission": f8(t.fee),
                 "commissionAsset": t.fee_asset, "tradeId": int(t.trade_id)}
                for t in self.engine.trades_for(m.symbol, kind, order.order_id)
            ]
        return HttpReply(200, body)

    def _lookup(self, req: HttpRequest, kind: str) -> tuple[MarketSpec, Order]:
        p = req.params
        m = self.market_for(kind, p.get("symbol"))
        order_id, client_id = p.get("orderId"), p.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both "
                                           "were empty/null!")
        return m, self.find(m, order_id, client_id)

    def get_order(self, req: HttpRequest, kind: str) -> HttpReply:
        _m, order = self._lookup(req, kind)
        return HttpReply(200, self.order_json(order))

    def cancel(self, req: HttpRequest, kind: str) -> HttpReply:
        _m, order = self._lookup(req, kind)
        self.engine.cancel(order, self.now_ms())
        body = self.order_json(order)
        if kind == "spot":
            for k in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime"):
                body.pop(k)
            body["origClientOrderId"] = order.client_id
            body["clientOrderId"] = req.params.get("newClientOrderId") or f"cxl{order.order_id}"
            body["transactTime"] = order.updated_ms
        return HttpReply(200, body)

    def open_orders(self, req: HttpRequest, kind: str) -> HttpReply:
        venue_id = req.params.get("symbol")
        symbol = self.market_for(kind, venue_id).symbol if venue_id else None
        return HttpReply(200, [self.order_json(o) for o in self.engine.open_orders(symbol, kind)])

    def cancel_all(self, req: HttpRequest, kind: str) -> HttpReply:
        m = self.market_for(kind, req.params.get("symbol"))
        if kind == "spot" and not self.engine.open_orders(m.symbol, kind):
            # real Binance answers a spot cancel-all without open orders with -2011
            raise EngineError("order_not_open", "no open orders")
        cancelled = self.engine.cancel_all(m.symbol, kind, self.now_ms())
        if kind == "perp":
            return HttpReply(200, {"code": 200, "msg": "The operation of cancel all open order is done."})
        out = []
        for o in cancelled:
            body = self.spot_order(o, m)
            for k in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime"):
                body.pop(k)
            body["origClientOrderId"] = o.client_id
            body["clientOrderId"] = f"cxl{o.order_id}"
            body["transactTime"] = o.updated_ms
            out.append(body)
        return HttpReply(200, out)

    def all_orders(self, req: HttpRequest, kind: str) -> HttpReply:
        m = self.market_for(kind, req.params.get("symbol"))
        with self.engine.lock:
            orders = sorted((o for o in self.engine.orders.values()
                             if o.symbol == m.symbol and o.kind == kind), key=lambda o: o.seq)
        limit = int(req.params.get("limit") or 500)
        return HttpReply(200, [self.order_json(o) for o in orders][-limit:])

    def my_trades(self, req: HttpRequest, kind: str) -> HttpReply:
        p = req.params
        m = self.market_for(kind, p.get("symbol"))
        trades = self.engine.trades_for(m.symbol, kind, p.get("orderId") or None)
        if p.get("fromId"):
            trades = [t for t in trades if int(t.trade_id) >= int(p["fromId"])]
        if p.get("startTime"):
            trades = [t for t in trades if t.ts >= int(p["startTime"])]
        if p.get("endTime"):
            trades = [t for t in trades if t.ts <= int(p["endTime"])]
        limit = int(p.get("limit") or 500)
        render = self.fapi_trade if kind == "perp" else self.spot_trade
        return HttpReply(200, [render(t, m) for t in trades[:limit]])

    # ----------------------------------------------------------------- accounts
    def spot_account(self, req: HttpRequest) -> HttpReply:
        balances = []
        with self.engine.lock:
            assets = sorted({a for (w, a) in self.engine.balances if w == "spot"})
            for asset in assets:
                free = self.engine.available("spot", asset)
                locked = self.engine.balances[("spot", asset)] - free
                balances.append({"asset": asset, "free": f8(free), "locked": f8(locked)})
        return HttpReply(200, {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self.now_ms(),
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 10000001,
        })

    def _fapi_assets(self) -> list[dict[str, Any]]:
        e = self.engine
        out = []
        now = self.now_ms()
        for (wallet, asset), total in sorted(e.balances.items()):
            if wallet != "futures":
                continue
            upnl = e.unrealized_pnl(wallet, asset)
            pos_im = e.position_im(wallet, asset)
            ord_im = e.order_im(wallet, asset)
            available = e.available(wallet, asset) + min(upnl, ZERO)
            out.append({
                "asset": asset, "walletBalance": fmt(total, 8), "unrealizedProfit": fmt(upnl, 8),
                "marginBalance": fmt(total + upnl, 8), "maintMargin": fmt(self._maint(asset), 8),
                "initialMargin": fmt(pos_im + ord_im, 8), "positionInitialMargin": fmt(pos_im, 8),
                "openOrderInitialMargin": fmt(ord_im, 8), "crossWalletBalance": fmt(total, 8),
                "crossUnPnl": fmt(upnl, 8), "availableBalance": fmt(available, 8),
                "maxWithdrawAmount": fmt(available, 8), "marginAvailable": True, "updateTime": now,
            })
        return out

    def _maint(self, asset: str) -> Decimal:
        total = ZERO
        for sym, pos in self.engine.positions.items():
            m = self.engine.markets[sym]
            if pos.size != 0 and m.settle == asset:
                notional = abs(pos.size) * self.engine.mids.get(sym, pos.entry_price)
                total += notional * D(self._bracket(notional)[1])
        return total

    @staticmethod
    def _bracket(notional: Decimal) -> tuple[int, str, int]:
        chosen = BRACKETS[0]
        for b in BRACKETS:
            if notional >= b[0]:
                chosen = b
        return chosen

    def fapi_account(self, req: HttpRequest) -> HttpReply:
        with self.engine.lock:
            assets = self._fapi_assets()
            positions = [
                {"symbol": r["symbol"], "positionSide": "BOTH", "positionAmt": r["positionAmt"],
                 "unrealizedProfit": r["unRealizedProfit"], "isolatedMargin": "0",
                 "notional": r["notional"], "isolatedWallet": "0", "initialMargin": r["initialMargin"],
                 "maintMargin": r["maintMargin"], "updateTime": r["updateTime"]}
                for r in self._position_rows(None)
            ]
        usdt = next((a for a in assets if a["asset"] == "USDT"), None)

        def total(key: str) -> str:
            return usdt[key] if usdt else "0.00000000"

        return HttpReply(200, {
            "totalInitialMargin": total("initialMargin"), "totalMaintMargin": total("maintMargin"),
            "totalWalletBalance": total("walletBalance"),
            "totalUnrealizedProfit": total("unrealizedProfit"),
            "totalMarginBalance": total("marginBalance"),
            "totalPositionInitialMargin": total("positionInitialMargin"),
            "totalOpenOrderInitialMargin": total("openOrderInitialMargin"),
            "totalCrossWalletBalance": total("crossWalletBalance"),
            "totalCrossUnPnl": total("crossUnPnl"), "availableBalance": total("availableBalance"),
            "maxWithdrawAmount": total("maxWithdrawAmount"), "assets": assets, "positions": positions,
        })

    def fapi_balance(self, req: HttpRequest) -> HttpReply:
        with self.engine.lock:
            rows = [{"accountAlias": "emu", "asset": a["asset"], "balance": a["walletBalance"],
                     "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                     "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                     "marginAvailable": True, "updateTime": a["updateTime"]} for a in self._fapi_assets()]
        return HttpReply(200, rows)

    def _position_rows(self, venue_id: str | None) -> list[dict[str, Any]]:
        e = self.engine
        rows = []
        for m in self._markets("perp"):
            if venue_id and m.venue_id != venue_id:
                continue
            pos = e.positions.get(m.symbol)
            has_orders = bool(e.open_orders(m.symbol, "perp"))
            if (pos is None or pos.size == 0) and not has_orders:
                continue
            size = pos.size if pos else ZERO
            entry = pos.entry_price if pos else ZERO
            mark = e.mids.get(m.symbol, entry)
            notional = size * mark
            lev = e.leverage_of(m.symbol)
            mmr = D(self._bracket(abs(notional))[1])
            upnl = (mark - entry) * size
            liq = ZERO
            if size > 0:
                liq = entry * (1 - D(1) / lev + mmr)
            elif size < 0:
                liq = entry * (1 + D(1) / lev - mmr)
            ord_im = sum((o.remaining * (o.price or ZERO) / lev for o in e.open_orders(m.symbol, "perp")
                          if not o.reduce_only), ZERO)
            pos_im = abs(size) * entry / lev
            px = self._px(m)
            rows.append({
                "symbol": m.venue_id, "positionSide": "BOTH", "positionAmt": self._qty(m)(size),
                "entryPrice": fmt(entry, 8), "breakEvenPrice": fmt(entry, 8), "markPrice": fmt(mark, 8),
                "unRealizedProfit": fmt(upnl, 8), "liquidationPrice": px(max(liq, ZERO)),
                "isolatedMargin": "0", "notional": fmt(notional, 8), "marginAsset": m.settle,
                "isolatedWallet": "0", "initialMargin": fmt(pos_im + ord_im, 8),
                "maintMargin": fmt(abs(notional) * mmr, 8), "positionInitialMargin": fmt(pos_im, 8),
                "openOrderInitialMargin": fmt(ord_im, 8), "adl": 0, "bidNotional": "0",
                "askNotional": "0", "leverage": str(lev),
                "updateTime": pos.updated_ms if pos else 0,
            })
        return rows

    def position_risk(self, req: HttpRequest) -> HttpReply:
        with self.engine.lock:
            rows = self._position_rows(req.params.get("symbol") or None)
        if req.path.startswith("/fapi/v3/"):
            for r in rows:
                r.pop("leverage")
        return HttpReply(200, rows)

    def leverage_bracket(self, req: HttpRequest) -> HttpReply:
        out = []
        for m in self._markets("perp"):
            brackets = []
            for i, (floor, mmr, lev) in enumerate(BRACKETS):
                cap = BRACKETS[i + 1][0] if i + 1 < len(BRACKETS) else 10000000
                brackets.append({"bracket": i + 1, "initialLeverage": lev, "notionalCap": cap,
                                 "notionalFloor": floor, "maintMarginRatio": float(mmr), "cum": 0.0})
            out.append({"symbol": m.venue_id, "notionalCoef": 1.0, "brackets": brackets})
        return HttpReply(200, out)

    def set_leverage(self, req: HttpRequest) -> HttpReply:
        p = req.params
        m = self.market_for("perp", p.get("symbol"))
        lev = int(p.get("leverage") or 0)
        if not 1 <= lev <= m.max_leverage:
            raise BinanceError(400, -4028, f"Leverage {lev} is not valid")
        self.engine.set_leverage(m.symbol, lev)
        return HttpReply(200, {"leverage": lev, "maxNotionalValue": "1000000", "symbol": m.venue_id})

    def transfer(self, req: HttpRequest) -> HttpReply:
        p = req.params
        kinds = {"MAIN_UMFUTURE": ("spot", "futures"), "UMFUTURE_MAIN": ("futures", "spot")}
        if p.get("type") not in kinds:
            raise BinanceError(400, -1102, "Mandatory parameter 'type' was not sent, was empty/null, or "
                                           "malformed.")
        src, dst = kinds[p["type"]]
        asset = p.get("asset") or ""
        amount = _dec(p, "amount")
        if amount is None or amount <= 0:
            raise BinanceError(400, -1102, "Mandatory parameter 'amount' was not sent, was empty/null, or "
                                           "malformed.")
        t = self.engine.move_funds(src, dst, asset, amount, self.now_ms())
        return HttpReply(200, {"tranId": t["tranId"]})

    # ----------------------------------------------------------------- wallet
    NETWORKS = {"ETH": "ETH"}  # Binance network id -> emulator chain

    def _network(self, p: dict[str, str], asset: str) -> str:
        network = (p.get("network") or "ETH").upper()
        if network not in self.NETWORKS:
            raise BinanceError(400, -4019, "Current asset is not open for withdrawal.")
        return self.NETWORKS[network]

    def _coin(self, p: dict[str, str]) -> str:
        coin = (p.get("coin") or "").upper()
        if not coin:
            raise BinanceError(400, -1102, "Mandatory parameter 'coin' was not sent, was empty/null, or "
                                           "malformed.")
        if coin not in ("USDT", "ETH"):
            raise BinanceError(400, -4018, "We don't have this asset.")
        return coin

    def deposit_address(self, req: HttpRequest) -> HttpReply:
        p = req.params
        coin = self._coin(p)
        network = self._network(p, coin)
        address = self.engine.deposit_address(coin, network)
        return HttpReply(200, {"address": address, "coin": coin, "tag": "",
                               "url": f"https://etherscan.io/address/{address}"})

    def withdraw(self, req: HttpRequest) -> HttpReply:
        p = req.params
        coin = self._coin(p)
        network = self._network(p, coin)
        amount = _dec(p, "amount")
        if amount is None or amount <= 0:
            raise BinanceError(400, -1102, "Mandatory parameter 'amount' was not sent, was empty/null, or "
                                           "malformed.")
        if not p.get("address"):
            raise BinanceError(400, -1102, "Mandatory parameter 'address' was not sent, was empty/null, or "
                                           "malformed.")
        w = self.engine.request_withdrawal(asset=coin, amount=amount, address=p["address"], network=network,
                                           client_id=p.get("withdrawOrderId", ""),
                                           tag=p.get("addressTag", ""), now_ms=self.now_ms())
        return HttpReply(200, {"id": w.withdrawal_id})

    @staticmethod
    def _withdraw_status(status: str) -> int:
        # 0 email sent, 1 cancelled, 2 awaiting approval, 3 rejected, 4 processing, 5 failure, 6 completed
        return {"pending": 4, "processing": 4, "ok": 6, "failed": 5, "canceled": 1}[status]

    @staticmethod
    def _utc(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")

    def _time_filter(self, p: dict[str, str], rows: list[Any], ts: Any) -> list[Any]:
        if p.get("startTime"):
            rows = [r for r in rows if ts(r) >= int(p["startTime"])]
        if p.get("endTime"):
            rows = [r for r in rows if ts(r) <= int(p["endTime"])]
        return rows

    def withdraw_history(self, req: HttpRequest) -> HttpReply:
        p = req.params
        e = self.engine
        if e.auto_process_withdrawals:
            e.process_withdrawals()
        rows = e.withdrawals()
        if p.get("coin"):
            rows = [w for w in rows if w.asset == p["coin"].upper()]
        if p.get("withdrawOrderId"):
            rows = [w for w in rows if w.client_id == p["withdrawOrderId"]]
        if p.get("idList"):
            ids = set(p["idList"].split(","))
            rows = [w for w in rows if w.withdrawal_id in ids]
        if p.get("status"):
            rows = [w for w in rows if str(self._withdraw_status(w.status)) == p["status"]]
        rows = self._time_filter(p, rows, lambda w: w.created_ms)
        rows = sorted(rows, key=lambda w: w.seq, reverse=True)  # newest first
        offset, limit = int(p.get("offset") or 0), min(int(p.get("limit") or 1000), 1000)
        out = []
        for w in rows[offset:offset + limit]:
            row: dict[str, Any] = {
                "id": w.withdrawal_id, "amount": f8(w.amount), "transactionFee": f8(w.fee), "coin": w.asset,
                "status": self._withdraw_status(w.status), "address": w.address, "txId": w.txid,
                "applyTime": self._utc(w.created_ms), "network": "ETH", "transferType": 0,
                "info": "", "confirmNo": 1 if w.status == "ok" else 0, "walletType": 0, "txKey": "",
            }
            if w.client_id:
                row["withdrawOrderId"] = w.client_id
            if w.tag:
                row["addressTag"] = w.tag
            if w.status == "ok":
                row["completeTime"] = self._utc(w.updated_ms)
            out.append(row)
        return HttpReply(200, out)

    def deposit_history(self, req: HttpRequest) -> HttpReply:
        p = req.params
        e = self.engine
        e.scan_chain()
        rows = e.deposits()
        if p.get("coin"):
            rows = [d for d in rows if d.asset == p["coin"].upper()]
        if p.get("txId"):
            rows = [d for d in rows if d.txid == p["txId"]]
        status = {"pending": 0, "ok": 1, "failed": 7}
        if p.get("status"):
            rows = [d for d in rows if str(status[d.status]) == p["status"]]
        rows = self._time_filter(p, rows, lambda d: d.created_ms)
        rows = sorted(rows, key=lambda d: d.seq, reverse=True)
        offset, limit = int(p.get("offset") or 0), min(int(p.get("limit") or 1000), 1000)
        return HttpReply(200, [{
            "id": d.deposit_id, "amount": f8(d.amount), "coin": d.asset, "network": "ETH",
            "status": status[d.status], "address": d.address, "addressTag": "", "txId": d.txid,
            "insertTime": d.created_ms, "completeTime": d.updated_ms, "transferType": 0,
            "confirmTimes": "1/1" if d.status == "ok" else "0/1", "unlockConfirm": 0, "walletType": 0,
        } for d in rows[offset:offset + limit]])

    def income(self, req: HttpRequest) -> HttpReply:
        p = req.params
        income_type = p.get("incomeType")
        if income_type and income_type != "FUNDING_FEE":
            return HttpReply(200, [])  # only funding income is emulated
        symbol = self.market_for("perp", p["symbol"]).symbol if p.get("symbol") else None
        rows = self._time_filter(p, self.engine.funding_history(symbol), lambda i: i.ts)
        limit = min(int(p.get("limit") or 100), 1000)
        return HttpReply(200, [{
            "symbol": self.engine.markets[i.symbol].venue_id, "incomeType": "FUNDING_FEE",
            "income": fmt(i.amount, 8), "asset": i.asset, "info": "FUNDING_FEE", "time": i.ts,
            "tranId": i.income_id, "tradeId": "",
        } for i in sorted(rows, key=lambda i: i.seq)[:limit]])
