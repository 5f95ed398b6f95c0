"""pytest fixtures for the emulator: ``emulator``, ``venue`` (binance/bybit/okx) and ``client``.

Use them from a test module with ``pytest_plugins = ["tests.emulator.fixtures"]`` (import plain
helpers from :mod:`tests.emulator.helpers`). One emulator server is started per test process, on
first use, and reset before each test.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from .client import make_client
from .server import Emulator

VENUES = ("binance", "bybit", "okx")

_lock = threading.Lock()
_shared: Emulator | None = None


def shared_emulator() -> Emulator:
    """The process-wide running emulator (started lazily, stopped at interpreter exit)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = Emulator().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The running emulator with fresh, seeded state (balances, mid prices) and no faults."""
    emu = shared_emulator()
    emu.reset()
    yield emu
    emu.faults.clear()
    emu.clock.set_source(None)
    emu.clock.offset_ms = 0


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(emulator: Emulator, venue: str) -> AsyncIterator[Any]:
    """An async ccxt client of ``venue`` talking TLS to the emulator, markets loaded."""
    ex = make_client(venue, emulator)
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()
