"""Request-signature checks exactly as Binance, Bybit v5 and OKX v5 define them (HMAC-SHA256)."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiCredentials:
    """One API key of an emulated account (OKX also needs the passphrase)."""

    api_key: str
    secret: str
    passphrase: str = ""


def hmac_sha256_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def hmac_sha256_b64(secret: str, payload: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()).decode()


def binance_split_signature(query_string: str, body: str) -> tuple[str, str | None]:
    """Return (signed payload, signature) from Binance's totalParams = query string + body.

    Binance signs the query string concatenated with the request body, and the ``signature``
    parameter must come last; everything before ``&signature=`` is the payload.
    """
    total = query_string + body
    marker = "&signature="
    idx = total.rfind(marker)
    if idx < 0:
        if total.startswith("signature="):
            return "", total[len("signature="):]
        return total, None
    return total[:idx], total[idx + len(marker):]


def binance_signature_ok(secret: str, query_string: str, body: str) -> bool:
    payload, signature = binance_split_signature(query_string, body)
    if signature is None:
        return False
    expected = hmac_sha256_hex(secret, payload)
    return hmac.compare_digest(expected, signature.lower())


def bybit_signature_ok(
    secret: str, timestamp: str, api_key: str, recv_window: str, payload: str, signature: str
) -> bool:
    """Bybit v5: hex HMAC of timestamp + apiKey + recvWindow + (raw query string | JSON body)."""
    expected = hmac_sha256_hex(secret, timestamp + api_key + recv_window + payload)
    return hmac.compare_digest(expected, signature.lower())


def okx_signature_ok(
    secret: str, timestamp: str, method: str, request_path: str, body: str, signature: str
) -> bool:
    """OKX v5: base64 HMAC of timestamp + METHOD + requestPath(+?query) + body."""
    expected = hmac_sha256_b64(secret, timestamp + method.upper() + request_path + body)
    return hmac.compare_digest(expected, signature)


def parse_okx_timestamp(value: str) -> int | None:
    """Milliseconds from OKX's ISO-8601 ``OK-ACCESS-TIMESTAMP`` (e.g. 2020-12-08T09:08:57.715Z)."""
    try:
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)
