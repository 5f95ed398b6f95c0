"""Event encoding: msgspec JSON with exact Decimals and UTC times, and the per-stream hash chain.

A stored event's plaintext state is the canonical payload followed by its chain digest:
`{...payload...,"_chain":"<64 hex>"}`. The digest links the previous event of the same stream to
this event's topic, stream id, version and payload bytes exactly as first written, so the verifier
hashes stored bytes, never a re-encoding (SPEC §12.13).
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Callable
from typing import Any, TypedDict
from uuid import UUID

import msgspec
from eventsourcing.persistence import Cipher, Compressor, Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

from aggregates.errors import StoreError
from aggregates.snapshots import LedgerSnapshot

GENESIS = "0" * 64
SUFFIX_LEN = len(b',"_chain":"') + 64 + len(b'"}')
_PREFIX = b',"_chain":"'
_encode = msgspec.json.Encoder(decimal_format="string").encode
_decode_any = msgspec.json.Decoder().decode
_SKIP = frozenset({"originator_id", "originator_version"})


def link(prev: str, topic: str, originator_id: UUID, version: int, payload: bytes) -> str:
    """The chain digest of one event: sha256 over its predecessor's digest, position and payload."""
    h = hashlib.sha256()
    h.update(f"{prev}|{topic}|{originator_id.hex}|{version}|".encode())
    h.update(payload)
    return h.hexdigest()


def link_global(prev: str, event_digest: str) -> str:
    """The checkpoint chain: every event digest in notification order, linked to the last checkpoint."""
    return hashlib.sha256(f"{prev}|{event_digest}".encode()).hexdigest()


def split_state(plain: bytes) -> tuple[bytes, str]:
    """Split a chained plaintext state into (payload bytes as first written, digest)."""
    if len(plain) <= SUFFIX_LEN or plain[-SUFFIX_LEN:-66] != _PREFIX or plain[-2:] != b'"}':
        raise ValueError("stored state carries no chain digest")
    return plain[:-SUFFIX_LEN] + b"}", plain[-66:-2].decode()


class _UnusedTranscoder(Transcoder):
    """The library's mapper wants a transcoder; this codec encodes with msgspec itself."""

    def encode(self, obj: Any) -> bytes:
        return _encode(obj)

    def decode(self, data: bytes) -> Any:
        return _decode_any(data)


def _state_type(cls: type) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {name: tp for name, tp in hints.items() if name not in _SKIP and not _is_classvar(tp)}
    return TypedDict(f"{cls.__name__}State", fields)  # type: ignore[operator]


def _is_classvar(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.ClassVar


class ChainedMapper(Mapper[UUID]):
    """Maps domain events to stored events and back, chaining each stream's events by digest."""

    def __init__(self, cipher: Cipher | None = None, compressor: Compressor | None = None) -> None:
        super().__init__(transcoder=_UnusedTranscoder(), compressor=compressor, cipher=cipher)
        self._decoders: dict[type, Callable[[bytes], dict[str, Any]]] = {}
        self._types: dict[type, Any] = {}

    # -- writing ---------------------------------------------------------------------------------

    def payload(self, event: Any) -> bytes:
        state = dict(vars(event))
        del state["originator_id"], state["originator_version"]
        class_version = getattr(type(event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        return _encode(state)

    def encode_chained(self, event: Any, prev: str) -> tuple[StoredEvent, str]:
        topic = get_topic(type(event))
        payload = self.payload(event)
        digest = link(prev, topic, event.originator_id, event.originator_version, payload)
        plain = payload[:-1] + _PREFIX + digest.encode() + b'"}'
        return self._stored(event, topic, plain), digest

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Snapshots (and anything not chained) go through here."""
        return self._stored(domain_event, get_topic(type(domain_event)), self.payload(domain_event))

    def _stored(self, event: Any, topic: str, plain: bytes) -> StoredEvent:
        state = plain
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=event.originator_id, originator_version=event.originator_version,
            topic=topic, state=state,
        )

    # -- reading ---------------------------------------------------------------------------------

    def plaintext(self, state: bytes) -> bytes:
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        try:
            plain = self.plaintext(stored_event.state)
            return self.build(cls, plain, stored_event.originator_id, stored_event.originator_version)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
            raise StoreError(
                f"cannot decode stored event {stored_event.topic} of stream "
                f"{stored_event.originator_id} version {stored_event.originator_version}: {e} "
                "(encrypted with a different LEDGER_CIPHER_KEY, or not written by this ledger?)"
            ) from None

    def build(self, cls: type, plain: bytes, originator_id: Any, version: int) -> Any:
        """Construct the domain event of class `cls` from plaintext state, upcasting old versions."""
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1 and b'"class_version"' not in plain:
            state = self._upcast(cls, _decode_any(plain), 1, class_version)
        elif class_version > 1:
            raw = _decode_any(plain)
            state = self._upcast(cls, raw, raw.pop("class_version", 1), class_version)
        else:
            decoder = self._decoders.get(cls)
            if decoder is None:
                decoder = msgspec.json.Decoder(self._type(cls)).decode
                self._decoders[cls] = decoder
            state = decoder(plain)
        state["originator_id"] = originator_id if isinstance(originator_id, UUID) else UUID(
            str(originator_id))
        state["originator_version"] = version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def _type(self, cls: type) -> Any:
        tp = self._types.get(cls)
        if tp is None:
            tp = _state_type(cls)
            self._types[cls] = tp
        return tp

    def _upcast(self, cls: type, raw: dict[str, Any], version: int, target: int) -> dict[str, Any]:
        raw.pop("_chain", None)
        raw.pop("class_version", None)
        while version < target:
            getattr(cls, f"upcast_v{version}_v{version + 1}")(raw)
            version += 1
        return dict(msgspec.convert(raw, self._type(cls)))


def is_chained_topic(topic: str) -> bool:
    return topic != LedgerSnapshot.TOPIC
