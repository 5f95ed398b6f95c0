"""`ledger audit`: verify (chain, lifecycle, views, snapshots), events with filters, an instruction's
story, export and re-import, bad input — on a real backtest log, never changing the file it reads."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app

ROOT = Path(__file__).resolve().parents[2]
SECRET = "SEKRIT-0123456789"


class Run:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli(*args: str | Path, env: dict[str, str | None] | None = None) -> Run:
    """In-process `ledger …` (fast); see `ledger_process` for the real process."""
    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def ledger_process(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def execute(path: Path, sql: str, params: Sequence[object] = ()) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-day backtest log (with its SQL views), run with live keys in its config that must not leak."""
    folder = tmp_path_factory.mktemp("audit")
    (folder / "cfg.toml").write_text(f'binance_api_key = "{SECRET}"\nbinance_secret = "{SECRET}"\n')
    run = ledger_process(
        "backtest", "--days", "3", "--db", "a.db", "--report", "rep", "--config", "cfg.toml", cwd=folder
    )
    assert run.returncode == 0, run.stderr
    execute(folder / "a.db", "PRAGMA wal_checkpoint(TRUNCATE)")
    return folder / "a.db"


@pytest.fixture
def db(built: Path, tmp_path: Path) -> Path:
    """A private copy of the backtest log."""
    copy = tmp_path / "ledger.db"
    shutil.copy(built, copy)
    return copy


def instruction_of(db: Path, topic: str) -> str:
    (state,) = rows(db, "SELECT state FROM stored_events WHERE topic=? ORDER BY rowid LIMIT 1", (topic,))[0]
    assert isinstance(state, bytes)
    return str(json.loads(state)["instruction_id"])


# ---- verify --------------------------------------------------------------------------------------------


def test_verify_passes_on_a_backtest_log_and_reports_every_check(db: Path) -> None:
    """A fresh backtest log: exit 0, the chain, lifecycle, views and snapshots all reported as holding."""
    run = cli("audit", "verify", "--db", db)
    assert run.code == 0, run.stderr
    out = run.stdout
    assert out.startswith("ok: ") and "lifecycle: " in out and "views: equal to a rebuild" in out
    assert "only an anchor" in out  # the two events after the end-of-session checkpoint
    report = cli("audit", "verify", "--db", db, "--json").json_lines()[0]
    assert report["ok"] is True and report["problem"] is None and report["views"] == "equal"
    assert report["events"] == rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    assert isinstance(report["instructions"], int) and report["instructions"] >= 5
    assert report["checkpoints"] == 1 and report["uncovered"] == 2 and report["open_sessions"] == []


def test_no_audit_command_changes_the_database_file(db: Path, tmp_path: Path) -> None:
    """verify, anchor, events, instruction and export leave the file byte for byte as it was."""
    before = sha256(db)
    iid = instruction_of(db, "ledger:VenueLedger.OrderFilled")
    for args in (
        ["verify", "--db", db],
        ["verify", "--db", db, "--json"],
        ["anchor", "--db", db],
        ["events", "--db", db, "--json"],
        ["events", "--db", db, "--venue", "binance"],
        ["instruction", iid, "--db", db],
        ["export", "--db", db, "--out", tmp_path / "x.jsonl"],
    ):
        assert cli("audit", *args).code == 0, args
        assert sha256(db) == before, args
    tampered = tmp_path / "t.db"
    shutil.copy(db, tampered)
    execute(tampered, "UPDATE view_balances SET amount='1' WHERE rowid=1")
    before = sha256(tampered)
    assert cli("audit", "verify", "--db", tampered).code == 1
    assert sha256(tampered) == before


def test_an_edited_fill_is_named_by_stream_and_version_in_one_line(db: Path) -> None:
    """The first bad event is named: its notification, stream, version and what is wrong (exit 1)."""
    nid, stream, version = rows(
        db,
        "SELECT rowid, originator_id, originator_version FROM stored_events "
        "WHERE topic='ledger:VenueLedger.OrderFilled' ORDER BY rowid LIMIT 1",
    )[0]
    execute(
        db,
        'UPDATE stored_events SET state=CAST(replace(state, \'"side":"buy"\', \'"side":"sell"\') '
        "AS BLOB) WHERE rowid=?",
        (nid,),
    )
    run = ledger_process("audit", "verify", "--db", db)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == (
        f"TAMPERED: notification {nid}, stream {stream}, version {version}: digest does "
        "not match its content and predecessor (edited, moved or forged row)\n"
    )


def test_a_tail_truncated_up_to_the_last_checkpoint_is_caught(db: Path) -> None:
    """Rows deleted from the end of the covered range (the checkpoint kept) are caught without an anchor."""
    topic = "ledger:Session.Checkpointed"
    (checkpoint,) = rows(db, "SELECT MAX(rowid) FROM stored_events WHERE topic=?", (topic,))[0]
    assert isinstance(checkpoint, int)
    execute(db, "DELETE FROM stored_events WHERE rowid BETWEEN ? AND ?", (checkpoint - 40, checkpoint - 1))
    report = cli("audit", "verify", "--db", db, "--json")
    assert report.code == 1
    problem = report.json_lines()[0]["problem"]
    assert isinstance(problem, dict) and problem["check"] == "chain" and problem["stream"]


def test_a_tail_removed_after_the_last_checkpoint_needs_the_anchor(db: Path, tmp_path: Path) -> None:
    """As documented: the tail after the last checkpoint is protected only by an anchor kept elsewhere."""
    anchor = tmp_path / "anchor.json"
    anchor.write_text(cli("audit", "anchor", "--db", db).stdout)
    execute(db, "DELETE FROM stored_events WHERE rowid=(SELECT MAX(rowid) FROM stored_events)")
    execute(db, "DROP TABLE view_tracking")  # the views would give the removal away too
    assert cli("audit", "verify", "--db", db).code == 0
    run = cli("audit", "verify", "--db", db, "--anchor", anchor)
    assert run.code == 1 and run.stderr.startswith("TAMPERED: anchor records ")


