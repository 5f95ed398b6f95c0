"""What `SessionStarted` records of a config: an allow-list of the keys the code reads (`CONFIG_KEYS`),
secrets and paths never, unknown keys named in one warning; credentials inside URLs redacted; an
instruction's unknown keys named in `InstructionRejected.received`, never their values. Expected
values are written out by hand."""

from __future__ import annotations

import json
import tomllib
import warnings
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from executors.instructions import NOT_RECORDED, received
from ledger.config import ConfigWarning, canonical_json, load_config, recorded_config, redact_url
from ledger.engine import EventDrivenStrategyEngine
from ledger.provider import describe
from ledger.strategies import STRATEGIES, create, recorded
from tests.paths import REPO

STORE_PASSWORD = "hunter2-STORE-pw"
TABLE_PASSWORD = "hunter3-TABLE-pw"
EXCHANGE_KEY = "APIKEY-binance-4f1d"
EXCHANGE_SECRET = "SECRET-binance-77aa"
EXCHANGE_PASSWORD = "PASSWORD-binance-19c0"
AUTH_TOKEN = "tok-AUTH-0123456789"
LIVE_KEY = "LIVEKEY-bybit-5e5e"
WALLET_KEY = "0x" + "5a" * 32
RPC_KEY = "RPCKEY-alchemy-9b9b"
CCXT_KEY = "CCXT-option-key-3c3c"
NESTED_KEY = "RISK-api-key-8d8d"
DATA_PASSWORD = "DATAPASS-0123"
DATA_TOKEN = "DATATOKEN-4567"
SECRETS = (STORE_PASSWORD, TABLE_PASSWORD, EXCHANGE_KEY, EXCHANGE_SECRET, EXCHANGE_PASSWORD, AUTH_TOKEN,
           LIVE_KEY, WALLET_KEY, WALLET_KEY.removeprefix("0x"), RPC_KEY, CCXT_KEY, NESTED_KEY, DATA_PASSWORD,
           DATA_TOKEN)

HOSTILE: dict[str, Any] = {
    "ledger_url": f"postgresql://desk:{STORE_PASSWORD}@127.0.0.1:5432/test",
    "ledger": {"url": f"postgresql://desk:{TABLE_PASSWORD}@127.0.0.1:5432/test", "batch": 10},
    "exchanges": {"binance": {"apiKey": EXCHANGE_KEY, "secret": EXCHANGE_SECRET,
                              "password": EXCHANGE_PASSWORD}},
    "auth_token": AUTH_TOKEN,
    "bybit_api_key": LIVE_KEY,
    "bybit_demo": True,
    "chain": {"wallet_private_key": WALLET_KEY, "rpc_url": f"https://eth.example/v2/{RPC_KEY}",
              "wallet_address": "0x" + "ab" * 20, "confirmations": 2},
    "live": {"ccxt_options": {"apiKey": CCXT_KEY}, "poll_interval_s": 5},
    "risk": {"max_order_notional": D("1000"), "api_key": NESTED_KEY},
    "data": {"source": f"https://user:{DATA_PASSWORD}@data.example/feed?token={DATA_TOKEN}&x=1",
             "data_dir": "/somewhere/private", "days": 2},
    "mystery_knob": 3,
}


