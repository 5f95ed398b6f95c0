"""`ledger audit …`: verify, anchor, events, export, import and instruction — reads that never write to
the ledger they check (import writes only into a fresh one)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from aggregates.errors import LedgerError

audit = typer.Typer(help="Check, inspect, export and re-import a ledger's events.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
DbOption = Annotated[str, typer.Option("--db", help="sqlite:///path.db, a path, or postgresql://…")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_QUIET_FIELDS = frozenset({"timestamp", "ts_event", "instruction_id", "originator_topic"})


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(code)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except LedgerError as e:
        raise _fail(str(e)) from None
    except BrokenPipeError:
        # `ledger audit events … | head`: the reader has gone; stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as e:
        raise _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")) from None


def _open(db: str) -> Any:
    from replays.audit import open_readonly

    return _guard(lambda: open_readonly(db))


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


# ---- verify and anchor -----------------------------------------------------------------------------------


@audit.command("verify")
def audit_verify(
    db: DbOption,
    anchor: Annotated[
        str | None, typer.Option(help="JSON from `ledger audit anchor` kept elsewhere (text or a file).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check chains, checkpoints, lifecycles, SQL views and snapshots; exit 1 naming the first bad event.

    Recomputes every stream's digest chain and the session checkpoints (and the anchor, if given),
    checks every instruction's moves against the lifecycle table, compares the SQL views with a rebuild
    from the events and every stored snapshot with its aggregate rebuilt from the events. Never writes
    to the database it checks."""
    from replays.audit import audit_ledger

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
            raise _fail(f"--anchor: cannot read {anchor!r}: {e}") from None
    result = _guard(lambda: audit_ledger(ledger, anchor=anchor_data))
    if as_json:
        _out(json.dumps({**result.to_json(), "anchored": anchor_data is not None}))
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
    _out(f"ok: {c.events} events, {c.checkpoints} checkpoints, {c.uncovered} after the last checkpoint")
    _out(f"lifecycle: {result.instructions} instructions, every move allowed by the transition table")
    if result.views == "equal":
        _out(f"views: equal to a rebuild from the events (up to notification {result.views_position})")
    else:
        _out("views: none stored")
    _out(f"snapshots: {result.snapshots} equal to their aggregates rebuilt from the events")
    if anchor_data is not None:
        _out(f"anchor: the first {anchor_data['events']} events match it; {c.after_anchor} appended since")
    for key in result.open_sessions:
        _out(f"note: session {key} has not ended (still running, interrupted, or its tail was removed)")
    if anchor_data is None and c.uncovered:
        _out(f"note: the last {c.uncovered} events are after the last checkpoint; only an anchor "
             "(`ledger audit anchor`, kept elsewhere, then `--anchor`) detects their removal")


@audit.command("anchor")
def audit_anchor(db: DbOption) -> None:
    """Print the head digest and event count as JSON, to store outside the database."""
    from replays.verify import anchor

    _out(json.dumps(anchor(_open(db))))


# ---- events ---------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return f"[{len(value)}]"
    return str(value)


def details(fields: dict[str, Any], width: int | None = 110) -> str:
    """The fields worth a glance, as key=value text."""
    text = " ".join(f"{k}={_short(v)}" for k, v in fields.items()
                    if k not in _QUIET_FIELDS and v is not None)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _limit(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        limit = int(value)
    except ValueError:
        raise _fail(f"--limit: expected a whole number, got {value!r}") from None
    if limit <= 0:
        raise _fail(f"--limit: must be at least 1, got {limit}")
    return limit


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
) -> None:
    """List stored events in notification order, filtered; a table, or JSON lines with --json."""
    from replays.audit import (
        EventQuery,
        LogReader,
        check_range,
        known_venues,
        parse_time,
        resolve_types,
    )

    n = _limit(limit)
    topics = _guard(lambda: resolve_types(event_type or []))
    start = _guard(lambda: parse_time(since, "--since")) if since else None
    end = _guard(lambda: parse_time(until, "--until")) if until else None
    ledger = _open(db)
    _guard(lambda: check_range(ledger, start, end))
    venues = frozenset(venue or ())
    if venues:
        present = _guard(lambda: known_venues(ledger))
        unknown = sorted(venues - present)
        if unknown:
            raise _fail(f"--venue: no venue {', '.join(map(repr, unknown))} in this ledger; "
                        f"venues: {', '.join(sorted(present)) or 'none'}")
    reader = LogReader(ledger, EventQuery(venues, topics, instruction, start, end, n))

    def show() -> None:
        for record, _state in reader.records():
            if as_json:
                _out(json.dumps(record.to_json()))
                continue
            if reader.matched == 1:
                _out(f"{'#':>7}  {'time':<25}  {'venue':<9}  {'type':<21}  {'instruction':<36}  details")
            _out(f"{record.notification_id:>7}  {record.ts:<25}  {record.venue or '-':<9}  "
                 f"{record.type:<21}  {record.instruction_id or '-':<36}  {details(record.fields)}")

    _guard(show)
    if instruction is not None and not reader.instruction_seen:
        raise _fail(f"--instruction: no instruction {instruction!r} in this ledger")
    if not reader.matched and not as_json:
        err.print("no events match", highlight=False, markup=False)


