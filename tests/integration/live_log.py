"""A hand-made live-mode log, written through the real aggregates and Ledger, whose live fills sit at
known offsets from what the simulator produces for the same instructions and snapshots.

Until the live CEX and on-chain executors exist this stands in for their log: the instructions are
normalised by the same parsers the executors use, and every venue fact is recorded the way a live
executor records it (submitted before acknowledged, fills as venue trades, no reference price).

What the simulator does with each instruction (recorded config: 5 bps execution cost, okx perps 3 bps;
fees binance 0.1 % taker, bybit perp 0.055 %, bybit spot 0.1 %, okx 0.05 %; binance USDT withdrawal
0.8; gas from the snapshot), and where the live outcome was put:

- spot_buy: binance spot BUY 1 ETH at ref 3000. Sim 3001.5, fee 3.0015; live 3003 (ref x 1.0010),
  fee 3.003: +5 bps.
- perp_sell: bybit perp SELL 2 ETH at ref 3010. Sim 3008.495, fee 3.3093445; live 1.5 @ 3007.5 and
  0.5 @ 3006.664 (VWAP 3007.291), fees 2.48 + 0.83: +4 bps.
- partial: okx spot SELL 1 ETH at ref 3005. Sim 3003.4975, fee 1.50174875; live 0.4 @ 3002.8965,
  fee 0.6005793, then cancelled: +2 bps, filled quantities differ.
- failed: okx perp BUY 0.5 ETH at ref 3012 (okx perps cost 3 bps). Sim 3012.9036, fee 0.7532259;
  live OrderFailed (insufficient margin): sim only.
- resting: binance LIMIT BUY 0.5 ETH @ 2950, market 3001. Both rest, both cancelled: neither filled.
- btc_buy: bybit spot BUY 0.1 BTC at ref 60000. Sim 60030, fee 6.003; live 60012 (ref x 1.0002),
  fee 6.0012: -3 bps (live better).
- no_price: okx perp SELL 0.05 BTC with no BTC price in the snapshot. Sim rejects (no_price); live
  0.05 @ 61000, fee 1.525: live only.
- supply: AAVE_SUPPLY 10000 USDT at 20 gwei. Sim approve + supply = 256000 gas = 0.00512 ETH; live
  45000 + 180000 gas = 0.0045 ETH.
- stake: STAKE 2 ETH at rate 1.25 and 20 gwei. Sim 1.6 WEETH for 0.0018 ETH; live 1.599 WEETH,
  95000 gas @ 22 gwei = 0.00209 ETH.
- transfer: binance -> bybit 5000 USDT. Sim fee 0.8; live fee 1, received 20 minutes later.

Plus one instruction rejected before acceptance (never replayed) and one market observation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from aggregates.ids import client_order_id, instruction_id, transfer_id
from aggregates.session import Session
from aggregates.venue import VenueLedger
from executors.instructions import parse_chain, parse_order, parse_transfer
from ledger.app import Ledger, config_digest

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
SESSION = "live-2024-06-03"
ACCOUNT = "main"
CHAIN_WALLET = "0xdesk"
WALLETS = {("binance", "spot"): "spot", ("binance", "perp"): "futures", ("bybit", "spot"): "unified",
           ("bybit", "perp"): "unified", ("okx", "spot"): "trading", ("okx", "perp"): "trading"}
CONFIG: dict[str, Any] = {
    "execution_mode": "live",
    "account": ACCOUNT,
    "venues": ["binance", "bybit", "okx"],
    "chain_venue": "ethereum",
    "wallet_address": CHAIN_WALLET,
    "execution_costs": {"default_bps": "5", "okx": {"PERP": "3"}},
    "fees": {
        "binance": {"maker": "0.0002", "taker": "0.001"},
        "bybit": {"PERP": {"maker": "0.0002", "taker": "0.00055"},
                  "SPOT": {"maker": "0.0008", "taker": "0.001"}},
        "okx": {"maker": "0.0002", "taker": "0.0005"},
    },
    "transfers": {"withdrawal_fees": {"binance": {"USDT": "0.8"}}},
    "gas": {"default_gwei": "10"},
    "initial_balances": {"binance.spot": {"USDT": "50000"}, "bybit.unified": {"USDT": "50000"},
                         "okx.trading": {"ETH": "2", "USDT": "20000"},
                         "ethereum": {"ETH": "5", "USDT": "10000"}},
}


class LiveLogWriter:
    """Records a live session the way the live executors will: intent first, then venue facts."""

    def __init__(self, ledger: Ledger, session_key: str = SESSION, config: dict[str, Any] | None = None,
                 mode: str = "live") -> None:
        self.ledger = ledger
        self.session_key = session_key
        self.seq = 0
        text = json.dumps(config if config is not None else CONFIG, sort_keys=True, separators=(",", ":"))
        self.session = ledger.start_session(Session.start(
            session_key, mode, text, config_digest(text), "venues (live tickers)", "-", 0, "live-test", T0))
        self.venues: dict[str, VenueLedger] = {}
        self.accepted: dict[str, dict[str, str]] = {}

    def venue(self, name: str) -> VenueLedger:
        if name not in self.venues:
            kind = "onchain" if name == "ethereum" else "cex"
            self.venues[name] = VenueLedger.open(ACCOUNT, name, kind, T0)
        return self.venues[name]

    def save(self, *names: str) -> None:
        self.ledger.save(*(self.venue(n) for n in names))

    def next_id(self) -> str:
        self.seq += 1
        return instruction_id(self.session_key, self.seq)

    def deposit(self, venue: str, wallet: str, asset: str, amount: str) -> None:
        self.venue(venue).record_deposit(f"live:{venue}:{wallet}:{asset}", wallet, asset, D(amount), T0)
        self.save(venue)

    def order(self, venue: str, seed: dict[str, Any], market: dict[str, str], ts: datetime) -> str:
        """Accept and submit one order (the intent, written before the network call)."""
        iid = self.next_id()
        parsed = parse_order(seed, iid, venue)
        self.accepted[iid] = parsed.record(WALLETS[(venue, parsed.market_type)])
        agg = self.venue(venue)
        agg.record_accepted(iid, self.accepted[iid], {k: D(v) for k, v in market.items()}, ts)
        agg.record_submitted(iid, client_order_id(iid), ts)
        self.save(venue)
        return iid

    def acknowledge(self, venue: str, iid: str, ts: datetime) -> None:
        self.venue(venue).record_acknowledged(iid, f"{venue}-{self.seq}", ts)
        self.save(venue)

    def fill(self, venue: str, iid: str, trade: str, qty: str, price: str, fee: str, ts: datetime) -> None:
        agg = self.venue(venue)
        ins = self.accepted[iid]
        agg.record_fill(iid, trade, ins["market_type"], ins["instrument"], ins["side"], D(qty), D(price),
                        D(fee), "USDT", ts, "taker", ins["wallet"])
        self.save(venue)


def _market(**prices: str) -> dict[str, str]:
    return dict(prices)


def build_live_log(path: Path) -> dict[str, str]:
    """Write the live session described in the module docstring to `path`; return label -> id."""
    ledger = Ledger.open(path, create=True)
    try:
        w = LiveLogWriter(ledger)
        ids = _record(w)
        ledger.end_session("stopped", T0 + timedelta(hours=1))
    finally:
        ledger.close()
    return ids


def _record(w: LiveLogWriter) -> dict[str, str]:
    for (venue, wallet), assets in (
        (("binance", "spot"), {"USDT": "50000"}), (("bybit", "unified"), {"USDT": "50000"}),
        (("okx", "trading"), {"ETH": "2", "USDT": "20000"}),
        (("ethereum", CHAIN_WALLET), {"ETH": "5", "USDT": "10000"}),
    ):
        for asset, amount in assets.items():
            w.deposit(venue, wallet, asset, amount)
    w.session.record_market({"binance_eth_spot_price": D("3000"), "eth_usd_price": D("3000")}, T0)
    w.ledger.save(w.session)
    ids: dict[str, str] = {}
    at = iter(T0 + timedelta(minutes=m) for m in range(1, 100))

    def order(label: str, venue: str, seed: dict[str, Any], market: dict[str, str]) -> tuple[str, datetime]:
        ts = next(at)
        iid = w.order(venue, seed, market, ts)
        ids[label] = iid
        return iid, ts

    second = timedelta(seconds=1)
    iid, ts = order("spot_buy", "binance", {"venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT",
                                            "side": "BUY", "amount": "1"},
                    _market(binance_eth_spot_price="3000", eth_usd_price="3000"))
    w.acknowledge("binance", iid, ts + second)
    w.fill("binance", iid, "b-1", "1", "3003", "3.003", ts + 2 * second)

    iid, ts = order("perp_sell", "bybit", {"venue": "bybit", "trade_type": "PERP", "pair": "ETHUSDT-PERP",
                                           "side": "SHORT", "amount": "2"},
                    _market(bybit_eth_perp_price="3010", eth_usd_price="3000"))
    w.acknowledge("bybit", iid, ts + second)
    w.fill("bybit", iid, "y-1", "1.5", "3007.5", "2.48", ts + 2 * second)
    w.fill("bybit", iid, "y-2", "0.5", "3006.664", "0.83", ts + 3 * second)

    iid, ts = order("partial", "okx", {"venue": "okx", "trade_type": "SPOT", "pair": "ETH/USDT",
                                       "side": "SELL", "amount": "1"},
                    _market(okx_eth_spot_price="3005", eth_usd_price="3000"))
    w.acknowledge("okx", iid, ts + second)
    w.fill("okx", iid, "o-1", "0.4", "3002.8965", "0.6005793", ts + 2 * second)
    w.venue("okx").record_cancel_requested(iid, ts + 30 * second)
    w.venue("okx").record_cancelled(iid, "cancelled by the desk", ts + 31 * second)
    w.save("okx")

    iid, ts = order("failed", "okx", {"venue": "okx", "trade_type": "PERP", "pair": "ETH/USDT:USDT",
                                      "side": "BUY", "amount": "0.5"},
                    _market(okx_eth_perp_price="3012", eth_usd_price="3000"))
    w.venue("okx").record_failed(iid, "insufficient_margin", "okx 51008: insufficient margin", ts + second)
    w.save("okx")

    iid, ts = order("resting", "binance", {"venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT",
                                           "side": "BUY", "amount": "0.5", "order_type": "LIMIT",
                                           "price": "2950"},
                    _market(binance_eth_spot_price="3001", eth_usd_price="3001"))
    w.acknowledge("binance", iid, ts + second)
    w.venue("binance").record_cancel_requested(iid, ts + 30 * second)
    w.venue("binance").record_cancelled(iid, "cancelled by the desk", ts + 31 * second)
    w.save("binance")

    iid, ts = order("btc_buy", "bybit", {"venue": "bybit", "trade_type": "SPOT", "pair": "BTC/USDT",
                                         "side": "BUY", "amount": "0.1"},
                    _market(bybit_btc_spot_price="60000"))
    w.acknowledge("bybit", iid, ts + second)
    w.fill("bybit", iid, "y-3", "0.1", "60012", "6.0012", ts + 2 * second)

    iid, ts = order("no_price", "okx", {"venue": "okx", "trade_type": "PERP", "pair": "BTC/USDT:USDT",
                                        "side": "SELL", "amount": "0.05"},
                    _market(okx_eth_perp_price="3012", eth_usd_price="3000"))
    w.acknowledge("okx", iid, ts + second)
    w.fill("okx", iid, "o-2", "0.05", "61000", "1.525", ts + 2 * second)

    bad = w.next_id()
    w.venue("binance").record_rejected(bad, "invalid_side", "side: expected BUY, SELL, LONG or SHORT, "
                                       "got 'HOLD'", {"side": "'HOLD'"}, next(at))
    w.save("binance")

    ids["supply"] = _chain(w, next(at), {"operation": "AAVE_SUPPLY", "token": "USDT", "amount": "10000"},
                           _market(gas_price_gwei="20", eth_usd_price="3000"),
                           [("APPROVE", 45_000, 20, [{"kind": "approved", "asset": "USDT", "amount": "0",
                                                      "wallet": CHAIN_WALLET, "spender": "aave-pool"}]),
                            ("AAVE_SUPPLY", 180_000, 20, [{"kind": "supplied", "asset": "USDT",
                                                           "amount": "10000", "wallet": CHAIN_WALLET}])])
    ids["stake"] = _chain(w, next(at), {"operation": "STAKE", "token": "ETH", "amount": "2"},
                          _market(gas_price_gwei="20", weeth_eth_rate="1.25", eth_usd_price="3000"),
                          [("STAKE", 95_000, 22, [{"kind": "staked", "asset": "ETH", "amount": "2",
                                                   "wallet": CHAIN_WALLET, "receipt_asset": "WEETH",
                                                   "receipt_amount": "1.599"}])])

    ts = next(at)
    iid = w.next_id()
    move = parse_transfer({"from_venue": "binance", "to_venue": "bybit", "asset": "USDT", "amount": "5000"},
                          iid, "binance", "bybit")
    tid = transfer_id(iid)
    binance = w.venue("binance")
    binance.record_accepted(iid, move.record("spot", "unified"), {"eth_usd_price": D("3000")}, ts)
    binance.record_transfer_sent(iid, tid, "USDT", D("5000"), D("1"), "spot", "bybit", "unified", ts)
    w.save("binance")
    w.venue("bybit").record_transfer_received(tid, "binance", "unified", "USDT", D("5000"),
                                              ts + timedelta(minutes=20))
    w.save("bybit")
    ids["transfer"] = iid
    return ids


def _chain(w: LiveLogWriter, ts: datetime, seed: dict[str, Any], market: dict[str, str],
           txs: list[tuple[str, int, int, list[dict[str, str]]]]) -> str:
    """One on-chain instruction: each transaction signed (submitted), mined, then confirmed."""
    iid = w.next_id()
    op = parse_chain(seed, iid, "ethereum")
    chain = w.venue("ethereum")
    chain.record_accepted(iid, op.record(CHAIN_WALLET), {k: D(v) for k, v in market.items()}, ts)
    for n, (purpose, gas_used, gwei, effects) in enumerate(txs):
        tx_hash = "0x" + f"{w.seq:02x}{n:02x}".rjust(64, "a")
        block = "0x" + f"{w.seq:02x}{n:02x}".rjust(64, "b")
        wei = gwei * 10**9
        chain.record_tx_submitted(iid, tx_hash, w.seq * 10 + n, wei * 2, 10**9, gas_used * 2, purpose, ts)
        chain.record_tx_mined(iid, tx_hash, 20_000_000 + n, block, ts + timedelta(seconds=12))
        chain.record_tx_confirmed(iid, tx_hash, 20_000_000 + n, block, gas_used, wei,
                                  D(gas_used * wei) / D(10) ** 18,
                                  [dict(e, trade_id=f"{tx_hash}:{j}") for j, e in enumerate(effects)],
                                  ts + timedelta(minutes=3))
    chain.record_completed(iid, ts + timedelta(minutes=3))
    w.save("ethereum")
    return iid


def build_empty_live_log(path: Path) -> None:
    """A live session that only deposited funds: no instruction to shadow."""
    ledger = Ledger.open(path, create=True)
    try:
        w = LiveLogWriter(ledger, "live-empty")
        w.deposit("binance", "spot", "USDT", "1000")
        ledger.end_session("stopped", T0 + timedelta(minutes=5))
    finally:
        ledger.close()
