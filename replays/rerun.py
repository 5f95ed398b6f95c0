"""Repeat a recorded backtest from its `SessionStarted` record into a fresh store and compare log digests.

The record names everything a run depends on: the strategy and its parameters (`strategy`,
`strategy_params`), how the data was chosen (`data`: kind, window, seed, fill; the path is the session's
`data_source`) and its content digest, the seed, the rest of the config, and the code version. A rerun
refuses (ReplayError) when it cannot repeat the run faithfully: the log is not one backtest written by
`ledger backtest`, its strategy is unknown, or the data behind the recorded digest is missing or changed.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aggregates.errors import InstructionError, LedgerError
from ledger import config as cfg
from ledger.digest import log_digest
from ledger.stores import sqlite_url
from replays.diff import STARTED, Divergence, field_differences, first_divergence
from replays.state import ReplayError

_ABSENT = object()


@dataclass(frozen=True)
class Recording:
    """What a backtest's `SessionStarted` record says about how to repeat it."""

    session_key: str
    config: dict[str, Any]
    config_text: str
    data_source: str
    data_digest: str
    seed: int
    code_version: str

    @property
    def strategy(self) -> str:
        return str(self.config.get("strategy") or "")

    @property
    def data(self) -> dict[str, Any]:
        spec = self.config.get("data")
        return dict(spec) if isinstance(spec, Mapping) else {}


@dataclass
class RerunResult:
    recording: Recording
    recorded: str  # log digest of the recorded ledger
    rerun: str  # log digest of the fresh one
    events: tuple[int, int]
    divergence: Divergence | None
    into: Path | None  # where the rerun was written (None: a temporary file, removed)
    code_version: str
    config_notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return self.recorded == self.rerun


def recording(ledger: Any) -> Recording:
    """The one `SessionStarted` record of a backtest log; ReplayError for anything else."""
    started = []
    for row in ledger.iter_rows():
        if row[3] == STARTED:
            started.append(ledger.decode_row(row))
            if len(started) > 1:
                break
    where = ledger.url.redacted
    if not started:
        raise ReplayError(f"{where} records no session (no SessionStarted event); nothing to rerun")
    if len(started) > 1:
        raise ReplayError(f"{where} holds more than one session (appended runs); rerun repeats a log of "
                          "one backtest")
    s = started[0]
    if s.mode != "backtest":
        raise ReplayError(f"{where} is a {s.mode} session, not a backtest; only backtests can be rerun")
    try:
        config = json.loads(s.config)
    except ValueError:
        raise ReplayError(f"{where}: the recorded config is not JSON") from None
    if not isinstance(config, dict) or not config.get("strategy"):
        raise ReplayError(f"{where}: the session records no strategy (not written by `ledger backtest`)")
    if not isinstance(config.get("data"), Mapping) or not config["data"].get("kind"):
        raise ReplayError(f"{where}: the session does not record how its data was chosen (written by an "
                          "older `ledger backtest`); it cannot be rerun")
    return Recording(str(s.session_key), config, str(s.config), str(s.data_source), str(s.data_digest),
                     int(s.seed), str(s.code_version))


def typed_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Strategy parameters as `ledger backtest --param` parsed them (numbers as Decimal); the record
    keeps them as the config's canonical JSON, Decimals as text."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            parsed = text
        if isinstance(parsed, dict):
            parsed = {k: Decimal(str(v)) for k, v in parsed.items()}
        out[name] = parsed  # the strategy's parameter declarations give each its type (`create`)
    return out


def _when(value: Any, name: str) -> datetime | None:
    """A recorded `--start`/`--end` as `ledger backtest` read it (a bare date means its 00:00 UTC)."""
    if value is None:
        return None
    from aggregates.values import to_utc

    text = str(value)
    try:
        return to_utc(text if "T" in text or " " in text else f"{text}T00:00:00+00:00", name)
    except InstructionError as e:
        raise ReplayError(f"recorded data.{name}: {e}") from None


def data_path(rec: Recording) -> Path | None:
    """Where the recorded data lives (None for synthetic data); ReplayError when it is gone."""
    kind = rec.data.get("kind")
    if kind == "synthetic":
        return None
    if kind not in ("seed", "folder", "log"):
        raise ReplayError(f"recorded data kind {kind!r} is not one rerun knows "
                          "(synthetic, seed, folder, log)")
    source = rec.data_source
    if "(not loaded" in source or source in ("", "none"):
        raise ReplayError(f"the recorded run had no loadable data ({source}); it cannot be rerun")
    path = Path(source)
    if "://" not in source and not path.exists():
        raise ReplayError(f"data no longer available: {source} is missing (the log recorded its digest "
                          f"{rec.data_digest[:16]}…)")
    return path


