"""Export of a ledger's events (JSONL, CSV, typed Parquet) and re-import of a JSONL export.

- **JSONL** (`.jsonl`): one object per event: notification id, stream, version, topic, type, venue,
  time, instruction id, chain digest, the decoded `event` (Decimals as text) and `state`, the stored
  plaintext exactly as first written, in base64 (the chain digest covers these bytes). `ledger audit
  import` reads it back into an equal ledger.
- **CSV** (`.csv`): the same columns with `event` as JSON text; the base64 `state` column only with
  `with_bytes` (it more than doubles the file). No cell is a formula a spreadsheet would run
  (`csv_cell`, OWASP's CSV-injection rule): text beginning with `=`, `+`, `-`, `@`, a tab or a carriage
  return gets a leading `'`; numbers stay numbers (the integer columns, and any cell that is a plain
  decimal number such as `-1.5`).
- **Parquet** (`.parquet`): the events table: the common columns flattened, `ts` as
  `timestamp[us, tz=UTC]`, `event` as JSON text and `state` as the exact stored bytes (binary).
- **A folder** (a path without extension, an existing folder, or any path ending in `/`, such as
  `x.parquet/`): one Parquet file per kind people query — `events`, `fills`, `funding`, `interest`,
  `transfers` (sent, received, failed) and `balances` (the projection's balances at the end, per
  venue, wallet and asset).
- Refused (`resolve_target`): an empty path, a name that is only an extension (`.jsonl`, `.csv`,
  `.parquet`: name the file), an unknown extension, a `--format` the extension contradicts.

Decimal columns: a column is `decimal128(38, 18)` when every value in it fits exactly (at most 18
decimals and 20 integer digits); otherwise the whole column is text holding each exact value in
positional notation (AAVE indexes read from the chain carry 27 decimals: ray units). The rule is per
column and per file, so the same log always gives the same schema.

Memory stays flat: events are written in row groups of `PARQUET_BATCH` rows as they are read; the
other kinds are spilled the same way to a scratch Parquet file with their decimals as text, then
rewritten row group by row group once every value has been seen. Only the projection's state (for the
balances) is kept whole. Files appear only when complete (written beside the target, then renamed).
"""

from __future__ import annotations

import base64
import binascii
import csv
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import msgspec

from aggregates.errors import LedgerError
from replays.audit import AuditInputError, EventRecord, LogReader

FORMATS = ("jsonl", "csv", "parquet")
EXTENSIONS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
KINDS = ("events", "fills", "funding", "interest", "transfers", "balances")
CSV_COLUMNS = ("notification_id", "stream", "version", "topic", "type", "venue", "ts", "instruction_id",
               "chain", "event")
PARQUET_BATCH = 10_000
IMPORT_BATCH = 5_000
PROGRESS_EVERY = 2_000
_encode = msgspec.json.Encoder(decimal_format="string").encode
_decode = msgspec.json.Decoder().decode
_WIDE = Context(prec=80)
_LIMIT = Decimal(10) ** 20
_STEP = Decimal("1e-18")
Progress = Callable[[int, int], None]


class ExportError(LedgerError):
    """The export or import cannot be done as asked (one line, exit 2)."""


# ---- where to write ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What `--out` and `--format` ask for: one file in `format`, or a folder of Parquet files."""

    path: Path
    format: str
    folder: bool

    def files(self) -> dict[str, Path]:
        if self.folder:
            return {kind: self.path / f"{kind}.parquet" for kind in KINDS}
        return {"events": self.path}


