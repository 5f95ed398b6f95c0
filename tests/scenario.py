"""A deterministic multi-venue event scenario shared by the view, tamper and determinism tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from ledger.app import Ledger
from ledger.demo import run_demo

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def write_scenario(ledger: Ledger, days: int = 2) -> None:
    """The demo session (spot, perp, funding, transfer, AAVE, gas), then more trading after it."""
    run_demo(ledger, days=days)
    from aggregates.session import Session

    session = Session.start("after-demo", "backtest", "{}", "-", "-", "-", 1, "test", T0)
    ledger.start_session(session)
    binance = ledger.get_venue("main", "binance")
    for i in range(12):
        ts = T0 + timedelta(days=days, hours=i)
        iid = f"extra-{i}"
        side = "sell" if i % 3 == 2 else "buy"
        binance.record_accepted(iid, {"kind": side.upper(), "instrument": "ETH/USDT", "side": side,
                                      "amount": "0.5", "wallet": "spot"},
                                {"eth_usd_price": D(3000 + 10 * i)}, ts)
        binance.record_submitted(iid, f"c{iid}", ts)
        binance.record_fill(iid, f"x{i}", "spot", "ETH/USDT", side, D("0.5"), D(3000 + 10 * i),
                            D("0.1"), "USDT", ts)
        ledger.save(binance)
    ledger.end_session("done", T0 + timedelta(days=days + 1))
