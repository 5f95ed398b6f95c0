"""A scripted, deterministic basis-trade session written straight through the aggregates.

It exercises every book of the ledger (spot, perp, funding, a transfer between venues, AAVE
supply with interest, gas) so `make demo` shows a real log, its views and its digest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from aggregates.ids import client_order_id, instruction_id, transfer_id
from aggregates.session import Session
from aggregates.venue import VenueLedger
from ledger.app import Ledger, config_digest

START = datetime(2024, 6, 1, tzinfo=UTC)
SESSION = "demo-basis-2024-06-01"


def run_demo(ledger: Ledger, days: int = 3) -> None:
    config = '{"strategy":"demo_basis","capital":"100000"}'
    session = Session.start(SESSION, "backtest", config, config_digest(config), "scripted", "-",
                            0, "demo", START)
    ledger.start_session(session)
    binance = VenueLedger.open("main", "binance", "cex", START)
    bybit = VenueLedger.open("main", "bybit", "cex", START)
    chain = VenueLedger.open("main", "ethereum", "onchain", START)
    binance.record_deposit("seed-binance", "spot", "USDT", D("60000"), START)
    bybit.record_deposit("seed-bybit", "unified", "USDT", D("20000"), START)
    chain.record_deposit("seed-chain", "0xdemo", "ETH", D("1"), START)
    chain.record_deposit("seed-chain-usdt", "0xdemo", "USDT", D("20000"), START)
    ledger.save(binance, bybit, chain)

    seq = iter(range(1, 10_000))
    market = {"eth_usd_price": D("3000"), "binance_spot_price": D("3000"),
              "bybit_perp_price": D("3010")}
    buy = instruction_id(SESSION, next(seq))
    binance.record_accepted(buy, {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy",
                                  "amount": "10", "wallet": "spot"}, market, START)
    binance.record_submitted(buy, client_order_id(buy), START)
    binance.record_fill(buy, "sim-1", "spot", "ETH/USDT", "buy", D("10"), D("3001.5"), D("3.0015"),
                        "USDT", START, reference_price=D("3000"), slippage_bps=D("5"))
    short = instruction_id(SESSION, next(seq))
    bybit.record_accepted(short, {"kind": "SHORT", "instrument": "ETH/USDT:USDT", "side": "sell",
                                  "amount": "10", "wallet": "unified"}, market, START)
    bybit.record_submitted(short, client_order_id(short), START)
    bybit.record_fill(short, "sim-2", "perp", "ETH/USDT:USDT", "sell", D("10"), D("3008.495"),
                      D("16.5467225"), "USDT", START, wallet="unified", reference_price=D("3010"),
                      slippage_bps=D("5"))
    ledger.save(binance, bybit)

    move = instruction_id(SESSION, next(seq))
    tid = transfer_id(move)
    binance.record_accepted(move, {"kind": "TRANSFER", "asset": "USDT", "amount": "5000",
                                   "wallet": "spot", "to_venue": "bybit"}, market, START)
    binance.record_transfer_sent(move, tid, "USDT", D("5000"), D("1"), "spot", "bybit", "unified",
                                 START)
    ledger.save(binance)
    bybit.record_transfer_received(tid, "binance", "unified", "USDT", D("5000"),
                                   START + timedelta(minutes=30))
    supply = instruction_id(SESSION, next(seq))
    chain.record_accepted(supply, {"kind": "AAVE_SUPPLY", "asset": "USDT", "amount": "20000",
                                   "wallet": "0xdemo"}, market, START)
    chain.record_tx_submitted(supply, "0x" + "ab" * 32, 0, 30_000_000_000, 1_000_000_000, 250_000,
                              "supply", START)
    chain.record_tx_confirmed(supply, "0x" + "ab" * 32, 20_000_000, "0x" + "cd" * 32, 180_000,
                              20_000_000_000, D("0.0036"), [{"kind": "supplied", "asset": "USDT",
                                                            "amount": "20000", "wallet": "0xdemo"}],
                              START + timedelta(seconds=12))
    ledger.save(bybit, chain)

    for step in range(1, days * 3 + 1):
        ts = START + timedelta(hours=8 * step)
        mark = D("3010") + D(step)
        bybit.record_funding("ETH/USDT:USDT", "unified", "USDT", D("0.0001"), mark, D("-10"),
                             D("10") * mark * D("0.0001"), ts)
        chain.record_interest(f"aave-usdt-{step}", "USDT", "supplied", D("1.3712"),
                              D("1.0701004") + D(step) * D("0.00007"), ts)
        ledger.save(bybit, chain)
    ledger.end_session("completed", START + timedelta(days=days))
