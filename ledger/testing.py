"""Property-testing kit for strategies built on the ledger: hypothesis strategies and invariant checkers.

Strategies draw the inputs a desk's code meets: `instructions` (valid and, with `malformed=True`,
malformed instruction dicts), `market_data` (seed-style snapshots, Decimal or float), `steps` (a run:
time moves, markets and instructions), and `event_sequences` (valid `VenueLedger.record_*` commands,
for fold and rebuild properties). The checkers read the stored log and raise `InvariantError` (an
`AssertionError`) naming the first violations:

- `check_conservation(engine)`: an independent fold of the stored events gives the same balances,
  AAVE books, positions, funds in transit and P&L lines as the projection; per asset, everything
  held equals the sum of its recorded flows; transfers neither create nor lose funds; and no balance
  was driven below zero except by venue-side P&L (perpetual fills and funding).
- `check_no_floats(ledger)`: no stored payload holds a JSON float, and no number in it is NaN or
  infinite (the text `received` of a rejection keeps the `repr` of what arrived, SPEC §12.17).
- `check_lifecycle(ledger)`: every instruction's events follow `aggregates.transitions` and end in an
  allowed state (filled, resting, cancelled, rejected with a code, confirmed, completed, in transit).
- `check_rebuild_equals(engine)`: a fresh `InMemoryProjection` rebuilt from the store equals the live one.

Usage with pytest and hypothesis::

    import asyncio
    from hypothesis import given
    from ledger.engine import EventDrivenStrategyEngine
    from ledger import testing

    @given(testing.steps(malformed=True))
    def test_my_strategy_keeps_the_books(steps):
        engine = EventDrivenStrategyEngine({"initial_capital": 100_000, "ledger": {"url": "memory:"}})
        try:
            asyncio.run(testing.play(engine, steps))   # or drive your own strategy here
            testing.check_all(engine)
        finally:
            engine.ledger.close()                      # `memory:` is one database per process
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Any

import msgspec
from hypothesis import strategies as st

from aggregates.errors import IllegalTransitionError, InstructionError
from aggregates.transitions import State, next_state
from aggregates.values import MONEY, parse_instrument
from aggregates.venue import VenueLedger
from ledger.codec import split_state
from projections.folds import fold
from projections.memory import InMemoryProjection
from projections.state import LedgerState

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.engine import EventDrivenStrategyEngine

__all__ = [
    "BACKTEST_FINAL_STATES", "LIVE_FINAL_STATES", "Books", "Command", "InvariantError", "Step", "amounts",
    "cex_orders", "chain_operations", "check_all", "check_conservation", "check_lifecycle", "check_no_floats",
    "check_rebuild_equals", "event_sequences", "independent_books", "instructions", "malformed_instructions",
    "market_data", "play", "record_commands", "steps", "transfers",
]

CEX_VENUES = ("binance", "bybit", "okx")
CHAIN_VENUE = "ethereum"
ZERO = Decimal(0)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPOT_PAIRS = ("ETH/USDT", "ETHUSDT", "eth/usdt")
PERP_PAIRS = ("ETHUSDT-PERP", "ETH/USDT:USDT", "ETH-USDT-SWAP")
OPERATIONS = ("AAVE_SUPPLY", "AAVE_WITHDRAW", "AAVE_BORROW", "AAVE_REPAY", "STAKE", "UNSTAKE", "TRANSFER")


class InvariantError(AssertionError):
    """An invariant of the ledger does not hold; the message lists the first violations."""

    def __init__(self, check: str, problems: Sequence[str]) -> None:
        self.check = check
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:10])
        more = f"\n  … and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        super().__init__(f"{check}: {len(self.problems)} violation(s)\n  {shown}{more}")


# ---- instructions ------------------------------------------------------------------------------


def _decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places,
                       allow_nan=False, allow_infinity=False)


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
def cex_orders(draw: st.DrawFn, venues: Sequence[str] = CEX_VENUES, near: Decimal | None = None,
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
    return {"venue_type": "transfer", keys[0]: source, keys[1]: target, "asset": asset,
            "amount": draw(_money_amount(asset))}


def _valid(venues: Sequence[str], chain_venue: str, near: Decimal | None = None,
           ) -> st.SearchStrategy[dict[str, Any]]:
    orders = cex_orders(venues, near)
    return st.one_of(orders, orders, chain_operations(chain_venue), transfers((*venues, chain_venue)))


BAD_AMOUNTS: tuple[Any, ...] = (
    -1, 0, "-0.5", "abc", "", [1], {"v": 1}, True, float("nan"), float("inf"), float("-inf"),
    "NaN", "Infinity", Decimal("NaN"), Decimal("-Infinity"), None,
)


@st.composite
def malformed_instructions(
    draw: st.DrawFn, venues: Sequence[str] = CEX_VENUES, chain_venue: str = CHAIN_VENUE,
) -> Any:
    """An instruction that must be refused: recorded as REJECTED when it names a known venue, else an
    `InstructionError`. Kinds: unknown venue type or venue, missing/negative/non-numeric/NaN/infinite
    amount, unknown side, LIMIT without price, unknown operation, transfer to the same venue, non-dict."""
    kind = draw(st.sampled_from([
        "venue_type", "venue", "amount", "missing_amount", "side", "limit_price", "operation",
        "same_venue", "not_a_dict",
    ]))
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
    return {"venue_type": "transfer", "from_venue": venue, "to_venue": venue, "asset": "USDT",
            "amount": draw(_money_amount("USDT"))}


def instructions(
    venues: Sequence[str] = CEX_VENUES, chain_venue: str = CHAIN_VENUE, malformed: bool = True,
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


INDEX_KEYS = ("aave_weth_supply_index", "aave_weth_borrow_index", "aave_usdt_supply_index",
              "aave_usdt_borrow_index")


def _snapshot(eth: Decimal, spreads: Sequence[tuple[Decimal, Decimal]], venues: Sequence[str],
              gas: Decimal, rate: Decimal, indexes: Sequence[Decimal], seed_keys: bool) -> dict[str, Any]:
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
    draw: st.DrawFn, venues: Sequence[str] = CEX_VENUES, floats: bool | None = None,
    seed_keys: bool | None = None,
) -> dict[str, Any]:
    """One seed-style snapshot: `eth_usd_price`, `{venue}_eth_spot_price` / `{venue}_eth_perp_price`
    (or the seed's `{venue}_spot_price` / `{venue}_perp_price`), `gas_price_gwei`, `weeth_eth_rate`
    and the AAVE `aave_{asset}_{supply|borrow}_index` keys; values Decimal, or float when `floats`."""
    market = _snapshot(
        draw(_decimals("1500", "4500", 2)), draw(_spreads(len(venues))), venues,
        draw(_decimals("1", "150", 2)), draw(_decimals("1", "1.1", 6)),
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
    draw: st.DrawFn, venues: Sequence[str] = CEX_VENUES, chain_venue: str = CHAIN_VENUE,
    malformed: bool = True, max_steps: int = 8, max_instructions: int = 4, markets: bool = True,
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
            indexes = [(i * (1 + draw(_decimals("0", "0.001", 6)))).quantize(Decimal("1e-12"))
                       for i in indexes]
            market = _snapshot(eth, draw(_spreads(len(venues))), venues, draw(_decimals("1", "150", 2)),
                               rate, indexes, seed_keys)
            if draw(st.integers(0, 3)) == 0:
                market = _as_floats(market)
            minutes = draw(st.sampled_from([0, 1, 5, 31, 60, 480, 8 * 24 * 60]))
            batch = draw(st.lists(instructions(venues, chain_venue, malformed, near=eth),
                                  max_size=max_instructions))
            out.append(Step(minutes, market if markets else None, tuple(batch),
                            draw(st.integers(0, 5)) == 0))
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


# ---- event sequences -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One `VenueLedger.record_*` call at `venue` (opened as `venue_type` on first use)."""

    venue: str
    venue_type: str
    method: str
    kwargs: dict[str, Any]

    def apply(self, aggregate: VenueLedger) -> Any:
        return getattr(aggregate, self.method)(**self.kwargs)


def record_commands(ledger: Ledger, commands: Iterable[Command], account: str = "main",
                    ) -> dict[str, VenueLedger]:
    """Apply `commands` in order, saving after each one; returns the venue aggregates."""
    aggregates: dict[str, VenueLedger] = {}
    for c in commands:
        agg = aggregates.get(c.venue)
        if agg is None:
            agg = aggregates[c.venue] = ledger.venue(account, c.venue, c.venue_type, c.kwargs["ts"])
        c.apply(agg)
        ledger.save(agg)
    return aggregates


@dataclass
class _Model:
    """What the sequence generator needs to keep its commands valid (no overdrafts, known ids)."""

    out: list[Command] = field(default_factory=list)
    balances: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    perps: dict[str, Decimal] = field(default_factory=dict)
    supplied: Decimal = ZERO
    deposits: list[Command] = field(default_factory=list)
    pending: list[tuple[str, str, str, str, str, Decimal, str]] = field(default_factory=list)
    resting: list[tuple[str, str]] = field(default_factory=list)
    n: int = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def ts(self) -> datetime:
        return T0 + timedelta(minutes=self.n)

    def emit(self, venue: str, method: str, **kwargs: Any) -> None:
        kind = "onchain" if venue == CHAIN_VENUE else "cex"
        self.out.append(Command(venue, kind, method, kwargs))

    def held(self, key: tuple[str, str, str]) -> Decimal:
        return self.balances.get(key, ZERO)

    def move(self, key: tuple[str, str, str], delta: Decimal) -> None:
        self.balances[key] = self.held(key) + delta


CHAIN_WALLET = "0xwallet"


def _wallet(venue: str) -> str:
    return CHAIN_WALLET if venue == CHAIN_VENUE else "spot"


@st.composite
def event_sequences(draw: st.DrawFn, venues: Sequence[str] = ("binance", "bybit"),
                    max_actions: int = 25) -> list[Command]:
    """Valid `VenueLedger` command sequences: deposits (some repeated: idempotent), withdrawals,
    spot fills (split, duplicated), perp fills and funding, resting orders and cancels, rejections,
    transfers sent then received or failed, AAVE supply transactions with gas and interest, staking
    rewards and balance observations. Apply them with `record_commands(ledger, commands)`."""
    m = _Model()
    all_venues = (*venues, CHAIN_VENUE)
    qty = _decimals("0.01", "2", 2)
    price = _decimals("1500", "4500", 1)
    for _ in range(draw(st.integers(1, max_actions))):
        action = draw(st.sampled_from([
            "deposit", "deposit", "withdraw", "spot", "spot", "perp", "funding", "resting", "cancel",
            "reject", "transfer", "arrive", "fail", "supply", "interest", "reward", "observe",
        ]))
        ts = m.ts()
        if action == "deposit":
            if m.deposits and draw(st.integers(0, 3)) == 0:
                again = draw(st.sampled_from(m.deposits))
                m.out.append(again)  # same id: recorded once
                m.next("d")
                continue
            venue = draw(st.sampled_from(all_venues))
            asset = draw(st.sampled_from(["USDT", "ETH"]))
            wallet = "futures" if venue != CHAIN_VENUE and draw(st.integers(0, 2)) == 0 else _wallet(venue)
            amount = draw(_decimals("1", "50000", 2) if asset == "USDT" else _decimals("0.1", "20", 2))
            m.emit(venue, "record_deposit", deposit_id=m.next("d"), wallet=wallet, asset=asset,
                   amount=amount, ts=ts)
            m.deposits.append(m.out[-1])
            m.move((venue, wallet, asset), amount)
        elif action == "withdraw":
            held = sorted(k for k, v in m.balances.items() if v > 0 and k[1] != "futures")
            if not held:
                continue
            key = draw(st.sampled_from(held))
            amount = (m.held(key) * draw(_decimals("0.01", "1", 2))).quantize(Decimal("0.0001"))
            if amount <= 0:
                continue
            m.emit(key[0], "record_withdrawal", withdrawal_id=m.next("w"), wallet=key[1], asset=key[2],
                   amount=amount, ts=ts)
            m.move(key, -amount)
        elif action == "spot":
            venue = draw(st.sampled_from(venues))
            side, q, px = draw(st.sampled_from(["buy", "sell"])), draw(qty), draw(price)
            rate = draw(st.sampled_from([ZERO, Decimal("0.0002"), Decimal("0.001")]))
            parts = [q] if q < Decimal("0.02") or draw(st.booleans()) else [q / 2, q - q / 2]
            fees = [(part * px * rate).quantize(Decimal("0.0001")) for part in parts]
            usdt, eth = (venue, "spot", "USDT"), (venue, "spot", "ETH")
            if (side == "buy" and m.held(usdt) < q * px + sum(fees)) or (side == "sell" and m.held(eth) < q):
                continue
            iid = m.next("i")
            m.emit(venue, "record_accepted", instruction_id=iid, instruction={
                "kind": "ORDER", "instrument": "ETH/USDT", "market_type": "spot", "side": side,
                "amount": str(q), "wallet": "spot"}, market={"eth_usd_price": px}, ts=ts)
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            for j, (part, fee) in enumerate(zip(parts, fees, strict=True)):
                fill = {"instruction_id": iid, "trade_id": f"t{iid}-{j}", "market_type": "spot",
                        "instrument": "ETH/USDT", "side": side, "quantity": part, "price": px,
                        "fee": fee, "fee_asset": "USDT", "ts": ts, "wallet": "spot"}
                for _copy in range(2 if draw(st.integers(0, 4)) == 0 else 1):
                    m.emit(venue, "record_fill", **fill)  # the second copy is idempotent
                m.move(usdt, (-part * px if side == "buy" else part * px) - fee)
                m.move(eth, part if side == "buy" else -part)
        elif action == "perp":
            venue = draw(st.sampled_from(venues))
            side, q, px = draw(st.sampled_from(["buy", "sell"])), draw(qty), draw(price)
            iid = m.next("p")
            m.emit(venue, "record_accepted", instruction_id=iid, instruction={
                "kind": "ORDER", "instrument": "ETH/USDT:USDT", "market_type": "perp", "side": side,
                "amount": str(q), "wallet": "futures"}, market={f"{venue}_eth_perp_price": px}, ts=ts)
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            m.emit(venue, "record_fill", instruction_id=iid, trade_id=f"t{iid}", market_type="perp",
                   instrument="ETH/USDT:USDT", side=side, quantity=q, price=px,
                   fee=(q * px * Decimal("0.0005")).quantize(Decimal("0.0001")), fee_asset="USDT", ts=ts,
                   wallet="futures")
            m.perps[venue] = m.perps.get(venue, ZERO) + (q if side == "buy" else -q)
        elif action == "funding":
            open_at = sorted(v for v, x in m.perps.items() if x)
            if not open_at:
                continue
            venue, mark = draw(st.sampled_from(open_at)), draw(price)
            rate = draw(_decimals("-0.001", "0.001", 6))
            position = m.perps[venue]
            m.next("f")
            m.emit(venue, "record_funding", instrument="ETH/USDT:USDT", wallet="futures", asset="USDT",
                   rate=rate, mark_price=mark, position=position, amount=-position * mark * rate, ts=ts)
        elif action == "resting":
            venue, iid = draw(st.sampled_from(venues)), m.next("r")
            m.emit(venue, "record_accepted", instruction_id=iid, instruction={
                "kind": "ORDER", "instrument": "ETH/USDT", "market_type": "spot", "side": "buy",
                "amount": str(draw(qty)), "wallet": "spot", "price": "1000"}, market={}, ts=ts)
            m.emit(venue, "record_submitted", instruction_id=iid, client_order_id=f"c{iid}", ts=ts)
            m.emit(venue, "record_acknowledged", instruction_id=iid, venue_order_id=f"v{iid}", ts=ts)
            m.resting.append((venue, iid))
        elif action == "cancel":
            if not m.resting:
                continue
            venue, iid = m.resting.pop(draw(st.integers(0, len(m.resting) - 1)))
            m.next("x")
            m.emit(venue, "record_cancel_requested", instruction_id=iid, ts=ts)
            m.emit(venue, "record_cancelled", instruction_id=iid, reason="cancel_all_orders", ts=ts)
        elif action == "reject":
            venue = draw(st.sampled_from(all_venues))
            m.emit(venue, "record_rejected", instruction_id=m.next("j"), code="invalid_amount",
                   reason="amount: expected a number, got 'abc'", received={"amount": "'abc'"}, ts=ts)
        elif action == "transfer":
            held = sorted(k for k, v in m.balances.items() if v > 1 and k[1] != "futures")
            if not held:
                continue
            src = draw(st.sampled_from(held))
            dst = draw(st.sampled_from([v for v in all_venues if v != src[0]]))
            fee = draw(st.sampled_from([ZERO, Decimal("0.5") if src[2] == "USDT" else Decimal("0.001")]))
            amount = ((m.held(src) - fee) * draw(_decimals("0.01", "1", 2))).quantize(Decimal("0.0001"))
            if amount <= 0:
                continue
            iid, tid = m.next("s"), f"tr{m.n}"
            m.emit(src[0], "record_accepted", instruction_id=iid, instruction={
                "kind": "TRANSFER", "asset": src[2], "amount": str(amount), "wallet": src[1],
                "to_venue": dst}, market={}, ts=ts)
            m.emit(src[0], "record_transfer_sent", instruction_id=iid, transfer_id=tid, asset=src[2],
                   amount=amount, fee=fee, from_wallet=src[1], to_venue=dst, to_wallet=_wallet(dst), ts=ts)
            m.move(src, -amount - fee)
            m.pending.append((src[0], src[1], iid, tid, dst, amount, src[2]))
        elif action in ("arrive", "fail"):
            if not m.pending:
                continue
            pick = draw(st.integers(0, len(m.pending) - 1))
            venue, wallet, iid, tid, dst, amount, asset = m.pending.pop(pick)
            m.next("a")
            if action == "arrive":
                m.emit(dst, "record_transfer_received", transfer_id=tid, from_venue=venue,
                       wallet=_wallet(dst), asset=asset, amount=amount, ts=ts)
                m.move((dst, _wallet(dst), asset), amount)
            else:
                m.emit(venue, "record_transfer_failed", instruction_id=iid, transfer_id=tid,
                       reason="rejected by the venue", refunded=amount, ts=ts)
                m.move((venue, wallet, asset), amount)
        elif action == "supply":
            key = (CHAIN_VENUE, CHAIN_WALLET, "ETH")
            gas = Decimal("0.0021")
            n = (draw(_decimals("0.01", "1", 2)) * (m.held(key) - gas)).quantize(Decimal("0.0001"))
            if n <= 0:
                continue
            iid = m.next("c")
            tx = "0x" + f"{m.n:064x}"
            block = "0x" + f"{m.n + 10**6:064x}"
            m.emit(CHAIN_VENUE, "record_accepted", instruction_id=iid, instruction={
                "kind": "AAVE_SUPPLY", "operation": "AAVE_SUPPLY", "asset": "ETH", "amount": str(n),
                "wallet": CHAIN_WALLET}, market={}, ts=ts)
            m.emit(CHAIN_VENUE, "record_tx_submitted", instruction_id=iid, tx_hash=tx, nonce=m.n,
                   max_fee_per_gas=2 * 10**10, max_priority_fee_per_gas=10**9, gas_limit=252_000,
                   purpose="AAVE_SUPPLY", ts=ts)
            m.emit(CHAIN_VENUE, "record_tx_mined", instruction_id=iid, tx_hash=tx, block_number=m.n,
                   block_hash=block, ts=ts)
            effects = [
                {"kind": "wrapped", "asset": "ETH", "receipt_asset": "WETH", "amount": str(n),
                 "wallet": CHAIN_WALLET, "trade_id": f"{tx}:0"},
                {"kind": "supplied", "asset": "WETH", "amount": str(n), "wallet": CHAIN_WALLET,
                 "trade_id": f"{tx}:1"},
            ]
            m.emit(CHAIN_VENUE, "record_tx_confirmed", instruction_id=iid, tx_hash=tx, block_number=m.n,
                   block_hash=block, gas_used=210_000, effective_gas_price=10**10, gas_fee=gas,
                   effects=effects, ts=ts)
            m.emit(CHAIN_VENUE, "record_completed", instruction_id=iid, ts=ts)
            m.move(key, -n - gas)
            m.supplied += n
        elif action == "interest":
            if m.supplied <= 0:
                continue
            amount = (m.supplied * draw(_decimals("0.00001", "0.001", 5))).quantize(Decimal("1e-18"))
            m.emit(CHAIN_VENUE, "record_interest", accrual_id=m.next("n"), asset="WETH", side="supplied",
                   amount=amount, index=Decimal("1.05"), ts=ts)
            m.supplied += amount
        elif action == "reward":
            amount = draw(_decimals("0.0001", "0.01", 4))
            m.emit(CHAIN_VENUE, "record_reward", accrual_id=m.next("e"), wallet=CHAIN_WALLET, asset="ETH",
                   amount=amount, kind="staking", ts=ts)
            m.move((CHAIN_VENUE, CHAIN_WALLET, "ETH"), amount)
        else:
            venue = draw(st.sampled_from(all_venues))
            key = (venue, _wallet(venue), "USDT")
            observed = m.held(key) + draw(_decimals("-1", "1", 2))
            m.next("o")
            m.emit(venue, "record_balance_observed", wallet=key[1], asset="USDT", observed=observed,
                   ledger=m.held(key), ts=ts)
    return m.out


# ---- checkers ------------------------------------------------------------------------------------


def _ledger(target: Any) -> Ledger:
    """The ledger behind an engine (its buffered events flushed first) or the ledger itself."""
    logger = getattr(target, "event_logger", None)
    if logger is not None:
        logger.flush()
        return target.ledger  # type: ignore[no-any-return]
    return target  # type: ignore[no-any-return]


Key = tuple[str, str, str]
# effect kind -> (book, sign, asset field, amount field, flow category) — the chain's accounting,
# written out again here on purpose (not imported from projections.folds).
_EFFECTS: dict[str, tuple[tuple[str, int, str, str, str], ...]] = {
    "supplied": (("balance", -1, "asset", "amount", "lending"),
                 ("supplied", 1, "asset", "amount", "lending")),
    "withdrawn": (("supplied", -1, "asset", "amount", "lending"),
                  ("balance", 1, "asset", "amount", "lending")),
    "borrowed": (("borrowed", 1, "asset", "amount", "lending"),
                 ("balance", 1, "asset", "amount", "lending")),
    "repaid": (("borrowed", -1, "asset", "amount", "lending"),
               ("balance", -1, "asset", "amount", "lending")),
    "staked": (("balance", -1, "asset", "amount", "conversions"),
               ("balance", 1, "receipt_asset", "receipt_amount", "conversions")),
    "unstake_requested": (("balance", -1, "receipt_asset", "receipt_amount", "conversions"),
                          ("pending", 1, "asset", "amount", "conversions")),
    "unstaked": (("pending", -1, "asset", "amount", "conversions"),
                 ("balance", 1, "asset", "amount", "conversions")),
    "wrapped": (("balance", -1, "asset", "amount", "conversions"),
                ("balance", 1, "receipt_asset", "amount", "conversions")),
    "unwrapped": (("balance", -1, "receipt_asset", "amount", "conversions"),
                  ("balance", 1, "asset", "amount", "conversions")),
    "sent": (("balance", -1, "asset", "amount", "external"),),
    "received": (("balance", 1, "asset", "amount", "external"),),
    "approved": (),
    "liquidated": (("borrowed", -1, "asset", "amount", "liquidations"),
                   ("supplied", -1, "receipt_asset", "receipt_amount", "liquidations")),
}


@dataclass
class Books:
    """The independent fold `check_conservation` compares with the projection.

    `flows[asset][category]` says where every unit came from: deposits, withdrawals, adjustments,
    trades (spot legs), realised (perp P&L), fees, funding, interest, gas, rewards, conversions
    (staking, wrapping), external (on-chain sends), liquidations, and lending and transit, which
    net to zero when nothing is lost (funds only move between books)."""

    balances: dict[Key, Decimal] = field(default_factory=dict)
    supplied: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    borrowed: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    transit: dict[str, tuple[str, str, str, Decimal]] = field(default_factory=dict)
    positions: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = field(default_factory=dict)
    flows: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    pnl: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _wallets: dict[str, str] = field(default_factory=dict)
    _txs: dict[str, list[tuple[str, str, str, str, Decimal, str]]] = field(default_factory=dict)

    def holdings(self) -> dict[str, Decimal]:
        """Per asset: balances + supplied - borrowed + in transit."""
        with localcontext(MONEY):
            return self._holdings()

    def _holdings(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for (_v, _w, a), x in self.balances.items():
            out[a] = out.get(a, ZERO) + x
        for (_v, a), x in self.supplied.items():
            out[a] = out.get(a, ZERO) + x
        for (_v, a), x in self.borrowed.items():
            out[a] = out.get(a, ZERO) - x
        for _src, _w, a, x in self.transit.values():
            out[a] = out.get(a, ZERO) + x
        return {a: x for a, x in sorted(out.items()) if x}

    def net_flows(self) -> dict[str, Decimal]:
        """Per asset: the sum of its flows over every category."""
        with localcontext(MONEY):
            return {a: x for a, c in sorted(self.flows.items()) if (x := sum(c.values(), ZERO))}

    # -- bookkeeping -----------------------------------------------------------------------------

    def _flow(self, asset: str, category: str, amount: Decimal) -> None:
        table = self.flows.setdefault(asset, {})
        table[category] = table.get(category, ZERO) + amount

    def _line(self, line: str, asset: str, amount: Decimal) -> None:
        self.pnl[(line, asset)] = self.pnl.get((line, asset), ZERO) + amount

    def _book(self, book: str, venue: str, wallet: str, asset: str, delta: Decimal, category: str,
              where: str, may_go_negative: bool = False) -> None:
        if book == "balance":
            key = (venue, wallet, asset)
            after = self.balances.get(key, ZERO) + delta
            self.balances[key] = after
            if after < 0 and delta < 0 and not may_go_negative:
                self.problems.append(f"{where}: balance {venue}/{wallet} {asset} went negative ({after})")
        else:
            target = self.supplied if book == "supplied" else self.borrowed
            after = target.get((venue, asset), ZERO) + delta
            target[(venue, asset)] = after
            if after < 0:
                self.problems.append(f"{where}: {book} {venue} {asset} went negative ({after})")
        sign = -1 if book == "borrowed" else 1
        self._flow(asset, category, delta * sign)

    def _position(self, venue: str, instrument: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        q, avg, realised = self.positions.get((venue, instrument), (ZERO, ZERO, ZERO))
        signed = qty if side == "buy" else -qty
        gain = ZERO
        if q == 0 or (q > 0) == (signed > 0):
            avg = (abs(q) * avg + qty * price) / (abs(q) + qty)
        else:
            closing = min(qty, abs(q))
            gain = closing * (price - avg) * (1 if q > 0 else -1)
            if q + signed == 0:
                avg = ZERO
            elif (q + signed > 0) != (q > 0):
                avg = price
        self.positions[(venue, instrument)] = (q + signed, avg, realised + gain)
        return gain

    # -- the fold --------------------------------------------------------------------------------

    def apply(self, nid: int, venue: str, e: Any) -> None:
        name = type(e).__name__
        where = f"notification {nid} ({name} at {venue})"
        if name == "InstructionAccepted":
            self._wallets[e.instruction_id] = e.instruction.get("wallet", "")
        elif name == "FundsDeposited":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "deposits", where)
        elif name == "FundsWithdrawn":
            self._book("balance", venue, e.wallet, e.asset, -e.amount, "withdrawals", where)
        elif name == "BalanceAdjusted":
            self._book("balance", venue, e.wallet, e.asset, e.delta, "adjustments", where)
        elif name == "OrderFilled":
            self._fill(venue, e, where)
        elif name == "FundingSettled":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "funding", where, True)
            self._line("funding", e.asset, e.amount)
        elif name == "InterestAccrued":
            book = "supplied" if e.side == "supplied" else "borrowed"
            self._book(book, venue, "", e.asset, e.amount, "interest", where)
            self._line("interest", e.asset, e.amount if book == "supplied" else -e.amount)
        elif name == "RewardAccrued":
            self._book("balance", venue, e.wallet, e.asset, e.amount, "rewards", where)
        elif name == "TransactionConfirmed":
            self._confirmed(venue, e, where)
        elif name == "TransactionReverted":
            if e.gas_fee:
                self._book("balance", venue, self._wallets.get(e.instruction_id, ""), "ETH", -e.gas_fee,
                           "gas", where)
                self._line("gas", "ETH", -e.gas_fee)
        elif name == "TransactionReorged":
            for book, v, wallet, asset, amount, category in self._txs.pop(e.tx_hash, []):
                self._book(book, v, wallet, asset, -amount, category, where)
                if category == "gas":
                    self._line("gas", "ETH", -amount)
        elif name in ("TransferSent", "TransferReceived", "TransferFailed"):
            self._transfer(name, venue, e, where)

    def _fill(self, venue: str, e: Any, where: str) -> None:
        inst = parse_instrument(e.instrument)
        perp = e.market_type == "perp"
        if not perp:
            sign = 1 if e.side == "buy" else -1
            self._book("balance", venue, e.wallet, inst.base, sign * e.quantity, "trades", where)
            self._book("balance", venue, e.wallet, inst.quote, -sign * e.quantity * e.price, "trades", where)
        gain = self._position(venue, e.instrument, e.side, e.quantity, e.price)
        if gain:
            self._line("realised", inst.settle, gain)
            if perp:
                self._book("balance", venue, e.wallet, inst.settle, gain, "realised", where, True)
        if e.fee:
            self._book("balance", venue, e.wallet, e.fee_asset, -e.fee, "fees", where, perp)
            self._line("fees", e.fee_asset, -e.fee)

    def _confirmed(self, venue: str, e: Any, where: str) -> None:
        default = self._wallets.get(e.instruction_id, "")
        applied: list[tuple[str, str, str, str, Decimal, str]] = []
        for effect in e.effects:
            kind = effect.get("kind", "")
            if kind not in _EFFECTS:
                self.problems.append(f"{where}: unknown effect kind {kind!r}")
            wallet = effect.get("wallet", default)
            for book, sign, asset_field, amount_field, category in _EFFECTS.get(kind, ()):
                amount = Decimal(effect[amount_field]) * sign
                target = "balance" if book == "pending" else book
                key_wallet = f"{wallet}:unstaking" if book == "pending" else wallet
                applied.append((target, venue, key_wallet, effect[asset_field], amount, category))
        if e.gas_fee:
            applied.append(("balance", venue, default, "ETH", -e.gas_fee, "gas"))
            self._line("gas", "ETH", -e.gas_fee)
        # Apply credits before debits: one transaction's effects are atomic, only its net counts.
        for book, v, wallet, asset, amount, category in sorted(applied, key=lambda r: r[4] < 0):
            self._book(book, v, wallet, asset, amount, category, where)
        self._txs[e.tx_hash] = applied

    def _transfer(self, name: str, venue: str, e: Any, where: str) -> None:
        if name == "TransferSent":
            self._book("balance", venue, e.from_wallet, e.asset, -e.amount, "transit", where)
            if e.fee:
                self._book("balance", venue, e.from_wallet, e.asset, -e.fee, "fees", where)
                self._line("fees", e.asset, -e.fee)
            self.transit[e.transfer_id] = (venue, e.from_wallet, e.asset, e.amount)
            self._flow(e.asset, "transit", e.amount)
            return
        sent = self.transit.pop(e.transfer_id, None)
        if sent is None:
            self.problems.append(f"{where}: transfer {e.transfer_id} arrived or failed but was never sent")
            if name == "TransferReceived":
                self._book("balance", venue, e.wallet, e.asset, e.amount, "external", where)
            return
        source, wallet, asset, amount = sent
        self._flow(asset, "transit", -amount)
        if name == "TransferReceived":
            if asset != e.asset or e.amount != amount:
                self.problems.append(f"{where}: transfer {e.transfer_id} sent {amount} {asset}, "
                                     f"received {e.amount} {e.asset}")
            self._book("balance", venue, e.wallet, e.asset, e.amount, "transit", where)
        else:
            if e.refunded != amount:
                self.problems.append(f"{where}: transfer {e.transfer_id} of {amount} {asset} failed and "
                                     f"refunded {e.refunded}")
            if e.refunded:
                self._book("balance", source, wallet, asset, e.refunded, "transit", where)


def independent_books(ledger: Ledger) -> Books:
    """Fold the stored events of `ledger` into `Books` with no projection code."""
    books = Books()
    streams: dict[Any, str] = {}
    with localcontext(MONEY):
        for nid, event in ledger.iter_events():
            if type(event).__name__ == "Opened":
                streams[event.originator_id] = event.venue
            venue = streams.get(event.originator_id)
            if venue is not None:
                books.apply(nid, venue, event)
    return books


def _nonzero(table: Mapping[Any, Decimal]) -> dict[Any, Decimal]:
    return {k: v for k, v in sorted(table.items()) if v}


def _diff(label: str, expected: Mapping[Any, Any], actual: Mapping[Any, Any]) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(actual), key=repr):
        if expected.get(key) != actual.get(key):
            out.append(f"{label} {key}: events say {expected.get(key)}, projection says {actual.get(key)}")
    return out


