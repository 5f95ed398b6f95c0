"""Simulated chain venue: AAVE v3 supply/withdraw/borrow/repay, staking into a receipt token,
ETH and ERC-20 transfers; gas from the data's gas price; interest through the reserve indexes;
AAVE liquidation below health factor 1."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from aggregates.values import INDEX, MONEY
from executors import results, risk
from executors.costs import setting
from executors.instructions import ChainInstruction
from executors.market import usd_price
from executors.simulated.volatile import Volatile

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

ZERO = Decimal(0)
WEI = Decimal(10) ** 18
QUANTUM = Decimal("1e-18")
GENESIS = datetime(2024, 1, 1, tzinfo=UTC)
GENESIS_BLOCK = 18_908_895  # mainnet block at 2024-01-01 00:00 UTC; 12 s slots after it


@dataclass(frozen=True)
class Tx:
    purpose: str
    effects: tuple[dict[str, str], ...]


@dataclass
class Claim:
    due: datetime
    instruction_id: str
    amount: Decimal


# How each effect kind moves the wallet's own balances (AAVE books are checked separately).
_MOVES = {
    "wrapped": (("asset", "amount", -1), ("receipt_asset", "amount", 1)),
    "unwrapped": (("receipt_asset", "amount", -1), ("asset", "amount", 1)),
    "supplied": (("asset", "amount", -1),),
    "withdrawn": (("asset", "amount", 1),),
    "borrowed": (("asset", "amount", 1),),
    "repaid": (("asset", "amount", -1),),
    "staked": (("asset", "amount", -1), ("receipt_asset", "receipt_amount", 1)),
    "unstake_requested": (("receipt_asset", "receipt_amount", -1),),
    "sent": (("asset", "amount", -1),),
}


def _wallet_moves(effect: dict[str, str]) -> list[tuple[str, Decimal]]:
    return [(effect[a], Decimal(effect[n]) * sign) for a, n, sign in _MOVES.get(effect["kind"], ())]


def block_at(ts: datetime) -> tuple[int, str]:
    number = GENESIS_BLOCK + int((ts - GENESIS).total_seconds() // 12)
    return number, "0x" + hashlib.sha256(f"block:{number}".encode()).hexdigest()


class SimulatedChain(Volatile):
    """The chain side of a backtest: every operation becomes signed-looking transactions and effects."""

    volatile = ("approved", "index", "nonce", "claims")

    def __init__(self, config: dict[str, Any]) -> None:
        staking = config.get("staking") or {}
        self.receipt = str(staking.get("receipt_token", "WEETH")).upper()
        self.default_rate = setting(staking.get("rate", "1"), "staking.rate", INDEX)
        self.unstake_delay = timedelta(days=float(staking.get("unstake_delay_days", 7)))
        self.liquidation_bonus = Decimal(str((config.get("risk") or {}).get("liquidation_bonus", "0.05")))
        self.approved: set[str] = set()
        self.index: dict[tuple[str, str], Decimal] = {}
        self.nonce = 0
        self.claims: list[Claim] = []

    # ---- planning ----------------------------------------------------------------------------------

    def rate(self, market: dict[str, Decimal]) -> Decimal:
        return market.get(f"{self.receipt.lower()}_eth_rate", self.default_rate)

    def _approve(self, asset: str, wallet: str) -> list[Tx]:
        if asset in self.approved:
            return []
        return [
            Tx(
                "APPROVE",
                (
                    {
                        "kind": "approved",
                        "asset": asset,
                        "amount": "0",
                        "wallet": wallet,
                        "spender": "aave-pool",
                    },
                ),
            )
        ]

    def plan(self, op: ChainInstruction, wallet: str, market: dict[str, Decimal]) -> list[Tx]:
        token, amount = op.token, op.amount
        asset = "WETH" if token == "ETH" else token
        n = str(amount)

        def effect(kind: str, a: str, **extra: str) -> dict[str, str]:
            return {"kind": kind, "asset": a, "amount": n, "wallet": wallet, **extra}

        wrap = [Tx("WRAP", (effect("wrapped", "ETH", receipt_asset="WETH"),))] if token == "ETH" else []
        unwrap = [Tx("WRAP", (effect("unwrapped", "ETH", receipt_asset="WETH"),))] if token == "ETH" else []
        if op.operation == "AAVE_SUPPLY":
            return [*wrap, *self._approve(asset, wallet), Tx("AAVE_SUPPLY", (effect("supplied", asset),))]
        if op.operation == "AAVE_WITHDRAW":
            return [Tx("AAVE_WITHDRAW", (effect("withdrawn", asset),)), *unwrap]
        if op.operation == "AAVE_BORROW":
            return [Tx("AAVE_BORROW", (effect("borrowed", asset),)), *unwrap]
        if op.operation == "AAVE_REPAY":
            return [*wrap, *self._approve(asset, wallet), Tx("AAVE_REPAY", (effect("repaid", asset),))]
        if op.operation == "STAKE":
            receipt = amount / self.rate(market)
            return [
                Tx(
                    "STAKE",
                    (
                        {
                            "kind": "staked",
                            "asset": "ETH",
                            "amount": n,
                            "wallet": wallet,
                            "receipt_asset": self.receipt,
                            "receipt_amount": str(results.trim(receipt.quantize(QUANTUM))),
                        },
                    ),
                )
            ]
        if op.operation == "UNSTAKE":
            receipts = amount if token == self.receipt else amount / self.rate(market)
            eth = receipts * self.rate(market)
            return [
                Tx(
                    "UNSTAKE",
                    (
                        {
                            "kind": "unstake_requested",
                            "asset": "ETH",
                            "amount": str(results.trim(eth.quantize(QUANTUM))),
                            "wallet": wallet,
                            "receipt_asset": self.receipt,
                            "receipt_amount": str(results.trim(receipts.quantize(QUANTUM))),
                        },
                    ),
                )
            ]
        purpose = "TRANSFER_ETH" if token == "ETH" else "TRANSFER_ERC20"
        return [Tx(purpose, (effect("sent", token, to=op.to_address),))]

    # ---- checks ------------------------------------------------------------------------------------

    def check(
        self,
        iface: BaseExecutionInterface,
        op: ChainInstruction,
        txs: list[Tx],
        fees: list[Decimal],
        wallet: str,
        market: dict[str, Decimal],
    ) -> risk.Check:
        mon, venue = iface.monitor, op.venue
        if op.operation == "STAKE" and op.token != "ETH":
            return "invalid_field", f"token: STAKE takes ETH, got {op.token}"
        if op.operation == "UNSTAKE" and op.token not in ("ETH", self.receipt):
            return "invalid_field", f"token: UNSTAKE takes {self.receipt} (or ETH), got {op.token}"
        held: dict[str, Decimal] = {}
        for tx, fee in zip(txs, fees, strict=True):
            moves = [("ETH", -fee)] + [m for e in tx.effects for m in _wallet_moves(e)]
            for asset, delta in moves:
                if asset not in held:
                    held[asset] = mon.balance(asset, venue, wallet)
                held[asset] += delta
                if held[asset] < 0:
                    return (
                        "insufficient_balance",
                        f"amount: needs {held[asset] * -1} more {asset} at {venue}/{wallet} "
                        f"({tx.purpose}, gas included)",
                    )
        asset = "WETH" if op.token == "ETH" else op.token
        if op.operation == "AAVE_WITHDRAW":
            problem = risk.balance(mon.supplied(venue, asset), op.amount, f"{asset} supplied", venue)
            price = usd_price(market, asset)
            if problem is not None or price is None:
                return problem
            collateral, debt = mon.aave_totals(venue, market)
            threshold = iface.limits.liquidation_thresholds.get(asset, risk.ZERO)
            return risk.health_factor(
                collateral - op.amount * price * threshold, debt, iface.limits.min_health_factor
            )
        if op.operation == "AAVE_REPAY" and op.amount > mon.borrowed(venue, asset):
            return (
                "exceeds_debt",
                f"amount: {op.amount} is more than the {asset} debt {mon.borrowed(venue, asset)}",
            )
        if op.operation == "AAVE_BORROW":
            price = usd_price(market, asset)
            if price is None:
                return "no_price", f"market_data: no USD price for {asset} (give {asset.lower()}_usd_price)"
            collateral, debt = mon.aave_totals(venue, market)
            return risk.health_factor(collateral, debt + op.amount * price, iface.limits.min_health_factor)
        return None

    # ---- executing ---------------------------------------------------------------------------------

    def execute(
        self, iface: BaseExecutionInterface, op: ChainInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        with localcontext(MONEY):
            wallet = iface.wallet(op.venue)
            txs = self.plan(op, wallet, market)
            gwei = market.get("gas_price_gwei")  # bounded where the market data came in
            fees = [iface.costs.gas_fee(tx.purpose, gwei) for tx in txs]
            gas = sum((f[2] for f in fees), ZERO)
            problem = self.check(iface, op, txs, [f[2] for f in fees], wallet, market)
            if problem is not None:
                return iface.reject(op.venue, op.instruction_id, problem[0], problem[1], raw, op)
            self._reference_indexes(iface, market)
            logger = iface.logger
            agg = logger.venue(op.venue)
            now = logger.now()
            agg.record_accepted(op.instruction_id, op.record(wallet), market, now)
            tx_hash = self._send(iface, op.instruction_id, txs, fees, now)
            if op.operation == "UNSTAKE":
                eth = Decimal(txs[0].effects[0]["amount"])
                self.claims.append(Claim(now + self.unstake_delay, op.instruction_id, eth))
            else:
                agg.record_completed(op.instruction_id, now)
            logger.commit(agg)
            last = txs[-1].effects[0]
            amount_out = Decimal(last.get("receipt_amount", last["amount"]))
            out_token = (
                last.get("receipt_asset", last["asset"])
                if op.operation in ("STAKE", "UNSTAKE")
                else last["asset"]
            )
            if op.operation == "UNSTAKE":
                amount_out, out_token = Decimal(last["amount"]), "ETH"
            result = results.chain(
                iface.execution_mode,
                op,
                "CONFIRMED",
                amount_out,
                out_token,
                tx_hash,
                sum(f[0] for f in fees),
                fees[-1][1],
                gas,
                usd_price(market, op.token) or ZERO,
            )
            iface.notify(result)
            return result

    def _send(
        self,
        iface: BaseExecutionInterface,
        iid: str,
        txs: list[Tx],
        fees: list[tuple[int, int, Decimal]],
        now: datetime,
    ) -> str:
        agg = iface.logger.venue(iface.chain_venue)
        tx_hash = ""
        for i, (tx, (units, wei, fee)) in enumerate(zip(txs, fees, strict=True)):
            tx_hash = "0x" + hashlib.sha256(f"tx:{iid}:{i}:{self.nonce}".encode()).hexdigest()
            agg.record_tx_submitted(
                iid, tx_hash, self.nonce, wei * 2, min(wei, 10**9), units * 6 // 5, tx.purpose, now
            )
            self.nonce += 1
            number, block_hash = block_at(now)
            agg.record_tx_mined(iid, tx_hash, number, block_hash, now)
            effects = [dict(e, trade_id=f"{tx_hash}:{j}") for j, e in enumerate(tx.effects)]
            agg.record_tx_confirmed(iid, tx_hash, number, block_hash, units, wei, fee, effects, now)
            for e in tx.effects:
                if e["kind"] == "approved":
                    self.approved.add(e["asset"])
        return tx_hash

    def _reference_indexes(self, iface: BaseExecutionInterface, market: dict[str, Decimal]) -> None:
        """The index new holdings accrue from: the market's now. A book that is empty forgets its old
        reference (it was not updated while nothing was held), so nothing accrues for that time."""
        held = {(asset, side) for side, asset, _x in iface.monitor.lending(iface.chain_venue)}
        for slot in [s for s in self.index if s not in held]:
            del self.index[slot]
        for key, value in market.items():
            if key.startswith("aave_") and key.endswith("_index"):
                asset, side = key[5:-6].rsplit("_", 1)
                self.index.setdefault((asset.upper(), "supplied" if side == "supply" else "borrowed"), value)

    # ---- time-driven -------------------------------------------------------------------------------

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        if iface.monitor.has_lending(iface.chain_venue):
            return iface.logger.now()
        if not self.claims:
            return None
        return min(c.due for c in self.claims)

    def advance(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        with localcontext(MONEY):
            self._accrue(iface, ts, market)
            self._claim(iface, ts, market)
            self._liquidate(iface, market)

    def _accrue(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        """Interest = amount x (index now / index before - 1): AAVE's own accounting, per reserve."""
        logger, venue = iface.logger, iface.chain_venue
        held = {(asset, side): amount for side, asset, amount in iface.monitor.lending(venue)}
        agg = None
        for key, value in sorted(market.items()):
            if not (key.startswith("aave_") and key.endswith("_index")):
                continue
            name, kind = key[5:-6].rsplit("_", 1)
            slot = (name.upper(), "supplied" if kind == "supply" else "borrowed")
            before = self.index.get(slot)
            self.index[slot] = value
            amount = held.get(slot, ZERO)
            if before is None or value == before or amount <= 0:
                continue
            interest = (amount * (value / before - 1)).quantize(QUANTUM)
            if interest:
                agg = agg or logger.venue(venue)
                agg.record_interest(
                    f"{slot[0]}:{slot[1]}:{ts.isoformat()}",
                    slot[0],
                    slot[1],
                    interest,
                    value,
                    ts,
                    now=logger.now(),
                )
        if agg is not None:
            logger.commit(agg)
            iface.notify({"status": "INTEREST", "venue": venue})

    def _claim(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        due = [c for c in self.claims if c.due <= ts]
        if not due:
            return
        self.claims = [c for c in self.claims if c.due > ts]
        logger = iface.logger
        agg = logger.venue(iface.chain_venue)
        wallet = iface.wallet(iface.chain_venue)
        # Gas is paid up front from the wallet: a claim it cannot pay for waits for a later step.
        held = iface.monitor.balance("ETH", iface.chain_venue, wallet)
        claimed = False
        for claim in due:
            fee = iface.costs.gas_fee("CLAIM", market.get("gas_price_gwei"))
            if fee[2] > held:
                self.claims.append(claim)
                continue
            held += claim.amount - fee[2]
            tx = Tx(
                "CLAIM",
                ({"kind": "unstaked", "asset": "ETH", "amount": str(claim.amount), "wallet": wallet},),
            )
            self._send(iface, claim.instruction_id, [tx], [fee], logger.now())
            agg.record_completed(claim.instruction_id, logger.now())
            claimed = True
        if claimed:
            logger.commit(agg)
            iface.notify({"status": "COMPLETED", "venue": iface.chain_venue})

    def _liquidate(self, iface: BaseExecutionInterface, market: dict[str, Decimal]) -> None:
        """Below health factor 1 a liquidator repays half the largest debt and takes collateral + bonus."""
        mon, logger, venue = iface.monitor, iface.logger, iface.chain_venue
        collateral, debt = mon.aave_totals(venue, market)
        if debt <= 0 or collateral >= debt:
            return
        lending = mon.lending(venue)
        debts = sorted(
            ((a, x) for side, a, x in lending if side == "borrowed" and x > 0), key=lambda r: -r[1]
        )
        supplies = sorted(
            ((a, x) for side, a, x in lending if side == "supplied" and x > 0), key=lambda r: -r[1]
        )
        if not debts or not supplies:
            return
        (debt_asset, owed), (coll_asset, held) = debts[0], supplies[0]
        debt_px, coll_px = usd_price(market, debt_asset), usd_price(market, coll_asset)
        if not debt_px or not coll_px:
            return
        repaid = (owed / 2).quantize(QUANTUM)
        seized = min(held, (repaid * debt_px * (1 + self.liquidation_bonus) / coll_px).quantize(QUANTUM))
        iid = logger.next_instruction_id()
        agg = logger.venue(venue)
        wallet = iface.wallet(venue)
        agg.record_accepted(
            iid,
            {
                "kind": "LIQUIDATION",
                "venue_type": "onchain",
                "instrument": debt_asset,
                "asset": debt_asset,
                "amount": str(repaid),
                "wallet": wallet,
            },
            market,
            logger.now(),
        )
        tx = Tx(
            "LIQUIDATION",
            (
                {
                    "kind": "liquidated",
                    "asset": debt_asset,
                    "amount": str(repaid),
                    "receipt_asset": coll_asset,
                    "receipt_amount": str(seized),
                    "wallet": wallet,
                },
            ),
        )
        self._send(iface, iid, [tx], [(0, 0, ZERO)], logger.now())
        agg.record_completed(iid, logger.now())
        logger.commit(agg)
        iface.notify({"status": "LIQUIDATED", "venue": venue})
