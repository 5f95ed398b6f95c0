"""The chain verifier: recompute every stream's digest chain and every session checkpoint.

What it detects: an edited row (digest mismatch), a deleted or inserted row inside a stream
(version gap or digest mismatch), rows reordered within a stream, and — for everything up to the
last checkpoint — rows reordered across streams, deleted at the tail, or a deleted checkpoint.
What it cannot detect without an external anchor (`anchor()` stored elsewhere): rows removed
after the last checkpoint, or a chain recomputed end to end by someone with write access
(sha256 has no secret). See the README's "Tamper evidence" section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

from aggregates.session import Session
from ledger.codec import GENESIS, link, link_global, split_state

CHECKPOINT = Session.Checkpointed.TOPIC


@dataclass(frozen=True)
class Finding:
    notification_id: int
    stream: str
    version: int
    problem: str

    def __str__(self) -> str:
        return (f"notification {self.notification_id}, stream {self.stream}, version {self.version}: "
                f"{self.problem}")


@dataclass
class Verification:
    events: int = 0
    checkpoints: int = 0
    uncovered: int = 0
    head: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def verify_chain(ledger: Any, anchor: dict[str, Any] | None = None, stop_at_first: bool = True,
                 ) -> Verification:
    """Walk the whole log once; report the first broken link (or all, with stop_at_first=False)."""
    result = Verification()
    heads: dict[str, tuple[int, str]] = {}
    pending: list[tuple[int, str, int, str]] = []
    cp_chain = GENESIS
    cp_to = 0

    def fail(nid: int, stream: str, version: int, problem: str) -> bool:
        result.findings.append(Finding(nid, stream, version, problem))
        return stop_at_first

    for nid, stream, version, topic, state in ledger.iter_rows():
        result.events += 1
        if isinstance(state, str):  # an edit through SQL text functions changes the storage class
            state = state.encode()
        try:
            payload, digest = split_state(ledger.codec.plaintext(state))
        except Exception as e:
            if fail(nid, stream, version, f"stored state cannot be read ({e})"):
                return result
            continue
        result.head = link_global(result.head, digest)
        prev_version, prev_digest = heads.get(stream, (0, GENESIS))
        what = "missing" if version > prev_version + 1 else "out of order or duplicated"
        if version != prev_version + 1 and fail(
                nid, stream, version, f"expected version {prev_version + 1} ({what} event)"):
            return result
        expected = link(prev_digest, topic, UUID(stream), version, payload)
        if expected != digest and fail(nid, stream, version, "digest does not match its content and "
                                       "predecessor (edited, moved or forged row)"):
            return result
        heads[stream] = (version, digest)
        if topic == CHECKPOINT:
            problem = _check_checkpoint(payload, pending, cp_chain, cp_to)
            if problem and fail(nid, stream, version, problem):
                return result
            cp = msgspec.json.decode(payload)
            cp_chain, cp_to = cp["chain"], cp["notification_id"]
            pending = [p for p in pending if p[0] > cp_to]
            result.checkpoints += 1
        pending.append((nid, stream, version, digest))
    result.uncovered = len(pending)
    if anchor is not None:
        if int(anchor.get("events", -1)) != result.events:
            fail(0, "-", 0, f"anchor records {anchor.get('events')} events, the log has {result.events}")
        elif anchor.get("head") != result.head:
            fail(0, "-", 0, "anchor head digest differs from the log's (rows changed or reordered)")
    return result


def _check_checkpoint(payload: bytes, pending: list[tuple[int, str, int, str]], chain: str,
                      cp_to: int) -> str | None:
    cp = msgspec.json.decode(payload)
    to = int(cp["notification_id"])
    covered = [p for p in pending if p[0] <= to]
    if to < cp_to:
        return f"checkpoint covers up to notification {to}, before the previous one ({cp_to})"
    if len(covered) != int(cp["count"]):
        return (f"checkpoint counts {cp['count']} events since the previous checkpoint, "
                f"the log has {len(covered)} (rows deleted, inserted or a checkpoint removed)")
    for _nid, _stream, _version, digest in covered:
        chain = link_global(chain, digest)
    if chain != cp["chain"]:
        return "checkpoint chain differs (rows reordered across streams, or a checkpoint removed)"
    heads: dict[str, tuple[str, int, str]] = {}
    for _nid, stream, version, digest in covered:
        heads[stream] = (stream, version, digest)
    if sorted(heads.values()) != sorted(tuple(h) for h in cp["heads"]):
        return "checkpoint stream heads differ from the log"
    return None


def anchor(ledger: Any) -> dict[str, Any]:
    """Head digest and event count, to be kept outside the database (`ledger audit anchor`)."""
    result = verify_chain(ledger, stop_at_first=True)
    return {"events": result.events, "head": result.head}