def check_conservation(target: EventDrivenStrategyEngine | Ledger, state: LedgerState | None = None) -> Books:
    """Funds are conserved: recompute the books from the stored events (`independent_books`) and
    compare them with the projection (the engine's live one, `state`, or a fold of the log).

    It checks (1) balances per (venue, wallet, asset), AAVE supplied and borrowed, funds in transit
    and positions equal the projection's; (2) per asset, balances + supplied - borrowed + in transit
    equal deposits - withdrawals + adjustments + spot legs + perp realised + fees + funding + interest
    + gas + rewards + conversions + external + liquidations; (3) the P&L lines realised, fees,
    funding, gas and interest equal their recorded flows; (4) every received or failed transfer was
    sent, in the same asset and not for more; (5) no balance went below zero except through a perp fill
    or funding, and no AAVE book ever did. Returns the books; raises `InvariantError`."""
    ledger = _ledger(target)
    if state is None:
        projection = getattr(target, "projection", None)
        state = projection.state if projection is not None else fold(e for _n, e in ledger.iter_events())
    books = independent_books(ledger)
    problems = list(books.problems)
    problems += _diff("balance", _nonzero(books.balances), _nonzero(state.balances))
    problems += _diff("supplied", _nonzero(books.supplied), _nonzero(state.supplied))
    problems += _diff("borrowed", _nonzero(books.borrowed), _nonzero(state.borrowed))
    problems += _diff("in transit", {k: (v, w, a, x) for k, (v, w, a, x) in books.transit.items()},
                      {k: (t.from_venue, t.from_wallet, t.asset, t.amount) for k, t in state.transit.items()})
    problems += _diff("position", {k: v for k, v in books.positions.items() if any(v)},
                      {k: (p.quantity, p.avg_entry, p.realised) for k, p in state.positions.items()
                       if p.quantity or p.avg_entry or p.realised})
    held: dict[str, Decimal] = {}
    with localcontext(MONEY):
        for (_v, _w, a), x in state.balances.items():
            held[a] = held.get(a, ZERO) + x
        for (_v, a), x in state.supplied.items():
            held[a] = held.get(a, ZERO) + x
        for (_v, a), x in state.borrowed.items():
            held[a] = held.get(a, ZERO) - x
        for t in state.transit.values():
            held[t.asset] = held.get(t.asset, ZERO) + t.amount
    problems += [f"asset {a}: held {x} but its flows add up to {y} ({books.flows.get(a)})"
                 for a, x, y in _pairs(_nonzero(held), books.net_flows())]
    lines = ("realised", "fees", "funding", "gas", "interest")
    problems += _diff("P&L line", _nonzero(books.pnl),
                      _nonzero({k: v for k, v in state.pnl.items() if k[0] in lines}))
    if problems:
        raise InvariantError("conservation", problems)
    return books


