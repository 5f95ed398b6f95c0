"""A PostgreSQL writer process: `pg_child.py URL VENUE SAVES START_FILE` appends SAVES deposits to
VENUE, reloading and retrying on ConcurrencyError, and prints `DONE <conflicts>`."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def main(url: str, venue: str, saves: int, start_file: str, tag: str, checkpoint_every: int = 0) -> None:
    """With `checkpoint_every`, the writes belong to a session of this process that checkpoints every
    that many events and ends at the end (checkpoints interleaved with the other writers')."""
    from aggregates import ConcurrencyError, LedgerError, Session, VenueLedger
    from ledger.app import Ledger

    ledger = Ledger.open(url, create=True, synchronous="FULL",
                         checkpoint_every=checkpoint_every or 10_000)
    if checkpoint_every:
        ledger.start_session(Session.start(f"s-{tag}", "live", "{}", "-", "-", "-", 0, "test", T0))
    while not Path(start_file).exists():
        time.sleep(0.001)
    conflicts = 0
    for i in range(saves):
        while True:
            try:
                agg = ledger.get_venue("main", venue)
            except LedgerError:
                agg = VenueLedger.open("main", venue, "cex", T0)
            agg.record_deposit(f"{tag}-{i}", "spot", "USDT", D("1"), T0 + timedelta(seconds=i))
            try:
                ledger.save(agg)
                break
            except ConcurrencyError:
                conflicts += 1
    if checkpoint_every:
        ledger.end_session("completed", T0 + timedelta(seconds=saves))
    print(f"DONE {conflicts}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], *map(int, sys.argv[6:7]))
