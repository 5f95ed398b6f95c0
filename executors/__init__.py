"""The execution interfaces (SPEC §5): one API for backtest and live; executors only append events."""

from executors.base import BaseExecutionInterface
from executors.cex import CEXExecutionInterface
from executors.factory import ExecutionInterfaceFactory
from executors.onchain import OnChainExecutionInterface
from executors.transfer import TransferExecutionInterface

__all__ = [
    "BaseExecutionInterface",
    "CEXExecutionInterface",
    "ExecutionInterfaceFactory",
    "OnChainExecutionInterface",
    "TransferExecutionInterface",
]
