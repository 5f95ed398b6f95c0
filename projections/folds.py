"""Pure folds: `apply(state, event) -> state`, the same live, in backtests and in replays (SPEC §4).

Each handler changes the state for one event type and names what it changed in `state.dirty`
so the SQL view writes only those rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

from aggregates.transitions import next_state
from aggregates.values import MONEY, Instrument, parse_instrument
from projections.prices import mark_keys, underlying, usd_price
from projections.reports import equity
from projections.state import ZERO, Fill, LedgerState, Order, Position, Transit

EQUITY_EVERY = timedelta(hours=1)
Handler = Callable[[LedgerState, str, Any], None]


def apply(state: LedgerState, event: Any) -> LedgerState:
    """Fold one event into `state` (mutated in place and returned)."""
    name = type(event).__name__
    stream = event.originator_id
    if name == "Opened":
        state.streams[stream] = event.venue
        state.dirty.add(("streams", stream))
    venue = state.streams.get(stream, "")
    handler = HANDLERS.get(name)
    # The caller's decimal context is not ours to trust (ccxt changes the thread's context).
    with localcontext(MONEY):
        if handler is not None:
            handler(state, venue, event)
    state.events += 1
    ts = getattr(event, "ts_event", None)
    if ts is not None and (state.last_ts is None or ts > state.last_ts):
        state.last_ts = ts
        with localcontext(MONEY):
            _sample_equity(state, ts)
    return state


def fold(events: Any, state: LedgerState | None = None) -> LedgerState:
    """Fold an iterable of events (or (notification id, event) pairs) from scratch or onto `state`."""
    state = state if state is not None else LedgerState()
    for item in events:
        apply(state, item[1] if isinstance(item, tuple) else item)
    return state


# ---- helpers -------------------------------------------------------------------------------------

def _add(state: LedgerState, venue: str, wallet: str, asset: str, delta: Decimal) -> None:
    key = (venue, wallet, asset)
    state.balances[key] = MONEY.add(state.balances.get(key, ZERO), delta)
    state.dirty.add(("balances", key))


def _book(state: LedgerState, book: str, venue: str, wallet: str, asset: str, delta: Decimal) -> None:
    if book == "balance":
        _add(state, venue, wallet, asset, delta)
        return
    target = state.supplied if book == "supplied" else state.borrowed
    key = (venue, asset)
    target[key] = MONEY.add(target.get(key, ZERO), delta)
    state.dirty.add((book, key))


def _pnl(state: LedgerState, line: str, asset: str, amount: Decimal) -> None:
    key = (line, asset)
    state.pnl[key] = MONEY.add(state.pnl.get(key, ZERO), amount)
    price = usd_price(state.marks, asset)
    if price is not None:
        state.pnl_usd[line] = MONEY.add(state.pnl_usd.get(line, ZERO), MONEY.multiply(amount, price))
    state.dirty.add(("pnl", key))
    state.dirty.add(("pnl_usd", line))


def _mark(state: LedgerState, key: str, value: Decimal) -> None:
    before = state.marks.get(key)
    if before != value:
        state.marks[key] = value
        state.dirty.add(("marks", key))
        if before is not None and key.startswith("rate:"):
            _staking_reward(state, key[5:], value - before)


def _staking_reward(state: LedgerState, token: str, change: Decimal) -> None:
    """A receipt token's rate rising is its staking reward: held units times the rate change."""
    held = sum((x for (_v, _w, a), x in state.balances.items() if a == token), ZERO)
    held += sum((x for (_v, a), x in state.supplied.items() if a == token), ZERO)
    if held:
        _pnl(state, "rewards", underlying(token), MONEY.multiply(held, change))


def _status(state: LedgerState, instruction_id: str, event: str) -> Order | None:
    order = state.orders.get(instruction_id)
    if order is None:
        return None
    current = order.status or None
    order.status = str(next_state(instruction_id, current, event))  # type: ignore[arg-type]
    state.dirty.add(("orders", instruction_id))
    return order


def _sample_equity(state: LedgerState, ts: Any) -> None:
    if not state.marks:
        return  # nothing is priced yet: an equity of unpriced holdings would be a false zero
    due = state.equity_due
    if due is None and state.equity:
        due = state.equity_due = datetime.fromisoformat(state.equity[-1][0]) + EQUITY_EVERY
    if due is None or ts >= due:
        stamp = ts.isoformat()
        state.equity.append((stamp, equity(state)))
        state.dirty.add(("equity", stamp))
        state.equity_due = ts + EQUITY_EVERY


