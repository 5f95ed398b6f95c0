"""The chain verifier: recompute every stream's digest chain and every session checkpoint.

What it detects: an edited row (digest mismatch), a deleted or inserted row inside a stream
(version gap or digest mismatch), rows reordered within a stream, and — for everything up to the
last checkpoint — rows reordered across streams, deleted at the tail, or a deleted checkpoint.
What it cannot detect without an external anchor (`anchor()` stored elsewhere): rows removed
after the last checkpoint, or a chain recomputed end to end by someone with write access
(sha256 has no secret). An anchor covers the events that existed when it was taken; events
appended since are reported as such, not as tampering. See the README's "Tamper evidence" section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

from aggregates.session import Session
from ledger.codec import GENESIS, link, link_global, split_state

CHECKPOINT = Session.Checkpointed.TOPIC
PROGRESS_EVERY = 5_000


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
    heads: dict[str, int] = field(default_factory=dict)  # stream -> last version seen
    after_anchor: int = 0  # events appended since the anchor was taken

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def verify_chain(ledger: Any, anchor: dict[str, Any] | None = None, stop_at_first: bool = True,
                 progress: Callable[[int], None] | None = None) -> Verification:
    """Walk the whole log once; report the first broken link (or all, with stop_at_first=False).
    `progress` is told the number of events read every `PROGRESS_EVERY` events."""
    result = Verification()
    heads: dict[str, tuple[int, str]] = {}
    pending: list[tuple[int, str, int, str]] = []
    cp_chain = GENESIS
    cp_to = 0
    anchored = int(anchor.get("events", -1)) if anchor is not None else -1
    head_at_anchor = GENESIS if anchored == 0 else None

    def fail(nid: int, stream: str, version: int, problem: str) -> bool:
        result.findings.append(Finding(nid, stream, version, problem))
        return stop_at_first

    for nid, stream, version, topic, state in ledger.iter_rows():
        result.events += 1
        if progress is not None and result.events % PROGRESS_EVERY == 0:
            progress(result.events)
        if isinstance(state, str):  # an edit through SQL text functions changes the storage class
            state = state.encode()
        try:
            payload, digest = split_state(ledger.codec.plaintext(state))
        except Exception as e:
            if fail(nid, stream, version, f"stored state cannot be read ({e})"):
                return result
            continue
        result.head = link_global(result.head, digest)
        if result.events == anchored:
            head_at_anchor = result.head
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
            found = _check_checkpoint(payload, pending, cp_chain, cp_to)
            if found is not None:
                problem, at_stream, at_version = found
                if fail(nid, at_stream or stream, at_version or version, problem):
                    return result
            cp = msgspec.json.decode(payload)
            cp_chain, cp_to = cp["chain"], cp["notification_id"]
            pending = [p for p in pending if p[0] > cp_to]
            result.checkpoints += 1
        pending.append((nid, stream, version, digest))
    result.uncovered = len(pending)
    result.heads = {s: v for s, (v, _d) in heads.items()}
    if anchor is not None:
        # The anchor covers the log as it was when taken: its first `events` events. Events appended
        # since are legitimate growth (a live ledger), covered by the next anchor.
        if anchored < 0 or result.events < anchored:
            fail(0, "-", 0, f"anchor records {anchor.get('events')} events, the log has only "
                 f"{result.events} (events removed)")
        elif head_at_anchor != anchor.get("head"):
            fail(0, "-", 0, f"the first {anchored} events differ from the anchored ones "
                 "(rows changed, removed, inserted or reordered)")
        else:
            result.after_anchor = result.events - anchored
    return result


def _check_checkpoint(payload: bytes, pending: list[tuple[int, str, int, str]], chain: str,
                      cp_to: int) -> tuple[str, str | None, int | None] | None:
    """What is wrong with a checkpoint, and the stream and version it points at (None: the checkpoint)."""
    cp = msgspec.json.decode(payload)
    to = int(cp["notification_id"])
    covered = [p for p in pending if p[0] <= to]
    if to < cp_to:
        return f"checkpoint covers up to notification {to}, before the previous one ({cp_to})", None, None
    heads = _head_difference(covered, cp["heads"])
    if heads is not None:
        return heads
    if len(covered) != int(cp["count"]):
        return (f"checkpoint counts {cp['count']} events since the previous checkpoint, "
                f"the log has {len(covered)} (rows deleted, inserted or a checkpoint removed)", None, None)
    for _nid, _stream, _version, digest in covered:
        chain = link_global(chain, digest)
    if chain != cp["chain"]:
        return ("checkpoint chain differs (rows reordered across streams, or a checkpoint removed)",
                None, None)
    return None


def _head_difference(covered: list[tuple[int, str, int, str]], recorded: list[list[Any]],
                     ) -> tuple[str, str | None, int | None] | None:
    """The first stream whose head in the log differs from the head the checkpoint recorded."""
    log: dict[str, tuple[int, str]] = {}
    first: dict[str, int] = {}
    for _nid, stream, version, digest in covered:
        log[stream] = (version, digest)
        first.setdefault(stream, version)
    marked = {str(h[0]): (int(h[1]), str(h[2])) for h in recorded}
    at = "the checkpoint at this notification"
    for stream in sorted(set(log) | set(marked)):
        mine, theirs = log.get(stream), marked.get(stream)
        if mine == theirs:
            continue
        if mine is None:
            assert theirs is not None
            return (f"missing event: {at} records version {theirs[0]} of this stream, the log has none "
                    "of its events since the previous checkpoint (deleted or moved)", stream, theirs[0])
        if theirs is None:
            return (f"unexpected event: {at} records no event of this stream, the log has versions "
                    f"{first[stream]} to {mine[0]} (inserted or moved)", stream, first[stream])
        if mine[0] < theirs[0]:
            return (f"missing event: {at} records version {theirs[0]} as this stream's head, the log "
                    f"ends it at version {mine[0]} (deleted or moved)", stream, mine[0] + 1)
        if mine[0] > theirs[0]:
            return (f"unexpected event: {at} records version {theirs[0]} as this stream's head, the log "
                    f"has it at version {mine[0]} (inserted or moved)", stream, theirs[0] + 1)
        return (f"{at} records another digest for this version: the stream was rewritten and its "
                "chain recomputed", stream, mine[0])
    return None


def anchor(ledger: Any) -> dict[str, Any]:
    """Head digest and event count, to be kept outside the database (`ledger audit anchor`). Only a log
    whose chains and checkpoints verify is anchored: an anchor of a tampered log would vouch for it."""
    from aggregates.errors import IntegrityViolation

    result = verify_chain(ledger, stop_at_first=True)
    if result.first is not None:
        raise IntegrityViolation(f"not anchored: the log does not verify: {result.first}")
    return {"events": result.events, "head": result.head}
