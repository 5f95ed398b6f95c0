"""Idempotency keys (issue 16): a transaction counts once whatever block confirms it, unless a reorg
was recorded; a fill counts once whatever spelling of its instrument the venue used."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from aggregates import VenueLedger
from aggregates.errors import InstructionError
from projections import balances, fold

T0 = datetime(2024, 6, 1, tzinfo=UTC)
RECEIVED = [{"kind": "received", "asset": "ETH", "amount": "1", "wallet": "0xa"}]


def chain_with_incoming_tx() -> VenueLedger:
    """10 ETH deposited; a transaction that brings in 1 ETH (no gas: someone else paid it)."""
    v = VenueLedger.open("main", "ethereum", "onchain", T0)
    v.record_deposit("d", "0xa", "ETH", D("10"), T0)
    v.record_accepted("r", {"kind": "RECEIVE", "asset": "ETH", "amount": "1", "wallet": "0xa"}, {}, T0)
    v.record_tx_submitted("r", "0x1", 0, 1, 1, 21000, "receive", T0)
    return v


def test_same_tx_confirmed_in_a_second_block_without_a_reorg_counts_once() -> None:
    """10 + 1 = 11 ETH; a second confirmation from another block (no reorg recorded) adds nothing."""
    v = chain_with_incoming_tx()
    assert v.record_tx_confirmed("r", "0x1", 5, "0xb5", 21000, 1, D("0"), RECEIVED, T0)
    assert not v.record_tx_confirmed("r", "0x1", 6, "0xb6", 21000, 1, D("0"), RECEIVED, T0)
    assert balances(fold(v.collect_events())) == {"ETH": D("11")}


def test_after_a_recorded_reorg_the_new_block_counts_once_and_the_old_is_reverted() -> None:
    v = chain_with_incoming_tx()
    log: list[Any] = []
    assert v.record_tx_confirmed("r", "0x1", 5, "0xb5", 21000, 1, D("0"), RECEIVED, T0)
    log += v.collect_events()
    s = fold(log)
    assert balances(s) == {"ETH": D("11")}
    assert v.record_tx_reorged("r", "0x1", "0xb5", T0)
    log += (new := v.collect_events())
    s = fold(new, s)
    assert balances(s) == {"ETH": D("10")}  # the old block's effect is reverted
    assert v.record_tx_confirmed("r", "0x1", 6, "0xb6", 21000, 1, D("0"), RECEIVED, T0)
    assert not v.record_tx_confirmed("r", "0x1", 6, "0xb6", 21000, 1, D("0"), RECEIVED, T0)
    assert not v.record_tx_confirmed("r", "0x1", 7, "0xb7", 21000, 1, D("0"), RECEIVED, T0)
    log += (new := v.collect_events())
    assert balances(fold(new, s)) == {"ETH": D("11")}
    assert balances(fold(log)) == {"ETH": D("11")}  # the whole log, from scratch


def test_a_snapshot_taken_with_block_hash_keys_still_counts_a_confirmation_once() -> None:
    """Snapshots written before this change hold `tx:HASH:BLOCK`; they read as the hash-only key."""
    v = chain_with_incoming_tx()
    v.record_tx_confirmed("r", "0x1", 5, "0xb5", 21000, 1, D("0"), RECEIVED, T0)
    snapshot = VenueLedger.Snapshot.take(v)
    snapshot.state["keys"] = [k if k != "tx:0x1" else "tx:0x1:0xb5" for k in snapshot.state["keys"]]
    restored = snapshot.mutate(None)
    assert not restored.record_tx_confirmed("r", "0x1", 6, "0xb6", 21000, 1, D("0"), RECEIVED, T0)


def spot_buy(v: VenueLedger) -> None:
    v.record_deposit("d", "spot", "USDT", D("10000"), T0)
    v.record_accepted("b", {"kind": "BUY", "instrument": "ETH/USDT", "side": "buy", "amount": "3",
                            "wallet": "spot"}, {}, T0)
    v.record_submitted("b", "cb", T0)


def test_one_trade_id_under_three_spellings_of_the_instrument_is_one_fill() -> None:
    """1 ETH at 3000, fee 3 USDT: 10000 - 3003 = 6997 USDT, whatever the second and third spelling."""
    v = VenueLedger.open("main", "binance", "cex", T0)
    spot_buy(v)
    assert v.record_fill("b", "t1", "spot", "ETHUSDT", "buy", D("1"), D("3000"), D("3"), "USDT", T0)
    assert not v.record_fill("b", "t1", "spot", "ETH/USDT", "buy", D("1"), D("3000"), D("3"), "USDT", T0)
    assert not v.record_fill("b", "t1", "spot", "eth/usdt", "buy", D("1"), D("3000"), D("3"), "USDT", T0)
    assert balances(fold(v.collect_events())) == {"ETH": D("1"), "USDT": D("6997")}
    restored = VenueLedger.Snapshot.take(v).mutate(None)  # the key survives a snapshot
    assert not restored.record_fill("b", "t1", "spot", "Eth/Usdt", "buy", D("1"), D("3000"), D("3"),
                                    "USDT", T0)


def test_perp_spellings_are_one_fill_and_distinct_from_spot() -> None:
    v = VenueLedger.open("main", "bybit", "cex", T0)
    v.record_deposit("d", "futures", "USDT", D("10000"), T0)
    v.record_accepted("p", {"kind": "PERP", "instrument": "ETH/USDT:USDT", "side": "sell", "amount": "2",
                            "wallet": "futures"}, {}, T0)
    v.record_submitted("p", "cp", T0)
    assert v.record_fill("p", "t1", "perp", "ETHUSDT-PERP", "sell", D("1"), D("3000"), D("0"), "USDT", T0,
                         wallet="futures")
    assert not v.record_fill("p", "t1", "perp", "ETH/USDT:USDT", "sell", D("1"), D("3000"), D("0"), "USDT",
                             T0, wallet="futures")
    assert not v.record_fill("p", "t1", "perp", "ETHUSDT", "sell", D("1"), D("3000"), D("0"), "USDT", T0,
                             wallet="futures")
    assert v.record_fill("p", "t1", "spot", "ETH/USDT", "sell", D("1"), D("3000"), D("0"), "USDT", T0,
                         wallet="futures")  # another market: another fill


def test_an_unreadable_instrument_is_refused_naming_the_field_and_records_nothing() -> None:
    v = VenueLedger.open("main", "binance", "cex", T0)
    spot_buy(v)
    before = v.version
    with pytest.raises(InstructionError, match=r"^instrument: cannot read an instrument from 'ETH\?USDT'$"):
        v.record_fill("b", "t1", "spot", "ETH?USDT", "buy", D("1"), D("3000"), D("3"), "USDT", T0)
    assert v.version == before
