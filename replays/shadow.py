"""Shadow replay: a recorded live session's instructions re-run through the simulated executors with the
market snapshot each was accepted with, and the live outcome compared with the simulated one.

Both logs are read by the same pure fold (`read_log`), so "filled", "fee" and "state" mean the same
thing on each side. Nothing here writes to the live database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any
from uuid import UUID

from aggregates.errors import IllegalTransitionError, InstructionError, LedgerError
from aggregates.transitions import State, next_state
from aggregates.values import MONEY, parse_instrument
from executors.base import DEFAULT_WALLETS
from ledger.backtest import merge

BPS = Decimal(10_000)
ZERO = Decimal(0)
# Every asset in every wallet the log touches gets this much in the simulation, so the simulator
# measures execution (price, fees, gas), not funding.
GENEROUS = Decimal(10) ** 12
# Instructions a venue or the simulator originates (not a decision of the desk): nothing to replay.
VENUE_INITIATED = frozenset({"LIQUIDATION"})
FILL_KINDS = ("both_filled", "both_unfilled", "live_only", "sim_only", "partial")
CONFIRMED = frozenset({State.TX_CONFIRMED, State.COMPLETED})


class ShadowError(LedgerError):
    """The log cannot be shadowed as asked (not live, nothing to replay, bad recorded config)."""


# ---- reading a log: one pure fold for the live and the simulated side ---------------------------

@dataclass(frozen=True)
class SessionInfo:
    key: str
    mode: str
    config: str
    config_digest: str
    ts: datetime


@dataclass
class Outcome:
    """What one log says happened to one instruction."""

    instruction_id: str
    venue: str
    venue_type: str  # cex | onchain | transfer
    instruction: dict[str, str]
    market: dict[str, Decimal]
    ts: datetime
    session: SessionInfo | None
    accepted: bool = True
    state: State | None = None
    quantity: Decimal = ZERO  # CEX: base units filled
    notional: Decimal = ZERO  # CEX: sum of quantity x price
    fills: int = 0
    fees: dict[str, Decimal] = field(default_factory=dict)  # trading and transfer fees, by asset
    reference_price: Decimal | None = None
    gas: dict[str, Decimal] = field(default_factory=dict)  # ETH per transaction hash (a reorg re-reports)
    amount_out: Decimal | None = None
    out_asset: str = ""
    code: str = ""
    reason: str = ""
    cancelled: bool = False

    @property
    def amount(self) -> Decimal:
        try:
            return Decimal(self.instruction.get("amount") or "0")
        except ArithmeticError:
            return ZERO

    @property
    def price(self) -> Decimal | None:
        """The volume-weighted average fill price."""
        if not self.quantity:
            return None
        with localcontext(MONEY):
            return self.notional / self.quantity

    @property
    def gas_fee(self) -> Decimal:
        return sum(self.gas.values(), ZERO)

    @property
    def filled(self) -> Decimal:
        """Base units filled (CEX), or the amount when the transaction or transfer went through."""
        if self.venue_type == "cex":
            return self.quantity
        if self.venue_type == "onchain":
            return self.amount if self.state in CONFIRMED else ZERO
        ok = self.state in (State.IN_TRANSIT, State.COMPLETED)
        return self.amount if ok else ZERO

    @property
    def status(self) -> str:
        return str(self.state) if self.state is not None else "NEW"


@dataclass
class Step:
    """One point of the live timeline the simulation walks: a market, an instruction or a cancel."""

    kind: str  # "market" | "instruction" | "cancel"
    ts: datetime
    session: SessionInfo | None
    market: dict[str, Decimal] = field(default_factory=dict)
    instruction_id: str = ""


@dataclass
class Log:
    sessions: list[SessionInfo] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # accepted instructions, in order
    rejected: dict[str, Outcome] = field(default_factory=dict)  # rejected before acceptance
    steps: list[Step] = field(default_factory=list)
    venues: dict[str, str] = field(default_factory=dict)  # venue -> venue type
    wallets: set[tuple[str, str]] = field(default_factory=set)
    assets: set[str] = field(default_factory=set)


def read_log(events: Iterable[tuple[int, Any]]) -> Log:
    """Fold a log's events (notification order) into per-instruction outcomes and a timeline."""
    fold = _Fold()
    with localcontext(MONEY):
        for _nid, event in events:
            fold.apply(event)
    return fold.log