def resolve_target(out: str | Path, fmt: str | None = None) -> Target:
    """What `--out` names. The format follows the extension (`.jsonl`, `.csv`, `.parquet`); a folder
    (one Parquet file per kind) is a path without extension, an existing folder, or any path ending in
    `/` (`x.parquet/` is a folder). Refused: an empty path, a name that is only an extension (`.jsonl`:
    name the file, e.g. `events.jsonl`), an unknown extension, a `--format` that says otherwise."""
    if fmt is not None and fmt not in FORMATS:
        raise ExportError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    text = str(out)
    if not text.strip():
        raise ExportError("--out: empty; name a file (x.jsonl, x.csv, x.parquet) or a folder (no extension, "
                          "or ending in /)")
    path = Path(text)
    slash = text.endswith(("/", os.sep))
    if slash or path.is_dir() or not path.suffix:
        if path.name.lower() in EXTENSIONS and not (slash or path.is_dir()):
            raise ExportError(f"--out {text}: a name that is only an extension; name the file, e.g. "
                              f"events{path.name.lower()} (or end the path in / for a folder)")
        if fmt not in (None, "parquet"):
            how = "ends in /" if slash else "is a folder" if path.is_dir() else "has no extension"
            raise ExportError(f"--format {fmt} writes one file but --out {text} {how} (a folder, for one "
                              f"Parquet file per kind); name a .{fmt} file")
        return Target(path, "parquet", True)
    suffix = path.suffix.lower()
    implied = EXTENSIONS.get(suffix)
    if implied is None:
        raise ExportError(f"--out {text}: unknown extension {path.suffix!r}; use .jsonl, .csv or .parquet, "
                          "or a name without extension (a folder: one Parquet file per kind)")
    if fmt is not None and fmt != implied:
        raise ExportError(f"--format {fmt} contradicts --out {text} (a .{implied} file); "
                          "drop --format or change the extension")
    return Target(path, implied, False)


def check_target(target: Target, force: bool) -> None:
    """Refuse before anything is written: a missing parent folder, or files in the way (without force)."""
    out = target.path
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: directory {out.parent} does not exist")
    if target.folder:
        if out.exists() and not out.is_dir():
            raise ExportError(f"--out {out} exists and is not a folder")
        taken = [p.name for p in target.files().values() if p.exists()]
        if taken and not force:
            raise ExportError(f"--out {out} already holds {', '.join(taken)}; choose another folder or "
                              "pass --force")
    elif out.exists() and not force:
        raise ExportError(f"--out {out} exists; choose another name or pass --force")


# ---- writers -------------------------------------------------------------------------------------------


