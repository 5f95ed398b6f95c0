"""What reconciliation reads from a venue and sets beside the ledger: positions, open orders,
balances per wallet (recorded as `BalanceObserved`, opening balances first when adopted)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from executors.live import ccxt_parse as parse
from executors.live.ccxt_client import VenueClient

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

ZERO = Decimal(0)


async def venue_positions(client: VenueClient, symbols: list[str]) -> dict[str, Decimal]:
    """Signed perp positions the venue reports for `symbols` (all of them when none is a perp)."""
    perps = [s for s in symbols if (client.market(s) or {}).get("contract")]
    answer = await client.call("fetch_positions", perps or None)
    return parse.signed_positions(answer, client.exchange.markets or {})


async def count_open_orders(
    client: VenueClient, symbols: list[str], ours: Iterable[str], report: dict[str, Any]
) -> None:
    """Open orders per symbol into `report`; those whose venue id is not ours counted as foreign."""
    mine = set(ours)
    for symbol in symbols:
        if client.market(symbol) is None:
            continue
        for o in await client.call("fetch_open_orders", symbol):
            report["open_orders"] += 1
            if str(o.get("id")) not in mine:
                report["foreign_open_orders"] += 1


def compare_positions(
    iface: BaseExecutionInterface, venue: str, positions: dict[str, Decimal]
) -> list[dict[str, Any]]:
    symbols = set(positions) | {
        str(r["symbol"]) for r in iface.monitor.positions(venue) if r.get("market_type") == "perp"
    }
    rows = []
    for symbol in sorted(symbols):
        ledger_amount = Decimal(iface.monitor.position(symbol, venue)["amount"])
        observed = positions.get(symbol, ZERO)
        rows.append(
            {"symbol": symbol, "observed": observed, "ledger": ledger_amount,
             "difference": observed - ledger_amount}
        )
    return rows


async def observe_balances(
    iface: BaseExecutionInterface, client: VenueClient, venue: str, adopt: bool
) -> list[dict[str, Any]]:
    """`BalanceObserved` for every asset either side holds, per wallet; opening balances first
    when `adopt` (`live.adopt_balances`) and the ledger holds nothing at the venue yet."""
    logger, monitor = iface.logger, iface.monitor
    agg = logger.venue(venue)
    spot, perp = iface.wallet(venue, "spot"), iface.wallet(venue, "perp")
    wallets = [(spot, "spot")] + ([(perp, "perp")] if perp != spot else [])
    observed: dict[str, dict[str, Decimal]] = {}
    for wallet, kind in wallets:
        params = {"type": "swap"} if venue == "binance" and kind == "perp" else {}
        answer = await client.call("fetch_balance", params)
        observed[wallet] = parse.wallet_balances(venue, kind, answer)
    held = ledger_assets(monitor, venue)
    if adopt and not any(held.values()):
        for wallet, assets in observed.items():
            for asset, amount in assets.items():
                if amount > 0:
                    agg.record_deposit(
                        f"opening:{venue}:{wallet}:{asset}", wallet, asset, amount, logger.now(),
                        now=logger.now(),
                    )
        logger.commit(agg)
        held = ledger_assets(monitor, venue)
    rows = []
    for wallet, assets in observed.items():
        for asset in sorted(set(assets) | set(held.get(wallet, {}))):
            seen = assets.get(asset, ZERO)
            ours = monitor.balance(asset, venue, wallet)
            agg.record_balance_observed(wallet, asset, seen, ours, logger.now(), now=logger.now())
            rows.append(
                {"wallet": wallet, "asset": asset, "observed": seen, "ledger": ours,
                 "difference": seen - ours}
            )
    logger.commit(agg)
    return rows


def ledger_assets(monitor: Any, venue: str) -> dict[str, dict[str, Decimal]]:
    """Wallet -> asset -> amount the ledger holds at `venue` (non-zero)."""
    out: dict[str, dict[str, Decimal]] = {}
    state = getattr(monitor, "state", None)
    for (v, wallet, asset), amount in sorted(getattr(state, "balances", {}).items()):
        if v == venue and amount:
            out.setdefault(wallet, {})[asset] = amount
    return out


__all__ = ["compare_positions", "count_open_orders", "ledger_assets", "observe_balances", "venue_positions"]