class _Fold:
    def __init__(self) -> None:
        self.log = Log()
        self.streams: dict[UUID, tuple[str, str]] = {}
        self.session: SessionInfo | None = None
        self.transfers: dict[str, str] = {}

    def apply(self, e: Any) -> None:
        handler = getattr(self, f"_on_{type(e).__name__}", None)
        if handler is not None:
            handler(e)
            return
        o = self._outcome(e)
        if o is not None and type(e).__name__ in _LIFECYCLE:
            self._move(o, type(e).__name__)

    def _outcome(self, e: Any) -> Outcome | None:
        iid = getattr(e, "instruction_id", None)
        return self.log.outcomes.get(iid) if isinstance(iid, str) else None

    @staticmethod
    def _move(o: Outcome, event: str) -> None:
        # An intent out of order in a foreign log keeps the last legal state rather than stopping.
        with contextlib.suppress(IllegalTransitionError):
            o.state = next_state(o.instruction_id, o.state, event)

    # ---- sessions and venues -----------------------------------------------------------------

    def _on_SessionStarted(self, e: Any) -> None:
        self.session = SessionInfo(e.session_key, e.mode, e.config, e.config_digest, e.ts_event)
        self.log.sessions.append(self.session)

    def _on_MarketObserved(self, e: Any) -> None:
        self.log.steps.append(Step("market", e.ts_event, self.session, market=dict(e.market)))

    def _on_Opened(self, e: Any) -> None:
        self.streams[e.originator_id] = (e.venue, e.venue_type)
        self.log.venues[e.venue] = e.venue_type

    def _venue(self, e: Any) -> tuple[str, str]:
        return self.streams.get(e.originator_id, ("?", "cex"))

    def _on_FundsDeposited(self, e: Any) -> None:
        self.log.wallets.add((self._venue(e)[0], e.wallet))
        self.log.assets.add(e.asset)

    # ---- intents ---------------------------------------------------------------------------------

    def _on_InstructionAccepted(self, e: Any) -> None:
        venue, stream_type = self._venue(e)
        ins = dict(e.instruction)
        o = Outcome(e.instruction_id, venue, _venue_type(ins, stream_type), ins, dict(e.market),
                    e.ts_event, self.session)
        self._move(o, "InstructionAccepted")
        self.log.outcomes[o.instruction_id] = o
        self.log.steps.append(Step("instruction", e.ts_event, self.session, instruction_id=o.instruction_id))
        if ins.get("wallet"):
            self.log.wallets.add((venue, ins["wallet"]))
        if ins.get("to_venue") and ins.get("to_wallet"):
            self.log.wallets.add((ins["to_venue"], ins["to_wallet"]))
        self.log.assets.update(_assets(ins))

    def _on_InstructionRejected(self, e: Any) -> None:
        o = self._outcome(e)
        if o is None:
            venue, stream_type = self._venue(e)
            o = Outcome(e.instruction_id, venue, stream_type, {}, {}, e.ts_event, self.session,
                        accepted=False)
            self.log.rejected[o.instruction_id] = o
        self._move(o, "InstructionRejected")
        o.code, o.reason = e.code, e.reason

    def _on_CancelRequested(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, "CancelRequested")
            self._cancel_step(o, e.ts_event)

    def _cancel_step(self, o: Outcome, ts: datetime) -> None:
        if not o.cancelled:
            o.cancelled = True
            self.log.steps.append(Step("cancel", ts, self.session, instruction_id=o.instruction_id))

    # ---- venue and chain facts -------------------------------------------------------------------

    def _on_OrderFilled(self, e: Any) -> None:
        o = self._outcome(e)
        if o is None:
            return
        o.quantity += e.quantity
        o.notional += e.quantity * e.price
        o.fills += 1
        o.fees[e.fee_asset] = o.fees.get(e.fee_asset, ZERO) + e.fee
        if o.reference_price is None and e.reference_price is not None:
            o.reference_price = e.reference_price
        amount = o.amount
        self._move(o, "OrderFilled.complete" if amount and o.quantity >= amount else "OrderFilled.partial")

    def _on_OrderCancelled(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, "OrderCancelled")
            o.reason = o.reason or e.reason
            self._cancel_step(o, e.ts_event)

    def _on_OrderFailed(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, "OrderFailed")
            o.code, o.reason = e.code, e.reason

    def _on_OrderReconciled(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, f"OrderReconciled.{e.outcome}")

    def _on_TransactionConfirmed(self, e: Any) -> None:
        o = self._outcome(e)
        if o is None:
            return
        self._move(o, "TransactionConfirmed")
        o.gas[e.tx_hash] = e.gas_fee
        for effect in e.effects:
            kind = effect.get("kind", "")
            if kind == "approved" or "amount" not in effect:
                continue
            if kind == "staked" and "receipt_amount" in effect:
                o.amount_out, o.out_asset = Decimal(effect["receipt_amount"]), effect.get("receipt_asset", "")
            else:
                o.amount_out, o.out_asset = Decimal(effect["amount"]), effect.get("asset", "")

    def _on_TransactionReverted(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, "TransactionReverted")
            o.gas[e.tx_hash] = e.gas_fee
            o.code, o.reason = "reverted", e.reason

    def _on_TransferSent(self, e: Any) -> None:
        o = self._outcome(e)
        if o is None:
            return
        self._move(o, "TransferSent")
        o.fees[e.asset] = o.fees.get(e.asset, ZERO) + e.fee
        self.transfers[e.transfer_id] = o.instruction_id

    def _on_TransferReceived(self, e: Any) -> None:
        o = self.log.outcomes.get(self.transfers.get(e.transfer_id, ""))
        if o is not None:
            self._move(o, "TransferReceived")

    def _on_TransferFailed(self, e: Any) -> None:
        o = self._outcome(e)
        if o is not None:
            self._move(o, "TransferFailed")
            o.code, o.reason = "transfer_failed", e.reason