# ---- balance movements ---------------------------------------------------------------------------

def _deposited(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.amount)


def _withdrawn(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, -e.amount)


def _adjusted(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.delta)


def _observed(state: LedgerState, venue: str, e: Any) -> None:
    key = (venue, e.wallet, e.asset)
    state.observed[key] = e.difference
    state.dirty.add(("observed", key))


def _market(state: LedgerState, venue: str, e: Any) -> None:
    for key, value in e.market.items():
        for mark, price in mark_keys(key, value):
            _mark(state, mark, price)


# ---- instructions and orders ---------------------------------------------------------------------

def _accepted(state: LedgerState, venue: str, e: Any) -> None:
    ins = e.instruction
    state.orders[e.instruction_id] = Order(
        venue=venue, kind=ins.get("kind", ""), instrument=ins.get("instrument", ""),
        side=ins.get("side", ""), amount=Decimal(ins.get("amount") or 0),
        wallet=ins.get("wallet", ""), status="ACCEPTED", ts_accepted=e.ts_event.isoformat(),
    )
    state.dirty.add(("orders", e.instruction_id))
    for key, value in e.market.items():
        for mark, price in mark_keys(key, value):
            _mark(state, mark, price)


def _rejected(state: LedgerState, venue: str, e: Any) -> None:
    order = state.orders.get(e.instruction_id)
    if order is None:
        received = e.received
        state.orders[e.instruction_id] = Order(
            venue=venue, kind=received.get("kind", received.get("operation", "")),
            instrument=received.get("instrument", received.get("pair", "")), side="",
            amount=ZERO, wallet="", status="REJECTED", ts_accepted=e.ts_event.isoformat(),
            code=e.code,
        )
        state.dirty.add(("orders", e.instruction_id))
        return
    _status(state, e.instruction_id, "InstructionRejected")
    order.code = e.code


def _lifecycle(name: str) -> Handler:
    def handle(state: LedgerState, venue: str, e: Any) -> None:
        _status(state, e.instruction_id, name)
    return handle


def _failed(state: LedgerState, venue: str, e: Any) -> None:
    order = _status(state, e.instruction_id, "OrderFailed")
    if order is not None:
        order.code = e.code


def _reconciled(state: LedgerState, venue: str, e: Any) -> None:
    _status(state, e.instruction_id, f"OrderReconciled.{e.outcome}")


def _filled(state: LedgerState, venue: str, e: Any) -> None:
    inst = _instrument(e.instrument)
    qty, price = e.quantity, e.price
    notional = MONEY.multiply(qty, price)
    perp = e.market_type == "perp"
    if not perp:
        sign = Decimal(1) if e.side == "buy" else Decimal(-1)
        _add(state, venue, e.wallet, inst.base, sign * qty)
        _add(state, venue, e.wallet, inst.quote, -sign * notional)
    realised = _position(state, venue, e.instrument, e.market_type, e.side, qty, price, e.fee)
    if perp and realised:
        _add(state, venue, e.wallet, inst.settle, realised)
    if realised:
        _pnl(state, "realised", inst.settle, realised)
    if e.fee:
        _add(state, venue, e.wallet, e.fee_asset, -e.fee)
        _pnl(state, "fees", e.fee_asset, -e.fee)
    _mark(state, f"{'perp' if perp else 'spot'}:{venue}:{inst.base}", price)
    order = state.orders.get(e.instruction_id)
    if order is not None:
        order.filled += qty
        order.notional += notional
        order.fees += e.fee
        amount = order.amount
        kind = "OrderFilled.complete" if amount and order.filled >= amount else "OrderFilled.partial"
        _status(state, e.instruction_id, kind)
    state.fills_count += 1
    fill = Fill(venue, e.market_type, e.instrument, e.trade_id, e.instruction_id, e.side, qty,
                price, e.fee, e.fee_asset, e.ts_event.isoformat())
    state.new_fills.append(fill)


