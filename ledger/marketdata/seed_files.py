"""Reading the seed data folder's files: a windowed CSV table reader that copes with each file's
timestamp format, and the static parameter files (execution costs, AAVE risk, CEX margin, gas units).

Paths are relative to the seed data folder (`root`, the repository's `data/`), which holds `seed/` and
`binance/`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aggregates.values import Bound
from ledger.marketdata.bounds import read
from ledger.marketdata.frame import DataError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MS_FROM = 10**11  # unix seconds reach 1e11 only in the year 5138
NO_SHIFT = timedelta(0)

COSTS_LOOKUP = "seed/execution_costs/lookup_tables/execution_costs_lookup.json"
COSTS_SUMMARY = "seed/execution_costs/execution_cost_summary.json"
AAVE_RISK = "seed/protocol_data/aave/risk_params/aave_v3_risk_parameters.json"
MARGIN = "seed/market_data/derivatives/risk_params/{venue}_margin_requirements.json"
MARGIN_VENUES = ("binance", "bybit", "okx")
GAS_SUMMARY = "seed/blockchain_data/gas_prices/operation_gas_costs_summary_2024-01-01_2025-09-26.json"
# Trade type of the cost model -> the lookup pair whose buckets it takes (the only ETH/USDT spot pair is
# labelled DEX in the summary; the seed system's own SPOT table uses the same 5 / 7 / 13 bp).
COST_PAIRS = {"SPOT": ("ETH_USDT",), "PERP": ("ETHUSDT-PERP", "BTCUSDT-PERP")}
COST_BUCKETS = {"10k": "10000", "100k": "100000", "1m": "1000000"}
# executors.costs.GAS_UNITS operation <- the gas summary's operation (WRAP and TRANSFER_ETH have none).
GAS_OPERATIONS = {
    "AAVE_SUPPLY": "COLLATERAL_SUPPLIED",
    "AAVE_WITHDRAW": "COLLATERAL_WITHDRAWN",
    "AAVE_BORROW": "LOAN_CREATED",
    "AAVE_REPAY": "LOAN_REPAID",
    "STAKE": "STAKE_DEPOSIT",
    "UNSTAKE": "STAKE_WITHDRAWAL",
    "APPROVE": "APPROVAL_ONCE",
    "TRANSFER_ERC20": "VENUE_TRANSFER",
}
MARGIN_KEYS = {
    "initial_margin": "initial_margin_requirement",
    "maintenance_margin": "maintenance_margin_requirement",
    "liquidation_threshold": "liquidation_threshold",
    "max_leverage": "max_leverage",
    "margin_call_threshold": "margin_call_threshold",
    "funding_interval_hours": "funding_rate_interval_hours",
}
RISK_KEYS = {"ltv": "ltv_limits", "liquidation_threshold": "liquidation_thresholds",
             "liquidation_bonus": "liquidation_bonus"}


def parse_time(text: str) -> datetime:
    """UTC time from any of the seed formats: ISO with `Z` or an offset, `+00:00Z` (an offset plus a
    stray `Z`), `YYYY-MM-DD[ HH:MM]` (naive means UTC) and unix seconds (or ms); ValueError otherwise."""
    s = text.strip()
    if s.isascii() and s.isdigit():
        n = int(s)
        return EPOCH + (timedelta(milliseconds=n) if n >= EPOCH_MS_FROM else timedelta(seconds=n))
    if s.endswith("Z") and len(s) > 7 and s[-7] in "+-":
        s = s[:-1]
    ts = datetime.fromisoformat(s)
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts if ts.tzinfo is UTC else ts.astimezone(UTC)


@dataclass
class Table:
    """The rows of one file with lo <= time < hi (times shifted), the latest row before lo, the time of
    the first row at or after hi, and the file's whole coverage (first and last time, shifted)."""

    path: Path
    first: datetime
    last: datetime
    rows: dict[datetime, tuple[Decimal, ...]]
    before: tuple[datetime, tuple[Decimal, ...]] | None
    after: datetime | None = None


class BadValue(DataError):
    """A cell that is no number or outside its column's bound: the file lies, whatever the window."""


