"""Hypothesis strategies for valid VenueLedger command sequences (fold and rebuild properties)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from aggregates.venue import VenueLedger
from ledger.testing.common import CHAIN_VENUE, T0, ZERO
from ledger.testing.inputs import _decimals

if TYPE_CHECKING:
    from ledger.app import Ledger


# ---- event sequences -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One `VenueLedger.record_*` call at `venue` (opened as `venue_type` on first use)."""

    venue: str
    venue_type: str
    method: str
    kwargs: dict[str, Any]

    def apply(self, aggregate: VenueLedger) -> Any:
        return getattr(aggregate, self.method)(**self.kwargs)


def record_commands(
    ledger: Ledger,
    commands: Iterable[Command],
    account: str = "main",
) -> dict[str, VenueLedger]:
    """Apply `commands` in order, saving after each one; returns the venue aggregates."""
    aggregates: dict[str, VenueLedger] = {}
    for c in commands:
        agg = aggregates.get(c.venue)
        if agg is None:
            agg = aggregates[c.venue] = ledger.venue(account, c.venue, c.venue_type, c.kwargs["ts"])
        c.apply(agg)
        ledger.save(agg)
    return aggregates


@dataclass
class _Model:
    """What the sequence generator needs to keep its commands valid (no overdrafts, known ids)."""

    out: list[Command] = field(default_factory=list)
    balances: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    perps: dict[str, Decimal] = field(default_factory=dict)
    supplied: Decimal = ZERO
    deposits: list[Command] = field(default_factory=list)
    pending: list[tuple[str, str, str, str, str, Decimal, str]] = field(default_factory=list)
    resting: list[tuple[str, str]] = field(default_factory=list)
    n: int = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def ts(self) -> datetime:
        return T0 + timedelta(minutes=self.n)

    def emit(self, venue: str, method: str, **kwargs: Any) -> None:
        kind = "onchain" if venue == CHAIN_VENUE else "cex"
        self.out.append(Command(venue, kind, method, kwargs))

    def held(self, key: tuple[str, str, str]) -> Decimal:
        return self.balances.get(key, ZERO)

    def move(self, key: tuple[str, str, str], delta: Decimal) -> None:
        self.balances[key] = self.held(key) + delta


CHAIN_WALLET = "0xwallet"


def _wallet(venue: str) -> str:
    return CHAIN_WALLET if venue == CHAIN_VENUE else "spot"


