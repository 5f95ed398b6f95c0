"""Store files through the CLI (issue 15, point 4): paths with URI characters open that very file; one
writer at a time on a SQLite ledger; anchors only of logs that verify; a wrong or missing cipher key
is one line and changes nothing; `--db` never replaces what is not a ledger; read-only opening
creates nothing; a full disk is named as such."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from aggregates.errors import StoreError
from ledger.stores import parse_url
from tests.integration.test_audit_cli import cli, ledger_process, rows, sha256

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from ledger.app import Ledger
ledger = Ledger.open(sys.argv[1], create=sys.argv[2] == "create")
if sys.argv[2] == "append":
    from aggregates import VenueLedger
    from tests.scenario import T0
    ledger.save(VenueLedger.open("main", "okx", "cex", T0))
print("holding", flush=True)
sys.stdin.readline()
ledger.close()
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stores") / "demo.db"
    assert cli("demo", "--db", path).code == 0
    execute_checkpoint(path)
    return path


def execute_checkpoint(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def one_error_line(run: object, code: int = 2) -> str:
    assert run.code == code, (run.code, run.stdout, run.stderr)  # type: ignore[attr-defined]
    err: str = run.stderr  # type: ignore[attr-defined]
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---- paths with URI characters ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q?evil.db", "h#x.db", "50% é.db", "a%3Fb.db"])
def test_a_path_with_uri_characters_opens_that_very_file(demo: Path, tmp_path: Path, name: str) -> None:
    decoy = tmp_path / name.split("?")[0].split("#")[0]
    if decoy.name != name:  # what the pasted URI used to open instead: a good ledger
        shutil.copy(demo, decoy)
    target = tmp_path / name
    shutil.copy(demo, target)
    con = sqlite3.connect(target)
    con.execute("UPDATE stored_events SET state=CAST(replace(state, '\"amount\":\"60000\"', "
                "'\"amount\":\"70000\"') AS BLOB) WHERE topic='ledger:VenueLedger.FundsDeposited'")
    con.commit()
    con.close()
    before = sorted(os.listdir(tmp_path))
    run = cli("audit", "verify", "--db", target)
    assert run.code == 1 and run.stderr.startswith("TAMPERED: notification 3"), run.stderr
    assert sorted(os.listdir(tmp_path)) == before
    fresh = tmp_path / f"new {name}"
    assert cli("demo", "--db", fresh).code == 0
    assert cli("rebuild", "--db", fresh).code == 0
    assert cli("audit", "verify", "--db", fresh).code == 0
    # five wallet balances and the row of the AAVE supply
    assert rows(fresh, "SELECT COUNT(*) FROM view_balances") == [(6,)]
    assert sorted(os.listdir(tmp_path)) == sorted([*before, fresh.name])


def test_sqlite_urls_are_unquoted_and_a_query_is_refused() -> None:
    assert parse_url("sqlite:///a%3Fb%23c%25%20%C3%A9.db").path == "a?b#c% é.db"
    assert parse_url("sqlite:////abs/q%3F.db").path == "/abs/q?.db"
    for url in ("sqlite:///q?evil.db", "sqlite:///h#x.db"):
        with pytest.raises(StoreError, match="takes no query or fragment"):
            parse_url(url)


def test_a_backtest_db_path_with_uri_characters_stays_that_path() -> None:
    from ledger.cli_backtest import _db_url

    for name in ("b?x #.db", "50%.db", "/abs/h#x.db"):
        assert parse_url(_db_url(name)).path == name


# ---- one writer at a time -----------------------------------------------------------------------------


def hold(db: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), mode], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n", proc.stderr
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    _out, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err


def test_a_second_writer_process_is_refused_naming_the_holder(demo: Path, tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    shutil.copy(demo, db)
    export = tmp_path / "x.jsonl"
    assert cli("audit", "export", "--db", demo, "--out", export).code == 0
    holder = hold(db, "create")
    try:
        for args in (["rebuild", "--db", db], ["demo", "--db", db, "--force"],
                     ["audit", "import", "--db", db, "--from", export],
                     ["backtest", "--days", "1", "--db", db, "--force", "--report", tmp_path / "r"]):
            err = one_error_line(cli(*args))
            assert f"is being written by process {holder.pid} (`-c create`, since 20" in err, err
            assert "one writer at a time" in err
        # a second engine in another process: refused at its first write, nothing stored
        second = subprocess.run([sys.executable, "-c", HOLDER, str(db), "append"], cwd=ROOT, input="\n",
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert second.returncode == 1 and f"is being written by process {holder.pid}" in second.stderr
        # readers are not writers
        assert cli("summary", "--db", db).code == 0
        assert cli("audit", "verify", "--db", db).code == 0
    finally:
        release(holder)
    assert not Path(f"{db}.lock").exists()
    assert rows(db, "SELECT COUNT(*) FROM stored_events") == [(40,)]
    assert cli("rebuild", "--db", db).code == 0  # free again
    assert not Path(f"{db}.lock").exists()


# ---- anchors ------------------------------------------------------------------------------------------


def test_anchor_refuses_a_log_that_does_not_verify(demo: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    shutil.copy(demo, db)
    good = cli("audit", "anchor", "--db", db)
    assert good.code == 0 and json.loads(good.stdout)["events"] == 40
    (stream,) = rows(db, "SELECT originator_id FROM stored_events WHERE rowid=5")[0]
    (after,) = rows(db, "SELECT MIN(rowid) FROM stored_events WHERE originator_id=? AND rowid>5",
                    (stream,))[0]
    con = sqlite3.connect(db)
    con.execute("DELETE FROM stored_events WHERE rowid=5")
    con.commit()
    con.close()
    run = cli("audit", "anchor", "--db", db)
    assert one_error_line(run, 1).startswith(
        f"error: not anchored: the log does not verify: notification {after}, stream ")
    assert "missing event" in run.stderr
    assert run.stdout == ""


# ---- cipher keys -------------------------------------------------------------------------------------


def test_a_missing_or_wrong_cipher_key_is_one_line_everywhere_and_changes_nothing(tmp_path: Path) -> None:
    key, other = AESCipher.create_key(32), AESCipher.create_key(32)
    db = tmp_path / "e.db"
    assert cli("demo", "--db", db, env={"LEDGER_CIPHER_KEY": key}).code == 0
    assert cli("rebuild", "--db", db, env={"LEDGER_CIPHER_KEY": key}).code == 0
    execute_checkpoint(db)
    views = rows(db, "SELECT * FROM view_balances ORDER BY 1, 2, 3")
    assert len(views) == 6
    digest = sha256(db)
    commands = [["summary"], ["digest"], ["rebuild"], ["replay", "state", "--cache", tmp_path / "c.db"],
                ["replay", "index", "--cache", tmp_path / "c.db"],
                ["audit", "export", "--out", tmp_path / "x.jsonl"], ["audit", "instruction", "i-1"],
                ["audit", "anchor"], ["audit", "verify"], ["audit", "events"]]
    for env in ({"LEDGER_CIPHER_KEY": None}, {"LEDGER_CIPHER_KEY": other}):
        for args in commands:
            err = one_error_line(cli(*args, "--db", db, env=env))
            assert "neither the first nor the last event" in err and "LEDGER_CIPHER_KEY" in err, (args, err)
        err = one_error_line(cli("replay", "diff", db, db, env=env))
        assert "neither the first nor the last event" in err
    assert sha256(db) == digest
    assert rows(db, "SELECT * FROM view_balances ORDER BY 1, 2, 3") == views
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]


def test_rebuild_leaves_the_views_as_they_were_when_a_row_cannot_be_read(demo: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(demo, db)
    assert cli("rebuild", "--db", db).code == 0
    before = rows(db, "SELECT * FROM view_balances ORDER BY 1, 2, 3")
    tracking = rows(db, "SELECT * FROM view_tracking")
    con = sqlite3.connect(db)
    con.execute("UPDATE stored_events SET state=x'00' WHERE rowid=20")
    con.commit()
    con.close()
    err = one_error_line(cli("rebuild", "--db", db))
    assert "cannot decode notification 20" in err
    assert rows(db, "SELECT * FROM view_balances ORDER BY 1, 2, 3") == before and len(before) == 6
    assert rows(db, "SELECT * FROM view_tracking") == tracking


# ---- --db: never replace what is not a ledger ------------------------------------------------------------


def test_db_options_replace_only_a_ledger_and_say_so(demo: Path, tmp_path: Path) -> None:
    db = tmp_path / "ledger-of-record.db"
    shutil.copy(demo, db)
    record = sha256(db)
    err = one_error_line(cli("demo", "--db", db))
    assert err == f"error: {db} already holds a ledger (40 events); --force replaces it\n"
    assert sha256(db) == record
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for args in (["demo", "--db", notes], ["demo", "--db", notes, "--force"],
                 ["backtest", "--days", "1", "--force", "--db", notes, "--report", tmp_path / "r"]):
        err = one_error_line(cli(*args))
        assert err.startswith(f"error: {notes} is not a SQLite database: not replaced"), err
        assert notes.read_text() == "my notes\n"
    folder = tmp_path / "adir"
    folder.mkdir()
    err = one_error_line(cli("demo", "--db", folder))
    assert err == f"error: {folder} is a directory, not a ledger database\n"
    run = cli("demo", "--db", db, "--force")
    assert run.code == 0 and run.stderr == f"replaced the ledger {db} (40 events)\n"
    run = cli("backtest", "--days", "1", "--force", "--db", db, "--report", tmp_path / "r")
    assert run.code == 0 and run.stderr == f"replaced the ledger {db} (40 events)\n", run.stderr
    assert not (tmp_path / "r").exists() or (tmp_path / "r").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".db", ".txt", "")) == [
        "adir", "ledger-of-record.db", "notes.txt", "r"]


# ---- a full disk ------------------------------------------------------------------------------------------


def in_a_mount_namespace(tmp_path: Path, mount: str, script: str) -> dict[str, str]:
    """Run `script` (sh, `$LEDGER` is the CLI) in `tmp_path/mnt` after `mount` (sh, `$DIR` is that
    folder) in a mount namespace of its own (unshare): nothing outside sees the mount and it vanishes
    with the process. What each part prints after a line `### name` is returned under that name."""
    folder = tmp_path / "mnt"
    folder.mkdir(exist_ok=True)
    ledger = f"{sys.executable} -m ledger.cli"
    body = f'DIR="{folder}"; {mount} && cd "{folder}" && {script}'
    run = subprocess.run(["unshare", "-rm", "sh", "-c", body], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGER": ledger}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    parts = (text.split("\n", 1) for text in run.stdout.split("### ")[1:])
    return {name: rest for name, rest in parts}


@pytest.mark.slow  # eight processes (~15 s on a loaded machine)
def test_a_full_disk_is_named_cleaned_up_after_and_recovered_from(demo: Path, tmp_path: Path) -> None:
    assert cli("audit", "export", "--db", demo, "--out", tmp_path / "e.jsonl").code == 0
    got = in_a_mount_namespace(tmp_path, 'mount -t tmpfs -o size=400k tmpfs "$DIR"', f"""
        head -c 330000 /dev/zero > pad
        echo "### backtest"; $LEDGER backtest --days 4 --db b.db --report rep 2>&1
        head -c 300000 /dev/zero > pad
        echo "### demo"; $LEDGER demo --db d.db 2>&1 >/dev/null
        echo "### import"; $LEDGER audit import --db i.db --from "{tmp_path / 'e.jsonl'}" 2>&1
        head -c 200000 /dev/zero > pad2 2>/dev/null
        for f in jsonl parquet; do
            echo "### export $f"; $LEDGER audit export --db "{demo}" --out x.$f 2>&1; done
        echo "### left"; ls -A
        rm pad pad2
        echo "### after"; $LEDGER demo --db d.db 2>&1 >/dev/null; ls -A
    """)
    assert got["backtest"].startswith("error: cannot write to sqlite:///b.db: database or disk is full"), got
    assert got["backtest"].count("\n") == 1 and "reload and retry" not in got["backtest"]
    assert got["backtest"].endswith("(the partial ledger b.db was removed)\n"), got["backtest"]
    assert got["demo"] == "error: cannot write to sqlite:///d.db: database or disk is full\n"
    assert got["import"].startswith("error: ") and "disk is full" in got["import"], got["import"]
    assert got["import"].count("\n") == 1
    for f in ("jsonl", "parquet"):
        text = got[f"export {f}"]
        assert text.startswith(f"error: x.{f}: ") and "No space left on device" in text, text
        assert text.count("\n") == 1
    assert got["left"].split() == ["pad", "pad2"]  # no ledger, no .part folder, no -wal or -shm
    assert got["after"].split() == ["d.db"]


# ---- read-only media ---------------------------------------------------------------------------------------


@pytest.mark.slow  # seven processes
def test_a_ledger_on_a_read_only_mount_is_read_and_nothing_is_created(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    shutil.copy(demo, tmp_path / "mnt" / "d.db")
    got = in_a_mount_namespace(tmp_path, 'mount --bind "$DIR" "$DIR" && mount -o remount,bind,ro "$DIR"', f"""
        for c in "audit verify" "audit anchor" "audit events --limit 1" summary "replay state"; do
            echo "### $c"; $LEDGER $c --db d.db >/dev/null 2>&1; echo $?; done
        echo "### export"; $LEDGER audit export --db d.db --out "{tmp_path / 'x.jsonl'}" 2>&1
        echo "### rebuild"; $LEDGER rebuild --db d.db 2>&1
        echo "### left"; ls -A
    """)
    for command in ("audit verify", "audit anchor", "audit events --limit 1", "summary", "replay state"):
        assert got[command] == "0\n", (command, got[command])
    assert got["export"] == f"exported 40 events to {tmp_path / 'x.jsonl'} (jsonl)\n"
    assert got["rebuild"] == ("error: cannot write d.db: the file is read-only (reading commands such as "
                              "`summary` and `audit` open it read-only)\n")
    assert got["left"].split() == ["d.db"]


def test_reading_commands_leave_no_wal_or_shm_beside_the_ledger(demo: Path, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    shutil.copy(demo, db)
    # real processes: one that ends without closing its connections is what left them behind
    for args, left in ((["summary"], ["d.db"]), (["audit", "verify"], ["d.db"]),
                       (["replay", "state"], ["d.db", "d.db.states"])):
        assert ledger_process(*args, "--db", db).returncode == 0, args
        assert sorted(p.name for p in tmp_path.iterdir()) == left, args


def test_an_engine_that_closed_lets_another_process_write(tmp_path: Path) -> None:
    """`engine.close()` ends the session: the writer lock goes with it (it used to stay until the
    process ended, so a notebook that had run a backtest kept `ledger rebuild` out)."""
    import asyncio

    from ledger.engine import EventDrivenStrategyEngine

    db = tmp_path / "nb.db"
    engine = EventDrivenStrategyEngine({"execution_mode": "backtest", "ledger": {"url": f"sqlite:///{db}"},
                                        "initial_balances": {"binance": {"USDT": 1000}}})
    asyncio.run(engine.advance_to("2024-01-01T00:00:00Z", {"eth_usd_price": "3000"}))
    engine.close()
    other = subprocess.run([sys.executable, "-m", "ledger.cli", "rebuild", "--db", str(db)], cwd=ROOT,
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    assert engine.summary()["events"] > 0  # the closed engine still reads


def test_a_ledger_refused_at_open_leaves_nothing_open(tmp_path: Path) -> None:
    """A wrong cipher key refused when the ledger is opened closes what was opened: no -wal or -shm
    waits beside the file for the garbage collector (in a process that goes on, the full suite saw them)."""
    import gc

    key, other = AESCipher.create_key(32), AESCipher.create_key(32)
    db = tmp_path / "k.db"
    assert cli("demo", "--db", db, env={"LEDGER_CIPHER_KEY": key}).code == 0
    gc.disable()
    try:
        for args in (["rebuild"], ["summary"]):
            one_error_line(cli(*args, "--db", db, env={"LEDGER_CIPHER_KEY": other}))
            assert sorted(p.name for p in tmp_path.iterdir()) == ["k.db"], args
    finally:
        gc.enable()
