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
