"""Reading the numbers of a market-data file against the project's bounds (`aggregates.values`: `PRICE`,
`FUNDING_RATE`, `INDEX`, `GAS_PRICE`, `BALANCE`, `NUMBER`, `bound_of`), a cell or a whole column at a
time, so a zero, negative, huge or over-precise number is refused on load instead of failing (or passing)
deep inside a run. The rules themselves live only in `Bound.parse`; this adds a fast path for the usual
plain numbers and the error text a file needs (the caller names the file, line and column).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from operator import eq

from aggregates.errors import InstructionError
from aggregates.values import MONEY, NON_NEGATIVE, POSITIVE, ZERO, Bound

__all__ = ["OutOfBounds", "read", "read_all"]


class OutOfBounds(ValueError):
    """A value of a column that is no number or outside its bound; `index` is its place in the column."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def _inside(bound: Bound, least: Decimal, most: Decimal) -> bool:
    """Whether values from `least` to `most` keep the bound's sign and size (not its places)."""
    if bound.sign == POSITIVE:
        low_ok = least > ZERO
    elif bound.sign == NON_NEGATIVE:
        low_ok = least >= ZERO
    else:
        low_ok = least >= -bound.maximum
    return low_ok and most <= bound.maximum


def _short(bound: Bound, text: str) -> bool:
    """A plain number no longer than `places` + 2 characters cannot have more than `places` decimals."""
    return len(text) <= bound.places + 2 and "e" not in text and "E" not in text


def read(bound: Bound, text: str) -> Decimal:
    """`text` as a Decimal inside `bound`; ValueError saying what is wrong (without the column)."""
    if not text.strip():
        raise ValueError(f"empty, expected {bound.kind}")
    try:
        value = Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"expected a finite number, got {text!r}")
    if _inside(bound, value, value) and _short(bound, text):
        return value  # the usual case, in a few comparisons
    try:
        return bound.parse(value, "")
    except InstructionError as e:
        raise ValueError(str(e).removeprefix(": ")) from None


def read_all(bound: Bound, texts: Sequence[str]) -> list[Decimal]:
    """Every text of a column as a Decimal inside `bound`, checked over the whole column at once (map,
    min, max: no Python call per value) in the usual case; OutOfBounds for the first bad one."""
    try:
        values = list(map(Decimal, texts))
    except decimal.InvalidOperation:
        values = []
    if values and _plain(bound, values, texts):
        return values
    out = []
    for position, text in enumerate(texts):
        try:
            out.append(read(bound, text))
        except ValueError as e:
            raise OutOfBounds(position, str(e)) from None
    return out


def _plain(bound: Bound, values: list[Decimal], texts: Sequence[str]) -> bool:
    """The fast test over a column: True when every value is surely inside the bound."""
    if not all(map(Decimal.is_finite, values)):  # before min/max: NaN cannot be compared
        return False
    if not _inside(bound, min(values), max(values)):
        return False
    joined = "".join(texts)
    if max(map(len, texts)) <= bound.places + 2 and "e" not in joined and "E" not in joined:
        return True
    # Exponents or long texts (funding rates such as -6.52e-06): a value with at most `places` decimals
    # is unchanged by quantizing to them (exact here: inside the bound it has at most 43 digits, MONEY 60).
    at_places = partial(Decimal.quantize, exp=Decimal(1).scaleb(-bound.places), context=MONEY)
    return all(map(eq, values, map(at_places, values)))
