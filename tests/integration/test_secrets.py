"""Secrets in a backtest's config reach no stored byte, no `audit events --json` line and no export
(JSONL, CSV, Parquet, the per-kind folder); unknown keys are named in one warning; the run still reruns
identically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ledger.cli import app
from tests.unit.test_recorded_config import (  # the same made-up secrets as the unit tests
    AUTH_TOKEN,
    DATA_PASSWORD,
    DATA_TOKEN,
    EXCHANGE_KEY,
    EXCHANGE_PASSWORD,
    EXCHANGE_SECRET,
    STORE_PASSWORD,
)

SECRETS = (STORE_PASSWORD, EXCHANGE_KEY, EXCHANGE_SECRET, EXCHANGE_PASSWORD, AUTH_TOKEN, DATA_PASSWORD,
           DATA_TOKEN)
CONFIG = f"""
ledger_url = "postgresql://desk:{STORE_PASSWORD}@127.0.0.1:5432/test"
auth_token = "{AUTH_TOKEN}"
mystery_knob = 3

[exchanges.binance]
apiKey = "{EXCHANGE_KEY}"
secret = "{EXCHANGE_SECRET}"
password = "{EXCHANGE_PASSWORD}"

[data]
source = "https://user:{DATA_PASSWORD}@data.example/feed?token={DATA_TOKEN}&x=1"
"""


def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def leaked(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [s for s in SECRETS if s in text]


def test_secrets_in_a_config_reach_no_byte_of_the_ledger_its_audit_or_its_exports(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(CONFIG)
    run = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "backtest", "--days", "2", "--db", "a.db", "--report", "rep",
         "--config", "cfg.toml", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warning_lines = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning_lines) == 1, run.stderr
    for name in ("auth_token", "mystery_knob", "exchanges"):
        assert name in warning_lines[0]
    assert "Traceback" not in run.stderr and not leaked(run.stdout + run.stderr)

    db = tmp_path / "a.db"
    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("a.db*")))
    assert b"data.example/feed?token=***" in raw  # the stored events are readable text: the check bites
    assert not leaked(raw)

    code, events = cli("audit", "events", "--db", db, "--json")
    assert code == 0 and "SessionStarted" in events and not leaked(events)
    (started,) = [json.loads(line) for line in events.splitlines() if '"SessionStarted"' in line]
    recorded = json.loads(started["event"]["config"])
    assert recorded["data"]["source"] == "https://***@data.example/feed?token=***&x=1"
    assert not {"ledger_url", "auth_token", "mystery_knob", "exchanges", "ledger"} & set(recorded)

    outputs = []
    for out, extra in (("e.jsonl", ()), ("e.csv", ("--with-bytes",)), ("e.parquet", ()), ("kinds", ())):
        code, _ = cli("audit", "export", "--db", db, "--out", tmp_path / out, *extra)
        assert code == 0
        target = tmp_path / out
        outputs += [target] if target.is_file() else sorted(target.iterdir())
    import pyarrow.parquet as pq

    for path in outputs:
        assert not leaked(path.read_bytes()), path
        if path.suffix == ".parquet":  # compressed pages: the decoded values too
            assert not leaked(json.dumps(pq.read_table(path).to_pylist(), default=str)), path

    code, rerun = cli("replay", "rerun", "--db", db, "--json")
    assert code == 0, rerun
    assert json.loads(rerun)["identical"] is True
