"""An independent fold of the stored events: the books the checkers compare the projection with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from aggregates.values import MONEY, parse_instrument
from ledger.testing.common import ZERO

if TYPE_CHECKING:
    from ledger.app import Ledger


# ---- checkers ------------------------------------------------------------------------------------


def _ledger(target: Any) -> Ledger:
    """The ledger behind an engine (its buffered events flushed first) or the ledger itself."""
    logger = getattr(target, "event_logger", None)
    if logger is not None:
        logger.flush()
        return target.ledger  # type: ignore[no-any-return]
    return target  # type: ignore[no-any-return]


Key = tuple[str, str, str]
# effect kind -> (book, sign, asset field, amount field, flow category) — the chain's accounting,
# written out again here on purpose (not imported from projections.folds).
_EFFECTS: dict[str, tuple[tuple[str, int, str, str, str], ...]] = {
    "supplied": (
        ("balance", -1, "asset", "amount", "lending"),
        ("supplied", 1, "asset", "amount", "lending"),
    ),
    "withdrawn": (
        ("supplied", -1, "asset", "amount", "lending"),
        ("balance", 1, "asset", "amount", "lending"),
    ),
    "borrowed": (("borrowed", 1, "asset", "amount", "lending"), ("balance", 1, "asset", "amount", "lending")),
    "repaid": (("borrowed", -1, "asset", "amount", "lending"), ("balance", -1, "asset", "amount", "lending")),
    "staked": (
        ("balance", -1, "asset", "amount", "conversions"),
        ("balance", 1, "receipt_asset", "receipt_amount", "conversions"),
    ),
    "unstake_requested": (
        ("balance", -1, "receipt_asset", "receipt_amount", "conversions"),
        ("pending", 1, "asset", "amount", "conversions"),
    ),
    "unstaked": (
        ("pending", -1, "asset", "amount", "conversions"),
        ("balance", 1, "asset", "amount", "conversions"),
    ),
    "wrapped": (
        ("balance", -1, "asset", "amount", "conversions"),
        ("balance", 1, "receipt_asset", "amount", "conversions"),
    ),
    "unwrapped": (
        ("balance", -1, "receipt_asset", "amount", "conversions"),
        ("balance", 1, "asset", "amount", "conversions"),
    ),
    "sent": (("balance", -1, "asset", "amount", "external"),),
    "transfer_out": (),
    "received": (("balance", 1, "asset", "amount", "external"),),
    "approved": (),
    "liquidated": (
        ("borrowed", -1, "asset", "amount", "liquidations"),
        ("supplied", -1, "receipt_asset", "receipt_amount", "liquidations"),
    ),
}


@dataclass
class Books:
    """The independent fold `check_conservation` compares with the projection.

    `flows[asset][category]` says where every unit came from: deposits, withdrawals, adjustments,
    trades (spot legs), realised (perp P&L), fees, funding, interest, gas, rewards, conversions
    (staking, wrapping), external (on-chain sends), liquidations, and lending and transit, which
    net to zero when nothing is lost (funds only move between books)."""

    balances: dict[Key, Decimal] = field(default_factory=dict)
    supplied: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    borrowed: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    transit: dict[str, tuple[str, str, str, Decimal]] = field(default_factory=dict)
    _sent_fees: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = field(default_factory=dict)
    flows: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    pnl: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _wallets: dict[str, str] = field(default_factory=dict)
    _txs: dict[str, list[tuple[str, str, str, str, Decimal, str]]] = field(default_factory=dict)

    def holdings(self) -> dict[str, Decimal]:
        """Per asset: balances + supplied - borrowed + in transit."""
        with localcontext(MONEY):
            return self._holdings()

    def _holdings(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for (_v, _w, a), x in self.balances.items():
            out[a] = out.get(a, ZERO) + x
        for (_v, a), x in self.supplied.items():
            out[a] = out.get(a, ZERO) + x
        for (_v, a), x in self.borrowed.items():
            out[a] = out.get(a, ZERO) - x
        for _src, _w, a, x in self.transit.values():
            out[a] = out.get(a, ZERO) + x
        return {a: x for a, x in sorted(out.items()) if x}

    def net_flows(self) -> dict[str, Decimal]:
        """Per asset: the sum of its flows over every category."""
        with localcontext(MONEY):
            return {a: x for a, c in sorted(self.flows.items()) if (x := sum(c.values(), ZERO))}

    # -- bookkeeping -----------------------------------------------------------------------------

    def _flow(self, asset: str, category: str, amount: Decimal) -> None:
        table = self.flows.setdefault(asset, {})
        table[category] = table.get(category, ZERO) + amount

    def _line(self, line: str, asset: str, amount: Decimal) -> None:
        self.pnl[(line, asset)] = self.pnl.get((line, asset), ZERO) + amount

    def _book(
        self,
        book: str,
        venue: str,
        wallet: str,
        asset: str,
        delta: Decimal,
        category: str,
        where: str,
        may_go_negative: bool = False,
    ) -> None:
        if book == "balance":
            key = (venue, wallet, asset)
            after = self.balances.get(key, ZERO) + delta
            self.balances[key] = after
            if after < 0 and delta < 0 and not may_go_negative:
                self.problems.append(f"{where}: balance {venue}/{wallet} {asset} went negative ({after})")
        else:
            target = self.supplied if book == "supplied" else self.borrowed
            after = target.get((venue, asset), ZERO) + delta
            target[(venue, asset)] = after
            if after < 0:
                self.problems.append(f"{where}: {book} {venue} {asset} went negative ({after})")
        sign = -1 if book == "borrowed" else 1
        self._flow(asset, category, delta * sign)

    def _position(self, venue: str, instrument: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        q, avg, realised = self.positions.get((venue, instrument), (ZERO, ZERO, ZERO))
        signed = qty if side == "buy" else -qty
        gain = ZERO
        if q == 0 or (q > 0) == (signed > 0):
            avg = (abs(q) * avg + qty * price) / (abs(q) + qty)
        else:
            closing = min(qty, abs(q))
            gain = closing * (price - avg) * (1 if q > 0 else -1)
            if q + signed == 0:
                avg = ZERO
            elif (q + signed > 0) != (q > 0):
                avg = price
        self.positions[(venue, instrument)] = (q + signed, avg, realised + gain)
        return gain

    # -- the fold --------------------------------------------------------------------------------

    def apply(self, nid: int, venue: str, e: Any) -> None:
        name = type(e).__name__
        where = f"notification {nid} ({name} at {venue})"
        if name == "InstructionAccepted":
            self._wallets[e.instruction_id] = e.instruction.get("wallet", "")
        elif name == "FundsDeposited":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "deposits", where)
        elif name == "FundsWithdrawn":
            self._book("balance", venue, e.wallet, e.asset, -e.amount, "withdrawals", where)
        elif name == "BalanceAdjusted":
            self._book("balance", venue, e.wallet, e.asset, e.delta, "adjustments", where)
        elif name == "OrderFilled":
            self._fill(venue, e, where)
        elif name == "FundingSettled":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "funding", where, True)
            self._line("funding", e.asset, e.amount)
        elif name == "InterestAccrued":
            book = "supplied" if e.side == "supplied" else "borrowed"
            self._book(book, venue, "", e.asset, e.amount, "interest", where)
            if book == "supplied":
                self._line("supply_interest", e.asset, e.amount)
            else:
                self._line("borrow_cost", e.asset, -e.amount)
        elif name == "RewardAccrued":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "rewards", where)
        elif name == "TransactionConfirmed":
            self._confirmed(venue, e, where)
        elif name == "TransactionReverted":
            if e.gas_fee:
                self._book(
                    "balance", venue, self._wallets.get(e.instruction_id, ""), "ETH", -e.gas_fee, "gas", where
                )
                self._line("gas", "ETH", -e.gas_fee)
        elif name == "TransactionReorged":
            for book, v, wallet, asset, amount, category in self._txs.pop(e.tx_hash, []):
                self._book(book, v, wallet, asset, -amount, category, where)
                if category == "gas":
                    self._line("gas", "ETH", -amount)
        elif name in ("TransferSent", "TransferReceived", "TransferFailed"):
            self._transfer(name, venue, e, where)

    def _fill(self, venue: str, e: Any, where: str) -> None:
        inst = parse_instrument(e.instrument)
        perp = e.market_type == "perp"
        if not perp:
            sign = 1 if e.side == "buy" else -1
            self._book("balance", venue, e.wallet, inst.base, sign * e.quantity, "trades", where)
            self._book("balance", venue, e.wallet, inst.quote, -sign * e.quantity * e.price, "trades", where)
        gain = self._position(venue, e.instrument, e.side, e.quantity, e.price) if perp else ZERO
        if gain:  # spot is inventory (realised against the desk's average cost, in USD): no position
            self._line("realised", inst.settle, gain)
            self._book("balance", venue, e.wallet, inst.settle, gain, "realised", where, True)
        if e.fee:
            self._book("balance", venue, e.wallet, e.fee_asset, -e.fee, "fees", where, perp)
            self._line("fees", e.fee_asset, -e.fee)

    def _confirmed(self, venue: str, e: Any, where: str) -> None:
        default = self._wallets.get(e.instruction_id, "")
        applied: list[tuple[str, str, str, str, Decimal, str]] = []
        for effect in e.effects:
            kind = effect.get("kind", "")
            if kind not in _EFFECTS:
                self.problems.append(f"{where}: unknown effect kind {kind!r}")
            wallet = effect.get("wallet", default)
            for book, sign, asset_field, amount_field, category in _EFFECTS.get(kind, ()):
                amount = Decimal(effect[amount_field]) * sign
                target = "balance" if book == "pending" else book
                key_wallet = f"{wallet}:unstaking" if book == "pending" else wallet
                applied.append((target, venue, key_wallet, effect[asset_field], amount, category))
        if e.gas_fee:
            applied.append(("balance", venue, default, "ETH", -e.gas_fee, "gas"))
            self._line("gas", "ETH", -e.gas_fee)
        # Apply credits before debits: one transaction's effects are atomic, only its net counts.
        for book, v, wallet, asset, amount, category in sorted(applied, key=lambda r: r[4] < 0):
            self._book(book, v, wallet, asset, amount, category, where)
        self._txs[e.tx_hash] = applied

    def _transfer(self, name: str, venue: str, e: Any, where: str) -> None:
        if name == "TransferSent":
            self._book("balance", venue, e.from_wallet, e.asset, -e.amount, "transit", where)
            if e.fee:
                self._book("balance", venue, e.from_wallet, e.asset, -e.fee, "fees", where)
                self._line("withdrawal_fees", e.asset, -e.fee)
            self.transit[e.transfer_id] = (venue, e.from_wallet, e.asset, e.amount)
            self._sent_fees[e.transfer_id] = e.fee
            self._flow(e.asset, "transit", e.amount)
            return
        sent = self.transit.pop(e.transfer_id, None)
        if sent is None and name == "TransferFailed" and not e.refunded:
            return  # refused by the venue before anything left: nothing to give back
        if sent is None:
            self.problems.append(f"{where}: transfer {e.transfer_id} arrived or failed but was never sent")
            if name == "TransferReceived":
                self._book("balance", venue, e.wallet, e.asset, e.amount, "external", where)
            return
        source, wallet, asset, amount = sent
        self._flow(asset, "transit", -amount)
        if name == "TransferReceived":
            if asset != e.asset or e.amount != amount:
                self.problems.append(
                    f"{where}: transfer {e.transfer_id} sent {amount} {asset}, received {e.amount} {e.asset}"
                )
            self._book("balance", venue, e.wallet, e.asset, e.amount, "transit", where)
        else:
            fee = self._sent_fees.get(e.transfer_id, ZERO)
            if e.refunded not in (amount, amount + fee):
                self.problems.append(
                    f"{where}: transfer {e.transfer_id} of {amount} {asset} failed and refunded {e.refunded}"
                )
            if e.refunded:
                self._book("balance", source, wallet, asset, amount, "transit", where)
            if e.refunded > amount:  # the withdrawal fee came back as well
                self._book("balance", source, wallet, asset, e.refunded - amount, "fees", where)
                self._line("withdrawal_fees", asset, e.refunded - amount)


def independent_books(ledger: Ledger) -> Books:
    """Fold the stored events of `ledger` into `Books` with no projection code."""
    books = Books()
    streams: dict[Any, str] = {}
    with localcontext(MONEY):
        for nid, event in ledger.iter_events():
            if type(event).__name__ == "Opened":
                streams[event.originator_id] = event.venue
            venue = streams.get(event.originator_id)
            if venue is not None:
                books.apply(nid, venue, event)
    return books


def _nonzero(table: Mapping[Any, Decimal]) -> dict[Any, Decimal]:
    return {k: v for k, v in sorted(table.items()) if v}


def _diff(label: str, expected: Mapping[Any, Any], actual: Mapping[Any, Any]) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(actual), key=repr):
        if expected.get(key) != actual.get(key):
            out.append(f"{label} {key}: events say {expected.get(key)}, projection says {actual.get(key)}")
    return out
