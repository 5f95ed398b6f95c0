"""Wallet operations of one venue account: deposit addresses, withdrawals, deposits, funding payments.

:class:`WalletOps` is mixed into :class:`~tests.emulator.engine.VenueEngine`; the venue modules render
its records in each venue's JSON. Ids come from counters, fake transaction hashes from sha256 of the
venue and the withdrawal id, money is Decimal. With a chain attached (:mod:`tests.emulator.chainlink`)
withdrawals are really sent on the chain and on-chain deposits are credited by ``scan_chain``.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chainlink import ChainLink

ZERO = Decimal(0)
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_WITHDRAWAL_FEES = {"USDT": Decimal("1"), "ETH": Decimal("0.001")}
DEFAULT_FUNDING_RATE = Decimal("0.0001")
# withdrawal states: pending (accepted, nothing sent) -> processing (sent, txid known, not yet confirmed)
# -> ok; or failed (refunded) / canceled
WITHDRAWAL_STATES = ("pending", "processing", "ok", "failed", "canceled")


def _D(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def default_deposit_address(venue: str) -> str:
    """The venue's fixed deposit address: the first 20 bytes of sha256(venue name), checksummed."""
    from eth_utils import to_checksum_address

    return str(to_checksum_address("0x" + hashlib.sha256(venue.encode()).hexdigest()[:40]))


def fake_txid(venue: str, withdrawal_id: str) -> str:
    return "0x" + hashlib.sha256(f"{venue}:withdrawal:{withdrawal_id}".encode()).hexdigest()


@dataclass
class Withdrawal:
    withdrawal_id: str
    client_id: str
    asset: str
    network: str  # venue-neutral chain name, 'ETH' for Ethereum mainnet
    address: str
    amount: Decimal  # what the destination receives
    fee: Decimal  # charged on top of amount
    created_ms: int
    updated_ms: int
    seq: int
    status: str = "pending"
    txid: str = ""
    tag: str = ""
    debits: dict[str, Decimal] = field(default_factory=dict)  # wallet -> amount taken (for refunds)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deposit:
    deposit_id: str
    asset: str
    network: str
    address: str
    amount: Decimal
    txid: str
    status: str  # pending | ok | failed
    created_ms: int
    updated_ms: int
    seq: int
    wallet: str
    credited: bool = False


@dataclass
class IncomeEntry:
    income_id: str
    symbol: str
    asset: str
    amount: Decimal  # signed: positive = received
    rate: Decimal
    mark: Decimal
    position: Decimal  # signed base units at settlement
    ts: int
    seq: int
    wallet: str
    balance_after: Decimal = ZERO


