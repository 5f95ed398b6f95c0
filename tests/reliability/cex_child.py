"""Crash-test child for tests/reliability/test_cex_kill9.py: the live engine on a file SQLite ledger
places one market order at an emulated venue and is killed with SIGKILL while the venue holds the reply.

`cex_child.py VENUE DB PORT CAFILE`; the venue's API keys come in the environment (`BINANCE_API_KEY`,
…), as in a live run. It talks TLS to the parent's emulator (127.0.0.1:PORT, certificates of the test
CA in CAFILE) under the venues' real hostnames, the way the tests' clients do. It prints `READY` once
reconciled (opening balances adopted), then `RESULT <status>` if it ever gets the reply.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ORDER = {
    "venue_type": "cex",
    "trade_type": "PERP",
    "pair": "ETH/USDT:USDT",
    "side": "LONG",
    "amount": "1",
    "instruction_id": "kill9-order",
}
LIVE = {
    "timeout_ms": 60_000,  # the child must still be waiting for the reply when it is killed
    "lookup_attempts": 3,
    "lookup_backoff_s": 0.05,
    "retry_backoff_s": 0.01,
    "fill_poll_s": 0.02,
    "fill_timeout_s": 3,
    "poll_interval_s": 0,
}


def loopback_factory(port: int, cafile: str) -> Any:
    """Client factory: the tests' emulator client, wired to a server this process did not start."""
    from tests.emulator.client import make_client
    from tests.emulator.signing import ApiCredentials
    from tests.emulator.tls import LoopbackPKI

    pki = LoopbackPKI(ca_pem=Path(cafile), cert_pem=Path(cafile), key_pem=Path(cafile))

    def build(venue: str, settings: dict[str, Any]) -> Any:
        creds: dict[str, str] = {k: settings[k] for k in ("apiKey", "secret", "password") if k in settings}
        remote = SimpleNamespace(
            tls_port=port,
            pki=pki,
            credentials={venue: ApiCredentials(creds["apiKey"], creds["secret"], creds.get("password", ""))},
        )
        return make_client(
            venue,
            remote,  # type: ignore[arg-type]  # duck-typed: port, CA and keys are all it reads
            credentials=creds,
            options=settings["options"],
            enable_rate_limit=False,
            timeout_ms=settings["timeout"],
        )

    return build


async def main(venue: str, db: str, port: int, cafile: str) -> None:
    from ledger.live import live_config, open_engine, reconcile

    config = live_config({"ledger": {"url": f"sqlite:///{db}"}, "venues": [venue], "live": dict(LIVE)})
    engine = open_engine(config, loopback_factory(port, cafile))
    report = await reconcile(engine)
    if report[venue]["error"]:
        raise SystemExit(f"reconcile failed: {report[venue]['error']}")
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    result = await engine.execute_trade_with_interface({**ORDER, "venue": venue}, {})
    sys.stdout.write(f"RESULT {result['status']}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    assert all(os.environ.get(f"{sys.argv[1].upper()}_{k}") for k in ("API_KEY", "SECRET"))
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
