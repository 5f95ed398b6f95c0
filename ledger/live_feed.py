"""Live market data from the venues (SPEC §12.18): tickers, and for perpetuals the mark price and the
current funding rate, as one Decimal snapshot in the engine's market-data keys.

The snapshot is what `engine.advance_to` and the strategy's decision get, so it is recorded with every
decision in `InstructionAccepted` — live runs decide on data of the same shape as backtests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from executors.live.ccxt_parse import dec
from executors.live.cex_funding import funding_key, mark_key

DEFAULT_SYMBOLS = ("ETH/USDT", "ETH/USDT:USDT")
ClientOf = Callable[[str], Awaitable[Any]]  # venue -> a started VenueClient


def price_key(venue: str, base: str, kind: str) -> str:
    """`{venue}_{base}_{spot|perp}_price` (SPEC §12.4), base in lower case."""
    return f"{venue}_{base.lower()}_{kind}_price"


class LiveMarketFeed:
    """Snapshots of every venue's tickers (last, bid, ask) and, for perps, mark and funding rate.

    One venue failing does not stop the others: its problem is kept in `errors` (the exception's type
    and the call, never a message that could carry a request) and its keys are left out; a perp whose
    funding rate cannot be read keeps its prices."""

    def __init__(self, config: Mapping[str, Any], venues: Sequence[str], client: ClientOf) -> None:
        live = config.get("live") or {}
        self.venues = list(venues)
        self.symbols = tuple(str(s) for s in live.get("symbols") or DEFAULT_SYMBOLS)
        self.client = client
        self.errors: dict[str, str] = {}

    async def snapshot(self) -> dict[str, Decimal]:
        """All venues at once; merged in venue order, so `{base}_usd_price` is the first venue's."""
        answers = await asyncio.gather(*(self._venue(v) for v in self.venues))
        market: dict[str, Decimal] = {}
        for venue, (values, problem) in zip(self.venues, answers, strict=True):
            if problem:
                self.errors[venue] = problem
            else:
                self.errors.pop(venue, None)
            _merge(market, values)
        return market

    async def _venue(self, venue: str) -> tuple[dict[str, Decimal], str]:
        values: dict[str, Decimal] = {}
        problems: list[str] = []
        try:
            client = await self.client(venue)
        except Exception as e:  # one venue's outage must not stop the others' data
            return values, f"market data: {type(e).__name__}"
        for symbol in self.symbols:
            spec = client.market(symbol)
            if spec is None:
                continue
            try:
                ticker = await client.call("fetch_ticker", symbol)
            except Exception as e:
                problems.append(f"fetch_ticker {symbol}: {type(e).__name__}")
                continue
            base = str(spec.get("base") or symbol.split("/")[0])
            perp = bool(spec.get("contract")) or ":" in symbol
            _merge(values, ticker_values(venue, base, "perp" if perp else "spot", ticker))
            if perp:
                try:
                    values.update(await self._funding(client, venue, base, symbol, ticker))
                except Exception as e:
                    problems.append(f"funding {symbol}: {type(e).__name__}")
        return values, "; ".join(problems)

    async def _funding(
        self, client: Any, venue: str, base: str, symbol: str, ticker: Mapping[str, Any]
    ) -> dict[str, Decimal]:
        answer = await client.call("fetch_funding_rate", symbol)
        out: dict[str, Decimal] = {}
        rate = dec(answer.get("fundingRate"))
        mark = _positive(answer.get("markPrice")) or _positive(ticker.get("markPrice"))
        if mark is None and getattr(client.exchange, "has", {}).get("fetchMarkPrice"):
            # OKX: ccxt's funding-rate parser never sets markPrice; the mark-price endpoint has it
            mark = _positive((await client.call("fetch_mark_price", symbol)).get("markPrice"))
        if mark is not None:
            out[mark_key(venue, base)] = mark
            if base.upper() == "ETH":
                out[f"{venue}_mark_price"] = mark
        if rate is not None:
            out[funding_key(venue, base)] = rate
            if base.upper() == "ETH":
                out[f"{venue}_funding_rate"] = rate
        return out


def ticker_values(venue: str, base: str, kind: str, ticker: Mapping[str, Any]) -> dict[str, Decimal]:
    """One ccxt ticker in market-data keys: the last price (or the mid), bid and ask."""
    out: dict[str, Decimal] = {}
    bid, ask = _positive(ticker.get("bid")), _positive(ticker.get("ask"))
    price = _positive(ticker.get("last")) or ((bid + ask) / 2 if bid and ask else None)
    b = base.lower()
    if price is not None:
        out[price_key(venue, b, kind)] = price
        if b == "eth":
            out[f"{venue}_{kind}_price"] = price
        out[f"{b}_usd_price"] = price
    if bid is not None:
        out[f"{venue}_{b}_{kind}_bid_price"] = bid
    if ask is not None:
        out[f"{venue}_{b}_{kind}_ask_price"] = ask
    return out


def _merge(market: dict[str, Decimal], values: Mapping[str, Decimal]) -> None:
    """Add `values`; a `{base}_usd_price` already there stays (the first venue's, spot before perp)."""
    for key, value in values.items():
        if key.endswith("_usd_price"):
            market.setdefault(key, value)
        else:
            market[key] = value


def _positive(value: Any) -> Decimal | None:
    number = dec(value)
    return number if number is not None and number > 0 else None


TickerFeed = LiveMarketFeed  # the name the live runner used before funding and marks were added

__all__ = [
    "DEFAULT_SYMBOLS",
    "LiveMarketFeed",
    "TickerFeed",
    "funding_key",
    "mark_key",
    "price_key",
    "ticker_values",
]