_LIFECYCLE = frozenset({
    "OrderSubmitted", "OrderAcknowledged", "OrderOutcomeUnknown", "InstructionCompleted",
    "TransactionSubmitted", "TransactionMined", "TransactionDropped", "TransactionReplaced",
    "TransactionReorged",
})


def _venue_type(ins: Mapping[str, str], stream_type: str) -> str:
    declared = ins.get("venue_type")
    if declared in ("cex", "onchain", "transfer"):
        return declared
    if ins.get("to_venue"):
        return "transfer"
    return "onchain" if stream_type == "onchain" else "cex"


def _assets(ins: Mapping[str, str]) -> set[str]:
    out = {ins[k].upper() for k in ("asset", "token_out") if ins.get(k)}
    instrument = ins.get("instrument", "")
    if "/" in instrument:
        try:
            parsed = parse_instrument(instrument)
        except InstructionError:
            return out
        out.update({parsed.base, parsed.quote})
    elif instrument:
        out.add(instrument.upper())
    return out


# ---- choosing what to replay --------------------------------------------------------------------

@dataclass
class Selection:
    """The live instructions to replay, the timeline around them, and the session whose config counts."""

    log: Log
    outcomes: list[Outcome]
    steps: list[Step]
    session: SessionInfo | None
    skipped: dict[str, int]
    notes: list[str]


