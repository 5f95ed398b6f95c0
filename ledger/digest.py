"""The canonical digest of a whole log: notification order, topic, stream, version and payload.

Fields that legitimately differ between identical runs (code version, data path) and the
checkpoint fields derived from them are left out (SPEC §12.14).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from aggregates.session import Session
from ledger.codec import split_state

NON_CANONICAL: dict[str, tuple[str, ...]] = {
    Session.SessionStarted.TOPIC: ("code_version", "data_source"),
    Session.Checkpointed.TOPIC: ("heads", "chain"),
}
_encode = msgspec.json.Encoder(decimal_format="string").encode


def canonical_payload(topic: str, payload: bytes) -> bytes:
    drop = NON_CANONICAL.get(topic)
    if not drop:
        return payload
    state = msgspec.json.decode(payload)
    for name in drop:
        state.pop(name, None)
    return _encode(state)


def log_digest(ledger: Any) -> str:
    """sha256 over every stored event in notification order, in canonical form."""
    h = hashlib.sha256()
    for position, (_nid, stream, version, topic, state) in enumerate(ledger.iter_rows()):
        payload, _chain = split_state(ledger.codec.plaintext(state))
        h.update(f"{position}|{topic}|{stream}|{version}|".encode())
        h.update(canonical_payload(topic, payload))
        h.update(b"\n")
    return h.hexdigest()
