"""Hypothesis strategies for the inputs a strategy meets: instructions, market data, runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from aggregates.errors import InstructionError
from aggregates.values import MONEY
from ledger.testing.common import CEX_VENUES, CHAIN_VENUE, OPERATIONS, PERP_PAIRS, SPOT_PAIRS

if TYPE_CHECKING:
    from ledger.engine import EventDrivenStrategyEngine


# ---- instructions ------------------------------------------------------------------------------


def _decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False, allow_infinity=False
    )


def amounts(low: str = "0.001", high: str = "3", places: int = 3) -> st.SearchStrategy[Any]:
    """Positive amounts in every form the API accepts: Decimal, str, float and (when in range) int."""
    exact = _decimals(low, high, places).filter(lambda d: d > 0)
    forms: list[st.SearchStrategy[Any]] = [exact, exact.map(str), exact.map(float)]
    if int(Decimal(high)) >= 1:
        forms.append(st.integers(1, int(Decimal(high))))
    return st.one_of(*forms)


def _money_amount(asset: str) -> st.SearchStrategy[Any]:
    return amounts("1", "20000", 2) if asset == "USDT" else amounts("0.001", "3", 3)


@st.composite
def cex_orders(
    draw: st.DrawFn,
    venues: Sequence[str] = CEX_VENUES,
    near: Decimal | None = None,
) -> dict[str, Any]:
    """A spot or perpetual order (MARKET or LIMIT) in the seed's shape, with our optional keys; LIMIT
    prices fall within 2 % of `near` when it is given (so some rest, some cross)."""
    perp = draw(st.booleans())
    ins: dict[str, Any] = {
        "venue_type": "cex",
        "venue": draw(st.sampled_from(list(venues))),
        "trade_type": "PERP" if perp else "SPOT",
        "pair": draw(st.sampled_from(PERP_PAIRS if perp else SPOT_PAIRS)),
        "side": draw(st.sampled_from(["BUY", "SELL", "LONG", "SHORT"])),
        "amount": draw(amounts()),
    }
    if draw(st.integers(0, 3)) == 0:
        ins["order_type"] = "LIMIT"
        if near is None:
            price = draw(_decimals("1500", "4500", 1))
        else:
            with localcontext(MONEY):
                price = (near * (1 + draw(_decimals("-0.02", "0.02", 4)))).quantize(Decimal("0.1"))
        ins["price"] = draw(st.sampled_from([price, str(price)]))
    if draw(st.integers(0, 5)) == 0:
        ins["reduce_only"] = True
    if draw(st.integers(0, 5)) == 0:
        ins["max_slippage_bps"] = draw(st.sampled_from([1, 4, 10, "20"]))
    return ins


@st.composite
def chain_operations(draw: st.DrawFn, chain_venue: str | None = None) -> dict[str, Any]:
    """An on-chain operation (AAVE supply/withdraw/borrow/repay, stake, unstake, transfer)."""
    op = draw(st.sampled_from(OPERATIONS))
    token = {
        "STAKE": "ETH",
        "UNSTAKE": draw(st.sampled_from(["WEETH", "ETH"])),
    }.get(op) or draw(st.sampled_from(["ETH", "USDT"]))
    ins: dict[str, Any] = {
        "venue_type": "onchain",
        "operation": op,
        draw(st.sampled_from(["token", "token_in"])): token,
        "amount": draw(_money_amount(token) if token == "USDT" else amounts("0.001", "2", 3)),
    }
    if chain_venue is not None and draw(st.booleans()):
        ins["venue"] = chain_venue
    if op == "TRANSFER":
        ins["to"] = "0x" + "ab" * 20
    return ins


@st.composite
def transfers(draw: st.DrawFn, venues: Sequence[str] = (*CEX_VENUES, CHAIN_VENUE)) -> dict[str, Any]:
    """A transfer between two different venues (the seed's keys or the seed system's)."""
    source, target = draw(st.lists(st.sampled_from(list(venues)), min_size=2, max_size=2, unique=True))
    asset = draw(st.sampled_from(["USDT", "ETH"]))
    keys = draw(st.sampled_from([("from_venue", "to_venue"), ("source_venue", "target_venue")]))
    return {
        "venue_type": "transfer",
        keys[0]: source,
        keys[1]: target,
        "asset": asset,
        "amount": draw(_money_amount(asset)),
    }


def _valid(
    venues: Sequence[str],
    chain_venue: str,
    near: Decimal | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    orders = cex_orders(venues, near)
    return st.one_of(orders, orders, chain_operations(chain_venue), transfers((*venues, chain_venue)))


BAD_AMOUNTS: tuple[Any, ...] = (
    -1,
    0,
    "-0.5",
    "abc",
    "",
    [1],
    {"v": 1},
    True,
    float("nan"),
    float("inf"),
    float("-inf"),
    "NaN",
    "Infinity",
    Decimal("NaN"),
    Decimal("-Infinity"),
    None,
)


@st.composite
def malformed_instructions(
    draw: st.DrawFn,
    venues: Sequence[str] = CEX_VENUES,
    chain_venue: str = CHAIN_VENUE,
) -> Any:
    """An instruction that must be refused: recorded as REJECTED when it names a known venue, else an
    `InstructionError`. Kinds: unknown venue type or venue, missing/negative/non-numeric/NaN/infinite
    amount, unknown side, LIMIT without price, unknown operation, transfer to the same venue, non-dict."""
    kind = draw(
        st.sampled_from(
            [
                "venue_type",
                "venue",
                "amount",
                "missing_amount",
                "side",
                "limit_price",
                "operation",
                "same_venue",
                "not_a_dict",
            ]
        )
    )
    if kind == "not_a_dict":
        return draw(st.sampled_from(["BUY 1 ETH", 42, None, ["ETH"], 1.5]))
    if kind == "venue_type":
        ins = draw(cex_orders(venues))
        ins["venue_type"] = draw(st.sampled_from(["dex", "CEX ", "", None, 3]))
        if draw(st.booleans()):
            del ins["venue"]
        return ins
    if kind == "venue":
        ins = draw(st.one_of(cex_orders(venues), chain_operations(chain_venue)))
        ins["venue"] = draw(st.sampled_from(["kraken", "", "binance-us", 7]))
        return ins
    if kind in ("amount", "missing_amount"):
        ins = draw(_valid(venues, chain_venue))
        if kind == "missing_amount":
            del ins["amount"]
        else:
            ins["amount"] = draw(st.sampled_from(BAD_AMOUNTS))
        return ins
    if kind == "side":
        ins = draw(cex_orders(venues))
        ins["side"] = draw(st.sampled_from(["HOLD", "buyy", "", 1, None]))
        return ins
    if kind == "limit_price":
        ins = draw(cex_orders(venues))
        ins["order_type"] = "LIMIT"
        ins.pop("price", None)
        return ins
    if kind == "operation":
        ins = draw(chain_operations(chain_venue))
        ins["operation"] = draw(st.sampled_from(["FLASHLOAN", "aave_lend", "", 5]))
        return ins
    venue = draw(st.sampled_from([*venues, chain_venue]))
    return {
        "venue_type": "transfer",
        "from_venue": venue,
        "to_venue": venue,
        "asset": "USDT",
        "amount": draw(_money_amount("USDT")),
    }


def instructions(
    venues: Sequence[str] = CEX_VENUES,
    chain_venue: str = CHAIN_VENUE,
    malformed: bool = True,
    near: Decimal | None = None,
) -> st.SearchStrategy[Any]:
    """Instructions for `execute_trade_with_interface`: CEX orders (half of the valid ones; LIMIT
    prices near `near`), on-chain operations and transfers, plus (with `malformed=True`, about one in
    four) malformed ones."""
    valid = _valid(venues, chain_venue, near)
    if not malformed:
        return valid
    return st.one_of(valid, valid, valid, malformed_instructions(venues, chain_venue))


# ---- market data ---------------------------------------------------------------------------------


INDEX_KEYS = (
    "aave_weth_supply_index",
    "aave_weth_borrow_index",
    "aave_usdt_supply_index",
    "aave_usdt_borrow_index",
)


def _snapshot(
    eth: Decimal,
    spreads: Sequence[tuple[Decimal, Decimal]],
    venues: Sequence[str],
    gas: Decimal,
    rate: Decimal,
    indexes: Sequence[Decimal],
    seed_keys: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {"eth_usd_price": eth}
    with localcontext(MONEY):
        for venue, (spot, perp) in zip(venues, spreads, strict=True):
            spot_px = (eth * (1 + spot)).quantize(Decimal("0.01"))
            perp_px = (spot_px * (1 + perp)).quantize(Decimal("0.01"))
            out[f"{venue}_spot_price" if seed_keys else f"{venue}_eth_spot_price"] = spot_px
            out[f"{venue}_perp_price" if seed_keys else f"{venue}_eth_perp_price"] = perp_px
    out["gas_price_gwei"] = gas
    out["weeth_eth_rate"] = rate
    out.update(zip(INDEX_KEYS, indexes, strict=True))
    return out


def _as_floats(market: Mapping[str, Any]) -> dict[str, Any]:
    return {k: float(v) for k, v in market.items()}


def _spreads(n: int) -> st.SearchStrategy[list[tuple[Decimal, Decimal]]]:
    pair = st.tuples(_decimals("-0.002", "0.002", 4), _decimals("-0.003", "0.003", 4))
    return st.lists(pair, min_size=n, max_size=n)


@st.composite
def market_data(
    draw: st.DrawFn,
    venues: Sequence[str] = CEX_VENUES,
    floats: bool | None = None,
    seed_keys: bool | None = None,
) -> dict[str, Any]:
    """One seed-style snapshot: `eth_usd_price`, `{venue}_eth_spot_price` / `{venue}_eth_perp_price`
    (or the seed's `{venue}_spot_price` / `{venue}_perp_price`), `gas_price_gwei`, `weeth_eth_rate`
    and the AAVE `aave_{asset}_{supply|borrow}_index` keys; values Decimal, or float when `floats`."""
    market = _snapshot(
        draw(_decimals("1500", "4500", 2)),
        draw(_spreads(len(venues))),
        venues,
        draw(_decimals("1", "150", 2)),
        draw(_decimals("1", "1.1", 6)),
        [draw(_decimals("1", "1.2", 9)) for _ in INDEX_KEYS],
        draw(st.booleans()) if seed_keys is None else seed_keys,
    )
    as_floats = draw(st.booleans()) if floats is None else floats
    return _as_floats(market) if as_floats else market


@dataclass(frozen=True)
class Step:
    """Advance the clock by `minutes` with `market` (None: the engine's own market data), run
    `instructions` in order, then (with `cancel_all`) cancel every resting CEX order."""

    minutes: int
    market: dict[str, Any] | None
    instructions: tuple[Any, ...]
    cancel_all: bool = False


@st.composite
def steps(
    draw: st.DrawFn,
    venues: Sequence[str] = CEX_VENUES,
    chain_venue: str = CHAIN_VENUE,
    malformed: bool = True,
    max_steps: int = 8,
    max_instructions: int = 4,
    markets: bool = True,
) -> list[Step]:
    """A run: markets that move as markets do (prices ±3 % a step, AAVE indexes and the staking rate
    only rising), time jumps from none to over a week (transfers arrive, unstakes become claimable),
    and a few instructions per step. With `markets=False` the steps carry no market: the engine reads
    its configured data (funding and interest then come from it too)."""
    eth = draw(_decimals("2000", "4000", 2))
    rate = draw(_decimals("1", "1.08", 6))
    indexes = [draw(_decimals("1", "1.2", 9)) for _ in INDEX_KEYS]
    seed_keys = draw(st.booleans())
    out: list[Step] = []
    with localcontext(MONEY):
        for _ in range(draw(st.integers(1, max_steps))):
            eth = (eth * (1 + draw(_decimals("-0.03", "0.03", 4)))).quantize(Decimal("0.01"))
            rate = (rate * (1 + draw(_decimals("0", "0.0005", 6)))).quantize(Decimal("1e-8"))
            indexes = [
                (i * (1 + draw(_decimals("0", "0.001", 6)))).quantize(Decimal("1e-12")) for i in indexes
            ]
            market = _snapshot(
                eth,
                draw(_spreads(len(venues))),
                venues,
                draw(_decimals("1", "150", 2)),
                rate,
                indexes,
                seed_keys,
            )
            if draw(st.integers(0, 3)) == 0:
                market = _as_floats(market)
            minutes = draw(st.sampled_from([0, 1, 5, 31, 60, 480, 8 * 24 * 60]))
            batch = draw(
                st.lists(instructions(venues, chain_venue, malformed, near=eth), max_size=max_instructions)
            )
            out.append(Step(minutes, market if markets else None, tuple(batch), draw(st.integers(0, 5)) == 0))
    return out


async def play(engine: EventDrivenStrategyEngine, run: Iterable[Step]) -> list[Any]:
    """Drive `engine` through `run`; each outcome is a result dict or the `InstructionError` raised
    for input naming no known venue. Any other exception is a bug and propagates."""
    outcomes: list[Any] = []
    ts = engine.event_logger.now()
    for step in run:
        ts = ts + timedelta(minutes=step.minutes)
        await engine.advance_to(ts, step.market)
        for instruction in step.instructions:
            try:
                outcomes.append(await engine.execute_trade_with_interface(instruction, step.market))
            except InstructionError as e:
                outcomes.append(e)
        if step.cancel_all:
            outcomes.append(await engine.execution_interfaces["cex"].cancel_all_orders())
    return outcomes