class _Writer(Protocol):
    def write(self, record: EventRecord, state: bytes, event: Any) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def rows(self) -> dict[str, int]: ...


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: Any) -> Any:
    """One CSV cell no spreadsheet runs: text starting with = + - @ TAB or CR is prefixed with `'`
    (OWASP); an int or Decimal, and text that is a plain decimal number (`-1.5`), stay as they are."""
    if isinstance(value, int | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def export_line(record: EventRecord, state: bytes) -> bytes:
    """One JSONL line (without the newline): the record plus its stored state in base64."""
    return _encode({**record.to_json(), "state": base64.b64encode(state).decode()})


class _JSONLWriter:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115  (closed by close(), the writer outlives a with block)
        self.count = 0

    def write(self, record: EventRecord, state: bytes, event: Any) -> None:
        self.fh.write(export_line(record, state) + b"\n")
        self.count += 1

    def close(self) -> None:
        self.fh.close()

    abort = close

    def rows(self) -> dict[str, int]:
        return {"events": self.count}


class _CSVWriter(_JSONLWriter):
    def __init__(self, path: Path, with_bytes: bool) -> None:
        self.fh = open(path, "w", newline="", encoding="utf-8")  # type: ignore[assignment]  # noqa: SIM115
        self.count = 0
        self.out = csv.writer(self.fh)  # type: ignore[arg-type]
        self.with_bytes = with_bytes
        self.out.writerow((*CSV_COLUMNS, "state") if with_bytes else CSV_COLUMNS)

    def write(self, record: EventRecord, state: bytes, event: Any) -> None:
        r = record
        row = [r.notification_id, r.stream, r.version, r.topic, r.type, r.venue or "", r.ts,
               r.instruction_id or "", r.chain, _encode(r.fields).decode()]
        if self.with_bytes:
            row.append(base64.b64encode(state).decode())
        self.out.writerow([csv_cell(cell) for cell in row])
        self.count += 1


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ExportError(
            "--format parquet needs pyarrow: pip install 'execution-ledger[parquet]'") from None
    return pa, pq


def fits_decimal128(value: Decimal) -> bool:
    """True when `value` is exactly a decimal128(38, 18): at most 18 decimals, 20 integer digits."""
    if not value.is_finite() or abs(value) >= _LIMIT:
        return False
    if value.as_tuple().exponent >= -18:  # type: ignore[operator]
        return True
    try:
        return value.quantize(_STEP, context=_WIDE) == value
    except InvalidOperation:
        return False


def _text(value: Decimal | None) -> str | None:
    """A Decimal as exact positional text (never an exponent)."""
    return None if value is None else format(value, "f")


# Column types of the Parquet tables: int, str, ts (timestamp[us, tz=UTC]), bin, dec (decimal128(38, 18)
# when every value fits, else exact text).
EVENTS_SCHEMA = (("notification_id", "int"), ("stream", "str"), ("version", "int"), ("topic", "str"),
                 ("type", "str"), ("venue", "str"), ("instruction_id", "str"), ("ts", "ts"),
                 ("chain", "str"), ("event", "str"), ("state", "bin"))
SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "events": EVENTS_SCHEMA,
    "fills": (("notification_id", "int"), ("ts", "ts"), ("venue", "str"), ("market_type", "str"),
              ("instrument", "str"), ("side", "str"), ("quantity", "dec"), ("price", "dec"), ("fee", "dec"),
              ("fee_asset", "str"), ("liquidity", "str"), ("wallet", "str"), ("trade_id", "str"),
              ("instruction_id", "str"), ("reference_price", "dec"), ("slippage_bps", "dec")),
    "funding": (("notification_id", "int"), ("ts", "ts"), ("venue", "str"), ("instrument", "str"),
                ("wallet", "str"), ("asset", "str"), ("rate", "dec"), ("mark_price", "dec"),
                ("position", "dec"), ("amount", "dec")),
    "interest": (("notification_id", "int"), ("ts", "ts"), ("venue", "str"), ("accrual_id", "str"),
                 ("asset", "str"), ("side", "str"), ("amount", "dec"), ("index", "dec")),
    "transfers": (("notification_id", "int"), ("ts", "ts"), ("event", "str"), ("venue", "str"),
                  ("transfer_id", "str"), ("instruction_id", "str"), ("asset", "str"), ("amount", "dec"),
                  ("fee", "dec"), ("refunded", "dec"), ("from_venue", "str"), ("from_wallet", "str"),
                  ("to_venue", "str"), ("to_wallet", "str"), ("reason", "str")),
    "balances": (("venue", "str"), ("wallet", "str"), ("asset", "str"), ("holding", "str"),
                 ("amount", "dec")),
}