# ---- export and import -----------------------------------------------------------------------------------


@audit.command("export")
def audit_export(
    db: DbOption,
    out: Annotated[Path, typer.Option("--out", help="File to write (refused if it exists, unless --force).")],
    fmt: Annotated[
        str, typer.Option("--format", metavar="jsonl|csv|parquet",
                          help="parquet needs pyarrow (the 'parquet' extra).")
    ] = "jsonl",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Write every event to a file, streaming: ids, stream, version, topic, stored state, fields.

    The stored state is the exact plaintext bytes the chain digest covers (base64 in JSONL and CSV,
    bytes in Parquet); `event` holds the decoded fields with Decimals as text. The file appears only
    when complete."""
    from replays.export import FORMATS, export_events

    if fmt not in FORMATS:
        raise _fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        from replays.export import _pyarrow

        _guard(_pyarrow)
    ledger = _open(db)
    count = _guard(lambda: export_events(ledger, out, fmt, force=force))
    err.print(f"exported {count} events to {out} ({fmt})", highlight=False, markup=False)


@audit.command("import")
def audit_import(
    db: Annotated[str, typer.Option("--db", help="A fresh ledger to create: a path or postgresql://…")],
    source: Annotated[Path, typer.Option("--from", help="A JSONL file written by `ledger audit export`.")],
    views: Annotated[bool, typer.Option(help="Build the SQL views after importing.")] = True,
) -> None:
    """Re-import a JSONL export into an empty ledger, stored bytes unchanged, then verify its chain."""
    from ledger.app import Ledger
    from ledger.digest import log_digest
    from ledger.stores import parse_url
    from replays.export import import_events, read_export
    from replays.verify import verify_chain

    if not source.is_file():
        raise _fail(f"--from {source}: no such file")
    parsed = _guard(lambda: parse_url(db))
    file = Path(parsed.path) if parsed.kind == "sqlite" else None
    created = file is not None and not file.exists()
    ledger = None
    try:
        first = _guard(lambda: next(read_export(source), None))
        if first is None:
            raise _fail(f"--from {source}: holds no events")
        ledger = _guard(lambda: Ledger.open(db, create=True, synchronous="NORMAL"))
        count = _guard(lambda: import_events(ledger, source))
        if views:
            from projections import SQLProjection

            view = SQLProjection.for_ledger(ledger)
            try:
                view.run(ledger)
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
    _out(f"imported {count} events into {ledger.url.redacted}")
    _out(f"digest: {log_digest(ledger)}")
    if not result.ok:
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
    return f"{kind}: {details(f, None)}"


@audit.command("instruction")
def audit_instruction(
    instruction_id: Annotated[str, typer.Argument(metavar="ID", help="The instruction id.")],
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """One instruction's full story, in order, with its status, fill totals and fees.

    Accepted (with its normalised instruction and the market snapshot it was accepted with), submitted,
    acknowledged, each fill, cancels, rejections, transactions submitted, mined and confirmed with
    their effects, transfers sent and received."""
    from replays.audit import instruction_story

    ledger = _open(db)
    story = _guard(lambda: instruction_story(ledger, instruction_id))
    if as_json:
        _out(json.dumps(story.to_json()))
        return
    avg = story.average_price
    _out(f"instruction {story.instruction_id} at {story.venue or '-'}: {story.status or '-'}")
    if story.market:
        _out("market at acceptance: " + ", ".join(f"{k}={v}" for k, v in story.market.items()))
    fees = ", ".join(f"{v} {k}" for k, v in story.fees.items()) or "none"
    _out(f"filled {story.filled}" + (f" at {avg:.8f} on average" if avg is not None else "")
         + f"; fees {fees}")
    for r in story.events:
        _out(f"{r.notification_id:>7}  {r.ts:<25}  {r.venue or '-':<9}  {_step(r.type, r.fields)}")
