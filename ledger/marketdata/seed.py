"""Hourly `MarketData` from the seed data folder (the repository's `data/`: `seed/` and `binance/`) for
the series groups a strategy needs; gaps and coverage fail unless `fill="previous"`, which notes every
filled span.

Needs (`NEEDS`), optionally narrowed to venues as `"eth_perp:binance,bybit"`:

- `eth_spot` / `btc_spot`: `{venue}_{base}_spot_price` (binance, bybit) = 1h candle close stamped at the
  candle's open hour (as `load_folder`), and `{base}_usd_price` = the first listed venue's spot price.
- `eth_oracle`: `eth_usd_price` = the Aave WETH/USD oracle (`oracle_price_usd`, hourly, linearly
  interpolated between daily snapshots), the price an on-chain strategy values ETH at; it is complete
  2024-01-01 01:00 → 2025-09-29, where Binance ETH spot lacks most 00:00 bars after 2025-03-11. It cannot be
  combined with `eth_spot`, which sets `eth_usd_price` too.
- `eth_perp` / `btc_perp`: `{venue}_{base}_perp_price` (binance, bybit, okx); the seed has no OKX BTC
  perp, and OKX ETH perp starts 2024-08-01 and has no rows 2024-08-31 15:00 → 09-30 16:00 and
  2025-03-31 15:00 → 04-30 16:00 (`availability` tells which venues a window has: a gap over
  `MAX_CARRY` makes a venue missing).
- `funding_eth` / `funding_btc`: `FundingPoint`s at 00/08/16 UTC per venue (binance, bybit, okx).
- `aave`: `aave_{usdt,weth,weeth,wsteth}_{supply,borrow}_index` (liquidityIndex, variableBorrowIndex)
  and `_apy` (currentLiquidityRate, currentVariableBorrowRate: the snapshot's APR, informational);
  `"aave:usdt"` narrows it to some assets. USDT and WETH have daily snapshots only: each hour takes the
  last snapshot (a step), so accrual over whole days equals the index ratio exactly. weETH and wstETH
  come from the source's hourly files (which start 2024-05-12 01:00).
- `staking`: `weeth_eth_rate`, `wsteth_eth_rate` (Aave oracle ratios), `weeth_oracle_usd_price`,
  `wsteth_oracle_usd_price` (Aave USD oracle), `staking_apr` (weETH `base_staking_apr` of day D, from
  D+1 00:00 when the day it measures is over). The USD oracle is interpolated between daily snapshots
  and strays up to 6 % from rate x hourly ETH spot; named `*_usd_price` it would override that product in
  `executors.market.usd_price` and skew health factors, hence the `oracle_` names.
- `gas`: `gas_price_gwei` = the file's `gas_price_gwei` (equal to `gas_price_avg_gwei` in every row).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aggregates.values import FUNDING_RATE, NUMBER, PRICE, Bound, bound_of
from ledger.marketdata.frame import DataError, FundingPoint, MarketData
from ledger.marketdata.seed_files import EPOCH, NO_SHIFT, BadValue, Table, read_table

HOUR, DAY, FUNDING_EVERY = timedelta(hours=1), timedelta(days=1), timedelta(hours=8)
ETH_SPOT, BTC_SPOT, ETH_PERP, BTC_PERP = "eth_spot", "btc_spot", "eth_perp", "btc_perp"
FUNDING_ETH, FUNDING_BTC, AAVE, STAKING, GAS = "funding_eth", "funding_btc", "aave", "staking", "gas"
ETH_ORACLE = "eth_oracle"
# The longest a venue's price may be carried over a gap in its rows and still count as that venue's
# market: a venue whose series has a longer gap inside a window is missing for it (`availability`), so
# strategies drop it instead of trading at a stale price. The Binance perps' 23-hour gaps (2024-06-12,
# 2024-07-23, ...) stay fillable with fill="previous"; the OKX ETH perp's month-long gaps
# (2024-08-31 15:00 → 2024-09-30 16:00, 2025-03-31 15:00 → 2025-04-30 16:00) are not.
MAX_CARRY = timedelta(hours=24)
NEEDS = (ETH_SPOT, BTC_SPOT, ETH_PERP, BTC_PERP, FUNDING_ETH, FUNDING_BTC, AAVE, STAKING, GAS, ETH_ORACLE)
FILLS = ("error", "previous")
# need -> (market, base, venues it covers by default)
VENUE_NEEDS = {
    ETH_SPOT: ("spot", "eth", ("binance", "bybit")),
    BTC_SPOT: ("spot", "btc", ("binance", "bybit")),
    ETH_PERP: ("perp", "eth", ("binance", "bybit", "okx")),
    BTC_PERP: ("perp", "btc", ("binance", "bybit", "okx")),
    FUNDING_ETH: ("funding", "eth", ("binance", "bybit", "okx")),
    FUNDING_BTC: ("funding", "btc", ("binance", "bybit", "okx")),
}
_S, _P, _F = "seed/market_data/spot_prices", "seed/market_data/derivatives/futures_ohlcv", \
    "seed/market_data/derivatives/funding_rates"
# (market, base, venue) -> file relative to root; columns per COLUMNS (the Binance ETH spot file: `date`)
VENUE_FILES = {
    ("spot", "eth", "binance"): "binance/spot/Binance_ETHUSDT_1h.csv",
    ("spot", "eth", "bybit"): f"{_S}/eth_usd/bybit_ETHUSDT_spot_1h_2024-01-01_2025-09-26.csv",
    ("spot", "btc", "binance"): f"{_S}/btc_usd/binance_BTCUSDT_1h_2024-01-01_2025-09-30.csv",
    ("spot", "btc", "bybit"): f"{_S}/btc_usd/bybit_BTCUSDT_spot_1h_2024-01-01_2025-09-30.csv",
    ("perp", "eth", "binance"): "binance/futures_um/binance_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv",
    ("perp", "eth", "bybit"): f"{_P}/bybit_ETHUSDT_perp_1h_2024-01-01_2025-09-26.csv",
    ("perp", "eth", "okx"): f"{_P}/okx_ETHUSDT_perp_1h_2024-08-01_2025-09-18.csv",
    ("perp", "btc", "binance"): f"{_P}/binance_BTCUSDT_perp_1h_2024-01-01_2025-09-30.csv",
    ("perp", "btc", "bybit"): f"{_P}/bybit_BTCUSDT_perp_1h_2024-01-01_2025-09-30.csv",
    ("funding", "eth", "binance"): "binance/funding/binance_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv",
    ("funding", "eth", "bybit"): f"{_F}/bybit_ETHUSDT_funding_rates_2024-01-01_2025-09-26.csv",
    ("funding", "eth", "okx"): f"{_F}/okx_ETHUSDT_funding_rates_2024-05-01_2025-09-07.csv",
    ("funding", "btc", "binance"): f"{_F}/binance_BTCUSDT_funding_rates_2024-01-01_2025-09-30.csv",
    ("funding", "btc", "bybit"): f"{_F}/bybit_BTCUSDT_funding_rates_2024-01-01_2025-09-30.csv",
    ("funding", "btc", "okx"): f"{_F}/okx_BTCUSDT_funding_rates_2024-05-01_2025-09-07.csv",
}
COLUMNS = {"spot": ("timestamp", "close"), "perp": ("timestamp", "close"),
           "funding": ("funding_timestamp", "funding_rate")}
TIME_COLUMN = {"binance/spot/Binance_ETHUSDT_1h.csv": "date"}
ABSENT = {("perp", "btc", "okx"): "the seed data has no OKX BTC perp OHLCV (not in the source repository, "
                                  "see seed/README.md)"}
_R, _O = "seed/protocol_data/aave/rates/aave_v3_aave-v3-ethereum", "seed/protocol_data/aave/oracle"
AAVE_FILES = {  # asset -> (file, time column, cadence)
    "usdt": (f"{_R}_USDT_rates_2024-01-01_2025-09-18.csv", "targetDate", DAY),
    "weth": (f"{_R}_WETH_rates_2024-01-01_2025-09-18.csv", "targetDate", DAY),
    "weeth": (f"{_R}_weETH_rates_2024-05-12_2025-09-18_hourly.csv", "timestamp", HOUR),
    "wsteth": (f"{_R}_wstETH_rates_2024-05-12_2025-09-18_hourly.csv", "timestamp", HOUR),
}
AAVE_COLUMNS = {"supply_index": "liquidityIndex", "borrow_index": "variableBorrowIndex",
                "supply_apy": "currentLiquidityRate", "borrow_apy": "currentVariableBorrowRate"}
STAKING_FILES = {  # key -> (file, time column, value column, cadence, shift)
    "weeth_eth_rate": (f"{_O}/weETH_ETH_oracle_2024-01-01_2025-09-18.csv", "timestamp", "oracle_price_eth",
                       HOUR, NO_SHIFT),
    "wsteth_eth_rate": (f"{_O}/wstETH_ETH_oracle_2024-01-01_2025-09-18.csv", "timestamp", "oracle_price_eth",
                        HOUR, NO_SHIFT),
    "weeth_oracle_usd_price": (f"{_O}/weETH_USD_oracle_2024-01-01_2025-09-18.csv", "timestamp",
                               "oracle_price_usd", HOUR, NO_SHIFT),
    "wsteth_oracle_usd_price": (f"{_O}/wstETH_USD_oracle_2024-01-01_2025-09-18.csv", "timestamp",
                                "oracle_price_usd", HOUR, NO_SHIFT),
    "staking_apr": ("seed/protocol_data/staking/base_yields/weeth_oracle_yields_2024-01-01_2025-09-18.csv",
                    "timestamp", "base_staking_apr", DAY, DAY),
}
GAS_FILE = ("seed/blockchain_data/gas_prices/ethereum_gas_prices_2024-01-01_2025-09-26.csv", "timestamp",
            "gas_price_gwei")
ETH_ORACLE_FILE = (f"{_O}/WETH_USD_oracle_2024-01-01_2025-09-18.csv", "timestamp", "oracle_price_usd")
CHOICES = {AAVE: tuple(AAVE_FILES)}  # needs narrowed to some of these (`aave:usdt`), not to venues
CAVEATS = {
    AAVE: "{daily} indexes and rates hold the last daily 00:00 snapshot each hour",
    "aave_hourly": "{hourly} come from the source's hourly files, interpolated towards the next day's "
                   "snapshot",
    ETH_ORACLE: "eth_usd_price: the Aave WETH/USD oracle (seed/protocol_data/aave/oracle), linearly "
                "interpolated between daily snapshots; no exchange price is used",
    STAKING: "staking: *_eth_rate and *_oracle_usd_price are Aave oracle values linearly interpolated "
             "between daily snapshots; staking_apr is weETH's daily base_staking_apr, available the next day",
    "okx_funding": "okx funding: stamps may be 8-16 h off Binance/Bybit settlement times (seed/README.md)",
}


@dataclass(frozen=True)
class Series:
    """One row key fed by one column of one file; `cadence` is the file's step (1 h or 1 day)."""

    key: str
    rel: str
    time_col: str
    value_col: str
    cadence: timedelta = HOUR
    shift: timedelta = NO_SHIFT

    @property
    def bound(self) -> Bound:
        """The bound of the row key (`bound_of`: prices, indexes and staking rates, gas prices), any
        other figure (an APY, an APR) a `NUMBER`."""
        return bound_of(self.key) or NUMBER


