"""The live chain's settings and its thin web3.py 8 `AsyncWeb3` client.

`ChainSettings` reads the seed-style config (top level or a `[chain]` table, secrets also from the
environment) and keeps the key out of every repr. `ChainClient` makes the JSON-RPC calls the backend
needs and turns every failure into a `ChainError` whose text has the secrets redacted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils.address import is_address, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from executors.costs import ConfigError
from executors.live import web3_parse as parse

ALCHEMY_URL = "https://eth-mainnet.g.alchemy.com/v2/{key}"
GWEI = 10**9
RPC_TIMEOUT_S = 10.0
SECRET_ENV = ("WALLET_PRIVATE_KEY", "ALCHEMY_API_KEY")
# web3.py logs the endpoint URI (where an API key lives) at debug level.
WEB3_LOGGERS = (
    "web3.providers.AsyncHTTPProvider",
    "web3._utils.http_session_manager.HTTPSessionManager",
    "web3.manager.RequestManager",
)


class ChainError(RuntimeError):
    """The node could not be reached or answered with an error (text already redacted)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RevertError(ChainError):
    """A call or gas estimate would revert; `reason` is decoded."""

    def __init__(self, reason: str) -> None:
        super().__init__("would_revert", reason)
        self.reason = reason


@dataclass(frozen=True)
class ChainSettings:
    """Everything the live chain backend is configured with; secrets never appear in the repr."""

    rpc_url: str = field(repr=False)
    private_key: str = field(repr=False)
    address: str
    chain_id: int | None
    confirmations: int
    max_fee_cap: int | None  # wei
    tip_cap: int | None  # wei
    pool_addresses_provider: str
    staking_contract: str
    receipt_symbol: str
    tokens: dict[str, str]  # symbol -> checksum address
    decimals: dict[str, int]  # symbol -> decimals given in the config
    approval: str  # "exact" | "unlimited"
    poll_s: float
    confirm_timeout_s: float
    drop_after_s: float
    replace_after_s: float
    max_replacements: int
    reorg_window: int
    rpc_timeout_s: float
    secrets: tuple[str, ...] = field(repr=False, default=())

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ChainSettings:
        table = dict(config.get("chain") or {})

        def get(key: str, default: Any = None) -> Any:
            value = table.get(key, config.get(key))
            return default if value is None else value

        key = str(get("wallet_private_key") or os.environ.get("WALLET_PRIVATE_KEY") or "").strip()
        alchemy = str(get("alchemy_api_key") or os.environ.get("ALCHEMY_API_KEY") or "").strip()
        if not key:
            raise ConfigError(
                "wallet_private_key",
                "live on-chain execution needs a wallet key (config or WALLET_PRIVATE_KEY)",
            )
        try:
            account: LocalAccount = Account.from_key(key)
        except Exception:  # never echo the value: it is the key
            raise ConfigError("wallet_private_key", "is not a valid private key") from None
        address = str(get("wallet_address") or account.address)
        if not is_address(address) or address.lower() != account.address.lower():
            raise ConfigError("wallet_address", f"{address!r} is not the address of wallet_private_key")
        url = str(get("rpc_url") or "")
        if not url:
            if not alchemy:
                raise ConfigError("rpc_url", "live on-chain execution needs rpc_url or alchemy_api_key")
            url = str(get("alchemy_url", ALCHEMY_URL)).replace("{key}", alchemy)
        staking = dict(config.get("staking") or {})
        tokens: dict[str, str] = {}
        decimals: dict[str, int] = {}
        for symbol, spec in sorted(dict(get("tokens", {})).items()):
            where = spec.get("address") if isinstance(spec, Mapping) else spec
            if not isinstance(where, str) or not is_address(where):
                raise ConfigError(f"tokens.{symbol}", f"expected a token address, got {where!r}")
            tokens[str(symbol).upper()] = to_checksum_address(where)
            if isinstance(spec, Mapping) and spec.get("decimals") is not None:
                decimals[str(symbol).upper()] = int(spec["decimals"])
        receipt = str(staking.get("receipt_token", get("receipt_token", "STETH"))).upper()
        staking_contract = _optional_address(
            get("staking_contract", staking.get("contract", "")), "staking_contract"
        )
        if staking_contract:
            tokens.setdefault(receipt, staking_contract)
        approval = str(get("approval", "exact"))
        if approval not in ("exact", "unlimited"):
            raise ConfigError("approval", f"expected exact or unlimited, got {approval!r}")
        return cls(
            rpc_url=url,
            private_key=key,
            address=to_checksum_address(address),
            chain_id=int(get("chain_id")) if get("chain_id") is not None else None,
            confirmations=max(1, int(get("confirmations", 1))),
            max_fee_cap=_gwei(get("max_fee_per_gas_gwei"), "max_fee_per_gas_gwei"),
            tip_cap=_gwei(get("max_priority_fee_gwei"), "max_priority_fee_gwei"),
            pool_addresses_provider=_optional_address(
                get("pool_addresses_provider", ""), "pool_addresses_provider"
            ),
            staking_contract=staking_contract,
            receipt_symbol=receipt,
            tokens=tokens,
            decimals=decimals,
            approval=approval,
            poll_s=float(get("poll_s", 0.05)),
            confirm_timeout_s=float(get("confirm_timeout_s", 600)),
            drop_after_s=float(get("drop_after_s", 60)),
            replace_after_s=float(get("replace_after_s", 180)),
            max_replacements=int(get("max_replacements", 3)),
            reorg_window=int(get("reorg_window", 64)),
            rpc_timeout_s=float(get("rpc_timeout_s", RPC_TIMEOUT_S)),
            secrets=tuple(s for s in (key, key.removeprefix("0x"), alchemy) if s),
        )

    def account(self) -> LocalAccount:
        return Account.from_key(self.private_key)  # type: ignore[no-any-return]

    def redact(self, text: str) -> str:
        """`text` with the key, the API key and any URL credentials or path replaced."""
        for secret in self.secrets:
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
        return text.replace(self.rpc_url, self.public_url)

    @property
    def public_url(self) -> str:
        """The RPC URL without credentials or path (where API keys usually live)."""
        match = re.match(r"^(\w+://)(?:[^@/]*@)?([^/?#]+)", self.rpc_url)
        return f"{match.group(1)}{match.group(2)}" if match else "the RPC endpoint"


