"""A seeded market generator realistic enough to backtest a basis trade (prices, basis, funding, AAVE, gas).

FIELDS (row keys; all `Decimal`):

- `eth_usd_price` (and `btc_usd_price` with `btc=True`): the index price, a log random walk with
  annualised volatility 60 % (BTC 50 %, correlated 0.8) plus rare jumps (about 6 a year, ±3-8 %).
- `{venue}_eth_spot_price`: index x (1 + venue noise within ±1 bp).
- `{venue}_eth_perp_price`: venue spot x (1 + basis); the basis is an Ornstein-Uhlenbeck process around
  a venue premium of 3-5 bp (half-life about 5 h), with a shock shared by the venues and one of its own.
- `gas_price_gwei`: mean-reverting lognormal around 10 gwei with occasional spikes (x2-6, decaying).
- `aave_{usdt,weth,weeth}_{supply,borrow}_apy`: mean-reverting APYs (USDT supply 4-9 %, borrow about
  1.25x supply; WETH about 2 % / 3 %; weETH about 0.05 % / 0.5 %).
- `aave_{asset}_{supply,borrow}_index`: liquidity and variable-borrow indexes (ray / 1e27) compounding
  every step at those APYs from realistic starting values (USDT supply 1.07).
- `weeth_eth_rate`: ETH per weETH, from 1.04, growing at `staking_apr` (about 3-4 %).

Funding points (not row keys): every 8 h at 00/08/16 UTC per venue and base, rate = 0.0001 + 0.3 x the
venue's premium over its mean (averaged over the interval) + noise, clamped to ±0.00075.

Floats carry the random draws only; every value is quantised to Decimal (prices 0.01, rates and
indexes 1e-12, funding 1e-8, gas 0.001), so the same seed gives the same digest in any process.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aggregates.values import MONEY
from ledger.marketdata.frame import DataError, FundingPoint, MarketData

HOUR = timedelta(hours=1)
YEAR_HOURS = 365.0 * 24.0
FUNDING_EVERY = timedelta(hours=8)
PRICE, RATE, FUNDING, GAS = Decimal("0.01"), Decimal("1e-12"), Decimal("1e-8"), Decimal("0.001")
INTERNAL = Decimal("1e-18")
FUNDING_CAP = 0.00075
PREMIUM = {"binance": 0.0003, "bybit": 0.0004, "okx": 0.0005}
# asset -> (supply APY mean, borrow/supply ratio or fixed borrow mean, supply index, borrow index)
FIELDS = {
    "{base}_usd_price": "index price of the underlying in USD (eth; btc with btc=True)",
    "{venue}_{base}_spot_price": "venue spot price: index x (1 + noise within 1 bp)",
    "{venue}_{base}_perp_price": "venue perpetual price: venue spot x (1 + OU basis around 3-5 bp)",
    "gas_price_gwei": "total gas price (base + tip) in gwei",
    "aave_{asset}_{side}_apy": "AAVE v3 supply/borrow APY, informational (asset usdt, weth, weeth)",
    "aave_{asset}_{side}_index": "AAVE v3 liquidity / variable-borrow index (ray / 1e27)",
    "weeth_eth_rate": "ETH per weETH; staking yield shows only through this rate",
    "staking_apr": "the staking APR driving weeth_eth_rate, informational",
}
AAVE = {
    "usdt": (0.065, None, 1.07, 1.10),
    "weth": (0.02, 0.03, 1.03, 1.05),
    "weeth": (0.0005, 0.005, 1.0002, 1.001),
}


def _q(x: float, quantum: Decimal) -> Decimal:
    return Decimal(x).quantize(quantum, context=MONEY)


def _grow(value: Decimal, annual: float, dt: float) -> Decimal:
    """Compound `value` at the annual rate `annual` over `dt` years, kept to 1e-18."""
    growth = _q(math.expm1(math.log1p(annual) * dt), INTERNAL)
    return MONEY.multiply(value, MONEY.add(Decimal(1), growth)).quantize(INTERNAL, context=MONEY)


class _OU:
    """Ornstein-Uhlenbeck with exact discretisation, so any step size is stable."""

    def __init__(self, mean: float, half_life_h: float, sd: float, start: float, h: float) -> None:
        kappa = math.log(2) / half_life_h
        self.mean, self.x = mean, start
        self.a = math.exp(-kappa * h)
        self.scale = sd * math.sqrt(1 - self.a * self.a)  # `sd` is the stationary deviation

    def step(self, shock: float) -> float:
        self.x = self.mean + (self.x - self.mean) * self.a + self.scale * shock
        return self.x


def _aligned_funding_after(ts: datetime) -> datetime:
    """The first 00/08/16 UTC boundary at or after `ts`."""
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    boundary = day
    while boundary < ts:
        boundary += FUNDING_EVERY
    return boundary


def generate(
    seed: int, start: datetime, end: datetime, step: timedelta = HOUR,
    venues: tuple[str, ...] = ("binance", "bybit", "okx"), eth_start: Decimal = Decimal("3000"),
    btc: bool = False,
) -> MarketData:
    """Rows at start, start + step, ... (< end) and funding points, all determined by `seed`."""
    if start.tzinfo is None or end.tzinfo is None:
        raise DataError("synthetic: start and end must be aware UTC datetimes")
    if step <= timedelta(0) or end <= start:
        raise DataError(f"synthetic: need step > 0 and end > start, got {start} .. {end} by {step}")
    rng = random.Random(seed)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    h = step / HOUR
    dt = h / YEAR_HOURS
    bases = ("eth", "btc") if btc else ("eth",)
    vol = {"eth": 0.60, "btc": 0.50}
    log_px = {"eth": math.log(float(eth_start)), "btc": math.log(60000.0)}
    basis = {(v, b): _OU(PREMIUM.get(v, 0.0004), 5.0, 0.00035, PREMIUM.get(v, 0.0004), h)
             for v in venues for b in bases}
    gas = _OU(math.log(10.0), 6.0, 0.35, math.log(10.0), h)
    staking = _OU(0.034, 24.0 * 14, 0.003, 0.034, h)
    apy = {a: _OU(m, 24.0 * 7, m * 0.15, m, h) for a, (m, _b, _s, _bi) in AAVE.items()}
    index = {(a, side): Decimal(repr(s if side == "supply" else bi))
             for a, (_m, _b, s, bi) in AAVE.items() for side in ("supply", "borrow")}
    weeth = Decimal("1.04")
    acc = {k: (0.0, 0) for k in basis}
    next_funding = _aligned_funding_after(start)
    times: list[datetime] = []
    rows: list[dict[str, Decimal]] = []
    funding: list[FundingPoint] = []
    ts = start
    first = True
    while ts < end:
        row: dict[str, Decimal] = {}
        if not first:
            common = rng.gauss(0.0, 1.0)
            for b in bases:
                z = common if b == "eth" else 0.8 * common + 0.6 * rng.gauss(0.0, 1.0)
                jump = 0.0
                if rng.random() < 6.0 * dt:
                    jump = math.log1p(rng.choice((-1.0, 1.0)) * rng.uniform(0.03, 0.08))
                log_px[b] += -0.5 * vol[b] ** 2 * dt + vol[b] * math.sqrt(dt) * z + jump
        shared = rng.gauss(0.0, 1.0)
        for b in bases:
            index_px = math.exp(log_px[b])
            row[f"{b}_usd_price"] = _q(index_px, PRICE)
            for v in venues:
                spot = index_px * (1.0 + max(-1e-4, min(1e-4, rng.gauss(0.0, 4e-5))))
                prem = basis[(v, b)].step(0.7 * shared + 0.714 * rng.gauss(0.0, 1.0))
                total, n = acc[(v, b)]
                acc[(v, b)] = (total + prem, n + 1)
                row[f"{v}_{b}_spot_price"] = _q(spot, PRICE)
                row[f"{v}_{b}_perp_price"] = _q(spot * (1.0 + prem), PRICE)
        spike = math.log(rng.uniform(2.0, 6.0)) if rng.random() < 0.01 * h else 0.0
        gas.x += spike
        row["gas_price_gwei"] = _q(math.exp(gas.step(rng.gauss(0.0, 1.0))), GAS)
        apr = max(0.0, staking.step(rng.gauss(0.0, 1.0)))
        row["staking_apr"] = _q(apr, RATE)
        if not first:
            weeth = _grow(weeth, apr, dt)
        row["weeth_eth_rate"] = weeth.quantize(RATE, context=MONEY)
        for asset, (_m, borrow_mean, _s, _bi) in AAVE.items():
            supply = max(0.0, apy[asset].step(rng.gauss(0.0, 1.0)))
            borrow = supply * 1.25 if borrow_mean is None else borrow_mean * supply / AAVE[asset][0]
            for side, value in (("supply", supply), ("borrow", borrow)):
                if not first:
                    index[(asset, side)] = _grow(index[(asset, side)], value, dt)
                row[f"aave_{asset}_{side}_apy"] = _q(value, RATE)
                row[f"aave_{asset}_{side}_index"] = index[(asset, side)].quantize(RATE, context=MONEY)
        times.append(ts)
        rows.append(row)
        while next_funding <= ts:
            for v in venues:
                for b in bases:
                    total, n = acc[(v, b)]
                    mean_prem = total / n if n else basis[(v, b)].x
                    acc[(v, b)] = (0.0, 0)
                    raw = 0.0001 + 0.3 * (mean_prem - basis[(v, b)].mean) + rng.gauss(0.0, 2e-5)
                    rate = max(-FUNDING_CAP, min(FUNDING_CAP, raw))
                    funding.append(FundingPoint(next_funding, v, b.upper(), _q(rate, FUNDING)))
            next_funding += FUNDING_EVERY
        first = False
        ts += step
    return MarketData.build(f"synthetic(seed={seed})", times, rows, funding)
