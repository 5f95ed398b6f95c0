"""Pure translation of ccxt's unified structures (orders, trades, balances, positions, markets, errors)
into what the ledger records: base units, Decimals, venue-neutral codes. No I/O here (CONVENTIONS 7)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt

ZERO = Decimal(0)
TICK_SIZE = 4  # ccxt.TICK_SIZE: precision given as the step itself (all three venues in 4.5.90)
DONE = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})
_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def dec(value: Any) -> Decimal | None:
    """A Decimal from what ccxt returns (float, int, numeric str); None for missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return _plain(number) if number.is_finite() else None


def _plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros and without an exponent (2000.0 -> 2000, 0.50 -> 0.5)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def num(value: Any) -> Decimal:
    return dec(value) or ZERO


def ms_to_utc(value: Any, default: datetime) -> datetime:
    number = dec(value)
    if number is None or number <= 0:
        return default
    return datetime.fromtimestamp(float(number) / 1000, tz=UTC)


# ---- markets: units, precision and minimums ----------------------------------------------------------


def contract_size(market: Mapping[str, Any]) -> Decimal:
    """Base units per venue amount unit: 1 for spot and linear USDT perps except OKX (e.g. 0.1 ETH)."""
    if not market.get("contract"):
        return Decimal(1)
    return dec(market.get("contractSize")) or Decimal(1)


def step_of(market: Mapping[str, Any], key: str, precision_mode: int = TICK_SIZE) -> Decimal | None:
    raw = dec((market.get("precision") or {}).get(key))
    if raw is None or raw <= 0:
        return None
    if precision_mode != TICK_SIZE:
        return Decimal(1).scaleb(-int(raw))  # DECIMAL_PLACES / SIGNIFICANT_DIGITS: a count of digits
    return raw


def _multiple(value: Decimal, step: Decimal) -> bool:
    ratio = value / step
    return ratio == ratio.to_integral_value()


def check_order(
    market: Mapping[str, Any],
    amount_base: Decimal,
    price: Decimal | None,
    reference: Decimal | None,
    precision_mode: int = TICK_SIZE,
) -> tuple[str, str] | None:
    """(code, reason) when the venue would refuse the order for its size or price; None when it fits."""
    size = contract_size(market)
    amount = amount_base / size
    unit = "contracts" if market.get("contract") and size != 1 else market.get("base", "")
    step = step_of(market, "amount", precision_mode)
    symbol = market.get("symbol", "")
    if step is not None and not _multiple(amount, step):
        per = f" ({size} {market.get('base')} per contract)" if unit == "contracts" else ""
        return "precision", (
            f"amount: {amount_base} is {amount.normalize():f} {unit}{per}, not a multiple of "
            f"{symbol}'s step {step.normalize():f}"
        )
    limits = market.get("limits") or {}
    low = dec((limits.get("amount") or {}).get("min"))
    high = dec((limits.get("amount") or {}).get("max"))
    if low is not None and amount < low:
        return "min_amount", f"amount: {amount.normalize():f} {unit} is below {symbol}'s minimum {low} {unit}"
    if high is not None and high > 0 and amount > high:
        return (
            "max_amount",
            f"amount: {amount.normalize():f} {unit} is above {symbol}'s maximum {high} {unit}",
        )
    if price is not None:
        tick = step_of(market, "price", precision_mode)
        if tick is not None and not _multiple(price, tick):
            return "precision", f"price: {price} is not a multiple of {symbol}'s tick {tick.normalize():f}"
    at = price if price is not None else reference
    min_cost = dec((limits.get("cost") or {}).get("min"))
    if at is not None and min_cost is not None and min_cost > 0:
        notional = amount_base * at
        if notional < min_cost:
            return "min_notional", (
                f"amount: order value {notional.normalize():f} {market.get('quote', '')} is below "
                f"{symbol}'s minimum {min_cost} {market.get('quote', '')}"
            )
    return None


def venue_amount(market: Mapping[str, Any], amount_base: Decimal) -> Decimal:
    """The amount ccxt sends: base units, or contracts where the market counts in contracts."""
    return _plain(amount_base / contract_size(market))


