"""Bybit v5 REST emulation (api.bybit.com), unified trading account: spot and linear perpetuals."""

from __future__ import annotations

import re
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
from .signing import bybit_signature_ok
from .venue import HttpReply, HttpRequest, Route, VenueAPI, decimals_of

HOST = "api.bybit.com"
LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
BASE_INDEX = {"ETH": 1, "BTC": 2, "LTC": 3}
CATEGORY = {"spot": "spot", "perp": "linear"}
KIND = {"spot": "spot", "linear": "perp"}


def _order_id(m: MarketSpec, n: int) -> str:
    idx = BASE_INDEX.get(m.base, 9)
    if m.kind == "spot":  # Bybit spot order ids are numeric strings, contract ones UUIDs
        return str(1_900_000_000_000_000_000 + idx * 10**12 + n)
    return f"{idx:08x}-0000-4000-8000-{n:012x}"


def _trade_id(m: MarketSpec, n: int) -> str:
    idx = BASE_INDEX.get(m.base, 9)
    if m.kind == "spot":
        return str(2_100_000_000_000_000_000 + idx * 10**12 + n)
    return f"{idx:08x}-0001-4000-8000-{n:012x}"


def build_config() -> VenueConfig:
    def spot(base: str, step: str, min_amt: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT", venue_id=f"{base}USDT", kind="spot", base=base,
                          quote="USDT", tick=D("0.01"), step=D(step), min_qty=D(step),
                          max_qty=D("100000"), min_notional=D(min_amt))

    def perp(base: str, tick: str, step: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT:USDT", venue_id=f"{base}USDT", kind="perp", base=base,
                          quote="USDT", settle="USDT", tick=D(tick), step=D(step), min_qty=D(step),
                          max_qty=D("10000"), min_notional=D("5"), max_leverage=100)

    return VenueConfig(
        name="bybit",
        markets=[
            spot("ETH", "0.00001", "5"),
            spot("BTC", "0.000001", "5"),
            spot("LTC", "0.00001", "1"),
            perp("ETH", "0.01", "0.01"),
            perp("BTC", "0.10", "0.001"),
            perp("LTC", "0.01", "0.1"),
        ],
        fees={"spot": FeeSchedule(D("0.001"), D("0.001")),
              "perp": FeeSchedule(D("0.0002"), D("0.00055"))},
        wallets={"spot": "unified", "perp": "unified"},
        ids=IdScheme(order_id=_order_id, trade_id=_trade_id),
        client_id_unique="always",
        # Bybit accepts a crossing PostOnly order and cancels it at once
        post_only={"spot": "cancel", "perp": "cancel"},
    )


