"""`ExecutionInterfaceFactory`: the seed's factory for the three execution interfaces."""

from __future__ import annotations

from typing import Any

from executors.base import BaseExecutionInterface
from executors.cex import CEXExecutionInterface
from executors.onchain import OnChainExecutionInterface
from executors.simulated.transfer import SimulatedTransfers
from executors.transfer import TransferExecutionInterface

INTERFACE_TYPES = ("cex", "onchain", "transfer")


class ExecutionInterfaceFactory:
    @staticmethod
    def create_interface(
        interface_type: str, execution_mode: str, config: dict[str, Any]
    ) -> BaseExecutionInterface:
        """Create a single execution interface."""
        if interface_type == "cex":
            return CEXExecutionInterface(execution_mode, config)
        if interface_type == "onchain":
            return OnChainExecutionInterface(execution_mode, config)
        if interface_type == "transfer":
            return TransferExecutionInterface(execution_mode, config)
        raise ValueError(f"Unsupported interface type: {interface_type}")

    @staticmethod
    def create_all_interfaces(
        execution_mode: str, config: dict[str, Any]
    ) -> dict[str, BaseExecutionInterface]:
        """Create all execution interfaces for the given mode; they share one transfer backend."""
        interfaces = {
            name: ExecutionInterfaceFactory.create_interface(name, execution_mode, config)
            for name in INTERFACE_TYPES
        }
        shared: Any = SimulatedTransfers()
        if execution_mode == "live":
            from executors.live.transfer import LiveTransfers  # ccxt and web3 only when trading live

            shared = LiveTransfers(config)
            backends = [getattr(interfaces[k], "backend", None) for k in ("cex", "onchain")]
            shared.bind(*backends)
        for interface in interfaces.values():
            interface.transfer_backend = shared
        return interfaces

    @staticmethod
    def set_interface_dependencies(
        interfaces: dict[str, BaseExecutionInterface],
        position_monitor: Any,
        event_logger: Any,
        data_provider: Any,
    ) -> None:
        """Set dependencies for all interfaces."""
        for _interface_type, interface in interfaces.items():
            if interface:
                interface.set_dependencies(position_monitor, event_logger, data_provider)