# ---- orders and trades ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderReport:
    """What the venue says about one order, in base units."""

    venue_order_id: str
    client_order_id: str
    status: str | None  # open | closed | canceled | expired | rejected | None (not reported)
    amount: Decimal | None
    filled: Decimal | None
    average: Decimal | None

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def outcome(self) -> str:
        """The reconciliation outcome (`OrderReconciled.outcome`) this report means."""
        if not self.done:
            return "open"
        short = self.amount is not None and self.filled is not None and self.filled < self.amount
        return "filled" if self.status == "closed" and not short else "cancelled"


def client_id_of(item: Mapping[str, Any]) -> str:
    """Our client order id of an order or trade, from the unified field or the venue's own field."""
    info = item.get("info") or {}
    for value in (
        info.get("orderLinkId"),
        info.get("clOrdId"),
        info.get("origClientOrderId"),
        item.get("clientOrderId"),
        info.get("clientOrderId"),
    ):
        if isinstance(value, str) and value:
            return value
    return ""


def order_report(order: Mapping[str, Any], market: Mapping[str, Any]) -> OrderReport:
    size = contract_size(market)
    amount, filled = dec(order.get("amount")), dec(order.get("filled"))
    status = order.get("status")
    return OrderReport(
        venue_order_id=str(order.get("id") or ""),
        client_order_id=client_id_of(order),
        status=str(status).lower() if status else None,
        amount=amount * size if amount is not None else None,
        filled=filled * size if filled is not None else None,
        average=dec(order.get("average")),
    )


@dataclass(frozen=True)
class Fill:
    """One venue trade in base units: what `OrderFilled` records."""

    trade_id: str
    venue_order_id: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    timestamp_ms: int | None


def fill(
    trade: Mapping[str, Any],
    market: Mapping[str, Any],
    venue_order_id: str = "",
    side: str = "",
    timestamp_ms: int | None = None,
) -> Fill | None:
    """A trade as a Fill; None when it lacks an id, a side, an amount or a price (nothing to record).
    `side` and `timestamp_ms` fill in what trades embedded in an order answer leave out."""
    trade_id = trade.get("id")
    amount, price = dec(trade.get("amount")), dec(trade.get("price"))
    side = str(trade.get("side") or side or "").lower()
    if not trade_id or amount is None or amount <= 0 or price is None or price <= 0:
        return None
    if side not in ("buy", "sell"):
        return None
    fee, fee_asset = _fee(trade, market)
    stamp = dec(trade.get("timestamp"))
    return Fill(
        trade_id=str(trade_id),
        venue_order_id=str(trade.get("order") or venue_order_id or ""),
        side=side,
        quantity=_plain(amount * contract_size(market)),
        price=_plain(price),
        fee=_plain(fee) if fee else ZERO,
        fee_asset=fee_asset,
        liquidity=str(trade.get("takerOrMaker") or "taker"),
        timestamp_ms=int(stamp) if stamp is not None else timestamp_ms,
    )


def _fee(trade: Mapping[str, Any], market: Mapping[str, Any]) -> tuple[Decimal, str]:
    fees: list[Mapping[str, Any]] = [f for f in (trade.get("fees") or []) if f]
    if not fees and trade.get("fee"):
        fees = [trade["fee"]]
    total, asset = ZERO, ""
    for item in fees:
        cost = dec(item.get("cost"))
        currency = str(item.get("currency") or "")
        if cost is None or not currency:
            continue
        if asset and currency != asset:
            continue  # one fee asset per fill; venues here charge one per trade
        total += cost
        asset = currency
    return total, asset or str(market.get("settle") or market.get("quote") or "")


def fills(
    trades: Iterable[Mapping[str, Any]],
    market: Mapping[str, Any],
    venue_order_id: str = "",
    side: str = "",
    timestamp_ms: int | None = None,
) -> list[Fill]:
    """Fills of one order (trades of other orders are left out), oldest first, each trade once."""
    out: dict[str, Fill] = {}
    for trade in trades:
        item = fill(trade, market, venue_order_id, side, timestamp_ms)
        if item is None or (venue_order_id and item.venue_order_id not in ("", venue_order_id)):
            continue
        out.setdefault(item.trade_id, item)
    return sorted(out.values(), key=lambda f: (f.timestamp_ms or 0, f.trade_id))