def test_an_anchor_covers_the_events_it_saw_and_allows_later_growth(db: Path, tmp_path: Path) -> None:
    """Events appended after the anchor pass as growth; a change to an anchored event fails."""
    from ledger.app import Ledger

    anchor = cli("audit", "anchor", "--db", db).stdout.strip()
    ledger = Ledger.open(db)
    venue = ledger.get_venue("main", "okx")
    venue.record_deposit("later:okx:USDT", "trading", "USDT", Decimal("5"), datetime(2024, 1, 4, tzinfo=UTC))
    ledger.save(venue)
    ledger.close()
    run = cli("audit", "verify", "--db", db, "--anchor", anchor)
    assert run.code == 0, run.stderr
    assert f"anchor: the first {json.loads(anchor)['events']} events match it; 1 appended since" in run.stdout
    # Swap the session's end with the new deposit: each stream keeps its order and both rows are after
    # the last checkpoint, so only the anchor sees that the anchored events changed.
    (last,) = rows(db, "SELECT MAX(rowid) FROM stored_events")[0]
    assert isinstance(last, int)
    cols = "originator_id, originator_version, topic, state"
    a, b = (rows(db, f"SELECT {cols} FROM stored_events WHERE rowid=?", (r,))[0] for r in (last - 1, last))
    execute(db, "DELETE FROM stored_events WHERE rowid>=?", (last - 1,))
    execute(db, f"INSERT INTO stored_events(rowid, {cols}) VALUES (?,?,?,?,?)", (last - 1, *b))
    execute(db, f"INSERT INTO stored_events(rowid, {cols}) VALUES (?,?,?,?,?)", (last, *a))
    execute(db, "DROP TABLE view_tracking")
    assert cli("audit", "verify", "--db", db).code == 0  # as documented: invisible without the anchor
    run = cli("audit", "verify", "--db", db, "--anchor", anchor)
    assert run.code == 1 and run.stderr.startswith("TAMPERED: the first ")


def test_views_built_past_the_end_of_the_log_reveal_a_removed_tail(db: Path) -> None:
    """With the SQL views present, a tail removed after the last checkpoint is caught without an anchor."""
    execute(db, "DELETE FROM stored_events WHERE rowid=(SELECT MAX(rowid) FROM stored_events)")
    run = cli("audit", "verify", "--db", db)
    assert run.code == 1 and run.stderr.startswith("VIEWS: the SQL views were built from ")


def test_an_edited_or_missing_view_row_is_named(db: Path, tmp_path: Path) -> None:
    """A view that differs from a rebuild from the events fails verification, naming the row."""
    where = "venue='binance' AND wallet='spot' AND asset='USDT'"
    execute(db, f"UPDATE view_balances SET amount='1' WHERE {where}")
    run = cli("audit", "verify", "--db", db)
    assert run.code == 1
    assert run.stderr.startswith(
        "VIEWS: view_balances row (binance, spot, USDT): amount is 1 in the database, "
    )
    other = tmp_path / "o.db"
    shutil.copy(db, other)
    execute(
        other,
        "UPDATE view_balances SET amount=(SELECT amount FROM view_balances WHERE rowid=2) "
        "WHERE venue='binance' AND wallet='spot' AND asset='USDT'",
    )
    execute(other, "DELETE FROM view_fills WHERE rowid=1")
    run = cli("audit", "verify", "--db", other)
    assert run.code == 1 and "view_" in run.stderr


def _append(db: Path, forge: str) -> tuple[str, int]:
    """Append a chain-valid event that breaks the lifecycle, as a writer with access could."""
    from aggregates.venue import VenueLedger
    from ledger.app import Ledger

    ts = datetime(2024, 1, 4, tzinfo=UTC)
    ledger = Ledger.open(db)
    venue = ledger.get_venue("main", "binance")
    if forge == "submitted":
        event = VenueLedger.OrderSubmitted(
            originator_id=venue.id,
            originator_version=venue.version + 1,
            timestamp=ts,
            ts_event=ts,
            instruction_id="forged-1",
            client_order_id="c1",
            attempt=1,
        )
        ledger.save_events([event], [])
        version = venue.version + 1  # the aggregate itself refuses to load it again
    else:
        venue.record_accepted(
            "forged-2",
            {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "1", "wallet": "spot"},
            {"eth_usd_price": Decimal("3000")},
            ts,
        )
        ledger.save(venue)
        version = venue.version
    ledger.close()
    return venue.id.hex, version


def test_an_illegal_move_is_a_lifecycle_failure_naming_the_event(db: Path) -> None:
    """An order submitted for an instruction never accepted: LIFECYCLE, its stream and version."""
    stream, version = _append(db, "submitted")
    run = cli("audit", "verify", "--db", db)
    assert run.code == 1
    assert run.stderr.startswith("LIFECYCLE: notification ")
    assert (
        f"stream {stream}, version {version}: instruction forged-1: OrderSubmitted is not allowed "
        "from state NEW" in run.stderr
    )


def test_an_instruction_left_unsettled_in_a_finished_backtest_fails(db: Path) -> None:
    """A completed backtest leaves no instruction merely accepted; the finding points at its last event."""
    stream, version = _append(db, "accepted")
    problem = cli("audit", "verify", "--db", db, "--json").json_lines()[0]["problem"]
    assert isinstance(problem, dict) and problem["check"] == "lifecycle"
    assert (problem["stream"], problem["version"]) == (stream, version)
    assert str(problem["problem"]).startswith("instruction forged-2 ended in ACCEPTED")


