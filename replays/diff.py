"""Two logs side by side: the first event where they differ (in the canonical form `log_digest` hashes)
and a summary of how they differ (event counts per topic and venue, fills, final balances and P&L)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from itertools import zip_longest
from typing import Any

import msgspec

from aggregates.session import Session
from aggregates.values import MONEY
from ledger.codec import split_state
from ledger.digest import canonical_payload
from projections import reports
from projections.folds import apply
from projections.state import LedgerState
from replays.state import ReplayError

STARTED = Session.SessionStarted.TOPIC
_decode = msgspec.json.decode


@dataclass(frozen=True)
class Side:
    """One log's event at the diverging position."""

    notification: int
    topic: str
    stream: str
    version: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class Divergence:
    """The first position (0-based, in notification order) where two logs differ; a side is None when
    that log has already ended."""

    position: int
    a: Side | None
    b: Side | None
    fields: tuple[tuple[str, Any, Any], ...]

    def title(self, names: tuple[str, str] = ("A", "B")) -> str:
        where = ", ".join(f"notification {s.notification} in {n}"
                          for s, n in ((self.a, names[0]), (self.b, names[1])) if s is not None)
        return f"first divergence at event {self.position + 1} ({where}):"

    def rows(self) -> list[tuple[str, str, str]]:
        """(field, A's value, B's value) as whole text: the event's place, then each differing field."""
        a, b = self.a, self.b
        rows = [(label, _show(getattr(a, label)) if a else "(log ended)",
                 _show(getattr(b, label)) if b else "(log ended)")
                for label in ("notification", "topic", "stream", "version")]
        rows += [(name, _show(x), _show(y)) for name, x, y in self.fields
                 if name not in ("topic", "stream", "version")]
        return rows

    def plain(self) -> dict[str, Any]:
        def side(s: Side | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {"notification": s.notification, "topic": s.topic, "stream": s.stream,
                    "version": s.version}

        return {"position": self.position + 1, "a": side(self.a), "b": side(self.b),
                "fields": [{"field": n, "a": x, "b": y} for n, x, y in self.fields]}


MISSING = "(absent)"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def field_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, A's value, B's value) for every field that differs; a JSON text on both sides (the
    recorded config) is compared key by key."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, MISSING), b.get(key, MISSING)
        if x == y:
            continue
        name = f"{prefix}{key}"
        nested = (_as_object(x), _as_object(y))
        if nested[0] is not None and nested[1] is not None:
            out.extend(field_differences(nested[0], nested[1], f"{name}."))
        else:
            out.append((name, x, y))
    return out


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def canonical_rows(ledger: Any) -> Iterator[tuple[int, str, str, int, bytes]]:
    """(notification, topic, stream, version, canonical payload) in notification order."""
    for nid, stream, version, topic, state in ledger.iter_rows():
        payload, _chain = split_state(ledger.codec.plaintext(state))
        yield nid, topic, stream, version, canonical_payload(topic, payload)


def _divergence(position: int, x: tuple[int, str, str, int, bytes] | None,
                y: tuple[int, str, str, int, bytes] | None) -> Divergence:
    def side(row: tuple[int, str, str, int, bytes] | None) -> Side | None:
        if row is None:
            return None
        return Side(row[0], row[1], row[2], row[3], _decode(row[4]))

    a, b = side(x), side(y)
    fields: list[tuple[str, Any, Any]] = []
    if a is not None and b is not None:
        for name in ("topic", "stream", "version"):
            if getattr(a, name) != getattr(b, name):
                fields.append((name, getattr(a, name), getattr(b, name)))
        fields.extend(field_differences(a.payload, b.payload))
    return Divergence(position, a, b, tuple(fields))


def same(x: tuple[int, str, str, int, bytes], y: tuple[int, str, str, int, bytes]) -> bool:
    """Equal in everything `log_digest` hashes (the notification number itself is not hashed)."""
    return x[1:] == y[1:]


def first_divergence(a: Any, b: Any) -> Divergence | None:
    """The first event where two ledgers differ, or None when their canonical logs are identical."""
    for position, (x, y) in enumerate(zip_longest(canonical_rows(a), canonical_rows(b))):
        if x is None or y is None or not same(x, y):
            return _divergence(position, x, y)
    return None


# ---- the summary --------------------------------------------------------------------------------

def sessions(ledger: Any) -> list[dict[str, Any]]:
    """The `SessionStarted` records of a log, in order (canonical fields only)."""
    out = []
    for _nid, _stream, _version, topic, state in ledger.iter_rows():
        if topic == STARTED:
            payload, _chain = split_state(ledger.codec.plaintext(state))
            out.append(_decode(canonical_payload(topic, payload)))
    return out


