"""Live execution through ccxt: clients (`ccxt_client`), pure parsing (`ccxt_parse`) and the CEX
backend (`cex.LiveCEX`) that plugs into `CEXExecutionInterface` in live mode."""

from executors.live.cex import LiveCEX, VenueUnavailable

__all__ = ["LiveCEX", "VenueUnavailable"]
