"""`LiveCEX`: the CEX backend of live mode, behind the same calls as `SimulatedCEX`.

It translates, it does not decide (CONVENTIONS 6): the intent (`InstructionAccepted`, `OrderSubmitted`
with the client order id) is committed before the request leaves; every answer, error or silence is
then appended as the venue fact it is. A venue with an instruction whose outcome is not known refuses
new orders (fail closed, per venue) until reconciliation resolves it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import ccxt

from aggregates.errors import LedgerError
from aggregates.ids import client_order_id
from aggregates.transitions import State
from aggregates.values import MONEY, MarketType
from executors import results, risk
from executors.costs import ConfigError
from executors.instructions import OrderInstruction
from executors.live import ccxt_parse as parse
from executors.live import cex_observe as observe
from executors.live.ccxt_client import VENUES, ClientFactory, VenueClient
from executors.live.cex_breaker import DUE_NOW, CircuitBreaker, WatchedClient
from executors.live.cex_funding import FundingPoller
from executors.market import reference_price, usd_price

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

log = logging.getLogger("executors.live")
ZERO = Decimal(0)
BPS = Decimal(10_000)
UNRESOLVED = frozenset({State.SUBMITTED, State.UNKNOWN, State.CANCEL_REQUESTED})
RESTING = frozenset({State.ACKNOWLEDGED, State.PARTIALLY_FILLED, State.CANCEL_REQUESTED})
TERMINAL = frozenset({State.FILLED, State.CANCELLED, State.FAILED, State.REJECTED})


class VenueUnavailable(LedgerError):
    """A venue cannot be used at all right now (no credentials, bad config, unreachable)."""

    def __init__(self, venue: str, code: str, reason: str) -> None:
        self.venue = venue
        self.code = code
        self.reason = reason
        super().__init__(f"{venue}: {reason}")


@dataclass
class Tracked:
    """What the backend knows of one of our orders (rebuilt from the log after a restart)."""

    instruction_id: str
    venue: str
    symbol: str
    market_type: str
    side: str
    amount: Decimal
    order_type: str
    wallet: str
    client_order_id: str = ""
    venue_order_id: str = ""
    fills: list[parse.Fill] = field(default_factory=list)  # recorded by this process


@dataclass(frozen=True)
class Settings:
    submit_retries: int = 2
    retry_backoff_s: float = 0.5
    lookup_attempts: int = 5
    lookup_backoff_s: float = 0.5
    fill_timeout_s: float = 10.0
    fill_poll_s: float = 0.25
    poll_interval_s: float = 2.0
    adopt_balances: bool = False
    symbols: tuple[str, ...] = ()
    trades_limit: int = 200
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        live = config.get("live") or {}
        if not isinstance(live, Mapping):
            raise ConfigError("live", "expected a table")
        try:
            return cls(
                submit_retries=max(0, int(live.get("submit_retries", cls.submit_retries))),
                retry_backoff_s=float(live.get("retry_backoff_s", cls.retry_backoff_s)),
                lookup_attempts=max(1, int(live.get("lookup_attempts", cls.lookup_attempts))),
                lookup_backoff_s=float(live.get("lookup_backoff_s", cls.lookup_backoff_s)),
                fill_timeout_s=float(live.get("fill_timeout_s", cls.fill_timeout_s)),
                fill_poll_s=float(live.get("fill_poll_s", cls.fill_poll_s)),
                poll_interval_s=float(live.get("poll_interval_s", cls.poll_interval_s)),
                adopt_balances=bool(live.get("adopt_balances", False)),
                symbols=tuple(str(s) for s in live.get("symbols") or ()),
                trades_limit=int(live.get("trades_limit", cls.trades_limit)),
                breaker_failures=max(1, int(live.get("breaker_failures", cls.breaker_failures))),
                breaker_cooldown_s=float(live.get("breaker_cooldown_s", cls.breaker_cooldown_s)),
            )
        except (TypeError, ValueError) as e:
            raise ConfigError("live", f"bad value: {e}") from None


class LiveCEX:
    """Orders through ccxt at Binance, Bybit and OKX; every outcome becomes a ledger fact."""

    def __init__(self, config: Mapping[str, Any], client_factory: ClientFactory | None = None) -> None:
        self.config = config
        self.client_factory = client_factory
        self.settings = Settings.from_config(config)
        self.clients: dict[str, VenueClient] = {}
        self.tracked: dict[str, Tracked] = {}
        self.resting: set[str] = set()
        self.inflight: set[str] = set()
        self.recovered: set[str] = set()
        self.errors: dict[str, str] = {}  # venue -> last problem, for status lines
        self.breakers: dict[str, CircuitBreaker] = {}
        self._last_poll = float("-inf")
        self.funding = FundingPoller(self)  # funding payments as the venues settle them

    # ---- clients ---------------------------------------------------------------------------------

    async def client(self, venue: str) -> VenueClient:
        """The started client of `venue`; VenueUnavailable (one clear reason) when it cannot be used."""
        client = self.clients.get(venue)
        if client is None:
            try:
                client = WatchedClient(self.breaker(venue), venue, self.config, self.client_factory)
            except ConfigError as e:
                raise VenueUnavailable(venue, "bad_config", str(e)) from None
            if client.creds.missing:
                missing = client.creds.missing
                envs = "/".join(m.upper() for m in missing)
                await client.close()
                raise VenueUnavailable(
                    venue,
                    "missing_credentials",
                    f"{', '.join(missing)} not set (config keys or environment variables {envs})",
                )
            self.clients[venue] = client
        if not client.started:
            try:
                await client.start()
            except ccxt.AuthenticationError as e:
                raise VenueUnavailable(venue, "authentication", parse.reason(e, client.secrets)) from None
            except ccxt.BaseError as e:
                raise VenueUnavailable(venue, "venue_unavailable", parse.reason(e, client.secrets)) from None
        return client

    def breaker(self, venue: str) -> CircuitBreaker:
        found = self.breakers.get(venue)
        if found is None:
            s = self.settings
            found = self.breakers[venue] = CircuitBreaker(
                venue, s.breaker_failures, s.breaker_cooldown_s, self.errors
            )
        return found

    async def close(self) -> None:
        clients, self.clients = self.clients, {}
        for client in clients.values():
            try:
                await client.close()
            except Exception as e:  # closing must not hide what the run reported
                log.warning("%s: closing the client failed: %s", client.venue, type(e).__name__)

    def _secrets(self, venue: str) -> tuple[str, ...]:
        client = self.clients.get(venue)
        return client.secrets if client is not None else ()

    # ---- recovery from the log -----------------------------------------------------------------

    def _recover(self, iface: BaseExecutionInterface, venue: str) -> None:
        """Rebuild what this backend tracks at `venue` from the venue's stream (after a restart)."""
        if venue in self.recovered:
            return
        self.recovered.add(venue)
        agg = iface.logger.venue(venue)
        ledger = getattr(iface.logger, "ledger", None)
        if ledger is None or agg.version == 0:
            return
        try:
            events = list(ledger.repository.event_store.get(agg.id))
        except Exception:  # a stream not saved yet has nothing to recover
            return
        for e in events:
            name = type(e).__name__
            iid = str(getattr(e, "instruction_id", ""))
            if not iid:
                continue
            if name == "InstructionAccepted":
                ins = e.instruction
                if ins.get("kind") != "ORDER" or iid in self.tracked:
                    continue
                self.tracked[iid] = Tracked(
                    iid,
                    venue,
                    ins.get("instrument", ""),
                    ins.get("market_type", "spot"),
                    ins.get("side", ""),
                    Decimal(ins.get("amount") or 0),
                    ins.get("order_type", "MARKET"),
                    ins.get("wallet", ""),
                )
            elif iid in self.tracked:
                t = self.tracked[iid]
                if name == "OrderSubmitted":
                    t.client_order_id = e.client_order_id
                elif name in ("OrderAcknowledged", "OrderReconciled") and e.venue_order_id:
                    t.venue_order_id = e.venue_order_id
        for iid, t in self.tracked.items():
            if t.venue == venue and agg.state_of(iid) in RESTING:
                self.resting.add(iid)

    def unresolved(self, iface: BaseExecutionInterface, venue: str) -> list[str]:
        """Instructions at `venue` whose venue outcome is not known (and nobody is working on)."""
        self._recover(iface, venue)
        agg = iface.logger.venue(venue)
        return sorted(
            iid
            for iid, t in self.tracked.items()
            if t.venue == venue and iid not in self.inflight and agg.state_of(iid) in UNRESOLVED
        )

    # ---- placing ---------------------------------------------------------------------------------

    async def place(
        self, iface: BaseExecutionInterface, order: OrderInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        with localcontext(MONEY):
            breaker = self.breaker(order.venue)
            if not breaker.allow():  # the venue is out: refuse before anything is written or sent
                venue, pending = order.venue, self.unresolved(iface, order.venue)
                self.errors[venue] = breaker.describe()
                code, reason = (
                    ("unresolved", self._unresolved_reason(venue, pending))
                    if pending  # the more useful message: what it takes to trade again
                    else (
                        "venue_unavailable",
                        f"venue: {venue} is unavailable, nothing was sent ({breaker.describe()})",
                    )
                )
                return iface.reject(venue, order.instruction_id, code, reason, raw, order)
            try:
                return await self._place(iface, order, dict(market), raw)
            finally:
                breaker.release()
                if breaker.state == "open":  # the status line names the breaker, not its last cause
                    self.errors[order.venue] = breaker.describe()

    async def _place(
        self, iface: BaseExecutionInterface, order: OrderInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        venue, inst, iid = order.venue, order.instrument, order.instruction_id
        try:
            client = await self.client(venue)
        except VenueUnavailable as e:
            self.errors[venue] = e.reason
            return iface.reject(venue, iid, e.code, e.reason, raw, order)
        pending = self.unresolved(iface, venue)
        if pending:
            return iface.reject(venue, iid, "unresolved", self._unresolved_reason(venue, pending), raw, order)
        spec = client.market(inst.symbol)
        if spec is None or not spec.get("active", True):
            state = "is not listed" if spec is None else "is not active"
            return iface.reject(
                venue, iid, "unknown_symbol", f"pair: {inst.symbol} {state} at {venue}", raw, order
            )
        ref = reference_price(market, venue, inst) or order.price
        if ref is None:
            ref = await self._ticker(client, inst.symbol)
            if ref is None:
                return iface.reject(
                    venue,
                    iid,
                    "no_price",
                    f"market_data: no price for {inst.symbol} at {venue}, and its ticker "
                    "could not be fetched",
                    raw,
                    order,
                )
            base = inst.base.lower()
            market[f"{venue}_{base}_{order.market_type}_price"] = ref
        problem = parse.check_order(spec, order.amount, order.price, ref, client.precision_mode)
        if problem is None:
            notional_usd = order.amount * ref * (usd_price(market, inst.quote) or Decimal(1))
            problem = risk.notional(iface.limits, venue, notional_usd)
        if problem is None and order.reduce_only and inst.market_type is MarketType.PERP:
            # as in the simulator: the ledger's position decides, nothing is sent to find out
            current = Decimal(iface.monitor.position(inst.symbol, venue)["amount"])
            problem = risk.reduce_only(current, order.side, order.amount)
        if problem is not None:
            return iface.reject(venue, iid, problem[0], problem[1], raw, order)

        logger = iface.logger
        wallet = iface.wallet(venue, order.market_type)
        agg = logger.venue(venue)
        now = logger.now()
        agg.record_accepted(iid, order.record(wallet), market, now)
        coid = client_order_id(iid, agg.next_attempt(iid))
        agg.record_submitted(iid, coid, now)
        logger.commit(agg)  # the write-ahead: durable before the request leaves
        tracked = Tracked(
            iid,
            venue,
            inst.symbol,
            order.market_type,
            order.side,
            order.amount,
            order.order_type,
            wallet,
            coid,
        )
        self.tracked[iid] = tracked
        self.inflight.add(iid)
        try:
            code, why = await self._submit(iface, client, tracked, order, spec)
        finally:
            self.inflight.discard(iid)
        result = self._result(iface, order, tracked, ref, code, why)
        iface.notify(result)
        return result

    def _unresolved_reason(self, venue: str, pending: list[str]) -> str:
        return (
            f"venue: {venue} has {len(pending)} instruction(s) with an unknown outcome "
            f"({', '.join(p[:8] for p in pending[:3])}); it trades again once `ledger reconcile` "
            "resolves them"
        )

    async def _ticker(self, client: VenueClient, symbol: str) -> Decimal | None:
        try:
            ticker = await client.call("fetch_ticker", symbol)
        except ccxt.BaseError as e:
            log.info("%s: ticker %s failed: %s", client.venue, symbol, parse.reason(e, client.secrets))
            return None
        last = parse.dec(ticker.get("last"))
        if last:
            return last
        bid, ask = parse.dec(ticker.get("bid")), parse.dec(ticker.get("ask"))
        return (bid + ask) / 2 if bid and ask else None

    async def _submit(
        self,
        iface: BaseExecutionInterface,
        client: VenueClient,
        t: Tracked,
        order: OrderInstruction,
        spec: dict[str, Any],
    ) -> tuple[str, str]:
        """Send once (again only after a rejection-before-execution); returns a (code, reason) for
        results that are not fills, else ("", "")."""
        params: dict[str, Any] = {"clientOrderId": t.client_order_id}
        if order.reduce_only and order.instrument.market_type is MarketType.PERP:
            params["reduceOnly"] = True
        kind = "limit" if order.order_type == "LIMIT" else "market"
        amount = float(parse.venue_amount(spec, order.amount))
        price = float(order.price) if order.price is not None else None
        logger, venue = iface.logger, t.venue
        attempt = 0
        while True:
            try:
                answer = await client.submit("create_order", t.symbol, kind, t.side, amount, price, params)
                break
            except Exception as e:  # every outcome of the request is classified, none is lost
                verdict = parse.classify(e)
                why = parse.reason(e, client.secrets)
                retry = verdict.category == "retry" and attempt < self.settings.submit_retries
                if retry and self.breaker(venue).state == "closed":
                    log.info(
                        "%s: order %s rejected before execution (%s); retrying", venue, t.client_order_id, why
                    )
                    seen, attempt = await self._before_resend(iface, client, t, spec, verdict.code, attempt)
                    if seen == "found":
                        return "", ""
                    if seen == "absent":
                        continue
                    verdict = parse.ErrorClass("unknown", "lookup_failed")
                    why = f"{why}; the order could not be looked up before sending it again"
                if verdict.category == "retry":  # giving up on it: unless the venue has the order after all
                    seen, _why = await self._look(iface, client, t, spec)
                    if seen == "found":
                        return "", ""
                agg = logger.venue(venue)
                if verdict.category in ("retry", "failed"):
                    agg.record_failed(t.instruction_id, verdict.code, why, logger.now())
                    logger.commit(agg)
                    return verdict.code, why
                agg.record_outcome_unknown(t.instruction_id, why, logger.now())
                logger.commit(agg)
                log.warning(
                    "%s: outcome of order %s unknown (%s); looking it up by client order id",
                    venue,
                    t.client_order_id,
                    why,
                )
                return await self._resolve(iface, client, t, spec, self.settings.lookup_attempts)
        report = parse.order_report(answer, spec)
        t.venue_order_id = report.venue_order_id
        agg = logger.venue(venue)
        agg.record_acknowledged(t.instruction_id, report.venue_order_id, logger.now())
        self._record_fills(iface, t, parse.embedded_fills(answer, spec))
        logger.commit(agg, durable=False)  # the venue's reply: it can be looked up again after a crash
        wait = self.settings.fill_timeout_s if t.order_type == "MARKET" else 0.0
        await self._follow(iface, client, t, spec, report if report.status else None, wait)
        return "", ""

    async def _pause_before_resend(self, client: VenueClient, code: str, attempt: int) -> None:
        if code == "invalid_nonce":
            try:
                await client.resync_clock()
            except ccxt.BaseError as e:
                log.info("%s: clock resync failed: %s", client.venue, parse.reason(e, client.secrets))
        factor = 4 if code == "maintenance" else 1
        await asyncio.sleep(self.settings.retry_backoff_s * factor * (2**attempt))

    # ---- following an order until the venue is done with it -----------------------------------------

    async def _follow(
        self,
        iface: BaseExecutionInterface,
        client: VenueClient,
        t: Tracked,
        spec: dict[str, Any],
        report: parse.OrderReport | None,
        wait_s: float,
        cancel_reason: str = "",
    ) -> None:
        """Record the order's fills and end state; poll for up to `wait_s` while it is working."""
        deadline = time.monotonic() + wait_s
        agg = iface.logger.venue(t.venue)
        while True:
            try:
                if report is None or not report.done:
                    answer = await client.call(
                        "fetch_order", t.venue_order_id, t.symbol, parse.lookup_by_id_params(t.venue)
                    )
                    report = parse.order_report(answer, spec)
                    self._record_fills(iface, t, parse.embedded_fills(answer, spec))
                if (report.filled or ZERO) > agg.filled.get(t.instruction_id, ZERO):
                    self._record_fills(iface, t, await self._order_fills(client, t, spec))
            except ccxt.BaseError as e:
                self.errors[t.venue] = parse.reason(e, client.secrets)
                log.info("%s: following order %s: %s", t.venue, t.client_order_id, self.errors[t.venue])
                iface.logger.commit(agg, durable=False)
                self._track_resting(iface, t)
                return
            recorded = agg.filled.get(t.instruction_id, ZERO)
            if report.done and recorded >= (report.filled or ZERO):
                self._finish(iface, t, report, cancel_reason)
                iface.logger.commit(agg, durable=False)
                self.resting.discard(t.instruction_id)
                return
            iface.logger.commit(agg, durable=False)
            if time.monotonic() >= deadline:
                self._track_resting(iface, t)
                return
            await asyncio.sleep(self.settings.fill_poll_s)
            report = None

    def _track_resting(self, iface: BaseExecutionInterface, t: Tracked) -> None:
        """Keep polling a working order, and a finished one whose trades are not all recorded yet."""
        agg = iface.logger.venue(t.venue)
        state = agg.state_of(t.instruction_id)
        short = state is State.FILLED and agg.filled.get(t.instruction_id, ZERO) < t.amount
        if state in RESTING or short:
            self.resting.add(t.instruction_id)

    def _finish(
        self, iface: BaseExecutionInterface, t: Tracked, report: parse.OrderReport, cancel_reason: str
    ) -> None:
        """The venue is done with the order: a shortfall is a cancel (or a venue rejection)."""
        agg, logger = iface.logger.venue(t.venue), iface.logger
        state = agg.state_of(t.instruction_id)
        if state in TERMINAL:
            return
        filled = agg.filled.get(t.instruction_id, ZERO)
        if report.status == "rejected":
            agg.record_failed(
                t.instruction_id,
                "venue_rejected",
                f"{t.venue} rejected order {report.venue_order_id}",
                logger.now(),
            )
        elif report.status == "closed" and filled >= t.amount:
            return
        else:
            why = (
                cancel_reason
                or f"{t.venue}: order {report.status or 'closed'} with {filled} of {t.amount} filled"
            )
            agg.record_cancelled(t.instruction_id, why, logger.now())

    async def _order_fills(self, client: VenueClient, t: Tracked, spec: dict[str, Any]) -> list[parse.Fill]:
        if t.venue == "binance" and spec.get("contract"):
            # Binance answers fetchOrderTrades for spot only; USDⓈ-M userTrades filters by orderId
            trades = await client.call("fetch_my_trades", t.symbol, None, None, {"orderId": t.venue_order_id})
        else:
            trades = await client.call("fetch_order_trades", t.venue_order_id, t.symbol)
        return parse.fills(trades, spec, t.venue_order_id)

    def _record_fills(self, iface: BaseExecutionInterface, t: Tracked, found: list[parse.Fill]) -> int:
        """Append each venue trade once (the aggregate ignores a trade id it already holds)."""
        agg, logger = iface.logger.venue(t.venue), iface.logger
        count = 0
        for f in found:
            now = logger.now()
            if agg.record_fill(
                t.instruction_id,
                f.trade_id,
                t.market_type,
                t.symbol,
                f.side,
                f.quantity,
                f.price,
                f.fee,
                f.fee_asset,
                parse.ms_to_utc(f.timestamp_ms, now),
                f.liquidity,
                t.wallet,
                None,
                None,
                now=now,
            ):
                t.fills.append(f)
                count += 1
        return count

    # ---- unknown outcomes ------------------------------------------------------------------------------

    async def _before_resend(
        self, iface: BaseExecutionInterface, client: VenueClient, t: Tracked, spec: dict[str, Any],
        code: str, attempt: int,
    ) -> tuple[str, int]:
        """After a rejection that should mean "not executed", wait, then ask the venue for the order
        by its client id; send again only once it says there is none (Binance reuses the client id
        of a filled order: a blind resend would trade twice). Returns ("found" | "absent" |
        "unknown", attempts used)."""
        while True:
            await self._pause_before_resend(client, code, attempt)
            attempt += 1
            seen, _why = await self._look(iface, client, t, spec)
            if seen != "unknown" or attempt >= self.settings.submit_retries:
                return seen, attempt

    async def _look(
        self, iface: BaseExecutionInterface, client: VenueClient, t: Tracked, spec: dict[str, Any],
        *, between_resends: bool = True,
    ) -> tuple[str, str]:
        """One lookup by client id: ("found" (then recorded and followed) | "absent" | "unknown", why).
        Between resends the answer does not close the circuit breaker (`VenueClient.check`)."""
        order_id, params = parse.lookup_by_client_id(t.venue, t.client_order_id)
        fetch = client.check if between_resends else client.call
        try:
            answer = await fetch("fetch_order", order_id, t.symbol, params)
        except ccxt.OrderNotFound:
            return "absent", f"no order with client order id {t.client_order_id} at {t.venue}"
        except ccxt.BaseError as e:
            why = parse.reason(e, client.secrets)
            log.info("%s: lookup of %s failed: %s", t.venue, t.client_order_id, why)
            return "unknown", why
        if between_resends:
            log.warning("%s: order %s was rejected but exists at the venue; not sending it again",
                        t.venue, t.client_order_id)
        await self._adopt(iface, client, t, spec, answer)
        return "found", ""

    async def _adopt(
        self, iface: BaseExecutionInterface, client: VenueClient, t: Tracked, spec: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        """Record an order found by its client id (its state and fills), then follow it."""
        logger = iface.logger
        report = parse.order_report(answer, spec)
        agg = logger.venue(t.venue)
        t.venue_order_id = report.venue_order_id
        agg.record_reconciled(t.instruction_id, report.outcome, report.venue_order_id, logger.now())
        self._record_fills(iface, t, parse.embedded_fills(answer, spec))
        logger.commit(agg)
        await self._follow(iface, client, t, spec, report, 0.0)

    async def _resolve(
        self,
        iface: BaseExecutionInterface,
        client: VenueClient,
        t: Tracked,
        spec: dict[str, Any],
        attempts: int,
        record_not_found: bool = True,
    ) -> tuple[str, str]:
        """Look the order up by client order id (bounded, with backoff); never send it again."""
        logger = iface.logger
        errors, last = 0, ""
        for attempt in range(attempts):
            seen, last = await self._look(iface, client, t, spec, between_resends=False)
            if seen == "found":
                return "", ""
            errors += seen == "unknown"
            if attempt + 1 < attempts:
                await asyncio.sleep(self.settings.lookup_backoff_s * (2**attempt))
        if errors == 0 and record_not_found:
            agg = logger.venue(t.venue)
            agg.record_reconciled(t.instruction_id, "not_found", "", logger.now())
            logger.commit(agg)
            return "not_placed", (
                f"{t.venue} has no order with client order id {t.client_order_id} after {attempts} "
                "lookups; it was not sent again"
            )
        self.errors[t.venue] = last
        return (
            "unknown_outcome",
            f"the outcome at {t.venue} is not known yet ({last}); run `ledger reconcile`",
        )

    # ---- results ---------------------------------------------------------------------------------------

    def _result(
        self,
        iface: BaseExecutionInterface,
        order: OrderInstruction,
        t: Tracked,
        ref: Decimal,
        code: str,
        why: str,
    ) -> dict[str, Any]:
        agg = iface.logger.venue(t.venue)
        state = agg.state_of(t.instruction_id)
        filled = sum((f.quantity for f in t.fills), ZERO)
        average = sum((f.quantity * f.price for f in t.fills), ZERO) / filled if filled else ZERO
        fee_asset = t.fills[0].fee_asset if t.fills else order.instrument.settle
        fee = sum((f.fee for f in t.fills if f.fee_asset == fee_asset), ZERO)
        sign = Decimal(1) if order.side == "buy" else Decimal(-1)
        bps = results.trim((average / ref - 1) * BPS * sign) if filled and ref else ZERO
        if state is State.FILLED:
            status = "FILLED"
        elif filled:
            status = "PARTIALLY_FILLED"
        elif state in (State.ACKNOWLEDGED, State.SUBMITTED, State.CANCEL_REQUESTED) and not code:
            status = "SUBMITTED"
        elif state is State.UNKNOWN:
            status = "UNKNOWN"
        else:
            status = "FAILED"
        result = results.order(
            iface.execution_mode,
            order,
            status,
            t.client_order_id,
            filled,
            results.trim(average) if filled else ZERO,
            ref,
            bps,
            fee,
            fee_asset,
        )
        if status in ("FAILED", "UNKNOWN"):
            if not code:
                code, why = (
                    ("cancelled", f"{t.venue} ended the order unfilled")
                    if state is State.CANCELLED
                    else ("unknown_outcome", "the venue has not reported the outcome yet")
                )
            result.update(code=code, reason=why)
        return result

    # ---- time-driven: resting orders ---------------------------------------------------------------

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        """Due at every step while orders rest (the polling interval is applied in `advance`), else
        when the funding poller is."""
        if self.resting - self.inflight:
            return DUE_NOW
        return self.funding.next_due(iface)

    async def advance(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        """Poll resting orders (at most every `poll_interval_s`) and record their fills and cancels."""
        if time.monotonic() - self._last_poll < self.settings.poll_interval_s:
            await self.funding.poll(iface, market)  # it keeps its own interval
            return
        self._last_poll = time.monotonic()
        with localcontext(MONEY):
            for iid in sorted(self.resting - self.inflight):
                t = self.tracked[iid]
                before = iface.logger.venue(t.venue).filled.get(iid, ZERO)
                try:
                    client = await self.client(t.venue)
                except VenueUnavailable as e:
                    self.errors[t.venue] = e.reason
                    continue
                spec = client.market(t.symbol) or {}
                await self._follow(iface, client, t, spec, None, 0.0)
                agg = iface.logger.venue(t.venue)
                if agg.filled.get(iid, ZERO) != before or agg.state_of(iid) in TERMINAL:
                    iface.notify(
                        {
                            "status": str(agg.state_of(iid)),
                            "instruction_id": iid,
                            "venue": t.venue,
                            "symbol": t.symbol,
                        }
                    )
        await self.funding.poll(iface, market)

    # ---- cancelling --------------------------------------------------------------------------------

    def _cex_venues(self, iface: BaseExecutionInterface) -> list[str]:
        return [v for v in VENUES if iface.logger.venue_type(v) == "cex"]

    async def cancel_all(self, iface: BaseExecutionInterface, venue: str | None) -> list[str]:
        """Cancel every open order at the venue(s): ours are recorded `CancelRequested` first, then
        `OrderCancelled` (or their last fills) from what the venue reports afterwards."""
        cancelled: list[str] = []
        with localcontext(MONEY):
            for v in [venue] if venue else self._cex_venues(iface):
                try:
                    cancelled.extend(await self._cancel_venue(iface, v))
                except VenueUnavailable as e:
                    self.errors[v] = e.reason
                    log.warning("%s: cancel_all_orders not possible: %s", v, e.reason)
        return cancelled

    async def _cancel_venue(self, iface: BaseExecutionInterface, venue: str) -> list[str]:
        client = await self.client(venue)
        self._recover(iface, venue)
        logger = iface.logger
        agg = logger.venue(venue)
        ours = [
            self.tracked[i] for i in sorted(self.resting - self.inflight) if self.tracked[i].venue == venue
        ]
        for t in ours:
            if agg.state_of(t.instruction_id) is not State.CANCEL_REQUESTED:
                agg.record_cancel_requested(t.instruction_id, logger.now())
        logger.commit(agg)
        symbols = sorted({t.symbol for t in ours} | set(self.settings.symbols))
        for symbol in symbols:
            if client.market(symbol) is None:
                continue
            try:
                open_orders = await client.call("fetch_open_orders", symbol)
                if not open_orders:
                    continue
                if venue == "okx":  # OKX has no cancel-all: list, then cancel in batches of 20
                    ids = [str(o["id"]) for o in open_orders]
                    for start in range(0, len(ids), 20):
                        await client.submit("cancel_orders", ids[start : start + 20], symbol)
                else:
                    await client.submit("cancel_all_orders", symbol)
            except ccxt.BaseError as e:
                self.errors[venue] = parse.reason(e, client.secrets)
                log.warning("%s: cancelling %s: %s", venue, symbol, self.errors[venue])
        done: list[str] = []
        for t in ours:
            await self._follow(
                iface, client, t, client.market(t.symbol) or {}, None, 0.0, cancel_reason="cancel_all_orders"
            )
            if agg.state_of(t.instruction_id) is State.CANCELLED:
                done.append(t.instruction_id)
        return done

    # ---- reconciliation ---------------------------------------------------------------------------

    async def refresh(self, iface: BaseExecutionInterface, venue: str | None = None) -> dict[str, Any]:
        return await self.reconcile(iface, [venue] if venue else None)

    async def reconcile(
        self, iface: BaseExecutionInterface, venues: list[str] | None = None
    ) -> dict[str, Any]:
        """Resolve in-flight instructions, record missing fills once, observe balances and positions."""
        out: dict[str, Any] = {}
        with localcontext(MONEY):
            for venue in venues or self._cex_venues(iface):
                out[venue] = await self._reconcile_venue(iface, venue)
        return out

    async def _reconcile_venue(self, iface: BaseExecutionInterface, venue: str) -> dict[str, Any]:
        report: dict[str, Any] = {
            "venue": venue,
            "resolved": [],
            "unresolved": [],
            "fills_recorded": 0,
            "open_orders": 0,
            "foreign_open_orders": 0,
            "balances": [],
            "positions": [],
            "error": "",
        }
        self._recover(iface, venue)
        try:
            client = await self.client(venue)
        except VenueUnavailable as e:
            report["error"] = e.reason
            report["unresolved"] = self.unresolved(iface, venue)
            return report
        logger = iface.logger
        agg = logger.venue(venue)
        try:
            await self._resolve_all(iface, client, venue, report)
            symbols = self._symbols(venue)
            positions = await observe.venue_positions(client, symbols)
            symbols = sorted(set(symbols) | set(positions))
            report["fills_recorded"] = await self._missing_fills(iface, client, venue, symbols)
            ours = [t.venue_order_id for t in self.tracked.values() if t.venue == venue]
            await observe.count_open_orders(client, symbols, ours, report)
            report["positions"] = observe.compare_positions(iface, venue, positions)
            report["balances"] = await observe.observe_balances(
                iface, client, venue, self.settings.adopt_balances
            )
        except ccxt.BaseError as e:
            report["error"] = parse.reason(e, client.secrets)
            self.errors[venue] = report["error"]
        logger.commit(agg)
        report["unresolved"] = self.unresolved(iface, venue)
        if not report["error"]:
            self.errors.pop(venue, None)
        iface.notify({"status": "RECONCILED", "venue": venue})
        return report

    async def _resolve_all(
        self, iface: BaseExecutionInterface, client: VenueClient, venue: str, report: dict[str, Any]
    ) -> None:
        agg = iface.logger.venue(venue)
        for iid in sorted(self.tracked):
            t = self.tracked[iid]
            state = agg.state_of(iid)
            if t.venue != venue or iid in self.inflight or state in TERMINAL:
                continue
            spec = client.market(t.symbol) or {}
            if state in (State.SUBMITTED, State.UNKNOWN) or (
                state is State.CANCEL_REQUESTED and not t.venue_order_id
            ):
                code, _why = await self._resolve(iface, client, t, spec, self.settings.lookup_attempts)
                if code != "unknown_outcome":
                    report["resolved"].append(iid)
            elif state is State.NOT_PLACED:
                # a late arrival of an order we gave up on is still recorded (a venue fact)
                code, _why = await self._resolve(iface, client, t, spec, 1, record_not_found=False)
                if code == "":
                    report["resolved"].append(iid)
            elif state in RESTING and t.venue_order_id:
                await self._follow(iface, client, t, spec, None, 0.0)
                if agg.state_of(iid) is State.CANCEL_REQUESTED:
                    # the cancel did not take: the order is still working at the venue
                    agg.record_reconciled(iid, "open", t.venue_order_id, iface.logger.now())
                    iface.logger.commit(agg)
                    self.resting.add(iid)
                report["resolved"].append(iid)

    def _symbols(self, venue: str) -> list[str]:
        return sorted(
            {t.symbol for t in self.tracked.values() if t.venue == venue} | set(self.settings.symbols)
        )

    async def _missing_fills(
        self, iface: BaseExecutionInterface, client: VenueClient, venue: str, symbols: list[str]
    ) -> int:
        agg = iface.logger.venue(venue)
        by_order = {
            t.venue_order_id: t for t in self.tracked.values() if t.venue == venue and t.venue_order_id
        }
        recorded = 0
        for symbol in symbols:
            spec = client.market(symbol)
            if spec is None:
                continue
            trades = await client.call("fetch_my_trades", symbol, None, self.settings.trades_limit)
            for trade in trades:
                item = parse.fill(trade, spec)
                if item is None:
                    continue
                t = by_order.get(item.venue_order_id)
                if t is None:
                    iid = agg.client_ids.get(parse.client_id_of(trade))
                    t = self.tracked.get(iid) if iid else None
                if t is None or t.symbol != symbol:
                    continue  # not ours (a manual trade): it shows up as a balance difference
                recorded += self._record_fills(iface, t, [item])
        iface.logger.commit(agg)
        return recorded


__all__ = ["CircuitBreaker", "LiveCEX", "Settings", "Tracked", "VenueUnavailable", "WatchedClient"]