def recording(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(what is recorded, the ConfigWarning messages raised while recording it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = recorded_config(config)
    assert all(w.category is ConfigWarning for w in caught), [str(w.message) for w in caught]
    return out, [str(w.message) for w in caught]


def test_only_known_non_secret_keys_are_recorded_and_unknown_ones_are_named_once() -> None:
    out, messages = recording(HOSTILE)
    assert out == {  # by hand: every known, recorded key of HOSTILE and nothing else
        "bybit_demo": True,
        "chain": {"wallet_address": "0x" + "ab" * 20, "confirmations": 2},
        "live": {"poll_interval_s": 5},
        "risk": {"max_order_notional": "1000"},
        "data": {"source": "https://***@data.example/feed?token=***&x=1", "days": 2},
    }
    text = canonical_json(out)
    assert not [s for s in SECRETS if s in text]
    assert "/somewhere/private" not in text and "ledger" not in text
    assert len(messages) == 1
    (message,) = messages
    for name in ("auth_token", "exchanges", "mystery_knob", "risk.api_key"):
        assert name in message
    assert not [s for s in SECRETS if s in message]  # keys are named, never their values


def test_a_table_where_a_value_was_expected_is_not_recorded_and_named() -> None:
    out, messages = recording({"wallets": {"binance": "sk-not-a-table"}, "account": "desk"})
    assert out == {"wallets": {}, "account": "desk"}
    assert messages == [
        "config: not recorded, no part of the program reads wallets.binance (expected a table)"]


def test_the_shipped_configs_and_every_strategy_config_are_recorded_whole_without_a_warning() -> None:
    """Every key the shipped examples, the strategies and the README's live config use is one the code
    reads: recorded (the store aside) and no warning."""
    readme = (REPO / "README.md").read_text()
    live_toml = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    shipped = ("backtest.toml", "costs-seed-bucketed.toml")
    configs = [load_config(REPO / "examples" / name) for name in shipped]
    configs.append(tomllib.loads(live_toml))
    configs += [create(name).config() for name in STRATEGIES]
    for config in configs:
        out, messages = recording(config)
        assert messages == []
        assert out == json.loads(canonical_json({k: v for k, v in config.items() if k != "ledger"}))


def test_strategy_parameters_are_recorded_by_their_declared_names_only() -> None:
    params = recorded(create("eth_basis"))
    out, messages = recording({"strategy": "eth_basis", "strategy_params": {**params, "api_key": "sk-x"}})
    assert out["strategy_params"] == json.loads(canonical_json(params))
    assert "sk-x" not in canonical_json(out)
    assert messages == ["config: not recorded, no part of the program reads strategy_params.api_key"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://desk:pw@db.example:5432/ledger?schema=s",
         "postgresql://***@db.example:5432/ledger?schema=s"),
        ("https://ghp_token@github.com/org/repo", "https://***@github.com/org/repo"),
        ("https://h.example/x?api_key=1&apiKey=2&Password=3&access_token=4&sig=5&page=6",
         "https://h.example/x?api_key=***&apiKey=***&Password=***&access_token=***&sig=***&page=6"),
        ("https://h.example/cb#access_token=abc&state=7", "https://h.example/cb#access_token=***&state=7"),
        ("event log postgresql://u:p@ss@h/db and more", "event log postgresql://***@h/db and more"),
        ("postgresql://u:pa/ss@h/db", "postgresql://***"),  # a '/' in the password: nothing kept
        ("postgresql://u:12/34@h/db", "postgresql://***"),
        ("http://[::1", "***"),  # urllib cannot read it: nothing of it is kept
        ("sqlite:///ledger.db", "sqlite:///ledger.db"),  # nothing to redact: left byte for byte
        ("https://h.example:8080/a%20b?q=a+b", "https://h.example:8080/a%20b?q=a+b"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
    ],
)
def test_credentials_inside_urls_are_redacted(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_an_event_log_source_is_described_without_its_password() -> None:
    assert describe({"log": "postgresql://u:secretpw@h/db"}) == "event log postgresql://***@h/db"


# ---- instructions ---------------------------------------------------------------------------------------


MARKET = {"eth_usd_price": 3000.0, "binance_spot_price": 3000.0}
SPOT = {"venue_type": "cex", "venue": "binance", "trade_type": "SPOT", "pair": "ETH/USDT", "side": "BUY",
        "amount": 1}
INSTRUCTION_KEY = "sk-instruction-key-6f6f"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EventDrivenStrategyEngine]:
    built = EventDrivenStrategyEngine({"execution_mode": "backtest", "initial_capital": 100000,
                                       "ledger": {"url": f"sqlite:///{tmp_path / 'i.db'}", "views": False}})
    yield built
    built.close()


def test_received_names_unknown_instruction_keys_without_their_values() -> None:
    got = received({**SPOT, "api_key": INSTRUCTION_KEY, 7: "seven"})
    assert got == {"7": NOT_RECORDED, "amount": "1", "api_key": NOT_RECORDED, "pair": "'ETH/USDT'",
                   "side": "'BUY'", "trade_type": "'SPOT'", "venue": "'binance'", "venue_type": "'cex'"}


async def test_a_key_inside_a_rejected_instruction_is_not_stored(
        engine: EventDrivenStrategyEngine, tmp_path: Path) -> None:
    rejected = await engine.execute_trade_with_interface(
        {**SPOT, "amount": -1, "api_key": INSTRUCTION_KEY}, MARKET)
    filled = await engine.execute_trade_with_interface({**SPOT, "apiSecret": INSTRUCTION_KEY}, MARKET)
    assert (rejected["status"], rejected["code"]) == ("REJECTED", "invalid_amount")
    assert filled["status"] == "FILLED"
    engine.event_logger.flush()
    events = [e for _n, e in engine.ledger.iter_events()]
    (stored,) = [e for e in events if type(e).__name__ == "InstructionRejected"]
    assert stored.received["api_key"] == NOT_RECORDED and stored.received["amount"] == "-1"
    assert not [e for e in events if INSTRUCTION_KEY in repr(vars(e))]
    engine.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("i.db*"))
    assert b"api_key" in raw and INSTRUCTION_KEY.encode() not in raw


async def test_market_data_from_an_event_log_names_its_url_without_the_password(
        engine: EventDrivenStrategyEngine, tmp_path: Path) -> None:
    """`data.log` with credentials in its URL: `SessionStarted.data_source` of a run on it (what
    `MarketData.source` says) keeps the rest of the URL, not the password."""
    from ledger.marketdata import load_event_log

    await engine.execute_trade_with_interface(SPOT, MARKET)
    engine.close()
    data = load_event_log(f"sqlite://desk:{STORE_PASSWORD}@{tmp_path / 'i.db'}")
    assert data.source == f"event log sqlite://***@{tmp_path / 'i.db'}"
