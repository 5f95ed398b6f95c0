"""Constants and the error every checker raises."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

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