def test_snapshots_are_checked_against_their_events(tmp_path: Path) -> None:
    """Stored snapshots equal their aggregates rebuilt from the events; an edited one is named."""
    from ledger.app import Ledger
    from tests.scenario import write_scenario

    path = tmp_path / "s.db"
    ledger = Ledger.open(path, create=True, synchronous="NORMAL", snapshot_every=5, checkpoint_every=20)
    write_scenario(ledger)
    ledger.close()
    report = cli("audit", "verify", "--db", path, "--json").json_lines()[0]
    assert report["ok"] is True and isinstance(report["snapshots"], int) and report["snapshots"] > 3
    stream, version = rows(
        path,
        "SELECT originator_id, MAX(originator_version) FROM stored_snapshots "
        "WHERE CAST(state AS TEXT) LIKE '%FILLED%'",
    )[0]
    execute(
        path,
        "UPDATE stored_snapshots SET state=CAST(replace(state, '\"FILLED\"', '\"SUBMITTED\"') "
        "AS BLOB) WHERE originator_id=? AND originator_version=?",
        (stream, version),
    )
    run = cli("audit", "verify", "--db", path)
    assert run.code == 1
    assert run.stderr.startswith(f"SNAPSHOTS: stream {stream}, version {version}: stored snapshot differs")


# ---- events ---------------------------------------------------------------------------------------------