def embedded_fills(order: Mapping[str, Any], market: Mapping[str, Any]) -> list[Fill]:
    """Trades a create/fetch answer carries itself (Binance spot `fills[]` with `tradeId`)."""
    stamp = dec(order.get("lastTradeTimestamp") or order.get("timestamp"))
    return fills(
        order.get("trades") or [],
        market,
        str(order.get("id") or ""),
        str(order.get("side") or ""),
        int(stamp) if stamp is not None else None,
    )


# ---- balances and positions -------------------------------------------------------------------------

# Where the venue's *wallet* balance (without unrealised P&L) sits in the raw answer; ccxt's `total`
# is margin balance on Binance USDⓈ-M (walletBalance + unrealised) and equity on OKX (eq).
_WALLET_FIELDS: dict[str, tuple[str, str, str]] = {
    # venue: (list path, asset field, wallet balance field)
    "binance_futures": ("assets", "asset", "walletBalance"),
    "okx": ("details", "ccy", "cashBal"),
    "bybit": ("coin", "coin", "walletBalance"),
}


def wallet_balances(venue: str, wallet_kind: str, balance: Mapping[str, Any]) -> dict[str, Decimal]:
    """Asset -> wallet balance (no unrealised P&L) from a ccxt `fetch_balance` answer; zeros left out."""
    key = "binance_futures" if venue == "binance" and wallet_kind == "perp" else venue
    raw = _raw_wallet(key, balance.get("info") or {})
    out: dict[str, Decimal] = {}
    if raw is not None:
        out = raw
    else:
        for asset, total in (balance.get("total") or {}).items():
            amount = dec(total)
            if amount:
                out[str(asset)] = amount
    return {a: v for a, v in sorted(out.items()) if v}


def _raw_wallet(key: str, info: Any) -> dict[str, Decimal] | None:
    fields = _WALLET_FIELDS.get(key)
    if fields is None or not isinstance(info, Mapping):
        return None
    path, asset_field, value_field = fields
    rows: Any
    if key == "okx":
        rows = [d for item in info.get("data") or [] for d in (item.get("details") or [])]
    elif key == "bybit":
        rows = [c for item in (info.get("result") or {}).get("list") or [] for c in (item.get("coin") or [])]
    else:
        rows = info.get(path)
    if not isinstance(rows, list) or not rows:
        return None
    out: dict[str, Decimal] = {}
    for row in rows:
        if not isinstance(row, Mapping) or row.get(value_field) in (None, ""):
            return None  # a shape we do not know: fall back to ccxt's totals
        out[str(row.get(asset_field))] = out.get(str(row.get(asset_field)), ZERO) + num(row.get(value_field))
    return out


def signed_positions(
    positions: Iterable[Mapping[str, Any]], markets: Mapping[str, Any]
) -> dict[str, Decimal]:
    """Symbol -> signed position in base units (short negative), non-zero only, one-way mode."""
    out: dict[str, Decimal] = {}
    for p in positions:
        symbol = p.get("symbol")
        contracts = dec(p.get("contracts"))
        if not symbol or not contracts:
            continue
        size = dec(p.get("contractSize")) or contract_size(markets.get(symbol) or {})
        sign = Decimal(-1) if str(p.get("side") or "").lower() == "short" else Decimal(1)
        out[str(symbol)] = out.get(str(symbol), ZERO) + sign * abs(contracts) * size
    return {s: _plain(v) for s, v in sorted(out.items()) if v}


# ---- client-id lookups ------------------------------------------------------------------------------


def lookup_by_client_id(venue: str, client_order_id: str) -> tuple[str | None, dict[str, Any]]:
    """(order id argument, params) of `fetch_order` that finds an order by our client id (notes §5)."""
    if venue == "bybit":
        # Bybit has no clientOrderId query parameter: orderLinkId with an empty order id
        return "", {"orderLinkId": client_order_id, "acknowledged": True}
    return None, {"clientOrderId": client_order_id}


