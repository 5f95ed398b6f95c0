"""Typed strategy parameters: one `Param` per parameter drives validation, `--param` parsing, `ledger
strategies NAME`, `ledger backtest --help` and the recorded `strategy_params`.

A strategy is a dataclass whose parameters are the fields made with `Param.field()`; every other field is
internal state (`init=False`) or a class constant, so it cannot be set. Values arrive as text (`--param
NAME=VALUE`), as JSON/TOML values (a config's `[strategy_params]`, a recorded session) or as Python
values (the library), and `Param.parse` turns each into the declared type or refuses it with one line
naming the parameter (`max_ltv: must be below 0.95, got 0.97`).
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregates.errors import LedgerError

DECIMAL, INT, WEIGHTS, VENUES = "decimal", "int", "venue→weight", "venues"
TYPE_NAMES = {DECIMAL: "decimal", INT: "integer", WEIGHTS: "venue→weight", VENUES: "venue list"}
ZERO, ONE = Decimal(0), Decimal(1)
SHOWN = 80  # a refused value is shown in its error up to this many characters


class _Twice(ValueError):
    """A JSON object names one key twice (`json` itself keeps the last one silently)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook`: the object as a dict, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Twice(key)
        out[key] = value
    return out


class StrategyConfigError(LedgerError):
    """A strategy parameter is unknown, of the wrong type or out of range; the message names it and
    `param` holds its name (None when no single parameter is at fault)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class Param:
    """One parameter: name, type, default, range and a one-line meaning.

    Decimal and integer ranges are `low`/`high` (either may be absent), inclusive unless `open_low` /
    `open_high`; `high_param` names another parameter that is an inclusive upper bound (target_ltv ≤
    max_ltv). Weights and venue lists take venue names from `choices`; weights are each in [0, 1] and
    sum to exactly 1.
    """

    name: str
    type: str
    default: Any
    meaning: str
    low: Decimal | None = None
    high: Decimal | None = None
    open_low: bool = False
    open_high: bool = False
    high_param: str | None = None
    choices: tuple[str, ...] = ()

    def but(self, default: Any) -> Param:
        """The same parameter with another default (a mode that keeps a smaller gas reserve, say)."""
        return dataclasses.replace(self, default=default)

    def field(self) -> Any:
        """The dataclass field holding this parameter; mutable defaults are copied per instance."""
        meta = {"param": self}
        if isinstance(self.default, dict):
            default = dict(self.default)
            return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
        return dataclasses.field(default=self.default, metadata=meta)

    # ---- parsing ---------------------------------------------------------------------------------

    def fail(self, message: str) -> StrategyConfigError:
        return StrategyConfigError(f"{self.name}: {message}", self.name)

    def parse(self, value: Any) -> Any:
        """`value` (text, JSON/TOML value or Python value) as this parameter's type, range-checked."""
        if self.type == DECIMAL:
            number = self._decimal(value)
            self._check_range(number)
            return number
        if self.type == INT:
            return self._int(value)
        if self.type == WEIGHTS:
            return self._weights(value)
        if self.type == VENUES:
            return self._venues(value)
        raise self.fail(f"unknown parameter type {self.type!r}")  # a declaration bug

    def _decimal(self, value: Any, what: str = "a number") -> Decimal:
        if isinstance(value, bool):
            raise self.fail(f"expected {what}, got {json.dumps(value)}")
        try:
            if isinstance(value, float):
                number = Decimal(repr(value))  # a TOML float: its shortest text, e.g. 0.55
            elif isinstance(value, int | Decimal):
                number = Decimal(value)
            elif isinstance(value, str) and value.isascii():  # Decimal reads Arabic-Indic digits too
                number = Decimal(value.strip())
            elif isinstance(value, str):
                raise self.fail(f"expected {what} in ASCII digits, got {_show(value)}")
            else:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            raise self.fail(f"expected {what}, got {_show(value)}") from None
        if not number.is_finite():
            raise self.fail(f"expected a finite number, got {_show(value)}")
        # -0 behaves as 0: record it as 0, so both give one config and one digest
        return number.copy_abs() if number.is_zero() else number

    def _int(self, value: Any) -> int:
        number = self._decimal(value, "a whole number")
        if number != number.to_integral_value():
            raise self.fail(f"expected a whole number, got {_show(value)}")
        self._check_range(number)
        return int(number)

    def _check_range(self, number: Decimal) -> None:
        low, high = self.low, self.high
        if low is not None and (number <= low if self.open_low else number < low):
            raise self.fail(f"must be {'above' if self.open_low else 'at least'} {low}, got {number}")
        if high is not None and (number >= high if self.open_high else number > high):
            raise self.fail(f"must be {'below' if self.open_high else 'at most'} {high}, got {number}")

    def _structured(self, value: Any) -> Any:
        """JSON text as its value (an object naming a key twice is refused); anything else unchanged."""
        if not isinstance(value, str):
            return value
        if _depth(value) > MAX_JSON_DEPTH:  # refused before parsing: json's own limit is the stack's
            raise self.fail(f"JSON nested too deeply in {_show(value)}")
        try:
            return json.loads(value, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=_once)
        except _Twice as e:
            key = e.key.strip().lower()
            raise self.fail(f"venue {key if key in self.choices else _show(e.key)} is given twice") from None
        except RecursionError:
            raise self.fail(f"JSON nested too deeply in {_show(value)}") from None
        except ValueError:
            return value

    def _venue(self, venue: Any) -> str:
        if not isinstance(venue, str) or venue.strip().lower() not in self.choices:
            raise self.fail(f"unknown venue {_show(venue)} (venues: {', '.join(self.choices)})")
        return venue.strip().lower()

    def _weights(self, value: Any) -> dict[str, Decimal]:
        raw = self._structured(value)
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(f"expected a JSON object of venue weights such as {self.example()}, got "
                            f"{_show(value)}")
        weights: dict[str, Decimal] = {}
        for venue, weight in raw.items():
            name = self._venue(venue)
            if name in weights:
                raise self.fail(f"venue {name} is given twice")
            number = self._decimal(weight, f"a number for {name}")
            if not ZERO <= number <= ONE:
                raise self.fail(f"{name} weight must be between 0 and 1, got {number}")
            weights[name] = number
        total = sum(weights.values(), ZERO)
        if total != ONE:
            raise self.fail(f"weights must sum to 1, got {show_weights(weights)} (sum {total})")
        return dict(sorted(weights.items()))

    def _venues(self, value: Any) -> tuple[str, ...]:
        """Venue names, comma-separated or a JSON list; none at all (`""`, `[]`) is an empty tuple."""
        raw = self._structured(value)
        if isinstance(raw, str):
            raw = [part for part in raw.split(",") if part.strip()]
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise self.fail(f"expected venue names such as {','.join(self.choices)}, got {_show(value)}")
        venues = tuple(self._venue(v) for v in raw)
        if len(set(venues)) != len(venues):
            raise self.fail(f"a venue is given twice in {','.join(venues)}")
        return venues

    # ---- showing ---------------------------------------------------------------------------------

    def type_name(self) -> str:
        return TYPE_NAMES[self.type]

    def text(self, value: Any) -> str:
        """A value as `ledger strategies NAME` shows it."""
        if self.type == WEIGHTS:
            return show_weights(value)
        if self.type == VENUES:
            return ",".join(value) or "none"
        return str(value)

    def plain(self, value: Any) -> Any:
        """A value as the config records it (JSON: Decimals as text); `parse` reads it back."""
        if self.type == WEIGHTS:
            return {k: str(v) for k, v in sorted(value.items())}
        if self.type == VENUES:
            return list(value)
        if self.type == INT:
            return int(value)
        return str(value)

    def range_text(self, short: bool = False) -> str:
        """The allowed values; `short` (for `ledger backtest --help`) leaves out what the default shows."""
        if self.type == WEIGHTS:
            return "≥ 0, sum 1" if short else f"{', '.join(self.choices)}: each in [0, 1], sum 1"
        if self.type == VENUES:
            return f"some of {', '.join(self.choices)}" + ("" if short else " (none: unhedged)")
        low = None if self.low is None else f"{'(' if self.open_low else '['}{self.low}"
        high = self.high_param or (None if self.high is None else str(self.high))
        if low is not None and high is not None:
            return f"{low}, {high}{')' if self.open_high else ']'}"
        if low is not None:
            return f"{'>' if self.open_low else '≥'} {self.low}"
        if high is not None:
            return f"{'<' if self.open_high else '≤'} {high}"
        return "any"

    def example(self) -> str:
        if self.type == WEIGHTS:
            return weights_json(self.default)
        return self.text(self.default)


# Declared once, used by several strategies.
CAPITAL = Param("capital", DECIMAL, Decimal(100_000), "starting capital in USD (set it with --capital)",
                low=ZERO, open_low=True)
GAS_RESERVE = Param("gas_reserve", DECIMAL, Decimal("0.05"), "ETH kept in the chain wallet for gas", low=ZERO,
                    high=ONE)


def weights_json(weights: Mapping[str, Decimal]) -> str:
    """`{"binance": 0.57, "bybit": 0.43}`: weights as JSON numbers, written from the Decimals' text."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in sorted(weights.items())) + "}"


def show_weights(weights: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(weights.items()))


MAX_JSON_DEPTH = 8  # a parameter is a number, a list or an object of numbers: depth 1 or 2


def _depth(text: str) -> int:
    """How deep JSON text nests its arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _show(value: Any) -> str:
    """A value as an error shows it (JSON, text quoted), cut to SHOWN characters."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (RecursionError, ValueError):  # nested too deeply, or a circular structure
        text = reprlib.repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def params_of(strategy: Any) -> tuple[Param, ...]:
    """The parameters a strategy class (or instance) declares, in field order."""
    if not dataclasses.is_dataclass(strategy):
        return ()
    return tuple(f.metadata["param"] for f in dataclasses.fields(strategy) if "param" in f.metadata)


def parse_params(name: str, declared: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` typed and range-checked; an unknown name is refused naming the known ones."""
    by_name = {p.name: p for p in declared}
    for key in sorted(values):
        if key not in by_name:
            known = ", ".join(p.name for p in declared) or "none"
            raise StrategyConfigError(
                f"{key}: {name} has no parameter {key!r} (its parameters: {known}; `ledger strategies "
                f"{name}` describes them)", key)
    typed = {k: by_name[k].parse(v) for k, v in sorted(values.items())}
    every = {p.name: typed.get(p.name, p.default) for p in declared}
    for p in declared:  # a bound set by another parameter: blame the one that was given
        bound = p.high_param
        if bound is not None and every[p.name] > every[bound]:
            if p.name in typed or bound not in typed:
                raise p.fail(f"must be at most {bound} ({every[bound]}), got {every[p.name]}")
            raise by_name[bound].fail(f"must be at least {p.name} ({every[p.name]}), got {every[bound]}")
    return typed


def help_lines(strategies: Mapping[str, Any]) -> list[str]:
    """Each strategy's parameters for `ledger backtest --help`, one line each (name, type, default,
    range), no wider than 78 characters; the capital, set with --capital, once before them."""
    by_name = {name: params_of(factory) for name, factory in sorted(strategies.items())}
    capitals = {p for params in by_name.values() for p in params if p.name == CAPITAL.name}
    lines = [f"{p.name} (set with --capital): {p.type_name()}, default {p.text(p.default)}, {p.range_text()}"
             for p in sorted(capitals, key=lambda p: str(p.default))]
    rows = {name: [(p.name, p.type_name(), p.text(p.default), p.range_text(short=True))
                   for p in params if p.name != CAPITAL.name] for name, params in by_name.items()}
    every = [row for table in rows.values() for row in table]
    name_width, type_width = (max((len(row[i]) for row in every), default=0) for i in (0, 1))
    for name, table in rows.items():
        lines.append(f"{name}:")
        default_width = max((len(row[2]) for row in table), default=0)
        lines += [f"  {n:<{name_width}}  {t:<{type_width}}  {d:<{default_width}}  {r}".rstrip()
                  for n, t, d, r in table]
    return lines


def recorded(strategy: Any) -> dict[str, Any]:
    """Every parameter's effective value as the session records it (`strategy_params`)."""
    return {p.name: p.plain(getattr(strategy, p.name)) for p in params_of(strategy)}