def test_events_json_has_one_object_per_event_with_decimals_as_text(db: Path) -> None:
    """--json: every event once, in notification order, with ids, venue, type, time and exact fields."""
    events = cli("audit", "events", "--db", db, "--json").json_lines()
    assert [e["notification_id"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) == rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    fill = next(e for e in events if e["type"] == "OrderFilled")
    assert set(fill) == {
        "notification_id",
        "stream",
        "version",
        "topic",
        "type",
        "venue",
        "ts",
        "instruction_id",
        "chain",
        "event",
    }
    fields = fill["event"]
    assert isinstance(fields, dict)
    assert isinstance(fields["quantity"], str) and isinstance(fields["price"], str)
    Decimal(fields["price"])
    assert fill["venue"] in ("binance", "bybit", "okx") and fill["topic"] == "ledger:VenueLedger.OrderFilled"
    assert events[0]["type"] == "SessionStarted" and events[0]["venue"] is None
    assert SECRET not in cli("audit", "events", "--db", db, "--json").stdout


def test_events_filters_select_by_venue_type_instruction_time_and_limit(db: Path) -> None:
    """Each filter keeps exactly the events it names; filters combine."""
    every = cli("audit", "events", "--db", db, "--json").json_lines()
    binance = cli("audit", "events", "--db", db, "--venue", "binance", "--json").json_lines()
    assert binance and binance == [e for e in every if e["venue"] == "binance"]
    fills = cli("audit", "events", "--db", db, "--type", "OrderFilled", "--json").json_lines()
    assert fills == [e for e in every if e["type"] == "OrderFilled"]
    two = cli("audit", "events", "--db", db, "--type", "orderfilled,FundsDeposited", "--json").json_lines()
    assert two == [e for e in every if e["type"] in ("OrderFilled", "FundsDeposited")]
    both = cli("audit", "events", "--db", db, "--venue", "bybit", "--type", "OrderFilled", "--json")
    assert both.json_lines() == [e for e in fills if e["venue"] == "bybit"]
    assert len(cli("audit", "events", "--db", db, "--limit", "3", "--json").json_lines()) == 3
    since, until = "2024-01-02T00:00:00+00:00", "2024-01-02T12:00:00Z"
    window = cli("audit", "events", "--db", db, "--since", since, "--until", until, "--json").json_lines()
    assert window and window == [e for e in every if since <= str(e["ts"]) <= "2024-01-02T12:00:00+00:00"]
    day = cli("audit", "events", "--db", db, "--since", "2024-01-03", "--json").json_lines()
    assert day == [e for e in every if str(e["ts"]) >= "2024-01-03"]


def test_events_for_an_instruction_include_its_transfer_arrival(db: Path) -> None:
    """--instruction: its own events, plus the arrival of a transfer it sent (which names no instruction)."""
    iid = instruction_of(db, "ledger:VenueLedger.TransferSent")
    story = cli("audit", "events", "--db", db, "--instruction", iid, "--json").json_lines()
    types = [e["type"] for e in story]
    assert types[0] == "InstructionAccepted" and "TransferSent" in types and types[-1] == "TransferReceived"
    assert all(e["instruction_id"] == iid for e in story[:-1]) and story[-1]["instruction_id"] is None
    only = cli("audit", "events", "--db", db, "--instruction", iid, "--type", "TransferReceived", "--json")
    assert only.json_lines() == story[-1:]


def test_events_table_lists_one_line_per_event(db: Path) -> None:
    """--wide: a header, then one line per event with its number, time, venue, type and every field
    whole, however long the line."""
    run = cli("audit", "events", "--db", db, "--type", "OrderFilled", "--wide")
    assert run.code == 0
    header, *lines = run.lines()
    assert header.split()[:6] == ["#", "time", "venue", "type", "instruction", "details"]
    assert len(lines) == rows(db, "SELECT COUNT(*) FROM stored_events WHERE topic LIKE '%OrderFilled'")[0][0]
    assert all("OrderFilled" in line and "quantity=" in line for line in lines)
    listed = cli("audit", "events", "--db", db, "--type", "OrderFilled", "--json").json_lines()
    fills = [e["event"] for e in listed]
    for line, fill in zip(lines, fills, strict=True):
        assert isinstance(fill, dict) and "…" not in line
        assert f" price={fill['price']} " in line and f" fee={fill['fee']} " in line
        assert line.endswith(f"slippage_bps={fill['slippage_bps']}")


def test_events_at_80_columns_wrap_and_keep_every_value_whole(db: Path) -> None:
    """At COLUMNS=80 (the default off a terminal) no line is longer than 80; each event starts a line
    with its number, and its fields follow whole, wrapped at spaces (the old listing cut them at 110
    characters with "…")."""
    run = cli("audit", "events", "--db", db, "--type", "OrderFilled,TransactionConfirmed,FundingSettled",
              "--limit", "40", env={"COLUMNS": "80"})
    assert run.code == 0 and run.lines()[0].split() == ["#", "time", "venue", "type", "details"]
    assert max(len(line) for line in run.lines()) <= 80 and "…" not in run.stdout
    events = cli("audit", "events", "--db", db, "--type", "OrderFilled,TransactionConfirmed,FundingSettled",
                 "--limit", "40", "--json").json_lines()
    words = run.stdout.split()
    for event in events:
        assert str(event["notification_id"]) in words
        fields = event["event"]
        assert isinstance(fields, dict)
        for key in ("price", "quantity", "amount", "fee", "tx_hash", "block_hash", "gas_fee"):
            if key in fields:
                assert f"{key}={fields[key]}" in words, (key, fields[key])
        if event["instruction_id"]:
            assert f"instruction={event['instruction_id']}" in words


def test_events_at_40_columns_keep_ids_whole_and_wide_shows_nested_fields(db: Path) -> None:
    """At COLUMNS=40 the header was 77 characters and ids wrapped mid-UUID (`instruction=8590873a-…-e579`
    / `0dc179b0`): now no line is longer than 40 but a word that alone is (a 64-hex digest), and every
    line holding part of an instruction id holds all of it. With --wide (or a wide terminal) an accepted
    instruction's fields and its market snapshot are shown, not `instruction={9 keys}`."""
    args = ("audit", "events", "--db", db, "--type", "InstructionAccepted,OrderFilled,TransferSent")
    run = cli(*args, env={"COLUMNS": "40"})
    assert run.code == 0
    assert all(len(line) <= 40 or len(line.split()) == 1 for line in run.lines()), run.stdout
    events = cli(*args, "--json").json_lines()
    ids = {str(e["instruction_id"]) for e in events if e["instruction_id"]}
    assert ids
    for iid in ids:
        touched = [line for line in run.lines() if iid[:8] in line or iid[-8:] in line]
        assert touched and all(iid in line for line in touched), (iid, touched)
    words = run.stdout.split()
    accepted = [e for e in events if e["type"] == "InstructionAccepted"]
    for event in accepted:
        fields = event["event"]
        assert isinstance(fields, dict)
        shown = [*(f"instruction.{k}={v}" for k, v in fields["instruction"].items()),
                 f"market.eth_usd_price={fields['market']['eth_usd_price']}"]
        for word in shown:  # whole, or split after its `=` when longer than 40
            key, _, value = word.partition("=")
            assert word in words or (f"{key}=" in words and value in words), word
    wide = cli(*args, "--wide")
    lines = [line for line in wide.lines() if "InstructionAccepted" in line]
    assert len(lines) == len(accepted) and "keys}" not in wide.stdout
    for line, event in zip(lines, accepted, strict=True):
        fields = event["event"]
        assert isinstance(fields, dict)
        shown = line.split()
        assert all(f"instruction.{k}={v}" in shown for k, v in fields["instruction"].items()), line
        assert all(f"market.{k}={v}" in shown for k, v in fields["market"].items()), line
    assert "instruction.amount=" in cli(*args, env={"COLUMNS": "200"}).stdout


# ---- an instruction's story -------------------------------------------------------------------------------


def test_an_orders_story_shows_acceptance_snapshot_submission_and_fills(db: Path) -> None:
    """`audit instruction ID`: accepted (instruction and market), submitted, filled; status and totals."""
    iid = instruction_of(db, "ledger:VenueLedger.OrderFilled")
    data = cli("audit", "instruction", iid, "--db", db, "--json").json_lines()[0]
    assert data["instruction_id"] == iid and data["status"] == "FILLED"
    events = data["events"]
    assert isinstance(events, list)
    assert [e["type"] for e in events] == ["InstructionAccepted", "OrderSubmitted", "OrderFilled"]
    instruction, market = data["instruction"], data["market"]
    assert isinstance(instruction, dict) and isinstance(market, dict)
    assert instruction["amount"] == events[2]["event"]["quantity"] == data["filled"]
    assert all(isinstance(v, str) for v in market.values()) and "eth_usd_price" in market
    assert data["average_price"] == events[2]["event"]["price"]
    text = cli("audit", "instruction", iid, "--db", db, "--wide")
    assert text.code == 0 and text.lines()[0] == f"instruction {iid} at {data['venue']}: FILLED"
    assert "market at acceptance: eth_usd_price=" in text.stdout
    side = events[2]["event"]["side"]
    assert any(" accepted: kind=" in line for line in text.lines())
    assert f" filled {side} {data['filled']} " in text.stdout
    assert any(" submitted as client order " in line for line in text.lines())


def test_an_on_chain_story_shows_its_transaction_with_effects(db: Path) -> None:
    """A staking instruction: submitted, mined and confirmed transaction, effects and gas, completed."""
    iid = instruction_of(db, "ledger:VenueLedger.TransactionConfirmed")
    data = cli("audit", "instruction", iid, "--db", db, "--json").json_lines()[0]
    types = [e["type"] for e in data["events"]]  # type: ignore[union-attr]
    assert types[0] == "InstructionAccepted" and types[-1] == "InstructionCompleted"
    assert (
        types.index("TransactionSubmitted")
        < types.index("TransactionMined")
        < types.index("TransactionConfirmed")
    )
    assert data["status"] == "COMPLETED" and "gas" in data["fees"]  # type: ignore[operator]
    text = cli("audit", "instruction", iid, "--db", db, "--wide").stdout
    assert " confirmed in block " in text and "effects: kind=" in text


def test_a_live_story_shows_acknowledgement_partial_fills_cancel_and_a_rejection(tmp_path: Path) -> None:
    """A hand-made live log: acknowledged, two partial fills, cancel requested and cancelled; a rejection."""
    from datetime import timedelta

    from aggregates.session import Session
    from ledger.app import Ledger

    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    path = tmp_path / "live.db"
    ledger = Ledger.open(path, create=True, synchronous="NORMAL")
    ledger.start_session(Session.start("live-1", "live", "{}", "-", "-", "-", 1, "test", t0))
    venue = ledger.venue("main", "binance", "cex", t0)
    venue.record_rejected("r-1", "RISK", "notional too large", {"amount": "1000"}, t0)
    venue.record_accepted(
        "o-1",
        {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "2", "wallet": "spot"},
        {"eth_usd_price": Decimal("3000")},
        t0,
    )
    venue.record_submitted("o-1", "c-o-1", t0)
    venue.record_acknowledged("o-1", "V123", t0)
    for i, (qty, price) in enumerate((("0.5", "3000"), ("0.7", "3002")), start=1):
        venue.record_fill(
            "o-1",
            f"t{i}",
            "spot",
            "ETH/USDT",
            "buy",
            Decimal(qty),
            Decimal(price),
            Decimal("0.1"),
            "USDT",
            t0 + timedelta(seconds=i),
        )
    venue.record_cancel_requested("o-1", t0 + timedelta(seconds=3))
    venue.record_cancelled("o-1", "user", t0 + timedelta(seconds=4))
    ledger.save(venue)
    ledger.close()
    data = cli("audit", "instruction", "o-1", "--db", path, "--json").json_lines()[0]
    assert [e["type"] for e in data["events"]] == [  # type: ignore[union-attr]
        "InstructionAccepted",
        "OrderSubmitted",
        "OrderAcknowledged",
        "OrderFilled",
        "OrderFilled",
        "CancelRequested",
        "OrderCancelled",
    ]
    assert data["status"] == "CANCELLED" and data["filled"] == "1.2" and data["fees"] == {"USDT": "0.2"}
    notional = Decimal("0.5") * 3000 + Decimal("0.7") * 3002
    # a derived number: 12 decimals, as every command prints them
    assert Decimal(str(data["average_price"])) == (notional / Decimal("1.2")).quantize(Decimal("1e-12"))
    text = cli("audit", "instruction", "o-1", "--db", path, "--wide").stdout
    for words in (
        "acknowledged as venue order V123",
        "filled buy 0.5 ETH/USDT @ 3000",
        "cancel requested",
        "cancelled: user",
    ):
        assert words in text
    rejected = cli("audit", "instruction", "r-1", "--db", path, "--wide")
    assert rejected.lines()[0] == "instruction r-1 at binance: REJECTED"
    assert "rejected: RISK: notional too large (received amount=1000)" in rejected.stdout
    verified = cli("audit", "verify", "--db", path)
    assert verified.code == 0 and "session live-1 has not ended" in verified.stdout


# ---- export and import ------------------------------------------------------------------------------------


def test_export_then_import_round_trips_to_an_equal_ledger(db: Path, tmp_path: Path) -> None:
    """JSONL export → import into a fresh ledger: same digest, verify passes, re-export byte-identical."""
    out = tmp_path / "events.jsonl"
    assert cli("audit", "export", "--db", db, "--out", out).code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    first = json.loads(lines[0])
    assert set(first) >= {"notification_id", "stream", "version", "topic", "state", "event", "chain"}
    stored = rows(db, "SELECT state FROM stored_events WHERE rowid=1")[0][0]
    assert base64.b64decode(first["state"]) == stored
    assert SECRET not in out.read_text()
    target = tmp_path / "imported.db"
    run = cli("audit", "import", "--db", target, "--from", out)
    assert run.code == 0, run.stderr
    digest = cli("digest", "--db", db).stdout.strip()
    assert cli("digest", "--db", target).stdout.strip() == digest
    assert run.lines()[-1] == f"digest: {digest}"
    verified = cli("audit", "verify", "--db", target, "--json").json_lines()[0]
    assert verified["ok"] is True and verified["views"] == "equal"
    again = tmp_path / "again.jsonl"
    assert cli("audit", "export", "--db", target, "--out", again).code == 0
    assert again.read_bytes() == out.read_bytes()
    assert cli("summary", "--db", target, "--json").stdout == cli("summary", "--db", db, "--json").stdout


def test_an_encrypted_ledger_round_trips_and_a_missing_key_is_a_user_error(tmp_path: Path) -> None:
    """With LEDGER_CIPHER_KEY: export, import (encrypted again) and verify; without it: exit 2, one line."""
    from eventsourcing.cipher import AESCipher

    key = {"LEDGER_CIPHER_KEY": AESCipher.create_key(32)}
    source, target, out = tmp_path / "enc.db", tmp_path / "enc2.db", tmp_path / "enc.jsonl"
    assert cli("demo", "--db", source, env=key).code == 0
    assert cli("audit", "export", "--db", source, "--out", out, env=key).code == 0
    assert cli("audit", "import", "--db", target, "--from", out, env=key).code == 0
    assert b"deposit_id" not in target.read_bytes()  # stored encrypted
    assert cli("audit", "verify", "--db", target, env=key).code == 0
    assert cli("digest", "--db", target, env=key).stdout == cli("digest", "--db", source, env=key).stdout
    run = cli("audit", "verify", "--db", target, env={"LEDGER_CIPHER_KEY": None})
    assert run.code == 2 and run.stderr.startswith(
        "error: neither the first nor the last event can be read with no LEDGER_CIPHER_KEY set"
    )


@pytest.mark.postgres
def test_import_and_verify_on_postgresql(db: Path, tmp_path: Path, pg_url: str) -> None:
    """A JSONL export imported into PostgreSQL verifies, views included; an edited view is caught."""
    import psycopg

    out = tmp_path / "events.jsonl"
    assert cli("audit", "export", "--db", db, "--out", out).code == 0
    assert cli("audit", "import", "--db", pg_url, "--from", out).code == 0
    assert cli("digest", "--db", pg_url).stdout == cli("digest", "--db", db).stdout
    report = cli("audit", "verify", "--db", pg_url, "--json").json_lines()[0]
    assert report["ok"] is True and report["views"] == "equal"
    dsn, schema = pg_url.split("?schema=")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"UPDATE \"{schema}\".view_balances SET amount='2' WHERE venue='bybit'")
    run = cli("audit", "verify", "--db", pg_url)
    assert run.code == 1 and run.stderr.startswith("VIEWS: view_balances row (bybit, ")


