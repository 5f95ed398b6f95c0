"""Engine configuration: a dict or a TOML file (SPEC §5), secrets kept out of everything recorded."""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from aggregates.errors import InstructionError
from aggregates.values import BALANCE, to_utc
from executors.costs import ConfigError, setting

# Live keys read from the environment when the config lacks them (upper case: BINANCE_API_KEY, ...).
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


def public(config: Any) -> Any:
    """A config value as recorded: Decimals, times, paths and floats as text, tables with sorted keys,
    credentials inside URLs redacted (`redact_url`). Keys are not filtered here: `recorded_config` does."""
    if isinstance(config, Mapping):
        return {str(k): public(v) for k, v in sorted(config.items(), key=lambda kv: str(kv[0]))}
    if isinstance(config, list | tuple):
        return [public(v) for v in config]
    if isinstance(config, str):
        return redact_url(config)
    if isinstance(config, Decimal | datetime | Path):
        return redact_url(str(config))
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


# ---- what `SessionStarted` records: an allow-list -----------------------------------------------------
#
# Every config key the code reads, declared once: KEEP (recorded), DROP (read, never recorded: a secret,
# the store, a local path, a connection setting that may carry a key) or a table of its own keys. ANY
# stands for a name the user chooses (a venue, an asset, a route, a token), with the rule for each.
# Anything else is not recorded and is named in one `ConfigWarning` (never its value).

KEEP, DROP = True, False
ANY = "*"
STRATEGY_PARAMS = "strategy parameters"  # the names the strategies declare (ledger/strategies/params.py)
Rule = bool | str | Mapping[str, Any]

_CEX_NETWORK = {f"{venue}_{flag}": KEEP for venue in CEX for flag in ("demo", "sandbox")}
_LIVE_SECRETS = {key: DROP for key in LIVE_KEYS}
# The on-chain settings, in a [chain] table or at the top level (executors/live/chain_client.py).
_CHAIN: dict[str, Rule] = {
    "wallet_private_key": DROP,
    "alchemy_api_key": DROP,
    "rpc_url": DROP,  # an RPC URL often carries an API key in its path (Alchemy, Infura)
    "alchemy_url": DROP,  # a template the key is pasted into, or a URL with it already in
    "wallet_address": KEEP,
    "tokens": {ANY: KEEP},
    "receipt_token": KEEP,
    "staking_contract": KEEP,
    "approval": KEEP,
    "chain_id": KEEP,
    "confirmations": KEEP,
    "max_fee_per_gas_gwei": KEEP,
    "max_priority_fee_gwei": KEEP,
    "pool_addresses_provider": KEEP,
    "poll_s": KEEP,
    "confirm_timeout_s": KEEP,
    "drop_after_s": KEEP,
    "replace_after_s": KEEP,
    "max_replacements": KEEP,
    "reorg_window": KEEP,
    "rpc_timeout_s": KEEP,
    "accrual_poll_s": KEEP,
}
CONFIG_KEYS: dict[str, Rule] = {
    "execution_mode": KEEP,
    "account": KEEP,
    "strategy": KEEP,
    "strategy_params": STRATEGY_PARAMS,
    "venues": KEEP,
    "chain_venue": KEEP,
    "initial_capital": KEEP,
    "initial_balances": {ANY: {ANY: KEEP}},  # venue (or venue.wallet) -> asset -> amount
    "wallets": {ANY: {"spot": KEEP, "perp": KEEP}},
    "ledger_url": DROP,
    # The store is not recorded (a rerun writes elsewhere; its URL may hold a password).
    "ledger": {key: DROP for key in (
        "url", "synchronous", "snapshot_every", "append", "batch", "views", "durable_replies")},
    # The data is recorded by how it was chosen and its digest; paths and logs stay out (data_source).
    "data": {"kind": KEEP, "source": KEEP, "start": KEEP, "end": KEEP, "days": KEEP, "seed": KEEP,
             "fill": KEEP, "needs": KEEP, "data_dir": DROP, "dir": DROP, "log": DROP},
    "session": {"start": KEEP, "seed": KEEP, "key": KEEP},
    "execution_costs": {"default_bps": KEEP, ANY: {ANY: KEEP}},  # venue -> trade type -> bps or buckets
    "fees": {ANY: {ANY: KEEP}},  # venue -> trade type -> {maker, taker}, or venue -> maker/taker
    "gas": {"default_gwei": KEEP, "units": {ANY: KEEP}},
    "transfers": {"delay_minutes": KEEP, "delays_minutes": {ANY: KEEP},
                  "withdrawal_fees": {ANY: {ANY: KEEP}}, "networks": {ANY: KEEP},
                  "poll_s": KEEP, "lookup_attempts": KEEP, "confirmations": KEEP},
    "risk": {"max_order_notional": KEEP, "max_slippage_bps": KEEP, "min_health_factor": KEEP,
             "initial_margin": KEEP, "maintenance_margin": KEEP, "liquidation_bonus": KEEP,
             "liquidation_thresholds": {ANY: KEEP}, "venue_max_notional": {ANY: KEEP}},
    "staking": {"receipt_token": KEEP, "rate": KEEP, "unstake_delay_days": KEEP, "contract": KEEP,
                "rate_function": KEEP},
    "live": {"ccxt_options": DROP, **{key: KEEP for key in (
        "mainnet", "timeout_ms", "max_concurrency", "read_retries", "retry_backoff_s", "submit_retries",
        "lookup_attempts", "lookup_backoff_s", "fill_timeout_s", "fill_poll_s", "poll_interval_s",
        "adopt_balances", "symbols", "trades_limit", "breaker_failures", "breaker_cooldown_s",
        "funding_poll_s")}},
    "chain": _CHAIN,
    **_CHAIN,
    **_CEX_NETWORK,
    **_LIVE_SECRETS,
}


