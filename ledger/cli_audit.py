"""`ledger audit …`: verify, anchor, events, export, import and instruction — reads that never write to
the ledger they check (import writes only into a fresh one)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli_output import DbOption, JsonOption, Output, WideOption, emit, err, fail, guard, number, wrap

audit = typer.Typer(help="Check, inspect, export and re-import a ledger's events.", no_args_is_help=True)
_QUIET_FIELDS = frozenset({"timestamp", "ts_event", "instruction_id", "originator_topic"})


def _open(db: str) -> Any:
    from replays.audit import open_readonly

    return guard(lambda: open_readonly(db))


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


# ---- verify and anchor -----------------------------------------------------------------------------------

_PHASES = {"chain": "chain and checkpoints", "lifecycle": "lifecycle and views", "snapshots": "snapshots"}


@audit.command("verify")
def audit_verify(
    db: DbOption,
    anchor: Annotated[
        str | None, typer.Option(help="JSON from `ledger audit anchor` kept elsewhere (text or a file).")
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Check chains, checkpoints, lifecycles, SQL views and snapshots; exit 1 naming the first bad event.

    Recomputes every stream's digest chain and the session checkpoints (and the anchor, if given),
    checks every instruction's moves against the lifecycle table, compares the SQL views with a rebuild
    from the events and every stored snapshot with its aggregate rebuilt from the events. Never writes
    to the database it checks. A progress bar on stderr (on a terminal) follows each pass."""
    from replays.audit import audit_ledger

    out = Output(wide, as_json)
    ledger = _open(db)
    anchor_data = None
    if anchor:
        try:
            text = Path(anchor).read_text() if Path(anchor).is_file() else anchor
            anchor_data = json.loads(text)
            if not (isinstance(anchor_data, dict) and isinstance(anchor_data.get("events"), int)
                    and anchor_data["events"] >= 0 and isinstance(anchor_data.get("head"), str)
                    and re.fullmatch(r"[0-9a-f]{64}", anchor_data["head"])):
                raise ValueError('expected {"events": N, "head": "<64 hex>"}')
        except (OSError, ValueError) as e:
            raise fail(f"--anchor: cannot read {anchor!r}: {e}") from None
    total = guard(ledger.max_notification_id)
    with out.progress(_PHASES["chain"], total) as update:
        result = guard(lambda: audit_ledger(ledger, anchor=anchor_data, progress=lambda phase, done, of:
                                            update(done, of, _PHASES[phase])))
    if as_json:
        emit({**result.to_json(), "anchored": anchor_data is not None})
        if not result.ok:
            raise typer.Exit(1)
        return
    first = result.first
    if first is not None:
        label = {"chain": "TAMPERED", "lifecycle": "LIFECYCLE", "views": "VIEWS",
                 "snapshots": "SNAPSHOTS"}.get(first.check, "BAD")
        err.print(f"{label}: {first}", highlight=False, markup=False)
        raise typer.Exit(1)
    c = result.chain
    out.line(f"ok: {c.events} events, {c.checkpoints} checkpoints, {c.uncovered} after the last checkpoint")
    out.line(f"lifecycle: {result.instructions} instructions, every move allowed by the transition table")
    if result.views == "equal":
        out.line(f"views: equal to a rebuild from the events (up to notification {result.views_position})")
    else:
        out.line("views: none stored")
    out.line(f"snapshots: {result.snapshots} equal to their aggregates rebuilt from the events")
    if anchor_data is not None:
        out.line(f"anchor: the first {anchor_data['events']} events match it; "
                 f"{c.after_anchor} appended since")
    for key in result.open_sessions:
        out.line(f"note: session {key} has not ended (still running, interrupted, or its tail was removed)")
    if anchor_data is None and c.uncovered:
        out.line(f"note: the last {c.uncovered} events are after the last checkpoint; only an anchor "
                 "(`ledger audit anchor`, kept elsewhere, then `--anchor`) detects their removal")


@audit.command("anchor")
def audit_anchor(
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="Accepted for uniformity: it prints JSON anyway.")]
    = False,
) -> None:
    """Print the head digest and event count as JSON, to store outside the database; a log that does
    not verify (chains and checkpoints) is not anchored: exit 1 naming the first bad event."""
    from aggregates.errors import IntegrityViolation
    from replays.verify import anchor

    ledger = _open(db)

    def verified() -> dict[str, Any]:
        try:
            return anchor(ledger)
        except IntegrityViolation as e:
            raise fail(str(e), 1) from None

    emit(guard(verified))


# ---- events ---------------------------------------------------------------------------------------------


