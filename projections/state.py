"""The read-model state that every projection folds events into (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from uuid import UUID

ZERO = Decimal(0)
# The statement's sums: room for every digit of 60-digit amounts of any realistic size, so that adding
# them never rounds and the lines add up exactly to the change in equity.
EXACT = Context(prec=400, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])


def exact_sum(values: object) -> Decimal:
    total = ZERO
    for value in values:  # type: ignore[attr-defined]
        total = EXACT.add(total, value)
    return total


@dataclass(slots=True)
class Position:
    """One-way position in an instrument at a venue: signed quantity, average entry, realised P&L."""

    market_type: str
    quantity: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO


@dataclass(slots=True)
class Order:
    """The read-model view of one instruction."""

    venue: str
    kind: str
    instrument: str
    side: str
    amount: Decimal
    wallet: str
    status: str
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    ts_accepted: str = ""
    code: str = ""

    @property
    def avg_price(self) -> Decimal:
        return self.notional / self.filled if self.filled else ZERO


@dataclass(slots=True)
class Transit:
    """Funds that left one venue and have not arrived at the other."""

    from_venue: str
    from_wallet: str
    to_venue: str
    to_wallet: str
    asset: str
    amount: Decimal
    instruction_id: str = ""


@dataclass(slots=True)
class Fill:
    venue: str
    market_type: str
    instrument: str
    trade_id: str
    instruction_id: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    ts: str


@dataclass
class LedgerState:
    """Everything the folds maintain. `dirty` names what changed since the last SQL commit."""

    streams: dict[UUID, str] = field(default_factory=dict)
    balances: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    supplied: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    borrowed: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    transit: dict[str, Transit] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    pnl: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    pnl_usd: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    tx_effects: dict[str, list[tuple[str, str, str, str, Decimal]]] = field(default_factory=dict)
    observed: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    equity: list[tuple[str, Decimal]] = field(default_factory=list)
    fills_count: int = 0
    events: int = 0
    last_ts: datetime | None = None
    new_fills: list[Fill] = field(default_factory=list)
    keep_fills: bool = True
    equity_due: datetime | None = None
    dirty: set[tuple[str, object]] = field(default_factory=set)

    def comparable(self) -> dict[str, object]:
        """The state as plain data for equality checks (ignores bookkeeping of the SQL writer)."""
        return {
            "streams": {k.hex: v for k, v in sorted(self.streams.items())},
            "balances": dict(sorted((k, v) for k, v in self.balances.items() if v)),
            "positions": {k: (p.market_type, p.quantity, p.avg_entry, p.realised, p.fees)
                          for k, p in sorted(self.positions.items())},
            "supplied": dict(sorted((k, v) for k, v in self.supplied.items() if v)),
            "borrowed": dict(sorted((k, v) for k, v in self.borrowed.items() if v)),
            "transit": {k: (t.from_venue, t.from_wallet, t.to_venue, t.to_wallet, t.asset, t.amount,
                            t.instruction_id)
                        for k, t in sorted(self.transit.items())},
            "orders": {k: (o.venue, o.kind, o.instrument, o.side, o.amount, o.wallet, o.status,
                           o.filled, o.notional, o.fees, o.code)
                       for k, o in sorted(self.orders.items())},
            "pnl": dict(sorted((k, v) for k, v in self.pnl.items() if v)),
            "pnl_usd": dict(sorted((k, v) for k, v in self.pnl_usd.items() if v)),
            "marks": dict(sorted(self.marks.items())),
            "tx_effects": dict(sorted(self.tx_effects.items())),
            "observed": dict(sorted(self.observed.items())),
            "equity": list(self.equity),
            "fills_count": self.fills_count,
            "events": self.events,
            "last_ts": self.last_ts,
        }
