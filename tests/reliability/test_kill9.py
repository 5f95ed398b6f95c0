"""kill -9 during appends, with the SQL projector running: nothing acknowledged is lost or
duplicated, the chain holds and the views equal a rebuild (SPEC §9, §12.20)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ledger.app import Ledger
from projections import InMemoryProjection, SQLProjection
from replays.verify import verify_chain

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("writer_child.py")
KILLS = 50


class Child:
    """A child process whose complete stdout lines are collected by a reader thread."""

    def __init__(self, role: str, db: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, str(CHILD), role, str(db)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):  # a line cut by the kill is not an acknowledgement
                self.lines.append(raw.decode().strip())
                self.first.set()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.thread.join(timeout=5)
        assert self.proc.stderr is not None
        errors = self.proc.stderr.read().decode()
        assert "Traceback" not in errors, errors


def test_kill9_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(20240601)
    acked: set[int] = set()
    projector = Child("projector", db)
    kills = 0
    writer: Child | None = None
    try:
        while kills < KILLS:
            writer = Child("writer", db)
            assert writer.first.wait(30), "writer never acknowledged a batch"
            time.sleep(rng.uniform(0.0, 0.15))
            writer.kill()
            kills += 1
            acked |= {int(line.split()[1]) for line in writer.lines if line.startswith("ACK ")}
            writer = None
            if rng.random() < 0.3:
                projector.kill()
                kills += 1
                projector = Child("projector", db)
                assert projector.first.wait(30)
    finally:
        if writer is not None:
            writer.kill()
        projector.kill()

    ledger = Ledger.open(db)
    deposits: Counter[str] = Counter()
    fills: Counter[str] = Counter()
    for _, event in ledger.iter_events():
        if type(event).__name__ == "FundsDeposited":
            deposits[event.deposit_id] += 1
        elif type(event).__name__ == "OrderFilled":
            fills[event.trade_id] += 1
    assert kills >= KILLS and len(acked) > KILLS
    assert all(deposits[f"b{n}"] == 1 and fills[f"t{n}"] == 1 for n in acked), "acknowledged batch lost"
    assert max(deposits.values()) == 1 and max(fills.values()) == 1, "duplicated event"
    stored = {int(k[1:]) for k in deposits}
    assert stored == set(range(len(stored))), "batches are not contiguous"
    assert set(fills) == {f"t{n}" for n in stored}, "a batch was half written"
    assert verify_chain(ledger).ok
    assert ledger.get_venue("main", "bybit").version == 1 + 3 * len(stored)

    view = SQLProjection.for_ledger(ledger)
    view.run(ledger)
    rebuilt = InMemoryProjection()
    rebuilt.catch_up(ledger)
    assert view.state.comparable() == rebuilt.state.comparable()
    assert view.position == ledger.max_notification_id()
    assert len(view.fills()) == len(stored)
