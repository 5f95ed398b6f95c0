"""Venue-neutral account state and matching: balances per wallet, orders, trades, one-way positions.

Everything here is deterministic: time comes in as ``now_ms`` arguments, ids come from counters, and
prices come from the mid prices that tests set. The venue modules translate HTTP requests into calls
on :class:`VenueEngine` and its results back into each venue's JSON.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .wallets import WalletOps, wall_ms

if TYPE_CHECKING:
    from .chainlink import ChainLink

ZERO = Decimal(0)
ONE = Decimal(1)


def D(value: Any) -> Decimal:
    """Decimal from a str/int/Decimal (never from a float's binary expansion)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def round_down(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value / step) == (value / step).to_integral_value()


def fmt(value: Decimal | None, places: int | None = None) -> str:
    """Plain decimal string without exponent, e.g. ``'0.00100000'`` when ``places=8``."""
    if value is None:
        return ""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return f"{value:f}"
    text = f"{value.normalize():f}"
    return text


@dataclass
class MarketSpec:
    """One instrument: units, precision and limits as the venue publishes them."""

    symbol: str  # ccxt unified symbol, e.g. 'ETH/USDT' or 'ETH/USDT:USDT'
    venue_id: str  # the venue's own id, e.g. 'ETHUSDT' or 'ETH-USDT-SWAP'
    kind: str  # 'spot' or 'perp'
    base: str
    quote: str
    tick: Decimal
    step: Decimal  # quantity step in venue units (base units, or contracts on OKX swaps)
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal = ZERO
    contract_size: Decimal = ONE  # base units per venue quantity unit
    max_leverage: int = 100
    settle: str | None = None

    @property
    def contract(self) -> bool:
        return self.kind == "perp"


@dataclass
class FeeSchedule:
    maker: Decimal
    taker: Decimal


@dataclass
class Order:
    key: str  # internal unique key
    order_id: str
    client_id: str
    symbol: str
    kind: str
    side: str  # 'buy' | 'sell'
    type: str  # 'market' | 'limit'
    time_in_force: str  # 'GTC' | 'IOC' | 'FOK' | 'PO'
    qty: Decimal | None  # venue units; None for a quote-amount market order
    quote_qty: Decimal | None
    price: Decimal | None
    reduce_only: bool
    created_ms: int
    updated_ms: int
    seq: int
    status: str = "new"  # new | partially_filled | filled | canceled | expired | rejected
    filled: Decimal = ZERO
    cum_quote: Decimal = ZERO
    fee: Decimal = ZERO
    fee_asset: str = ""
    locked_asset: str = ""
    locked: Decimal = ZERO
    contract_size: Decimal = ONE
    trade_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "partially_filled")

    @property
    def remaining(self) -> Decimal:
        if self.qty is None:
            return ZERO
        return self.qty - self.filled

    @property
    def avg_price(self) -> Decimal:
        if self.filled == 0:
            return ZERO
        return self.cum_quote / (self.filled * self.contract_size)


@dataclass
class Trade:
    trade_id: str
    order_id: str
    client_id: str
    symbol: str
    kind: str
    side: str
    price: Decimal
    qty: Decimal  # venue units
    quote_qty: Decimal  # price * base amount
    fee: Decimal
    fee_asset: str
    maker: bool
    realized_pnl: Decimal
    ts: int
    seq: int


@dataclass
class Position:
    symbol: str
    size: Decimal = ZERO  # signed, venue units (contracts on OKX)
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0


class EngineError(Exception):
    """A request the venue rejects; ``reason`` is venue-neutral, the venue module picks the code."""

    def __init__(self, reason: str, message: str = "", **details: Any) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason
        self.details = details


@dataclass
class IdScheme:
    """How a venue spells order and trade ids, from per-(kind, symbol) counters."""

    order_id: Callable[[MarketSpec, int], str]
    trade_id: Callable[[MarketSpec, int], str]


