"""Invariant checkers: conservation, no floats, lifecycle grammar, rebuild equality."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Any

import msgspec

from aggregates.errors import IllegalTransitionError
from aggregates.transitions import State, next_state
from aggregates.values import MONEY
from aggregates.venue import VenueLedger
from ledger.codec import split_state
from ledger.testing.books import Books, _diff, _ledger, _nonzero, independent_books
from ledger.testing.common import ZERO, InvariantError
from projections.folds import fold
from projections.memory import InMemoryProjection
from projections.reports import holdings
from projections.state import LedgerState

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.engine import EventDrivenStrategyEngine


def check_conservation(target: EventDrivenStrategyEngine | Ledger, state: LedgerState | None = None) -> Books:
    """Funds are conserved: recompute the books from the stored events (`independent_books`) and
    compare them with the projection (the engine's live one, `state`, or a fold of the log).

    It checks (1) balances per (venue, wallet, asset), AAVE supplied and borrowed, funds in transit
    and positions equal the projection's; (2) per asset, balances + supplied - borrowed + in transit
    equal deposits - withdrawals + adjustments + spot legs + perp realised + fees + funding + interest
    + gas + rewards + conversions + external + liquidations; (3) the P&L lines realised
    (perps), fees, withdrawal fees, funding, gas, supply interest and borrow cost equal their recorded
    flows (in units); (4) every received or refunded transfer was
    sent, in the same asset and not for more; (5) no balance went below zero except through a perp fill
    or funding, and no AAVE book ever did. Returns the books; raises `InvariantError`."""
    ledger = _ledger(target)
    if state is None:
        projection = getattr(target, "projection", None)
        state = projection.state if projection is not None else fold(e for _n, e in ledger.iter_events())
    books = independent_books(ledger)
    problems = list(books.problems)
    problems += _diff("balance", _nonzero(books.balances), _nonzero(state.balances))
    problems += _diff("supplied", _nonzero(books.supplied), _nonzero(state.supplied))
    problems += _diff("borrowed", _nonzero(books.borrowed), _nonzero(state.borrowed))
    problems += _diff(
        "in transit",
        {k: (v, w, a, x) for k, (v, w, a, x) in books.transit.items()},
        {k: (t.from_venue, t.from_wallet, t.asset, t.amount) for k, t in state.transit.items()},
    )
    problems += _diff(
        "position",
        {k: v for k, v in books.positions.items() if any(v)},
        {
            k: (p.quantity, p.avg_entry, p.realised)
            for k, p in state.positions.items()
            if p.quantity or p.avg_entry or p.realised
        },
    )
    with localcontext(MONEY):
        held = holdings(state)
    problems += [
        f"asset {a}: held {x} but its flows add up to {y} ({books.flows.get(a)})"
        for a, x, y in _pairs(_nonzero(held), books.net_flows())
    ]
    lines = ("realised", "fees", "withdrawal_fees", "funding", "gas", "supply_interest", "borrow_cost")
    problems += _diff(
        "P&L line", _nonzero(books.pnl), _nonzero({k: v for k, v in state.pnl.items() if k[0] in lines})
    )
    if problems:
        raise InvariantError("conservation", problems)
    return books


def _pairs(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Iterator[tuple[str, Decimal, Decimal]]:
    for key in sorted(set(a) | set(b)):
        if a.get(key, ZERO) != b.get(key, ZERO):
            yield key, a.get(key, ZERO), b.get(key, ZERO)


_decode = msgspec.json.Decoder().decode
_REJECTED = VenueLedger.InstructionRejected.TOPIC


def _non_finite(text: str) -> bool:
    try:
        return not Decimal(text.strip()).is_finite()
    except (InvalidOperation, ValueError):
        return False


def _walk(value: Any, path: str, out: list[str], texts: bool) -> None:
    if isinstance(value, float):
        out.append(f"{path}: JSON float {value!r}" if math.isfinite(value) else f"{path}: {value!r}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{path}.{k}", out, texts)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]", out, texts)
    elif isinstance(value, str) and texts and _non_finite(value):
        out.append(f"{path}: non-finite number {value!r}")


def check_no_floats(target: EventDrivenStrategyEngine | Ledger) -> int:
    """No stored payload holds a JSON float, NaN or infinity (SessionStarted's config text included).

    Decodes every stored row as plain JSON (through the ledger's codec: decryption, the chain suffix
    split off) and walks it. Text that reads as NaN or infinity is a violation too, except inside a
    rejection's `received`, which by design keeps the `repr` of whatever arrived (SPEC §12.17).
    Returns the number of rows read; raises `InvariantError`."""
    ledger = _ledger(target)
    problems: list[str] = []
    rows = 0
    for nid, _stream, _version, topic, state in ledger.iter_rows():
        rows += 1
        payload, _digest = split_state(ledger.codec.plaintext(state))
        data = _decode(payload)
        found: list[str] = []
        received = data.pop("received", None) if topic == _REJECTED else None
        _walk(data, topic, found, texts=True)
        if received is not None:
            _walk(received, f"{topic}.received", found, texts=False)
            if not all(isinstance(v, str) for v in received.values()):
                found.append(f"{topic}.received: values must be text (repr of what arrived)")
        config = data.get("config")
        if isinstance(config, str) and config.startswith("{"):
            _walk(_decode(config), f"{topic}.config", found, texts=False)
        problems += [f"notification {nid}: {f}" for f in found]
    if problems:
        raise InvariantError("no floats", problems)
    return rows


BACKTEST_FINAL_STATES = frozenset(
    {
        State.FILLED,
        State.SUBMITTED,
        State.ACKNOWLEDGED,
        State.CANCELLED,
        State.REJECTED,
        State.TX_CONFIRMED,
        State.COMPLETED,
        State.IN_TRANSIT,
    }
)
# A live venue can also leave an order part-filled or failed, a transfer failed, a transaction reverted.
LIVE_FINAL_STATES = BACKTEST_FINAL_STATES | frozenset(
    {
        State.PARTIALLY_FILLED,
        State.FAILED,
        State.TRANSFER_FAILED,
        State.TX_REVERTED,
    }
)
_AFTER_REJECTION_OK = frozenset({"InstructionRejected"})


def check_lifecycle(
    target: EventDrivenStrategyEngine | Ledger,
    final_states: Iterable[State] = BACKTEST_FINAL_STATES,
    state: LedgerState | None = None,
) -> dict[str, State]:
    """Every instruction's stored events are moves the lifecycle table (`aggregates.transitions`)
    allows, and each ends in one of `final_states`: filled, resting (submitted or acknowledged),
    cancelled, rejected (with a non-empty code and reason, and nothing sent for it), on chain
    confirmed or completed, or in transit. Pass your own `final_states` for live runs (FAILED,
    UNKNOWN, PARTIALLY_FILLED…). With `state` (or an engine) the projection's order statuses must
    agree. Returns the final state per instruction; raises `InvariantError`."""
    ledger = _ledger(target)
    allowed = frozenset(final_states)
    status: dict[str, State | None] = {}
    amounts: dict[str, Decimal] = {}
    filled: dict[str, Decimal] = {}
    owners: dict[str, str] = {}
    problems: list[str] = []
    for nid, event in ledger.iter_events():
        name = type(event).__name__
        iid = getattr(event, "instruction_id", None)
        if name == "TransferReceived":
            iid = owners.get(event.transfer_id)
        if not isinstance(iid, str):
            continue
        move = name
        if name == "InstructionAccepted":
            amount = event.instruction.get("amount")
            amounts[iid] = Decimal(amount) if amount else ZERO
        elif name == "OrderFilled":
            filled[iid] = filled.get(iid, ZERO) + event.quantity
            whole = bool(amounts.get(iid)) and filled[iid] >= amounts[iid]
            move = "OrderFilled.complete" if whole else "OrderFilled.partial"
        elif name == "OrderReconciled":
            move = f"OrderReconciled.{event.outcome}"
        elif name == "TransferSent":
            owners[event.transfer_id] = iid
        elif name == "InstructionRejected" and (not event.code or not event.reason):
            problems.append(f"notification {nid}: instruction {iid} rejected without a code and reason")
        before = status.get(iid)
        if before is State.REJECTED and name not in _AFTER_REJECTION_OK:
            problems.append(f"notification {nid}: {name} recorded for rejected instruction {iid}")
        try:
            status[iid] = next_state(iid, before, move)
        except IllegalTransitionError as e:
            problems.append(f"notification {nid}: {e}")
    final = {iid: s for iid, s in status.items() if s is not None}
    for iid, s in sorted(final.items()):
        if s not in allowed:
            problems.append(f"instruction {iid} ended in {s}, not one of {', '.join(sorted(allowed))}")
    projection = getattr(target, "projection", None)
    if state is None and projection is not None:
        state = projection.state
    if state is not None:
        for iid, s in sorted(final.items()):
            order = state.orders.get(iid)
            if order is not None and order.status != str(s):
                problems.append(f"instruction {iid}: events end in {s}, projection says {order.status}")
    if problems:
        raise InvariantError("lifecycle", problems)
    return final


def check_rebuild_equals(engine: EventDrivenStrategyEngine) -> None:
    """A fresh `InMemoryProjection` rebuilt from the store equals the engine's live projection
    (`LedgerState.comparable()`); raises `InvariantError` naming the parts that differ."""
    engine.event_logger.flush()
    fresh = InMemoryProjection()
    fresh.rebuild(engine.ledger)
    rebuilt, live = fresh.state.comparable(), engine.projection.state.comparable()
    problems = []
    for part in rebuilt:
        if rebuilt[part] != live.get(part):
            problems.append(f"{part}: rebuilt {_short(rebuilt[part])} != live {_short(live.get(part))}")
    if problems:
        raise InvariantError("rebuild equals live", problems)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "…"


def check_all(engine: EventDrivenStrategyEngine) -> None:
    """Every checker on one engine: conservation, no floats, lifecycle, rebuild equals live."""
    check_conservation(engine)
    check_no_floats(engine)
    check_lifecycle(engine)
    check_rebuild_equals(engine)