class _ParquetTable:
    """One Parquet file written in row groups. Decimal columns are spilled as text to a scratch file
    while `fits` tracks whether every value is a decimal128(38, 18); `close` then writes the final file
    with each such column typed, or as text where one value did not fit."""

    def __init__(self, path: Path, columns: Sequence[tuple[str, str]]) -> None:
        pa, pq = _pyarrow()
        self.pa, self.pq, self.path, self.columns = pa, pq, path, list(columns)
        self.decimals = [name for name, kind in columns if kind == "dec"]
        self.fits = dict.fromkeys(self.decimals, True)
        types = {"int": pa.int64(), "str": pa.string(), "ts": pa.timestamp("us", tz="UTC"),
                 "bin": pa.binary(), "dec": pa.string()}
        self.spill = path.with_name(path.name + ".text") if self.decimals else path
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self.writer = pq.ParquetWriter(str(self.spill), self.schema, compression="zstd")
        self.buffer: list[list[Any]] = [[] for _ in columns]
        self.rows = 0
        self._dec_at = frozenset(i for i, (_n, kind) in enumerate(columns) if kind == "dec")

    def add(self, row: Sequence[Any]) -> None:
        for i, value in enumerate(row):
            if i in self._dec_at and value is not None:
                name = self.columns[i][0]
                if self.fits[name] and not fits_decimal128(value):
                    self.fits[name] = False
                value = _text(value)
            self.buffer[i].append(value)
        self.rows += 1
        if len(self.buffer[0]) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer[0]:
            return
        pa = self.pa
        arrays = [pa.array(values, type=self.schema.field(i).type) for i, values in enumerate(self.buffer)]
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        for values in self.buffer:
            values.clear()

    def close(self) -> None:
        self._flush()
        self.writer.close()
        if not self.decimals:
            return
        pa, pq = self.pa, self.pq
        final = pa.schema([(f.name, pa.decimal128(38, 18) if self.fits.get(f.name) else f.type)
                           for f in self.schema])
        source = pq.ParquetFile(str(self.spill))
        with pq.ParquetWriter(str(self.path), final, compression="zstd") as writer:
            writer.write_table(final.empty_table())  # the schema even when there are no rows
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group).cast(final))
        source.close()
        self.spill.unlink()

    def abort(self) -> None:
        self.writer.close()