def _pairs(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Iterator[tuple[str, Decimal, Decimal]]:
    for key in sorted(set(a) | set(b)):
        if a.get(key, ZERO) != b.get(key, ZERO):
            yield key, a.get(key, ZERO), b.get(key, ZERO)


_decode = msgspec.json.Decoder().decode
_REJECTED = VenueLedger.InstructionRejected.TOPIC


def _non_finite(text: str) -> bool:
    try:
        return not Decimal(text.strip()).is_finite()
    except (InvalidOperation, ValueError):
        return False


def _walk(value: Any, path: str, out: list[str], texts: bool) -> None:
    if isinstance(value, float):
        out.append(f"{path}: JSON float {value!r}" if math.isfinite(value) else f"{path}: {value!r}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{path}.{k}", out, texts)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]", out, texts)
    elif isinstance(value, str) and texts and _non_finite(value):
        out.append(f"{path}: non-finite number {value!r}")


def check_no_floats(target: EventDrivenStrategyEngine | Ledger) -> int:
    """No stored payload holds a JSON float, NaN or infinity (SessionStarted's config text included).

    Decodes every stored row as plain JSON (through the ledger's codec: decryption, the chain suffix
    split off) and walks it. Text that reads as NaN or infinity is a violation too, except inside a
    rejection's `received`, which by design keeps the `repr` of whatever arrived (SPEC §12.17).
    Returns the number of rows read; raises `InvariantError`."""
    ledger = _ledger(target)
    problems: list[str] = []
    rows = 0
    for nid, _stream, _version, topic, state in ledger.iter_rows():
        rows += 1
        payload, _digest = split_state(ledger.codec.plaintext(state))
        data = _decode(payload)
        found: list[str] = []
        received = data.pop("received", None) if topic == _REJECTED else None
        _walk(data, topic, found, texts=True)
        if received is not None:
            _walk(received, f"{topic}.received", found, texts=False)
            if not all(isinstance(v, str) for v in received.values()):
                found.append(f"{topic}.received: values must be text (repr of what arrived)")
        config = data.get("config")
        if isinstance(config, str) and config.startswith("{"):
            _walk(_decode(config), f"{topic}.config", found, texts=False)
        problems += [f"notification {nid}: {f}" for f in found]
    if problems:
        raise InvariantError("no floats", problems)
    return rows