def _number(text: str, path: Path, line: int, column: str, bound: Bound) -> Decimal:
    try:
        return read(bound, text)
    except ValueError as e:
        raise BadValue(f"{path}: line {line}: {column}: {e}") from None


def read_table(
    root: Path, rel: str, time_col: str, value_cols: Mapping[str, Bound], lo: datetime, hi: datetime,
    shift: timedelta = NO_SHIFT, to_minute: bool = False,
) -> Table:
    """Read `rel` (skipping `#` comment lines and a BOM); numbers are parsed, and checked against their
    column's bound in `value_cols`, only for the rows used.

    A time repeated with equal values is one row; with different values it is a DataError naming both
    lines. `shift` is added to every time; `to_minute` drops seconds (funding stamps a few ms late).
    """
    path = root / rel
    rows: dict[datetime, tuple[Decimal, ...]] = {}
    lines: dict[datetime, int] = {}
    before: tuple[datetime, list[str], int] | None = None
    after: datetime | None = None
    first: datetime | None = None
    last: datetime | None = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header: list[str] | None = None
            for row in reader:
                if not row or not "".join(row).strip() or row[0].startswith("#"):
                    continue
                if header is None:
                    header = [c.strip() for c in row]
                    missing = [c for c in (time_col, *value_cols) if c not in header]
                    if missing:
                        raise DataError(f"{path}: no column {', '.join(missing)} "
                                        f"in header {','.join(header)}")
                    ti, vi = header.index(time_col), [header.index(c) for c in value_cols]
                    width = max(ti, *vi) + 1
                    continue
                line = reader.line_num
                if len(row) < width:
                    raise DataError(f"{path}: line {line}: expected {len(header)} columns, got {len(row)}")
                try:
                    ts = parse_time(row[ti]) + shift
                except ValueError:
                    raise DataError(f"{path}: line {line}: {time_col}: cannot read time "
                                    f"{row[ti]!r}") from None
                if to_minute:
                    ts = ts.replace(second=0, microsecond=0)
                first = ts if first is None or ts < first else first
                last = ts if last is None or ts > last else last
                if ts < lo:
                    if before is None or ts > before[0]:
                        before = (ts, [row[i] for i in vi], line)
                    continue
                if ts >= hi:
                    after = ts if after is None or ts < after else after
                    continue
                values = tuple(_number(row[i], path, line, c, b)
                               for i, (c, b) in zip(vi, value_cols.items(), strict=True))
                seen = rows.get(ts)
                if seen is None:
                    rows[ts], lines[ts] = values, line
                elif seen != values:
                    raise DataError(f"{path}: {ts.isoformat()} appears twice with different values: "
                                    f"line {lines[ts]} has {_show(seen)}, line {line} has {_show(values)}")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    if first is None or last is None:
        raise DataError(f"{path}: no data rows")
    parsed = None
    if before is not None:
        ts, texts, line = before
        parsed = (ts, tuple(_number(t, path, line, c, b)
                            for t, (c, b) in zip(texts, value_cols.items(), strict=True)))
    return Table(path, first, last, rows, parsed, after)


def _show(values: tuple[Decimal, ...]) -> str:
    return "/".join(str(v) for v in values)


def _json(root: Path, rel: str) -> Any:
    path = root / rel
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal, parse_int=Decimal)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None


def _at(doc: Any, path: Path, *keys: str) -> Any:
    node = doc
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise DataError(f"{path}: no {'.'.join(keys[: i + 1])}")
        node = node[key]
    return node