def select(log: Log, source: str, force: bool = False) -> Selection:
    """The accepted instructions of the log's live sessions (of every session with `force`)."""
    modes = sorted({s.mode for s in log.sessions})
    if not force and "live" not in modes:
        held = f"only {', '.join(modes)} sessions" if modes else "no session"
        raise ShadowError(
            f"{source} is not a live log ({held}); shadow compares live fills with the simulator "
            "(add --force to replay it anyway)"
        )

    def wanted(session: SessionInfo | None) -> bool:
        return force or (session is not None and session.mode == "live")

    skipped = {"rejected_before_acceptance": 0, "venue_initiated": 0, "outside_live_sessions": 0}
    chosen: list[Outcome] = []
    for o in log.outcomes.values():
        if not wanted(o.session):
            skipped["outside_live_sessions"] += 1
        elif o.instruction.get("kind", "").upper() in VENUE_INITIATED:
            skipped["venue_initiated"] += 1
        else:
            chosen.append(o)
    skipped["rejected_before_acceptance"] = sum(1 for o in log.rejected.values() if wanted(o.session))
    if not chosen:
        raise ShadowError(f"no accepted instructions in the live sessions of {source}: nothing to shadow")
    ids = {o.instruction_id for o in chosen}
    steps = [s for s in log.steps
             if (s.kind == "market" and wanted(s.session)) or s.instruction_id in ids]
    session = chosen[0].session
    notes = []
    digests = {o.session.config_digest for o in chosen if o.session is not None}
    if len(digests) > 1:
        notes.append(f"the replayed instructions span {len(digests)} session configs; the simulation "
                     f"uses the first ({session.key if session else '?'})")
    return Selection(log, chosen, steps, session, skipped, notes)


# ---- the simulated side ---------------------------------------------------------------------------

def recorded_config(session: SessionInfo | None) -> dict[str, Any]:
    """The config the live session recorded (JSON, secrets already removed)."""
    if session is None or not session.config.strip():
        return {}
    try:
        data = json.loads(session.config, parse_float=Decimal)
    except ValueError:
        raise ShadowError(
            f"the config recorded by session {session.key!r} is not JSON; give the cost config with --config"
        ) from None
    if not isinstance(data, dict):
        raise ShadowError(f"the config recorded by session {session.key!r} is not a table; use --config")
    return data