def lookup_by_id_params(venue: str) -> dict[str, Any]:
    return {"acknowledged": True} if venue == "bybit" else {}


# ---- errors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorClass:
    """How an exception from a venue call is treated: `retry` (rejected before execution, safe to
    send again), `unknown` (may have executed: look it up, never re-send blindly) or `failed` (a
    definitive rejection)."""

    category: str
    code: str


# Checked in order: subclasses before their parents.
_RETRY: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.InvalidNonce, "invalid_nonce"),
    (ccxt.RateLimitExceeded, "rate_limited"),
    (ccxt.DDoSProtection, "rate_limited"),
    (ccxt.OnMaintenance, "maintenance"),
)
_UNKNOWN: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.RequestTimeout, "timeout"),
    (ccxt.ExchangeNotAvailable, "venue_unavailable"),
    (ccxt.NetworkError, "network_error"),
    (ccxt.BadResponse, "bad_response"),
    (ccxt.CancelPending, "cancel_pending"),
    (ccxt.OperationFailed, "operation_failed"),
)
_FAILED: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.InsufficientFunds, "insufficient_balance"),  # the simulator's code for the same refusal
    (ccxt.OrderImmediatelyFillable, "post_only_would_take"),
    (ccxt.OrderNotFillable, "not_fillable"),
    (ccxt.OrderNotFound, "order_not_found"),
    (ccxt.ContractUnavailable, "contract_unavailable"),
    (ccxt.InvalidOrder, "invalid_order"),
    (ccxt.BadSymbol, "bad_symbol"),
    (ccxt.BadRequest, "bad_request"),
    (ccxt.ArgumentsRequired, "bad_request"),
    (ccxt.AccountSuspended, "account_suspended"),
    (ccxt.PermissionDenied, "permission_denied"),
    (ccxt.AuthenticationError, "authentication"),
    (ccxt.MarketClosed, "market_closed"),
    (ccxt.OperationRejected, "rejected"),
    (ccxt.InvalidAddress, "invalid_address"),
    (ccxt.NotSupported, "not_supported"),
    (ccxt.InvalidProxySettings, "bad_config"),
    (ccxt.ExchangeClosedByUser, "closed"),
)


# What each venue says when an order with our client id already exists (Binance spot -2010 and
# USD-M -4116, Bybit 110072 / 170141, OKX 51016); ccxt maps all of them to a plain InvalidOrder.
_DUPLICATE_ID = ("duplicate order sent", "clientorderid is duplicated", "orderlinkedid is duplicate",
                 "duplicate clientorderid", "duplicated clordid")


def is_duplicate_client_id(error: BaseException) -> bool:
    """The venue already holds an order with this client id: ours, so its outcome is to be looked up."""
    if isinstance(error, ccxt.DuplicateOrderId):
        return True
    text = str(error).lower()
    return isinstance(error, ccxt.InvalidOrder) and any(marker in text for marker in _DUPLICATE_ID)


def classify(error: BaseException) -> ErrorClass:
    """The treatment of an exception raised while sending an order (see the notes' retry policy)."""
    if is_duplicate_client_id(error):
        return ErrorClass("unknown", "duplicate_client_id")
    for table, category in ((_RETRY, "retry"), (_UNKNOWN, "unknown"), (_FAILED, "failed")):
        for cls, code in table:
            if isinstance(error, cls):
                return ErrorClass(category, code)
    if type(error) is ccxt.ExchangeError:
        # ccxt raises a bare ExchangeError both for a venue body it cannot map (a rejection; its
        # message carries the body) and for transport errors of aiohttp (which may have executed)
        text = str(error)
        return ErrorClass("failed", "exchange_error") if "{" in text else ErrorClass("unknown", "transport")
    # anything else (a bug, an unexpected library error) may have happened after the request left
    return ErrorClass("unknown", "unexpected")


def reason(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line for events and messages: class and message, query strings and secrets removed."""
    text = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    text = _URL_QUERY.sub(r"\1", text)
    return redact(text[:500], secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