@dataclass
class VenueConfig:
    name: str
    markets: list[MarketSpec]
    fees: dict[str, FeeSchedule]  # by kind
    wallets: dict[str, str]  # kind -> wallet name
    ids: IdScheme
    client_id_unique: str = "open"  # 'open' (Binance, OKX live orders) | 'always' (Bybit)
    default_leverage: int = 10
    # what a post-only order that would take does, by kind: 'reject' it, or accept and 'cancel' it
    post_only: dict[str, str] = field(default_factory=lambda: {"spot": "reject", "perp": "reject"})
    # wallet operations: where deposits land, which wallets a withdrawal draws from (in order)
    deposit_wallet: str = "spot"
    withdrawal_wallets: tuple[str, ...] = ("spot",)
    extra_wallets: tuple[str, ...] = ()  # wallets besides the trading ones (e.g. 'funding')
    # id formats of withdrawals / deposits / funding income entries, from counters
    wallet_ids: dict[str, Callable[[int], str]] = field(default_factory=dict)


class VenueEngine(WalletOps):
    """The state of one account at one venue; every public method is thread-safe."""

    def __init__(self, config: VenueConfig) -> None:
        self.config = config
        self.name = config.name
        self.lock = threading.RLock()
        self.deposit_wallet = config.deposit_wallet
        self.withdrawal_wallets = config.withdrawal_wallets
        self.wallet_id_formats = dict(config.wallet_ids)
        self.chain: ChainLink | None = None
        self.now_ms_source = wall_ms
        self.markets: dict[str, MarketSpec] = {m.symbol: m for m in config.markets}
        self._by_id: dict[tuple[str, str], MarketSpec] = {
            (m.kind, m.venue_id): m for m in config.markets
        }
        self.reset()

    # ----------------------------------------------------------------- setup and inspection
    def reset(self) -> None:
        with self.lock:
            self.balances: dict[tuple[str, str], Decimal] = {}
            self.mids: dict[str, Decimal] = {}
            self.fill_ratio: dict[str, Decimal] = {}
            self.leverage: dict[str, int] = {}
            self.orders: dict[str, Order] = {}
            self.trades: list[Trade] = []
            self.positions: dict[str, Position] = {}
            self._order_counters: dict[tuple[str, str], int] = {}
            self._trade_counters: dict[tuple[str, str], int] = {}
            self._seq = 0
            self.requests: list[dict[str, Any]] = []
            self.transfers: list[dict[str, Any]] = []
            self._reset_wallets()

    def market(self, symbol: str) -> MarketSpec:
        try:
            return self.markets[symbol]
        except KeyError:
            raise EngineError("unknown_symbol", f"unknown symbol {symbol}") from None

    def market_by_id(self, kind: str, venue_id: str) -> MarketSpec:
        try:
            return self._by_id[(kind, venue_id)]
        except KeyError:
            raise EngineError("unknown_symbol", f"unknown {kind} instrument {venue_id}") from None

    def wallet_of(self, kind: str) -> str:
        return self.config.wallets[kind]

    def set_balance(self, wallet: str, asset: str, amount: Any) -> None:
        with self.lock:
            self.balances[(wallet, asset)] = D(amount)

    def set_mid(self, symbol: str, price: Any, now_ms: int = 0) -> list[Trade]:
        """Move the mid price; resting limit orders that it crosses fill as makers at their price."""
        with self.lock:
            m = self.market(symbol)
            self.mids[symbol] = D(price)
            fills: list[Trade] = []
            for order in sorted(self._open_orders(symbol), key=lambda o: o.seq):
                assert order.price is not None
                crossed = (order.side == "buy" and order.price >= self.mids[symbol]) or (
                    order.side == "sell" and order.price <= self.mids[symbol]
                )
                if crossed:
                    qty = self._ratio_qty(m, order.remaining)
                    if qty > 0:
                        fills.append(self._fill(order, qty, order.price, maker=True, now_ms=now_ms))
            return fills

    def set_fill_ratio(self, symbol: str, ratio: Any) -> None:
        """Each match event fills only this fraction of what is left (rounded down to the step)."""
        with self.lock:
            value = D(ratio)
            if not ZERO < value <= ONE:
                raise ValueError("fill ratio must be in (0, 1]")
            self.fill_ratio[symbol] = value

    def set_leverage(self, symbol: str, leverage: int) -> None:
        with self.lock:
            self.leverage[symbol] = int(leverage)

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.config.default_leverage)

    def mid(self, symbol: str) -> Decimal:
        try:
            return self.mids[symbol]
        except KeyError:
            raise EngineError("no_price", f"no mid price set for {symbol}") from None

    def fill_resting(self, order: Order, qty: Any | None = None, price: Any | None = None,
                     now_ms: int = 0) -> Trade:
        """Fill (part of) a resting order as maker, e.g. to produce a partial fill on purpose."""
        with self.lock:
            if not order.is_open:
                raise EngineError("order_not_open", "order is not open")
            amount = order.remaining if qty is None else min(D(qty), order.remaining)
            fill_price = order.price if price is None else D(price)
            assert fill_price is not None
            return self._fill(order, amount, fill_price, maker=True, now_ms=now_ms)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the account: balances, orders, trades and positions (venue units)."""
        with self.lock:
            balances: dict[str, dict[str, dict[str, Decimal]]] = {}
            for (wallet, asset), total in sorted(self.balances.items()):
                free = self.available(wallet, asset)
                balances.setdefault(wallet, {})[asset] = {
                    "total": total,
                    "free": free,
                    "used": total - free,
                    "locked": self._locked(wallet, asset),
                }
            positions = {}
            for sym, pos in sorted(self.positions.items()):
                if pos.size == 0:
                    continue
                m = self.markets[sym]
                positions[sym] = {
                    "symbol": sym,
                    "size": pos.size,
                    "base_amount": pos.size * m.contract_size,
                    "side": "long" if pos.size > 0 else "short",
                    "entry_price": pos.entry_price,
                    "realized_pnl": pos.realized_pnl,
                    "unrealized_pnl": self._upnl(m, pos),
                    "leverage": self.leverage_of(sym),
                }
            return {
                "venue": self.name,
                "balances": balances,
                "orders": [copy.deepcopy(o) for o in sorted(self.orders.values(), key=lambda o: o.seq)],
                "trades": [copy.deepcopy(t) for t in self.trades],
                "positions": positions,
                "transfers": copy.deepcopy(self.transfers),
                "mids": dict(self.mids),
                "withdrawals": [copy.deepcopy(w) for w in self._withdrawals],
                "deposits": [copy.deepcopy(d) for d in self._deposits],
                "incomes": [copy.deepcopy(i) for i in self.incomes],
            }

    @property
    def wallet_names(self) -> list[str]:
        return sorted(set(self.config.wallets.values()) | set(self.config.extra_wallets))

    def move_funds(self, src: str, dst: str, asset: str, amount: Decimal, now_ms: int,
                   transfer_id: str | None = None) -> dict[str, Any]:
        """An internal transfer between two wallets of the account (checks the available balance)."""
        with self.lock:
            if amount <= 0:
                raise EngineError("bad_param", "transfer amount must be positive")
            if src == dst:
                raise EngineError("same_wallet", "from and to wallet are the same")
            if transfer_id and any(t.get("transfer_id") == transfer_id for t in self.transfers):
                raise EngineError("duplicate_transfer", "transfer id exists")
            if self.available(src, asset) < amount:
                raise EngineError("insufficient_balance", f"insufficient {asset} balance", asset=asset)
            self._credit(src, asset, -amount)
            self._credit(dst, asset, amount)
            entry = {"tranId": len(self.transfers) + 1, "from": src, "to": dst, "asset": asset,
                     "amount": amount, "ts": now_ms, "transfer_id": transfer_id or ""}
            self.transfers.append(entry)
            return dict(entry)

    def mark_price(self, symbol: str) -> Decimal:
        """The mark price the venue reports: the mid."""
        return self.mid(symbol)

    def settle_funding(self, symbol: str, rate: Any, mark: Any | None = None,
                       ts_ms: int | None = None) -> Any:
        """Settle one funding interval on the open position of the perp ``symbol``.

        amount = -position(base units, signed) * mark * rate, credited (or debited) on the margin
        wallet in the settle asset and recorded as an income entry (see :meth:`funding_history`).
        """
        from .wallets import IncomeEntry

        with self.lock:
            m = self.market(symbol)
            if not m.contract or m.settle is None:
                raise EngineError("bad_param", f"{symbol} is not a perpetual")
            pos = self.positions.get(symbol)
            if pos is None or pos.size == 0:
                raise EngineError("no_position", f"no open position on {symbol}")
            rate_d = D(rate)
            mark_d = self.mark_price(symbol) if mark is None else D(mark)
            base = pos.size * m.contract_size
            amount = -base * mark_d * rate_d
            wallet = self.wallet_of(m.kind)
            self._credit(wallet, m.settle, amount)
            n = self._count("income")
            entry = IncomeEntry(income_id=self._wallet_id("income", n), symbol=symbol, asset=m.settle,
                                amount=amount, rate=rate_d, mark=mark_d, position=base,
                                ts=self._now() if ts_ms is None else int(ts_ms), seq=n, wallet=wallet,
                                balance_after=self.balances.get((wallet, m.settle), ZERO))
            self.incomes.append(entry)
            return copy.deepcopy(entry)

    # ----------------------------------------------------------------- balances and margin
    def _open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def open_orders(self, symbol: str | None = None, kind: str | None = None) -> list[Order]:
        with self.lock:
            found = [o for o in self._open_orders(symbol) if kind is None or o.kind == kind]
            return sorted(found, key=lambda o: o.seq)

    def _locked(self, wallet: str, asset: str) -> Decimal:
        total = ZERO
        for o in self.orders.values():
            if o.is_open and o.locked_asset == asset and self.wallet_of(o.kind) == wallet:
                total += o.locked
        return total

    def _upnl(self, m: MarketSpec, pos: Position) -> Decimal:
        mid = self.mids.get(m.symbol, pos.entry_price)
        return (mid - pos.entry_price) * pos.size * m.contract_size

    def position_im(self, wallet: str, asset: str) -> Decimal:
        total = ZERO
        for sym, pos in self.positions.items():
            m = self.markets[sym]
            if pos.size != 0 and self.wallet_of(m.kind) == wallet and m.settle == asset:
                total += abs(pos.size) * m.contract_size * pos.entry_price / self.leverage_of(sym)
        return total

    def order_im(self, wallet: str, asset: str) -> Decimal:
        total = ZERO
        for o in self.orders.values():
            m = self.markets[o.symbol]
            if o.is_open and m.contract and not o.reduce_only and m.settle == asset and \
                    self.wallet_of(m.kind) == wallet and o.price is not None:
                total += o.remaining * m.contract_size * o.price / self.leverage_of(o.symbol)
        return total

    def unrealized_pnl(self, wallet: str, asset: str) -> Decimal:
        total = ZERO
        for sym, pos in self.positions.items():
            m = self.markets[sym]
            if pos.size != 0 and self.wallet_of(m.kind) == wallet and m.settle == asset:
                total += self._upnl(m, pos)
        return total

    def available(self, wallet: str, asset: str) -> Decimal:
        total = self.balances.get((wallet, asset), ZERO)
        return (
            total
            - self._locked(wallet, asset)
            - self.position_im(wallet, asset)
            - self.order_im(wallet, asset)
        )

    def _credit(self, wallet: str, asset: str, amount: Decimal) -> None:
        self.balances[(wallet, asset)] = self.balances.get((wallet, asset), ZERO) + amount

    # ----------------------------------------------------------------- lookups
    def find_order(self, symbol: str | None, order_id: str | None = None,
                   client_id: str | None = None, kind: str | None = None) -> Order:
        """The order by venue id, or the latest one with that client id (as all three venues do)."""
        with self.lock:
            candidates = [
                o for o in self.orders.values()
                if (symbol is None or o.symbol == symbol) and (kind is None or o.kind == kind)
            ]
            if order_id:
                found = [o for o in candidates if o.order_id == order_id]
            elif client_id:
                found = [o for o in candidates if o.client_id == client_id]
            else:
                found = []
            if not found:
                raise EngineError("order_not_found", "order does not exist")
            return max(found, key=lambda o: o.seq)

    def trades_for(self, symbol: str | None = None, kind: str | None = None,
                   order_id: str | None = None) -> list[Trade]:
        with self.lock:
            return [
                t for t in self.trades
                if (symbol is None or t.symbol == symbol) and (kind is None or t.kind == kind)
                and (order_id is None or t.order_id == order_id)
            ]

    def position(self, symbol: str) -> Position:
        with self.lock:
            return self.positions.setdefault(symbol, Position(symbol=symbol))

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    # ----------------------------------------------------------------- orders
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _ratio_qty(self, m: MarketSpec, qty: Decimal) -> Decimal:
        ratio = self.fill_ratio.get(m.symbol, ONE)
        if ratio >= ONE:
            return qty
        return round_down(qty * ratio, m.step)

    def submit(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        qty: Decimal | None,
        price: Decimal | None = None,
        quote_qty: Decimal | None = None,
        client_id: str,
        time_in_force: str = "GTC",
        reduce_only: bool = False,
        now_ms: int,
        extra: dict[str, Any] | None = None,
    ) -> Order:
        """Validate, accept and match one order; raises :class:`EngineError` on rejection."""
        with self.lock:
            m = self.market(symbol)
            side = side.lower()
            type = type.lower()
            if side not in ("buy", "sell"):
                raise EngineError("bad_param", f"invalid side {side}")
            if type not in ("market", "limit"):
                raise EngineError("bad_order_type", f"unsupported order type {type}")
            if client_id and self._client_id_taken(m, client_id):
                raise EngineError("duplicate_client_id", "duplicate client order id")
            if type == "limit":
                if price is None or price <= 0:
                    raise EngineError("bad_price", "price is required for a limit order")
                if not is_multiple(price, m.tick):
                    raise EngineError("tick_size", "price is not a multiple of the tick size")
            if qty is not None:
                if qty <= 0 or not is_multiple(qty, m.step):
                    raise EngineError("lot_size", "quantity is not a multiple of the step")
                if qty < m.min_qty:
                    raise EngineError("min_qty", "quantity below the minimum")
                if qty > m.max_qty:
                    raise EngineError("max_qty", "quantity above the maximum")
            elif quote_qty is None or quote_qty <= 0:
                raise EngineError("bad_param", "quantity is required")
            mid = self.mid(symbol)
            ref_price = price if type == "limit" else mid
            assert ref_price is not None
            notional = (qty * m.contract_size * ref_price) if qty is not None else quote_qty
            assert notional is not None
            if m.min_notional and notional < m.min_notional and not reduce_only:
                raise EngineError("min_notional", "order value below the minimum notional")
            crosses = type == "market" or (
                price is not None and ((side == "buy" and price >= mid) or (side == "sell" and price <= mid))
            )
            post_only_cancel = False
            if time_in_force == "PO" and crosses:
                if self.config.post_only.get(m.kind, "reject") == "reject":
                    raise EngineError("post_only_would_take", "post-only order would take liquidity")
                post_only_cancel = True
            if m.contract:
                qty = self._check_perp(m, side, qty, ref_price, reduce_only)
            else:
                self._check_spot(m, side, type, qty, quote_qty, ref_price)

            n = self._order_counters.get((m.kind, m.symbol), 0) + 1
            self._order_counters[(m.kind, m.symbol)] = n
            order = Order(
                key=f"{m.kind}:{m.symbol}:{n}",
                order_id=self.config.ids.order_id(m, n),
                client_id=client_id,
                symbol=symbol,
                kind=m.kind,
                side=side,
                type=type,
                time_in_force=time_in_force,
                qty=qty,
                quote_qty=quote_qty,
                price=price,
                reduce_only=reduce_only,
                created_ms=now_ms,
                updated_ms=now_ms,
                seq=self._next_seq(),
                contract_size=m.contract_size,
                extra=dict(extra or {}),
            )
            if not m.contract and type == "limit":
                assert qty is not None and price is not None
                if side == "buy":
                    order.locked_asset, order.locked = m.quote, qty * price
                else:
                    order.locked_asset, order.locked = m.base, qty
            self.orders[order.key] = order
            if post_only_cancel:
                order.extra["cancel_reason"] = "post_only"
                self._finish(order, "expired", now_ms)
                return order
            self._match_new(m, order, mid, now_ms)
            return order

    def _client_id_taken(self, m: MarketSpec, client_id: str) -> bool:
        for o in self.orders.values():
            if o.client_id != client_id:
                continue
            if self.config.client_id_unique == "always":
                return True
            if o.is_open and o.symbol == m.symbol:
                return True
        return False

    def _check_spot(self, m: MarketSpec, side: str, type: str, qty: Decimal | None,
                    quote_qty: Decimal | None, ref_price: Decimal) -> None:
        wallet = self.wallet_of(m.kind)
        if side == "buy":
            need = quote_qty if qty is None else qty * ref_price
            assert need is not None
            if self.available(wallet, m.quote) < need:
                raise EngineError("insufficient_balance", f"insufficient {m.quote} balance",
                                  asset=m.quote)
        else:
            need = qty if qty is not None else round_down(D(quote_qty) / ref_price, m.step)
            if self.available(wallet, m.base) < need:
                raise EngineError("insufficient_balance", f"insufficient {m.base} balance",
                                  asset=m.base)

    def _check_perp(self, m: MarketSpec, side: str, qty: Decimal | None, ref_price: Decimal,
                    reduce_only: bool) -> Decimal:
        if qty is None:
            raise EngineError("bad_param", "contracts need a quantity")
        pos = self.positions.get(m.symbol, Position(symbol=m.symbol))
        signed = qty if side == "buy" else -qty
        if reduce_only:
            if pos.size == 0 or (pos.size > 0) == (signed > 0):
                raise EngineError("reduce_only_rejected", "reduce-only order would not reduce")
            return min(qty, abs(pos.size))
        # Only the part that opens or increases exposure needs margin.
        increase = qty
        if pos.size != 0 and (pos.size > 0) != (signed > 0):
            increase = max(ZERO, qty - abs(pos.size))
        wallet = self.wallet_of(m.kind)
        assert m.settle is not None
        fee = self.config.fees[m.kind].taker
        need = increase * m.contract_size * ref_price * (ONE / self.leverage_of(m.symbol) + fee)
        if need > 0 and self.available(wallet, m.settle) < need:
            raise EngineError("insufficient_balance", f"insufficient {m.settle} margin",
                              asset=m.settle)
        return qty

    def _match_new(self, m: MarketSpec, order: Order, mid: Decimal, now_ms: int) -> None:
        crosses = order.type == "market" or (
            order.price is not None
            and ((order.side == "buy" and order.price >= mid)
                 or (order.side == "sell" and order.price <= mid))
        )
        if order.qty is None:
            # a quote-amount market order: the venue converts the amount at the execution price
            assert order.quote_qty is not None
            order.qty = round_down(order.quote_qty / mid, m.step)
        if crosses:
            want = order.remaining
            qty = self._ratio_qty(m, want)
            if order.time_in_force == "FOK" and qty < want:
                qty = ZERO
            if qty > 0:
                self._fill(order, qty, mid, maker=False, now_ms=now_ms)
        if order.is_open and (order.type == "market" or order.time_in_force in ("IOC", "FOK")):
            self._finish(order, "expired", now_ms)

    def _finish(self, order: Order, status: str, now_ms: int) -> None:
        order.status = status
        order.locked = ZERO
        order.updated_ms = now_ms

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool, now_ms: int) -> Trade:
        m = self.markets[order.symbol]
        fees = self.config.fees[m.kind]
        rate = fees.maker if maker else fees.taker
        wallet = self.wallet_of(m.kind)
        base_amount = qty * m.contract_size
        quote_amount = base_amount * price
        realized = ZERO
        if m.contract:
            assert m.settle is not None
            fee_asset = m.settle
            fee = quote_amount * rate
            realized = self._apply_position(m, order.side, qty, price, now_ms)
            self._credit(wallet, m.settle, realized - fee)
        elif order.side == "buy":
            fee_asset = m.base
            fee = base_amount * rate
            self._credit(wallet, m.quote, -quote_amount)
            self._credit(wallet, m.base, base_amount - fee)
            if order.locked_asset:
                assert order.price is not None
                order.locked = max(ZERO, order.locked - qty * order.price)
        else:
            fee_asset = m.quote
            fee = quote_amount * rate
            self._credit(wallet, m.base, -base_amount)
            self._credit(wallet, m.quote, quote_amount - fee)
            if order.locked_asset:
                order.locked = max(ZERO, order.locked - qty)
        n = self._trade_counters.get((m.kind, m.symbol), 0) + 1
        self._trade_counters[(m.kind, m.symbol)] = n
        trade = Trade(
            trade_id=self.config.ids.trade_id(m, n),
            order_id=order.order_id,
            client_id=order.client_id,
            symbol=m.symbol,
            kind=m.kind,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote_amount,
            fee=fee,
            fee_asset=fee_asset,
            maker=maker,
            realized_pnl=realized,
            ts=now_ms,
            seq=self._next_seq(),
        )
        self.trades.append(trade)
        order.filled += qty
        order.cum_quote += quote_amount
        order.fee += fee
        order.fee_asset = fee_asset
        order.trade_ids.append(trade.trade_id)
        order.updated_ms = now_ms
        if order.qty is not None and order.filled >= order.qty:
            self._finish(order, "filled", now_ms)
        else:
            order.status = "partially_filled"
        return trade

    def _apply_position(self, m: MarketSpec, side: str, qty: Decimal, price: Decimal,
                        now_ms: int) -> Decimal:
        pos = self.positions.setdefault(m.symbol, Position(symbol=m.symbol))
        signed = qty if side == "buy" else -qty
        realized = ZERO
        if pos.size == 0:
            pos.size, pos.entry_price, pos.created_ms = signed, price, now_ms
        elif (pos.size > 0) == (signed > 0):
            total = pos.size + signed
            pos.entry_price = (pos.entry_price * abs(pos.size) + price * qty) / abs(total)
            pos.size = total
        else:
            closing = min(qty, abs(pos.size))
            direction = ONE if pos.size > 0 else -ONE
            realized = (price - pos.entry_price) * closing * direction * m.contract_size
            remainder = qty - closing
            pos.size += closing * (-direction)
            if pos.size == 0 and remainder > 0:
                pos.size = remainder * (-direction)
                pos.entry_price = price
                pos.created_ms = now_ms
            elif pos.size == 0:
                pos.entry_price = ZERO
        pos.realized_pnl += realized
        pos.updated_ms = now_ms
        return realized

    def cancel(self, order: Order, now_ms: int) -> Order:
        with self.lock:
            if not order.is_open:
                raise EngineError("order_not_open", "order is already closed")
            self._finish(order, "canceled", now_ms)
            return order

    def cancel_all(self, symbol: str | None, kind: str | None, now_ms: int) -> list[Order]:
        with self.lock:
            cancelled = []
            for order in self.open_orders(symbol, kind):
                self._finish(order, "canceled", now_ms)
                cancelled.append(order)
            return cancelled