def test_import_refuses_a_non_empty_target_and_a_damaged_export(db: Path, tmp_path: Path) -> None:
    """A target holding events, lines out of order or not an export: one error line, exit 2, no file left."""
    out = tmp_path / "events.jsonl"
    assert cli("audit", "export", "--db", db, "--out", out).code == 0
    run = cli("audit", "import", "--db", db, "--from", out)
    assert run.code == 2 and run.stderr.startswith("error: ") and "already holds" in run.stderr
    lines = out.read_text().splitlines()
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\n")
    for source, words in ((moved, "notification 2 where 1 was expected"), (garbage, "not JSON")):
        target = tmp_path / f"from-{source.stem}.db"
        run = cli("audit", "import", "--db", target, "--from", source)
        assert run.code == 2 and run.stderr.startswith("error: ") and words in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1 and not target.exists()


def test_csv_export_carries_every_event_and_its_stored_state_with_bytes(db: Path, tmp_path: Path) -> None:
    """CSV: a header, one row per event, the decoded event as JSON; the base64 stored state only with
    --with-bytes, which more than doubles the file (the default file is under 2/3 of that size)."""
    out, full = tmp_path / "events.csv", tmp_path / "full.csv"
    assert cli("audit", "export", "--db", db, "--out", out).code == 0  # the format follows the extension
    assert cli("audit", "export", "--db", db, "--out", full, "--with-bytes", "--format", "csv").code == 0
    count = rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    with open(full, newline="") as fh:
        with_bytes = list(csv.DictReader(fh))
    assert len(table) == len(with_bytes) == count
    assert "state" not in table[0] and list(with_bytes[0]) == [*table[0], "state"]
    fill = next(r for r in with_bytes if r["type"] == "OrderFilled")
    stored = rows(db, "SELECT state FROM stored_events WHERE rowid=?", (int(fill["notification_id"]),))
    assert base64.b64decode(fill["state"]) == stored[0][0]
    assert isinstance(json.loads(fill["event"])["price"], str)
    assert [{k: v for k, v in r.items() if k != "state"} for r in with_bytes] == table
    assert out.stat().st_size * 3 < full.stat().st_size * 2
    assert cli("audit", "export", "--db", db, "--out", out).code == 2  # exists
    assert cli("audit", "export", "--db", db, "--out", out, "--format", "csv", "--force").code == 0


