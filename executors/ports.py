"""The ports the execution interfaces depend on (injected through `set_dependencies`).

Executors never import projections: they read balances and positions through `PositionMonitor`,
append through `EventLogger`, and ask `DataProvider` for market data. `ledger.engine` wires the real
ones; tests may pass their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from aggregates.venue import VenueLedger


class PositionMonitor(Protocol):
    """The projections facade: what the ledger says is held."""

    def balance(self, asset: str, venue: str | None = None, wallet: str | None = None) -> Decimal: ...

    def position(self, symbol: str, venue: str | None = None) -> dict[str, Any]: ...

    def positions(self, venue: str) -> list[dict[str, Any]]:
        """Open positions at `venue` (symbol, market_type, amount, entry_price)."""
        ...

    def has_perps(self) -> bool:
        """Whether any perpetual position is open (cheap: asked at every tick)."""
        ...

    def has_lending(self, venue: str) -> bool:
        """Whether anything is supplied or borrowed at `venue` (cheap: asked at every tick)."""
        ...

    def perp_venues(self) -> list[str]:
        """Venues with an open perpetual position, sorted."""
        ...

    def lending(self, venue: str) -> list[tuple[str, str, Decimal]]:
        """AAVE books at `venue`: (supplied|borrowed, asset, amount), non-zero, sorted."""
        ...

    def supplied(self, venue: str, asset: str) -> Decimal: ...

    def borrowed(self, venue: str, asset: str) -> Decimal: ...

    def aave_totals(self, venue: str, market: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
        """(collateral x liquidation threshold, debt), both in USD at `market`'s prices."""
        ...

    def margin_equity(self, venue: str, wallet: str, market: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
        """(margin balance + unrealised perp P&L, initial margin used) of a venue's margin wallet."""
        ...


class EventLogger(Protocol):
    """The event store facade: venue aggregates, the clock, and the one way to append."""

    mode: str

    def now(self) -> datetime: ...

    def venue(self, name: str) -> VenueLedger: ...

    def venue_type(self, name: str) -> str | None: ...

    def venues(self) -> list[str]: ...

    def commit(self, *aggregates: VenueLedger, durable: bool = True) -> None:
        """Save the aggregates' new events; `durable=False` for facts the venue can be asked for again."""
        ...

    def unit(self) -> AbstractContextManager[None]:
        """One command: all of its events committed, or none and nothing it changed kept."""
        ...

    def views_failed(self, error: BaseException) -> None:
        """A view or the update handler raised after a commit: rebuild the views from the log."""
        ...

    def next_instruction_id(self) -> str: ...

    def claim_instruction_id(self, instruction_id: str) -> None:
        """Refuse (DuplicateError) a caller-supplied id already used at any venue."""
        ...

    def schedule(self, due: datetime, kind: str, payload: dict[str, Any]) -> None:
        """Ask the engine to call back the owning interface's `on_due` at `due` (backtests)."""
        ...


class DataProvider(Protocol):
    """Market data: the snapshot at a time and the funding points in a window."""

    def snapshot(self, ts: datetime) -> dict[str, Decimal]: ...

    def funding(self, after: datetime | None, upto: datetime) -> Sequence[Any]:
        """Funding points (ts, venue, base, rate) with after < ts <= upto (after None: from the start)."""
        ...