@dataclass
class Tally:
    """What one log holds, for the summary."""

    events: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    venues: Counter[str] = field(default_factory=Counter)
    fills: Counter[str] = field(default_factory=Counter)
    filled: dict[str, Decimal] = field(default_factory=dict)  # "venue instrument side" -> quantity
    fees: dict[str, Decimal] = field(default_factory=dict)
    state: LedgerState = field(default_factory=lambda: LedgerState(keep_fills=False))
    streams: dict[Any, str] = field(default_factory=dict)

    def add(self, event: Any, topic: str) -> None:
        self.events += 1
        self.topics[topic.removeprefix("ledger:")] += 1
        name = type(event).__name__
        if name == "Opened":
            self.streams[event.originator_id] = str(event.venue)
        venue = self.streams.get(event.originator_id, "(session)")
        self.venues[venue] += 1
        if name == "OrderFilled":
            self.fills[venue] += 1
            key = f"{venue} {event.instrument} {event.side}"
            with localcontext(MONEY):  # exact sums (the default context keeps 28 digits)
                self.filled[key] = self.filled.get(key, Decimal(0)) + event.quantity
                if event.fee:
                    self.fees[event.fee_asset] = self.fees.get(event.fee_asset, Decimal(0)) + event.fee
        state = self.state
        apply(state, event)
        state.new_fills.clear()
        if len(state.dirty) > 50_000:
            state.dirty.clear()


def _counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    zero: Any = Decimal(0) if any(isinstance(v, Decimal) for v in (*a.values(), *b.values())) else 0
    return {k: [a.get(k, zero), b.get(k, zero)] for k in sorted(set(a) | set(b))
            if a.get(k, zero) != b.get(k, zero)}


def _balances(state: LedgerState) -> dict[str, Decimal]:
    out = {f"{v} {w} {a}": x for (v, w, a), x in sorted(state.balances.items()) if x}
    out.update({f"{v} {a} (supplied)": x for (v, a), x in sorted(state.supplied.items()) if x})
    out.update({f"{v} {a} (borrowed)": -x for (v, a), x in sorted(state.borrowed.items()) if x})
    return out


def _positions(state: LedgerState) -> dict[str, Decimal]:
    return {f"{v} {i}": p.quantity for (v, i), p in sorted(state.positions.items()) if p.quantity}


@dataclass
class Comparison:
    divergence: Divergence | None
    a: Tally
    b: Tally

    @property
    def identical(self) -> bool:
        return self.divergence is None

    def summary(self) -> dict[str, Any]:
        """Only what differs: each entry is [A's value, B's value]."""
        a, b = self.a, self.b
        sa, sb = a.state, b.state
        return {
            "events": [a.events, b.events],
            "topics": _counts(dict(a.topics), dict(b.topics)),
            "venues": _counts(dict(a.venues), dict(b.venues)),
            "fills": _counts(dict(a.fills), dict(b.fills)),
            "filled_quantity": _counts(a.filled, b.filled),
            "fees": _counts(a.fees, b.fees),
            "balances": _counts(_balances(sa), _balances(sb)),
            "positions": _counts(_positions(sa), _positions(sb)),
            "pnl": _counts(reports.pnl(sa), reports.pnl(sb)),
            "equity": [reports.equity(sa), reports.equity(sb)],
        }


def compare(a: Any, b: Any, *, force: bool = False) -> Comparison:
    """Read both logs once: first divergence, per-log tallies and final folded states. Logs of
    different sessions (another session key) are refused unless `force`."""
    keys_a = [s.get("session_key") for s in sessions(a)]
    keys_b = [s.get("session_key") for s in sessions(b)]
    if keys_a != keys_b and not force:
        raise ReplayError(
            f"the logs are of different sessions ({_keys(keys_a)} vs {_keys(keys_b)}); "
            "pass --force to compare them anyway")
    ta, tb = Tally(), Tally()
    divergence: Divergence | None = None
    for position, (x, y) in enumerate(zip_longest(_decoded(a), _decoded(b))):
        if x is not None:
            ta.add(x[1], x[0][1])
        if y is not None:
            tb.add(y[1], y[0][1])
        if divergence is None and (x is None or y is None or not same(x[0], y[0])):
            divergence = _divergence(position, x[0] if x else None, y[0] if y else None)
    return Comparison(divergence, ta, tb)


def _keys(keys: list[Any]) -> str:
    return ", ".join(str(k) for k in keys) if keys else "no session"


def _decoded(ledger: Any) -> Iterator[tuple[tuple[int, str, str, int, bytes], Any]]:
    for row in ledger.iter_rows():
        nid, stream, version, topic, state = row
        payload, _chain = split_state(ledger.codec.plaintext(state))
        yield (nid, topic, stream, version, canonical_payload(topic, payload)), ledger.decode_row(row)
