"""`MarketData` rebuilt from an existing event log: the snapshots decisions used and the funding settled."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregates.errors import LedgerError
from aggregates.values import parse_instrument
from ledger.marketdata.frame import DataError, FundingPoint, MarketData

SNAPSHOT_EVENTS = ("InstructionAccepted", "MarketObserved")


def _market(event: Any, nid: int, source: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, value in dict(event.market).items():
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
        except ArithmeticError:
            raise DataError(
                f"{source}: notification {nid}: market[{key!r}] is not a number: {value!r}") from None
        out[str(key)] = number
    return out


def load_event_log(url: str) -> MarketData:
    """Rows from `InstructionAccepted.market` and `Session.MarketObserved`, merged per `ts_event` in
    notification order (a later snapshot wins per key); funding from `FundingSettled`."""
    from ledger.app import Ledger
    from ledger.config import redact_url

    source = f"event log {redact_url(url)}"  # recorded (`data_source`) and printed: no password
    ledger = Ledger.open(url)
    try:
        return _fold(ledger, source)
    finally:
        ledger.close()


def _fold(ledger: Any, source: str) -> MarketData:
    by_time: dict[datetime, dict[str, Decimal]] = {}
    venues: dict[Any, str] = {}
    funding: dict[tuple[datetime, str, str], tuple[FundingPoint, int]] = {}
    for nid, event in ledger.iter_events():
        name = type(event).__name__
        if name == "Opened":
            venues[event.originator_id] = str(event.venue)
        elif name in SNAPSHOT_EVENTS:
            by_time.setdefault(event.ts_event, {}).update(_market(event, nid, source))
        elif name == "FundingSettled":
            venue = venues.get(event.originator_id)
            if venue is None:
                raise DataError(f"{source}: notification {nid}: funding on a stream with no Opened event")
            try:
                base = parse_instrument(str(event.instrument)).base
            except LedgerError as e:
                raise DataError(f"{source}: notification {nid}: {e}") from None
            point = FundingPoint(event.ts_event, venue, base, Decimal(event.rate))
            key = (point.ts, point.venue, point.base)
            seen = funding.get(key)
            if seen is None:
                funding[key] = (point, nid)
            elif seen[0].rate != point.rate:
                raise DataError(f"{source}: {venue} {base} funding at {point.ts.isoformat()} is "
                                f"{seen[0].rate} in notification {seen[1]} but {point.rate} in "
                                f"notification {nid}")
    if not by_time and not funding:
        raise DataError(f"{source}: the log holds no market snapshots or funding settlements")
    times = sorted(by_time)
    return MarketData.build(source, times, [by_time[t] for t in times], [p for p, _n in funding.values()])