class BybitError(Exception):
    def __init__(self, code: int, msg: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _dec(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return D(value)
    except InvalidOperation:
        raise BybitError(10001, f"params error: {name} invalid") from None


class BybitAPI(VenueAPI):
    name = "bybit"
    hosts = (HOST,)

    def register(self) -> None:
        a = self.add
        a("GET", HOST, "/v5/market/time", "fetch_time", self.time)
        a("GET", HOST, "/v5/market/instruments-info", "load_markets", self.instruments)
        a("GET", HOST, "/v5/market/tickers", "fetch_ticker", self.tickers)
        a("GET", HOST, "/v5/market/orderbook", "fetch_order_book", self.orderbook)
        a("GET", HOST, "/v5/user/query-api", "query_api", self.query_api, signed=True)
        a("GET", HOST, "/v5/account/info", "account_info", self.account_info, signed=True)
        a("GET", HOST, "/v5/account/wallet-balance", "fetch_balance", self.wallet_balance, signed=True)
        a("POST", HOST, "/v5/order/create", "create_order", self.create, signed=True)
        a("POST", HOST, "/v5/order/cancel", "cancel_order", self.cancel, signed=True)
        a("POST", HOST, "/v5/order/cancel-all", "cancel_all_orders", self.cancel_all, signed=True)
        a("GET", HOST, "/v5/order/realtime", "fetch_order", self.realtime, signed=True)
        a("GET", HOST, "/v5/order/history", "fetch_closed_orders", self.history, signed=True)
        a("GET", HOST, "/v5/execution/list", "fetch_my_trades", self.executions, signed=True)
        a("GET", HOST, "/v5/position/list", "fetch_positions", self.positions, signed=True)
        a("POST", HOST, "/v5/position/set-leverage", "set_leverage", self.set_leverage, signed=True)

    # ----------------------------------------------------------------- plumbing
    def ok(self, result: Any) -> HttpReply:
        return HttpReply(200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                               "time": self.now_ms()})

    def error(self, code: int, msg: str, status: int = 200) -> HttpReply:
        return HttpReply(status, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {},
                                  "time": self.now_ms()})

    def dispatch(self, route: Route, req: HttpRequest) -> HttpReply:
        try:
            return super().dispatch(route, req)
        except BybitError as exc:
            return self.error(exc.code, exc.msg, exc.status)

    def authenticate(self, req: HttpRequest) -> HttpReply | None:
        creds = self.emu.credentials["bybit"]
        key = req.headers.get("x-bapi-api-key", "")
        timestamp = req.headers.get("x-bapi-timestamp", "")
        sign = req.headers.get("x-bapi-sign", "")
        recv_window = req.headers.get("x-bapi-recv-window", "5000")
        if not key or not timestamp or not sign:
            return self.error(10003, "API key is invalid.")
        if key != creds.api_key:
            return self.error(10003, "API key is invalid.")
        now = self.now_ms()
        if not timestamp.isdigit() or not recv_window.isdigit():
            return self.error(10001, "params error: timestamp or recv_window invalid")
        ts = int(timestamp)
        if not (now - int(recv_window) <= ts < now + 1000):
            return self.error(10002, "invalid request, please check your server timestamp or recv_window "
                                     f"param. req_timestamp[{ts}],server_timestamp[{now}],"
                                     f"recv_window[{recv_window}]")
        payload = req.body if req.method == "POST" else req.raw_query
        if not bybit_signature_ok(creds.secret, timestamp, key, recv_window, payload, sign):
            return self.error(10004, f"error sign! origin_string[{timestamp}{key}{recv_window}{payload}]")
        return None

    def engine_error(self, exc: EngineError, route: Route, req: HttpRequest) -> HttpReply:
        body = req.json if req.method == "POST" and isinstance(req.json, dict) else req.query
        spot = body.get("category") == "spot"
        r = exc.reason
        table: dict[str, tuple[int, str]] = {
            "insufficient_balance": (170131, "Insufficient balance.") if spot
            else (110007, "ab not enough for new order"),
            "lot_size": (170137, "Order quantity has too many decimals.") if spot
            else (10001, "Qty invalid"),
            "tick_size": (170134, "Order price has too many decimals.") if spot
            else (10001, "Price invalid"),
            "min_qty": (170136, "Order quantity lower than the minimum.") if spot
            else (10001, "The number of contracts below min limit allowed"),
            "max_qty": (170124, "Order amount too large.") if spot
            else (10001, "The number of contracts exceeds maximum limit allowed"),
            "min_notional": (170140, "Order value exceeded lower limit.") if spot
            else (110094, "Order does not meet minimum order value"),
            "duplicate_client_id": (170141, "Duplicate clientOrderId.") if spot
            else (110072, "OrderLinkedID is duplicate"),
            "reduce_only_rejected": (110017, "Reduce-only rule not satisfied"),
            "order_not_found": (170213, "Order does not exist.") if spot
            else (110001, "Order does not exist"),
            "order_not_open": (170213, "Order does not exist.") if spot
            else (110001, "Order does not exist"),
            "unknown_symbol": (10001, "Not supported symbols"),
            "bad_order_type": (10001, "params error: orderType invalid"),
        }
        code, msg = table.get(r, (10001, f"params error: {exc.message}"))
        return self.error(code, msg)

    def injected_error(self, error: str, route: Route, req: HttpRequest) -> HttpReply:
        if error == "insufficient_balance":
            return self.engine_error(EngineError("insufficient_balance"), route, req)
        if error == "rate_limit":
            return self.error(10006, "Too many visits. Exceeded the API Rate Limit.")
        if error == "invalid_timestamp":
            now = self.now_ms()
            return self.error(10002, "invalid request, please check your server timestamp or recv_window "
                                     f"param. req_timestamp[{now - 60000}],server_timestamp[{now}],"
                                     "recv_window[5000]")
        if error == "maintenance":
            return HttpReply(503, "<html><head><title>503 Service Temporarily Unavailable</title></head>"
                                  "<body><center><h1>503 Service Temporarily Unavailable</h1></center>"
                                  "</body></html>")
        if error == "server_error":
            return HttpReply(500, "<html><body><h1>500 Internal Server Error</h1></body></html>")
        if error == "unknown_status":
            return self.error(10016, "Request timeout, please try again later")
        if error == "invalid_api_key":
            return self.error(10003, "API key is invalid.")
        raise ValueError(error)

    # ----------------------------------------------------------------- helpers
    def _category(self, value: str | None, allowed: tuple[str, ...] = ("spot", "linear")) -> str:
        if value not in allowed:
            raise BybitError(10001, f"params error: category only support {','.join(allowed)}")
        return value

    def _markets(self, kind: str) -> list[MarketSpec]:
        return [m for m in self.engine.markets.values() if m.kind == kind]

    @staticmethod
    def _px(m: MarketSpec, v: Decimal | None) -> str:
        return fmt(v if v is not None else ZERO, decimals_of(m.tick))

    @staticmethod
    def _qty(m: MarketSpec, v: Decimal | None) -> str:
        return fmt(v if v is not None else ZERO, decimals_of(m.step))

    def order_status(self, o: Order) -> str:
        if o.status == "new":
            return "New"
        if o.status == "partially_filled":
            return "PartiallyFilled"
        if o.status == "filled":
            return "Filled"
        if o.status == "rejected":
            return "Rejected"
        if o.kind == "spot" and o.filled > 0:
            return "PartiallyFilledCanceled"
        return "Cancelled"

    def order_json(self, o: Order) -> dict[str, Any]:
        m = self.engine.markets[o.symbol]
        quote_unit = o.extra.get("market_unit") == "quoteCoin"
        qty = o.quote_qty if quote_unit else o.qty
        leaves = ZERO if not o.is_open else o.remaining
        cancel_type = "UNKNOWN"
        if o.status in ("canceled", "expired"):
            cancel_type = "CancelByUser" if o.status == "canceled" else "UNKNOWN"
            if o.extra.get("cancel_reason") == "post_only":
                cancel_type = "CancelByPostOnly"
        d: dict[str, Any] = {
            "orderId": o.order_id, "orderLinkId": o.client_id, "blockTradeId": "", "symbol": m.venue_id,
            "price": self._px(m, o.price) if o.price is not None else "0",
            "qty": fmt(qty) if quote_unit else self._qty(m, qty),
            "side": o.side.capitalize(), "isLeverage": "0" if o.kind == "spot" else "",
            "positionIdx": 0, "orderStatus": self.order_status(o), "cancelType": cancel_type,
            "rejectReason": "EC_NoError",
            "avgPrice": fmt(o.avg_price) if o.filled else ("" if o.kind == "spot" else "0"),
            "leavesQty": self._qty(m, leaves),
            "leavesValue": fmt(leaves * (o.price or ZERO)), "cumExecQty": self._qty(m, o.filled),
            "cumExecValue": fmt(o.cum_quote), "cumExecFee": fmt(o.fee),
            "cumFeeDetail": {o.fee_asset: fmt(o.fee)} if o.fee_asset else {},
            "timeInForce": o.extra.get("tif", "GTC"), "orderType": o.type.capitalize(),
            "stopOrderType": "", "orderIv": "", "triggerPrice": "0.00", "takeProfit": "0.00",
            "stopLoss": "0.00", "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0,
            "triggerBy": "", "lastPriceOnCreated": self._px(m, self.engine.mids.get(m.symbol)),
            "reduceOnly": o.reduce_only, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0,
            "smpOrderId": "", "placeType": "", "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }
        if o.kind == "spot":
            d["marketUnit"] = o.extra.get("market_unit", "") if o.type == "market" else ""
        else:
            d["tpslMode"] = "UNKNOWN"
            d["tpLimitPrice"] = d["slLimitPrice"] = "0"
        return d

    def exec_json(self, t: Trade) -> dict[str, Any]:
        m = self.engine.markets[t.symbol]
        o = self.engine.find_order(t.symbol, order_id=t.order_id, kind=t.kind)
        rate = self.engine.config.fees[m.kind].maker if t.maker else self.engine.config.fees[m.kind].taker
        return {
            "symbol": m.venue_id, "orderType": o.type.capitalize(), "underlyingPrice": "",
            "orderLinkId": t.client_id, "side": t.side.capitalize(), "indexPrice": "",
            "orderId": t.order_id, "stopOrderType": "UNKNOWN", "leavesQty": self._qty(m, o.remaining),
            "execTime": str(t.ts), "feeCurrency": t.fee_asset, "isMaker": t.maker,
            "execFee": fmt(t.fee), "feeRate": fmt(rate), "execId": t.trade_id, "tradeIv": "",
            "blockTradeId": "", "markPrice": self._px(m, t.price), "execPrice": self._px(m, t.price),
            "markIv": "", "orderQty": self._qty(m, o.qty), "orderPrice": self._px(m, o.price),
            "execValue": fmt(t.quote_qty), "execType": "Trade", "execQty": self._qty(m, t.qty),
            "closedSize": self._qty(m, ZERO), "seq": t.seq,
        }

    # ----------------------------------------------------------------- public
    def time(self, req: HttpRequest) -> HttpReply:
        now = self.now_ms()
        return self.ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    def instruments(self, req: HttpRequest) -> HttpReply:
        q = req.query
        category = self._category(q.get("category"), ("spot", "linear", "inverse", "option"))
        items: list[dict[str, Any]] = []
        if category in KIND and not q.get("cursor") and q.get("status") != "PreLaunch":
            for m in self._markets(KIND[category]):
                if q.get("symbol") and q["symbol"] != m.venue_id:
                    continue
                items.append(self._instrument(m))
        return self.ok({"category": category, "list": items, "nextPageCursor": ""})

    def _instrument(self, m: MarketSpec) -> dict[str, Any]:
        if m.kind == "spot":
            return {
                "symbol": m.venue_id, "baseCoin": m.base, "quoteCoin": m.quote, "innovation": "0",
                "status": "Trading", "marginTrading": "none", "stTag": "0",
                "lotSizeFilter": {"basePrecision": fmt(m.step), "quotePrecision": "0.00000001",
                                  "minOrderQty": fmt(m.min_qty), "maxOrderQty": fmt(m.max_qty),
                                  "minOrderAmt": fmt(m.min_notional), "maxOrderAmt": "2000000"},
                "priceFilter": {"tickSize": fmt(m.tick)},
                "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
            }
        return {
            "symbol": m.venue_id, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": m.base, "quoteCoin": m.quote, "launchTime": "1585526400000", "deliveryTime": "0",
            "deliveryFeeRate": "", "priceScale": str(decimals_of(m.tick)),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": f"{m.max_leverage}.00",
                               "leverageStep": "0.01"},
            "priceFilter": {"minPrice": fmt(m.tick), "maxPrice": "1999999.80", "tickSize": fmt(m.tick)},
            "lotSizeFilter": {"maxOrderQty": fmt(m.max_qty), "minOrderQty": fmt(m.min_qty),
                              "qtyStep": fmt(m.step), "postOnlyMaxOrderQty": fmt(m.max_qty),
                              "maxMktOrderQty": fmt(m.max_qty), "minNotionalValue": fmt(m.min_notional)},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": m.settle,
            "copyTrading": "both", "upperFundingRate": "0.005", "lowerFundingRate": "-0.005",
            "isPreListing": False, "preListingInfo": None,
        }

    def tickers(self, req: HttpRequest) -> HttpReply:
        category = self._category(req.query.get("category"))
        now = self.now_ms()
        out = []
        for m in self._markets(KIND[category]):
            if req.query.get("symbol") and req.query["symbol"] != m.venue_id:
                continue
            mid = self.engine.mids.get(m.symbol, ZERO)
            row = {"symbol": m.venue_id, "lastPrice": self._px(m, mid),
                   "bid1Price": self._px(m, mid - m.tick),
                   "bid1Size": "1", "ask1Price": self._px(m, mid + m.tick), "ask1Size": "1",
                   "prevPrice24h": self._px(m, mid), "price24hPcnt": "0", "highPrice24h": self._px(m, mid),
                   "lowPrice24h": self._px(m, mid), "turnover24h": "0", "volume24h": "0"}
            if m.contract:
                row.update({"indexPrice": self._px(m, mid), "markPrice": self._px(m, mid),
                            "fundingRate": "0.0001", "nextFundingTime": str((now // 28800000 + 1) * 28800000),
                            "openInterest": "0", "openInterestValue": "0"})
            out.append(row)
        return self.ok({"category": category, "list": out})

    def orderbook(self, req: HttpRequest) -> HttpReply:
        category = self._category(req.query.get("category"))
        m = self.market_for(KIND[category], req.query.get("symbol"))
        mid = self.engine.mid(m.symbol)
        now = self.now_ms()
        return self.ok({"s": m.venue_id, "b": [[self._px(m, mid - m.tick), "1000"]],
                        "a": [[self._px(m, mid + m.tick), "1000"]], "ts": now, "u": 1, "seq": 1, "cts": now})

    # ----------------------------------------------------------------- account
    def query_api(self, req: HttpRequest) -> HttpReply:
        return self.ok({
            "id": "1", "note": "exchange emulator", "apiKey": self.emu.credentials["bybit"].api_key,
            "readOnly": 0, "secret": "",
            "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                            "Wallet": ["AccountTransfer", "SubMemberTransfer"], "Options": [],
                            "Derivatives": [], "CopyTrading": [], "BlockTrade": [], "Exchange": [],
                            "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "", "unified": 0,
            "uta": 1, "userID": 1000001, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
            "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
        })

    def account_info(self, req: HttpRequest) -> HttpReply:
        return self.ok({"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                        "spotHedgingStatus": "OFF", "updatedTime": str(self.now_ms()), "dcpStatus": "OFF",
                        "timeWindow": 10, "smpGroup": 0})

    def wallet_balance(self, req: HttpRequest) -> HttpReply:
        if req.query.get("accountType") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        wanted = {c for c in req.query.get("coin", "").split(",") if c}
        e = self.engine
        coins = []
        totals = {"equity": ZERO, "wallet": ZERO, "avail": ZERO, "im": ZERO, "upl": ZERO}
        for (wallet, asset), total in sorted(e.balances.items()):
            if wallet != "unified" or (wanted and asset not in wanted):
                continue
            upnl = e.unrealized_pnl(wallet, asset)
            locked = e._locked(wallet, asset)
            pos_im = e.position_im(wallet, asset)
            ord_im = e.order_im(wallet, asset)
            coins.append({
                "coin": asset, "equity": fmt(total + upnl), "usdValue": fmt(total + upnl),
                "walletBalance": fmt(total), "free": "", "locked": fmt(locked), "spotHedgingQty": "0",
                "borrowAmount": "0", "availableToWithdraw": "", "accruedInterest": "0",
                "totalOrderIM": fmt(ord_im), "totalPositionIM": fmt(pos_im), "totalPositionMM": "0",
                "unrealisedPnl": fmt(upnl), "cumRealisedPnl": "0", "bonus": "0",
                "marginCollateral": True, "collateralSwitch": True, "availableToBorrow": "",
            })
            if asset == "USDT":
                totals["equity"] += total + upnl
                totals["wallet"] += total
                totals["avail"] += e.available(wallet, asset)
                totals["im"] += pos_im + ord_im
                totals["upl"] += upnl
        account = {
            "accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "accountLTV": "0",
            "totalEquity": fmt(totals["equity"]), "totalWalletBalance": fmt(totals["wallet"]),
            "totalMarginBalance": fmt(totals["equity"]), "totalAvailableBalance": fmt(totals["avail"]),
            "totalPerpUPL": fmt(totals["upl"]), "totalInitialMargin": fmt(totals["im"]),
            "totalMaintenanceMargin": "0", "coin": coins,
        }
        return self.ok({"list": [account]})

    # ----------------------------------------------------------------- orders
    def create(self, req: HttpRequest) -> HttpReply:
        b = req.json
        if not isinstance(b, dict):
            raise BybitError(10001, "params error: request body is not a JSON object")
        category = self._category(b.get("category"))
        m = self.market_for(KIND[category], b.get("symbol"))
        side = b.get("side")
        if side not in ("Buy", "Sell"):
            raise BybitError(10001, "params error: side invalid")
        order_type = b.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise BybitError(10001, "params error: orderType invalid")
        qty = _dec(b.get("qty"), "qty")
        if qty is None:
            raise BybitError(10001, "params error: qty invalid")
        price = _dec(b.get("price"), "price")
        if order_type == "Limit" and price is None:
            raise BybitError(10001, "params error: price invalid")
        link_id = b.get("orderLinkId") or ""
        if link_id and not LINK_ID_RE.match(str(link_id)):
            raise BybitError(10001, "params error: orderLinkId invalid")
        if int(b.get("positionIdx") or 0) != 0:
            raise BybitError(10001, "position idx not match position mode")
        tif = b.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")
        engine_tif = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "PostOnly": "PO"}.get(tif)
        if engine_tif is None:
            raise BybitError(10001, "params error: timeInForce invalid")
        reduce_only = b.get("reduceOnly") in (True, "true")
        extra: dict[str, Any] = {"tif": tif}
        quote_qty = None
        if m.kind == "spot" and order_type == "Market":
            unit = b.get("marketUnit") or ("quoteCoin" if side == "Buy" else "baseCoin")
            if unit not in ("baseCoin", "quoteCoin"):
                raise BybitError(10001, "params error: marketUnit invalid")
            extra["market_unit"] = unit
            if unit == "quoteCoin":
                quote_qty, qty = qty, None
        if m.kind == "spot" and reduce_only:
            raise BybitError(10001, "params error: reduceOnly is not supported for spot")
        order = self.engine.submit(
            symbol=m.symbol, side=side, type=order_type, qty=qty, price=price, quote_qty=quote_qty,
            client_id=str(link_id), time_in_force=engine_tif, reduce_only=reduce_only,
            now_ms=self.now_ms(), extra=extra,
        )
        return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def _find(self, m: MarketSpec, body: dict[str, Any]) -> Order:
        order_id, link_id = body.get("orderId") or None, body.get("orderLinkId") or None
        if not order_id and not link_id:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        return self.find(m, order_id, link_id)

    def cancel(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        category = self._category(b.get("category"))
        m = self.market_for(KIND[category], b.get("symbol"))
        order = self._find(m, b)
        self.engine.cancel(order, self.now_ms())
        return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def _select(self, kind: str, params: dict[str, Any]) -> list[Order]:
        symbol = None
        if params.get("symbol"):
            symbol = self.market_for(kind, params["symbol"]).symbol
        elif kind == "perp" and not (params.get("settleCoin") or params.get("baseCoin")):
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        with self.engine.lock:
            orders = [o for o in self.engine.orders.values() if o.kind == kind
                      and (symbol is None or o.symbol == symbol)
                      and (not params.get("baseCoin")
                           or self.engine.markets[o.symbol].base == params["baseCoin"])
                      and (not params.get("settleCoin")
                           or self.engine.markets[o.symbol].settle == params["settleCoin"])]
        return sorted(orders, key=lambda o: o.seq, reverse=True)  # Bybit lists newest first

    def cancel_all(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        category = self._category(b.get("category"))
        kind = KIND[category]
        now = self.now_ms()
        cancelled = []
        for o in self._select(kind, b):
            if o.is_open:
                self.engine.cancel(o, now)
                cancelled.append({"orderId": o.order_id, "orderLinkId": o.client_id})
        return self.ok({"list": cancelled, "success": "1"})

    def _listing(self, req: HttpRequest, history: bool) -> HttpReply:
        q = req.query
        category = self._category(q.get("category"))
        kind = KIND[category]
        orders = self._select(kind, q)
        order_id = q.get("orderId") or None
        link_id = q.get("orderLinkId") or None
        if order_id:
            orders = [o for o in orders if o.order_id == order_id]
        if link_id:
            orders = [o for o in orders if o.client_id == link_id]
        if not order_id and not link_id:
            # realtime without an id lists open orders only; history lists finished ones
            orders = [o for o in orders if o.is_open != history]
        limit = min(int(q.get("limit") or 20), 50)
        return self.ok({"list": [self.order_json(o) for o in orders[:limit]], "nextPageCursor": "",
                        "category": category})

    def realtime(self, req: HttpRequest) -> HttpReply:
        return self._listing(req, history=False)

    def history(self, req: HttpRequest) -> HttpReply:
        return self._listing(req, history=True)

    def executions(self, req: HttpRequest) -> HttpReply:
        q = req.query
        category = self._category(q.get("category"))
        kind = KIND[category]
        symbol = self.market_for(kind, q["symbol"]).symbol if q.get("symbol") else None
        trades = self.engine.trades_for(symbol, kind, q.get("orderId") or None)
        if q.get("orderLinkId"):
            trades = [t for t in trades if t.client_id == q["orderLinkId"]]
        if q.get("startTime"):
            trades = [t for t in trades if t.ts >= int(q["startTime"])]
        if q.get("endTime"):
            trades = [t for t in trades if t.ts <= int(q["endTime"])]
        limit = min(int(q.get("limit") or 50), 100)
        trades = sorted(trades, key=lambda t: t.seq, reverse=True)[:limit]
        return self.ok({"list": [self.exec_json(t) for t in trades], "nextPageCursor": "",
                        "category": category})

    # ----------------------------------------------------------------- positions
    def positions(self, req: HttpRequest) -> HttpReply:
        q = req.query
        category = self._category(q.get("category"), ("linear",))
        e = self.engine
        rows = []
        if q.get("symbol"):
            markets = [self.market_for("perp", q["symbol"])]
        elif q.get("settleCoin") or q.get("baseCoin"):
            markets = [m for m in self._markets("perp")
                       if (not q.get("settleCoin") or m.settle == q["settleCoin"])
                       and (not q.get("baseCoin") or m.base == q["baseCoin"])]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        for m in markets:
            pos = e.positions.get(m.symbol)
            if (pos is None or pos.size == 0) and not q.get("symbol"):
                continue
            size = pos.size if pos else ZERO
            entry = pos.entry_price if pos else ZERO
            mark = e.mids.get(m.symbol, entry)
            lev = e.leverage_of(m.symbol)
            im = abs(size) * entry / lev
            liq = ZERO
            if size > 0:
                liq = entry * (1 - D(1) / lev + D("0.005"))
            elif size < 0:
                liq = entry * (1 + D(1) / lev - D("0.005"))
            rows.append({
                "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": m.venue_id,
                "side": "Buy" if size > 0 else ("Sell" if size < 0 else ""),
                "size": self._qty(m, abs(size)), "avgPrice": fmt(entry),
                "positionValue": fmt(abs(size) * entry), "tradeMode": 0, "positionStatus": "Normal",
                "autoAddMargin": 0, "adlRankIndicator": 2 if size else 0, "leverage": str(lev),
                "positionBalance": fmt(im), "markPrice": self._px(m, mark),
                "liqPrice": self._px(m, liq) if size else "", "bustPrice": "",
                "positionMM": fmt(abs(size) * mark * D("0.005")), "positionIM": fmt(im),
                "tpslMode": "Full", "takeProfit": "0.00", "stopLoss": "0.00", "trailingStop": "0.00",
                "unrealisedPnl": fmt((mark - entry) * size),
                "curRealisedPnl": fmt(pos.realized_pnl if pos else ZERO),
                "cumRealisedPnl": fmt(pos.realized_pnl if pos else ZERO), "seq": 1, "isReduceOnly": False,
                "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "", "sessionAvgPrice": "",
                "createdTime": str(pos.created_ms if pos else 0),
                "updatedTime": str(pos.updated_ms if pos else 0),
            })
        return self.ok({"list": rows, "nextPageCursor": "", "category": category})

    def set_leverage(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        self._category(b.get("category"), ("linear",))
        m = self.market_for("perp", b.get("symbol"))
        buy, sell = _dec(b.get("buyLeverage"), "buyLeverage"), _dec(b.get("sellLeverage"), "sellLeverage")
        if buy is None or buy != sell:
            raise BybitError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
        if not 1 <= buy <= m.max_leverage:
            raise BybitError(10001, "params error: leverage invalid")
        if int(buy) == self.engine.leverage_of(m.symbol):
            raise BybitError(110043, "leverage not modified")
        self.engine.set_leverage(m.symbol, int(buy))
        return self.ok({})
