"""The Session aggregate: how a run started (mode, config, data, seed), its checkpoints and its end."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from aggregates.errors import LedgerError
from aggregates.ids import session_id
from aggregates.snapshots import LedgerSnapshot


class Session(Aggregate):
    """One backtest or live run; its checkpoints anchor the heads of every venue stream."""

    TOPIC = "ledger:Session"
    Snapshot = LedgerSnapshot

    class Event(Aggregate.Event):
        TOPIC = "ledger:Session.Event"
        ts_event: datetime

    class SessionStarted(Event, Aggregate.Created):
        TOPIC = "ledger:Session.SessionStarted"
        session_key: str
        mode: str
        config: str
        config_digest: str
        data_source: str
        data_digest: str
        seed: int
        code_version: str

    class Checkpointed(Event):
        """Heads are (stream id, version, chain digest) of the streams written since the last checkpoint;
        `chain` runs over all streams in notification order."""

        TOPIC = "ledger:Session.Checkpointed"
        heads: tuple[tuple[str, int, str], ...]
        count: int
        notification_id: int
        chain: str

        def apply(self, aggregate: Any) -> None:
            aggregate.checkpoints += 1

    class MarketObserved(Event):
        """A market snapshot the run saw (prices, rates, indexes), so marks move between instructions."""

        TOPIC = "ledger:Session.MarketObserved"
        market: dict[str, Decimal]

    class SessionEnded(Event):
        TOPIC = "ledger:Session.SessionEnded"
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.ended = True

    def __init__(self, session_key: str, mode: str, **_: Any) -> None:
        self.session_key = session_key
        self.mode = mode
        self.checkpoints = 0
        self.ended = False

    @staticmethod
    def create_id(session_key: str) -> Any:
        return session_id(session_key)

    @classmethod
    def start(
        cls, session_key: str, mode: str, config: str, config_digest: str, data_source: str,
        data_digest: str, seed: int, code_version: str, ts: datetime, now: datetime | None = None,
    ) -> Session:
        if mode not in ("backtest", "live", "dry-run", "replay"):
            raise LedgerError(f"mode: expected backtest, live, dry-run or replay, got {mode!r}")
        return cls._create(
            cls.SessionStarted, session_key=session_key, mode=mode, config=config,
            config_digest=config_digest, data_source=data_source, data_digest=data_digest,
            seed=seed, code_version=code_version, ts_event=ts, timestamp=now or ts,
        )

    def record_checkpoint(
        self, heads: list[tuple[str, int, str]], count: int, notification_id: int, chain: str,
        ts: datetime, now: datetime | None = None,
    ) -> None:
        if self.ended:
            raise LedgerError(f"session {self.session_key} has ended; start a new one")
        self.trigger_event(
            self.Checkpointed, heads=tuple(tuple(h) for h in heads), count=count,
            notification_id=notification_id, chain=chain, ts_event=ts, timestamp=now or ts,
        )

    def record_market(
        self, market: dict[str, Decimal], ts: datetime, now: datetime | None = None,
    ) -> None:
        if self.ended:
            raise LedgerError(f"session {self.session_key} has ended; start a new one")
        self.trigger_event(self.MarketObserved, market=dict(market), ts_event=ts, timestamp=now or ts)

    def record_end(self, reason: str, ts: datetime, now: datetime | None = None) -> None:
        if self.ended:
            return
        self.trigger_event(self.SessionEnded, reason=reason, ts_event=ts, timestamp=now or ts)

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "session_key": self.session_key, "mode": self.mode, "checkpoints": self.checkpoints,
            "ended": self.ended, "created_on": self.created_on.isoformat(),
            "modified_on": self.modified_on.isoformat(),
        }

    @classmethod
    def from_snapshot_state(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "session_key": state["session_key"], "mode": state["mode"],
            "checkpoints": state["checkpoints"], "ended": state["ended"],
            "_created_on": datetime.fromisoformat(state["created_on"]),
            "_modified_on": datetime.fromisoformat(state["modified_on"]),
        }