def test_parquet_export_when_pyarrow_is_installed(db: Path, tmp_path: Path) -> None:
    """x.parquet (the [parquet] extra): the events table alone, one row per event, the stored state as
    bytes, the time typed."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # installed by `make install` (the [parquet] extra)

    out = tmp_path / "events.parquet"
    run = cli("audit", "export", "--db", db, "--out", out, "--json")  # the format follows the extension
    assert run.code == 0, run.stderr
    assert run.json_lines() == [{"format": "parquet", "out": str(out), "files": {
        "events": {"path": str(out), "rows": rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]}}}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "ledger.db"]
    table = pq.read_table(out)
    assert table.num_rows == rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    assert table.column("state")[0].as_py() == rows(db, "SELECT state FROM stored_events WHERE rowid=1")[0][0]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("state").type == pa.binary()
    assert cli("audit", "export", "--db", db, "--out", out, "--format", "parquet", "--force").code == 0


RAY_INDEX = Decimal(1_000_200_113_095_123_456_789_012_345).scaleb(-27)  # an AAVE index read in ray units


def sums(pairs: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, value in pairs:
        out[key] = out.get(key, Decimal(0)) + value
    return out


def add_ray_interest(db: Path) -> None:
    """Append an interest accrual whose index has 27 decimals, as the live chain records them."""
    from ledger.app import Ledger

    ledger = Ledger.open(db, synchronous="NORMAL")
    venue = ledger.venue("main", "ethereum")
    venue.record_interest("ray-1", "WETH", "borrowed", Decimal("0.000000000000000001"), RAY_INDEX,
                          datetime(2024, 1, 4, tzinfo=UTC))
    ledger.save(venue)
    ledger.close()


def test_typed_parquet_per_kind_read_back_with_duckdb(db: Path, tmp_path: Path) -> None:
    """--out FOLDER: events, fills, funding, interest, transfers and balances as typed Parquet; DuckDB
    reads TIMESTAMP WITH TIME ZONE, DECIMAL(38,18) and, for the ray-unit index, exact text; the totals
    equal sums computed here from the JSONL export with json and Decimal."""
    import duckdb

    add_ray_interest(db)
    folder, jsonl = tmp_path / "export", tmp_path / "events.jsonl"
    run = cli("audit", "export", "--db", db, "--out", folder, "--json")
    assert run.code == 0, run.stderr
    assert cli("audit", "export", "--db", db, "--out", jsonl).code == 0
    events = [json.loads(line, parse_float=Decimal) for line in jsonl.read_text().splitlines()]
    kinds = ("events", "fills", "funding", "interest", "transfers", "balances")
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.parquet" for k in kinds)
    files = run.json_lines()[0]["files"]
    assert isinstance(files, dict) and list(files) == list(kinds)

    def sql(query: str, kind: str) -> list[tuple[object, ...]]:
        return duckdb.sql(query.replace("FROM T", f"FROM read_parquet('{folder / kind}.parquet')")).fetchall()

    def types(kind: str) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in sql("DESCRIBE SELECT * FROM T", kind)}

    fills = [e["event"] for e in events if e["type"] == "OrderFilled"]
    ev = types("events")
    assert (ev["ts"], ev["state"], ev["notification_id"]) == ("TIMESTAMP WITH TIME ZONE", "BLOB", "BIGINT")
    assert sql("SELECT count(*), min(ts), max(notification_id) FROM T", "events")[0] == (
        len(events), datetime.fromisoformat(events[0]["ts"]), len(events))
    assert sql("SELECT state FROM T WHERE notification_id = 1", "events")[0][0] == base64.b64decode(
        events[0]["state"])
    for kind, columns in (("fills", ("quantity", "price", "fee", "reference_price")),
                          ("funding", ("rate", "mark_price", "position", "amount")),
                          ("transfers", ("amount", "fee", "refunded")), ("balances", ("amount",))):
        typed = types(kind)
        assert typed["ts" if kind != "balances" else "venue"] in ("TIMESTAMP WITH TIME ZONE", "VARCHAR")
        assert all(typed[c] == "DECIMAL(38,18)" for c in columns), (kind, typed)
    assert types("interest")["amount"] == "DECIMAL(38,18)" and types("interest")["index"] == "VARCHAR"
    assert sql("SELECT index FROM T WHERE accrual_id = 'ray-1'", "interest") == [(format(RAY_INDEX, "f"),)]

    def of(kind: str) -> list[tuple[str, dict[str, str]]]:
        return [(e["venue"], e["event"]) for e in events if e["type"] == kind]

    assert len(fills) >= 3 and all(-Decimal(f["price"]).as_tuple().exponent <= 10 for f in fills)
    notional = sums((v, Decimal(f["quantity"]) * Decimal(f["price"])) for v, f in of("OrderFilled"))
    # DuckDB multiplies two DECIMAL(38,18) into scale 36 and overflows: scale one side down first
    # (exact here: no price has more than 10 decimals).
    by_venue = "SELECT venue, sum(quantity * price::DECIMAL(38,10)) FROM T GROUP BY venue"
    assert dict(sql(by_venue, "fills")) == notional
    fees = sums((f["fee_asset"], Decimal(f["fee"])) for _v, f in of("OrderFilled"))
    assert dict(sql("SELECT fee_asset, sum(fee) FROM T GROUP BY fee_asset", "fills")) == fees
    funding = sums((v, Decimal(f["amount"])) for v, f in of("FundingSettled"))
    assert funding and dict(sql("SELECT venue, sum(amount) FROM T GROUP BY venue", "funding")) == funding
    interest = sums((f["asset"], Decimal(f["amount"])) for _v, f in of("InterestAccrued"))
    assert dict(sql("SELECT asset, sum(amount) FROM T GROUP BY asset", "interest")) == interest
    moves = [e["type"].removeprefix("Transfer").lower() for e in events if e["type"].startswith("Transfer")]
    assert dict(sql("SELECT event, count(*) FROM T GROUP BY event", "transfers")) == {
        m: moves.count(m) for m in moves}
    # The balances at the end: the same numbers `ledger summary` prints (wallets; AAVE books apart).
    summary = cli("summary", "--db", db, "--json").json_lines()[0]["balances"]
    wallets = sql("SELECT asset, sum(amount) FROM T WHERE holding = 'wallet' GROUP BY asset", "balances")
    assert {a: str(v.normalize()) for a, v in wallets} == {  # type: ignore[attr-defined]
        a: str(Decimal(v).normalize()) for a, v in summary.items()}  # type: ignore[union-attr]


def test_export_refusals_create_nothing(db: Path, tmp_path: Path) -> None:
    """An unknown extension, a --format the extension contradicts, a folder for a one-file format,
    --with-bytes outside CSV, files in the way: one `error:` line, exit 2, nothing created."""
    out = tmp_path / "out"
    out.mkdir()
    cases: list[tuple[list[str | Path], str]] = [
        (["--out", out / "x.parquet", "--format", "csv"], "--format csv contradicts --out"),
        (["--out", out / "x.csv", "--format", "jsonl"], "(a .csv file)"),
        (["--out", out / "x.json"], "unknown extension '.json'"),
        (["--out", out / "x.txt", "--format", "jsonl"], "unknown extension '.txt'"),
        (["--out", out / "folder", "--format", "csv"], "has no extension (a folder"),
        (["--out", out / "x.jsonl", "--with-bytes"], "--with-bytes: only for CSV"),
        (["--out", out / "x.parquet", "--format", "xml"], "expected one of jsonl, csv, parquet"),
    ]
    for args, words in cases:
        run = cli("audit", "export", "--db", db, *args)
        assert run.code == 2 and run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert words in run.stderr, (args, run.stderr)
        assert list(out.iterdir()) == [], args
    assert cli("audit", "export", "--db", db, "--out", out / "kinds").code == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "kinds").iterdir()}
    run = cli("audit", "export", "--db", db, "--out", out / "kinds", "--format", "parquet")
    assert run.code == 2 and "already holds events.parquet, fills.parquet" in run.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "kinds").iterdir()} == before
    assert cli("audit", "export", "--db", db, "--out", out / "kinds", "--force").code == 0
    assert sorted(p.name for p in out.iterdir()) == ["kinds"]  # no scratch left beside it


def test_export_out_with_a_trailing_slash_is_a_folder_and_odd_names_are_refused(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out x.parquet/` wrote one events file named x.parquet: a trailing slash means a folder (one
    Parquet file per kind). `--out ''` exported into the current folder and `--out .jsonl` made a folder
    of Parquet files: both are one `error:` line, exit 2, nothing created."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for out, words in (("", "--out: empty"), ("  ", "--out: empty"), (".jsonl", "e.g. events.jsonl"),
                       (".csv", "e.g. events.csv"), (".parquet", "e.g. events.parquet"),
                       ("x.parquet/", "ends in /")):
        extra = ["--format", "csv"] if out == "x.parquet/" else []
        run = cli("audit", "export", "--db", db, "--out", out, *extra)
        assert run.code == 2 and run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert words in run.stderr, (out, run.stderr)
        assert list(work.iterdir()) == [], out
    run = cli("audit", "export", "--db", db, "--out", "x.parquet/", "--json")
    assert run.code == 0, run.stderr
    assert (work / "x.parquet").is_dir()
    assert sorted(p.name for p in (work / "x.parquet").iterdir()) == sorted(
        ["events.parquet", "fills.parquet", "funding.parquet", "interest.parquet", "transfers.parquet",
         "balances.parquet"])
    data = run.json_lines()[0]
    assert data["format"] == "parquet" and data["files"]["events"]["path"] == "x.parquet/events.parquet"


def test_progress_goes_to_stderr_and_json_stays_clean(db: Path, tmp_path: Path) -> None:
    """On a terminal (forced here) export, import and verify draw a progress bar on stderr; with --json
    there is none, and stdout is one JSON object."""
    env: dict[str, str | None] = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "100"}
    shown = cli("audit", "export", "--db", db, "--out", tmp_path / "a.jsonl", env=env)
    assert shown.code == 0 and "exporting" in shown.stderr and shown.stdout == ""
    quiet = cli("audit", "export", "--db", db, "--out", tmp_path / "b.jsonl", "--json", env=env)
    assert quiet.code == 0 and quiet.stderr == "", quiet.stderr
    count = rows(db, "SELECT COUNT(*) FROM stored_events")[0][0]
    assert json.loads(quiet.stdout)["files"]["events"]["rows"] == count
    imported = cli("audit", "import", "--db", tmp_path / "i.db", "--from", tmp_path / "a.jsonl", env=env)
    assert imported.code == 0 and "importing" in imported.stderr
    target = tmp_path / "j.db"
    as_json = cli("audit", "import", "--db", target, "--from", tmp_path / "a.jsonl", "--json", env=env)
    assert as_json.code == 0 and as_json.stderr == ""
    digest = cli("digest", "--db", db).stdout.strip()
    assert json.loads(as_json.stdout) == {"imported": count, "db": f"sqlite:///{target}", "digest": digest,
                                          "chain_ok": True, "problem": None}
    verified = cli("audit", "verify", "--db", db, env=env)
    assert verified.code == 0 and "chain and checkpoints" in verified.stderr
    clean = cli("audit", "verify", "--db", db, "--json", env=env)
    assert clean.stderr == "" and json.loads(clean.stdout)["ok"] is True


def test_parquet_without_pyarrow_names_the_extra(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow (hidden from the import system here), --format parquet is one line naming the extra."""
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    run = cli("audit", "export", "--db", db, "--out", tmp_path / "x.parquet", "--format", "parquet")
    assert run.code == 2 and run.stderr == (
        "error: --format parquet needs pyarrow: pip install 'execution-ledger[parquet]'\n"
    )
    assert not (tmp_path / "x.parquet").exists()


