"""The NautilusTrader side of the backtest benchmark (SPEC §8); runs in bench/.venv-nautilus (CPython 3.12+).

    bench/.venv-nautilus/bin/python bench/nautilus/run_nautilus.py [--ticks N] [--every K]
                                                                  [--variant buy|roundtrip] [--seed S]

The classic `BacktestEngine`: one simulated venue (SIM, NETTING OMS, margin account), one FX instrument
(EUR/USD from nautilus's TestInstrumentProvider), synthetic quote ticks 100 ms apart (a seeded random walk
around 1.10000), the default risk engine on, and a Strategy that submits a market order on every K-th tick
(`buy`: always buy; `roundtrip`: alternate buy and sell, so every second order closes the NETTING position).
Nautilus's logger is bypassed by default (its faster case; `--log-level ERROR` to run it through the logger).
Only `engine.run()` is timed (building the ticks and the engine is not). Prints one JSON line:

    {"system": "nautilus", "variant": ..., "ticks": ..., "fills": ..., "seconds": ...,
     "ticks_per_s": ..., "fills_per_s": ...}

`fills` counts OrderFilled events seen by the strategy (`on_order_filled`); `orders_filled` and
`positions` are read from the engine's cache after the run as a cross-check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import warnings
from decimal import Decimal

import nautilus_trader
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, RiskEngineConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z, the same session start as ours
STEP_NS = 100_000_000  # 100 ms between ticks
TRADE_SIZE = Decimal("10000")  # EUR; the instrument's lot is 1,000


class EveryNConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    every: int = 10
    roundtrip: bool = False
    trade_size: Decimal = TRADE_SIZE


class EveryN(Strategy):
    """Submit a market order on every `every`-th quote tick; count the fills."""

    def __init__(self, config: EveryNConfig) -> None:
        super().__init__(config)
        self.ticks_seen = 0
        self.orders_sent = 0
        self.fills = 0
        self.instrument = None
        self.qty: Quantity | None = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.qty = self.instrument.make_qty(self.config.trade_size)
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        i = self.ticks_seen
        self.ticks_seen += 1
        if i % self.config.every:
            return
        side = OrderSide.SELL if self.config.roundtrip and self.orders_sent % 2 else OrderSide.BUY
        self.orders_sent += 1
        order = self.order_factory.market(instrument_id=self.config.instrument_id, order_side=side,
                                          quantity=self.qty)
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills += 1


def make_ticks(instrument_id: InstrumentId, n: int, seed: int) -> list[QuoteTick]:
    rng = random.Random(seed)
    size = Quantity.from_int(1_000_000)
    mid, half = 110_000, 1  # in 1e-5 units: 1.10000, half-spread 0.00001
    ticks = []
    append = ticks.append
    for i in range(n):
        mid += rng.choice((-1, 0, 1))
        mid = min(max(mid, 100_000), 120_000)
        ts = START_NS + i * STEP_NS
        append(QuoteTick(instrument_id=instrument_id,
                         bid_price=Price((mid - half) / 100_000, 5),
                         ask_price=Price((mid + half) / 100_000, 5),
                         bid_size=size, ask_size=size, ts_event=ts, ts_init=ts))
    return ticks


def peak_rss_mb() -> float | None:
    """This process's peak resident set (VmHWM), Linux only."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--variant", choices=("buy", "roundtrip"), default="buy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-level", default=None,
                    help="run nautilus's logger at this level (default: bypassed)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*utcnow.*")  # pandas 3 deprecation, from nautilus's run()

    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("BENCH-001"),
        # Nautilus's logger bypassed (nothing would print at ERROR anyway; bypassing is ~10-30 % faster,
        # so this is the peer's better case). --log-level runs it through the logger instead.
        logging=LoggingConfig(bypass_logging=True) if args.log_level is None
        else LoggingConfig(log_level=args.log_level),
        risk_engine=RiskEngineConfig(),  # the default risk engine, on
    ))
    sim = Venue("SIM")
    engine.add_venue(venue=sim, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     base_currency=USD, starting_balances=[Money(1_000_000_000, USD)])
    instrument = TestInstrumentProvider.default_fx_ccy("EUR/USD", sim)
    engine.add_instrument(instrument)
    engine.add_data(make_ticks(instrument.id, args.ticks, args.seed))
    strategy = EveryN(EveryNConfig(instrument_id=instrument.id, every=args.every,
                                   roundtrip=args.variant == "roundtrip"))
    engine.add_strategy(strategy)

    t0 = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - t0

    cache = engine.cache
    out = {
        "system": "nautilus", "variant": args.variant, "ticks": strategy.ticks_seen, "fills": strategy.fills,
        "seconds": round(seconds, 4),
        "ticks_per_s": round(strategy.ticks_seen / seconds, 1) if seconds else None,
        "fills_per_s": round(strategy.fills / seconds, 1) if seconds else None,
        "every": args.every, "orders": strategy.orders_sent,
        "orders_filled": len(cache.orders_closed()), "positions": len(cache.positions()),
        "peak_rss_mb": peak_rss_mb(), "logging": args.log_level or "bypass",
        "version": nautilus_trader.__version__, "python": sys.version.split()[0],
    }
    print(json.dumps(out), flush=True)
    sys.stderr.flush()
    # Tearing down an engine holding ~100k cached orders takes a while and measures nothing: leave now.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
