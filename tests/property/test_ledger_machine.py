"""Hypothesis state machine over random valid and invalid ledger commands.

An independent model (plain dicts, no ledger code) says what every balance must be; after each
step the in-memory view must agree with it, funds must be conserved, illegal intents must leave
nothing in the store, and at the end the SQL view and a full rebuild must equal the live view.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aggregates import IllegalTransitionError, VenueLedger
from ledger.app import Ledger
from projections import InMemoryProjection, SQLProjection, fold
from projections.reports import balances, in_transit
from replays.verify import verify_chain
from tests.conftest import PG_DSN

T0 = datetime(2024, 6, 1, tzinfo=UTC)
VENUES = ("binance", "bybit", "okx")
amounts = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
prices = st.decimals(min_value=D("100"), max_value=D("5000"), places=1)


class LedgerMachine(RuleBasedStateMachine):
    def store_url(self) -> str:
        return str(Path(self.dir.name) / "l.db")

    @initialize()
    def open_store(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.ledger = Ledger.open(self.store_url(), create=True, synchronous="OFF", snapshot_every=7)
        self.view = InMemoryProjection().attach(self.ledger)
        self.venues = {v: VenueLedger.open("main", v, "cex", T0) for v in VENUES}
        self.ledger.save(*self.venues.values())
        self.model: dict[tuple[str, str], D] = {}
        self.transit: dict[str, tuple[str, str, D]] = {}
        self.total: dict[str, D] = {}
        self.stored = len(VENUES)
        self.step = 0
        self.seen_deposits: set[str] = set()
        self.filled: list[tuple[str, str, str]] = []

    def ts(self) -> datetime:
        self.step += 1
        return T0 + timedelta(minutes=self.step)

    def held(self, venue: str, asset: str) -> D:
        return self.model.get((venue, asset), D(0))

    def move(self, venue: str, asset: str, delta: D) -> None:
        self.model[(venue, asset)] = self.held(venue, asset) + delta

    def save(self, venue: str) -> None:
        pending = len(self.venues[venue].pending_events)
        self.ledger.save(self.venues[venue])
        self.stored += pending

    @rule(venue=st.sampled_from(VENUES), asset=st.sampled_from(["USDT", "ETH"]), amount=amounts,
          ref=st.integers(0, 6))
    def deposit(self, venue: str, asset: str, amount: D, ref: int) -> None:
        key = f"{venue}-{ref}"
        recorded = self.venues[venue].record_deposit(key, "spot", asset, amount, self.ts())
        assert recorded == (key not in self.seen_deposits)
        if recorded:
            self.seen_deposits.add(key)
            self.move(venue, asset, amount)
            self.total[asset] = self.total.get(asset, D(0)) + amount
        self.save(venue)

    @rule(venue=st.sampled_from(VENUES), qty=st.decimals(min_value=D("0.01"), max_value=D(3), places=2),
          price=prices, side=st.sampled_from(["buy", "sell"]), duplicate=st.booleans())
    def trade(self, venue: str, qty: D, price: D, side: str, duplicate: bool) -> None:
        fee = (qty * price * D("0.001")).quantize(D("0.0001"))
        pay_asset, pay = ("USDT", qty * price + fee) if side == "buy" else ("ETH", qty)
        short_of_fee = side == "sell" and self.held(venue, "USDT") < -qty * price + fee
        if self.held(venue, pay_asset) < pay or short_of_fee:
            return
        v, ts = self.venues[venue], self.ts()
        iid = f"i{self.step}"
        v.record_accepted(iid, {"kind": side.upper(), "instrument": "ETH/USDT", "side": side,
                                "amount": str(qty), "wallet": "spot"}, {"eth_usd_price": price}, ts)
        v.record_submitted(iid, f"c{iid}", ts)
        for _ in range(2 if duplicate else 1):
            v.record_fill(iid, f"t{iid}", "spot", "ETH/USDT", side, qty, price, fee, "USDT", ts)
        sign = D(1) if side == "buy" else D(-1)
        self.move(venue, "ETH", sign * qty)
        self.move(venue, "USDT", -sign * qty * price - fee)
        self.total["ETH"] = self.total.get("ETH", D(0)) + sign * qty
        self.total["USDT"] = self.total.get("USDT", D(0)) - sign * qty * price - fee
        self.filled.append((venue, iid, side))
        self.save(venue)

    @precondition(lambda self: self.filled)
    @rule(data=st.data(), action=st.sampled_from(["submit", "cancel", "transfer", "accept-again"]))
    def illegal_intent(self, data: st.DataObject, action: str) -> None:
        venue, iid, _side = data.draw(st.sampled_from(self.filled))
        v = self.venues[venue]
        version = v.version
        try:
            if action == "submit":
                v.record_submitted(iid, "again", self.ts())
            elif action == "cancel":
                v.record_cancel_requested(iid, self.ts())
            elif action == "transfer":
                v.record_transfer_sent(iid, "x", "USDT", D(1), D(0), "spot", "okx", "spot", self.ts())
            else:
                v.record_accepted(iid, {}, {}, self.ts())
        except IllegalTransitionError:
            pass
        except Exception as e:  # DuplicateError for accept-again
            assert type(e).__name__ == "DuplicateError"
        assert v.version == version and not v.pending_events
        self.save(venue)

    @rule(src=st.sampled_from(VENUES), dst=st.sampled_from(VENUES), amount=amounts)
    def send(self, src: str, dst: str, amount: D) -> None:
        fee = D("1")
        if src == dst or self.held(src, "USDT") < amount + fee:
            return
        v, ts = self.venues[src], self.ts()
        iid = f"x{self.step}"
        v.record_accepted(iid, {"kind": "TRANSFER", "asset": "USDT", "amount": str(amount),
                                "wallet": "spot"}, {}, ts)
        v.record_transfer_sent(iid, iid, "USDT", amount, fee, "spot", dst, "spot", ts)
        self.move(src, "USDT", -amount - fee)
        self.total["USDT"] -= fee
        self.transit[iid] = (src, dst, amount)
        self.save(src)

    @precondition(lambda self: self.transit)
    @rule(data=st.data(), arrive=st.booleans())
    def settle_transfer(self, data: st.DataObject, arrive: bool) -> None:
        tid = data.draw(st.sampled_from(sorted(self.transit)))
        src, dst, amount = self.transit.pop(tid)
        if arrive:
            assert self.venues[dst].record_transfer_received(tid, src, "spot", "USDT", amount, self.ts())
            self.move(dst, "USDT", amount)
            self.save(dst)
        else:
            self.venues[src].record_transfer_failed(tid, tid, "rejected", amount, self.ts())
            self.move(src, "USDT", amount)
            self.save(src)

    @rule(venue=st.sampled_from(VENUES))
    def reload(self, venue: str) -> None:
        """Reloading from the store (snapshot plus tail) gives the same aggregate."""
        loaded = self.ledger.get_venue("main", venue)
        assert loaded.snapshot_state() == self.venues[venue].snapshot_state()
        self.venues[venue] = loaded

    @invariant()
    def view_matches_model(self) -> None:
        if not hasattr(self, "view"):
            return
        state = self.view.state
        expected = {k: v for k, v in self.model.items() if v}
        actual = {(v, a): x for (v, _w, a), x in state.balances.items() if x}
        assert actual == expected
        assert in_transit(state).get("USDT", D(0)) == sum((t[2] for t in self.transit.values()), D(0))

    @invariant()
    def funds_are_conserved(self) -> None:
        """What came in, traded and paid in fees equals what is held plus what is in transit."""
        if not hasattr(self, "view"):
            return
        held = balances(self.view.state)
        transit = in_transit(self.view.state)
        for asset, total in self.total.items():
            assert held.get(asset, D(0)) + transit.get(asset, D(0)) == total

    @invariant()
    def nothing_illegal_was_stored(self) -> None:
        if hasattr(self, "ledger"):
            assert self.ledger.max_notification_id() == self.stored

    def teardown(self) -> None:
        if not hasattr(self, "ledger"):
            return
        try:
            rebuilt = fold(e for _, e in self.ledger.iter_events())
            assert rebuilt.comparable() == self.view.state.comparable()
            sql = SQLProjection.for_ledger(self.ledger)
            sql.run(self.ledger, batch=5)
            assert sql.state.comparable() == rebuilt.comparable()
            assert SQLProjection.for_ledger(self.ledger).state.comparable() == rebuilt.comparable()
            sql.close()
            assert verify_chain(self.ledger).ok
        finally:
            self.ledger.close()
            self.dir.cleanup()
            self.drop()

    def drop(self) -> None:
        """Nothing to drop for SQLite: the directory is gone."""


class PostgresLedgerMachine(LedgerMachine):
    """The same machine on PostgreSQL, each example in a schema of its own."""

    def store_url(self) -> str:
        self.schema = f"m_{uuid.uuid4().hex[:12]}"
        return f"{PG_DSN}?schema={self.schema}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


LedgerMachine.TestCase.settings = settings(settings.default, stateful_step_count=15)
TestLedgerMachine = LedgerMachine.TestCase
PostgresLedgerMachine.TestCase.settings = settings(
    settings.default, stateful_step_count=12, max_examples=min(settings.default.max_examples, 60))


@pytest.mark.postgres
def test_ledger_machine_on_postgres(pg_url: str) -> None:
    """The pg_url fixture only gates on the server; the machine makes its own schemas."""
    run_state_machine_as_test(PostgresLedgerMachine, settings=PostgresLedgerMachine.TestCase.settings)