# ---- bad input ------------------------------------------------------------------------------------------


def test_bad_input_is_one_error_line_and_exit_2(db: Path, tmp_path: Path) -> None:
    """Missing or foreign files, bad times, types, limits, venues, ids and formats: one line, exit 2."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    foreign = tmp_path / "foreign.db"
    execute(foreign, "CREATE TABLE t (x)")
    absent = tmp_path / "absent.db"
    cases: list[tuple[list[str | Path], str]] = [
        (["verify", "--db", absent], "no ledger database"),
        (["events", "--db", text], "not a SQLite database"),
        (["instruction", "x", "--db", foreign], "not a ledger"),
        (["events", "--db", db, "--since", "yesterday"], "--since: cannot read 'yesterday'"),
        (["events", "--db", db, "--until", "2024-13-01"], "--until: cannot read"),
        (["events", "--db", db, "--type", "OrderFiled"], "known types: "),
        (["events", "--db", db, "--limit", "0"], "--limit: must be at least 1"),
        (["events", "--db", db, "--limit", "ten"], "--limit: expected a whole number"),
        (["events", "--db", db, "--since", "2031-01-01"], "after the last event"),
        (["events", "--db", db, "--until", "2020-01-01"], "before the first event"),
        (["events", "--db", db, "--since", "2024-01-03", "--until", "2024-01-02"], "is after --until"),
        (["events", "--db", db, "--venue", "kraken"], "no venue 'kraken'"),
        (["events", "--db", db, "--instruction", "nope"], "no instruction 'nope'"),
        (["instruction", "nope", "--db", db], "no instruction 'nope'"),
        (["export", "--db", db, "--out", tmp_path / "x", "--format", "xml"], "expected one of jsonl, csv"),
        (["export", "--db", db, "--out", tmp_path / "no" / "x.jsonl"], "does not exist"),
        (["import", "--db", tmp_path / "n.db", "--from", tmp_path / "none.jsonl"], "no such file"),
        (["verify", "--db", db, "--anchor", "{not json"], "--anchor: cannot read"),
    ]
    for args, words in cases:
        run = cli("audit", *args)
        assert run.code == 2, (args, run.stdout, run.stderr)
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, (args, run.stderr)
        assert words in run.stderr, (args, run.stderr)
    assert not absent.exists() and not (tmp_path / "n.db").exists()
    process = ledger_process("audit", "events", "--db", db, "--type", "Nope")
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.startswith("error: --type: unknown event type 'Nope'; known types: ")
    assert "OrderFilled" in process.stderr and process.stderr.count("\n") == 1


def test_help_lists_every_audit_command() -> None:
    """`ledger audit --help` names verify, anchor, events, export, import and instruction."""
    run = cli("audit", "--help")
    assert run.code == 0
    for name in ("verify", "anchor", "events", "export", "import", "instruction"):
        assert name in run.stdout
