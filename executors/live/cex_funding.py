"""`FundingPoller`: the live CEX poller that records perpetual funding as the venues settle it
(SPEC §12.5, §12.18), one `FundingSettled` per payment, and `payment`, the pure parse of one ccxt
funding-history entry.

Idempotent across polls and restarts: the venue aggregate keys funding by (instrument, ts), and the
poll cursor starts at the latest payment the ledger holds for the instrument (or when the venue's stream
was opened — earlier payments are inside the adopted opening balance).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import ccxt

from aggregates.values import MONEY, parse_instrument
from executors.costs import ConfigError
from executors.live import ccxt_parse as parse
from executors.live.ccxt_client import VENUES
from executors.market import reference_price

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface
    from executors.live.cex import LiveCEX

log = logging.getLogger("executors.live.funding")
ZERO = Decimal(0)
DEFAULT_POLL_S = 60.0
HISTORY_LIMIT = 100
DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ccxt passes Bybit's funding through as an execution fee: positive = paid by the account. Binance's
# income and OKX's balance change are positive when received, the ledger's sign.
PAID_IS_POSITIVE = frozenset({"bybit"})


def mark_key(venue: str, base: str) -> str:
    """The market-data key of a perp's mark price at `venue`: `{venue}_{base}_mark_price`."""
    return f"{venue}_{base.lower()}_mark_price"


def funding_key(venue: str, base: str) -> str:
    """The market-data key of a perp's current funding rate at `venue`: `{venue}_{base}_funding_rate`."""
    return f"{venue}_{base.lower()}_funding_rate"


