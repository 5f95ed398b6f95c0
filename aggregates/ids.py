"""Deterministic ids: uuid5 everywhere a replay must reproduce them (SPEC §3, §12.6)."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f0c6c1e-3a0b-5d7e-9a51-7b1d2c4e8f00")


def venue_ledger_id(account: str, venue: str) -> UUID:
    return uuid5(NAMESPACE, f"{account}:{venue}")


def session_id(session_key: str) -> UUID:
    return uuid5(NAMESPACE, f"session:{session_key}")


def instruction_id(session_key: str, sequence: int) -> str:
    """The id of the `sequence`-th instruction of a session, stable across runs."""
    return str(uuid5(NAMESPACE, f"instruction:{session_key}:{sequence}"))


def client_order_id(instruction_id: str, attempt: int = 1) -> str:
    """32 hex characters: valid on Binance, Bybit and OKX; a resubmission never reuses an id."""
    return uuid5(NAMESPACE, f"order:{instruction_id}:{attempt}").hex


def transfer_id(instruction_id: str) -> str:
    return uuid5(NAMESPACE, f"transfer:{instruction_id}").hex
