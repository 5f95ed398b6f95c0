"""What a number read from a market-data file may be: one `Bound` per kind of value (a price, a funding
rate, a rate or index, a volume), applied to every value as it is read, so a zero, negative, huge or
over-precise number is refused on load instead of failing (or passing) deep inside a run.

The limits are the project's value bounds (issue 15): prices finite, above 0, at most 1e12, at most 18
decimal places (wei); funding rates finite, within ±0.05 per interval (5 %, over twenty times the largest
rate the shipped data holds), up to 27 decimal places (ray); other rates and indexes finite, up to 27
decimal places, and (indexes, exchange rates, gas prices) above 0; volumes not negative, at most 1e15.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from operator import eq

from aggregates.values import MONEY

PRICE_MAX = Decimal("1e12")
PRICE_PLACES = 18
FUNDING_MAX = Decimal("0.05")
RATE_MAX = Decimal("1e12")
RATE_PLACES = 27
AMOUNT_MAX = Decimal("1e15")
AMOUNT_PLACES = 18

ZERO = Decimal(0)


class OutOfBounds(ValueError):
    """A value of a column that is no number or outside its bound; `index` is its place in the column."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Bound:
    """`what` a value is (for messages) and the values it may take: from `low` (excluded when `low_open`)
    to `high`, with at most `places` decimal places."""

    what: str
    low: Decimal
    low_open: bool
    high: Decimal
    places: int

    def problem(self, value: Decimal) -> str | None:
        """Why `value` is outside the bound, or None when it is inside."""
        # Comparisons and as_tuple never round, so they cannot trap even on 1e999999999.
        if not value.is_finite():
            return "expected a finite number"
        if value < self.low or (self.low_open and value == self.low):
            if self.low == ZERO:
                return f"{self.what} must be {'above 0' if self.low_open else 'at least 0'}"
            return f"{self.what} must be within ±{self.high:f}"  # the signed bounds are symmetric
        if value > self.high:
            return f"{self.what} must be {'at most ' if self.low == ZERO else 'within ±'}{self.high:f}"
        if places(value) > self.places:
            return f"{self.what} has at most {self.places} decimal places"
        return None

    def read(self, text: str) -> Decimal:
        """`text` as a Decimal inside the bound; ValueError saying what is wrong (the caller adds the file,
        line and column)."""
        try:
            value = Decimal(text)
        except decimal.InvalidOperation:
            raise ValueError(f"expected a number, got {text!r}" if text.strip() else
                             f"empty, expected {self.what}") from None
        # The usual case in two comparisons and a look at the text: a plain number no longer than
        # `places` + 2 characters cannot have more than `places` decimals.
        if value.is_finite() and ((self.low < value) if self.low_open else (self.low <= value)) and (
                value <= self.high and len(text) <= self.places + 2 and "e" not in text and "E" not in text):
            return value
        why = self.problem(value)
        if why is not None:
            raise ValueError(f"{why}, got {text!r}")
        return value

    def read_all(self, texts: Sequence[str]) -> list[Decimal]:
        """Every text of a column as a Decimal inside the bound, checked over the whole column at once
        (map, min, max: no Python call per value) in the usual case; OutOfBounds for the first bad one."""
        try:
            values = list(map(Decimal, texts))
        except decimal.InvalidOperation:
            values = []
        if values and self._plain(values, texts):
            return values
        out = []
        for index, text in enumerate(texts):
            try:
                out.append(self.read(text))
            except ValueError as e:
                raise OutOfBounds(index, str(e)) from None
        return out

    def _plain(self, values: list[Decimal], texts: Sequence[str]) -> bool:
        """The fast test of `read` over a column: True when every value is surely inside the bound."""
        if not all(map(Decimal.is_finite, values)):  # before min/max: NaN cannot be compared
            return False
        least, most, joined = min(values), max(values), "".join(texts)
        if not (((least > self.low) if self.low_open else (least >= self.low)) and most <= self.high):
            return False
        if max(map(len, texts)) <= self.places + 2 and "e" not in joined and "E" not in joined:
            return True
        # Exponents or long texts (funding rates such as -6.52e-06): a value with at most `places`
        # decimals is unchanged by quantizing to them (exact: at most 13 + 27 digits, MONEY has 60).
        at_places = partial(Decimal.quantize, exp=Decimal(1).scaleb(-self.places), context=MONEY)
        return all(map(eq, values, map(at_places, values)))


def places(value: Decimal) -> int:
    """Decimal places of a finite value once trailing zeros are dropped (`1.500` has 1, `1e-30` 30)."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if exponent >= 0 or not any(digits):
        return 0
    text = "".join(map(str, digits))
    return max(0, -(exponent + len(text) - len(text.rstrip("0"))))


PRICE = Bound("a price", ZERO, True, PRICE_MAX, PRICE_PLACES)
FUNDING = Bound("a funding rate (per interval)", -FUNDING_MAX, False, FUNDING_MAX, RATE_PLACES)
POSITIVE_RATE = Bound("an index or rate", ZERO, True, RATE_MAX, RATE_PLACES)
RATE = Bound("a rate", -RATE_MAX, False, RATE_MAX, RATE_PLACES)
VOLUME = Bound("a volume", ZERO, False, AMOUNT_MAX, AMOUNT_PLACES)