def poll_interval(config: Mapping[str, Any]) -> float:
    """`[live] funding_poll_s`: seconds between funding polls (default 60; 0 polls at every advance)."""
    live = config.get("live") or {}
    value = live.get("funding_poll_s") if isinstance(live, Mapping) else None
    try:
        seconds = DEFAULT_POLL_S if value is None else float(value)
    except (TypeError, ValueError):
        raise ConfigError("live.funding_poll_s", f"expected a number of seconds, got {value!r}") from None
    if not seconds >= 0:  # also refuses NaN
        raise ConfigError("live.funding_poll_s", f"must be 0 or more seconds, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Payment:
    """One funding payment as the venue reported it, in the ledger's sign (+ received, - paid)."""

    entry_id: str
    symbol: str
    asset: str
    amount: Decimal
    ts: datetime
    rate: Decimal | None = None  # when the venue reports the rate it settled at
    mark: Decimal | None = None  # when the venue reports the mark price it settled on


def ms_to_utc(value: Any) -> datetime | None:
    """Exact aware UTC time of a millisecond timestamp (no float rounding: it is part of a key)."""
    number = parse.dec(value)
    if number is None or number <= 0 or number != number.to_integral_value():
        return None
    return EPOCH + timedelta(milliseconds=int(number))


def to_ms(ts: datetime) -> int:
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def payment(venue: str, entry: Mapping[str, Any], default_asset: str = "USDT") -> Payment | None:
    """A `Payment` from one ccxt `fetch_funding_history` entry; None when it has no amount or time."""
    amount = parse.dec(entry.get("amount"))
    ts = ms_to_utc(entry.get("timestamp"))
    if amount is None or ts is None:
        return None
    if venue in PAID_IS_POSITIVE:
        amount = -amount
    raw = entry.get("info")
    info: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    rate = mark = None
    if venue == "bybit":  # the execution row carries the rate and the mark it settled at
        rate = parse.dec(info.get("feeRate")) if info.get("feeRate") not in (None, "") else None
        mark = _positive(info.get("markPrice")) or _positive(info.get("execPrice"))
    return Payment(
        entry_id=str(entry.get("id") or ""),
        symbol=str(entry.get("symbol") or ""),
        asset=str(entry.get("code") or default_asset),
        amount=amount,
        ts=ts,
        rate=rate,
        mark=mark,
    )


def payments(venue: str, entries: Iterable[Mapping[str, Any]], symbol: str) -> list[Payment]:
    """The entries of `symbol` (entries naming no symbol are taken as the one asked for), oldest first."""
    out = []
    for entry in entries:
        p = payment(venue, entry)
        if p is not None and p.symbol in ("", symbol):
            out.append(
                p if p.symbol else Payment(p.entry_id, symbol, p.asset, p.amount, p.ts, p.rate, p.mark)
            )
    return sorted(out, key=lambda p: (p.ts, p.entry_id))


def _positive(value: Any) -> Decimal | None:
    number = parse.dec(value)
    return number if number is not None and number > 0 else None


class FundingPoller:
    """Polls each CEX venue's funding history for the perps the ledger has held there and records each
    payment once (`FundingSettled` on the venue's margin wallet, amount as the venue reports it)."""

    def __init__(self, backend: LiveCEX) -> None:
        self.backend = backend
        self.interval_s = poll_interval(backend.config)
        self.cursors: dict[tuple[str, str], datetime] = {}  # (venue, symbol) -> latest payment held
        self.entries: dict[tuple[str, str, datetime], str] = {}  # the venue's entry id per payment
        self._last = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        """While the ledger has perps at a CEX venue: now when the interval has passed, else when it
        will have (the engine only asks again after an append, so "not yet" must carry a time)."""
        if not any(self._symbols(iface, v) for v in self._venues(iface)):
            return None
        if self.due():
            return DUE_NOW
        left = self.interval_s - (time.monotonic() - self._last)
        return iface.logger.now() + timedelta(seconds=max(0.0, left))

    async def poll(
        self, iface: BaseExecutionInterface, market: Mapping[str, Decimal], force: bool = False
    ) -> int:
        """Record the payments since the last poll (at most every `funding_poll_s`); how many."""
        if not force and not self.due():
            return 0
        self._last = time.monotonic()
        recorded = 0
        with localcontext(MONEY):
            for venue in self._venues(iface):
                symbols = self._symbols(iface, venue)
                if not symbols:
                    continue
                recorded += await self._poll_venue(iface, venue, symbols, market)
        return recorded

    def _venues(self, iface: BaseExecutionInterface) -> list[str]:
        return [v for v in VENUES if iface.logger.venue_type(v) == "cex"]

    def _symbols(self, iface: BaseExecutionInterface, venue: str) -> list[str]:
        """Perps with a position record at `venue`, open or closed (a payment settled just before a
        close may be reported after it)."""
        state = getattr(iface.monitor, "state", None)
        positions = getattr(state, "positions", {})
        return sorted({s for (v, s), p in positions.items() if v == venue and p.market_type == "perp"})

    async def _poll_venue(
        self, iface: BaseExecutionInterface, venue: str, symbols: list[str], market: Mapping[str, Decimal]
    ) -> int:
        from executors.live.cex import VenueUnavailable  # the backend's module imports this one

        backend = self.backend
        try:
            client = await backend.client(venue)
        except VenueUnavailable as e:
            backend.errors[venue] = e.reason
            return 0
        recorded = 0
        agg = iface.logger.venue(venue)
        for symbol in symbols:
            if client.market(symbol) is None:
                continue
            since = self._since(agg, venue, symbol)
            try:
                entries = await client.call("fetch_funding_history", symbol, to_ms(since), HISTORY_LIMIT)
            except ccxt.BaseError as e:
                backend.errors[venue] = f"funding history: {parse.reason(e, client.secrets)}"
                log.warning("%s: %s", venue, backend.errors[venue])
                continue
            found = payments(venue, entries or [], symbol)
            for p in found:
                if self._record(iface, agg, venue, p, market):
                    recorded += 1
                self.cursors[(venue, symbol)] = max(self.cursors.get((venue, symbol), p.ts), p.ts)
            if backend.errors.get(venue, "").startswith("funding history:"):
                backend.errors.pop(venue, None)
        return recorded

    def _since(self, agg: Any, venue: str, symbol: str) -> datetime:
        """Where to read from: the latest payment the ledger holds for the instrument (inclusive: it
        is dropped by its key), else when the venue's stream was opened."""
        found = self.cursors.get((venue, symbol))
        if found is None:
            prefix = f"funding:{symbol}:"
            stamps = [datetime.fromisoformat(k[len(prefix) :]) for k in agg.keys if k.startswith(prefix)]
            opened = getattr(agg, "created_on", None)
            found = max(stamps) if stamps else (opened if isinstance(opened, datetime) else EPOCH)
            self.cursors[(venue, symbol)] = found
        return found

    def _record(
        self,
        iface: BaseExecutionInterface,
        agg: Any,
        venue: str,
        p: Payment,
        market: Mapping[str, Decimal],
    ) -> bool:
        inst = parse_instrument(p.symbol)
        position = Decimal(iface.monitor.position(p.symbol, venue)["amount"])
        mark = (
            p.mark
            or market.get(mark_key(venue, inst.base))
            or reference_price(dict(market), venue, inst)
            or ZERO
        )
        rate = p.rate if p.rate is not None else market.get(funding_key(venue, inst.base))
        if rate is None:  # neither the venue nor the feed says: what the payment implies
            rate = -p.amount / (position * mark) if position and mark else ZERO
        logger = iface.logger
        if not agg.record_funding(
            p.symbol,
            iface.wallet(venue, "perp"),
            p.asset,
            rate,
            mark,
            position,
            p.amount,
            p.ts,
            now=logger.now(),
        ):
            return False
        logger.commit(agg)  # durable before anyone is told
        self.entries[(venue, p.symbol, p.ts)] = p.entry_id
        args = (venue, p.amount, p.asset, p.symbol, p.ts.isoformat(), p.entry_id or "-")
        log.info("%s: funding %s %s on %s at %s (entry %s)", *args)
        iface.notify(
            {
                "status": "FUNDING",
                "venue": venue,
                "symbol": p.symbol,
                "amount": p.amount,
                "entry_id": p.entry_id,
            }
        )
        return True


__all__ = [
    "DEFAULT_POLL_S",
    "FundingPoller",
    "Payment",
    "funding_key",
    "mark_key",
    "payment",
    "payments",
    "poll_interval",
]