def parse_needs(needs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """need -> venues (assets for `aave`; empty for needs without either); `"name:v1,v2"` narrows a need."""
    out: dict[str, tuple[str, ...]] = {}
    if isinstance(needs, str) or not needs:
        raise DataError(f"seed data: needs must be a non-empty list of {', '.join(NEEDS)}, got {needs!r}")
    for need in needs:
        name, _, venue_text = need.strip().partition(":")
        if name not in NEEDS:
            raise DataError(f"seed data: unknown need {need!r} (known: {', '.join(NEEDS)})")
        known = VENUE_NEEDS[name][2] if name in VENUE_NEEDS else CHOICES.get(name, ())
        venues = tuple(v.strip().lower() for v in venue_text.split(",") if v.strip()) if venue_text else known
        unknown = [v for v in venues if v not in known]
        if unknown or (not venues and known):
            what = "assets" if name in CHOICES else "venues"
            raise DataError(f"seed data: {need!r}: {what} must be some of {', '.join(known) or 'none'}")
        merged = out.get(name, ())
        out[name] = merged + tuple(v for v in venues if v not in merged)
    if ETH_ORACLE in out and ETH_SPOT in out:
        raise DataError(f"seed data: {ETH_ORACLE!r} and {ETH_SPOT!r} both give eth_usd_price; ask for one")
    return out


def series_for(needs: dict[str, tuple[str, ...]], start: datetime) -> list[Series]:
    """The row series the needs ask for, in need order; an absent venue series is a DataError."""
    out: list[Series] = []
    for name, venues in needs.items():
        if name in VENUE_NEEDS and VENUE_NEEDS[name][0] != "funding":
            market, base, _known = VENUE_NEEDS[name]
            for i, venue in enumerate(venues):
                key = f"{venue}_{base}_{market}_price"
                if (market, base, venue) in ABSENT:
                    raise DataError(f"seed data: {key} is needed from {start.isoformat()} but "
                                    f"{ABSENT[(market, base, venue)]}")
                rel = VENUE_FILES[(market, base, venue)]
                time_col, col = TIME_COLUMN.get(rel, COLUMNS[market][0]), COLUMNS[market][1]
                out.append(Series(key, rel, time_col, col))
                if market == "spot" and i == 0:
                    out.append(Series(f"{base}_usd_price", rel, time_col, col))
        elif name == AAVE:
            for asset, (rel, time_col, cadence) in AAVE_FILES.items():
                if asset in venues:
                    out += [Series(f"aave_{asset}_{key}", rel, time_col, col, cadence)
                            for key, col in AAVE_COLUMNS.items()]
        elif name == STAKING:
            out += [Series(k, *spec) for k, spec in STAKING_FILES.items()]
        elif name == GAS:
            out.append(Series("gas_price_gwei", *GAS_FILE))
        elif name == ETH_ORACLE:
            out.append(Series("eth_usd_price", *ETH_ORACLE_FILE))
    return out


def _floor(ts: datetime, step: timedelta) -> datetime:
    return EPOCH + (ts - EPOCH) // step * step


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M")


def _coverage(table: Table, key: str, need_from: datetime, need_to: datetime, start: datetime,
              end: datetime) -> None:
    if need_from < table.first or need_to > table.last:
        raise DataError(f"{table.path}: covers {_stamp(table.first)} → {_stamp(table.last)} but {key} is "
                        f"needed from {_stamp(need_from)} to {_stamp(need_to)} (window {_stamp(start)} → "
                        f"{_stamp(end)})")


def _values(s: Series, table: Table, col: int, stamps: list[datetime], fill: str,
            notes: list[str]) -> list[Decimal]:
    """The value at every stamp; a missing one fails or, with fill="previous", repeats the last one."""
    out: list[Decimal] = []
    previous = (table.before[0], table.before[1][col]) if table.before else None
    gap: list[datetime] = []
    carried_from: datetime | None = None
    unit = "hours" if s.cadence == HOUR else "days"
    for i, ts in enumerate(stamps):
        row = table.rows.get(ts)
        if row is not None:
            previous = (ts, row[col])
        elif fill == "error":
            missing = [t for t in stamps if t not in table.rows]
            raise DataError(f"{table.path}: {s.key} ({s.value_col}) has no row at {_stamp(ts)} "
                            f"({len(missing)} of {len(stamps)} {unit} missing in {_stamp(stamps[0])} → "
                            f"{_stamp(stamps[-1])}); fill='previous' carries the last value forward")
        elif previous is None:  # coverage puts a row at or before the first stamp, so only a bug lands here
            raise DataError(f"{table.path}: {s.key} has no value at or before {_stamp(ts)}")
        elif not gap:
            carried_from = previous[0]
        if row is None:
            gap.append(ts)
        assert previous is not None
        out.append(previous[1])
        if gap and carried_from is not None and (row is not None or i == len(stamps) - 1):
            first, last = gap[0], gap[-1]
            shown = last.strftime("%H:%M") if last.date() == first.date() else _stamp(last)
            notes.append(f"{s.key}: {len(gap)} {unit} {_stamp(first)} → {shown} carried forward from "
                         f"{_stamp(carried_from)} (file {s.rel})")
            gap = []
    return out


def _funding(root: Path, base: str, venue: str, lo: datetime, hi: datetime, start: datetime,
             end: datetime) -> list[FundingPoint]:
    """Settlements on the 00/08/16 UTC grid in [lo, hi); funding gaps always fail (none is invented)."""
    rel, (time_col, col) = VENUE_FILES[("funding", base, venue)], COLUMNS["funding"]
    table = read_table(root, rel, time_col, {col: FUNDING_RATE}, lo, hi, to_minute=True)
    first = _floor(lo, FUNDING_EVERY)
    first = first if first == lo else first + FUNDING_EVERY
    stamps = [first + i * FUNDING_EVERY for i in range(max(0, -(-(hi - first) // FUNDING_EVERY)))]
    off_grid = sorted(t for t in table.rows if _floor(t, FUNDING_EVERY) != t)
    if off_grid:
        raise DataError(f"{table.path}: funding at {_stamp(off_grid[0])} is not on the 00/08/16 UTC grid")
    if not stamps:
        return []
    _coverage(table, f"{venue} {base.upper()} funding", stamps[0], stamps[-1], start, end)
    missing = [t for t in stamps if t not in table.rows]
    if missing:
        raise DataError(f"{table.path}: {venue} {base.upper()} funding has no settlement at "
                        f"{_stamp(missing[0])} ({len(missing)} of {len(stamps)} missing); funding is "
                        "never filled")
    return [FundingPoint(t, venue, base.upper(), table.rows[t][0]) for t in stamps]


def _hours(root: Path, start: datetime, end: datetime) -> list[datetime]:
    """The whole hours in [start, end) of a seed data folder's window; DataError for bad arguments."""
    if not (root / "seed").is_dir():
        raise DataError(f"{root}: not a seed data folder (expected {root / 'seed'})")
    for name, ts in (("start", start), ("end", end)):
        if not isinstance(ts, datetime) or ts.tzinfo is None:
            raise DataError(f"seed data: {name} must be an aware UTC datetime, got {ts!r}")
    first = _floor(start, HOUR)
    first = first if first == start else first + HOUR
    times = [first + i * HOUR for i in range(max(0, -(-(end - first) // HOUR)))]
    if not times:
        raise DataError(f"seed data: window {start.isoformat()} → {end.isoformat()} holds no whole hour")
    return times


def load_seed(
    root: Path, start: datetime, end: datetime, needs: Sequence[str], fill: str = "error",
) -> MarketData:
    """Hourly rows over [start, end) (whole hours) and funding for `needs` from the seed data folder.

    `fill="error"` (default): a missing row inside the window is a DataError naming the file and the
    first missing time. `fill="previous"`: the last value is carried forward and every filled span is
    written to `notes`. A window outside a file's coverage always fails, naming the file's coverage.
    """
    root = Path(root)
    if fill not in FILLS:
        raise DataError(f"seed data: fill must be one of {', '.join(FILLS)}, got {fill!r}")
    times = _hours(root, start, end)
    parsed = parse_needs(needs)
    series = series_for(parsed, times[0])
    hi = times[-1] + HOUR
    notes: list[str] = []
    tables: dict[tuple[str, str, timedelta, timedelta], tuple[Table, list[str]]] = {}
    by_file: dict[tuple[str, str, timedelta, timedelta], dict[str, Bound]] = {}
    for s in series:
        by_file.setdefault((s.rel, s.time_col, s.cadence, s.shift), {}).setdefault(s.value_col, s.bound)
    for (rel, time_col, cadence, shift), bounds in by_file.items():
        table = read_table(root, rel, time_col, bounds, _floor(times[0], cadence), hi, shift)
        off_grid = sorted(t for t in table.rows if _floor(t, cadence) != t)
        if off_grid:  # a row between the file's steps would otherwise be silently unused
            raise DataError(f"{table.path}: row at {off_grid[0].isoformat()} is not on the file's "
                            f"{'hourly' if cadence == HOUR else 'daily 00:00'} grid")
        tables[(rel, time_col, cadence, shift)] = (table, list(bounds))
    columns: dict[str, list[Decimal]] = {}
    for s in series:
        table, cols = tables[(s.rel, s.time_col, s.cadence, s.shift)]
        stamps = sorted({_floor(t, s.cadence) for t in times})
        _coverage(table, s.key, stamps[0], stamps[-1], start, end)
        values = _values(s, table, cols.index(s.value_col), stamps, fill, notes)
        at = dict(zip(stamps, values, strict=True))
        columns[s.key] = [at[_floor(t, s.cadence)] for t in times]
    funding: list[FundingPoint] = []
    for name, venues in parsed.items():
        if name in VENUE_NEEDS and VENUE_NEEDS[name][0] == "funding":
            for venue in venues:
                funding += _funding(root, VENUE_NEEDS[name][1], venue, times[0], hi, start, end)
            if "okx" in venues:
                notes.append(CAVEATS["okx_funding"])
        elif name == AAVE:
            daily = "/".join(a for a in venues if AAVE_FILES[a][2] == DAY)
            hourly = "/".join(a for a in venues if AAVE_FILES[a][2] == HOUR)
            parts = [CAVEATS[AAVE].format(daily=daily)] if daily else []
            parts += [CAVEATS["aave_hourly"].format(hourly=hourly)] if hourly else []
            notes.append("aave: " + "; ".join(parts))
        elif name in CAVEATS:
            notes.append(CAVEATS[name])
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(times))]
    label = ", ".join(needs) + (f"; fill={fill}" if fill != "error" else "")
    return MarketData.build(f"seed data {root} [{label}]", times, rows, funding, list(dict.fromkeys(notes)))


def seed_root(path: Path) -> Path | None:
    """The seed data folder (the repository's `data/`) when `path` is it (holds `seed/`) or its `seed/`
    subfolder; None for anything else."""
    path = Path(path)
    if (path / "seed").is_dir():
        return path
    if path.name == "seed" and (path.parent / "binance").is_dir():
        return path.parent
    return None


# ---- which venues a window has -------------------------------------------------------------------

@dataclass(frozen=True)
class Availability:
    """The venues market data has for each venue need (`eth_perp`, `funding_eth`, `eth_spot`, ...) over
    a window, and why each other venue is missing; strategies fit their venue weights to it."""

    window: str  # "2024-06-01 → 2024-08-01", for notes and errors
    venues: Mapping[str, tuple[str, ...]]
    missing: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (need, venue) -> why
    # (need, venue) -> why, for the venues missing because of a gap over MAX_CARRY (also in `missing`)
    gaps: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def has(self, need: str, venue: str) -> bool:
        return venue in self.venues.get(need, ())


def window_text(first: datetime, last: datetime) -> str:
    """`2024-06-01 → 2024-08-01` (a time shown only when it is not midnight)."""

    def one(ts: datetime) -> str:
        return ts.date().isoformat() if ts.time() == datetime.min.time() else ts.strftime("%Y-%m-%d %H:%M")

    return f"{one(first)} → {one(last)}"


def availability(root: Path, start: datetime, end: datetime, needs: Sequence[str]) -> Availability:
    """Before loading: the venues of each perp and funding need in `needs` (every venue the seed knows for
    it, not only the ones a need narrows to; spot needs are not checked: strategies buy spot where they
    say) whose series can serve [start, end). A venue is missing when its series is ABSENT, its file does
    not cover the window, (funding, which is never filled) a settlement in the window is missing or
    conflicting, or (prices) a gap inside the window, counted from the last row at or before its start,
    is longer than MAX_CARRY. Shorter price gaps fail or are filled when loading (`fill`)."""
    root = Path(root)
    times = _hours(root, start, end)
    hi = times[-1] + HOUR
    venues: dict[str, tuple[str, ...]] = {}
    missing: dict[tuple[str, str], str] = {}
    gaps: dict[tuple[str, str], str] = {}
    for name in parse_needs(needs):
        if name not in VENUE_NEEDS or VENUE_NEEDS[name][0] == "spot":
            continue
        market, base, known = VENUE_NEEDS[name]
        have: list[str] = []
        for venue in known:
            why, gap = _unavailable(root, market, base, venue, times, hi, start, end)
            if why is None:
                have.append(venue)
            else:
                missing[(name, venue)] = why
                if gap:
                    gaps[(name, venue)] = why
        venues[name] = tuple(have)
    return Availability(window_text(times[0], times[-1]), venues, missing, gaps)


def _unavailable(root: Path, market: str, base: str, venue: str, times: list[datetime], hi: datetime,
                 start: datetime, end: datetime) -> tuple[str | None, bool]:
    """Why the venue's series cannot serve the window (None when it can), and whether that is a gap."""
    if (market, base, venue) in ABSENT:
        return ABSENT[(market, base, venue)], False
    if market == "funding":
        try:
            _funding(root, base, venue, times[0], hi, start, end)
        except BadValue:
            raise  # a lying rate is refused, not taken for a venue without data
        except DataError as e:
            return str(e), False
        return None, False
    rel = VENUE_FILES[(market, base, venue)]
    time_col, col = TIME_COLUMN.get(rel, COLUMNS[market][0]), COLUMNS[market][1]
    table = read_table(root, rel, time_col, {col: PRICE}, times[0], hi)
    if table.first > times[0] or table.last < times[-1]:
        return f"{rel} covers {_stamp(table.first)} → {_stamp(table.last)}", False
    gap = stale(times, table.rows.keys(), table.before[0] if table.before else None)
    if gap is None:
        return None, False
    following = min((t for t in table.rows if t > gap[1]), default=table.after)
    return gap_text(f"{venue} {base.upper()} {market}", gap[0], following), True


def stale(times: Sequence[datetime], rows: Collection[datetime],
          last: datetime | None) -> tuple[datetime, datetime] | None:
    """The first of `times` whose value would be carried for longer than MAX_CARRY, as (the row it would
    be carried from, that time); None when there is none. `rows` are the times that have a row, `last`
    the last row before `times` (None: none)."""
    for ts in times:
        if ts in rows:
            last = ts
        elif last is not None and ts - last > MAX_CARRY:
            return last, ts
    return None


def gap_text(series: str, last: datetime, following: datetime | None) -> str:
    """`okx ETH perp: no row between 2024-08-31 15:00 and 2024-09-30 16:00, a gap over 24 h`."""
    shown = "%Y-%m-%d %H:%M"
    upto = following.strftime(shown) if following is not None else "the end of the data"
    return f"{series}: no row between {last.strftime(shown)} and {upto}, a gap over {MAX_CARRY // HOUR} h"


def availability_of(data: MarketData) -> Availability:
    """After loading (a folder of files, a recorded log, the synthetic market): the venues whose price
    keys (`{venue}_{base}_{market}_price`) are in the first row, with no gap over MAX_CARRY between the
    rows that hold them, and whose funding points are in the data."""
    keys = set(data.rows[0]) if data.rows else set()
    venues: dict[str, tuple[str, ...]] = {}
    missing: dict[tuple[str, str], str] = {}
    gaps: dict[tuple[str, str], str] = {}
    for name, (market, base, known) in VENUE_NEEDS.items():
        if market == "funding":
            found = {p.venue for p in data.funding if p.base == base.upper()}
            have = [v for v in known if v in found]
        else:
            have = [v for v in known if f"{v}_{base}_{market}_price" in keys]
            for venue in list(have):
                key = f"{venue}_{base}_{market}_price"
                held = [t for t, row in zip(data.times, data.rows, strict=True) if key in row]
                gap = stale(data.times, set(held), None)
                if gap is not None:
                    have.remove(venue)
                    following = min((t for t in held if t > gap[1]), default=None)
                    gaps[(name, venue)] = gap_text(f"{venue} {base.upper()} {market}", gap[0], following)
        venues[name] = tuple(have)
        missing.update({(name, v): gaps.get((name, v), "not in the data") for v in known if v not in have})
    window = window_text(data.times[0], data.times[-1]) if data.times else "no data"
    return Availability(window, venues, missing, gaps)