def _flat(key: str, value: Any) -> Iterator[str]:
    """`key=value` words for one field; a nested dict or list gives one word per leaf, its path in the key
    (`instruction.amount=1.5`, `effects[0].asset=USDT`)."""
    if isinstance(value, dict):
        if not value:
            yield f"{key}={{}}"
        for k, v in value.items():
            if v is not None:
                yield from _flat(f"{key}.{k}", v)
    elif isinstance(value, list):
        if not value:
            yield f"{key}=[]"
        for i, v in enumerate(value):
            yield from _flat(f"{key}[{i}]", v)
    else:
        yield f"{key}={number(value)}"


def details(fields: dict[str, Any]) -> str:
    """Every field (but the time and ids the listing shows anyway) as key=value words, each value whole
    and positional; nested ones flattened, so nothing is hidden: an accepted instruction's amount and
    its market snapshot too."""
    return " ".join(word for k, v in fields.items() if k not in _QUIET_FIELDS and v is not None
                    for word in _flat(k, v))


def _limit(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        limit = int(value)
    except ValueError:
        raise fail(f"--limit: expected a whole number, got {value!r}") from None
    if limit <= 0:
        raise fail(f"--limit: must be at least 1, got {limit}")
    return limit


_HEAD = f"{'#':>7}  {'time':<25}  {'venue':<9}  {'type':<21}"
_INSTRUCTION = 36
_DETAIL_INDENT = 9


class _EventLines:
    """The event listing, streamed: number, time, venue, type (and the instruction when the width
    allows), then the details — on the same line when they fit, else wrapped below, indented. Narrower
    than the aligned columns (`_HEAD`), the number, time, venue and type wrap too. No id or value is
    ever broken: one longer than the width gets a line of its own. With --wide: one line per event,
    whatever its length."""

    def __init__(self, width: int | None) -> None:
        self.width = width
        self.column = width is None or width >= len(_HEAD) + _INSTRUCTION + 4 + 24
        self.aligned = width is None or width >= len(_HEAD)

    def header(self) -> list[str]:
        if not self.aligned:
            return wrap(f"{'#':>7}  time  venue  type  details", self.width, hang=_DETAIL_INDENT)
        return [_HEAD + (f"  {'instruction':<{_INSTRUCTION}}  details" if self.column else "  details")]

    def lines(self, record: Any) -> list[str]:
        venue = record.venue or "-"
        head = f"{record.notification_id:>7}  {record.ts:<25}  {venue:<9}  {record.type:<21}"
        text = details(record.fields)
        if self.column:
            head += f"  {record.instruction_id or '-':<{_INSTRUCTION}}"
        elif record.instruction_id:
            text = f"instruction={record.instruction_id} {text}".rstrip()
        if self.width is None or len(head) + 2 + len(text) <= self.width:
            return [f"{head}  {text}".rstrip()]
        top = [head.rstrip()] if len(head.rstrip()) <= self.width else wrap(
            f"{record.notification_id:>7}  {record.ts}  {venue}  {record.type}", self.width,
            hang=_DETAIL_INDENT)
        return [*top, *wrap(text, self.width, indent=_DETAIL_INDENT)] if text else top


@audit.command("events")
def audit_events(
    db: DbOption,
    venue: Annotated[list[str] | None, typer.Option(help="Only this venue's events (repeatable).")] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this event type, e.g. OrderFilled (repeatable, or commas)."),
    ] = None,
    instruction: Annotated[
        str | None, typer.Option(help="Only this instruction's events (and its transfers' arrivals).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO time (a date means 00:00 UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO time, included.")] = None,
    limit: Annotated[str | None, typer.Option(metavar="N", help="At most N events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    wide: WideOption = False,
) -> None:
    """List stored events in notification order, filtered; a listing, or JSON lines with --json."""
    from replays.audit import (
        EventQuery,
        LogReader,
        check_range,
        known_venues,
        parse_time,
        resolve_types,
    )

    n = _limit(limit)
    topics = guard(lambda: resolve_types(event_type or []))
    start = guard(lambda: parse_time(since, "--since")) if since else None
    end = guard(lambda: parse_time(until, "--until")) if until else None
    ledger = _open(db)
    guard(lambda: check_range(ledger, start, end))
    venues = frozenset(venue or ())
    if venues:
        present = guard(lambda: known_venues(ledger))
        unknown = sorted(venues - present)
        if unknown:
            raise fail(f"--venue: no venue {', '.join(map(repr, unknown))} in this ledger; "
                       f"venues: {', '.join(sorted(present)) or 'none'}")
    reader = LogReader(ledger, EventQuery(venues, topics, instruction, start, end, n))
    listing = _EventLines(Output(wide).width)

    def show() -> None:
        for record, _state in reader.records():
            if as_json:
                emit(record.to_json())
                continue
            if reader.matched == 1:
                for line in listing.header():
                    _out(line)
            for line in listing.lines(record):
                _out(line)

    guard(show)
    if instruction is not None and not reader.instruction_seen:
        raise fail(f"--instruction: no instruction {instruction!r} in this ledger")
    if not reader.matched and not as_json:
        err.print("no events match", highlight=False, markup=False)


# ---- export and import -----------------------------------------------------------------------------------


@audit.command("export")
def audit_export(
    db: DbOption,
    out: Annotated[str, typer.Option("--out", help=(
        "x.jsonl, x.csv or x.parquet (the events), or a folder (no extension, or ending in /, as in "
        "x.parquet/): one Parquet file per kind. A bare .jsonl, .csv or .parquet (no name) is refused. "
        "Refused if it exists, unless --force."))],
    fmt: Annotated[
        str | None, typer.Option("--format", metavar="jsonl|csv|parquet",
                                 help="Must agree with --out's extension (it follows it when omitted). "
                                      "parquet needs pyarrow (the 'parquet' extra).")
    ] = None,
    with_bytes: Annotated[bool, typer.Option(
        "--with-bytes", help="CSV: add the stored bytes in base64 (JSONL and Parquet always carry them).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing --out files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files and their row counts as JSON.")]
    = False,
) -> None:
    """Write every event to a file (or one Parquet file per kind into a folder), streaming.

    JSONL and CSV: ids, stream, version, topic, type, venue, time, instruction, chain digest and the
    decoded event as JSON (Decimals as text); the stored state — the exact plaintext bytes the chain
    digest covers — in base64 (CSV: with --with-bytes). Parquet: typed columns (UTC timestamps in
    microseconds, decimal128(38, 18), or exact text where a column holds a value that does not fit),
    the stored state as bytes. A folder gets events, fills, funding, interest, transfers and the
    balances at the end. Files appear only when complete."""
    from replays.export import check_target, export, resolve_target

    target = guard(lambda: resolve_target(out, fmt))
    if target.format == "parquet":
        from replays.export import _pyarrow

        guard(_pyarrow)
    if with_bytes and target.format != "csv":
        raise fail(f"--with-bytes: only for CSV ({target.format} always carries the stored bytes)")
    guard(lambda: check_target(target, force))
    ledger = _open(db)
    shown = Output(as_json=as_json)
    with shown.progress("exporting", guard(ledger.max_notification_id)) as update:
        rows = guard(lambda: export(ledger, target, force=force, with_bytes=with_bytes, progress=update))
    files = target.files()
    if as_json:
        emit({"format": target.format, "out": str(out),
              "files": {kind: {"path": str(files[kind]), "rows": n} for kind, n in rows.items()}})
        return
    text = f"exported {rows['events']} events to {out} ({target.format})"
    if target.folder:
        text += ": " + ", ".join(f"{files[k].name} {n} rows" for k, n in rows.items())
    err.print(text, highlight=False, markup=False)


@audit.command("import")
def audit_import(
    db: Annotated[str, typer.Option("--db", help="A fresh ledger to create: a path or postgresql://…")],
    source: Annotated[Path, typer.Option("--from", help="A JSONL file written by `ledger audit export`.")],
    views: Annotated[bool, typer.Option(help="Build the SQL views after importing.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Re-import a JSONL export into an empty ledger, stored bytes unchanged, then verify its chain."""
    from ledger.app import Ledger
    from ledger.digest import log_digest
    from ledger.stores import parse_url
    from replays.export import import_events, read_export
    from replays.verify import verify_chain

    if not source.is_file():
        raise fail(f"--from {source}: no such file")
    parsed = guard(lambda: parse_url(db))
    file = Path(parsed.path) if parsed.kind == "sqlite" else None
    created = file is not None and not file.exists()
    ledger = None
    shown = Output(as_json=as_json)
    try:
        first = guard(lambda: next(read_export(source), None))
        if first is None:
            raise fail(f"--from {source}: holds no events")
        ledger = guard(lambda: Ledger.open(db, create=True, synchronous="NORMAL"))
        with shown.progress("importing", None) as update:
            count = guard(lambda: import_events(ledger, source, progress=update))
            if views:
                from projections import SQLProjection

                view = guard(lambda: SQLProjection.for_ledger(ledger))
                try:
                    update(0, count, "building views")
                    guard(lambda: view.run(ledger, progress=lambda n: update(n)))
                finally:
                    view.close()
    except BaseException:
        if ledger is not None:
            ledger.close()
        if created and file is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{file}{suffix}").unlink(missing_ok=True)
        raise
    result = verify_chain(ledger)
    digest = log_digest(ledger)
    if as_json:
        emit({"imported": count, "db": ledger.url.redacted, "digest": digest, "chain_ok": result.ok,
              "problem": str(result.first) if result.first else None})
    else:
        _out(f"imported {count} events into {ledger.url.redacted}")
        _out(f"digest: {digest}")
    if not result.ok:
        if not as_json:
            err.print(f"TAMPERED: {result.first}", highlight=False, markup=False)
        raise typer.Exit(1)


# ---- an instruction's story ------------------------------------------------------------------------------


def _step(kind: str, f: dict[str, Any]) -> str:
    """One line of an instruction's story, in words."""
    if kind == "InstructionAccepted":
        return "accepted: " + ", ".join(f"{k}={v}" for k, v in f["instruction"].items())
    if kind == "InstructionRejected":
        received = ", ".join(f"{k}={v}" for k, v in (f.get("received") or {}).items())
        return f"rejected: {f['code']}: {f['reason']}" + (f" (received {received})" if received else "")
    if kind == "OrderSubmitted":
        return f"submitted as client order {f['client_order_id']} (attempt {f['attempt']})"
    if kind == "OrderAcknowledged":
        return f"acknowledged as venue order {f['venue_order_id']}"
    if kind == "OrderFilled":
        return (f"filled {f['side']} {f['quantity']} {f['instrument']} @ {f['price']}, fee {f['fee']} "
                f"{f['fee_asset']} ({f['liquidity']}, trade {f['trade_id']})")
    if kind in ("OrderCancelled", "OrderOutcomeUnknown"):
        return f"{'cancelled' if kind == 'OrderCancelled' else 'outcome unknown'}: {f['reason']}"
    if kind == "OrderFailed":
        return f"failed: {f['code']}: {f['reason']}"
    if kind == "TransactionSubmitted":
        return f"tx {f['tx_hash']} submitted ({f['purpose']}, nonce {f['nonce']}, gas limit {f['gas_limit']})"
    if kind == "TransactionMined":
        return f"tx {f['tx_hash']} mined in block {f['block_number']}"
    if kind == "TransactionConfirmed":
        effects = "; ".join(" ".join(f"{k}={v}" for k, v in e.items() if k != "trade_id")
                            for e in f["effects"])
        return (f"tx {f['tx_hash']} confirmed in block {f['block_number']}, gas fee {f['gas_fee']}; "
                f"effects: {effects or 'none'}")
    if kind == "TransferSent":
        return (f"transfer {f['transfer_id']} sent: {f['amount']} {f['asset']} from {f['from_wallet']} to "
                f"{f['to_venue']}/{f['to_wallet']}, fee {f['fee']}")
    if kind == "TransferReceived":
        return f"transfer {f['transfer_id']} received: {f['amount']} {f['asset']} into {f['wallet']}"
    if kind == "TransferFailed":
        return f"transfer {f['transfer_id']} failed: {f['reason']} (refunded {f['refunded']})"
    if kind == "CancelRequested":
        return "cancel requested"
    if kind == "OrderReconciled":
        return f"reconciled with the venue: {f['outcome']} (venue order {f['venue_order_id'] or '-'})"
    if kind == "TransactionReverted":
        return f"tx {f['tx_hash']} reverted: {f['reason']}, gas fee {f['gas_fee']}"
    if kind == "TransactionDropped":
        return f"tx {f['tx_hash']} dropped"
    if kind == "TransactionReplaced":
        return f"tx {f['old_tx_hash']} replaced by {f['tx_hash']}"
    if kind == "TransactionReorged":
        return f"tx {f['tx_hash']} reorged out of block {f['old_block_hash']}"
    if kind == "InstructionCompleted":
        return "completed"
    return f"{kind}: {details(f)}"


@audit.command("instruction")
def audit_instruction(
    instruction_id: Annotated[str, typer.Argument(metavar="ID", help="The instruction id.")],
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    wide: WideOption = False,
) -> None:
    """One instruction's full story, in order, with its status, fill totals and fees.

    Accepted (with its normalised instruction and the market snapshot it was accepted with), submitted,
    acknowledged, each fill, cancels, rejections, transactions submitted, mined and confirmed with
    their effects, transfers sent and received."""
    from ledger.cli_output import rounded
    from replays.audit import instruction_story

    ledger = _open(db)
    story = guard(lambda: instruction_story(ledger, instruction_id))
    avg = None if story.average_price is None else rounded(story.average_price)
    if as_json:
        emit({**story.to_json(), "average_price": avg})
        return
    out = Output(wide)
    out.line(f"instruction {story.instruction_id} at {story.venue or '-'}: {story.status or '-'}")
    if story.market:
        out.line("market at acceptance: " + ", ".join(f"{k}={v}" for k, v in story.market.items()))
    fees = ", ".join(f"{number(v)} {k}" for k, v in story.fees.items()) or "none"
    out.line(f"filled {number(story.filled)}" + (f" at {number(avg)} on average" if avg is not None else "")
             + f"; fees {fees}")
    for r in story.events:
        out.line(f"{r.notification_id:>7}  {r.ts:<25}  {r.venue or '-':<9}  {_step(r.type, r.fields)}",
                 hang=_DETAIL_INDENT)
