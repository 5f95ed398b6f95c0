"""OKX v5 REST emulation (www.okx.com), net position mode: spot and USDT-margined SWAP.

SWAP sizes are contracts (``ctVal`` base units each); OKX has no cancel-all endpoint.
"""

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
from .signing import okx_signature_ok, parse_okx_timestamp
from .venue import HttpReply, HttpRequest, Route, VenueAPI, decimals_of

HOST = "www.okx.com"
CL_ORD_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
BASE_INDEX = {"ETH": 1, "BTC": 2, "LTC": 3}
INST_TYPE = {"spot": "SPOT", "perp": "SWAP"}
KIND = {"SPOT": "spot", "SWAP": "perp"}
STATE = {"new": "live", "partially_filled": "partially_filled", "filled": "filled",
         "canceled": "canceled", "expired": "canceled", "rejected": "canceled"}
TIMESTAMP_TOLERANCE_MS = 30_000


def _order_id(m: MarketSpec, n: int) -> str:
    kind_idx = 1 if m.kind == "spot" else 2
    return str(600_000_000_000_000_000 + kind_idx * 10**16 + BASE_INDEX.get(m.base, 9) * 10**13 + n)


def build_config() -> VenueConfig:
    def spot(base: str, tick: str, lot: str, min_sz: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT", venue_id=f"{base}-USDT", kind="spot", base=base,
                          quote="USDT", tick=D(tick), step=D(lot), min_qty=D(min_sz),
                          max_qty=D("1000000"))

    def swap(base: str, tick: str, ct_val: str) -> MarketSpec:
        return MarketSpec(symbol=f"{base}/USDT:USDT", venue_id=f"{base}-USDT-SWAP", kind="perp",
                          base=base, quote="USDT", settle="USDT", tick=D(tick), step=D("0.01"),
                          min_qty=D("0.01"), max_qty=D("100000"), contract_size=D(ct_val),
                          max_leverage=100)

    return VenueConfig(
        name="okx",
        markets=[
            spot("ETH", "0.01", "0.000001", "0.001"),
            spot("BTC", "0.1", "0.00000001", "0.00001"),
            spot("LTC", "0.01", "0.000001", "0.001"),
            swap("ETH", "0.01", "0.1"),
            swap("BTC", "0.1", "0.01"),
            swap("LTC", "0.01", "1"),
        ],
        fees={"spot": FeeSchedule(D("0.0008"), D("0.001")),
              "perp": FeeSchedule(D("0.0002"), D("0.0005"))},
        wallets={"spot": "unified", "perp": "unified"},
        # OKX numbers trades per instrument
        ids=IdScheme(order_id=_order_id, trade_id=lambda m, n: str(n)),
        client_id_unique="open",
        post_only={"spot": "cancel", "perp": "cancel"},
        deposit_wallet="funding",
        withdrawal_wallets=("funding",),
        extra_wallets=("funding",),
        wallet_ids={
            "withdrawal": lambda n: str(58_000_000 + n),
            "deposit": lambda n: str(8_000_000 + n),
            "income": lambda n: str(600_000_000_000_000 + n),
        },
    )