class WalletOps:
    """Wallet state and control API (mixed into VenueEngine; uses its lock, balances and positions)."""

    lock: threading.RLock
    name: str
    balances: dict[tuple[str, str], Decimal]
    # set by the engine/config: where deposits land and withdrawals are taken from, the margin wallet
    deposit_wallet: str
    withdrawal_wallets: tuple[str, ...]
    chain: ChainLink | None
    auto_process_withdrawals: bool
    now_ms_source: Callable[[], int]
    wallet_id_formats: dict[str, Callable[[int], str]]  # 'withdrawal' | 'deposit' | 'income' -> id

    # ----------------------------------------------------------------- state
    def _reset_wallets(self) -> None:
        self.deposit_addresses: dict[tuple[str, str], str] = {}
        self.withdrawal_fees: dict[str, Decimal] = dict(DEFAULT_WITHDRAWAL_FEES)
        self._withdrawals: list[Withdrawal] = []
        self._deposits: list[Deposit] = []
        self.incomes: list[IncomeEntry] = []
        self.funding_rates: dict[str, Decimal] = {}
        self.auto_process_withdrawals = False
        self._wallet_counters: dict[str, int] = {}

    def _count(self, key: str) -> int:
        n = self._wallet_counters.get(key, 0) + 1
        self._wallet_counters[key] = n
        return n

    def _now(self) -> int:
        return int(self.now_ms_source())

    def _wallet_credit(self, wallet: str, asset: str, amount: Decimal) -> None:
        self.balances[(wallet, asset)] = self.balances.get((wallet, asset), ZERO) + amount

    # ----------------------------------------------------------------- deposit addresses
    def set_deposit_address(self, asset: str, network: str, address: str) -> None:
        if not ADDRESS_RE.match(address):
            raise ValueError(f"not a 20-byte hex address: {address!r}")
        with self.lock:
            self.deposit_addresses[(asset.upper(), network.upper())] = address

    def deposit_address(self, asset: str, network: str = "ETH") -> str:
        """The account's deposit address for ``asset`` on ``network`` (one default per venue)."""
        with self.lock:
            return self.deposit_addresses.get((asset.upper(), network.upper()),
                                              default_deposit_address(self.name))

    def all_deposit_addresses(self) -> dict[str, set[str]]:
        """lower-case address -> assets that may arrive there (the default address takes all assets)."""
        with self.lock:
            out: dict[str, set[str]] = {default_deposit_address(self.name).lower(): {"*"}}
            for (asset, _network), addr in self.deposit_addresses.items():
                out.setdefault(addr.lower(), set()).add(asset)
            return out

    # ----------------------------------------------------------------- withdrawals
    def set_withdrawal_fee(self, asset: str, fee: Any) -> None:
        with self.lock:
            self.withdrawal_fees[asset.upper()] = _D(fee)

    def withdrawal_fee(self, asset: str) -> Decimal:
        with self.lock:
            return self.withdrawal_fees.get(asset.upper(), ZERO)

    def withdrawals(self) -> list[Withdrawal]:
        """Copies of all withdrawals, oldest first."""
        with self.lock:
            return [copy.deepcopy(w) for w in self._withdrawals]

    def deposits(self) -> list[Deposit]:
        with self.lock:
            return [copy.deepcopy(d) for d in self._deposits]

    def find_withdrawal(self, withdrawal_id: str | None = None, client_id: str | None = None) -> Withdrawal:
        from .engine import EngineError

        with self.lock:
            for w in self._withdrawals:
                if (withdrawal_id and w.withdrawal_id == withdrawal_id) or (
                        client_id and w.client_id == client_id):
                    return w
        raise EngineError("withdrawal_not_found", "withdrawal does not exist")

    def request_withdrawal(self, *, asset: str, amount: Decimal, address: str, network: str = "ETH",
                           client_id: str = "", tag: str = "", fee: Decimal | None = None,
                           wallets: tuple[str, ...] | None = None, now_ms: int | None = None) -> Withdrawal:
        """Accept a withdrawal: checks address, duplicate client id and balance; debits amount + fee."""
        from .engine import EngineError

        with self.lock:
            if not ADDRESS_RE.match(address or ""):
                raise EngineError("invalid_address", "invalid withdrawal address")
            if amount <= 0:
                raise EngineError("bad_param", "withdrawal amount must be positive")
            if client_id and any(w.client_id == client_id for w in self._withdrawals):
                raise EngineError("duplicate_withdrawal", "duplicate withdrawal client id")
            fee = self.withdrawal_fee(asset) if fee is None else fee
            need = amount + fee
            sources = wallets or self.withdrawal_wallets
            if sum((max(ZERO, self.available(w, asset)) for w in sources), ZERO) < need:
                raise EngineError("insufficient_balance", f"insufficient {asset} balance", asset=asset)
            debits: dict[str, Decimal] = {}
            left = need
            for w in sources:  # take from the first wallet first (Bybit UTA: FUND, then UNIFIED)
                take = min(left, max(ZERO, self.available(w, asset)))
                if take > 0:
                    self._wallet_credit(w, asset, -take)
                    debits[w] = take
                    left -= take
                if left == 0:
                    break
            now = self._now() if now_ms is None else now_ms
            n = self._count("withdrawal")
            w = Withdrawal(withdrawal_id=self._wallet_id("withdrawal", n), client_id=client_id,
                           asset=asset.upper(),
                           network=network.upper(), address=address, amount=amount, fee=fee,
                           created_ms=now, updated_ms=now, seq=n, tag=tag, debits=debits)
            self._withdrawals.append(w)
            return w

    def process_withdrawals(self) -> list[Withdrawal]:
        """Move pending withdrawals on: on the attached chain (real transfer, real tx hash; ok once
        mined with the required confirmations) or, without a chain, straight to ok with a fake txid."""
        with self.lock:
            now = self._now()
            moved = []
            for w in self._withdrawals:
                if w.status == "pending":
                    if self.chain is None:
                        w.txid = fake_txid(self.name, w.withdrawal_id)
                        w.status = "ok"
                    else:
                        from .chainlink import ChainError

                        try:
                            w.txid = self.chain.send(w.asset, w.address, w.amount)
                        except ChainError as exc:  # e.g. the hot wallet is short: stays pending
                            w.extra["last_error"] = str(exc)
                            continue
                        w.status = "processing"
                    w.updated_ms = now
                    moved.append(w)
            if self.chain is not None:
                for w in self._withdrawals:
                    if w.status != "processing":
                        continue
                    state = self.chain.tx_state(w.txid)
                    if state == "ok":
                        w.status = "ok"
                    elif state == "failed":
                        self._fail(w)
                    w.updated_ms = now
                    if w not in moved:
                        moved.append(w)
            return [copy.deepcopy(w) for w in moved]

    def _fail(self, w: Withdrawal) -> None:
        for wallet, amount in w.debits.items():
            self._wallet_credit(wallet, w.asset, amount)
        w.status = "failed"

    def fail_withdrawal(self, withdrawal_id: str) -> Withdrawal:
        """Mark a not yet completed withdrawal failed and refund amount + fee."""
        from .engine import EngineError

        with self.lock:
            w = self.find_withdrawal(withdrawal_id=withdrawal_id)
            if w.status in ("ok", "failed", "canceled"):
                raise EngineError("withdrawal_final", f"withdrawal is already {w.status}")
            self._fail(w)
            w.updated_ms = self._now()
            return copy.deepcopy(w)

    # ----------------------------------------------------------------- deposits
    def credit_deposit(self, asset: str, amount: Any, txid: str, network: str = "ETH",
                       address: str | None = None, status: str = "ok") -> str:
        """Record a deposit (credited to the deposit wallet once it is ``ok``); idempotent per txid."""
        if status not in ("pending", "ok", "failed"):
            raise ValueError("status must be pending, ok or failed")
        with self.lock:
            now = self._now()
            for d in self._deposits:
                if d.txid == txid:
                    if d.status == "pending" and status != "pending":
                        d.status, d.updated_ms = status, now
                        self._credit_deposit_now(d)
                    return d.deposit_id
            n = self._count("deposit")
            d = Deposit(deposit_id=self._wallet_id("deposit", n), asset=asset.upper(),
                        network=network.upper(), address=address or self.deposit_address(asset, network),
                        amount=_D(amount), txid=txid, status=status, created_ms=now, updated_ms=now, seq=n,
                        wallet=self.deposit_wallet)
            self._deposits.append(d)
            self._credit_deposit_now(d)
            return d.deposit_id

    def _wallet_id(self, kind: str, n: int) -> str:
        fmt = self.wallet_id_formats.get(kind)
        return fmt(n) if fmt is not None else str(n)

    def _credit_deposit_now(self, d: Deposit) -> None:
        if d.status == "ok" and not d.credited:
            self._wallet_credit(d.wallet, d.asset, d.amount)
            d.credited = True

    def scan_chain(self) -> int:
        """Credit on-chain transfers to the deposit addresses (all venues); no-op without a chain."""
        chain = self.chain
        if chain is None:
            return 0
        return chain.scan()

    # ----------------------------------------------------------------- funding
    def set_funding_rate(self, symbol: str, rate: Any) -> None:
        with self.lock:
            self.funding_rates[symbol] = _D(rate)

    def funding_rate(self, symbol: str) -> Decimal:
        with self.lock:
            return self.funding_rates.get(symbol, DEFAULT_FUNDING_RATE)

    def funding_history(self, symbol: str | None = None) -> list[IncomeEntry]:
        with self.lock:
            return [copy.deepcopy(i) for i in self.incomes if symbol is None or i.symbol == symbol]


def wall_ms() -> int:
    return int(time.time() * 1000)
