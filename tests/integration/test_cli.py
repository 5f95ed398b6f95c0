"""The `ledger` command: one clear line and a non-zero exit for user errors, exit 1 on tampering."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_demo_writes_a_verified_log_and_prints_its_digest(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    run = ledger("demo", "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["verified"] and len(data["digest"]) == 64 and data["fills"] == 2
    assert ledger("digest", "--db", str(db)).stdout.strip() == data["digest"]
    assert ledger("audit", "verify", "--db", str(db)).returncode == 0
    assert ledger("rebuild", "--db", str(db)).returncode == 0


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (["audit", "verify", "--db", str(tmp_path / "absent.db")],
                 ["summary", "--db", "mysql://h/x"],
                 ["digest", "--db", "postgresql://u:hunter2@127.0.0.1:1/x"]):
        run = ledger(*args)
        assert run.returncode == 2, args
        assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
        assert "Traceback" not in run.stderr and "hunter2" not in run.stderr
    assert not (tmp_path / "absent.db").exists()


def test_verify_exits_1_naming_the_first_bad_event_and_checks_anchors(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert ledger("demo", "--db", str(db)).returncode == 0
    anchor = ledger("audit", "anchor", "--db", str(db)).stdout.strip()
    assert json.loads(anchor)["events"] == 40
    assert ledger("audit", "verify", "--db", str(db), "--anchor", anchor).returncode == 0
    con = sqlite3.connect(db)
    con.execute("UPDATE stored_events SET state=CAST(replace(state, '\"amount\":\"60000\"', "
                "'\"amount\":\"70000\"') AS BLOB) WHERE topic='ledger:VenueLedger.FundsDeposited'")
    con.commit()
    con.close()
    run = ledger("audit", "verify", "--db", str(db))
    assert run.returncode == 1
    assert run.stderr.startswith("TAMPERED: notification 3, stream ")
    assert "version 2: digest does not match" in run.stderr


def test_help_answers() -> None:
    run = ledger("--help")
    assert run.returncode == 0 and "audit" in run.stdout and "demo" in run.stdout


def test_usage_errors_of_every_command_are_one_error_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What the parser refuses (a value of the wrong type, an unknown option or command, a missing option
    or argument, an extra argument) was a multi-line box: now one `error: <option>: <what>` line on
    stderr and exit 2, for commands and subcommands alike (the entry point, in process). `--help` and
    the bare command still print the help; Ctrl-C exits 130 without a word."""
    from ledger import cli

    def main(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["ledger", *args])
        with pytest.raises(SystemExit) as done:
            cli.main()
        out, err = capsys.readouterr()
        return int(done.value.code or 0), out, err

    cases = [
        (["backtest", "--days", "abc"], "error: --days: 'abc' is not a valid integer"),
        (["backtest", "--seed", "x"], "error: --seed: 'x' is not a valid integer"),
        (["backtest", "--days", "1.5"], "error: --days: '1.5' is not a valid integer"),
        (["backtest", "--bogus"], "error: --bogus: no such option of `ledger backtest`"),
        (["backtest", "--dayz", "2"], "error: --dayz: no such option of `ledger backtest`; did you mean"),
        (["backtest", "--days"], "error: --days: requires an argument"),
        (["replay", "state", "--at", "x"], "error: --at: 'x' is not a valid integer"),
        (["replay", "diff", "a.db"], "error: b: missing (a required argument of `ledger replay diff`)"),
        (["audit", "verify"], "error: --db: missing (a required option of `ledger audit verify`)"),
        (["audit", "instruction", "--db", "x.db"], "error: ID: missing"),
        (["audit", "events", "--db", "x.db", "--json=1"], "error: --json: does not take a value"),
        (["strategies", "eth_basis", "extra"], "error: ledger strategies: got unexpected extra argument"),
        (["summary", "--wide", "--db"], "error: --db: requires an argument"),
        (["audit", "nothing"], "error: ledger audit: no such command 'nothing'"),
        (["nothing"], "error: ledger: no such command 'nothing'"),
    ]
    for args, start in cases:
        code, out, err = main(*args)
        assert (code, out) == (2, ""), (args, out, err)
        assert err.startswith(start) and err.count("\n") == 1, (args, err)
    code, out, err = main("backtest", "--help")
    assert code == 0 and "--days" in out and err == ""
    code, out, _ = main("audit")
    assert code == 2 and "verify" in out  # no arguments: the help, as before
    monkeypatch.setenv("COLUMNS", "0")  # the help printed nothing at all: now 40 columns
    code, out, err = main("audit", "--help")
    assert code == 0 and "verify" in out and max(len(line) for line in out.splitlines()) <= 40, out

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("replays.audit.open_readonly", interrupted)  # `digest` only reads
    assert main("digest", "--db", "x.db") == (130, "", "")
