"""kill -9 of a live engine between OrderSubmitted and the venue's reply (SPEC §9): the order intent
is durable, the restarted engine finds the order by client id and records its fills exactly once,
the venue holds one order, and the projections equal a rebuild and the venue's account.

The emulator runs in this process; the child (`cex_child.py`) reaches it over TLS like any client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.live import live_backend, live_config, open_engine, reconcile
from ledger.testing import check_conservation
from tests.emulator import Emulator
from tests.emulator.helpers import orders_with_client_id
from tests.integration.test_live_cex import FAST, assert_matches_venue, check_log, factory, keys, order

pytest_plugins = ["tests.emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("cex_child.py")
IID = "kill9-order"


class Child:
    """The live engine in a child process; its complete stdout lines are collected by a thread."""

    def __init__(self, venue: str, db: Path, emulator: Emulator) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            **{k.upper(): v for k, v in keys(emulator, (venue,)).items()},
        }
        args = [sys.executable, str(CHILD), venue, str(db), str(emulator.tls_port), str(emulator.pki.ca_pem)]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().strip())
            if raw.startswith(b"READY"):
                self.ready.set()

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


def stored_names(db: Path) -> list[str]:
    """Event names stored for the child's order, as another process reads them."""
    reader = Ledger.open(f"sqlite:///{db}", synchronous="NORMAL")
    try:
        return [
            type(e).__name__ for _n, e in reader.iter_events() if getattr(e, "instruction_id", None) == IID
        ]
    finally:
        reader.close()


def wait_for(condition: object, what: str, child: Child, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if child.proc.poll() is not None:
            pytest.fail(f"the child exited ({child.proc.returncode}) before {what}: {child.stderr()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"timed out waiting for {what}: {child.lines}")
        time.sleep(0.01)


async def test_kill9_between_submit_and_reply_records_the_fill_once(
    emulator: Emulator, venue: str, tmp_path: Path
) -> None:
    """The venue accepts the order and holds the reply; the child is SIGKILLed once OrderSubmitted is
    durable; the restart reconciles the order by client id: one order at the venue, one fill set."""
    db = tmp_path / "live.db"
    emulator.inject(venue, "create_order", "delay", apply=True, delay_s=20, max_hold_s=30)
    child = Child(venue, db, emulator)
    try:
        assert child.ready.wait(60), f"the child never got ready: {child.lines}"
        wait_for(lambda: "OrderSubmitted" in stored_names(db), "OrderSubmitted is stored", child)
        wait_for(lambda: emulator.inspect(venue)["orders"], "the venue has the order", child)
    finally:
        child.kill()
    assert child.proc.returncode == -signal.SIGKILL
    assert not any(line.startswith("RESULT") for line in child.lines)  # the reply never arrived
    assert "Traceback" not in child.stderr()
    assert stored_names(db) == ["InstructionAccepted", "OrderSubmitted"]
    [placed] = emulator.inspect(venue)["orders"]

    config = {
        "ledger": {"url": f"sqlite:///{db}"},
        "venues": [venue],
        **keys(emulator, (venue,)),
        "live": dict(FAST),
    }
    engine = open_engine(live_config(config), factory(emulator))
    try:
        refused = await engine.execute_trade_with_interface(order(venue), {})
        assert (refused["status"], refused["code"]) == ("REJECTED", "unresolved")  # fail closed
        report = await reconcile(engine)
        assert report[venue]["resolved"] == [IID] and report[venue]["unresolved"] == []
        assert (await reconcile(engine))[venue]["fills_recorded"] == 0
        events = [e for _n, e in engine.ledger.iter_events() if getattr(e, "instruction_id", None) == IID]
        names = [type(e).__name__ for e in events]
        assert names[:3] == ["InstructionAccepted", "OrderSubmitted", "OrderReconciled"]
        fills = [e for e in events if type(e).__name__ == "OrderFilled"]
        venue_trades = [t for t in emulator.inspect(venue)["trades"] if t.order_id == placed.order_id]
        assert sorted(f.trade_id for f in fills) == sorted(t.trade_id for t in venue_trades) != []
        assert sum(f.quantity for f in fills) == 1  # base units (OKX contracts converted)
        [submitted] = [e for e in events if type(e).__name__ == "OrderSubmitted"]
        assert len(orders_with_client_id(emulator, venue, submitted.client_order_id)) == 1
        assert len(emulator.inspect(venue)["orders"]) == 1
        assert_matches_venue(engine, emulator, venue)
        check_log(engine)  # lifecycle grammar, no floats, projection equals a rebuild
        check_conservation(engine)
    finally:
        backend = live_backend(engine)
        if backend is not None:
            await backend.close()
        engine.close(views=False)
