"""`AccrualPoller`: the live chain's pollers for what accrues without a transaction (SPEC §12.18).

AAVE interest: the wallet's aToken and variable-debt balances against the ledger's supplied and
borrowed books, recorded as `InterestAccrued` (once per reserve, side and block). Staking value: the
receipt token's exchange rate, recorded the way the simulator learns it — a market observation of
`{receipt}_eth_rate` — so the projection books the rewards line (held x rate change, in ETH) exactly
as in a backtest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address

from executors.costs import ConfigError
from executors.live import web3_parse as parse

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface
    from executors.live.chain import LiveChain

ZERO = Decimal(0)
RAY_DECIMALS = 27  # AAVE's indexes are rays (1e27)
DEFAULT_POLL_S = 60.0
DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # overdue: whatever time the engine advances to
# getReserveData (v3.0) returns one static struct: 8 numbers, 4 addresses, 3 numbers.
RESERVE_DATA = ["uint256"] * 8 + ["address"] * 4 + ["uint256"] * 3
A_TOKEN, VARIABLE_DEBT_TOKEN = 8, 10
SIDES = (("supplied", A_TOKEN, "getReserveNormalizedIncome(address)"),
         ("borrowed", VARIABLE_DEBT_TOKEN, "getReserveNormalizedVariableDebt(address)"))  # fmt: skip


@dataclass(frozen=True)
class Block:
    number: int
    ts: datetime


def poll_interval(config: dict[str, Any]) -> float:
    """`[chain] accrual_poll_s` (or top level): seconds between polls, 0 for every advance."""
    table = config.get("chain") or {}
    value = table.get("accrual_poll_s", config.get("accrual_poll_s"))
    try:
        seconds = DEFAULT_POLL_S if value is None else float(value)
    except (TypeError, ValueError):
        raise ConfigError("accrual_poll_s", f"expected a number of seconds, got {value!r}") from None
    if not seconds >= 0:
        raise ConfigError("accrual_poll_s", f"must be 0 or more seconds, got {value!r}")
    return seconds


def rate_function(config: dict[str, Any]) -> str:
    """The staking contract's view returning wei of ETH per 1e18 receipt units."""
    staking = config.get("staking") or {}
    return str(staking.get("rate_function", "exchangeRate()"))