class _ParquetWriter:
    """`events` alone (a .parquet file), or every kind (a folder): rows taken from the decoded events;
    the balances from the projection folded along the way."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.tables = {kind: _ParquetTable(path, SCHEMAS[kind]) for kind, path in files.items()
                       if kind != "balances"}
        self.kinds = set(files)
        self.balances_path = files.get("balances")
        self.sent: dict[str, tuple[Any, ...]] = {}  # transfer id -> (instruction, asset, amount, from...)
        self.fold: list[tuple[int, Any]] = []
        self.view: Any = None
        if self.balances_path is not None:
            from projections import InMemoryProjection

            self.view = InMemoryProjection()

    def write(self, record: EventRecord, state: bytes, event: Any) -> None:
        r = record
        self.tables["events"].add((
            r.notification_id, r.stream, r.version, r.topic, r.type, r.venue, r.instruction_id,
            event.ts_event, r.chain, _encode(r.fields).decode(), state))
        if len(self.kinds) > 1:
            self._kinds(r, event)

    def _kinds(self, r: EventRecord, e: Any) -> None:
        nid, ts, venue = r.notification_id, e.ts_event, r.venue
        kind = r.type
        if kind == "OrderFilled":
            self.tables["fills"].add((
                nid, ts, venue, e.market_type, e.instrument, e.side, e.quantity, e.price, e.fee, e.fee_asset,
                e.liquidity, e.wallet, e.trade_id, e.instruction_id, e.reference_price, e.slippage_bps))
        elif kind == "FundingSettled":
            self.tables["funding"].add((nid, ts, venue, e.instrument, e.wallet, e.asset, e.rate, e.mark_price,
                                        e.position, e.amount))
        elif kind == "InterestAccrued":
            self.tables["interest"].add((nid, ts, venue, e.accrual_id, e.asset, e.side, e.amount, e.index))
        elif kind == "TransferSent":
            sent = (e.instruction_id, e.asset, e.amount, venue, e.from_wallet, e.to_venue, e.to_wallet)
            self.sent[e.transfer_id] = sent
            self.tables["transfers"].add((nid, ts, "sent", venue, e.transfer_id, e.instruction_id, e.asset,
                                          e.amount, e.fee, None, venue, e.from_wallet, e.to_venue,
                                          e.to_wallet, None))
        elif kind == "TransferReceived":
            iid, _asset, _amount, _src, from_wallet, _to, _wallet = self.sent.get(e.transfer_id, (None,) * 7)
            self.tables["transfers"].add((nid, ts, "received", venue, e.transfer_id, iid, e.asset, e.amount,
                                          None, None, e.from_venue, from_wallet, venue, e.wallet, None))
        elif kind == "TransferFailed":
            _iid, asset, amount, src, from_wallet, to, wallet = self.sent.get(e.transfer_id, (None,) * 7)
            self.tables["transfers"].add((nid, ts, "failed", venue, e.transfer_id, e.instruction_id, asset,
                                          amount, None, e.refunded, src, from_wallet, to, wallet, e.reason))
        if self.view is not None:
            self.fold.append((nid, e))
            if len(self.fold) >= PARQUET_BATCH:
                self.view.handle(self.fold)
                self.fold = []

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        if self.balances_path is None:
            return
        self.view.handle(self.fold)
        s = self.view.state
        table = self.tables["balances"] = _ParquetTable(self.balances_path, SCHEMAS["balances"])
        for (venue, wallet, asset), amount in sorted(s.balances.items()):
            if amount:
                table.add((venue, wallet, asset, "wallet", amount))
        for holding, held, sign in (("supplied", s.supplied, 1), ("borrowed", s.borrowed, -1)):
            for (venue, asset), amount in sorted(held.items()):
                if amount:
                    table.add((venue, None, asset, holding, sign * amount))
        table.close()

    def abort(self) -> None:
        for table in self.tables.values():
            table.abort()

    def rows(self) -> dict[str, int]:
        return {kind: table.rows for kind, table in self.tables.items()}


# ---- export --------------------------------------------------------------------------------------------


def export(ledger: Any, target: Target, *, force: bool = False, with_bytes: bool = False,
           progress: Progress | None = None) -> dict[str, int]:
    """Write every stored event to `target`, streaming; returns the rows written per file kind.

    Nothing is created when the target is refused; the files appear only when complete (written in a
    scratch folder beside the target, then renamed into place)."""
    check_target(target, force)
    total = ledger.max_notification_id()
    out = target.path.resolve()  # `--out .` has no name of its own
    scratch = out.with_name(f".{out.name}.part")
    shutil.rmtree(scratch, ignore_errors=True)  # left by an export that was killed
    scratch.mkdir()
    staged = {kind: scratch / path.name for kind, path in target.files().items()}
    writer: _Writer | None = None
    count = 0
    try:  # opening a writer writes too (Parquet's magic bytes): a full disk fails here already
        if target.format == "jsonl":
            writer = _JSONLWriter(staged["events"])
        elif target.format == "csv":
            writer = _CSVWriter(staged["events"], with_bytes)
        else:
            writer = _ParquetWriter(staged)
        for record, state, event in LogReader(ledger).entries():
            writer.write(record, state, event)
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count, total)
        writer.close()
        if target.folder:
            out.mkdir(exist_ok=True)
        for kind, path in Target(out, target.format, target.folder).files().items():
            os.replace(staged[kind], path)
    except BaseException as e:
        if writer is not None:
            with suppress(Exception):  # closing on a full disk fails again: the first error is the one
                writer.abort()
        if isinstance(e, OSError) and not e.filename:  # pyarrow's errors name no file
            raise OSError(e.errno, e.strerror or str(e), str(target.path)) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if progress is not None:
        progress(count, total)
    assert writer is not None
    return writer.rows()


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


def import_events(ledger: Any, path: Path, progress: Progress | None = None) -> int:
    """Append every row of a JSONL export to the empty `ledger`, stored bytes unchanged.

    The whole file is checked before the first row is written; each batch is one transaction."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    held = ledger.max_notification_id()
    if held:
        raise ExportError(f"{ledger.url.redacted} already holds {held} events; import needs an empty ledger")
    total = sum(1 for _row in read_export(path))
    if progress is not None:
        progress(0, total)
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
            progress(count, total)

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