BACKTEST_FINAL_STATES = frozenset({
    State.FILLED, State.SUBMITTED, State.ACKNOWLEDGED, State.CANCELLED, State.REJECTED,
    State.TX_CONFIRMED, State.COMPLETED, State.IN_TRANSIT,
})
# A live venue can also leave an order part-filled or failed, a transfer failed, a transaction reverted.
LIVE_FINAL_STATES = BACKTEST_FINAL_STATES | frozenset({
    State.PARTIALLY_FILLED, State.FAILED, State.TRANSFER_FAILED, State.TX_REVERTED,
})
_AFTER_REJECTION_OK = frozenset({"InstructionRejected"})


def check_lifecycle(
    target: EventDrivenStrategyEngine | Ledger, final_states: Iterable[State] = BACKTEST_FINAL_STATES,
    state: LedgerState | None = None,
) -> dict[str, State]:
    """Every instruction's stored events are moves the lifecycle table (`aggregates.transitions`)
    allows, and each ends in one of `final_states`: filled, resting (submitted or acknowledged),
    cancelled, rejected (with a non-empty code and reason, and nothing sent for it), on chain
    confirmed or completed, or in transit. Pass your own `final_states` for live runs (FAILED,
    UNKNOWN, PARTIALLY_FILLED…). With `state` (or an engine) the projection's order statuses must
    agree. Returns the final state per instruction; raises `InvariantError`."""
    ledger = _ledger(target)
    allowed = frozenset(final_states)
    status: dict[str, State | None] = {}
    amounts: dict[str, Decimal] = {}
    filled: dict[str, Decimal] = {}
    owners: dict[str, str] = {}
    problems: list[str] = []
    for nid, event in ledger.iter_events():
        name = type(event).__name__
        iid = getattr(event, "instruction_id", None)
        if name == "TransferReceived":
            iid = owners.get(event.transfer_id)
        if not isinstance(iid, str):
            continue
        move = name
        if name == "InstructionAccepted":
            amount = event.instruction.get("amount")
            amounts[iid] = Decimal(amount) if amount else ZERO
        elif name == "OrderFilled":
            filled[iid] = filled.get(iid, ZERO) + event.quantity
            whole = bool(amounts.get(iid)) and filled[iid] >= amounts[iid]
            move = "OrderFilled.complete" if whole else "OrderFilled.partial"
        elif name == "OrderReconciled":
            move = f"OrderReconciled.{event.outcome}"
        elif name == "TransferSent":
            owners[event.transfer_id] = iid
        elif name == "InstructionRejected" and (not event.code or not event.reason):
            problems.append(f"notification {nid}: instruction {iid} rejected without a code and reason")
        before = status.get(iid)
        if before is State.REJECTED and name not in _AFTER_REJECTION_OK:
            problems.append(f"notification {nid}: {name} recorded for rejected instruction {iid}")
        try:
            status[iid] = next_state(iid, before, move)
        except IllegalTransitionError as e:
            problems.append(f"notification {nid}: {e}")
    final = {iid: s for iid, s in status.items() if s is not None}
    for iid, s in sorted(final.items()):
        if s not in allowed:
            problems.append(f"instruction {iid} ended in {s}, not one of {', '.join(sorted(allowed))}")
    projection = getattr(target, "projection", None)
    if state is None and projection is not None:
        state = projection.state
    if state is not None:
        for iid, s in sorted(final.items()):
            order = state.orders.get(iid)
            if order is not None and order.status != str(s):
                problems.append(f"instruction {iid}: events end in {s}, projection says {order.status}")
    if problems:
        raise InvariantError("lifecycle", problems)
    return final


def check_rebuild_equals(engine: EventDrivenStrategyEngine) -> None:
    """A fresh `InMemoryProjection` rebuilt from the store equals the engine's live projection
    (`LedgerState.comparable()`); raises `InvariantError` naming the parts that differ."""
    engine.event_logger.flush()
    fresh = InMemoryProjection()
    fresh.rebuild(engine.ledger)
    rebuilt, live = fresh.state.comparable(), engine.projection.state.comparable()
    problems = []
    for part in rebuilt:
        if rebuilt[part] != live.get(part):
            problems.append(f"{part}: rebuilt {_short(rebuilt[part])} != live {_short(live.get(part))}")
    if problems:
        raise InvariantError("rebuild equals live", problems)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "…"


def check_all(engine: EventDrivenStrategyEngine) -> None:
    """Every checker on one engine: conservation, no floats, lifecycle, rebuild equals live."""
    check_conservation(engine)
    check_no_floats(engine)
    check_lifecycle(engine)
    check_rebuild_equals(engine)
