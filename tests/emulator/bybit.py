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
        deposit_wallet="funding",
        withdrawal_wallets=("funding", "unified"),  # accountType UTA: FUND first, then UNIFIED
        extra_wallets=("funding",),
        wallet_ids={
            "withdrawal": lambda n: str(10_194 + n),
            "deposit": lambda n: f"{n:08x}-0002-4000-8000-{n:012x}",
            "income": lambda n: f"{n:08x}-0003-4000-8000-{n:012x}",
        },
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
        a("GET", HOST, "/v5/execution/list", "fetch_my_trades", self.executions, signed=True,
          classify=lambda r: "fetch_funding_history" if r.query.get("execType") == "Funding" else None)
        a("GET", HOST, "/v5/position/list", "fetch_positions", self.positions, signed=True)
        a("POST", HOST, "/v5/position/set-leverage", "set_leverage", self.set_leverage, signed=True)
        a("GET", HOST, "/v5/asset/deposit/query-address", "fetch_deposit_address", self.deposit_address,
          signed=True)
        a("POST", HOST, "/v5/asset/withdraw/create", "withdraw", self.withdraw, signed=True)
        a("GET", HOST, "/v5/asset/withdraw/query-record", "fetch_withdrawals", self.withdraw_records,
          signed=True)
        a("GET", HOST, "/v5/asset/deposit/query-record", "fetch_deposits", self.deposit_records, signed=True)
        a("POST", HOST, "/v5/asset/transfer/inter-transfer", "transfer", self.inter_transfer, signed=True)
        a("GET", HOST, "/v5/asset/transfer/query-account-coins-balance", "fetch_balance",
          self.fund_balance, signed=True)

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
        if route.name == "withdraw":
            wd_table = {
                "insufficient_balance": (131001, "the available balance is not sufficient to cover the "
                                                 "handling fee"),
                "invalid_address": (131002, "Withdraw address chain or destination tag are not equal"),
                "duplicate_withdrawal": (131002, "Parameter error: requestId is duplicated"),
            }
            code, msg = wd_table.get(r, (131002, f"Parameter error: {exc.message}"))
            return self.error(code, msg)
        if route.name == "transfer":
            tr_table = {
                "insufficient_balance": (131212, "Insufficient balance"),
                "duplicate_transfer": (131214, "TransferId exist"),
                "same_wallet": (131211, "fromAccountType can't be the same as toAccountType"),
            }
            code, msg = tr_table.get(r, (131215, f"Amount error: {exc.message}"))
            return self.error(code, msg)
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
                            "fundingRate": fmt(self.engine.funding_rate(m.symbol)),
                            "nextFundingTime": str((now // 28800000 + 1) * 28800000),
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
        if q.get("execType") == "Funding":
            return self.funding_executions(req)
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

    # ----------------------------------------------------------------- wallet
    CHAINS = {"ETH": "ETH"}  # Bybit chain -> emulator chain
    ACCOUNT_TYPES = {"FUND": "funding", "UNIFIED": "unified"}

    def _coin(self, value: Any) -> str:
        coin = str(value or "").upper()
        if coin not in ("USDT", "ETH"):
            raise BybitError(131002, "Parameter error: coin not supported")
        return coin

    def deposit_address(self, req: HttpRequest) -> HttpReply:
        q = req.query
        coin = self._coin(q.get("coin"))
        chains = [c for c in self.CHAINS if not q.get("chainType") or q["chainType"] == c]
        return self.ok({"coin": coin, "chains": [{
            "chainType": c, "addressDeposit": self.engine.deposit_address(coin, self.CHAINS[c]),
            "tagDeposit": "", "chain": c, "batchReleaseLimit": "-1",
            "contractAddress": "" if coin == "ETH" else "0xdac17f958d2ee523a2206206994597c13d831ec7",
        } for c in chains]})

    def withdraw(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        coin = self._coin(b.get("coin"))
        chain = str(b.get("chain") or "").upper()
        if chain not in self.CHAINS:
            raise BybitError(131002, "Parameter error: chain invalid")
        amount = _dec(b.get("amount"), "amount")
        if amount is None or amount <= 0:
            raise BybitError(131002, "Parameter error: amount invalid")
        if not str(b.get("timestamp") or "").isdigit():
            raise BybitError(10001, "params error: timestamp invalid")
        account_type = b.get("accountType") or "SPOT"
        wallets = {"FUND": ("funding",), "UTA": ("funding", "unified"), "SPOT": ("unified",)}.get(
            account_type)
        if wallets is None:
            raise BybitError(131002, "Parameter error: accountType invalid")
        fee = self.engine.withdrawal_fee(coin)
        received = amount
        if str(b.get("feeType") or "0") == "1":  # the fee is deducted from the amount
            received = amount - fee
            if received <= 0:
                raise BybitError(131002, "Parameter error: amount must be greater than the fee")
        request_id = str(b.get("requestId") or "")
        w = self.engine.request_withdrawal(asset=coin, amount=received, address=str(b.get("address") or ""),
                                           network=self.CHAINS[chain], client_id=request_id,
                                           tag=str(b.get("tag") or ""), fee=fee, wallets=wallets,
                                           now_ms=self.now_ms())
        return self.ok({"id": w.withdrawal_id})

    @staticmethod
    def _wd_status(status: str) -> str:
        return {"pending": "Pending", "processing": "Pending", "ok": "success", "failed": "Fail",
                "canceled": "CancelByUser"}[status]

    @staticmethod
    def _range(q: dict[str, str], rows: list[Any], ts: Any) -> list[Any]:
        if q.get("startTime"):
            rows = [r for r in rows if ts(r) >= int(q["startTime"])]
        if q.get("endTime"):
            rows = [r for r in rows if ts(r) <= int(q["endTime"])]
        return rows

    def withdraw_records(self, req: HttpRequest) -> HttpReply:
        q = req.query
        e = self.engine
        if e.auto_process_withdrawals:
            e.process_withdrawals()
        rows = e.withdrawals()
        if q.get("coin"):
            rows = [w for w in rows if w.asset == q["coin"].upper()]
        if q.get("withdrawID"):
            rows = [w for w in rows if w.withdrawal_id == q["withdrawID"]]
        if q.get("txID"):
            rows = [w for w in rows if w.txid == q["txID"]]
        if q.get("requestId"):
            rows = [w for w in rows if w.client_id == q["requestId"]]
        rows = self._range(q, rows, lambda w: w.created_ms)
        limit = min(int(q.get("limit") or 50), 50)
        rows = sorted(rows, key=lambda w: w.seq, reverse=True)[:limit]
        return self.ok({"rows": [{
            "coin": w.asset, "chain": "ETH", "amount": fmt(w.amount), "txID": w.txid,
            "status": self._wd_status(w.status), "toAddress": w.address, "tag": w.tag,
            "withdrawFee": fmt(w.fee), "createTime": str(w.created_ms), "updateTime": str(w.updated_ms),
            "withdrawId": w.withdrawal_id, "withdrawType": 0, "requestId": w.client_id,
        } for w in rows], "nextPageCursor": ""})

    def deposit_records(self, req: HttpRequest) -> HttpReply:
        q = req.query
        e = self.engine
        e.scan_chain()
        rows = e.deposits()
        if q.get("coin"):
            rows = [d for d in rows if d.asset == q["coin"].upper()]
        if q.get("txID"):
            rows = [d for d in rows if d.txid == q["txID"]]
        rows = self._range(q, rows, lambda d: d.created_ms)
        limit = min(int(q.get("limit") or 50), 50)
        rows = sorted(rows, key=lambda d: d.seq, reverse=True)[:limit]
        status = {"pending": 1, "ok": 3, "failed": 4}
        return self.ok({"rows": [{
            "id": d.deposit_id, "coin": d.asset, "chain": "ETH", "amount": fmt(d.amount), "txID": d.txid,
            "status": status[d.status], "toAddress": d.address, "tag": "", "depositFee": "",
            "successAt": str(d.updated_ms), "confirmations": "1" if d.status == "ok" else "0",
            "txIndex": "0", "blockHash": "", "batchReleaseLimit": "-1", "depositType": "0",
            "fromAddress": "",
        } for d in rows], "nextPageCursor": ""})

    def inter_transfer(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        src = self.ACCOUNT_TYPES.get(str(b.get("fromAccountType")))
        dst = self.ACCOUNT_TYPES.get(str(b.get("toAccountType")))
        if src is None or dst is None:
            raise BybitError(131203, "Request parameter error: accountType")
        coin = str(b.get("coin") or "").upper()
        amount = _dec(b.get("amount"), "amount")
        if amount is None:
            raise BybitError(131215, "Amount error")
        transfer_id = str(b.get("transferId") or "")
        if not transfer_id:
            raise BybitError(131203, "Request parameter error: transferId")
        self.engine.move_funds(src, dst, coin, amount, self.now_ms(), transfer_id=transfer_id)
        return self.ok({"transferId": transfer_id, "status": "SUCCESS"})

    def fund_balance(self, req: HttpRequest) -> HttpReply:
        q = req.query
        if q.get("accountType") != "FUND":
            raise BybitError(10001, "accountType only support FUND.")
        wanted = {c for c in (q.get("coin") or "").split(",") if c}
        e = self.engine
        rows = []
        for (wallet, asset), total in sorted(e.balances.items()):
            if wallet != "funding" or (wanted and asset not in wanted):
                continue
            rows.append({"coin": asset, "walletBalance": fmt(total),
                         "transferBalance": fmt(e.available(wallet, asset)), "bonus": ""})
        return self.ok({"memberId": "1000001", "accountType": "FUND", "balance": rows})

    def funding_executions(self, req: HttpRequest) -> HttpReply:
        q = req.query
        category = self._category(q.get("category"))
        if category != "linear":
            return self.ok({"list": [], "nextPageCursor": "", "category": category})
        symbol = self.market_for("perp", q["symbol"]).symbol if q.get("symbol") else None
        rows = self._range(q, self.engine.funding_history(symbol), lambda i: i.ts)
        limit = min(int(q.get("limit") or q.get("size") or 50), 100)
        rows = sorted(rows, key=lambda i: i.seq, reverse=True)[:limit]
        out = []
        for i in rows:
            m = self.engine.markets[i.symbol]
            qty = abs(i.position) / m.contract_size
            out.append({
                "symbol": m.venue_id, "orderId": "", "orderLinkId": "",
                "side": "Buy" if i.position > 0 else "Sell", "orderPrice": "0", "orderQty": "0",
                "leavesQty": "0", "createType": "", "orderType": "UNKNOWN", "stopOrderType": "UNKNOWN",
                # Bybit reports funding as a fee: positive = paid by the account, negative = received
                "execFee": fmt(-i.amount), "execId": i.income_id, "execPrice": self._px(m, i.mark),
                "execQty": self._qty(m, qty), "execType": "Funding",
                "execValue": fmt(abs(i.position) * i.mark), "execTime": str(i.ts), "feeCurrency": i.asset,
                "isMaker": False, "feeRate": fmt(i.rate), "tradeIv": "", "markIv": "",
                "markPrice": self._px(m, i.mark), "indexPrice": "", "underlyingPrice": "",
                "blockTradeId": "", "closedSize": "0", "seq": i.seq,
            })
        return self.ok({"list": out, "nextPageCursor": "", "category": category})
