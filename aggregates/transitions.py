"""The instruction lifecycle as a table: which event may follow which state, and where it leads.

Intents (our own decisions) are governed: a pair missing from the table is an illegal move.
Venue and chain facts are never refused (SPEC §12.1): every state has an entry for every fact,
so the table only says which state a fact leads to.
"""

from __future__ import annotations

from enum import StrEnum

from aggregates.errors import IllegalTransitionError


class State(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    SUBMITTED = "SUBMITTED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    NOT_PLACED = "NOT_PLACED"
    TX_PENDING = "TX_PENDING"
    TX_MINED = "TX_MINED"
    TX_CONFIRMED = "TX_CONFIRMED"
    TX_REVERTED = "TX_REVERTED"
    TX_DROPPED = "TX_DROPPED"
    IN_TRANSIT = "IN_TRANSIT"
    TRANSFER_FAILED = "TRANSFER_FAILED"
    COMPLETED = "COMPLETED"


S = State
NEW = None
ORDER_LIVE = (S.SUBMITTED, S.ACKNOWLEDGED, S.PARTIALLY_FILLED, S.CANCEL_REQUESTED, S.UNKNOWN)
ORDER_STATES = (*ORDER_LIVE, S.FILLED, S.CANCELLED, S.FAILED, S.NOT_PLACED)
TX_STATES = (S.TX_PENDING, S.TX_MINED, S.TX_CONFIRMED, S.TX_REVERTED, S.TX_DROPPED)
TERMINAL = frozenset({S.REJECTED, S.FILLED, S.CANCELLED, S.FAILED, S.TX_REVERTED, S.COMPLETED})

# Intents: (state before, event) -> state after. Anything else raises IllegalTransitionError.
INTENTS: dict[tuple[State | None, str], State] = {
    (NEW, "InstructionAccepted"): S.ACCEPTED,
    (NEW, "InstructionRejected"): S.REJECTED,
    (S.ACCEPTED, "InstructionRejected"): S.REJECTED,
    (S.ACCEPTED, "OrderSubmitted"): S.SUBMITTED,
    (S.NOT_PLACED, "OrderSubmitted"): S.SUBMITTED,
    (S.SUBMITTED, "OrderOutcomeUnknown"): S.UNKNOWN,
    (S.CANCEL_REQUESTED, "OrderOutcomeUnknown"): S.UNKNOWN,
    (S.UNKNOWN, "OrderOutcomeUnknown"): S.UNKNOWN,
    (S.SUBMITTED, "CancelRequested"): S.CANCEL_REQUESTED,
    (S.ACKNOWLEDGED, "CancelRequested"): S.CANCEL_REQUESTED,
    (S.PARTIALLY_FILLED, "CancelRequested"): S.CANCEL_REQUESTED,
    (S.UNKNOWN, "CancelRequested"): S.CANCEL_REQUESTED,
    (S.ACCEPTED, "TransactionSubmitted"): S.TX_PENDING,
    (S.TX_CONFIRMED, "TransactionSubmitted"): S.TX_PENDING,
    (S.TX_DROPPED, "TransactionSubmitted"): S.TX_PENDING,
    (S.TX_PENDING, "TransactionReplaced"): S.TX_PENDING,
    (S.TX_CONFIRMED, "InstructionCompleted"): S.COMPLETED,
    (S.ACCEPTED, "TransferSent"): S.IN_TRANSIT,
    (S.TX_CONFIRMED, "TransferSent"): S.IN_TRANSIT,  # a live transfer's chain leg, once confirmed
}

# Facts: event -> state after, for every state (a callable of the state before when it depends on it).
_KEEP = object()


def _fact(default: State | object, **overrides: State | object) -> dict[State | None, State | object]:
    table: dict[State | None, State | object] = {state: default for state in State}
    table[NEW] = default
    for name, target in overrides.items():
        table[State(name)] = target
    return table


FACTS: dict[str, dict[State | None, State | object]] = {
    "OrderAcknowledged": _fact(
        S.ACKNOWLEDGED,
        PARTIALLY_FILLED=_KEEP, FILLED=_KEEP, CANCEL_REQUESTED=_KEEP, CANCELLED=_KEEP,
    ),
    "OrderFilled.partial": _fact(S.PARTIALLY_FILLED, CANCEL_REQUESTED=_KEEP, CANCELLED=_KEEP),
    "OrderFilled.complete": _fact(S.FILLED),
    "OrderCancelled": _fact(S.CANCELLED, FILLED=_KEEP),
    "OrderFailed": _fact(S.FAILED, FILLED=_KEEP, PARTIALLY_FILLED=S.CANCELLED),
    "OrderReconciled.open": _fact(S.ACKNOWLEDGED, PARTIALLY_FILLED=_KEEP, FILLED=_KEEP),
    "OrderReconciled.filled": _fact(S.FILLED),
    "OrderReconciled.cancelled": _fact(S.CANCELLED, FILLED=_KEEP),
    "OrderReconciled.not_found": _fact(S.NOT_PLACED, FILLED=_KEEP, PARTIALLY_FILLED=_KEEP),
    "TransactionMined": _fact(S.TX_MINED, TX_CONFIRMED=_KEEP),
    "TransactionConfirmed": _fact(S.TX_CONFIRMED),
    "TransactionReverted": _fact(S.TX_REVERTED),
    "TransactionDropped": _fact(S.TX_DROPPED, TX_CONFIRMED=_KEEP),
    "TransactionReorged": _fact(S.TX_PENDING),
    "TransferFailed": _fact(S.TRANSFER_FAILED),
    "TransferReceived": _fact(S.COMPLETED),
    "TransferObserved": _fact(_KEEP),
}


def is_fact(event: str) -> bool:
    return event in FACTS or event.split(".", 1)[0] in {"OrderFilled", "OrderReconciled"}


def next_state(instruction_id: str, state: State | None, event: str) -> State | None:
    """The state after `event`; raises IllegalTransitionError for an intent not in the table."""
    facts = FACTS.get(event)
    if facts is not None:
        target = facts.get(state, _KEEP)
        return state if target is _KEEP else target  # type: ignore[return-value]
    try:
        return INTENTS[(state, event)]
    except KeyError:
        raise IllegalTransitionError(instruction_id, state, event) from None


def is_allowed(state: State | None, event: str) -> bool:
    return event in FACTS or (state, event) in INTENTS
