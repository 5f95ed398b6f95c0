"""One contract for every view: in-memory and SQL (SQLite and PostgreSQL) agree with a rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.app import Ledger
from projections import InMemoryProjection, SQLProjection, fold
from tests.scenario import write_scenario


class ViewContract:
    """Subclasses say how to make the view; the checks are the same for every view."""

    def make(self, ledger: Ledger) -> Any:
        raise AssertionError("subclasses define make()")

    @pytest.fixture
    def ledger(self, store_url: str) -> Ledger:
        return Ledger.open(store_url, create=True, checkpoint_every=25)

    def run(self, view: Any, ledger: Ledger) -> None:
        if isinstance(view, InMemoryProjection):
            view.catch_up(ledger)
        else:
            view.run(ledger, batch=7)

    def test_incremental_equals_full_rebuild(self, ledger: Ledger) -> None:
        """Applied in small batches while the log grows, the view equals one fold of everything."""
        view = self.make(ledger)
        write_scenario(ledger)
        self.run(view, ledger)
        rebuilt = fold(e for _, e in ledger.iter_events())
        assert view.state.comparable() == rebuilt.comparable()
        assert view.position == ledger.max_notification_id()

    def test_restart_resumes_exactly_once(self, ledger: Ledger) -> None:
        view = self.make(ledger)
        write_scenario(ledger)
        half = ledger.max_notification_id() // 2
        if isinstance(view, InMemoryProjection):
            view.catch_up(ledger, stop=half)
            view.handle(list(ledger.iter_events(0, half)))  # fed again: ignored
            view.catch_up(ledger)
        else:
            view.run(ledger, stop=half)
            restarted = self.make(ledger)
            assert restarted.position == half
            restarted.run(ledger)
            restarted.run(ledger)
            view = restarted
        rebuilt = fold(e for _, e in ledger.iter_events())
        assert view.state.comparable() == rebuilt.comparable()
        assert view.state.events == ledger.max_notification_id()

    def test_rebuild_replays_every_event(self, ledger: Ledger) -> None:
        view = self.make(ledger)
        write_scenario(ledger)
        self.run(view, ledger)
        before = view.state.comparable()
        assert view.rebuild(ledger) == ledger.max_notification_id()
        assert view.state.comparable() == before


class TestInMemoryView(ViewContract):
    def make(self, ledger: Ledger) -> InMemoryProjection:
        return InMemoryProjection()


class TestSQLView(ViewContract):
    def make(self, ledger: Ledger) -> SQLProjection:
        return SQLProjection.for_ledger(ledger)

    def test_sql_tables_hold_exact_decimals_and_every_fill(self, ledger: Ledger) -> None:
        view = self.make(ledger)
        write_scenario(ledger)
        view.run(ledger)
        fills = view.fills()
        assert len(fills) == view.state.fills_count == 14
        assert str(fills[0]["price"]) == "3001.5"
        fresh = self.make(ledger)
        assert fresh.state.comparable() == view.state.comparable()


def test_each_view_folds_through_the_same_function() -> None:
    """Both views call projections.folds.apply: the contract is about one fold, two stores."""
    from projections import memory, sql

    fn: Callable[..., Any] = memory.apply
    assert fn is sql.apply


def test_fold_ignores_the_callers_decimal_context(tmp_path: Any) -> None:
    """ccxt changes the thread's decimal context; folds and reports use their own."""
    import decimal

    from projections import pnl

    ledger = Ledger.open(tmp_path / "ctx.db", create=True)
    write_scenario(ledger)
    events = [e for _, e in ledger.iter_events()]
    expected = fold(events)
    with decimal.localcontext(decimal.Context(prec=6, rounding=decimal.ROUND_UP)):
        hostile = fold(events)
        hostile_pnl = pnl(hostile)
    assert hostile.comparable() == expected.comparable()
    assert hostile_pnl == pnl(expected)


def test_failed_sql_commit_is_not_applied_twice_on_retry(tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.open(tmp_path / "retry.db", create=True)
    write_scenario(ledger)
    view = SQLProjection.for_ledger(ledger)
    original = SQLProjection._write
    calls = {"n": 0}

    def flaky(self: SQLProjection, conn: Any, state: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database is locked")
        original(self, conn, state)

    monkeypatch.setattr(SQLProjection, "_write", flaky)
    with pytest.raises(RuntimeError):
        view.run(ledger, batch=10)
    view.run(ledger, batch=10)
    rebuilt = fold(e for _, e in ledger.iter_events())
    assert view.state.comparable() == rebuilt.comparable()
    assert SQLProjection.for_ledger(ledger).state.comparable() == rebuilt.comparable()


def test_a_sql_view_restarted_at_the_end_of_an_hour_keeps_that_hours_sample(tmp_path: Any) -> None:
    """Equity is sampled when the next hour's first event comes: a view stopped just before it
    (the last event of an hour) and resumed must still take that sample (it was lost: the open hour
    was not restored from the tables, and an appended run's `audit verify` found a row missing)."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'h.db'}", create=True)
    write_scenario(ledger)
    pairs = list(ledger.iter_events())
    times = [getattr(e, "ts_event", None) for _n, e in pairs]
    ends = [pairs[i][0] for i in range(len(pairs) - 1)
            if times[i] and times[i + 1] and times[i + 1].hour != times[i].hour][:4]
    assert ends
    rebuilt = fold(e for _, e in pairs)
    for stop in ends:
        first = SQLProjection(f"sqlite:///{tmp_path / f'views-{stop}.db'}")
        first.run(ledger, stop=stop)
        first.close()
        resumed = SQLProjection(f"sqlite:///{tmp_path / f'views-{stop}.db'}")
        resumed.run(ledger)
        assert resumed.state.equity == rebuilt.equity, stop
        resumed.close()