def simulation_config(
    selection: Selection, store: str, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The recorded config (with `override` merged over it) turned into a backtest into `store`.

    Kept: execution costs, fees, gas, transfers, staking, risk limits, venues and wallets. Replaced:
    mode, store, session, data (the snapshots come from the log) and the balances, which are
    `GENEROUS` everywhere unless `override` gives `initial_balances` itself.
    """
    over = dict(override or {})
    base = merge(recorded_config(selection.session), over)
    dropped = ("ledger", "data", "session", "initial_capital", "initial_balances", "execution_mode")
    cfg = {k: v for k, v in base.items() if k not in dropped}
    log = selection.log
    chains = sorted(v for v, kind in log.venues.items() if kind == "onchain")
    if chains and "chain_venue" not in cfg:
        cfg["chain_venue"] = chains[0]
    chain = str(cfg.get("chain_venue", "ethereum"))
    named = _venues_named(selection) | {str(v).lower() for v in cfg.get("venues") or []}
    cfg["venues"] = sorted(v for v in named if v != chain and log.venues.get(v) != "onchain")
    chain_wallets = sorted(w for v, w in log.wallets if v == chain)
    if chain_wallets and not cfg.get("wallet_address"):
        cfg["wallet_address"] = chain_wallets[0]
    start = selection.session.ts if selection.session is not None else selection.steps[0].ts
    first = min((s.ts for s in selection.steps), default=start)
    key = f"shadow:{selection.session.key}" if selection.session is not None else "shadow"
    cfg.update(
        execution_mode="backtest",
        ledger={"url": store, "views": False},
        session={"key": key, "start": min(start, first).isoformat(), "seed": 0},
        initial_balances=over.get("initial_balances") or generous_balances(selection, cfg),
    )
    return cfg


def generous_balances(selection: Selection, cfg: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """`GENEROUS` of every asset the log names in every wallet it or the simulator uses."""
    log = selection.log
    chain = str(cfg.get("chain_venue", "ethereum"))
    staking = cfg.get("staking") or {}
    assets = set(log.assets) | {"USDT", "ETH"}
    for o in selection.outcomes:
        assets.update(o.fees)
    chain_assets = assets | {"WETH", str(staking.get("receipt_token", "WEETH")).upper()}
    venues = _venues_named(selection)
    table: dict[str, dict[str, str]] = {}
    for venue in sorted(venues):
        if venue == chain:
            wallets = {str(cfg.get("wallet_address") or "wallet")}
        else:
            own = (cfg.get("wallets") or {}).get(venue) or {}
            spot, perp = DEFAULT_WALLETS.get(venue, ("spot", "futures"))
            wallets = {str(own.get("spot", spot)), str(own.get("perp", perp))}
        wallets |= {w for v, w in log.wallets if v == venue}
        for wallet in sorted(wallets):
            if "." in wallet:
                continue  # `venue.wallet` keys cannot hold a dotted wallet name
            table[f"{venue}.{wallet}"] = {
                a: str(GENEROUS) for a in sorted(chain_assets if venue == chain else assets)
            }
    return table


def _venues_named(selection: Selection) -> set[str]:
    """Every venue the log opened or an instruction names (a transfer's target may never have opened)."""
    names = set(selection.log.venues) | {o.venue for o in selection.outcomes}
    return names | {o.instruction["to_venue"] for o in selection.outcomes if o.instruction.get("to_venue")}


def seed_instruction(o: Outcome) -> dict[str, Any]:
    """The seed-style instruction dict a strategy would have sent, rebuilt from the normalised record."""
    ins = o.instruction
    out: dict[str, Any]
    if o.venue_type == "cex":
        instrument = ins.get("instrument", "")
        market_type = ins.get("market_type") or ("perp" if ":" in instrument else "spot")
        side = ins.get("side", "").lower()
        out = {
            "venue_type": "cex",
            "venue": o.venue,
            "trade_type": "PERP" if market_type == "perp" else "SPOT",
            "pair": instrument,
            "side": {"buy": "BUY", "sell": "SELL"}.get(side, side.upper()),
            "amount": ins.get("amount"),
            "order_type": ins.get("order_type", "MARKET"),
        }
        if ins.get("price"):
            out["price"] = ins["price"]
        if ins.get("reduce_only") == "true":
            out["reduce_only"] = True
        if ins.get("max_slippage_bps"):
            out["max_slippage_bps"] = ins["max_slippage_bps"]
    elif o.venue_type == "onchain":
        out = {
            "venue_type": "onchain",
            "venue": o.venue,
            "operation": ins.get("operation") or ins.get("kind"),
            "token": ins.get("asset") or ins.get("instrument"),
            "amount": ins.get("amount"),
        }
        if ins.get("token_out"):
            out["token_out"] = ins["token_out"]
        if ins.get("to"):
            out["to"] = ins["to"]
    else:
        out = {
            "venue_type": "transfer",
            "from_venue": o.venue,
            "to_venue": ins.get("to_venue"),
            "asset": ins.get("asset") or ins.get("instrument"),
            "amount": ins.get("amount"),
        }
        if ins.get("wallet"):
            out["from_wallet"] = ins["wallet"]
        if ins.get("to_wallet"):
            out["to_wallet"] = ins["to_wallet"]
    out["instruction_id"] = o.instruction_id
    return out


def simulate(selection: Selection, config: Mapping[str, Any]) -> tuple[Log, dict[str, str]]:
    """Walk the live timeline through a fresh backtest engine; return its log's fold and the errors
    raised for instructions the engine refused outright (by instruction id)."""
    return asyncio.run(_simulate(selection, config))


async def _simulate(selection: Selection, config: Mapping[str, Any]) -> tuple[Log, dict[str, str]]:
    from ledger.engine import EventDrivenStrategyEngine

    engine = EventDrivenStrategyEngine(config)
    errors: dict[str, str] = {}
    try:
        live = selection.log.outcomes
        for step in selection.steps:
            when = max(step.ts, engine.event_logger.now())
            if step.kind == "market":
                await engine.advance_to(when, step.market)
            elif step.kind == "instruction":
                o = live[step.instruction_id]
                await engine.advance_to(when, o.market)
                try:
                    await engine.execute_trade_with_interface(seed_instruction(o), o.market)
                except LedgerError as e:
                    errors[o.instruction_id] = str(e)
            else:
                await engine.advance_to(when)
                _cancel_resting(engine, step.instruction_id)
        engine.close(views=False)
        return read_log(engine.ledger.iter_events()), errors
    finally:
        engine.ledger.close()


def _cancel_resting(engine: Any, instruction_id: str) -> None:
    """Cancel the simulated twin of an order the live venue cancelled, if it still rests.

    `SimulatedCEX` only offers cancel-all; a shadow needs one order, so this does for one resting
    order what its `cancel_all` does for each."""
    iface = engine.execution_interfaces["cex"]
    backend = iface.backend
    for rest in list(getattr(backend, "resting", ())):
        if rest.order.instruction_id != instruction_id:
            continue
        logger = iface.logger
        agg = logger.venue(rest.order.venue)
        agg.record_cancel_requested(instruction_id, logger.now())
        agg.record_cancelled(instruction_id, "the live order was cancelled", logger.now())
        logger.commit(agg)
        backend.resting.remove(rest)
        iface.notify({"status": "CANCELLED", "instruction_id": instruction_id})


# ---- comparing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One instruction, live against simulated. Differences are live minus simulated, except the
    price, which is signed so that positive means live was worse for the desk."""

    seq: int
    live: Outcome
    sim: Outcome | None
    fill: str  # one of FILL_KINDS
    price_diff_bps: Decimal | None
    cost_diff: Decimal | None  # price difference x live quantity, in the quote asset
    cost_asset: str
    fee_diff: dict[str, Decimal]
    gas_diff: Decimal | None
    amount_out_diff: Decimal | None
    note: str


@dataclass(frozen=True)
class Totals:
    instructions: int
    priced: int
    mean_bps: Decimal | None
    median_bps: Decimal | None
    min_bps: Decimal | None
    max_bps: Decimal | None
    cost_diff: dict[str, Decimal]
    fee_diff: dict[str, Decimal]
    gas_diff: Decimal
    amount_out_diff: dict[str, Decimal]
    fills: dict[str, int]
    skipped: dict[str, int]


@dataclass(frozen=True)
class ShadowReport:
    source: str
    sessions: tuple[str, ...]
    config_source: str
    balances: str
    rows: tuple[Comparison, ...]
    totals: Totals
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form: Decimals as plain decimal text, never floats."""
        t = self.totals
        return {
            "source": self.source,
            "sessions": list(self.sessions),
            "config_source": self.config_source,
            "balances": self.balances,
            "instructions": [_row_dict(r) for r in self.rows],
            "totals": {
                "instructions": t.instructions,
                "priced": t.priced,
                "mean_bps": plain(t.mean_bps),
                "median_bps": plain(t.median_bps),
                "min_bps": plain(t.min_bps),
                "max_bps": plain(t.max_bps),
                "cost_diff": {k: plain(v) for k, v in t.cost_diff.items()},
                "fee_diff": {k: plain(v) for k, v in t.fee_diff.items()},
                "gas_diff": plain(t.gas_diff),
                "amount_out_diff": {k: plain(v) for k, v in t.amount_out_diff.items()},
                "fills": dict(t.fills),
                "skipped": dict(t.skipped),
            },
            "notes": list(self.notes),
        }


def fill_kind(live: Decimal, sim: Decimal) -> str:
    if live and sim:
        return "both_filled" if live == sim else "partial"
    if live:
        return "live_only"
    return "sim_only" if sim else "both_unfilled"


def compare_one(seq: int, live: Outcome, sim: Outcome | None, error: str = "") -> Comparison:
    with localcontext(MONEY):
        sim_filled = sim.filled if sim is not None else ZERO
        kind = fill_kind(live.filled, sim_filled)
        bps = cost = None
        cost_asset = ""
        if live.venue_type == "cex" and sim is not None and live.price is not None and sim.price is not None:
            sign = Decimal(1) if live.instruction.get("side") == "buy" else Decimal(-1)
            gap = sign * (live.price - sim.price) + ZERO  # + 0 turns a sell's -0 into 0
            ref = sim.reference_price or sim.price
            bps = gap / ref * BPS
            cost = gap * live.quantity
            cost_asset = _quote(live.instruction.get("instrument", ""))
        sim_fees = sim.fees if sim is not None else {}
        fee_diff = {a: live.fees.get(a, ZERO) - sim_fees.get(a, ZERO)
                    for a in sorted(set(live.fees) | set(sim_fees))}
        gas = out = None
        if live.venue_type == "onchain":
            gas = live.gas_fee - (sim.gas_fee if sim is not None else ZERO)
            if (sim is not None and live.amount_out is not None and sim.amount_out is not None
                    and live.out_asset == sim.out_asset):
                out = live.amount_out - sim.amount_out
    return Comparison(seq, live, sim, kind, bps, cost, cost_asset, fee_diff, gas, out,
                      _note(live, sim, error))


def _note(live: Outcome, sim: Outcome | None, error: str) -> str:
    parts = []
    if live.code or (live.reason and live.state in (State.FAILED, State.CANCELLED, State.REJECTED)):
        parts.append(f"live {live.status.lower()}: {_reason(live)}")
    if error:
        parts.append(f"sim refused: {error}")
    elif sim is None:
        parts.append("sim: no outcome recorded")
    elif sim.code or sim.state in (State.REJECTED, State.FAILED):
        parts.append(f"sim {sim.status.lower()}: {_reason(sim)}")
    elif sim.state in (State.SUBMITTED, State.ACKNOWLEDGED):
        parts.append("sim: resting, not filled")
    return "; ".join(parts)


def _reason(o: Outcome) -> str:
    return ": ".join(x for x in (o.code, o.reason) if x) or o.status.lower()


def _quote(instrument: str) -> str:
    try:
        return parse_instrument(instrument).quote if instrument else ""
    except InstructionError:
        return ""


def totals(rows: list[Comparison], skipped: dict[str, int]) -> Totals:
    with localcontext(MONEY):
        priced = sorted(r.price_diff_bps for r in rows if r.price_diff_bps is not None)
        n = len(priced)
        mean = median = None
        if n:
            mean = sum(priced, ZERO) / n
            median = priced[n // 2] if n % 2 else (priced[n // 2 - 1] + priced[n // 2]) / 2
        cost: dict[str, Decimal] = {}
        fees: dict[str, Decimal] = {}
        out: dict[str, Decimal] = {}
        for r in rows:
            if r.cost_diff is not None:
                cost[r.cost_asset] = cost.get(r.cost_asset, ZERO) + r.cost_diff
            for asset, d in r.fee_diff.items():
                fees[asset] = fees.get(asset, ZERO) + d
            if r.amount_out_diff is not None:
                out[r.live.out_asset] = out.get(r.live.out_asset, ZERO) + r.amount_out_diff
        gas = sum((r.gas_diff for r in rows if r.gas_diff is not None), ZERO)
    fills = dict.fromkeys(FILL_KINDS, 0)
    for r in rows:
        fills[r.fill] += 1
    return Totals(len(rows), n, mean, median, priced[0] if n else None, priced[-1] if n else None,
                  dict(sorted(cost.items())), dict(sorted(fees.items())), gas, dict(sorted(out.items())),
                  fills, dict(skipped))


# ---- the whole job ------------------------------------------------------------------------------

def shadow(
    url: str, *, override: Mapping[str, Any] | None = None, override_name: str = "",
    force: bool = False,
) -> ShadowReport:
    """Read the live log at `url` (never writing to it), replay it through the simulator, compare."""
    from ledger.app import Ledger

    ledger = Ledger.open(url, create=False, synchronous="NORMAL")
    try:
        source = ledger.url.redacted
        log = read_log(ledger.iter_events())
    finally:
        ledger.close()
    selection = select(log, source, force)
    with tempfile.TemporaryDirectory(prefix="ledger-shadow-") as tmp:
        config = simulation_config(selection, str(Path(tmp) / "simulated.db"), override)
        sim, errors = simulate(selection, config)
    rows = [compare_one(i, o, sim.outcomes.get(o.instruction_id) or sim.rejected.get(o.instruction_id),
                        errors.get(o.instruction_id, ""))
            for i, o in enumerate(selection.outcomes, start=1)]
    sessions = tuple(dict.fromkeys(o.session.key for o in selection.outcomes if o.session is not None))
    recorded = "the config recorded by the live session"
    return ShadowReport(
        source=source,
        sessions=sessions,
        config_source=f"{override_name} merged over {recorded}" if override_name else recorded,
        balances=("initial_balances from " + override_name if override and override.get("initial_balances")
                  else f"generous: {GENEROUS:,} of every asset in every wallet"),
        rows=tuple(rows),
        totals=totals(rows, selection.skipped),
        notes=tuple(selection.notes),
    )


# ---- plain forms ----------------------------------------------------------------------------------

def plain(value: Decimal | None) -> str | None:
    """Decimal as plain text without exponent or trailing zeros; at most 12 decimals."""
    if value is None:
        return None
    with localcontext(MONEY):
        if value.as_tuple().exponent < -12:  # type: ignore[operator]
            value = value.quantize(Decimal("1e-12"))
        if value == value.to_integral_value():
            return format(value.quantize(Decimal(1)), "f")
        return format(value.normalize(), "f")


def _side_dict(o: Outcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {
        "status": o.status,
        "filled": plain(o.filled),
        "price": plain(o.price),
        "fills": o.fills,
        "fees": {k: plain(v) for k, v in sorted(o.fees.items())},
        "reference_price": plain(o.reference_price),
        "gas_fee": plain(o.gas_fee) if o.venue_type == "onchain" else None,
        "amount_out": plain(o.amount_out),
        "out_asset": o.out_asset or None,
        "code": o.code or None,
        "reason": o.reason or None,
    }


def _row_dict(r: Comparison) -> dict[str, Any]:
    ins = r.live.instruction
    return {
        "seq": r.seq,
        "instruction_id": r.live.instruction_id,
        "ts": r.live.ts.isoformat(),
        "venue": r.live.venue,
        "venue_type": r.live.venue_type,
        "kind": ins.get("kind", ""),
        "instrument": ins.get("instrument", ""),
        "market_type": ins.get("market_type"),
        "side": ins.get("side"),
        "amount": ins.get("amount"),
        "order_type": ins.get("order_type"),
        "live": _side_dict(r.live),
        "sim": _side_dict(r.sim),
        "fill": r.fill,
        "price_diff_bps": plain(r.price_diff_bps),
        "cost_diff": plain(r.cost_diff),
        "cost_asset": r.cost_asset or None,
        "fee_diff": {k: plain(v) for k, v in r.fee_diff.items()},
        "gas_diff": plain(r.gas_diff),
        "amount_out_diff": plain(r.amount_out_diff),
        "note": r.note,
    }


__all__ = [
    "Comparison", "Log", "Outcome", "ShadowError", "ShadowReport", "Totals", "compare_one", "plain",
    "read_log", "seed_instruction", "select", "shadow", "simulate", "simulation_config", "totals",
]
