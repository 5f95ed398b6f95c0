"""A restarted live engine starts from what the ledger holds, and its session is a new one."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from ledger.engine import EventDrivenStrategyEngine


def test_a_second_live_engine_sees_the_first_ones_balances_once(tmp_path: Path) -> None:
    """Opening balances are deposited once; the second engine's projection has them from the store."""
    config = {
        "execution_mode": "live",
        "ledger": {"url": f"sqlite:///{tmp_path}/live.db"},
        "initial_balances": {"binance": {"USDT": "1000"}},
    }
    first = EventDrivenStrategyEngine(config)
    assert first.position_monitor.balance("USDT", "binance") == D(1000)
    first.close(views=False)
    first.ledger.close()
    second = EventDrivenStrategyEngine(config)
    try:
        assert second.position_monitor.balance("USDT", "binance") == D(1000)
        assert second.session_key != first.session_key
    finally:
        second.close(views=False)
        second.ledger.close()


def test_a_live_transfer_is_refused_not_pretended(tmp_path: Path) -> None:
    """A live withdrawal to a chain venue without a wallet is a recorded rejection, never funds sent."""
    import asyncio

    engine = EventDrivenStrategyEngine(
        {
            "execution_mode": "live",
            "ledger": {"url": f"sqlite:///{tmp_path}/t.db"},
            "initial_balances": {"binance": {"ETH": "1"}},
        }
    )
    try:
        result = asyncio.run(
            engine.execute_trade_with_interface(
                {
                    "venue_type": "transfer",
                    "from_venue": "binance",
                    "to_venue": "ethereum",
                    "asset": "ETH",
                    "amount": "0.5",
                },
                {},
            )
        )
        assert result["status"] == "REJECTED" and result["code"] == "not_configured"
        assert "wallet_private_key" in result["reason"]
        assert engine.position_monitor.balance("ETH", "binance") == D(1)
    finally:
        engine.close(views=False)
        engine.ledger.close()
