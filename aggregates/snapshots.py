"""Deterministic snapshots: the timestamp is the aggregate's own last event time, never the wall clock."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic, register_topic, resolve_topic


class LedgerSnapshot(Snapshot):
    """A snapshot whose state is the aggregate's canonical `snapshot_state()`."""

    TOPIC = "ledger:Snapshot"

    @classmethod
    def take(cls, aggregate: Any) -> LedgerSnapshot:
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=aggregate.modified_on,
            topic=get_topic(type(aggregate)),
            state=aggregate.snapshot_state(),
        )

    def mutate(self, _: Any) -> Any:
        cls = resolve_topic(self.topic)
        state = cls.from_snapshot_state(self.state)
        state["_id"] = self.originator_id
        state["_version"] = self.originator_version
        state["_pending_events"] = []
        aggregate = object.__new__(cls)
        object.__setattr__(aggregate, "__dict__", state)
        return aggregate


register_topic(LedgerSnapshot.TOPIC, LedgerSnapshot)
