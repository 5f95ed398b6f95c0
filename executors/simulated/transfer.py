"""Simulated transfers between venues: sent (source -amount -fee, in transit), then received after the
route's delay; moves between wallets of one venue arrive at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from aggregates.ids import transfer_id
from aggregates.values import MONEY
from executors import results, risk
from executors.instructions import Invalid, TransferInstruction
from executors.simulated.volatile import Volatile

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

ZERO = Decimal(0)


@dataclass
class Pending:
    due: datetime
    transfer: TransferInstruction
    transfer_id: str
    to_wallet: str


class SimulatedTransfers(Volatile):
    """One per engine: every interface's `execute_transfer` lands here, so arrivals are in one queue."""

    volatile = ("pending",)

    def __init__(self) -> None:
        self.pending: list[Pending] = []

    def transfer(
        self, iface: BaseExecutionInterface, instruction: Any, market: dict[str, Decimal]
    ) -> dict[str, Any]:
        with localcontext(MONEY):
            venue, iid, parsed = iface.parse_transfer_at(instruction)
            if isinstance(parsed, Invalid):
                return iface.invalid(venue, iid, parsed, instruction)
            return self._send(iface, parsed, market, instruction)

    def _send(
        self, iface: BaseExecutionInterface, t: TransferInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        logger = iface.logger
        from_wallet = t.from_wallet or iface.wallet(t.venue)
        to_wallet = t.to_wallet or iface.wallet(t.to_venue)
        fee = ZERO if t.venue == t.to_venue else iface.costs.withdrawal_fee(t.venue, t.asset)
        have = iface.monitor.balance(t.asset, t.venue, from_wallet)
        problem = risk.balance(
            have, t.amount + fee, t.asset, f"{t.venue}/{from_wallet} (withdrawal fee {fee})"
        )
        if problem is not None:
            return iface.reject(t.venue, t.instruction_id, problem[0], problem[1], raw, t)
        now = logger.now()
        source = logger.venue(t.venue)
        tid = transfer_id(t.instruction_id)
        source.record_accepted(t.instruction_id, t.record(from_wallet, to_wallet), market, now)
        source.record_transfer_sent(
            t.instruction_id, tid, t.asset, t.amount, fee, from_wallet, t.to_venue, to_wallet, now
        )
        due = now + iface.costs.delay(t.venue, t.to_venue)
        if due <= now:
            target = source if t.to_venue == t.venue else logger.venue(t.to_venue)
            target.record_transfer_received(tid, t.venue, to_wallet, t.asset, t.amount, now)
            logger.commit(source, target) if target is not source else logger.commit(source)
            status = "COMPLETED"
        else:
            logger.commit(source)
            self.pending.append(Pending(due, t, tid, to_wallet))
            status = "IN_TRANSIT"
        result = results.transfer(iface.execution_mode, t, status, tid, fee, due.isoformat())
        iface.notify(result)
        return result

    def next_due(self) -> datetime | None:
        if not self.pending:
            return None
        return min(p.due for p in self.pending)

    def advance(self, iface: BaseExecutionInterface, ts: datetime) -> None:
        arrived = sorted((p for p in self.pending if p.due <= ts), key=lambda p: (p.due, p.transfer_id))
        if not arrived:
            return
        self.pending = [p for p in self.pending if p.due > ts]
        logger = iface.logger
        for p in arrived:
            t = p.transfer
            target = logger.venue(t.to_venue)
            target.record_transfer_received(
                p.transfer_id, t.venue, p.to_wallet, t.asset, t.amount, p.due, now=logger.now()
            )
            logger.commit(target)
            iface.notify(
                {"status": "COMPLETED", "instruction_id": t.instruction_id, "transfer_id": p.transfer_id}
            )

