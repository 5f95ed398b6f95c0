"""`TransferExecutionInterface`: moves of funds between venues (and between wallets of one venue)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from executors.base import BaseExecutionInterface, settle


class TransferExecutionInterface(BaseExecutionInterface):
    """Cross-venue transfers: sent, in transit for the route's delay, received."""

    interface_type = "transfer"

    async def execute_trade(self, instruction: dict[str, Any], market_data: dict[str, Any]) -> dict[str, Any]:
        """A transfer instruction sent to `execute_trade` is a transfer."""
        return await self.execute_transfer(instruction, market_data)

    async def advance(self, ts: datetime, market: dict[str, Decimal]) -> None:
        await settle(self.transfers.advance(self, ts))

    def next_due(self) -> datetime | None:
        return self.transfers.next_due()  # type: ignore[no-any-return]

    async def reconcile(self) -> dict[str, Any]:
        """Live mode: resolve every transfer in flight (withdrawals by client id, arrivals by txid)."""
        reconcile = getattr(self.transfers, "reconcile", None)
        report: dict[str, Any] = await settle(reconcile(self)) if reconcile is not None else {}
        return report