def _position(state: LedgerState, venue: str, instrument: str, market_type: str, side: str,
              qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    """One-way position update; a flip splits into a close and an open. Returns realised P&L."""
    key = (venue, instrument)
    pos = state.positions.get(key)
    if pos is None:
        pos = state.positions[key] = Position(market_type=market_type)
    state.dirty.add(("positions", key))
    pos.fees += fee
    signed = qty if side == "buy" else -qty
    q = pos.quantity
    realised = ZERO
    if q == 0 or (q > 0) == (signed > 0):
        total = abs(q) + qty
        pos.avg_entry = MONEY.divide(abs(q) * pos.avg_entry + qty * price, total)
        pos.quantity = q + signed
        return realised
    closing = min(qty, abs(q))
    direction = Decimal(1) if q > 0 else Decimal(-1)
    realised = MONEY.multiply(closing * (price - pos.avg_entry), direction)
    pos.realised += realised
    pos.quantity = q + signed
    if pos.quantity == 0:
        pos.avg_entry = ZERO
    elif (pos.quantity > 0) != (q > 0):
        pos.avg_entry = price
    return realised


# ---- time-driven -----------------------------------------------------------------------------------

def _funding(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.amount)
    _pnl(state, "funding", e.asset, e.amount)
    base = _instrument(e.instrument).base
    _mark(state, f"perp:{venue}:{base}", e.mark_price)


def _interest(state: LedgerState, venue: str, e: Any) -> None:
    book = "supplied" if e.side == "supplied" else "borrowed"
    _book(state, book, venue, "", e.asset, e.amount)
    _pnl(state, "interest", e.asset, e.amount if book == "supplied" else -e.amount)


def _reward(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.amount)
    _pnl(state, "rewards", e.asset, e.amount)


# ---- on chain --------------------------------------------------------------------------------------

# effect kind -> list of (book, sign, which asset field) applied to the effect's amount
EFFECTS: dict[str, tuple[tuple[str, int, str, str], ...]] = {
    "supplied": (("balance", -1, "asset", "amount"), ("supplied", 1, "asset", "amount")),
    "withdrawn": (("supplied", -1, "asset", "amount"), ("balance", 1, "asset", "amount")),
    "borrowed": (("borrowed", 1, "asset", "amount"), ("balance", 1, "asset", "amount")),
    "repaid": (("borrowed", -1, "asset", "amount"), ("balance", -1, "asset", "amount")),
    "staked": (("balance", -1, "asset", "amount"), ("balance", 1, "receipt_asset", "receipt_amount")),
    "unstake_requested": (("balance", -1, "receipt_asset", "receipt_amount"),
                          ("pending", 1, "asset", "amount")),
    "unstaked": (("pending", -1, "asset", "amount"), ("balance", 1, "asset", "amount")),
    "wrapped": (("balance", -1, "asset", "amount"), ("balance", 1, "receipt_asset", "amount")),
    "unwrapped": (("balance", -1, "receipt_asset", "amount"), ("balance", 1, "asset", "amount")),
    "sent": (("balance", -1, "asset", "amount"),),
    "transfer_out": (),  # a live transfer's chain leg: `TransferSent` books it
    "received": (("balance", 1, "asset", "amount"),),
    "approved": (),
    # a liquidator repaid `amount` of our debt and took `receipt_amount` of our collateral
    "liquidated": (("borrowed", -1, "asset", "amount"), ("supplied", -1, "receipt_asset", "receipt_amount")),
}


def _effect_deltas(e: Any, order: Order | None) -> list[tuple[str, str, str, str, Decimal]]:
    deltas: list[tuple[str, str, str, str, Decimal]] = []
    default_wallet = order.wallet if order else ""
    for effect in e.effects:
        wallet = effect.get("wallet", default_wallet)
        for book, sign, asset_field, amount_field in EFFECTS.get(effect.get("kind", ""), ()):
            amount = Decimal(effect[amount_field]) * sign
            target = "balance" if book == "pending" else book
            wallet_key = f"{wallet}:unstaking" if book == "pending" else wallet
            deltas.append((target, wallet_key, effect[asset_field], "effect", amount))
    if e.gas_fee:
        deltas.append(("balance", default_wallet, "ETH", "gas", -e.gas_fee))
    return deltas


def _confirmed(state: LedgerState, venue: str, e: Any) -> None:
    order = state.orders.get(e.instruction_id)
    deltas = _effect_deltas(e, order)
    for book, wallet, asset, why, amount in deltas:
        _book(state, book, venue, wallet, asset, amount)
        if why == "gas":
            _pnl(state, "gas", "ETH", amount)
    state.tx_effects[e.tx_hash] = deltas
    state.dirty.add(("tx_effects", e.tx_hash))
    _status(state, e.instruction_id, "TransactionConfirmed")


def _reverted(state: LedgerState, venue: str, e: Any) -> None:
    order = state.orders.get(e.instruction_id)
    if e.gas_fee:
        _add(state, venue, order.wallet if order else "", "ETH", -e.gas_fee)
        _pnl(state, "gas", "ETH", -e.gas_fee)
    _status(state, e.instruction_id, "TransactionReverted")


def _reorged(state: LedgerState, venue: str, e: Any) -> None:
    """Undo exactly what the confirmation applied; a later confirmation redoes it."""
    for book, wallet, asset, why, amount in state.tx_effects.pop(e.tx_hash, []):
        _book(state, book, venue, wallet, asset, -amount)
        if why == "gas":
            _pnl(state, "gas", "ETH", -amount)
    state.dirty.add(("tx_effects", e.tx_hash))
    _status(state, e.instruction_id, "TransactionReorged")


# ---- transfers -------------------------------------------------------------------------------------

def _sent(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.from_wallet, e.asset, -(e.amount + e.fee))
    if e.fee:
        _pnl(state, "fees", e.asset, -e.fee)
    state.transit[e.transfer_id] = Transit(venue, e.from_wallet, e.to_venue, e.to_wallet, e.asset,
                                           e.amount, e.instruction_id)
    state.dirty.add(("transit", e.transfer_id))
    _status(state, e.instruction_id, "TransferSent")


def _received(state: LedgerState, venue: str, e: Any) -> None:
    transit = state.transit.pop(e.transfer_id, None)
    state.dirty.add(("transit", e.transfer_id))
    _add(state, venue, e.wallet, e.asset, e.amount)
    if transit is not None and transit.instruction_id:
        _status(state, transit.instruction_id, "TransferReceived")


def _transfer_failed(state: LedgerState, venue: str, e: Any) -> None:
    transit = state.transit.pop(e.transfer_id, None)
    state.dirty.add(("transit", e.transfer_id))
    if transit is not None and e.refunded:
        _add(state, transit.from_venue, transit.from_wallet, transit.asset, e.refunded)
        if e.refunded > transit.amount:  # the venue gave the withdrawal fee back too
            _pnl(state, "fees", transit.asset, e.refunded - transit.amount)
    _status(state, e.instruction_id, "TransferFailed")


@lru_cache(maxsize=4096)
def _instrument(symbol: str) -> Instrument:
    return parse_instrument(symbol)


HANDLERS: dict[str, Handler] = {
    "FundsDeposited": _deposited,
    "FundsWithdrawn": _withdrawn,
    "BalanceAdjusted": _adjusted,
    "BalanceObserved": _observed,
    "InstructionAccepted": _accepted,
    "InstructionRejected": _rejected,
    "InstructionCompleted": _lifecycle("InstructionCompleted"),
    "OrderSubmitted": _lifecycle("OrderSubmitted"),
    "OrderAcknowledged": _lifecycle("OrderAcknowledged"),
    "OrderFilled": _filled,
    "CancelRequested": _lifecycle("CancelRequested"),
    "OrderCancelled": _lifecycle("OrderCancelled"),
    "OrderFailed": _failed,
    "OrderOutcomeUnknown": _lifecycle("OrderOutcomeUnknown"),
    "OrderReconciled": _reconciled,
    "TransactionSubmitted": _lifecycle("TransactionSubmitted"),
    "TransactionMined": _lifecycle("TransactionMined"),
    "TransactionConfirmed": _confirmed,
    "TransactionReverted": _reverted,
    "TransactionReplaced": _lifecycle("TransactionReplaced"),
    "TransactionDropped": _lifecycle("TransactionDropped"),
    "TransactionReorged": _reorged,
    "FundingSettled": _funding,
    "InterestAccrued": _interest,
    "RewardAccrued": _reward,
    "TransferSent": _sent,
    "TransferReceived": _received,
    "TransferFailed": _transfer_failed,
    "TransferObserved": lambda state, venue, e: None,  # ids and txids for the audit trail only
    "MarketObserved": _market,
}
