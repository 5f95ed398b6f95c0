"""Reading the venues' and the chain's answers about transfers: withdrawals (id, our client id, txid,
status, fee), the deposit that carries a txid, and a transfer's arrival at our wallet on chain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from executors.live import web3_parse as parse
from executors.live.ccxt_parse import dec

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface
    from executors.live.chain import LiveChain

# Where each venue echoes the withdrawal's client id in the raw answer.
CLIENT_ID_KEYS = ("withdrawOrderId", "clientId", "requestId", "clientOid")
STATUSES = {"ok": "ok", "pending": "pending", "failed": "failed", "canceled": "canceled",
            "cancelled": "canceled"}


def withdrawal_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a ccxt transaction (from `withdraw` or `fetch_withdrawals`) the ledger keeps."""
    info = answer.get("info") or {}
    client_id = ""
    if isinstance(info, Mapping):
        client_id = next((str(info[k]) for k in CLIENT_ID_KEYS if info.get(k)), "")
    fee = answer.get("fee") or {}
    cost = dec(fee.get("cost")) if isinstance(fee, Mapping) else None
    return {
        "id": str(answer.get("id") or ""),
        "client_id": client_id,
        "txid": str(answer.get("txid") or ""),
        "status": STATUSES.get(str(answer.get("status") or "pending"), "pending"),
        "fee": cost,
        "amount": dec(answer.get("amount")),
    }


def deposit_matching(deposits: Iterable[Mapping[str, Any]], txid: str) -> tuple[Decimal, str] | None:
    """(amount, deposit id) of the credited deposit that carries `txid`, if the venue has it."""
    want = txid.lower()
    for d in deposits:
        if str(d.get("txid") or "").lower() != want or d.get("status") != "ok":
            continue
        amount = dec(d.get("amount"))
        if amount is not None and amount > 0:
            return amount, str(d.get("id") or txid)
    return None


async def arrival_on_chain(
    chain: LiveChain, iface: BaseExecutionInterface, txid: str, asset: str, confirmations: int
) -> tuple[Decimal, str] | None:
    """(amount, tx hash) that `txid` delivered to our wallet, once it has `confirmations`; None while
    it is unknown, pending or too recent. ETH by the transaction's value, tokens by their Transfer
    logs to us on the token's contract."""
    await chain.start(iface)  # token addresses and decimals
    receipt = await chain.client.receipt(txid)
    if receipt is None or parse.as_int(receipt.get("status")) != 1:
        return None
    mined = parse.as_int(receipt.get("blockNumber"))
    if await chain.client.block_number() - mined + 1 < confirmations:
        return None
    me = parse.address(chain.address)
    if asset == "ETH":
        tx = await chain.client.transaction(txid)
        if tx is None or parse.address(tx.get("to") or "") != me:
            return None
        wei = parse.as_int(tx.get("value"))
        return (Decimal(parse.units(wei, parse.WEI_DECIMALS)), txid) if wei > 0 else None
    token = chain.settings.tokens.get(asset)
    decimals = chain.decimals.get(asset)
    if not token or decimals is None:
        return None
    total = 0
    for log in receipt.get("logs") or []:
        topics = [parse.as_hex(t) for t in log.get("topics") or []]
        if len(topics) < 3 or topics[0] != parse.TRANSFER:
            continue
        if parse.address(log.get("address")) != parse.address(token):
            continue
        if parse.address("0x" + topics[2][-40:]) == me:
            total += int.from_bytes(parse.as_bytes(log.get("data")), "big")
    return (Decimal(parse.units(total, decimals)), txid) if total > 0 else None