class OkxError(Exception):
    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _dec(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return D(value)
    except InvalidOperation:
        raise OkxError("51000", f"Parameter {name} error") from None


ORDER_ERRORS: dict[str, tuple[str, str]] = {
    "lot_size": ("51121", "Order quantity must be a multiple of the lot size."),
    "tick_size": ("51000", "Parameter px error"),
    "min_qty": ("51020", "Order quantity must be greater than or equal to the minimum order quantity."),
    "min_notional": ("51020", "Order amount should be greater than the min available amount."),
    "max_qty": ("51202", "Market order amount exceeds the maximum amount."),
    "duplicate_client_id": ("51016", "Duplicated clOrdId"),
    "reduce_only_rejected": ("51169", "Order failed because you don't have any positions in this "
                                      "direction for this contract to reduce or close."),
    "unknown_symbol": ("51001", "Instrument ID does not exist"),
    "bad_order_type": ("51000", "Parameter ordType error"),
    "bad_price": ("51000", "Parameter px error"),
    "order_not_found": ("51400", "Order cancellation failed as the order has been filled, canceled or "
                                 "does not exist."),
    "order_not_open": ("51400", "Order cancellation failed as the order has been filled, canceled or "
                                "does not exist."),
}


class OkxAPI(VenueAPI):
    name = "okx"
    hosts = (HOST,)

    def register(self) -> None:
        a = self.add
        p = "/api/v5"
        a("GET", HOST, f"{p}/public/time", "fetch_time", self.time)
        a("GET", HOST, f"{p}/public/instruments", "load_markets", self.instruments)
        a("GET", HOST, f"{p}/public/funding-rate", "fetch_funding_rate", self.funding_rate)
        a("GET", HOST, f"{p}/market/ticker", "fetch_ticker", self.ticker)
        a("GET", HOST, f"{p}/market/books", "fetch_order_book", self.books)
        a("GET", HOST, f"{p}/account/balance", "fetch_balance", self.balance, signed=True)
        a("GET", HOST, f"{p}/account/config", "account_config", self.config, signed=True)
        a("GET", HOST, f"{p}/account/positions", "fetch_positions", self.positions, signed=True)
        a("POST", HOST, f"{p}/account/set-leverage", "set_leverage", self.set_leverage, signed=True)
        a("POST", HOST, f"{p}/trade/batch-orders", "create_order", self.batch_orders, signed=True)
        a("POST", HOST, f"{p}/trade/order", "create_order", self.single_order, signed=True)
        a("POST", HOST, f"{p}/trade/cancel-order", "cancel_order", self.cancel_one, signed=True)
        a("POST", HOST, f"{p}/trade/cancel-batch-orders", "cancel_orders", self.cancel_batch,
          signed=True)
        a("GET", HOST, f"{p}/trade/order", "fetch_order", self.get_order, signed=True)
        a("GET", HOST, f"{p}/trade/orders-pending", "fetch_open_orders", self.pending, signed=True)
        a("GET", HOST, f"{p}/trade/orders-history", "fetch_closed_orders", self.history, signed=True)
        a("GET", HOST, f"{p}/trade/orders-history-archive", "fetch_closed_orders", self.history,
          signed=True)
        a("GET", HOST, f"{p}/trade/fills", "fetch_my_trades", self.fills, signed=True)
        a("GET", HOST, f"{p}/trade/fills-history", "fetch_my_trades", self.fills, signed=True)
        a("GET", HOST, f"{p}/public/mark-price", "fetch_mark_price", self.mark_price)
        a("GET", HOST, f"{p}/asset/currencies", "fetch_currencies", self.currencies, signed=True)
        a("GET", HOST, f"{p}/asset/deposit-address", "fetch_deposit_address", self.deposit_address,
          signed=True)
        a("POST", HOST, f"{p}/asset/withdrawal", "withdraw", self.withdrawal, signed=True)
        a("GET", HOST, f"{p}/asset/withdrawal-history", "fetch_withdrawals", self.withdrawal_history,
          signed=True)
        a("GET", HOST, f"{p}/asset/deposit-history", "fetch_deposits", self.deposit_history, signed=True)
        a("POST", HOST, f"{p}/asset/transfer", "transfer", self.transfer, signed=True)
        a("GET", HOST, f"{p}/asset/balances", "fetch_balance", self.funding_balances, signed=True)
        a("GET", HOST, f"{p}/account/bills", "fetch_funding_history", self.bills, signed=True)
        a("GET", HOST, f"{p}/account/bills-archive", "fetch_funding_history", self.bills, signed=True)

    # ----------------------------------------------------------------- plumbing
    def ok(self, data: list[Any], **extra: Any) -> HttpReply:
        body: dict[str, Any] = {"code": "0", "msg": "", "data": data}
        body.update(extra)
        return HttpReply(200, body)

    def error(self, code: str, msg: str, status: int = 200) -> HttpReply:
        return HttpReply(status, {"code": code, "msg": msg, "data": []})

    def dispatch(self, route: Route, req: HttpRequest) -> HttpReply:
        try:
            return super().dispatch(route, req)
        except OkxError as exc:
            return self.error(exc.code, exc.msg, exc.status)

    def authenticate(self, req: HttpRequest) -> HttpReply | None:
        creds = self.emu.credentials["okx"]
        h = req.headers
        key = h.get("ok-access-key", "")
        sign = h.get("ok-access-sign", "")
        timestamp = h.get("ok-access-timestamp", "")
        passphrase = h.get("ok-access-passphrase", "")
        if not key:
            return self.error("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', 401)
        if not passphrase:
            return self.error("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.', 401)
        if not sign:
            return self.error("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', 401)
        if not timestamp:
            return self.error("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', 401)
        if key != creds.api_key:
            return self.error("50111", "Invalid OK-ACCESS-KEY.", 401)
        if passphrase != creds.passphrase:
            return self.error("50105", "Invalid OK-ACCESS-PASSPHRASE.", 401)
        ts = parse_okx_timestamp(timestamp)
        if ts is None:
            return self.error("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(self.now_ms() - ts) > TIMESTAMP_TOLERANCE_MS:
            return self.error("50102", "Timestamp request expired.", 401)
        request_path = req.path + (f"?{req.raw_query}" if req.raw_query else "")
        if not okx_signature_ok(creds.secret, timestamp, req.method, request_path, req.body, sign):
            return self.error("50113", "Invalid Sign", 401)
        return None

    def engine_error(self, exc: EngineError, route: Route, req: HttpRequest) -> HttpReply:
        if route.name in ("withdraw", "transfer"):
            table = {
                "insufficient_balance": ("58350", "Insufficient balance"),
                "invalid_address": ("58207", "Withdrawal failed due to address error"),
                "duplicate_withdrawal": ("58129", "Duplicate clientId"),
                "duplicate_transfer": ("58129", "Duplicate clientId"),
                "same_wallet": ("58123", "Parameter from cannot equal to parameter to"),
            }
            code, msg = table.get(exc.reason, ("51000", f"Parameter error: {exc.message}"))
            return self.error(code, msg)
        if exc.reason == "order_not_found" and route.name == "fetch_order":
            return self.error("51603", "Order does not exist")
        code, msg = self._order_error(exc)
        return self.error(code, msg)

    @staticmethod
    def _order_error(exc: EngineError) -> tuple[str, str]:
        if exc.reason == "insufficient_balance":
            asset = exc.details.get("asset", "USDT")
            return "51008", f"Order failed. Insufficient {asset} balance in account."
        return ORDER_ERRORS.get(exc.reason, ("51000", f"Parameter error: {exc.message}"))

    def injected_error(self, error: str, route: Route, req: HttpRequest) -> HttpReply:
        if error == "insufficient_balance":
            msg = "Order failed. Insufficient USDT balance in account."
            if route.name == "create_order":
                items = req.json if isinstance(req.json, list) else [req.json or {}]
                return self._batch_reply([self._failed(i, "51008", msg) for i in items])
            return self.error("51008", msg)
        if error == "rate_limit":
            return self.error("50011", "Too Many Requests", 429)
        if error == "invalid_timestamp":
            return self.error("50102", "Timestamp request expired.", 401)
        if error == "maintenance":
            return self.error("50001", "Service temporarily unavailable. Please try again later.", 503)
        if error == "server_error":
            return HttpReply(500, "<html><body><h1>500 Internal Server Error</h1></body></html>")
        if error == "unknown_status":
            return self.error("50004", "Endpoint request timeout (does not indicate success or failure of "
                                       "order, please check order status).")
        if error == "invalid_api_key":
            return self.error("50111", "Invalid OK-ACCESS-KEY.", 401)
        raise ValueError(error)

    # ----------------------------------------------------------------- formatting
    def _markets(self, kind: str) -> list[MarketSpec]:
        return [m for m in self.engine.markets.values() if m.kind == kind]

    def _inst(self, inst_id: str | None) -> MarketSpec:
        if not inst_id:
            raise OkxError("51000", "Parameter instId error")
        kind = "perp" if inst_id.endswith("-SWAP") else "spot"
        try:
            return self.engine.market_by_id(kind, inst_id)
        except EngineError:
            raise OkxError("51001", "Instrument ID does not exist") from None

    @staticmethod
    def _px(m: MarketSpec, v: Decimal | None) -> str:
        return fmt(v, decimals_of(m.tick)) if v is not None else ""

    @staticmethod
    def _sz(m: MarketSpec, v: Decimal | None) -> str:
        return fmt(v, decimals_of(m.step)) if v is not None else ""

    def order_json(self, o: Order) -> dict[str, Any]:
        m = self.engine.markets[o.symbol]
        spot = m.kind == "spot"
        tgt = o.extra.get("tgtCcy", "")
        size = o.quote_qty if tgt == "quote_ccy" else o.qty
        last = self.engine.trades_for(o.symbol, o.kind, o.order_id)[-1:] or None
        realized = sum((t.realized_pnl for t in self.engine.trades_for(o.symbol, o.kind, o.order_id)), ZERO)
        return {
            "accFillSz": self._sz(m, o.filled), "algoClOrdId": "", "algoId": "", "attachAlgoClOrdId": "",
            "attachAlgoOrds": [], "avgPx": fmt(o.avg_price) if o.filled else "",
            "cTime": str(o.created_ms), "cancelSource": "31" if o.extra.get("cancel_reason") else "",
            "cancelSourceReason": "", "category": "normal", "ccy": "", "clOrdId": o.client_id,
            "fee": fmt(-o.fee), "feeCcy": o.fee_asset or (m.base if o.side == "buy" and spot else m.quote),
            "fillPx": self._px(m, last[0].price) if last else "",
            "fillSz": self._sz(m, last[0].qty) if last else "0",
            "fillTime": str(last[0].ts) if last else "", "instId": m.venue_id,
            "instType": INST_TYPE[m.kind], "isTpLimit": "false",
            "lever": "" if spot else str(self.engine.leverage_of(m.symbol)),
            "linkedAlgoOrd": {"algoId": ""}, "ordId": o.order_id, "ordType": o.extra.get("ordType", o.type),
            "pnl": fmt(realized), "posSide": "" if spot else "net",
            "px": self._px(m, o.price) if o.price is not None else "", "pxType": "", "pxUsd": "",
            "pxVol": "", "quickMgnType": "", "rebate": "0", "rebateCcy": m.quote,
            "reduceOnly": "true" if o.reduce_only else "false", "side": o.side, "slOrdPx": "",
            "slTriggerPx": "", "slTriggerPxType": "", "source": "", "state": STATE[o.status],
            "stpId": "", "stpMode": "cancel_maker",
            "sz": fmt(size) if tgt == "quote_ccy" else self._sz(m, size), "tag": o.extra.get("tag", ""),
            "tdMode": o.extra.get("tdMode", "cash"), "tgtCcy": tgt, "tpOrdPx": "", "tpTriggerPx": "",
            "tpTriggerPxType": "", "tradeId": last[0].trade_id if last else "", "tradeQuoteCcy": "",
            "uTime": str(o.updated_ms),
        }

    def fill_json(self, t: Trade) -> dict[str, Any]:
        m = self.engine.markets[t.symbol]
        fees = self.engine.config.fees[m.kind]
        rate = fees.maker if t.maker else fees.taker
        o = self.engine.find_order(t.symbol, order_id=t.order_id, kind=t.kind)
        return {
            "instType": INST_TYPE[m.kind], "instId": m.venue_id, "tradeId": t.trade_id,
            "ordId": t.order_id, "clOrdId": t.client_id, "billId": str(t.seq),
            "subType": "1" if t.side == "buy" else "2", "tag": o.extra.get("tag", ""),
            "fillPx": self._px(m, t.price), "fillSz": self._sz(m, t.qty), "fillIdxPx": self._px(m, t.price),
            "fillPnl": fmt(t.realized_pnl), "fillPxVol": "", "fillPxUsd": "", "fillMarkVol": "",
            "fillFwdPx": "", "fillMarkPx": "" if m.kind == "spot" else self._px(m, t.price),
            "side": t.side, "posSide": "" if m.kind == "spot" else "net",
            "execType": "M" if t.maker else "T", "feeCcy": t.fee_asset, "fee": fmt(-t.fee),
            "ts": str(t.ts), "fillTime": str(t.ts), "feeRate": fmt(-rate), "tradeQuoteCcy": "",
        }

    # ----------------------------------------------------------------- public
    def time(self, req: HttpRequest) -> HttpReply:
        return self.ok([{"ts": str(self.now_ms())}])

    def instruments(self, req: HttpRequest) -> HttpReply:
        inst_type = req.query.get("instType")
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
            raise OkxError("51000", "Parameter instType error")
        out = []
        for m in self._markets(KIND.get(inst_type, "")):
            if req.query.get("instId") and req.query["instId"] != m.venue_id:
                continue
            common = {
                "alias": "", "auctionEndTime": "", "category": "1", "expTime": "", "instId": m.venue_id,
                "instType": inst_type, "listTime": "1606468572000", "lotSz": fmt(m.step),
                "maxIcebergSz": fmt(m.max_qty), "maxLmtAmt": "20000000", "maxLmtSz": fmt(m.max_qty),
                "maxMktAmt": "1000000", "maxMktSz": fmt(m.max_qty), "maxStopSz": fmt(m.max_qty),
                "maxTriggerSz": fmt(m.max_qty), "maxTwapSz": fmt(m.max_qty), "minSz": fmt(m.min_qty),
                "optType": "", "ruleType": "normal", "state": "live", "stk": "", "tickSz": fmt(m.tick),
            }
            if m.kind == "spot":
                common.update({"baseCcy": m.base, "quoteCcy": m.quote, "ctMult": "", "ctType": "",
                               "ctVal": "", "ctValCcy": "", "instFamily": "", "lever": "",
                               "settleCcy": "", "uly": ""})
            else:
                family = f"{m.base}-{m.quote}"
                common.update({"baseCcy": "", "quoteCcy": "", "ctMult": "1", "ctType": "linear",
                               "ctVal": fmt(m.contract_size), "ctValCcy": m.base, "instFamily": family,
                               "lever": str(m.max_leverage), "settleCcy": m.settle or "", "uly": family})
            out.append(common)
        return self.ok(out)

    def ticker(self, req: HttpRequest) -> HttpReply:
        m = self._inst(req.query.get("instId"))
        mid = self.engine.mids.get(m.symbol, ZERO)
        now = str(self.now_ms())
        px = self._px
        return self.ok([{"instType": INST_TYPE[m.kind], "instId": m.venue_id, "last": px(m, mid),
                         "lastSz": "0", "askPx": px(m, mid + m.tick), "askSz": "1",
                         "bidPx": px(m, mid - m.tick), "bidSz": "1", "open24h": px(m, mid),
                         "high24h": px(m, mid), "low24h": px(m, mid), "volCcy24h": "0", "vol24h": "0",
                         "ts": now, "sodUtc0": px(m, mid), "sodUtc8": px(m, mid)}])

    def books(self, req: HttpRequest) -> HttpReply:
        m = self._inst(req.query.get("instId"))
        mid = self.engine.mid(m.symbol)
        return self.ok([{"asks": [[self._px(m, mid + m.tick), "1000", "0", "1"]],
                         "bids": [[self._px(m, mid - m.tick), "1000", "0", "1"]],
                         "ts": str(self.now_ms())}])

    def funding_rate(self, req: HttpRequest) -> HttpReply:
        m = self._inst(req.query.get("instId"))
        now = self.now_ms()
        nxt = (now // 28800000 + 1) * 28800000
        rate = fmt(self.engine.funding_rate(m.symbol))
        return self.ok([{"instType": "SWAP", "instId": m.venue_id, "fundingRate": rate,
                         "nextFundingRate": "", "fundingTime": str(nxt),
                         "nextFundingTime": str(nxt + 28800000),
                         "method": "current_period", "ts": str(now)}])

    # ----------------------------------------------------------------- account
    def config(self, req: HttpRequest) -> HttpReply:
        return self.ok([{"acctLv": "2", "posMode": "net_mode", "autoLoan": False, "greeksType": "PA",
                         "level": "Lv1", "levelTmp": "", "ctIsoMode": "automatic", "mgnIsoMode": "automatic",
                         "uid": "1000001", "mainUid": "1000001", "label": "exchange emulator",
                         "roleType": "0", "spotRoleType": "0", "opAuth": "0", "kycLv": "2", "ip": "",
                         "perm": "read_only,trade"}])

    def balance(self, req: HttpRequest) -> HttpReply:
        wanted = {c for c in req.query.get("ccy", "").split(",") if c}
        e = self.engine
        now = str(self.now_ms())
        details = []
        total_eq = ZERO
        for (wallet, asset), total in sorted(e.balances.items()):
            if wallet != "unified" or (wanted and asset not in wanted):
                continue
            upnl = e.unrealized_pnl(wallet, asset)
            avail = e.available(wallet, asset)
            ord_frozen = e._locked(wallet, asset) + e.order_im(wallet, asset)
            imr = e.position_im(wallet, asset)
            details.append({
                "availBal": fmt(avail), "availEq": fmt(avail), "borrowFroz": "", "cashBal": fmt(total),
                "ccy": asset, "crossLiab": "", "disEq": fmt(total + upnl), "eq": fmt(total + upnl),
                "eqUsd": fmt(total + upnl), "fixedBal": "0", "frozenBal": fmt(total - avail),
                "imr": fmt(imr), "interest": "", "isoEq": "0", "isoLiab": "", "isoUpl": "0", "liab": "",
                "maxLoan": "", "mgnRatio": "", "mmr": "", "notionalLever": "", "ordFrozen": fmt(ord_frozen),
                "spotInUseAmt": "", "stgyEq": "0", "twap": "0", "uTime": now, "upl": fmt(upnl),
                "uplLiab": "",
            })
            if asset == "USDT":
                total_eq += total + upnl
        return self.ok([{"adjEq": fmt(total_eq), "borrowFroz": "", "details": details, "imr": "",
                         "isoEq": "0", "mgnRatio": "", "mmr": "", "notionalUsd": "", "ordFroz": "",
                         "totalEq": fmt(total_eq), "uTime": now, "upl": ""}])

    def positions(self, req: HttpRequest) -> HttpReply:
        q = req.query
        if q.get("instType") and q["instType"] not in ("SWAP", "FUTURES", "OPTION", "MARGIN"):
            raise OkxError("51000", "Parameter instType error")
        wanted = {i for i in q.get("instId", "").split(",") if i}
        e = self.engine
        out: list[dict[str, Any]] = []
        for m in self._markets("perp"):
            if wanted and m.venue_id not in wanted:
                continue
            pos = e.positions.get(m.symbol)
            if pos is None or pos.size == 0:
                continue
            mark = e.mids.get(m.symbol, pos.entry_price)
            lev = e.leverage_of(m.symbol)
            notional = abs(pos.size) * m.contract_size * mark
            upnl = (mark - pos.entry_price) * pos.size * m.contract_size
            imr = notional / lev
            liq = pos.entry_price * (1 - D(1) / lev + D("0.005")) if pos.size > 0 else \
                pos.entry_price * (1 + D(1) / lev - D("0.005"))
            out.append({
                "adl": "1", "availPos": "", "avgPx": fmt(pos.entry_price), "cTime": str(pos.created_ms),
                "ccy": m.settle, "deltaBS": "", "deltaPA": "", "gammaBS": "", "gammaPA": "",
                "imr": fmt(imr), "instId": m.venue_id, "instType": "SWAP", "interest": "",
                "idxPx": self._px(m, mark), "last": self._px(m, mark), "usdPx": "",
                "bePx": fmt(pos.entry_price), "lever": str(lev), "liab": "", "liabCcy": "",
                "liqPx": self._px(m, liq), "markPx": self._px(m, mark),
                "margin": "", "mgnMode": "cross", "mgnRatio": "", "mmr": fmt(notional * D("0.005")),
                "notionalUsd": fmt(notional), "optVal": "", "pendingCloseOrdLiabVal": "0",
                "pTime": str(pos.updated_ms), "pos": self._sz(m, pos.size), "baseBorrowed": "",
                "baseInterest": "", "quoteBorrowed": "", "quoteInterest": "", "posCcy": "",
                "posId": str(BASE_INDEX.get(m.base, 9)), "posSide": "net", "spotInUseAmt": "",
                "spotInUseCcy": "", "clSpotInUseAmt": "", "maxSpotInUseAmt": "", "bizRefId": "",
                "bizRefType": "", "thetaBS": "", "thetaPA": "", "tradeId": "", "uTime": str(pos.updated_ms),
                "upl": fmt(upnl), "uplLastPx": fmt(upnl), "uplRatio": fmt(upnl / imr if imr else ZERO),
                "uplRatioLastPx": fmt(upnl / imr if imr else ZERO), "vegaBS": "", "vegaPA": "",
                "realizedPnl": fmt(pos.realized_pnl), "pnl": fmt(pos.realized_pnl), "fee": "0",
                "fundingFee": "0", "liqPenalty": "0", "closeOrderAlgo": [],
            })
        return self.ok(out)

    def set_leverage(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        m = self._inst(b.get("instId"))
        lever = _dec(b.get("lever"), "lever")
        if lever is None or not 1 <= lever <= m.max_leverage or m.kind != "perp":
            raise OkxError("51000", "Parameter lever error")
        self.engine.set_leverage(m.symbol, int(lever))
        return self.ok([{"instId": m.venue_id, "lever": str(int(lever)),
                         "mgnMode": b.get("mgnMode", "cross"), "posSide": "net"}])

    # ----------------------------------------------------------------- orders
    def _failed(self, item: Any, code: str, msg: str) -> dict[str, Any]:
        item = item if isinstance(item, dict) else {}
        return {"clOrdId": item.get("clOrdId", ""), "ordId": "", "sCode": code, "sMsg": msg,
                "tag": item.get("tag", ""), "ts": ""}

    def _batch_reply(self, results: list[dict[str, Any]]) -> HttpReply:
        failed = sum(1 for r in results if r["sCode"] != "0")
        now = str(self.now_ms() * 1000)
        if failed == 0:
            code, msg = "0", ""
        elif failed == len(results):
            code, msg = "1", "All operations failed"
        else:
            code, msg = "2", "Bulk operation partially succeeded"
        return HttpReply(200, {"code": code, "msg": msg, "data": results, "inTime": now, "outTime": now})

    def _place(self, item: dict[str, Any]) -> dict[str, Any]:
        m = self._inst(item.get("instId"))
        side = item.get("side")
        if side not in ("buy", "sell"):
            raise OkxError("51000", "Parameter side error")
        ord_type = item.get("ordType")
        if ord_type not in ("market", "limit", "post_only", "fok", "ioc", "optimal_limit_ioc"):
            raise OkxError("51000", "Parameter ordType error")
        td_mode = item.get("tdMode")
        if (m.kind == "spot" and td_mode != "cash") or (m.kind == "perp" and td_mode != "cross"):
            raise OkxError("51000", "Parameter tdMode error")
        pos_side = item.get("posSide")
        if m.kind == "perp" and pos_side not in (None, "", "net"):
            raise OkxError("51000", "Parameter posSide error")
        cl_ord_id = item.get("clOrdId") or ""
        if cl_ord_id and not CL_ORD_ID_RE.match(str(cl_ord_id)):
            raise OkxError("51000", "Parameter clOrdId error")
        size = _dec(item.get("sz"), "sz")
        if size is None or size <= 0:
            raise OkxError("51000", "Parameter sz error")
        price = _dec(item.get("px"), "px")
        is_market = ord_type in ("market", "optimal_limit_ioc")
        if not is_market and price is None:
            raise OkxError("51000", "Parameter px error")
        tgt = item.get("tgtCcy") or ""
        if m.kind == "spot" and is_market and not tgt:
            tgt = "quote_ccy" if side == "buy" else "base_ccy"  # OKX's own defaults for spot market
        if m.kind == "perp":
            tgt = ""
        qty: Decimal | None = size
        quote_qty = None
        if tgt == "quote_ccy" and is_market:
            qty, quote_qty = None, size
        tif = {"post_only": "PO", "fok": "FOK", "ioc": "IOC"}.get(ord_type, "GTC")
        reduce_only = item.get("reduceOnly") in (True, "true")
        order = self.engine.submit(
            symbol=m.symbol, side=side, type="market" if is_market else "limit", qty=qty,
            price=None if is_market else price, quote_qty=quote_qty, client_id=str(cl_ord_id),
            time_in_force=tif, reduce_only=reduce_only, now_ms=self.now_ms(),
            extra={"ordType": ord_type, "tdMode": td_mode, "tgtCcy": tgt if m.kind == "spot" else "",
                   "tag": item.get("tag", "")},
        )
        return {"clOrdId": order.client_id, "ordId": order.order_id, "sCode": "0",
                "sMsg": "Order placed", "tag": item.get("tag", ""), "ts": str(order.created_ms)}

    def _place_all(self, items: list[Any]) -> HttpReply:
        results = []
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise OkxError("51000", "Parameter error")
                results.append(self._place(item))
            except OkxError as exc:
                results.append(self._failed(item, exc.code, exc.msg))
            except EngineError as exc:
                results.append(self._failed(item, *self._order_error(exc)))
        return self._batch_reply(results)

    def batch_orders(self, req: HttpRequest) -> HttpReply:
        items = req.json
        if not isinstance(items, list) or not 1 <= len(items) <= 20:
            raise OkxError("51000", "Parameter error: batch orders need 1..20 items")
        return self._place_all(items)

    def single_order(self, req: HttpRequest) -> HttpReply:
        if not isinstance(req.json, dict):
            raise OkxError("51000", "Parameter error")
        return self._place_all([req.json])

    def _cancel(self, item: Any) -> dict[str, Any]:
        try:
            if not isinstance(item, dict):
                raise OkxError("51000", "Parameter error")
            m = self._inst(item.get("instId"))
            ord_id, cl_ord_id = item.get("ordId") or None, item.get("clOrdId") or None
            if not ord_id and not cl_ord_id:
                raise OkxError("51000", "Parameter ordId error")
            order = self.find(m, ord_id, cl_ord_id)
            self.engine.cancel(order, self.now_ms())
            return {"clOrdId": order.client_id, "ordId": order.order_id, "sCode": "0", "sMsg": "",
                    "ts": str(order.updated_ms)}
        except OkxError as exc:
            code, msg = exc.code, exc.msg
        except EngineError as exc:
            code, msg = self._order_error(exc)
        item = item if isinstance(item, dict) else {}
        return {"clOrdId": item.get("clOrdId", ""), "ordId": item.get("ordId", ""), "sCode": code,
                "sMsg": msg, "ts": ""}

    def cancel_one(self, req: HttpRequest) -> HttpReply:
        return self._batch_reply([self._cancel(req.json)])

    def cancel_batch(self, req: HttpRequest) -> HttpReply:
        items = req.json
        if not isinstance(items, list) or not 1 <= len(items) <= 20:
            raise OkxError("51000", "Parameter error: batch cancels need 1..20 items")
        return self._batch_reply([self._cancel(i) for i in items])

    def get_order(self, req: HttpRequest) -> HttpReply:
        q = req.query
        m = self._inst(q.get("instId"))
        ord_id, cl_ord_id = q.get("ordId") or None, q.get("clOrdId") or None
        if not ord_id and not cl_ord_id:
            raise OkxError("51000", "Parameter ordId error")
        return self.ok([self.order_json(self.find(m, ord_id, cl_ord_id))])

    def _orders(self, req: HttpRequest, open_only: bool) -> list[Order]:
        q = req.query
        kinds = {"spot", "perp"}
        if q.get("instType"):
            if q["instType"] not in KIND:
                return []
            kinds = {KIND[q["instType"]]}
        elif not open_only:
            raise OkxError("51000", "Parameter instType error")
        symbol = self._inst(q["instId"]).symbol if q.get("instId") else None
        with self.engine.lock:
            orders = [o for o in self.engine.orders.values() if o.kind in kinds
                      and (symbol is None or o.symbol == symbol) and o.is_open == open_only]
        limit = min(int(q.get("limit") or 100), 100)
        return sorted(orders, key=lambda o: o.seq, reverse=True)[:limit]

    def pending(self, req: HttpRequest) -> HttpReply:
        return self.ok([self.order_json(o) for o in self._orders(req, open_only=True)])

    def history(self, req: HttpRequest) -> HttpReply:
        return self.ok([self.order_json(o) for o in self._orders(req, open_only=False)])

    def fills(self, req: HttpRequest) -> HttpReply:
        q = req.query
        if req.path.endswith("fills-history") and not q.get("instType"):
            raise OkxError("51000", "Parameter instType error")
        kind = KIND.get(q.get("instType", ""))
        symbol = self._inst(q["instId"]).symbol if q.get("instId") else None
        trades = self.engine.trades_for(symbol, kind, q.get("ordId") or None)
        if q.get("begin"):
            trades = [t for t in trades if t.ts >= int(q["begin"])]
        if q.get("end"):
            trades = [t for t in trades if t.ts <= int(q["end"])]
        limit = min(int(q.get("limit") or 100), 100)
        trades = sorted(trades, key=lambda t: t.seq, reverse=True)[:limit]
        return self.ok([self.fill_json(t) for t in trades])

    # ----------------------------------------------------------------- wallet
    CHAINS = {"USDT": "USDT-ERC20", "ETH": "ETH-ERC20"}  # OKX chain names on Ethereum
    ACCOUNTS = {"6": "funding", "18": "unified"}

    def mark_price(self, req: HttpRequest) -> HttpReply:
        q = req.query
        markets = [self._inst(q["instId"])] if q.get("instId") else self._markets("perp")
        now = str(self.now_ms())
        return self.ok([{"instType": INST_TYPE[m.kind], "instId": m.venue_id,
                         "markPx": self._px(m, self.engine.mids.get(m.symbol, ZERO)), "ts": now}
                        for m in markets])

    def _ccy(self, value: Any) -> str:
        ccy = str(value or "").upper()
        if ccy not in self.CHAINS:
            raise OkxError("58004", "Currency does not exist")
        return ccy

    def currencies(self, req: HttpRequest) -> HttpReply:
        wanted = {c for c in req.query.get("ccy", "").split(",") if c}
        out = []
        for ccy, chain in self.CHAINS.items():
            if wanted and ccy not in wanted:
                continue
            fee = fmt(self.engine.withdrawal_fee(ccy))
            out.append({
                "ccy": ccy, "chain": chain, "name": "Tether" if ccy == "USDT" else "Ethereum",
                "canDep": True, "canWd": True, "canInternal": True, "depQuotaFixed": "",
                "depEstOpenTime": "", "wdEstOpenTime": "", "minDep": "0.00000001",
                "minDepArrivalConfirm": "1", "minWdUnlockConfirm": "1", "minWd": "0.000001",
                "maxWd": "100000000", "wdTickSz": "6" if ccy == "USDT" else "8", "wdQuota": "10000000",
                "usedWdQuota": "0", "minFee": fee, "maxFee": fee, "fee": fee, "minFeeForCtAddr": fee,
                "maxFeeForCtAddr": fee, "burningFeeRate": "", "mainNet": ccy == "ETH", "needTag": False,
                "ctAddr": "" if ccy == "ETH" else "0xdac17f958d2ee523a2206206994597c13d831ec7",
                "logoLink": "",
            })
        return self.ok(out)

    def deposit_address(self, req: HttpRequest) -> HttpReply:
        ccy = self._ccy(req.query.get("ccy"))
        chain = self.CHAINS[ccy]
        return self.ok([{"chain": chain, "ctAddr": "", "ccy": ccy, "to": "6",
                         "addr": self.engine.deposit_address(ccy, "ETH"), "verifiedName": "",
                         "selected": True}])

    def withdrawal(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        ccy = self._ccy(b.get("ccy"))
        chain = b.get("chain") or self.CHAINS[ccy]
        if chain != self.CHAINS[ccy]:
            raise OkxError("58200", f"Withdrawal from funding to {chain} is unavailable for this currency")
        if str(b.get("dest") or "") != "4":
            raise OkxError("51000", "Parameter dest error")
        amount = _dec(b.get("amt"), "amt")
        if amount is None or amount <= 0:
            raise OkxError("51000", "Parameter amt error")
        fee = _dec(b.get("fee"), "fee")
        min_fee = self.engine.withdrawal_fee(ccy)
        if fee is None:
            fee = min_fee
        elif fee < min_fee:
            raise OkxError("58211", "Withdrawal fee is lower than the lower limit")
        w = self.engine.request_withdrawal(asset=ccy, amount=amount, address=str(b.get("toAddr") or ""),
                                           network="ETH", client_id=str(b.get("clientId") or ""), fee=fee,
                                           now_ms=self.now_ms())
        return self.ok([{"amt": fmt(w.amount), "wdId": w.withdrawal_id, "ccy": w.asset,
                         "clientId": w.client_id, "chain": chain}])

    @staticmethod
    def _wd_state(status: str) -> str:
        return {"pending": "0", "processing": "1", "ok": "2", "failed": "-1", "canceled": "-2"}[status]

    @staticmethod
    def _window(q: dict[str, str], rows: list[Any], ts: Any) -> list[Any]:
        # OKX's 'after' = earlier than, 'before' = later than (ms timestamps on the asset endpoints)
        if q.get("after"):
            rows = [r for r in rows if ts(r) < int(q["after"])]
        if q.get("before"):
            rows = [r for r in rows if ts(r) > int(q["before"])]
        return rows

    def withdrawal_history(self, req: HttpRequest) -> HttpReply:
        q = req.query
        e = self.engine
        if e.auto_process_withdrawals:
            e.process_withdrawals()
        rows = e.withdrawals()
        if q.get("ccy"):
            rows = [w for w in rows if w.asset == q["ccy"].upper()]
        if q.get("wdId"):
            rows = [w for w in rows if w.withdrawal_id == q["wdId"]]
        if q.get("clientId"):
            rows = [w for w in rows if w.client_id == q["clientId"]]
        if q.get("txId"):
            rows = [w for w in rows if w.txid == q["txId"]]
        if q.get("state"):
            rows = [w for w in rows if self._wd_state(w.status) == q["state"]]
        rows = self._window(q, rows, lambda w: w.created_ms)
        limit = min(int(q.get("limit") or 100), 100)
        rows = sorted(rows, key=lambda w: w.seq, reverse=True)[:limit]
        return self.ok([{
            "chain": self.CHAINS.get(w.asset, ""), "fee": fmt(w.fee), "feeCcy": w.asset, "ccy": w.asset,
            "clientId": w.client_id, "amt": fmt(w.amount), "txId": w.txid, "from": "", "areaCodeFrom": "",
            "to": w.address, "areaCodeTo": "", "state": self._wd_state(w.status), "ts": str(w.created_ms),
            "nonTradableAsset": False, "wdId": w.withdrawal_id, "tag": w.tag,
        } for w in rows])

    def deposit_history(self, req: HttpRequest) -> HttpReply:
        q = req.query
        e = self.engine
        e.scan_chain()
        rows = e.deposits()
        if q.get("ccy"):
            rows = [d for d in rows if d.asset == q["ccy"].upper()]
        if q.get("depId"):
            rows = [d for d in rows if d.deposit_id == q["depId"]]
        if q.get("txId"):
            rows = [d for d in rows if d.txid == q["txId"]]
        rows = self._window(q, rows, lambda d: d.created_ms)
        limit = min(int(q.get("limit") or 100), 100)
        rows = sorted(rows, key=lambda d: d.seq, reverse=True)[:limit]
        state = {"pending": "0", "ok": "2", "failed": "-1"}
        return self.ok([{
            "actualDepBlkConfirm": "1" if d.status == "ok" else "0", "amt": fmt(d.amount), "areaCodeFrom": "",
            "ccy": d.asset, "chain": self.CHAINS.get(d.asset, ""), "depId": d.deposit_id, "from": "",
            "fromWdId": "", "state": state[d.status], "to": d.address, "ts": str(d.created_ms),
            "txId": d.txid,
        } for d in rows])

    def transfer(self, req: HttpRequest) -> HttpReply:
        b = req.json if isinstance(req.json, dict) else {}
        if str(b.get("type") or "0") != "0":
            raise OkxError("58127", "Main account API Key does not support current transfer 'type' "
                                    "parameter. Please refer to the API documentation.")
        src, dst = self.ACCOUNTS.get(str(b.get("from"))), self.ACCOUNTS.get(str(b.get("to")))
        if src is None or dst is None:
            raise OkxError("51000", "Parameter from error" if src is None else "Parameter to error")
        ccy = str(b.get("ccy") or "").upper()
        amount = _dec(b.get("amt"), "amt")
        if amount is None or amount <= 0:
            raise OkxError("58114", "Transfer amount must be more than 0")
        client_id = str(b.get("clientId") or "")
        t = self.engine.move_funds(src, dst, ccy, amount, self.now_ms(), transfer_id=client_id or None)
        return self.ok([{"transId": str(t["tranId"]), "ccy": ccy, "clientId": client_id,
                         "from": str(b.get("from")), "amt": fmt(amount), "to": str(b.get("to"))}])

    def funding_balances(self, req: HttpRequest) -> HttpReply:
        wanted = {c for c in req.query.get("ccy", "").split(",") if c}
        e = self.engine
        out = []
        for (wallet, asset), total in sorted(e.balances.items()):
            if wallet != "funding" or (wanted and asset not in wanted):
                continue
            avail = e.available(wallet, asset)
            out.append({"availBal": fmt(avail), "bal": fmt(total), "ccy": asset,
                        "frozenBal": fmt(total - avail)})
        return self.ok(out)

    def bills(self, req: HttpRequest) -> HttpReply:
        q = req.query
        if q.get("type") and q["type"] != "8":
            return self.ok([])  # only funding-fee bills are emulated
        if q.get("instType") and q["instType"] != "SWAP":
            return self.ok([])
        if q.get("ccy") and q["ccy"] != "USDT":
            return self.ok([])
        symbol = self._inst(q["instId"]).symbol if q.get("instId") else None
        rows = self.engine.funding_history(symbol)
        if q.get("begin"):
            rows = [i for i in rows if i.ts >= int(q["begin"])]
        if q.get("end"):
            rows = [i for i in rows if i.ts <= int(q["end"])]
        limit = min(int(q.get("limit") or 100), 100)
        rows = sorted(rows, key=lambda i: i.seq, reverse=True)[:limit]
        out = []
        for i in rows:
            m = self.engine.markets[i.symbol]
            out.append({
                "bal": fmt(i.balance_after), "balChg": fmt(i.amount), "billId": i.income_id, "ccy": i.asset,
                "clOrdId": "", "execType": "", "fee": "0", "fillFwdPx": "", "fillIdxPx": "",
                "fillMarkPx": "", "fillMarkVol": "", "fillPxUsd": "", "fillPxVol": "", "fillTime": str(i.ts),
                "from": "", "instId": m.venue_id, "instType": "SWAP", "interest": "0", "mgnMode": "cross",
                "notes": "", "ordId": "", "pnl": fmt(i.amount), "posBal": "0", "posBalChg": "0",
                "px": self._px(m, i.mark), "subType": "174" if i.amount >= 0 else "173",
                "sz": self._sz(m, abs(i.position) / m.contract_size), "tag": "", "to": "",
                "tradeId": "", "ts": str(i.ts), "type": "8",
            })
        return self.ok(out)
