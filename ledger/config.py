"""Engine configuration: a dict or a TOML file (SPEC §5), secrets kept out of everything recorded."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aggregates.errors import InstructionError
from aggregates.values import BALANCE, to_utc
from executors.costs import ConfigError, setting

SECRET_WORDS = ("secret", "private_key", "passphrase", "api_key", "password", "token_key", "rpc_url")
# An RPC URL often carries an API key in its path (Alchemy, Infura): it is kept out of the record too.
LIVE_KEYS = (
    "binance_api_key",
    "binance_secret",
    "bybit_api_key",
    "bybit_secret",
    "okx_api_key",
    "okx_secret",
    "okx_passphrase",
    "wallet_private_key",
    "alchemy_api_key",
)
DEFAULT_URL = "sqlite:///ledger.db"
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
CEX = ("binance", "bybit", "okx")


MAX_DEPTH = 32  # tables and arrays in a config: a handful of levels at most


def depth(value: Any) -> int:
    """How deep tables and arrays nest in a parsed config (iteratively: no recursion)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, Mapping | list | tuple):
            deepest = max(deepest, level + 1)
            children = node.values() if isinstance(node, Mapping) else node
            todo.extend((child, level + 1) for child in children)
    return deepest


def load_config(config: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    """A plain dict of the configuration; a TOML path is read; live keys fall back to the environment."""
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("config", f"no such file: {path}") from None
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError("config", f"cannot read {path}: {e}") from None
        except RecursionError:
            raise ConfigError("config", f"cannot read {path}: nested too deeply") from None
        if depth(data) > MAX_DEPTH:  # refused by depth, not by the stack (its limit can be raised)
            raise ConfigError("config", f"cannot read {path}: nested too deeply (over {MAX_DEPTH} levels)")
    for key in LIVE_KEYS:
        if key not in data and os.environ.get(key.upper()):
            data[key] = os.environ[key.upper()]
    capital = data.get("initial_capital")
    if capital is not None:
        amount(capital, "initial_capital")  # checked here, where its name is still the one written
        balances = {k: dict(v) for k, v in (data.get("initial_balances") or {}).items()}
        balances.setdefault("binance", {}).setdefault("USDT", capital)
        data["initial_balances"] = balances
    return data


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in LIVE_KEYS or any(word in lowered for word in SECRET_WORDS)


def public(config: Any) -> Any:
    """The config without secrets (recursively), Decimals and times as text: safe to record."""
    if isinstance(config, Mapping):
        return {
            str(k): public(v)
            for k, v in sorted(config.items(), key=lambda kv: str(kv[0]))
            if not is_secret(str(k))
        }
    if isinstance(config, list | tuple):
        return [public(v) for v in config]
    if isinstance(config, Decimal | datetime | Path):
        return str(config)
    if isinstance(config, float):
        return str(config)
    return config


def canonical_json(config: Mapping[str, Any]) -> str:
    return json.dumps(public(config), sort_keys=True, separators=(",", ":"), default=str)


def ledger_url(config: Mapping[str, Any]) -> str:
    table = config.get("ledger") or {}
    return str(table.get("url") or config.get("ledger_url") or DEFAULT_URL)


def session_table(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("session") or {})


def session_start(config: Mapping[str, Any]) -> datetime:
    start = session_table(config).get("start")
    try:
        return to_utc(start, "session.start") if start is not None else DEFAULT_START
    except InstructionError as e:
        raise ConfigError("session.start", str(e).split(": ", 1)[1]) from None


def venues(config: Mapping[str, Any]) -> dict[str, str]:
    """Venue name -> type ('cex' or 'onchain')."""
    names = config.get("venues") or list(CEX)
    out = {str(v).lower(): "cex" for v in names}
    out[str(config.get("chain_venue", "ethereum"))] = "onchain"
    return out


def initial_balances(config: Mapping[str, Any]) -> list[tuple[str, str, str, Decimal]]:
    """(venue, wallet or '', asset, amount) in a fixed order; `venue.wallet` keys pick a wallet."""
    out: list[tuple[str, str, str, Decimal]] = []
    table = config.get("initial_balances") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("initial_balances", "expected {venue: {asset: amount}}")
    for where, assets in sorted(table.items()):
        venue, _, wallet = str(where).partition(".")
        if not isinstance(assets, Mapping):
            raise ConfigError(f"initial_balances.{where}", "expected {asset: amount}")
        for asset, given in sorted(assets.items()):
            value = amount(given, f"initial_balances.{where}.{asset}")
            if value:
                out.append((venue.lower(), wallet, str(asset).upper(), value))
    return out


def amount(value: Any, key: str) -> Decimal:
    """A balance in the config: inside `BALANCE` (not negative); ConfigError naming `key` otherwise."""
    return setting(value, key, BALANCE)