def _dec(value: Any, path: Path, where: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise DataError(f"{path}: {where}: expected a number, got {value!r}")
    return value


def load_execution_costs(root: Path) -> dict[str, Any]:
    """An `execution_costs` config table for `CostModel.from_config`: `{"*": {"SPOT": {"10000": bps,
    "100000": ..., "1000000": ...}, "PERP": {...}}}` from the lookup's ETH_USDT (SPOT) and
    ETHUSDT-PERP / BTCUSDT-PERP (PERP) buckets 10k / 100k / 1m, which must be constant over every day and
    agree with the summary's base (10k) and max (1m) bps."""
    root = Path(root)
    lookup, summary = _json(root, COSTS_LOOKUP), _json(root, COSTS_SUMMARY)
    lpath, spath = root / COSTS_LOOKUP, root / COSTS_SUMMARY
    table: dict[str, dict[str, Decimal]] = {}
    for trade_type, pairs in COST_PAIRS.items():
        for pair in pairs:
            buckets: dict[str, Decimal] = {}
            for bucket, upto in COST_BUCKETS.items():
                by_day = _at(lookup, lpath, pair, bucket)
                values = {_dec(v, lpath, f"{pair}.{bucket}.{d}") for d, v in by_day.items()}
                if len(values) != 1:
                    raise DataError(f"{lpath}: {pair}.{bucket} varies over time ({sorted(values)}); "
                                    "a CostModel table holds one value per bucket")
                buckets[upto] = values.pop()
            ranges = _at(summary, spath, "cost_ranges", pair.replace("_", "/"))
            stated = (_dec(ranges.get("base_cost_bps"), spath, f"{pair}.base_cost_bps"),
                      _dec(ranges.get("max_cost_bps"), spath, f"{pair}.max_cost_bps"))
            if stated != (buckets["10000"], buckets["1000000"]):
                raise DataError(f"{spath}: {pair} base/max {stated[0]}/{stated[1]} bps disagree with the "
                                f"lookup's 10k/1m {buckets['10000']}/{buckets['1000000']} bps")
            seen = table.setdefault(trade_type, buckets)
            if seen != buckets:
                raise DataError(f"{lpath}: {pair} buckets {buckets} differ from {pairs[0]}'s {seen} "
                                f"({trade_type} takes one table)")
    return {"*": table}


def load_aave_risk(root: Path) -> dict[str, Any]:
    """`{"emode"|"standard": {"weETH_WETH": {"ltv", "liquidation_threshold", "liquidation_bonus"}, ...},
    "reserve_factors": {"weETH": ..., ...}}` from the source project's AAVE parameter set."""
    root = Path(root)
    doc, path = _json(root, AAVE_RISK), root / AAVE_RISK
    out: dict[str, Any] = {}
    for mode in ("emode", "standard"):
        pairs: dict[str, dict[str, Decimal]] = {}
        for name, file_key in RISK_KEYS.items():
            for pair, value in _at(doc, path, mode, file_key).items():
                pairs.setdefault(pair, {})[name] = _dec(value, path, f"{mode}.{file_key}.{pair}")
        incomplete = sorted(p for p, v in pairs.items() if len(v) != len(RISK_KEYS))
        if incomplete:
            raise DataError(f"{path}: {mode}: {', '.join(incomplete)} lack one of "
                            f"{', '.join(RISK_KEYS.values())}")
        out[mode] = pairs
    out["reserve_factors"] = {a: _dec(v, path, f"reserve_factors.{a}")
                              for a, v in _at(doc, path, "reserve_factors").items()}
    return out


def load_margin(root: Path) -> dict[str, dict[str, Decimal]]:
    """Per venue (binance, bybit, okx) `initial_margin`, `maintenance_margin`, `liquidation_threshold`,
    `max_leverage`, `margin_call_threshold`, `funding_interval_hours`, as the margin JSONs state them."""
    root = Path(root)
    out: dict[str, dict[str, Decimal]] = {}
    for venue in MARGIN_VENUES:
        rel = MARGIN.format(venue=venue)
        doc, path = _json(root, rel), root / rel
        out[venue] = {name: _dec(_at(doc, path, key), path, key) for name, key in MARGIN_KEYS.items()}
    return out


def gas_units(root: Path) -> dict[str, int]:
    """Gas units per `executors.costs.GAS_UNITS` operation that the gas summary has (see GAS_OPERATIONS)."""
    root = Path(root)
    doc, path = _json(root, GAS_SUMMARY), root / GAS_SUMMARY
    out: dict[str, int] = {}
    for op, file_op in GAS_OPERATIONS.items():
        units = _dec(_at(doc, path, "operation_costs", file_op, "gas_units"), path, f"{file_op}.gas_units")
        if units != units.to_integral_value() or units <= 0:
            raise DataError(f"{path}: operation_costs.{file_op}.gas_units: expected a positive whole "
                            f"number, got {units}")
        out[op] = int(units)
    return out