def _gwei(value: Any, field_name: str) -> int | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ConfigError(field_name, f"expected a number of gwei, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ConfigError(field_name, f"must be a positive number of gwei, got {value!r}")
    return int(number * GWEI)


def _optional_address(value: Any, field_name: str) -> str:
    if not value:
        return ""
    if not isinstance(value, str) or not is_address(value):
        raise ConfigError(field_name, f"expected an address, got {value!r}")
    return to_checksum_address(value)


def _revert_reason(exc: ContractLogicError) -> str:
    data = exc.data
    if isinstance(data, str) and data.startswith("0x") and len(data) > 2:
        return parse.decode_revert(data)
    return parse.reason_from_message(str(exc.message or exc))


class RedactingFilter(logging.Filter):
    """Rewrites web3.py's log records with the secrets and the RPC URL's path removed."""

    def __init__(self, settings: ChainSettings) -> None:
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.settings.redact(record.getMessage()), ()
        return True


class ChainClient:
    """JSON-RPC calls over one `AsyncWeb3`; every failure is a redacted `ChainError`."""

    def __init__(self, settings: ChainSettings) -> None:
        self.settings = settings
        self._filter = RedactingFilter(settings)
        for name in WEB3_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        provider = AsyncHTTPProvider(
            settings.rpc_url,
            request_kwargs={"timeout": settings.rpc_timeout_s},
            exception_retry_configuration=None,  # the backend decides what to retry
        )
        self.w3 = AsyncWeb3(provider)
        self.simulate_supported: bool | None = None

    async def close(self) -> None:
        await self.w3.provider.disconnect()
        for name in WEB3_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    async def _rpc(self, what: str, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self.settings.rpc_timeout_s)
        except (ContractLogicError, TransactionNotFound):
            raise
        except Web3RPCError as e:
            message = e.message if isinstance(e.message, str) else str(e)
            raise ChainError("rpc_error", self.settings.redact(f"{what}: {message}")) from None
        except TimeoutError:
            raise ChainError(
                "rpc_unavailable", f"{what}: {self.settings.public_url} did not answer in time"
            ) from None
        except Exception as e:  # connection refused, DNS, garbage answers: all mean "no usable node"
            text = self.settings.redact(f"{type(e).__name__}: {e}")
            raise ChainError("rpc_unavailable", f"{what}: {text}") from None

    # ---- reads -----------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        return int(await self._rpc("eth_chainId", self.w3.eth.chain_id))

    async def block(self, which: int | str = "latest") -> Any:
        return await self._rpc("eth_getBlockByNumber", self.w3.eth.get_block(which))  # type: ignore[arg-type]

    async def block_number(self) -> int:
        return int(await self._rpc("eth_blockNumber", self.w3.eth.block_number))

    async def block_hash(self, number: int) -> str | None:
        try:
            block = await self.block(number)
        except ChainError:
            raise
        except Exception:
            return None
        return parse.as_hex(block["hash"]) if block else None

    async def tip(self) -> int:
        return int(await self._rpc("eth_maxPriorityFeePerGas", self.w3.eth.max_priority_fee))

    async def balance(self, address: str, block: int | str = "latest") -> int:
        return int(await self._rpc("eth_getBalance", self.w3.eth.get_balance(address, block)))  # type: ignore[arg-type]

    async def mined_nonce(self, address: str) -> int:
        """The count of mined transactions from `address` (the `latest` block, not `pending`)."""
        count = self.w3.eth.get_transaction_count(ChecksumAddress(HexAddress(HexStr(address))), "latest")
        return int(await self._rpc("eth_getTransactionCount", count))

    async def call(self, to: str, data: bytes, block: int | str = "latest", sender: str = "") -> bytes:
        tx: dict[str, Any] = {"to": to, "data": data}
        if sender:
            tx["from"] = sender
        try:
            out = await self._rpc("eth_call", self.w3.eth.call(tx, block))  # type: ignore[arg-type]
        except ContractLogicError as e:
            raise RevertError(_revert_reason(e)) from None
        return bytes(out)

    async def call_uint(self, to: str, signature: str, *args: Any) -> int:
        (value,) = parse.decode_words(["uint256"], await self.call(to, parse.encode_call(signature, *args)))
        return int(value)

    async def call_address(self, to: str, signature: str) -> str:
        (value,) = parse.decode_words(["address"], await self.call(to, parse.encode_call(signature)))
        return to_checksum_address(value)

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        try:
            return int(await self._rpc("eth_estimateGas", self.w3.eth.estimate_gas(tx)))  # type: ignore[arg-type]
        except ContractLogicError as e:
            raise RevertError(_revert_reason(e)) from None

    async def simulate(self, calls: list[dict[str, Any]]) -> list[parse.SimulatedCall] | None:
        """`eth_simulateV1` of `calls` in one block on the latest state; None when the node lacks it."""
        if self.simulate_supported is False:
            return None
        payload = {"blockStateCalls": [{"calls": [_json_call(c) for c in calls]}], "validation": False}
        try:
            result = await self._rpc("eth_simulateV1", self.w3.eth.simulate_v1(payload, "latest"))  # type: ignore[arg-type]
        except ChainError as e:
            if e.code == "rpc_error" and re.search(
                r"not (found|supported|available)|unknown method|-32601", str(e), re.IGNORECASE
            ):
                self.simulate_supported = False
                return None
            raise
        self.simulate_supported = True
        return parse.simulated_calls(result)

    # ---- transactions ----------------------------------------------------------------------------

    async def send_raw(self, raw: bytes) -> str:
        return parse.as_hex(await self._rpc("eth_sendRawTransaction", self.w3.eth.send_raw_transaction(raw)))

    async def receipt(self, tx_hash: str) -> Any | None:
        try:
            return await self._rpc("eth_getTransactionReceipt", self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    async def transaction(self, tx_hash: str) -> Any | None:
        try:
            return await self._rpc("eth_getTransactionByHash", self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    async def replay_revert(self, tx: Mapping[str, Any], block_number: int) -> str:
        """Re-run a mined, reverted transaction with eth_call on its parent block (receipts carry no
        reason; later transactions of the same block are not replayed)."""
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            await self._rpc("eth_call", self.w3.eth.call(call, block_number - 1))  # type: ignore[arg-type]
        except ContractLogicError as e:
            return _revert_reason(e)
        except ChainError as e:
            return f"reverted (reason not recovered: {e})"
        return "reverted (the replay on the parent block succeeded; the reason depends on the block)"


def _json_call(call: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in call.items():
        if isinstance(value, bytes):
            out[key] = "0x" + value.hex()
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = hex(value)
        else:
            out[key] = value
    return out
