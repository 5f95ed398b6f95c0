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
from projections.prices import EPOCH, mark_keys, stamp, underlying, usd_price
from projections.reports import equity, held
from projections.state import EXACT, ZERO, Fill, LedgerState, Order, Position, Transit, exact_sum

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
    ts = getattr(event, "ts_event", None)
    if ts is not None and state.equity_due is not None and ts > state.equity_due:
        with localcontext(MONEY):
            _sample_equity(state)  # the hour that ended before this event, all its events folded
    handler = HANDLERS.get(name)
    if name in ("InstructionAccepted", "InstructionRejected") and "funded" not in state.pnl_usd:
        state.pnl_usd["funded"] = Decimal(1)  # the initial funding ends at the first instruction
        state.dirty.add(("pnl_usd", "funded"))
    # The caller's decimal context is not ours to trust (ccxt changes the thread's context).
    with localcontext(MONEY):
        if handler is not None:
            handler(state, venue, event)
    state.events += 1
    if ts is not None and (state.last_ts is None or ts > state.last_ts):
        state.last_ts = ts
    if ts is not None and state.marks and (state.equity_due is None or ts > state.equity_due):
        state.equity_due = hour_end(ts)
    return state


def hour_end(ts: datetime) -> datetime:
    """The end of the hour `ts` falls in; an event exactly on the hour belongs to the hour it ends."""
    base = EPOCH + ((ts - EPOCH) // EQUITY_EVERY) * EQUITY_EVERY
    return base if base == ts else base + EQUITY_EVERY


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


# ---- the P&L statement's books (README "Valuation") ----------------------------------------------
# In `state.pnl_usd`: each statement line in USD, "external" (deposits, withdrawals, adjustments at
# their marks), "initial" (the external flows of the funding, before the first instruction),
# "carried:HOLDING" (every flow into a holding at the price it entered at: fills at their price, the
# rest at the mark at its time) and "cost:ASSET" (the desk's pooled average-cost book for realised).
# In `state.pnl`: each line in its own units; "unpriced LINE" for amounts booked without a price.


def _usd(state: LedgerState, key: str, amount: Decimal) -> None:
    state.pnl_usd[key] = EXACT.add(state.pnl_usd.get(key, ZERO), amount)
    state.dirty.add(("pnl_usd", key))


def _units(state: LedgerState, line: str, asset: str, amount: Decimal) -> None:
    key = (line, asset)
    state.pnl[key] = MONEY.add(state.pnl.get(key, ZERO), amount)
    state.dirty.add(("pnl", key))


def _pnl(state: LedgerState, line: str, asset: str, amount: Decimal, held_change: bool = True,
         value: Decimal | None = None) -> Decimal | None:
    """Book an income (amount > 0) or expense (< 0) of `asset` on `line` at the mark of its time (or
    at `value`); the holding carries it. Returns the USD value, None when `asset` has no price."""
    _units(state, line, asset, amount)
    if value is None:
        price = usd_price(state.marks, asset)
        if price is None:
            _units(state, f"unpriced {line}", asset, amount)
            return None
        value = MONEY.multiply(amount, price)
    _usd(state, line, value)
    _usd(state, f"carried:{asset}", value)
    if held_change:
        _cost(state, asset, amount, value)
    return value


def _cost(state: LedgerState, asset: str, amount: Decimal, value: Decimal) -> Decimal:
    """Average-cost book of the desk's pooled `asset` after `amount` units came in (at `value`) or went
    out (at the average cost; returns the cost removed). Called after the units moved."""
    if amount >= 0:
        _usd(state, f"cost:{asset}", value)
        return ZERO
    before = held(state, asset) - amount
    book = state.pnl_usd.get(f"cost:{asset}", ZERO)
    if before <= 0:
        return ZERO
    removed = MONEY.multiply(book, MONEY.divide(min(-amount, before), before))
    _usd(state, f"cost:{asset}", -removed)
    return removed


def _external(state: LedgerState, asset: str, amount: Decimal) -> None:
    """A deposit, withdrawal or adjustment: equity moves, P&L does not. Units without a price during
    the funding enter at the first mark of their asset; later ones enter through revaluation."""
    funding = "funded" not in state.pnl_usd
    price = usd_price(state.marks, asset)
    if price is None:
        if funding:
            _units(state, "pending", asset, amount)
        return
    value = MONEY.multiply(amount, price)
    _usd(state, "external", value)
    _usd(state, f"carried:{asset}", value)
    _cost(state, asset, amount, value)
    if funding:
        _usd(state, "initial", value)


def _priced_pending(state: LedgerState) -> None:
    for (line, asset), amount in list(state.pnl.items()):
        if line == "pending" and amount and usd_price(state.marks, asset) is not None:
            _units(state, "pending", asset, -amount)
            if "funded" not in state.pnl_usd:
                _external(state, asset, amount)


def _mark(state: LedgerState, key: str, value: Decimal, ts: datetime | None = None,
          source: str = "px") -> None:
    if ts is not None:
        when = stamp(ts, source)
        seen = state.marks.get(f"at:{key}")
        if seen is not None and when < seen:
            return  # an older observation, or one of lower rank at the same time
        if seen != when:
            state.marks[f"at:{key}"] = when
            state.dirty.add(("marks", f"at:{key}"))
    before = state.marks.get(key)
    if before != value:
        state.marks[key] = value
        state.dirty.add(("marks", key))
        if before is not None and key.startswith("rate:"):
            _staking_reward(state, key[5:], value - before)
        if before is None and state.pnl:
            _priced_pending(state)


def _staking_reward(state: LedgerState, token: str, change: Decimal) -> None:
    """A receipt token's rate rising is its staking reward: held units times the rate change, valued at
    the underlying's mark (the token's holding carries it)."""
    units = sum((x for (_v, _w, a), x in state.balances.items() if a == token), ZERO)
    units += sum((x for (_v, a), x in state.supplied.items() if a == token), ZERO)
    if not units:
        return
    base = underlying(token)
    reward = MONEY.multiply(units, change)
    price = usd_price(state.marks, base)
    _units(state, "rewards", base, reward)
    if price is None:
        _units(state, "unpriced rewards", base, reward)
        return
    value = MONEY.multiply(reward, price)
    _usd(state, "rewards", value)
    _usd(state, f"carried:{token}", value)
    _usd(state, f"cost:{token}", value)


def _status(state: LedgerState, instruction_id: str, event: str) -> Order | None:
    order = state.orders.get(instruction_id)
    if order is None:
        return None
    current = order.status or None
    order.status = str(next_state(instruction_id, current, event))  # type: ignore[arg-type]
    state.dirty.add(("orders", instruction_id))
    return order


def _sample_equity(state: LedgerState) -> None:
    """Equity at the end of the hour `equity_due` (only set once something is priced)."""
    assert state.equity_due is not None
    when = state.equity_due.isoformat()
    state.equity.append((when, equity(state)))
    state.dirty.add(("equity", when))


# ---- balance movements ---------------------------------------------------------------------------

def _deposited(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.amount)
    _external(state, e.asset, e.amount)


def _withdrawn(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, -e.amount)
    _external(state, e.asset, -e.amount)


def _adjusted(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.wallet, e.asset, e.delta)
    _external(state, e.asset, e.delta)


def _observed(state: LedgerState, venue: str, e: Any) -> None:
    key = (venue, e.wallet, e.asset)
    state.observed[key] = e.difference
    state.dirty.add(("observed", key))


def _market(state: LedgerState, venue: str, e: Any) -> None:
    _marks(state, e.market, e.ts_event)


def _marks(state: LedgerState, market: Any, ts: datetime) -> None:
    """Market data: USD prices, venue spot prices (also the base's USD price), venue perp and mark
    prices, rates."""
    for key, value in market.items():
        for mark, price in mark_keys(key, value):
            kind = mark.split(":", 1)[0]
            if kind == "pmark":
                _mark(state, "perp" + mark[5:], price, ts, "pmark")
            elif kind == "spot":
                _mark(state, mark, price, ts, "spot")
                _mark(state, f"px:{mark.rsplit(':', 1)[1]}", price, ts, "spot")
            else:
                _mark(state, mark, price, ts, "perp" if kind == "perp" else "px")


# ---- instructions and orders ---------------------------------------------------------------------

def _accepted(state: LedgerState, venue: str, e: Any) -> None:
    ins = e.instruction
    state.orders[e.instruction_id] = Order(
        venue=venue, kind=ins.get("kind", ""), instrument=ins.get("instrument", ""),
        side=ins.get("side", ""), amount=Decimal(ins.get("amount") or 0),
        wallet=ins.get("wallet", ""), status="ACCEPTED", ts_accepted=e.ts_event.isoformat(),
    )
    state.dirty.add(("orders", e.instruction_id))
    _marks(state, e.market, e.ts_event)


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
    if perp:
        _perp_fill(state, venue, e, inst)
    else:
        _spot_fill(state, venue, e, inst, notional)
    if e.fee:
        _add(state, venue, e.wallet, e.fee_asset, -e.fee)
        _pnl(state, "fees", e.fee_asset, -e.fee)
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


def _spot_fill(state: LedgerState, venue: str, e: Any, inst: Instrument, notional: Decimal) -> None:
    """Spot is inventory: the base moves against the quote at the fill price; a sale realises the
    difference to the desk's average cost of the base (pooled over venues and wallets)."""
    sign = Decimal(1) if e.side == "buy" else Decimal(-1)
    _add(state, venue, e.wallet, inst.base, sign * e.quantity)
    _add(state, venue, e.wallet, inst.quote, -sign * notional)
    quote_price = usd_price(state.marks, inst.quote)
    if quote_price is None:
        return  # both legs unpriced at the fill: they enter through revaluation when priced
    if underlying(inst.quote) == "USD":
        _mark(state, f"px:{inst.base}", e.price * quote_price, e.ts_event, "fill")
    value = MONEY.multiply(notional, quote_price)
    _usd(state, f"carried:{inst.quote}", -sign * value)
    _usd(state, f"carried:{inst.base}", sign * value)
    _cost(state, inst.quote, -sign * notional, -sign * value)
    removed = _cost(state, inst.base, sign * e.quantity, value)
    before = held(state, inst.base) + e.quantity
    if sign < 0 and before > 0:
        sold = min(e.quantity, before)
        realised = MONEY.subtract(MONEY.multiply(value, MONEY.divide(sold, e.quantity)), removed)
        _usd(state, "realised", realised)
        _usd(state, f"realised:{inst.base}", realised)


def _perp_fill(state: LedgerState, venue: str, e: Any, inst: Instrument) -> None:
    realised = _position(state, venue, e.instrument, e.market_type, e.side, e.quantity, e.price, e.fee)
    _mark(state, f"perp:{venue}:{inst.base}", e.price, e.ts_event, "fill")
    if not realised:
        return
    _add(state, venue, e.wallet, inst.settle, realised)
    value = _pnl(state, "realised", inst.settle, realised)
    if value is not None:  # the position's holding gives what it realised to the settlement asset
        _usd(state, f"carried:perp:{venue}:{e.instrument}", -value)


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
    base = _instrument(e.instrument).base
    _mark(state, f"perp:{venue}:{base}", e.mark_price, e.ts_event, "pmark")
    _add(state, venue, e.wallet, e.asset, e.amount)
    _pnl(state, "funding", e.asset, e.amount)


def _interest(state: LedgerState, venue: str, e: Any) -> None:
    if e.side == "supplied":
        _book(state, "supplied", venue, "", e.asset, e.amount)
        _pnl(state, "supply_interest", e.asset, e.amount)
    else:
        _book(state, "borrowed", venue, "", e.asset, e.amount)
        _pnl(state, "borrow_cost", e.asset, -e.amount, held_change=False)


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


Row = tuple[str, str, str, str, Decimal]


def _effect_values(state: LedgerState, e: Any, deltas: list[Row]) -> list[Row]:
    """The statement's rows of a confirmed transaction (applied by `_apply_values`, undone by a reorg):
    gas is an expense at the ETH mark; a liquidation's debt repaid less collateral taken, at marks, is
    the liquidation loss; any other exchange of holdings (stake, wrap, unstake) moves the value that left
    (at marks) to what arrived, so its later price change is revaluation."""
    net: dict[str, Decimal] = {}
    kept: dict[str, Decimal] = {}
    for book, _wallet, asset, why, amount in deltas:
        if why == "gas":
            continue
        net[asset] = net.get(asset, ZERO) + (-amount if book == "borrowed" else amount)
        if book != "borrowed":
            kept[asset] = kept.get(asset, ZERO) + amount
    rows: list[tuple[str, str, str, str, Decimal]] = []
    if e.gas_fee:
        rows += _expense_rows(state, "gas", "ETH", -e.gas_fee)
    liquidated = any(x.get("kind") == "liquidated" for x in e.effects)
    prices = {a: usd_price(state.marks, a) for a in net}
    values = {a: MONEY.multiply(n, p) for a, n in net.items() if n and (p := prices[a]) is not None}
    if liquidated:
        for asset, value in sorted(values.items()):
            rows.append(("usd", "liquidation", asset, "value", value))
        for asset, units in sorted(net.items()):
            rows.append(("units", "liquidation", asset, "value", units))
    else:
        out = sorted((a, v) for a, v in values.items() if v < 0)
        into = sorted((a, v) for a, v in values.items() if v > 0)
        moved = -exact_sum(v for _a, v in out)
        if into and moved:
            rows += [("usd", "", a, "value", v) for a, v in out]
            weight = exact_sum(v for _a, v in into)
            left = moved
            for i, (asset, v) in enumerate(into):
                share = left if i == len(into) - 1 else MONEY.multiply(moved, MONEY.divide(v, weight))
                rows.append(("usd", "", asset, "value", share))
                left = EXACT.subtract(left, share)
    for asset, units in sorted(kept.items()):
        if units > 0:
            value = next((r[4] for r in rows if r[0] == "usd" and r[2] == asset), ZERO)
            rows.append(("cost", "", asset, "value", value))
        elif units < 0:
            rows.append(("cost", "", asset, "value", -_avg_cost(state, asset, -units)))
    return rows


def _avg_cost(state: LedgerState, asset: str, units: Decimal) -> Decimal:
    """Cost of `units` of `asset` at the desk's average cost (before they move)."""
    before = held(state, asset)
    if before <= 0:
        return ZERO
    book = state.pnl_usd.get(f"cost:{asset}", ZERO)
    return MONEY.multiply(book, MONEY.divide(min(units, before), before))


def _expense_rows(state: LedgerState, line: str, asset: str,
                  amount: Decimal) -> list[tuple[str, str, str, str, Decimal]]:
    rows: list[tuple[str, str, str, str, Decimal]] = [("units", line, asset, "value", amount)]
    price = usd_price(state.marks, asset)
    if price is None:
        return [*rows, ("units", f"unpriced {line}", asset, "value", amount)]
    return [*rows, ("usd", line, asset, "value", MONEY.multiply(amount, price)),
            ("cost", "", asset, "value", -_avg_cost(state, asset, -amount))]


def _apply_values(state: LedgerState, rows: list[tuple[str, str, str, str, Decimal]], sign: int) -> None:
    for kind, line, asset, _why, amount in rows:
        if kind == "units":
            _units(state, line, asset, sign * amount)
        elif kind == "usd":
            _usd(state, f"carried:{asset}", sign * amount)
            if line:
                _usd(state, line, sign * amount)
        elif kind == "cost":
            _usd(state, f"cost:{asset}", sign * amount)


def _confirmed(state: LedgerState, venue: str, e: Any) -> None:
    order = state.orders.get(e.instruction_id)
    deltas = _effect_deltas(e, order)
    values = _effect_values(state, e, deltas)  # costs at the average before the units move
    for book, wallet, asset, _why, amount in deltas:
        _book(state, book, venue, wallet, asset, amount)
    _apply_values(state, values, 1)
    state.tx_effects[e.tx_hash] = deltas + values
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
    rows = state.tx_effects.pop(e.tx_hash, [])
    for book, wallet, asset, _why, amount in rows:
        if book in ("balance", "supplied", "borrowed"):
            _book(state, book, venue, wallet, asset, -amount)
    _apply_values(state, [r for r in rows if r[0] in ("units", "usd", "cost")], -1)
    state.dirty.add(("tx_effects", e.tx_hash))
    _status(state, e.instruction_id, "TransactionReorged")


# ---- transfers -------------------------------------------------------------------------------------

def _sent(state: LedgerState, venue: str, e: Any) -> None:
    _add(state, venue, e.from_wallet, e.asset, -(e.amount + e.fee))
    if e.fee:
        _pnl(state, "withdrawal_fees", e.asset, -e.fee)
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
            _pnl(state, "withdrawal_fees", transit.asset, e.refunded - transit.amount)
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