def load_recorded_data(rec: Recording, strategy: Any) -> Any:
    """The market data again, exactly as the backtest chose it; ReplayError when it changed."""
    from ledger.backtest import load_data

    path = data_path(rec)
    spec = rec.data
    days = spec.get("days")
    try:
        market = load_data(
            data_dir=path, seed=int(spec.get("seed", rec.seed)), start=_when(spec.get("start"), "start"),
            end=_when(spec.get("end"), "end"), days=int(days) if days is not None else None,
            needs=strategy.data_needs() if hasattr(strategy, "data_needs") else (),
            fill=str(spec.get("fill") or "error"),
            capped=False,  # the recorded window is what ran: LEDGER_MAX_DAYS does not shorten a rerun
        )
    except LedgerError as e:
        raise ReplayError(
            f"data changed: {rec.data_source} cannot be loaded as recorded any more: {e}") from None
    if market.digest != rec.data_digest:
        raise ReplayError(f"data changed: {rec.data_source} now has digest {market.digest[:16]}…, the log "
                          f"recorded {rec.data_digest[:16]}…")
    return market


def difference(recorded: Mapping[str, Any], built: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of `recorded` (canonical JSON values) that `built` does not already give."""
    out: dict[str, Any] = {}
    for key, value in recorded.items():
        have = built.get(key, _ABSENT)
        if isinstance(value, Mapping) and isinstance(have, Mapping):
            sub = difference(value, have)
            if sub:
                out[key] = sub
        elif have is _ABSENT or cfg.public(have) != value:
            out[key] = value
    return out


def rebuild_config(rec: Recording, strategy: Any, market: Any, db: str, *, views: bool) -> tuple[
        dict[str, Any], tuple[str, ...]]:
    """The engine config of the rerun, made to record exactly the recorded config; notes name what
    still differs (a default the code no longer has, say), which will show as the first divergence."""
    from ledger.backtest import build_config, merge, seed_overrides

    path = data_path(rec)
    spec = {**rec.data, "data_dir": str(path) if path is not None else None}
    base = seed_overrides(path) if rec.data.get("kind") == "seed" else {}
    params = dict(rec.config.get("strategy_params") or {})

    def build(overrides: Mapping[str, Any]) -> dict[str, Any]:
        return build_config(strategy, market, db=db, seed=rec.seed, overrides=overrides, params=params,
                            data_spec=spec)

    first = build(base)
    config = build(merge(base, difference(rec.config, first)))
    config["ledger"] = {**config.get("ledger", {}), "views": views}
    again = json.loads(cfg.canonical_json(cfg.recorded_config(config)))
    notes = tuple(f"{name}: recorded {_short(x)}, rebuilt {_short(y)}"
                  for name, x, y in field_differences(rec.config, again))
    return config, notes


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def rerun(ledger: Any, into: Path | None = None, progress: Callable[[int, int], None] | None = None,
          ) -> RerunResult:
    """Rerun the backtest recorded in `ledger` into `into` (or a temporary file) and compare."""
    from ledger.app import Ledger
    from ledger.backtest import run_backtest
    from ledger.engine import code_version
    from ledger.strategies import create

    rec = recording(ledger)
    params = typed_params(rec.config.get("strategy_params") or {})
    capital = params.pop("capital", None)
    try:
        strategy = create(rec.strategy, **({"capital": Decimal(str(capital))} if capital is not None else {}),
                          **params)
    except LedgerError as e:
        raise ReplayError(f"cannot rebuild the recorded strategy: {e}") from None
    except (TypeError, ArithmeticError) as e:
        raise ReplayError(f"cannot rebuild the recorded strategy {rec.strategy!r}: {e}") from None
    market = load_recorded_data(rec, strategy)
    if into is not None and into.exists() and into.stat().st_size > 0:
        raise ReplayError(f"--into {into} already exists; a rerun writes a fresh ledger")
    recorded = log_digest(ledger)
    with tempfile.TemporaryDirectory(prefix="ledger-rerun-") as tmp:
        target = into if into is not None else Path(tmp) / "rerun.db"
        config, notes = rebuild_config(rec, strategy, market, sqlite_url(target), views=into is not None)
        try:
            asyncio.run(run_backtest(config, strategy, market, progress))
        except LedgerError as e:
            raise ReplayError(f"the rerun failed: {e}") from None
        fresh = Ledger.open(target)
        try:
            digest = log_digest(fresh)
            divergence = first_divergence(ledger, fresh) if digest != recorded else None
            events = (ledger.max_notification_id(), fresh.max_notification_id())
        finally:
            fresh.close()
    return RerunResult(rec, recorded, digest, events, divergence, into,
                       code_version(), notes)
