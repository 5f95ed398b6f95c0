"""Pure translation between the chain's answers and the ledger's terms (no I/O, no web3 client).

Receipts, logs, simulation results and revert data arrive either as raw JSON-RPC (hex strings) or as
web3.py's formatted dicts (ints, `HexBytes`); every function here takes both. Effects are the ledger's
effect dicts (SPEC §12.2): `kind`, `asset`, `amount` (token units, decimal text), `wallet`, and
`trade_id` = `"<tx hash>:<log index>"` (`"<tx hash>:value"` for a plain ETH transfer, which has no log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

WEI_DECIMALS = 18
# uint256 amounts have up to 78 digits; the default context (28) would round them.
EXACT = Context(prec=100)
MAX_UINT256 = 2**256 - 1
# geth's txpool wants both fee fields raised by >= 10% for a same-nonce replacement; 12.5% (the
# largest per-block base-fee rise) clears it with margin.
REPLACEMENT_BUMP = Fraction(1125, 1000)
# eth_estimateGas runs at the latest block's time; the mined block is later, and Aave then takes its
# interest-accrual path (treasury mint, index updates), which costs more gas.
GAS_MARGIN = Fraction(5, 4)


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


TRANSFER = _topic("Transfer(address,address,uint256)")
APPROVAL = _topic("Approval(address,address,uint256)")
DEPOSIT = _topic("Deposit(address,uint256)")  # WETH9
WITHDRAWAL = _topic("Withdrawal(address,uint256)")  # WETH9
SUPPLY = _topic("Supply(address,address,address,uint256,uint16)")
WITHDRAW = _topic("Withdraw(address,address,address,uint256)")
BORROW = _topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")
REPAY = _topic("Repay(address,address,address,uint256,bool)")
STAKED = _topic("Staked(address,uint256,uint256,uint256)")
UNSTAKE_REQUESTED = _topic("UnstakeRequested(uint256,address,uint256,uint256,uint256)")
CLAIMED = _topic("Claimed(uint256,address,uint256)")

ERROR_STRING = selector("Error(string)")
PANIC = selector("Panic(uint256)")

# Aave v3 (core-v3 1.19) `Errors.sol`: require(cond, Errors.X) reverts with the number as a string.
AAVE_ERRORS: dict[int, str] = {
    1: "CALLER_NOT_POOL_ADMIN", 2: "CALLER_NOT_EMERGENCY_ADMIN",
    3: "CALLER_NOT_POOL_OR_EMERGENCY_ADMIN", 4: "CALLER_NOT_RISK_OR_POOL_ADMIN",
    5: "CALLER_NOT_ASSET_LISTING_OR_POOL_ADMIN", 6: "CALLER_NOT_BRIDGE",
    7: "ADDRESSES_PROVIDER_NOT_REGISTERED", 8: "INVALID_ADDRESSES_PROVIDER_ID", 9: "NOT_CONTRACT",
    10: "CALLER_NOT_POOL_CONFIGURATOR", 11: "CALLER_NOT_ATOKEN", 12: "INVALID_ADDRESSES_PROVIDER",
    13: "INVALID_FLASHLOAN_EXECUTOR_RETURN", 14: "RESERVE_ALREADY_ADDED", 15: "NO_MORE_RESERVES_ALLOWED",
    16: "EMODE_CATEGORY_RESERVED", 17: "INVALID_EMODE_CATEGORY_ASSIGNMENT",
    18: "RESERVE_LIQUIDITY_NOT_ZERO", 19: "FLASHLOAN_PREMIUM_INVALID", 20: "INVALID_RESERVE_PARAMS",
    21: "INVALID_EMODE_CATEGORY_PARAMS", 22: "BRIDGE_PROTOCOL_FEE_INVALID", 23: "CALLER_MUST_BE_POOL",
    24: "INVALID_MINT_AMOUNT", 25: "INVALID_BURN_AMOUNT", 26: "INVALID_AMOUNT", 27: "RESERVE_INACTIVE",
    28: "RESERVE_FROZEN", 29: "RESERVE_PAUSED", 30: "BORROWING_NOT_ENABLED",
    31: "STABLE_BORROWING_NOT_ENABLED", 32: "NOT_ENOUGH_AVAILABLE_USER_BALANCE",
    33: "INVALID_INTEREST_RATE_MODE_SELECTED", 34: "COLLATERAL_BALANCE_IS_ZERO",
    35: "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD", 36: "COLLATERAL_CANNOT_COVER_NEW_BORROW",
    37: "COLLATERAL_SAME_AS_BORROWING_CURRENCY", 38: "AMOUNT_BIGGER_THAN_MAX_LOAN_SIZE_STABLE",
    39: "NO_DEBT_OF_SELECTED_TYPE", 40: "NO_EXPLICIT_AMOUNT_TO_REPAY_ON_BEHALF",
    41: "NO_OUTSTANDING_STABLE_DEBT", 42: "NO_OUTSTANDING_VARIABLE_DEBT", 43: "UNDERLYING_BALANCE_ZERO",
    44: "INTEREST_RATE_REBALANCE_CONDITIONS_NOT_MET", 45: "HEALTH_FACTOR_NOT_BELOW_THRESHOLD",
    46: "COLLATERAL_CANNOT_BE_LIQUIDATED", 47: "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER",
    49: "INCONSISTENT_FLASHLOAN_PARAMS", 50: "BORROW_CAP_EXCEEDED", 51: "SUPPLY_CAP_EXCEEDED",
    52: "UNBACKED_MINT_CAP_EXCEEDED", 53: "DEBT_CEILING_EXCEEDED", 54: "UNDERLYING_CLAIMABLE_RIGHTS_NOT_ZERO",
    55: "STABLE_DEBT_NOT_ZERO", 56: "VARIABLE_DEBT_SUPPLY_NOT_ZERO", 57: "LTV_VALIDATION_FAILED",
    58: "INCONSISTENT_EMODE_CATEGORY", 59: "PRICE_ORACLE_SENTINEL_CHECK_FAILED",
    60: "ASSET_NOT_BORROWABLE_IN_ISOLATION", 61: "RESERVE_ALREADY_INITIALIZED",
    62: "USER_IN_ISOLATION_MODE_OR_LTV_ZERO", 63: "INVALID_LTV", 64: "INVALID_LIQ_THRESHOLD",
    65: "INVALID_LIQ_BONUS", 66: "INVALID_DECIMALS", 67: "INVALID_RESERVE_FACTOR", 68: "INVALID_BORROW_CAP",
    69: "INVALID_SUPPLY_CAP", 70: "INVALID_LIQUIDATION_PROTOCOL_FEE", 71: "INVALID_EMODE_CATEGORY",
    72: "INVALID_UNBACKED_MINT_CAP", 73: "INVALID_DEBT_CEILING", 74: "INVALID_RESERVE_INDEX",
    75: "ACL_ADMIN_CANNOT_BE_ZERO", 76: "INCONSISTENT_PARAMS_LENGTH", 77: "ZERO_ADDRESS_NOT_VALID",
    78: "INVALID_EXPIRATION", 79: "INVALID_SIGNATURE", 80: "OPERATION_NOT_SUPPORTED",
    81: "DEBT_CEILING_NOT_ZERO", 82: "ASSET_NOT_LISTED", 83: "INVALID_OPTIMAL_USAGE_RATIO",
    84: "INVALID_OPTIMAL_STABLE_TO_TOTAL_DEBT_RATIO", 85: "UNDERLYING_CANNOT_BE_RESCUED",
    86: "ADDRESSES_PROVIDER_ALREADY_ADDED", 87: "POOL_ADDRESSES_DO_NOT_MATCH", 88: "STABLE_BORROWING_ENABLED",
    89: "SILOED_BORROWING_VIOLATION", 90: "RESERVE_DEBT_NOT_ZERO", 91: "FLASHLOAN_DISABLED",
}  # fmt: skip

PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic underflow or overflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}

# Custom errors of the Lido-style staking contract (and common ERC-20 ones), by selector.
CUSTOM_ERRORS: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    selector(f"{name}({','.join(types)})"): (name, types, names)
    for name, types, names in (
        ("ZeroAmount", (), ()),
        ("InvalidRate", ("uint256",), ("rate",)),
        ("NotOwner", ("address",), ("caller",)),
        ("InsufficientBalance", ("address", "uint256", "uint256"), ("account", "balance", "needed")),
        ("InsufficientAllowance", ("address", "uint256", "uint256"), ("spender", "allowance", "needed")),
        ("UnknownRequest", ("uint256",), ("requestId",)),
        ("NotRequestOwner", ("uint256", "address"), ("requestId", "caller")),
        ("AlreadyClaimed", ("uint256",), ("requestId",)),
        ("ClaimNotReady", ("uint256", "uint256", "uint256"), ("requestId", "claimableAt", "now")),
        ("InsufficientLiquidity", ("uint256", "uint256"), ("available", "needed")),
        ("EthTransferFailed", ("address", "uint256"), ("to", "amount")),
    )
}


# ---- primitive readers ---------------------------------------------------------------------------


def as_bytes(value: Any) -> bytes:
    """Bytes from a 0x-hex string, `HexBytes` or bytes (None and "" are empty)."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = str(value)
    text = text[2:] if text[:2] in ("0x", "0X") else text
    return bytes.fromhex(text)


