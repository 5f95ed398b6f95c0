"""Crash-test children: `writer DB` appends acknowledged batches forever; `projector DB` keeps the
SQL views up to date forever. Both are killed with SIGKILL by tests/reliability/test_kill9.py."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def writer(db: str) -> None:
    from aggregates import LedgerError, VenueLedger
    from ledger.app import Ledger

    ledger = Ledger.open(db, create=True, synchronous="FULL", snapshot_every=50)
    try:
        a, b = ledger.get_venue("main", "binance"), ledger.get_venue("main", "bybit")
    except LedgerError:
        a = VenueLedger.open("main", "binance", "cex", T0)
        b = VenueLedger.open("main", "bybit", "cex", T0)
    n = sum(1 for k in a.keys if k.startswith("deposit:b"))
    while True:
        ts = T0 + timedelta(seconds=n)
        a.record_deposit(f"b{n}", "spot", "USDT", D("10.01"), ts)
        iid = f"i{n}"
        b.record_accepted(iid, {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy",
                                "amount": "0.01", "wallet": "spot"}, {"eth_usd_price": D(3000 + n)}, ts)
        b.record_submitted(iid, f"c{n}", ts)
        b.record_fill(iid, f"t{n}", "spot", "ETH/USDT", "buy", D("0.01"), D(3000 + n), D("0.003"),
                      "USDT", ts)
        ledger.save(a, b)
        sys.stdout.write(f"ACK {n} {ledger.max_notification_id()}\n")
        sys.stdout.flush()
        n += 1


def projector(db: str) -> None:
    from ledger.app import Ledger
    from projections import SQLProjection

    ledger = Ledger.open(db, synchronous="FULL")
    view = SQLProjection.for_ledger(ledger)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        view.run(ledger, batch=7)
        time.sleep(0.002)


if __name__ == "__main__":
    {"writer": writer, "projector": projector}[sys.argv[1]](sys.argv[2])
