"""Live on-chain execution on anvil with the real AAVE v3: instructions per second through the live
executor, and the added latency over a raw web3.py send-and-wait of the same transaction.

    python bench/chain_bench.py [--n N] [--pg URL | --no-pg] [--json OUT]

One anvil (tests/chain: real Aave v3 Pool from the npm artifacts, automine on) serves every case.
"raw" is AsyncWeb3 alone, per transaction: latest block (fees), `eth_estimateGas`, sign,
`eth_sendRawTransaction`, then the receipt polled every `POLL_S`. "ours" is
`execute_trade_with_interface` with the whole lifecycle (parse, plan, `eth_simulateV1` pre-flight,
fees, balance check, `InstructionAccepted` and `TransactionSubmitted` committed before the broadcast,
`TransactionMined`, `TransactionConfirmed` with the decoded effects, `InstructionCompleted`,
projection and update handler), receipts polled every `POLL_S` too. Two kinds: an ERC-20 (USDT)
transfer and an AAVE USDT supply (allowance given once, unlimited, before timing). Reported per store
(SQLite FULL, SQLite NORMAL, PostgreSQL in a schema of its own): instructions/s, median and p99 of
each side, their difference, and the ledger commits per instruction alone (timed inside the run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3  # noqa: E402

from bench.pgschema import drop_schema, pg_url  # noqa: E402
from executors.live import web3_parse as parse  # noqa: E402
from ledger.engine import EventDrivenStrategyEngine  # noqa: E402
from tests.chain import abi  # noqa: E402
from tests.chain.aave import AaveMarket, deploy_aave_market  # noqa: E402
from tests.chain.anvil import CHAIN_ID, AnvilNode, dev_accounts  # noqa: E402
from tests.chain.tx import actor_key  # noqa: E402

PG_DEFAULT = os.environ.get("LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
POLL_S = 0.002
WARMUP = 10
FUNDED_ETH = 10_000
FUNDED_USDT = 10_000_000
ETHER = 10**18
USDT_UNIT = 10**6
AMOUNT = "1.5"  # USDT per transfer / supply
AMOUNT_UNITS = 1_500_000
RECIPIENT = "0x000000000000000000000000000000000000bEEF"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values) * 1e3, "p99_ms": pct(values, 0.99) * 1e3}


def fund(w3: Web3, market: AaveMarket, admin: str, address: str) -> None:
    """ETH by `anvil_setBalance`, USDT minted by the admin (an unlocked dev account)."""
    w3.provider.make_request("anvil_setBalance", [address, hex(FUNDED_ETH * ETHER)])  # type: ignore[arg-type]
    usdt = w3.eth.contract(address=Web3.to_checksum_address(market.usdt), abi=abi.MINTABLE_ERC20)
    tx = usdt.functions.mint(address, FUNDED_USDT * USDT_UNIT).transact({"from": admin})
    w3.eth.wait_for_transaction_receipt(tx)


# ---- raw web3.py -----------------------------------------------------------------------------------


async def raw(rpc_url: str, market: AaveMarket, key: bytes, kind: str, n: int) -> list[float]:
    """Sign, send and wait for `n` transactions of `kind` with AsyncWeb3 alone."""
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    account = Account.from_key(key)
    me = account.address
    amount = AMOUNT_UNITS
    pool = Web3.to_checksum_address(market.pool)
    usdt = Web3.to_checksum_address(market.usdt)
    if kind == "transfer":
        to, data = usdt, parse.encode_call("transfer(address,uint256)", Web3.to_checksum_address(RECIPIENT),
                                           amount)
    else:
        to, data = pool, parse.encode_call("supply(address,uint256,address,uint16)", usdt, amount, me, 0)
    nonce = int(await w3.eth.get_transaction_count(me, "latest"))

    async def one() -> None:
        nonlocal nonce
        block = await w3.eth.get_block("latest")
        tip = 10**9
        call = {"from": me, "to": to, "data": data, "value": 0}
        gas = parse.with_gas_margin(await w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        tx = {"type": 2, "chainId": CHAIN_ID, "nonce": nonce, "to": to, "data": data, "value": 0,
              "gas": gas, "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + tip, "maxPriorityFeePerGas": tip}
        signed = account.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        nonce += 1
        while True:
            try:
                receipt = await w3.eth.get_transaction_receipt(tx_hash)
            except Exception:  # not mined yet (automine is asynchronous)
                receipt = None
            if receipt is not None:
                assert receipt["status"] == 1
                return
            await asyncio.sleep(POLL_S)

    try:
        if kind == "supply":  # the allowance, once, like the ledger side's warm-up
            approve = parse.encode_call("approve(address,uint256)", pool, parse.MAX_UINT256)
            to_saved, data_saved = to, data
            to, data = usdt, approve
            await one()
            to, data = to_saved, data_saved
        for _ in range(WARMUP):
            await one()
        out = []
        for _ in range(n):
            t = time.perf_counter()
            await one()
            out.append(time.perf_counter() - t)
        return out
    finally:
        await w3.provider.disconnect()


# ---- through the ledger --------------------------------------------------------------------------------


def engine_config(rpc_url: str, market: AaveMarket, key: bytes, url: str, synchronous: str) -> dict[str, Any]:
    address = Account.from_key(key).address
    return {
        "execution_mode": "live",
        "account": "bench",
        "venues": ["binance"],
        "ledger": {"url": url, "synchronous": synchronous, "views": False},
        "session": {"key": f"chain-bench-{uuid.uuid4().hex[:8]}"},
        "rpc_url": rpc_url,
        "wallet_private_key": "0x" + key.hex(),
        "wallet_address": address,
        "chain_id": CHAIN_ID,
        "confirmations": 1,
        "max_fee_per_gas_gwei": "100",
        "max_priority_fee_gwei": "2",
        "poll_s": POLL_S,
        "approval": "unlimited",
        "pool_addresses_provider": market.addresses_provider,
        "tokens": {"USDT": market.usdt, "WETH": market.weth},
        "initial_balances": {"ethereum": {"ETH": str(FUNDED_ETH), "USDT": str(FUNDED_USDT)}},
    }


def instruction(kind: str) -> dict[str, Any]:
    if kind == "transfer":
        return {"venue_type": "onchain", "operation": "TRANSFER", "token": "USDT", "amount": AMOUNT,
                "to": RECIPIENT}
    return {"venue_type": "onchain", "operation": "AAVE_SUPPLY", "token": "USDT", "amount": AMOUNT}


Measured = dict[str, tuple[list[float], list[float]]]


async def ours(config: dict[str, Any], kinds: tuple[str, ...], n: int) -> Measured:
    """Per kind: (latency per instruction, ledger commit time per instruction)."""
    engine = EventDrivenStrategyEngine(config)
    recorder = engine.event_logger
    commits: list[float] = []
    original = recorder.commit

    def timed(*aggregates: Any) -> None:
        t = time.perf_counter()
        original(*aggregates)
        commits.append(time.perf_counter() - t)

    recorder.commit = timed  # type: ignore[method-assign]
    out: Measured = {}
    try:
        for kind in kinds:
            for _ in range(WARMUP):  # the first supply also approves (unlimited)
                result = await engine.execute_trade_with_interface(instruction(kind))
                assert result["status"] == "CONFIRMED", result
            totals, appends = [], []
            for _ in range(n):
                commits.clear()
                t = time.perf_counter()
                result = await engine.execute_trade_with_interface(instruction(kind))
                totals.append(time.perf_counter() - t)
                assert result["status"] == "CONFIRMED", result
                appends.append(sum(commits))
            out[kind] = (totals, appends)
        return out
    finally:
        backend: Any = getattr(engine.execution_interfaces["onchain"], "backend", None)
        await backend.client.close()
        engine.close(views=False)


# ---- main ---------------------------------------------------------------------------------------------


def run(n: int, pg: str | None) -> dict[str, Any]:
    kinds = ("transfer", "supply")
    results: dict[str, Any] = {"n": n, "poll_s": POLL_S, "kinds": list(kinds)}
    node = AnvilNode().start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        accounts = dev_accounts()
        market = deploy_aave_market(w3, accounts[0], accounts[1], treasury=accounts[9].address)
        raw_key = actor_key("bench-raw")
        fund(w3, market, accounts[0].address, Account.from_key(raw_key).address)
        results["raw_web3"] = {}
        for kind in kinds:
            baseline = asyncio.run(raw(node.rpc_url, market, raw_key, kind, n))
            rate = len(baseline) / sum(baseline)
            results["raw_web3"][kind] = {**summary(baseline), "instructions_per_s": rate}
        with tempfile.TemporaryDirectory() as tmp:
            stores: list[tuple[str, str, str]] = [
                ("sqlite_full", f"sqlite:///{tmp}/full.db", "FULL"),
                ("sqlite_normal", f"sqlite:///{tmp}/normal.db", "NORMAL"),
            ]
            schema = pg_url(pg) if pg else None
            if schema is not None:
                stores.append(("postgresql", schema[0], "FULL"))
            else:
                results["postgresql"] = "skipped: no server" if pg else "skipped: --no-pg"
            try:
                for name, url, sync in stores:
                    key = actor_key(f"bench-{name}")
                    fund(w3, market, accounts[0].address, Account.from_key(key).address)
                    config = engine_config(node.rpc_url, market, key, url, sync)
                    measured = asyncio.run(ours(config, kinds, n))
                    row: dict[str, Any] = {}
                    for kind, (totals, appends) in measured.items():
                        cell: dict[str, Any] = {"ours": summary(totals), "appends": summary(appends)}
                        cell["instructions_per_s"] = len(totals) / sum(totals)
                        base = results["raw_web3"][kind]
                        cell["added_median_ms"] = cell["ours"]["median_ms"] - base["median_ms"]
                        cell["added_p99_ms"] = cell["ours"]["p99_ms"] - base["p99_ms"]
                        row[kind] = cell
                    results[name] = row
            finally:
                if schema is not None and pg:
                    drop_schema(pg, schema[1])
        results["stores"] = [s[0] for s in stores]
    finally:
        node.stop()
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'':24} {'instr/s':>8} {'median ms':>10} {'p99 ms':>8} {'added med':>10} {'added p99':>10} "
             f"{'appends med':>12} {'appends p99':>12}   (n = {results['n']} per case)"]
    for kind in results["kinds"]:
        r = results["raw_web3"][kind]
        lines.append(f"{'raw web3 ' + kind:24} {r['instructions_per_s']:8.1f} {r['median_ms']:10.3f} "
                     f"{r['p99_ms']:8.3f}")
        for store in results["stores"]:
            c = results[store][kind]
            lines.append(
                f"{store + ' ' + kind:24} {c['instructions_per_s']:8.1f} {c['ours']['median_ms']:10.3f} "
                f"{c['ours']['p99_ms']:8.3f} {c['added_median_ms']:+10.3f} {c['added_p99_ms']:+10.3f} "
                f"{c['appends']['median_ms']:12.3f} {c['appends']['p99_ms']:12.3f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="timed instructions per kind and store")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (a schema of its own is used)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    results = run(args.n, None if args.no_pg else args.pg)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