@st.composite
def event_sequences(
    draw: st.DrawFn, venues: Sequence[str] = ("binance", "bybit"), max_actions: int = 25
) -> list[Command]:
    """Valid `VenueLedger` command sequences: deposits (some repeated: idempotent), withdrawals,
    spot fills (split, duplicated), perp fills and funding, resting orders and cancels, rejections,
    transfers sent then received or failed, AAVE supply transactions with gas and interest, staking
    rewards and balance observations. Apply them with `record_commands(ledger, commands)`."""
    m = _Model()
    all_venues = (*venues, CHAIN_VENUE)
    qty = _decimals("0.01", "2", 2)
    price = _decimals("1500", "4500", 1)
    for _ in range(draw(st.integers(1, max_actions))):
        action = draw(
            st.sampled_from(
                [
                    "deposit",
                    "deposit",
                    "withdraw",
                    "spot",
                    "spot",
                    "perp",
                    "funding",
                    "resting",
                    "cancel",
                    "reject",
                    "transfer",
                    "arrive",
                    "fail",
                    "supply",
                    "interest",
                    "reward",
                    "observe",
                ]
            )
        )
        ts = m.ts()
        if action == "deposit":
            if m.deposits and draw(st.integers(0, 3)) == 0:
                again = draw(st.sampled_from(m.deposits))
                m.out.append(again)  # same id: recorded once
                m.next("d")
                continue
            venue = draw(st.sampled_from(all_venues))
            asset = draw(st.sampled_from(["USDT", "ETH"]))
            wallet = "futures" if venue != CHAIN_VENUE and draw(st.integers(0, 2)) == 0 else _wallet(venue)
            amount = draw(_decimals("1", "50000", 2) if asset == "USDT" else _decimals("0.1", "20", 2))
            m.emit(
                venue,
                "record_deposit",
                deposit_id=m.next("d"),
                wallet=wallet,
                asset=asset,
                amount=amount,
                ts=ts,
            )
            m.deposits.append(m.out[-1])
            m.move((venue, wallet, asset), amount)
        elif action == "withdraw":
            held = sorted(k for k, v in m.balances.items() if v > 0 and k[1] != "futures")
            if not held:
                continue
            key = draw(st.sampled_from(held))
            amount = (m.held(key) * draw(_decimals("0.01", "1", 2))).quantize(Decimal("0.0001"))
            if amount <= 0:
                continue
            m.emit(
                key[0],
                "record_withdrawal",
                withdrawal_id=m.next("w"),
                wallet=key[1],
                asset=key[2],
                amount=amount,
                ts=ts,
            )
            m.move(key, -amount)
        elif action == "spot":
            venue = draw(st.sampled_from(venues))
            side, q, px = draw(st.sampled_from(["buy", "sell"])), draw(qty), draw(price)
            rate = draw(st.sampled_from([ZERO, Decimal("0.0002"), Decimal("0.001")]))
            parts = [q] if q < Decimal("0.02") or draw(st.booleans()) else [q / 2, q - q / 2]
            fees = [(part * px * rate).quantize(Decimal("0.0001")) for part in parts]
            usdt, eth = (venue, "spot", "USDT"), (venue, "spot", "ETH")
            if (side == "buy" and m.held(usdt) < q * px + sum(fees)) or (side == "sell" and m.held(eth) < q):
                continue
            iid = m.next("i")
            m.emit(
                venue,
                "record_accepted",
                instruction_id=iid,
                instruction={
                    "kind": "ORDER",
                    "instrument": "ETH/USDT",
                    "market_type": "spot",
                    "side": side,
                    "amount": str(q),
                    "wallet": "spot",
                },
                market={"eth_usd_price": px},
                ts=ts,
            )
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            for j, (part, fee) in enumerate(zip(parts, fees, strict=True)):
                fill = {
                    "instruction_id": iid,
                    "trade_id": f"t{iid}-{j}",
                    "market_type": "spot",
                    "instrument": "ETH/USDT",
                    "side": side,
                    "quantity": part,
                    "price": px,
                    "fee": fee,
                    "fee_asset": "USDT",
                    "ts": ts,
                    "wallet": "spot",
                }
                for _copy in range(2 if draw(st.integers(0, 4)) == 0 else 1):
                    m.emit(venue, "record_fill", **fill)  # the second copy is idempotent
                m.move(usdt, (-part * px if side == "buy" else part * px) - fee)
                m.move(eth, part if side == "buy" else -part)
        elif action == "perp":
            venue = draw(st.sampled_from(venues))
            side, q, px = draw(st.sampled_from(["buy", "sell"])), draw(qty), draw(price)
            iid = m.next("p")
            m.emit(
                venue,
                "record_accepted",
                instruction_id=iid,
                instruction={
                    "kind": "ORDER",
                    "instrument": "ETH/USDT:USDT",
                    "market_type": "perp",
                    "side": side,
                    "amount": str(q),
                    "wallet": "futures",
                },
                market={f"{venue}_eth_perp_price": px},
                ts=ts,
            )
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            m.emit(
                venue,
                "record_fill",
                instruction_id=iid,
                trade_id=f"t{iid}",
                market_type="perp",
                instrument="ETH/USDT:USDT",
                side=side,
                quantity=q,
                price=px,
                fee=(q * px * Decimal("0.0005")).quantize(Decimal("0.0001")),
                fee_asset="USDT",
                ts=ts,
                wallet="futures",
            )
            m.perps[venue] = m.perps.get(venue, ZERO) + (q if side == "buy" else -q)
        elif action == "funding":
            open_at = sorted(v for v, x in m.perps.items() if x)
            if not open_at:
                continue
            venue, mark = draw(st.sampled_from(open_at)), draw(price)
            rate = draw(_decimals("-0.001", "0.001", 6))
            position = m.perps[venue]
            m.next("f")
            m.emit(
                venue,
                "record_funding",
                instrument="ETH/USDT:USDT",
                wallet="futures",
                asset="USDT",
                rate=rate,
                mark_price=mark,
                position=position,
                amount=-position * mark * rate,
                ts=ts,
            )
        elif action == "resting":
            venue, iid = draw(st.sampled_from(venues)), m.next("r")
            m.emit(
                venue,
                "record_accepted",
                instruction_id=iid,
                instruction={
                    "kind": "ORDER",
                    "instrument": "ETH/USDT",
                    "market_type": "spot",
                    "side": "buy",
                    "amount": str(draw(qty)),
                    "wallet": "spot",
                    "price": "1000",
                },
                market={},
                ts=ts,
            )
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            m.emit(venue, "record_acknowledged", instruction_id=iid, venue_order_id=f"v{iid}", ts=ts)
            m.resting.append((venue, iid))
        elif action == "cancel":
            if not m.resting:
                continue
            venue, iid = m.resting.pop(draw(st.integers(0, len(m.resting) - 1)))
            m.next("x")
            m.emit(venue, "record_cancel_requested", instruction_id=iid, ts=ts)
            m.emit(venue, "record_cancelled", instruction_id=iid, reason="cancel_all_orders", ts=ts)
        elif action == "reject":
            venue = draw(st.sampled_from(all_venues))
            m.emit(
                venue,
                "record_rejected",
                instruction_id=m.next("j"),
                code="invalid_amount",
                reason="amount: expected a number, got 'abc'",
                received={"amount": "'abc'"},
                ts=ts,
            )
        elif action == "transfer":
            held = sorted(k for k, v in m.balances.items() if v > 1 and k[1] != "futures")
            if not held:
                continue
            src = draw(st.sampled_from(held))
            dst = draw(st.sampled_from([v for v in all_venues if v != src[0]]))
            fee = draw(st.sampled_from([ZERO, Decimal("0.5") if src[2] == "USDT" else Decimal("0.001")]))
            amount = ((m.held(src) - fee) * draw(_decimals("0.01", "1", 2))).quantize(Decimal("0.0001"))
            if amount <= 0:
                continue
            iid, tid = m.next("s"), f"tr{m.n}"
            m.emit(
                src[0],
                "record_accepted",
                instruction_id=iid,
                instruction={
                    "kind": "TRANSFER",
                    "asset": src[2],
                    "amount": str(amount),
                    "wallet": src[1],
                    "to_venue": dst,
                },
                market={},
                ts=ts,
            )
            m.emit(
                src[0],
                "record_transfer_sent",
                instruction_id=iid,
                transfer_id=tid,
                asset=src[2],
                amount=amount,
                fee=fee,
                from_wallet=src[1],
                to_venue=dst,
                to_wallet=_wallet(dst),
                ts=ts,
            )
            m.move(src, -amount - fee)
            m.pending.append((src[0], src[1], iid, tid, dst, amount, src[2]))
        elif action in ("arrive", "fail"):
            if not m.pending:
                continue
            pick = draw(st.integers(0, len(m.pending) - 1))
            venue, wallet, iid, tid, dst, amount, asset = m.pending.pop(pick)
            m.next("a")
            if action == "arrive":
                m.emit(
                    dst,
                    "record_transfer_received",
                    transfer_id=tid,
                    from_venue=venue,
                    wallet=_wallet(dst),
                    asset=asset,
                    amount=amount,
                    ts=ts,
                )
                m.move((dst, _wallet(dst), asset), amount)
            else:
                m.emit(
                    venue,
                    "record_transfer_failed",
                    instruction_id=iid,
                    transfer_id=tid,
                    reason="rejected by the venue",
                    refunded=amount,
                    ts=ts,
                )
                m.move((venue, wallet, asset), amount)
        elif action == "supply":
            key = (CHAIN_VENUE, CHAIN_WALLET, "ETH")
            gas = Decimal("0.0021")
            n = (draw(_decimals("0.01", "1", 2)) * (m.held(key) - gas)).quantize(Decimal("0.0001"))
            if n <= 0:
                continue
            iid = m.next("c")
            tx = "0x" + f"{m.n:064x}"
            block = "0x" + f"{m.n + 10**6:064x}"
            m.emit(
                CHAIN_VENUE,
                "record_accepted",
                instruction_id=iid,
                instruction={
                    "kind": "AAVE_SUPPLY",
                    "operation": "AAVE_SUPPLY",
                    "asset": "ETH",
                    "amount": str(n),
                    "wallet": CHAIN_WALLET,
                },
                market={},
                ts=ts,
            )
            m.emit(
                CHAIN_VENUE,
                "record_tx_submitted",
                instruction_id=iid,
                tx_hash=tx,
                nonce=m.n,
                max_fee_per_gas=2 * 10**10,
                max_priority_fee_per_gas=10**9,
                gas_limit=252_000,
                purpose="AAVE_SUPPLY",
                ts=ts,
            )
            m.emit(
                CHAIN_VENUE,
                "record_tx_mined",
                instruction_id=iid,
                tx_hash=tx,
                block_number=m.n,
                block_hash=block,
                ts=ts,
            )
            effects = [
                {
                    "kind": "wrapped",
                    "asset": "ETH",
                    "receipt_asset": "WETH",
                    "amount": str(n),
                    "wallet": CHAIN_WALLET,
                    "trade_id": f"{tx}:0",
                },
                {
                    "kind": "supplied",
                    "asset": "WETH",
                    "amount": str(n),
                    "wallet": CHAIN_WALLET,
                    "trade_id": f"{tx}:1",
                },
            ]
            m.emit(
                CHAIN_VENUE,
                "record_tx_confirmed",
                instruction_id=iid,
                tx_hash=tx,
                block_number=m.n,
                block_hash=block,
                gas_used=210_000,
                effective_gas_price=10**10,
                gas_fee=gas,
                effects=effects,
                ts=ts,
            )
            m.emit(CHAIN_VENUE, "record_completed", instruction_id=iid, ts=ts)
            m.move(key, -n - gas)
            m.supplied += n
        elif action == "interest":
            if m.supplied <= 0:
                continue
            amount = (m.supplied * draw(_decimals("0.00001", "0.001", 5))).quantize(Decimal("1e-18"))
            m.emit(
                CHAIN_VENUE,
                "record_interest",
                accrual_id=m.next("n"),
                asset="WETH",
                side="supplied",
                amount=amount,
                index=Decimal("1.05"),
                ts=ts,
            )
            m.supplied += amount
        elif action == "reward":
            amount = draw(_decimals("0.0001", "0.01", 4))
            m.emit(
                CHAIN_VENUE,
                "record_reward",
                accrual_id=m.next("e"),
                wallet=CHAIN_WALLET,
                asset="ETH",
                amount=amount,
                kind="staking",
                ts=ts,
            )
            m.move((CHAIN_VENUE, CHAIN_WALLET, "ETH"), amount)
        else:
            venue = draw(st.sampled_from(all_venues))
            key = (venue, _wallet(venue), "USDT")
            observed = m.held(key) + draw(_decimals("-1", "1", 2))
            m.next("o")
            m.emit(
                venue,
                "record_balance_observed",
                wallet=key[1],
                asset="USDT",
                observed=observed,
                ledger=m.held(key),
                ts=ts,
            )
    return m.out