class AccrualPoller:
    """Reads the chain at one block and records what accrued since the ledger last knew."""

    def __init__(self, chain: LiveChain, config: dict[str, Any]) -> None:
        self.chain = chain
        self.interval_s = poll_interval(config)
        self.rate_call = rate_function(config)
        self.last_poll: float | None = None  # monotonic
        self.reserve_tokens: dict[str, tuple[str, str]] = {}  # asset -> (aToken, variable debt token)
        self.seen: set[str] = set()  # reserves this process saw booked (a book at 0 may still accrue)
        self.rates: dict[str, Decimal] = {}  # receipt symbol -> last rate recorded by this process

    # ---- when --------------------------------------------------------------------------------

    def holds(self, iface: BaseExecutionInterface) -> bool:
        venue = iface.chain_venue
        if iface.monitor.has_lending(venue) or self.seen:
            return True
        receipt = self.chain.settings.receipt_symbol
        return bool(self.chain.settings.staking_contract) and iface.monitor.balance(receipt, venue) > 0

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        """None without lending or staking positions; else when the interval has passed."""
        if not self.holds(iface):
            return None
        if self.last_poll is None:
            return DUE_NOW
        left = self.interval_s - (time.monotonic() - self.last_poll)
        return DUE_NOW if left <= 0 else iface.logger.now() + timedelta(seconds=left)

    def _due(self) -> bool:
        return self.last_poll is None or time.monotonic() - self.last_poll >= self.interval_s

    # ---- polling ----------------------------------------------------------------------------

    async def poll(self, iface: BaseExecutionInterface, force: bool = False) -> int:
        """One look at the chain when due; returns how many events were recorded. A `ChainError`
        propagates (the caller's next advance looks again; nothing half-recorded is left)."""
        if not (force or self._due()) or not self.holds(iface):
            return 0
        if self._in_flight():
            # A transaction of ours in flight moves balances the ledger has not booked yet: its
            # principal would be taken for interest. Look again once it is resolved.
            return 0
        latest = await self.chain.client.block("latest")
        block = Block(int(latest["number"]), datetime.fromtimestamp(int(latest["timestamp"]), UTC))
        recorded = await self._interest(iface, block)
        recorded += await self._staking(iface, block)
        self.last_poll = time.monotonic()
        return recorded

    async def _uint(self, to: str, signature: str, block: Block, *args: Any) -> int:
        data = await self.chain.client.call(to, parse.encode_call(signature, *args), block.number)
        (value,) = parse.decode_words(["uint256"], data)
        return int(value)

    async def _tokens(self, asset: str, block: Block) -> tuple[str, str] | None:
        if asset not in self.reserve_tokens:
            where = self.chain.settings.tokens.get(asset)
            if where is None or not self.chain.pool:
                return None
            data = await self.chain.client.call(
                self.chain.pool, parse.encode_call("getReserveData(address)", where), block.number
            )
            words = parse.decode_words(RESERVE_DATA, data)
            a_token, debt = (
                to_checksum_address(words[A_TOKEN]),
                to_checksum_address(words[VARIABLE_DEBT_TOKEN]),
            )
            if int(a_token, 16) == 0:
                return None  # not an AAVE reserve
            self.reserve_tokens[asset] = (a_token, debt)
        return self.reserve_tokens[asset]

    async def _interest(self, iface: BaseExecutionInterface, block: Block) -> int:
        """Interest = the chain's aToken (debt token) balance - the ledger's book, when positive."""
        mon, logger, venue = iface.monitor, iface.logger, iface.chain_venue
        books = {(side, asset): amount for side, asset, amount in mon.lending(venue)}
        assets = sorted({a for _s, a in books} | self.seen)
        self.seen |= set(assets)
        accrued: list[tuple[str, str, Decimal, Decimal]] = []
        for asset in assets:
            tokens = await self._tokens(asset, block)
            decimals = self.chain.decimals.get(asset)
            if tokens is None or decimals is None:
                continue
            where = self.chain.settings.tokens[asset]
            for side, slot, index_call in SIDES:
                token = tokens[0] if slot == A_TOKEN else tokens[1]
                raw = await self._uint(token, "balanceOf(address)", block, self.chain.address)
                with localcontext(parse.EXACT):
                    interest = Decimal(raw).scaleb(-decimals) - books.get((side, asset), ZERO)
                if interest <= 0:
                    continue  # nothing accrued (or dust the ledger booked from the receipt's amount)
                index_raw = await self._uint(self.chain.pool, index_call, block, where)
                with localcontext(parse.EXACT):
                    accrued.append((asset, side, interest, Decimal(index_raw).scaleb(-RAY_DECIMALS)))
        # The reads awaited the node: if an instruction moved a book meanwhile, the difference is not
        # interest. Nothing is recorded; the next poll reads again.
        now_books = {(side, asset): amount for side, asset, amount in mon.lending(venue)}
        if not accrued or now_books != books or self._in_flight():
            return 0
        agg = logger.venue(venue)
        count = 0
        for asset, side, interest, index in accrued:
            count += agg.record_interest(
                f"{asset}:{side}:{block.number}", asset, side, interest, index, block.ts, now=logger.now()
            )
        if not count:
            return 0
        logger.commit(agg)
        iface.notify({"status": "INTEREST", "venue": venue})
        return count

    def _in_flight(self) -> bool:
        return bool(self.chain.recovering) or any(not r.done for r in self.chain.runs.values())

    async def _staking(self, iface: BaseExecutionInterface, block: Block) -> int:
        """The receipt token's rate, observed when it differs from what the ledger last knew."""
        settings, venue = self.chain.settings, iface.chain_venue
        receipt = settings.receipt_symbol
        mon = iface.monitor
        if not settings.staking_contract or mon.balance(receipt, venue) + mon.supplied(venue, receipt) <= 0:
            return 0
        raw = await self._uint(settings.staking_contract, self.rate_call, block)
        with localcontext(parse.EXACT):
            rate = Decimal(raw).scaleb(-parse.WEI_DECIMALS)
        known = self._known_rate(iface, receipt)
        if known == rate:
            return 0
        observed = [rate]
        if known is None:
            # Nothing observed yet: the rate the ledger booked the stake at is the baseline, so what
            # accrued since is a reward rather than a first valuation.
            staked_at = _last_stake_rate(iface, receipt)
            if staked_at is not None and staked_at != rate:
                observed.insert(0, staked_at)
        record = getattr(iface.logger, "record_market", None)
        session = getattr(getattr(iface.logger, "ledger", None), "session", None)
        if record is None or session is None:
            return 0  # a logger without a session (bare tests) has nowhere to observe markets
        key = f"{receipt.lower()}_eth_rate"
        for value in observed:
            record(session, {key: value}, block.ts)
        self.rates[receipt] = rate
        iface.notify({"status": "REWARD", "venue": venue})
        return len(observed)

    def _known_rate(self, iface: BaseExecutionInterface, receipt: str) -> Decimal | None:
        """The rate the projection values the receipt at (when the monitor exposes its state), else
        the last one this poller recorded."""
        marks = getattr(getattr(iface.monitor, "state", None), "marks", None)
        if isinstance(marks, dict):
            value = marks.get(f"rate:{receipt.upper()}")
            return value if isinstance(value, Decimal) else None
        return self.rates.get(receipt)


def _last_stake_rate(iface: BaseExecutionInterface, receipt: str) -> Decimal | None:
    """The exchange rate of the ledger's latest confirmed stake into `receipt` (None without one)."""
    ledger = getattr(iface.logger, "ledger", None)
    events = getattr(ledger, "events", None)
    if events is None:
        return None
    agg = iface.logger.venue(iface.chain_venue)
    rate: Decimal | None = None
    for event in events.get(agg.id):
        if type(event).__name__ != "TransactionConfirmed":
            continue
        for effect in event.effects:
            if (
                effect.get("kind") == "staked"
                and effect.get("receipt_asset") == receipt
                and effect.get("rate")
            ):
                rate = Decimal(effect["rate"])
    return rate
