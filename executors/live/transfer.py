"""`LiveTransfers`: moves of funds between venues in live mode, matched end to end (SPEC §12.18).

Routes (the source and target venue decide):

* CEX → chain or another CEX: a withdrawal through ccxt to our wallet address or the other venue's
  deposit address. `InstructionAccepted` is committed before the request (write-ahead, with a
  client id derived from the instruction id); the venue's answer is `TransferSent` (amount + fee off
  the source) with `TransferObserved` (withdrawal id); the txid, once the venue broadcasts, is
  another `TransferObserved`; the arrival is `TransferReceived` at the target (the chain receipt
  with N confirmations, or the target venue's deposit with that txid).
* chain → CEX: the on-chain TRANSFER to the CEX's deposit address is sent by the live chain backend
  (`LiveChain.send_leg`: signed, `TransactionSubmitted` before broadcast, confirmed); its
  confirmation records `TransferSent` in the same commit; the CEX's deposit with that txid is the
  `TransferReceived`.
* between two wallets of one CEX: ccxt `transfer`; sent and received in one commit.

An answer that may or may not have executed (timeout, network) is looked up by the client id and
never sent again; until it is found the source venue refuses new transfers (fail closed per venue).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import ccxt
from eth_utils.address import is_address, to_checksum_address

from aggregates.ids import client_order_id, transfer_id
from aggregates.transitions import State
from aggregates.values import MONEY
from executors import results, risk
from executors.costs import ConfigError
from executors.instructions import ChainInstruction, Invalid, TransferInstruction
from executors.live import ccxt_parse as parse
from executors.live.cex import LiveCEX, VenueUnavailable
from executors.live.cex_funding import to_ms
from executors.live.chain import LiveChain, Refusal
from executors.live.transfer_match import arrival_on_chain, deposit_matching, withdrawal_of

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface
    from executors.live.ccxt_client import VenueClient

log = logging.getLogger("executors.live")
ZERO = Decimal(0)
DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)
# Where deposits land and withdrawals leave from, per venue (SPEC §12.3 wallet names).
FUNDING_WALLETS = {"binance": "spot", "bybit": "funding", "okx": "funding"}
# Our wallet names -> ccxt's account names for `transfer`.
CCXT_ACCOUNTS = {
    "binance": {"spot": "spot", "futures": "linear", "funding": "funding"},
    "bybit": {"funding": "funding", "unified": "unified"},
    "okx": {"funding": "funding", "trading": "trading"},
}
# The withdrawal's client id: the venue-native parameter ccxt passes through.
WITHDRAW_CLIENT_ID = {"binance": "withdrawOrderId", "bybit": "requestId", "okx": "clientId"}
# ccxt's network codes for Ethereum mainnet per venue and asset (Bybit and OKX call ETH's "ERC20" too).
DEFAULT_NETWORKS = {
    "binance": {"ETH": "ETH", "USDT": "ERC20", "USDC": "ERC20"},
    "bybit": {"ETH": "ERC20", "USDT": "ERC20", "USDC": "ERC20"},
    "okx": {"ETH": "ERC20", "USDT": "ERC20", "USDC": "ERC20"},
}


@dataclass(frozen=True)
class TransferSettings:
    networks: Mapping[str, Mapping[str, str]]  # venue -> asset -> ccxt network code
    poll_s: float = 5.0
    lookup_attempts: int = 3
    confirmations: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TransferSettings:
        table = config.get("transfers") or {}
        if not isinstance(table, Mapping):
            raise ConfigError("transfers", "expected a table")
        chain = config.get("chain") or {}
        try:
            given = dict(table.get("networks") or {})
            networks = {v: dict(n) for v, n in DEFAULT_NETWORKS.items()}
            for key, value in given.items():
                if isinstance(value, Mapping):  # [transfers.networks.<venue>] ASSET = "CODE"
                    codes = {str(a).upper(): str(c) for a, c in value.items()}
                    networks.setdefault(str(key), {}).update(codes)
                else:  # [transfers.networks] ASSET = "CODE" for every venue
                    for table_of in networks.values():
                        table_of[str(key).upper()] = str(value)
            return cls(
                networks=networks,
                poll_s=float(table.get("poll_s", cls.poll_s)),
                lookup_attempts=max(1, int(table.get("lookup_attempts", cls.lookup_attempts))),
                confirmations=max(1, int(table.get("confirmations", chain.get("confirmations", 1)))),
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError("transfers", f"bad value: {e}") from None


@dataclass
class Moving:
    """One live transfer between its acceptance and its arrival (rebuilt from the log on restart)."""

    t: TransferInstruction
    transfer_id: str
    from_wallet: str
    to_wallet: str
    route: str  # withdrawal | deposit | internal
    client_id: str = ""
    address: str = ""
    fee: Decimal = ZERO
    stage: str = "requested"  # requested (outcome unknown) | withdrawing | in_transit | done
    external_id: str = ""
    txid: str = ""
    lookups: int = 0
    since_ms: int = 0


class LiveTransfers:
    """The transfer backend of a live engine; the factory binds it to the live CEX and chain."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.settings = TransferSettings.from_config(config)
        self.cex: LiveCEX | None = None
        self.chain: Any = None  # LiveChain, or ChainNotConfigured
        self.moving: dict[str, Moving] = {}  # instruction id -> transfer
        self.recovered = False
        self.errors: dict[str, str] = {}
        self._last_poll = float("-inf")
        self._with_currencies: set[int] = set()  # clients whose currency list is loaded

    def bind(self, cex: Any, chain: Any) -> None:
        self.cex = cex if isinstance(cex, LiveCEX) else None
        self.chain = chain
        if isinstance(chain, LiveChain):
            chain.legs = self

    # ---- the chain backend's view (TransferLegs) -------------------------------------------------

    def is_leg(self, iface: BaseExecutionInterface, instruction_id: str) -> bool:
        self._recover(iface)  # the chain may resolve a leg sent before a restart first
        m = self.moving.get(instruction_id)
        return m is not None and m.route == "deposit"

    def confirmed(
        self, iface: BaseExecutionInterface, agg: Any, instruction_id: str, tx_hash: str, ts: datetime
    ) -> None:
        """The chain leg is confirmed: the funds left the wallet (in the confirmation's commit)."""
        m = self.moving[instruction_id]
        now = iface.logger.now()
        agg.record_transfer_sent(m.t.instruction_id, m.transfer_id, m.t.asset, m.t.amount, ZERO,
                                 m.from_wallet, m.t.to_venue, m.to_wallet, ts, now)
        agg.record_transfer_observed(m.t.instruction_id, m.transfer_id, "broadcast", tx_hash, tx_hash,
                                     "confirmed", m.address, ts, now)
        m.stage, m.external_id, m.txid = "in_transit", tx_hash, tx_hash

    # ---- the interface's calls -------------------------------------------------------------------

    async def transfer(
        self, iface: BaseExecutionInterface, instruction: Any, market: dict[str, Decimal]
    ) -> dict[str, Any]:
        venue, iid, parsed = iface.parse_transfer_at(instruction)
        if isinstance(parsed, Invalid):
            return iface.invalid(venue, iid, parsed, instruction)
        self._recover(iface)
        t: TransferInstruction = parsed
        chain_venue = iface.chain_venue
        try:
            with localcontext(MONEY):
                if t.venue == chain_venue and t.to_venue == chain_venue:
                    raise Invalid("invalid_field", "to_venue", "a transfer from the chain venue to itself "
                                  "moves nothing (use an on-chain TRANSFER to another address)")
                open_here = [m.t.instruction_id for m in self.moving.values()
                             if m.t.venue == t.venue and m.stage == "requested" and m.route != "deposit"]
                if open_here:
                    raise Refusal("unresolved_transfers", f"from_venue: transfers from {t.venue} whose "
                                  f"outcome is not known yet ({', '.join(open_here)}); run `ledger "
                                  "reconcile` or wait for the next poll")
                if t.venue == chain_venue:
                    return await self._deposit(iface, t, market, instruction)
                if t.venue == t.to_venue:
                    return await self._internal(iface, t, market, instruction)
                return await self._withdraw(iface, t, market, instruction)
        except Invalid as e:
            return iface.invalid(venue, iid, e, instruction)
        except Refusal as r:
            return iface.reject(t.venue, iid, r.code, r.reason, instruction, t)

    def next_due(self) -> datetime | None:
        """Due at once until the log was read (a restart may have transfers to follow), then while any
        transfer is open."""
        if not self.recovered or any(m.stage != "done" for m in self.moving.values()):
            return DUE_NOW
        return None

    async def advance(self, iface: BaseExecutionInterface, ts: datetime) -> None:
        """One look at every open transfer, at most every `poll_s`."""
        self._recover(iface)
        if time.monotonic() - self._last_poll < self.settings.poll_s:
            return
        self._last_poll = time.monotonic()
        await self._poll(iface)

    async def reconcile(self, iface: BaseExecutionInterface) -> dict[str, Any]:
        """Resolve every open transfer now; the report says what stays open and why."""
        self._recover(iface)
        await self._poll(iface, force=True)
        return {
            "open": {m.t.instruction_id: m.stage for m in self.moving.values() if m.stage != "done"},
            "unresolved": sorted(m.t.instruction_id for m in self.moving.values() if m.stage == "requested"),
            "issues": dict(self.errors),
        }

    # ---- routes ----------------------------------------------------------------------------------

    def _check_funds(self, iface: BaseExecutionInterface, t: TransferInstruction, wallet: str,
                     fee: Decimal) -> None:
        have = iface.monitor.balance(t.asset, t.venue, wallet)
        problem = risk.balance(have, t.amount + fee, t.asset, f"{t.venue}/{wallet} (withdrawal fee {fee})")
        if problem is not None:
            raise Refusal(*problem)

    async def _client(self, venue: str) -> VenueClient:
        if self.cex is None:
            raise Refusal("not_configured", f"to_venue: {venue} is not a live CEX venue of this engine")
        try:
            return await self.cex.client(venue)
        except VenueUnavailable as e:
            raise Refusal(e.code, e.reason) from None

    def _network(self, venue: str, asset: str) -> str:
        network = self.settings.networks.get(venue, {}).get(asset)
        if network is None:
            raise Invalid("invalid_field", "asset", f"no {venue} network is configured for {asset} "
                          "([transfers.networks])")
        return network

    async def _currencies(self, client: VenueClient) -> None:
        """OKX maps networks and default fees through its currency list, which the trading client does
        not load (a private call): load it once, now that the clock offset is known."""
        if client.venue == "okx" and id(client) not in self._with_currencies:
            client.exchange.has["fetchCurrencies"] = True
            await client.call("load_markets", True)
            self._with_currencies.add(id(client))

    async def _deposit_address(self, venue: str, asset: str) -> str:
        client = await self._client(venue)
        network = self._network(venue, asset)
        try:
            await self._currencies(client)
            answer = await client.call("fetch_deposit_address", asset, {"network": network})
        except ccxt.BaseError as e:
            raise Refusal("no_deposit_address", f"to_venue: {venue} gave no {asset} deposit address: "
                          f"{parse.reason(e, client.secrets)}") from None
        address = str(answer.get("address") or "")
        if not is_address(address):
            raise Refusal("no_deposit_address", f"to_venue: {venue}'s {asset} deposit address "
                          f"{address!r} is not an Ethereum address")
        return to_checksum_address(address)

    def _accept(self, iface: BaseExecutionInterface, m: Moving, market: dict[str, Decimal]) -> None:
        logger = iface.logger
        agg = logger.venue(m.t.venue)
        record = {**m.t.record(m.from_wallet, m.to_wallet), "route": m.route, "address": m.address,
                  "client_id": m.client_id}
        agg.record_accepted(m.t.instruction_id, record, market, logger.now())
        logger.commit(agg)

    async def _withdraw(
        self, iface: BaseExecutionInterface, t: TransferInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        chain_venue = iface.chain_venue
        if t.to_venue == chain_venue and not isinstance(self.chain, LiveChain):
            raise Refusal("not_configured", "to_venue: the chain venue has no live wallet configured "
                          "(wallet_private_key), so an arrival could not be matched")
        client = await self._client(t.venue)
        try:
            await self._currencies(client)
        except ccxt.BaseError as e:
            raise Refusal("venue_unavailable", f"from_venue: {t.venue}'s currency list could not be "
                          f"loaded: {parse.reason(e, client.secrets)}") from None
        if isinstance(self.chain, LiveChain) and t.to_venue == chain_venue:
            address = self.chain.address
        else:
            address = await self._deposit_address(t.to_venue, t.asset)
        from_wallet = t.from_wallet or FUNDING_WALLETS.get(t.venue, iface.wallet(t.venue))
        to_wallet = t.to_wallet or _arrival_wallet(iface, t.to_venue)
        fee = iface.costs.withdrawal_fee(t.venue, t.asset)
        self._check_funds(iface, t, from_wallet, fee)
        m = Moving(t, transfer_id(t.instruction_id), from_wallet, to_wallet, "withdrawal",
                   client_id=client_order_id(t.instruction_id), address=address, fee=fee,
                   since_ms=to_ms(iface.logger.now()) - 60_000)
        self.moving[t.instruction_id] = m
        self._accept(iface, m, market)  # write-ahead: durable before the request leaves
        params = {"network": self._network(t.venue, t.asset), WITHDRAW_CLIENT_ID[t.venue]: m.client_id}
        try:
            answer = await client.submit("withdraw", t.asset, float(t.amount), address, params=params)
        except ccxt.BaseError as e:
            kind = parse.classify(e)
            text = parse.reason(e, client.secrets)
            if kind.category != "unknown":  # refused before anything moved: nothing to look up
                return self._failed(iface, m, kind.code, f"{t.venue} refused the withdrawal: {text}")
            self.errors[t.venue] = text
            await self._lookup(iface, m, client)
            return self._result(iface, m)
        w = withdrawal_of(answer)
        if w["fee"] is None:
            w["fee"] = await self._fee_of(client, m, w["id"])
        self._sent(iface, m, w)
        return self._result(iface, m)

    async def _fee_of(self, client: VenueClient, m: Moving, withdrawal_id: str) -> Decimal | None:
        """The fee the venue charged, from its withdrawal history (most venues' `withdraw` answer has
        only the id); None when it does not say (the configured fee is recorded then)."""
        try:
            listed = [withdrawal_of(x) for x in await self._withdrawals(client, m)]
        except ccxt.BaseError as e:
            log.info("%s: withdrawal fee lookup failed: %s", m.t.venue, parse.reason(e, client.secrets))
            return None
        fees = [w["fee"] for w in listed if w["id"] == withdrawal_id and w["fee"] is not None]
        return fees[0] if fees else None

    async def _internal(
        self, iface: BaseExecutionInterface, t: TransferInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        client = await self._client(t.venue)
        accounts = CCXT_ACCOUNTS.get(t.venue, {})
        from_wallet = t.from_wallet or iface.wallet(t.venue)
        to_wallet = t.to_wallet or FUNDING_WALLETS.get(t.venue, "")
        if from_wallet == to_wallet:
            raise Invalid("invalid_field", "to_wallet",
                          f"{t.venue}: from and to wallet are both {from_wallet}")
        for name, wallet in (("from_wallet", from_wallet), ("to_wallet", to_wallet)):
            if wallet not in accounts:
                raise Invalid("invalid_field", name, f"{t.venue} has no wallet {wallet!r} (known: "
                              f"{', '.join(sorted(accounts))})")
        self._check_funds(iface, t, from_wallet, ZERO)
        m = Moving(t, transfer_id(t.instruction_id), from_wallet, to_wallet, "internal",
                   client_id=client_order_id(t.instruction_id))
        self.moving[t.instruction_id] = m
        self._accept(iface, m, market)
        try:
            answer = await client.submit("transfer", t.asset, float(t.amount), accounts[from_wallet],
                                         accounts[to_wallet])
        except ccxt.BaseError as e:
            kind = parse.classify(e)
            text = parse.reason(e, client.secrets)
            if kind.category == "unknown":
                # No venue looks an internal move up by our id: the balances at `ledger reconcile` decide.
                self.errors[t.venue] = f"internal move {t.instruction_id}: {text}"
                return self._result(iface, m)
            return self._failed(iface, m, kind.code, f"{t.venue} refused the move: {text}")
        logger = iface.logger
        agg = logger.venue(t.venue)
        now = logger.now()
        agg.record_transfer_sent(t.instruction_id, m.transfer_id, t.asset, t.amount, ZERO, from_wallet,
                                 t.venue, to_wallet, now)
        agg.record_transfer_observed(t.instruction_id, m.transfer_id, "internal", str(answer.get("id") or ""),
                                     "", "ok", "", now)
        agg.record_transfer_received(m.transfer_id, t.venue, to_wallet, t.asset, t.amount, now)
        logger.commit(agg)
        m.stage = "done"
        return self._result(iface, m)

    async def _deposit(
        self, iface: BaseExecutionInterface, t: TransferInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        if not isinstance(self.chain, LiveChain):
            raise Refusal("not_configured", "from_venue: live on-chain execution needs a wallet key "
                          "(config or WALLET_PRIVATE_KEY)")
        address = await self._deposit_address(t.to_venue, t.asset)
        from_wallet = iface.wallet(t.venue)
        to_wallet = t.to_wallet or FUNDING_WALLETS.get(t.to_venue, iface.wallet(t.to_venue))
        self._check_funds(iface, t, from_wallet, ZERO)
        m = Moving(t, transfer_id(t.instruction_id), from_wallet, to_wallet, "deposit", address=address,
                   since_ms=to_ms(iface.logger.now()) - 60_000)
        self.moving[t.instruction_id] = m
        op = ChainInstruction(t.instruction_id, t.venue, "TRANSFER", t.asset, "", t.amount, address)
        record = {**t.record(from_wallet, to_wallet), "route": "deposit", "address": address,
                  "client_id": ""}
        leg = await self.chain.send_leg(iface, op, market, raw, record)
        status = leg.get("status")
        if status in ("REJECTED", "FAILED"):
            m.stage = "done"
            return {**self._result(iface, m), "status": status, "code": leg.get("code", ""),
                    "reason": leg.get("reason", ""), "tx_hash": leg.get("tx_hash", "")}
        return {**self._result(iface, m), "tx_hash": leg.get("tx_hash", ""),
                "gas_cost": leg.get("gas_cost", ZERO)}

    # ---- outcomes --------------------------------------------------------------------------------

    def _sent(self, iface: BaseExecutionInterface, m: Moving, w: dict[str, Any]) -> None:
        """The venue has the withdrawal: the funds left (amount + fee), its id (and txid) recorded."""
        logger = iface.logger
        agg = logger.venue(m.t.venue)
        now = logger.now()
        fee = w.get("fee")
        if isinstance(fee, Decimal) and fee >= 0:
            m.fee = fee
        m.external_id = str(w.get("id") or "")
        agg.record_transfer_sent(m.t.instruction_id, m.transfer_id, m.t.asset, m.t.amount, m.fee,
                                 m.from_wallet, m.t.to_venue, m.to_wallet, now)
        agg.record_transfer_observed(m.t.instruction_id, m.transfer_id, "withdrawal", m.external_id, "",
                                     str(w.get("status") or "pending"), m.address, now)
        m.stage = "withdrawing"
        self._txid(agg, m, w, now)
        logger.commit(agg)
        self.errors.pop(m.t.venue, None)

    def _txid(self, agg: Any, m: Moving, w: Mapping[str, Any], now: datetime) -> None:
        txid = str(w.get("txid") or "")
        if txid and m.stage == "withdrawing" and w.get("status") == "ok":
            agg.record_transfer_observed(m.t.instruction_id, m.transfer_id, "broadcast", m.external_id, txid,
                                         "ok", m.address, now)
            m.txid, m.stage = txid, "in_transit"

    def _failed(self, iface: BaseExecutionInterface, m: Moving, code: str, reason: str,
                refunded: Decimal = ZERO) -> dict[str, Any]:
        logger = iface.logger
        agg = logger.venue(m.t.venue)
        agg.record_transfer_failed(m.t.instruction_id, m.transfer_id, f"{code}: {reason}", refunded,
                                   logger.now())
        logger.commit(agg)
        m.stage = "done"
        result = self._result(iface, m)
        result.update(status="FAILED", code=code, reason=reason)
        iface.notify(result)
        return result

    def _result(self, iface: BaseExecutionInterface, m: Moving) -> dict[str, Any]:
        status = {"requested": "UNKNOWN", "withdrawing": "IN_TRANSIT", "in_transit": "IN_TRANSIT",
                  "done": "COMPLETED"}[m.stage]
        if m.route == "deposit" and m.stage == "requested":
            status = "SUBMITTED"  # the chain leg is not confirmed yet
        result = results.transfer(iface.execution_mode, m.t, status, m.transfer_id, m.fee, "")
        result.update(withdrawal_id=m.external_id if m.route == "withdrawal" else "", txid=m.txid,
                      address=m.address)
        return result

    # ---- following transfers ---------------------------------------------------------------------

    async def _poll(self, iface: BaseExecutionInterface, force: bool = False) -> None:
        for m in sorted(self.moving.values(), key=lambda x: x.t.instruction_id):
            try:
                if m.stage == "requested" and m.route == "deposit":
                    ended = (State.REJECTED, State.FAILED, State.TX_REVERTED, State.TRANSFER_FAILED)
                    if iface.logger.venue(m.t.venue).state_of(m.t.instruction_id) in ended:
                        m.stage = "done"  # the chain leg never confirmed: nothing left
                elif m.stage == "requested" and m.route == "withdrawal":
                    await self._lookup(iface, m, await self._client(m.t.venue), force)
                elif m.stage == "withdrawing":
                    await self._follow(iface, m)
                elif m.stage == "in_transit":
                    await self._arrival(iface, m)
            except (ccxt.BaseError, Refusal) as e:
                self.errors[m.t.venue] = parse.reason(e) if isinstance(e, ccxt.BaseError) else e.reason
            except Exception as e:  # the chain node (ChainError) or anything else: look again next poll
                self.errors[m.t.to_venue] = f"{type(e).__name__}: {e}"[:200]
        self.moving = {k: m for k, m in self.moving.items() if m.stage != "done"}

    async def _withdrawals(self, client: VenueClient, m: Moving) -> list[dict[str, Any]]:
        params = {WITHDRAW_CLIENT_ID[m.t.venue]: m.client_id} if m.t.venue != "bybit" else {}
        found = await client.call("fetch_withdrawals", m.t.asset, m.since_ms or None, None, params)
        return list(found or [])

    async def _lookup(self, iface: BaseExecutionInterface, m: Moving, client: VenueClient,
                      force: bool = False) -> None:
        """An unknown outcome: find the withdrawal by our client id (never send it again)."""
        for _ in range(self.settings.lookup_attempts if force else 1):
            try:
                found = [w for w in map(withdrawal_of, await self._withdrawals(client, m))
                         if w["client_id"] == m.client_id]
            except ccxt.BaseError as e:
                self.errors[m.t.venue] = parse.reason(e, client.secrets)
                continue
            m.lookups += 1
            if found:
                self._sent(iface, m, found[0])
                return
            if m.lookups >= self.settings.lookup_attempts:
                self._failed(iface, m, "not_placed", f"{m.t.venue} has no withdrawal with client id "
                             f"{m.client_id} after {m.lookups} lookups: it was never placed")
                return

    async def _follow(self, iface: BaseExecutionInterface, m: Moving) -> None:
        client = await self._client(m.t.venue)
        mine = [w for w in map(withdrawal_of, await self._withdrawals(client, m))
                if w["id"] == m.external_id or (m.client_id and w["client_id"] == m.client_id)]
        if not mine:
            return
        w = mine[0]
        logger = iface.logger
        if w["status"] in ("failed", "canceled"):
            self._failed(iface, m, f"withdrawal_{w['status']}", f"{m.t.venue} reports withdrawal "
                         f"{m.external_id} {w['status']}; amount and fee refunded", m.t.amount + m.fee)
            return
        agg = logger.venue(m.t.venue)
        self._txid(agg, m, w, logger.now())
        if m.stage == "in_transit":
            logger.commit(agg)
            await self._arrival(iface, m)

    async def _arrival(self, iface: BaseExecutionInterface, m: Moving) -> None:
        """The other side: the chain receipt (with confirmations) or the target venue's deposit."""
        t = m.t
        if t.to_venue == iface.chain_venue:
            if not isinstance(self.chain, LiveChain):
                return
            arrived = await arrival_on_chain(self.chain, iface, m.txid, t.asset, self.settings.confirmations)
            if arrived is None:
                return
            amount, reference = arrived
        else:
            client = await self._client(t.to_venue)
            deposits = await client.call("fetch_deposits", t.asset, m.since_ms or None, None, {})
            found = deposit_matching(deposits or [], m.txid)
            if found is None:
                return
            amount, reference = found
        logger = iface.logger
        agg = logger.venue(t.to_venue)
        now = logger.now()
        agg.record_transfer_observed(t.instruction_id, m.transfer_id, "deposit", reference, m.txid, "ok",
                                     m.address, now)
        agg.record_transfer_received(m.transfer_id, t.venue, m.to_wallet, t.asset, amount, now)
        logger.commit(agg)
        m.stage = "done"
        iface.notify({"status": "COMPLETED", "instruction_id": t.instruction_id, "transfer_id": m.transfer_id,
                      "txid": m.txid})

    # ---- after a restart -------------------------------------------------------------------------

    def _recover(self, iface: BaseExecutionInterface) -> None:
        """Rebuild the open transfers from the log once: accepted-but-unanswered withdrawals are looked
        up by client id, sent ones followed to their arrival."""
        if self.recovered:
            return
        self.recovered = True
        ledger = getattr(iface.logger, "ledger", None)
        events = getattr(ledger, "events", None)
        if events is None:
            return
        for m in recover_transfers(iface, events):
            self.moving.setdefault(m.t.instruction_id, m)


def _arrival_wallet(iface: BaseExecutionInterface, venue: str) -> str:
    if venue == iface.chain_venue:
        return iface.wallet(venue)
    return FUNDING_WALLETS.get(venue, iface.wallet(venue))


def recover_transfers(iface: BaseExecutionInterface, events: Any) -> list[Moving]:
    """The live transfers the stored streams say are still open, in instruction order."""
    logger = iface.logger
    accepted: dict[str, tuple[str, dict[str, str], datetime]] = {}
    sent: dict[str, Decimal] = {}
    observed: dict[str, list[Any]] = {}
    done: set[str] = set()
    received: set[str] = set()
    for venue in sorted(logger.venues()):
        agg = logger.venue(venue)
        for e in events.get(agg.id):
            name = type(e).__name__
            if name == "InstructionAccepted" and e.instruction.get("route"):
                accepted[e.instruction_id] = (venue, dict(e.instruction), e.ts_event)
            elif name == "TransferSent":
                sent[e.instruction_id] = e.fee
            elif name == "TransferObserved":
                observed.setdefault(e.instruction_id, []).append(e)
            elif name in ("TransferFailed", "InstructionRejected", "OrderFailed", "TransactionReverted"):
                done.add(e.instruction_id)
            elif name == "TransferReceived":
                received.add(e.transfer_id)
    out: list[Moving] = []
    for iid, (venue, ins, ts) in sorted(accepted.items()):
        tid = transfer_id(iid)
        state = logger.venue(venue).state_of(iid)
        if iid in done or tid in received or state in (State.REJECTED, State.FAILED, State.TX_REVERTED):
            continue
        t = TransferInstruction(iid, venue, ins["to_venue"], ins["asset"], Decimal(ins["amount"]),
                                ins.get("wallet", ""), ins.get("to_wallet", ""))
        m = Moving(t, tid, ins.get("wallet", ""), ins.get("to_wallet", ""), ins["route"],
                   client_id=ins.get("client_id", ""), address=ins.get("address", ""),
                   since_ms=to_ms(ts) - 60_000)
        if iid in sent:
            m.fee = sent[iid]
            m.stage = "withdrawing" if m.route == "withdrawal" else "in_transit"
        for o in observed.get(iid, []):
            if o.external_id and o.stage in ("withdrawal", "broadcast"):
                m.external_id = o.external_id
            if o.txid:
                m.txid, m.stage = o.txid, "in_transit"
        out.append(m)
    return out