def as_hex(value: Any) -> str:
    """Lower-case 0x-hex text of a hash, topic or data field."""
    return "0x" + as_bytes(value).hex()


def as_int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text)


def address(value: Any) -> str:
    """A lower-case 0x address from a 20-byte address or a 32-byte topic word."""
    return "0x" + as_bytes(value)[-20:].hex()


def units(value: int, decimals: int) -> str:
    """Base units as decimal token text, exact and without exponent or trailing zeros."""
    with localcontext(EXACT):
        text = format(Decimal(value).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def to_base_units(amount: Decimal, decimals: int) -> int | None:
    """Token text/Decimal to base units; None when it has more decimals than the token."""
    with localcontext(EXACT):
        scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def gas_fee_eth(gas_used: int, effective_gas_price: int) -> Decimal:
    with localcontext(EXACT):
        return Decimal(gas_used * effective_gas_price).scaleb(-WEI_DECIMALS)


# ---- fees ----------------------------------------------------------------------------------------


class FeeCapError(ValueError):
    """The fees the chain needs now are above the configured cap."""


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee fields in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def bumped(self, factor: Fraction = REPLACEMENT_BUMP) -> Fees:
        """Both fields raised by `factor`, rounded up so the bump is never short by a wei."""
        return Fees(
            math.ceil(self.max_fee_per_gas * factor), math.ceil(self.max_priority_fee_per_gas * factor)
        )


def eip1559_fees(base_fee: int, suggested_tip: int, max_fee_cap: int | None, tip_cap: int | None) -> Fees:
    """Tip = the node's suggestion (at most `tip_cap`); max fee = 2 x base fee + tip, held to
    `max_fee_cap`. Raises `FeeCapError` when even base fee + tip is above the cap (the transaction
    could not be included now)."""
    tip = suggested_tip if tip_cap is None else min(suggested_tip, tip_cap)
    wanted = 2 * base_fee + tip
    if max_fee_cap is None:
        return Fees(wanted, tip)
    if base_fee + tip > max_fee_cap:
        raise FeeCapError(
            f"max_fee_per_gas: the chain needs {gwei(base_fee + tip)} gwei now (base fee "
            f"{gwei(base_fee)} + tip {gwei(tip)}), above the cap of {gwei(max_fee_cap)} gwei"
        )
    return Fees(min(wanted, max_fee_cap), tip)


def bump_within_cap(fees: Fees, max_fee_cap: int | None) -> Fees | None:
    """The replacement fees (both fields +12.5 %), or None when that would cross the cap."""
    bumped = fees.bumped()
    if max_fee_cap is not None and bumped.max_fee_per_gas > max_fee_cap:
        return None
    return bumped


def gwei(wei: int) -> str:
    return units(wei, 9)


def with_gas_margin(estimate: int) -> int:
    return math.ceil(estimate * GAS_MARGIN)


# ---- calldata ------------------------------------------------------------------------------------


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata for `signature` (e.g. ``"transfer(address,uint256)"``) with `args`."""
    types = signature[signature.index("(") + 1 : -1]
    arg_types = [t for t in types.split(",") if t]
    return selector(signature) + (abi_encode(arg_types, list(args)) if arg_types else b"")


def decode_words(types: Sequence[str], data: Any) -> tuple[Any, ...]:
    return tuple(abi_decode(list(types), as_bytes(data)))


# ---- revert reasons ------------------------------------------------------------------------------


def decode_revert(data: Any) -> str:
    """A readable reason from revert data: Aave's numeric codes by name, panics by meaning, the
    staking contract's custom errors with their arguments."""
    raw = as_bytes(data)
    if not raw:
        return "reverted without a reason"
    head, body = raw[:4], raw[4:]
    try:
        if head == ERROR_STRING:
            (text,) = abi_decode(["string"], body)
            return reason_text(str(text))
        if head == PANIC:
            (code,) = abi_decode(["uint256"], body)
            return f"panic 0x{code:02x}: {PANIC_CODES.get(code, 'unknown panic code')}"
        known = CUSTOM_ERRORS.get(head)
        if known is not None:
            name, types, names = known
            values = abi_decode(list(types), body) if types else ()
            args = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
            return f"{name}({args})"
    except (DecodingError, ValueError, OverflowError):
        pass
    return f"reverted with data {as_hex(raw)[:74]}"


def reason_text(text: str) -> str:
    """A revert string; Aave's bare numbers become `NAME (Aave error N)`."""
    stripped = text.strip()
    if stripped.isdigit() and int(stripped) in AAVE_ERRORS:
        return f"{AAVE_ERRORS[int(stripped)]} (Aave error {int(stripped)})"
    return stripped or "reverted without a reason"


def reason_from_message(message: str) -> str:
    """The reason in a node's error text (`execution reverted: 36`), for nodes that send no data."""
    text = message.strip()
    for prefix in ("execution reverted:", "execution reverted"):
        if text.lower().startswith(prefix):
            return reason_text(text[len(prefix) :])
    return text


# ---- receipts and effects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    symbol: str
    decimals: int


@dataclass(frozen=True)
class ParseContext:
    """What a receipt is read against: our address, the ledger's wallet name, the contracts."""

    address: str  # our wallet address (any case)
    wallet: str  # the ledger's wallet name for it
    pool: str = ""
    weth: str = ""
    staking: str = ""
    receipt_symbol: str = ""
    tokens: Mapping[str, Token] = field(default_factory=dict)  # lower-case address -> token

    def token(self, addr: str) -> Token | None:
        return self.tokens.get(addr.lower())

    @property
    def me(self) -> str:
        return self.address.lower()


@dataclass(frozen=True)
class ReceiptFacts:
    """The parts of a receipt the ledger records."""

    tx_hash: str
    status: int
    block_number: int
    block_hash: str
    gas_used: int
    effective_gas_price: int

    @property
    def gas_fee(self) -> Decimal:
        return gas_fee_eth(self.gas_used, self.effective_gas_price)


def receipt_facts(receipt: Mapping[str, Any]) -> ReceiptFacts:
    return ReceiptFacts(
        tx_hash=as_hex(receipt["transactionHash"]),
        status=as_int(receipt.get("status")),
        block_number=as_int(receipt["blockNumber"]),
        block_hash=as_hex(receipt["blockHash"]),
        gas_used=as_int(receipt["gasUsed"]),
        effective_gas_price=as_int(receipt.get("effectiveGasPrice")),
    )


_PROTOCOL_TOPICS = frozenset({DEPOSIT, WITHDRAWAL, SUPPLY, WITHDRAW, BORROW, REPAY, STAKED,
                              UNSTAKE_REQUESTED, CLAIMED})  # fmt: skip


def _is(log: Mapping[str, Any], contract: str) -> bool:
    return bool(contract) and address(log["address"]) == contract.lower()


def effects(
    receipt: Mapping[str, Any], ctx: ParseContext, tx: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """The ledger effects of one of our mined transactions, in log order.

    Protocol events (the Pool's Supply/Withdraw/Borrow/Repay, WETH's Deposit/Withdrawal, the staking
    contract's Staked/UnstakeRequested/Claimed) say what happened; the ERC-20 Transfer and Approval
    logs inside such a transaction are its plumbing (aToken mints, pulls under an allowance) and are
    not counted again. A receipt without protocol events is a token transfer or approval, and a
    receipt with no logs at all that moved ETH (`tx` given) is an ETH transfer.
    """
    facts = receipt_facts(receipt)
    logs = list(receipt.get("logs") or [])
    protocol = any(
        log["topics"]
        and as_hex(log["topics"][0]) in _PROTOCOL_TOPICS
        and (_is(log, ctx.pool) or _is(log, ctx.weth) or _is(log, ctx.staking))
        for log in logs
    )
    out: list[dict[str, str]] = []
    for log in logs:
        effect = _log_effect(log, ctx, protocol)
        if effect is not None:
            effect["trade_id"] = f"{facts.tx_hash}:{as_int(log['logIndex'])}"
            out.append(effect)
    if not logs and tx is not None:
        value = as_int(tx.get("value"))
        if value > 0 and address(tx["from"]) == ctx.me and tx.get("to"):
            out.append(
                {
                    "kind": "sent",
                    "asset": "ETH",
                    "amount": units(value, WEI_DECIMALS),
                    "wallet": ctx.wallet,
                    "to": address(tx["to"]),
                    "trade_id": f"{facts.tx_hash}:value",
                }
            )
    return out


def _fx(kind: str, asset: str, amount: int, decimals: int, ctx: ParseContext, **extra: str) -> dict[str, str]:
    return {"kind": kind, "asset": asset, "amount": units(amount, decimals), "wallet": ctx.wallet, **extra}


_POOL_KINDS = {SUPPLY: "supplied", WITHDRAW: "withdrawn", BORROW: "borrowed", REPAY: "repaid"}
# Where the amount sits in each Pool event's data, and which topic names the account.
_POOL_DATA = {
    SUPPLY: ["address", "uint256"],
    WITHDRAW: ["uint256"],
    BORROW: ["address", "uint256", "uint8", "uint256"],
    REPAY: ["uint256", "bool"],
}
_POOL_AMOUNT = {SUPPLY: 1, WITHDRAW: 0, BORROW: 1, REPAY: 0}


def _log_effect(log: Mapping[str, Any], ctx: ParseContext, protocol: bool) -> dict[str, str] | None:
    topics = [as_hex(t) for t in log.get("topics") or []]
    if not topics:
        return None
    sig, data, me = topics[0], log.get("data"), ctx.me
    if _is(log, ctx.pool) and sig in _POOL_KINDS:
        # Supply/Borrow: topic 2 is onBehalfOf; Withdraw/Repay: topic 2 is the user.
        token = ctx.token(address(topics[1]))
        if token is None or address(topics[2]) != me:
            return None
        values = decode_words(_POOL_DATA[sig], data)
        effect = _fx(_POOL_KINDS[sig], token.symbol, values[_POOL_AMOUNT[sig]], token.decimals, ctx)
        if sig == REPAY and values[1]:
            effect["use_atokens"] = "true"
        return effect
    if _is(log, ctx.weth) and sig in (DEPOSIT, WITHDRAWAL) and address(topics[1]) == me:
        (wad,) = decode_words(["uint256"], data)
        kind = "wrapped" if sig == DEPOSIT else "unwrapped"
        return _fx(kind, "ETH", wad, WEI_DECIMALS, ctx, receipt_asset="WETH")
    if _is(log, ctx.staking) and sig in (STAKED, UNSTAKE_REQUESTED, CLAIMED):
        return _staking_effect(sig, topics, data, ctx)
    if protocol or sig not in (TRANSFER, APPROVAL) or len(topics) < 3:
        return None
    token = ctx.token(address(log["address"]))
    if token is None:
        return None
    (value,) = decode_words(["uint256"], data)
    src, dst = address(topics[1]), address(topics[2])
    if sig == APPROVAL and src == me:
        effect = _fx("approved", token.symbol, value, token.decimals, ctx, spender=dst)
        if value == MAX_UINT256:
            effect["unlimited"] = "true"
        return effect
    if sig == TRANSFER and src == me and dst != me:
        return _fx("sent", token.symbol, value, token.decimals, ctx, to=dst)
    if sig == TRANSFER and dst == me and src != me:
        return _fx("received", token.symbol, value, token.decimals, ctx, **{"from": src})
    return None


def _staking_effect(sig: str, topics: list[str], data: Any, ctx: ParseContext) -> dict[str, str] | None:
    receipt_token = ctx.token(ctx.staking)
    decimals = receipt_token.decimals if receipt_token else WEI_DECIMALS
    receipt = ctx.receipt_symbol
    if sig == STAKED and address(topics[1]) == ctx.me:
        eth, shares, rate = decode_words(["uint256", "uint256", "uint256"], data)
        return _fx(
            "staked",
            "ETH",
            eth,
            WEI_DECIMALS,
            ctx,
            receipt_asset=receipt,
            receipt_amount=units(shares, decimals),
            rate=units(rate, WEI_DECIMALS),
        )
    if sig == UNSTAKE_REQUESTED and address(topics[2]) == ctx.me:
        shares, eth, claimable_at = decode_words(["uint256", "uint256", "uint256"], data)
        return _fx(
            "unstake_requested",
            "ETH",
            eth,
            WEI_DECIMALS,
            ctx,
            receipt_asset=receipt,
            receipt_amount=units(shares, decimals),
            request_id=str(as_int(topics[1])),
            claimable_at=str(claimable_at),
        )
    if sig == CLAIMED and address(topics[2]) == ctx.me:
        (eth,) = decode_words(["uint256"], data)
        return _fx("unstaked", "ETH", eth, WEI_DECIMALS, ctx, request_id=str(as_int(topics[1])))
    return None


# ---- pre-flight simulation -----------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedCall:
    index: int
    ok: bool
    gas_used: int
    reason: str
    return_data: bytes


def simulated_calls(result: Sequence[Mapping[str, Any]]) -> list[SimulatedCall]:
    """The calls of an `eth_simulateV1` answer (one block), in order."""
    if not result:
        return []
    out = []
    for i, call in enumerate(result[0].get("calls") or []):
        ok = as_int(call.get("status")) == 1
        data = as_bytes(call.get("returnData"))
        reason = ""
        if not ok:
            reason = (
                decode_revert(data)
                if data
                else reason_from_message(str((call.get("error") or {}).get("message", "reverted")))
            )
        out.append(SimulatedCall(i, ok, as_int(call.get("gasUsed")), reason, data))
    return out


WAD = Decimal(10) ** 18


def health_factor(account_data: Any) -> Decimal | None:
    """The health factor from `Pool.getUserAccountData` return data; None with no debt."""
    values = decode_words(["uint256"] * 6, account_data)
    if values[1] == 0 or values[5] == MAX_UINT256:
        return None
    with localcontext(EXACT):
        return Decimal(values[5]) / WAD