class ConfigWarning(UserWarning):
    """Config keys no part of the program reads: not recorded, named (never their values)."""


@functools.cache
def _strategy_params() -> dict[str, Rule]:
    from ledger.strategies import STRATEGIES, params_of

    return {p.name: KEEP for factory in STRATEGIES.values() for p in params_of(factory)}


def recorded_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What `SessionStarted` keeps: the known, non-secret keys of `CONFIG_KEYS` (values as `public`
    gives them). Unknown keys are left out and named in one `ConfigWarning`."""
    unknown: list[str] = []
    out = _allowed(config, CONFIG_KEYS, "", unknown)
    if unknown:
        warnings.warn(ConfigWarning(
            f"config: not recorded, no part of the program reads {', '.join(unknown)}"), stacklevel=2)
    return out


def _allowed(table: Mapping[str, Any], rules: Mapping[str, Rule], prefix: str, unknown: list[str]
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = str(key)
        rule = rules.get(name, rules.get(ANY))
        if rule == STRATEGY_PARAMS:
            rule = _strategy_params()
        if rule is None:
            unknown.append(prefix + name)
        elif rule is KEEP:
            out[name] = public(value)
        elif isinstance(rule, Mapping):
            if not isinstance(value, Mapping):  # not what the code reads (it refuses it): not recorded
                unknown.append(f"{prefix}{name} (expected a table)")
                continue
            kept = _allowed(value, rule, f"{prefix}{name}.", unknown)
            if _keeps(rule):  # a table of nothing but DROP keys ([ledger]) is not recorded at all
                out[name] = kept
    return out


def _keeps(rule: Rule) -> bool:
    return rule is KEEP or rule == STRATEGY_PARAMS or (
        isinstance(rule, Mapping) and any(_keeps(r) for r in rule.values()))


# ---- credentials inside URLs ----------------------------------------------------------------------------

REDACTED = "***"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+")
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|sig|cred", re.IGNORECASE)


def redact_url(text: str) -> str:
    """`text` with every URL in it stripped of credentials: the user information (`user:password@`)
    and the values of password-like query parameters (password, token, key, secret, auth, signature…)
    become `***`. Text without a URL is returned as it is."""
    return _URL.sub(lambda m: _redact_one(m.group(0)), text) if "://" in text else text


def _redact_one(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED  # not a URL urllib can read (an unclosed IPv6 bracket): nothing of it is kept
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    elif ":" in netloc and "@" in url.partition(netloc)[2]:
        return f"{parts.scheme}://{REDACTED}"  # `user:pa/ss@host`: a password with / ? or # in it
    clean = parts._replace(netloc=netloc, query=_redact_pairs(parts.query),
                           fragment=_redact_pairs(parts.fragment))
    return url if clean == parts else urlunsplit(clean)  # unchanged: byte for byte as written


def _redact_pairs(text: str) -> str:
    """`a=1&token=x` -> `a=1&token=***`: only the values of password-like names change."""
    pairs = []
    for pair in text.split("&"):
        name, sep, _value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if sep and _SECRET_PARAM.search(unquote_plus(name)) else pair)
    return "&".join(pairs)
