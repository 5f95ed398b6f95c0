"""ccxt's own request fixtures (tests/fixtures/oracles/ccxt-static-requests.json) replayed to the emulator.

The emulator must receive exactly the parameters ccxt's repository says ccxt sends, so its request
parsing is checked against ccxt's belief, not against our own.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlparse

import ccxt.async_support as ccxt
import pytest

from tests.emulator import Emulator, make_client
from tests.paths import FIXTURES

pytest_plugins = ["tests.emulator.fixtures"]

ORACLE = FIXTURES / "oracles" / "ccxt-static-requests.json"


def _load() -> dict[str, Any]:
    return json.loads(ORACLE.read_text())  # type: ignore[no-any-return]


def _cases() -> list[tuple[str, str, dict[str, Any]]]:
    data = _load()
    out = []
    for venue in ("binance", "bybit", "okx"):
        for method, cases in data[venue]["methods"].items():
            for case in cases:
                out.append((venue, method, case))
    return out


def _params(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


def _strip(value: Any, skip: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [_strip(v, skip) for v in value]
    return value


@pytest.mark.parametrize(("venue", "method", "case"), _cases(),
                         ids=[f"{v}-{c['description']}" for v, _m, c in _cases()])
async def test_ccxt_fixture_request_is_what_the_emulator_receives(
    emulator: Emulator, venue: str, method: str, case: dict[str, Any]
) -> None:
    """Replaying a fixture through real ccxt delivers the fixture's path and parameters."""
    spec = _load()[venue]
    skip = set(spec["skipKeys"])
    ex = make_client(venue, emulator)
    try:
        await ex.load_markets()
        before = len(emulator.requests(venue))
        # the emulator may reject (e.g. below min notional); the request is what counts
        with contextlib.suppress(ccxt.BaseError):
            await getattr(ex, ex.un_camel_case(method))(*case["input"])
    finally:
        await ex.close()
    sent = emulator.requests(venue)[before:]
    want_path = urlparse(case["url"]).path
    [request] = [r for r in sent if r["path"] == want_path]
    if case["output"] is None:  # parameters are in the URL
        want = _strip(_params(urlparse(case["url"]).query), skip)
        assert _strip(_params(request["query"]), skip) == want
    elif spec["outputType"] == "urlencoded":
        got = _params(request["body"] or request["query"])
        assert _strip(got, skip) == _strip(_params(case["output"]), skip)
    else:
        assert _strip(json.loads(request["body"]), skip) == _strip(json.loads(case["output"]), skip)


async def test_binance_order_responses_have_every_key_of_real_samples(emulator: Emulator) -> None:
    """Emulated Binance spot/USDⓈ-M order responses carry all keys of captured real responses."""
    samples = _load()["_response_samples"]
    ex = make_client("binance", emulator, enableLastJsonResponse=True)
    try:
        await ex.create_order("ETH/USDT", "limit", "buy", 0.05, 1900)
        spot_keys = set(ex.last_json_response)
        await ex.create_order("ETH/USDT:USDT", "limit", "sell", 0.05, 2500)
        linear_keys = set(ex.last_json_response)
    finally:
        await ex.close()
    assert set(samples["binance.spot.createOrder"]) <= spot_keys
    assert set(samples["binance.linear.createOrder"]) <= linear_keys
    assert len(emulator.inspect("binance")["orders"]) == 2
