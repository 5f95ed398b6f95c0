"""Streaming export of a ledger's events (JSONL, CSV, Parquet) and re-import of a JSONL export.

Every exported row carries its notification id, stream, version, topic, the stored plaintext state
exactly as first written (base64 in JSONL and CSV, bytes in Parquet: the chain digest covers these
bytes) and a decoded, human-readable `event`. Rows are written as they are read, so memory stays flat
on logs of millions of events. Re-import writes the stored bytes back unchanged, so the imported
ledger's chain, checkpoints and digest equal the original's.
"""

from __future__ import annotations

import base64
import binascii
import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import msgspec

from aggregates.errors import LedgerError
from replays.audit import AuditInputError, EventRecord, LogReader

FORMATS = ("jsonl", "csv", "parquet")
CSV_COLUMNS = ("notification_id", "stream", "version", "topic", "type", "venue", "ts", "instruction_id",
               "chain", "event", "state")
PARQUET_BATCH = 10_000
IMPORT_BATCH = 5_000
_encode = msgspec.json.Encoder(decimal_format="string").encode
_decode = msgspec.json.Decoder().decode


class ExportError(LedgerError):
    """The export or import cannot be done as asked (one line, exit 2)."""


class _Writer(Protocol):
    def write(self, record: EventRecord, state: bytes) -> None: ...

    def close(self) -> None: ...


def export_line(record: EventRecord, state: bytes) -> bytes:
    """One JSONL line (without the newline): the record plus its stored state in base64."""
    return _encode({**record.to_json(), "state": base64.b64encode(state).decode()})


class _JSONLWriter:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115  (closed by close(), the writer outlives a with block)

    def write(self, record: EventRecord, state: bytes) -> None:
        self.fh.write(export_line(record, state) + b"\n")

    def close(self) -> None:
        self.fh.close()


class _CSVWriter:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115  (see _JSONLWriter)
        self.out = csv.writer(self.fh)
        self.out.writerow(CSV_COLUMNS)

    def write(self, record: EventRecord, state: bytes) -> None:
        r = record
        self.out.writerow((r.notification_id, r.stream, r.version, r.topic, r.type, r.venue or "", r.ts,
                           r.instruction_id or "", r.chain, _encode(r.fields).decode(),
                           base64.b64encode(state).decode()))

    def close(self) -> None:
        self.fh.close()


class _ParquetWriter:
    def __init__(self, path: Path) -> None:
        pa, pq = _pyarrow()
        self.pa = pa
        self.schema = pa.schema([
            ("notification_id", pa.int64()), ("stream", pa.string()), ("version", pa.int64()),
            ("topic", pa.string()), ("type", pa.string()), ("venue", pa.string()), ("ts", pa.string()),
            ("instruction_id", pa.string()), ("chain", pa.string()), ("event", pa.string()),
            ("state", pa.binary()),
        ])
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}

    def write(self, record: EventRecord, state: bytes) -> None:
        r, c = record, self.columns
        for name, value in (("notification_id", r.notification_id), ("stream", r.stream),
                            ("version", r.version), ("topic", r.topic), ("type", r.type),
                            ("venue", r.venue), ("ts", r.ts), ("instruction_id", r.instruction_id),
                            ("chain", r.chain), ("event", _encode(r.fields).decode()), ("state", state)):
            c[name].append(value)
        if len(c["state"]) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self.columns["state"]:
            return
        self.writer.write_batch(self.pa.record_batch(
            [self.pa.array(self.columns[n], type=self.schema.field(n).type) for n in self.schema.names],
            schema=self.schema))
        for values in self.columns.values():
            values.clear()

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self.writer.close()


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ExportError(
            "--format parquet needs pyarrow: pip install 'execution-ledger[parquet]'") from None
    return pa, pq


_WRITERS: dict[str, Callable[[Path], _Writer]] = {
    "jsonl": _JSONLWriter, "csv": _CSVWriter, "parquet": _ParquetWriter,
}


def export_events(ledger: Any, out: Path, fmt: str, *, force: bool = False,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write every stored event to `out` in `fmt`, streaming; returns the number written.

    The file appears only when complete (written beside it, then renamed)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: directory {out.parent} does not exist")
    if out.exists() and not force:
        raise ExportError(f"--out {out} exists; choose another name or pass --force")
    part = out.with_name(out.name + ".part")
    writer = _WRITERS[fmt](part)
    count = 0
    try:
        for record, state in LogReader(ledger).records():
            writer.write(record, state)
            count += 1
            if progress is not None and count % 10_000 == 0:
                progress(count)
        writer.close()
    except BaseException:
        writer.close()
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)
    if progress is not None:
        progress(count)
    return count


# ---- import ----------------------------------------------------------------------------------------------


Stored = tuple[int, UUID, int, str, bytes]


def read_export(path: Path) -> Iterator[Stored]:
    """(notification id, stream, version, topic, plaintext state) per line of a JSONL export, checked:
    notification ids must run 1, 2, 3, … (a complete log), each line must carry the stored state."""
    if not path.is_file():
        raise AuditInputError(f"--from {path}: no such file")
    expected = 1
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                data = _decode(line)
                nid, stream, version = data["notification_id"], data["stream"], data["version"]
                topic, state = data["topic"], base64.b64decode(data["state"], validate=True)
                oid = UUID(hex=stream)
            except msgspec.DecodeError:
                raise ExportError(f"{where}: not JSON (not a `ledger audit export` JSONL file?)") from None
            except KeyError as e:
                raise ExportError(f"{where}: no {e.args[0]!r} field (not an audit export line)") from None
            except (TypeError, ValueError, binascii.Error) as e:
                raise ExportError(f"{where}: unreadable field ({e})") from None
            if not isinstance(nid, int) or not isinstance(version, int) or not isinstance(topic, str):
                raise ExportError(f"{where}: notification_id and version must be integers, topic text")
            if nid != expected:
                raise ExportError(f"{where}: notification {nid} where {expected} was expected "
                                  "(the export is not a complete log, or lines were moved)")
            expected += 1
            yield nid, oid, version, topic, state


def import_events(ledger: Any, path: Path, progress: Callable[[int], None] | None = None) -> int:
    """Append every row of a JSONL export to the empty `ledger`, stored bytes unchanged.

    The whole file is checked before the first row is written; each batch is one transaction."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    held = ledger.max_notification_id()
    if held:
        raise ExportError(f"{ledger.url.redacted} already holds {held} events; import needs an empty ledger")
    total = sum(1 for _row in read_export(path))
    codec = ledger.codec
    batch: list[StoredEvent] = []
    ids: list[int] = []
    count = 0

    def flush() -> None:
        nonlocal count
        try:
            got = list(ledger.recorder.insert_events(batch) or [])
        except IntegrityError:
            raise ExportError(f"the export holds a stream version twice between notifications "
                              f"{ids[0]} and {ids[-1]}; rows from {ids[0]} on were not imported") from None
        if got and got != ids:
            raise ExportError(f"the target numbered rows {got[0]}… where the export has {ids[0]}…; "
                              "import needs a fresh database")
        count += len(batch)
        batch.clear()
        ids.clear()
        if progress is not None:
            progress(count)

    for nid, oid, version, topic, state in read_export(path):
        stored = state
        if codec.compressor:
            stored = codec.compressor.compress(stored)
        if codec.cipher:
            stored = codec.cipher.encrypt(stored)
        batch.append(StoredEvent(originator_id=oid, originator_version=version, topic=topic, state=stored))
        ids.append(nid)
        if len(batch) >= IMPORT_BATCH:
            flush()
    if batch:
        flush()
    assert count == total
    return count
