"""Point-in-time state from the snapshot cache equals the fold of the log truncated at that point."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.venue import VenueLedger
from ledger.app import Ledger
from ledger.testing.sequences import event_sequences, record_commands
from projections import reports
from projections.folds import fold
from projections.state import LedgerState
from replays.state import (
    ReplayError,
    StateCache,
    decode_state,
    encode_state,
    fold_to,
    scan_time,
    state_as_of,
)
from tests.scenario import write_scenario

T0 = datetime(2024, 6, 1, tzinfo=UTC)
REPORTS = ("balances", "positions", "exposure", "pnl", "equity", "in_transit")


def backup(source: Path, target: Path) -> None:
    """A page copy (VACUUM could renumber the rowids that are the notification ids)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def report_values(state: LedgerState) -> dict[str, object]:
    return {name: getattr(reports, name)(state) for name in (*REPORTS, "risk")}


Truth = dict[int, tuple[dict[str, object], dict[str, object]]]


def truths(ledger: Ledger) -> Truth:
    """(comparable state, reports) after every notification, folded once."""
    state = LedgerState(keep_fills=False)
    out: Truth = {}
    for nid, event in ledger.iter_events():
        fold([event], state)
        out[nid] = (state.comparable(), report_values(state))
    return out


def write_reorgs(ledger: Ledger) -> None:
    """On-chain supplies confirmed, reorged away and confirmed again, spread over many notifications,
    so a reorg's tail must find effects written into an earlier snapshot."""
    chain = ledger.venue("main", "ethereum", "onchain", T0)
    chain.record_deposit("d", "0xa", "USDT", D("1000"), T0)
    chain.record_deposit("g", "0xa", "ETH", D("1"), T0)
    ledger.save(chain)
    for i in range(6):
        ts = T0 + timedelta(hours=i)
        iid = f"s{i}"
        chain.record_accepted(iid, {"kind": "AAVE_SUPPLY", "asset": "USDT", "amount": "100",
                                    "wallet": "0xa"}, {"eth_usd_price": D(3000 + i)}, ts)
        chain.record_tx_submitted(iid, f"0x{i}", i, 1, 1, 1, "supply", ts)
        ledger.save(chain)
        effects = [{"kind": "supplied", "asset": "USDT", "amount": "100"}]
        chain.record_tx_confirmed(iid, f"0x{i}", i, f"0xb{i}", 1, 1, D("0.001"), effects, ts)
        ledger.save(chain)
        if i % 2 == 0:
            later = ts + timedelta(minutes=30)
            chain.record_tx_reorged(iid, f"0x{i}", f"0xb{i}", later)
            ledger.save(chain)
            chain.record_tx_confirmed(iid, f"0x{i}", i + 100, f"0xc{i}", 1, 1, D("0.001"), effects, later)
            ledger.save(chain)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Path]]:
    """The demo session and trading after it, then on-chain reorgs: every book of the ledger."""
    folder = tmp_path_factory.mktemp("pit")
    ledger = Ledger.open(folder / "ledger.db", create=True, synchronous="NORMAL")
    write_scenario(ledger)
    write_reorgs(ledger)
    yield ledger, folder
    ledger.close()


@pytest.fixture(scope="module")
def truth_of(scenario: tuple[Ledger, Path]) -> Truth:
    return truths(scenario[0])


@given(every=st.integers(1, 40), k=st.integers(1, 10_000), step=st.integers(1, 9))
def test_state_at_every_kth_notification_equals_the_fold_up_to_it(
    scenario: tuple[Ledger, Path], truth_of: Truth, every: int, k: int, step: int
) -> None:
    """For any snapshot cadence, the complete state at every k-th notification (from a snapshot and
    its tail) equals the fold of the log up to there, and the partial state has the same reports."""
    ledger, folder = scenario
    top = ledger.max_notification_id()
    with StateCache.open(ledger, folder / f"every-{every}.states", every) as cache:
        for n in range(1 + k % step, top + 1, step):
            comparable, values = truth_of[n]
            full, point = cache.state_at(n, complete=True)
            assert full.comparable() == comparable, n
            assert point.snapshot <= n and point.tail == n - point.snapshot
            partial, _ = cache.state_at(n)
            assert report_values(partial) == values, n


@given(k=st.integers(1, 10_000), every=st.integers(1, 25))
def test_state_equals_a_ledger_truncated_there(scenario: tuple[Ledger, Path], truth_of: Truth, k: int,
                                               every: int) -> None:
    """A copy of the database with every row after notification k deleted folds to the state the
    cache of the whole ledger gives at k; a cache built on the truncated copy extends to the whole."""
    ledger, folder = scenario
    n = 1 + k % ledger.max_notification_id()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "cut.db"
        backup(Path(ledger.url.path), copy)
        cut = sqlite3.connect(copy)
        cut.execute("DELETE FROM stored_events WHERE rowid > ?", (n,))
        cut.commit()
        cut.close()
        short = Ledger.open(copy)
        try:
            cached = Path(tmp) / "shared.states"
            with StateCache.open(short, cached, every) as cache:
                assert cache.end == n
                assert cache.state_at(n, complete=True)[0].comparable() == truth_of[n][0]
            expected = fold(short.iter_events(), LedgerState(keep_fills=False)).comparable()
            assert expected == truth_of[n][0]
        finally:
            short.close()
        with StateCache.open(ledger, folder / f"whole-{every}.states", every) as whole:
            assert whole.state_at(n, complete=True)[0].comparable() == expected
        # the cache of the prefix is a valid start for the whole ledger: it is extended, not rebuilt
        with StateCache.open(ledger, cached, every) as grown:
            assert grown.end == ledger.max_notification_id()
            top = ledger.max_notification_id()
            assert grown.state_at(top, complete=True)[0].comparable() == truth_of[top][0]


@given(commands=event_sequences(max_actions=30), every=st.integers(1, 6))
def test_generated_sequences_replay_to_the_same_state(commands: list[object], every: int) -> None:
    """Any valid command sequence (resting orders cancelled later, transfers arriving later, AAVE
    supplies, duplicates): the cache's state at every notification equals the fold up to it."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(Path(tmp) / "g.db", create=True, synchronous="OFF")
        try:
            record_commands(ledger, commands)  # type: ignore[arg-type]
            top = ledger.max_notification_id()
            if top == 0:
                return
            want = truths(ledger)
            with StateCache.open(ledger, Path(tmp) / "g.states", every) as cache:
                for n in range(1, top + 1):
                    assert cache.state_at(n, complete=True)[0].comparable() == want[n][0], n
                    assert report_values(cache.state_at(n)[0]) == want[n][1], n
        finally:
            ledger.close()


@given(minutes=st.integers(-120, 60 * 24 * 5))
def test_as_of_is_the_longest_prefix_stamped_at_or_before_the_time(
    scenario: tuple[Ledger, Path], minutes: int
) -> None:
    """The cache and a plain scan agree; every event up to the answer is stamped at or before T and
    the next one after it; times outside the log are refused."""
    ledger, folder = scenario
    when = T0 + timedelta(minutes=minutes)
    stamps = [e.ts_event for _n, e in ledger.iter_events()]
    with StateCache.open(ledger, folder / "times.states", 7) as cache:
        if when < min(stamps) or when > max(stamps):
            with pytest.raises(ReplayError):
                cache.notification_at(when)
            with pytest.raises(ReplayError):
                scan_time(ledger, when)
            return
        n = cache.notification_at(when)
    assert n == scan_time(ledger, when)
    assert all(ts <= when for ts in stamps[:n])
    assert n == len(stamps) or stamps[n] > when


def test_times_going_backwards_stop_the_prefix_at_the_first_later_event(tmp_path: Path) -> None:
    """Stamped t0, t0+2h, t0+1h, t0+3h: as of t0+1h30 is notification 2 of the venue's events (the
    first event stamped after it ends the prefix), as of t0+2h it includes the late t0+1h event."""
    ledger = Ledger.open(tmp_path / "late.db", create=True)
    venue = VenueLedger.open("main", "binance", "cex", T0)
    ledger.save(venue)
    for i, hours in enumerate((2, 1, 3)):
        venue.record_deposit(f"d{i}", "spot", "USDT", D(10 + i), T0 + timedelta(hours=hours))
        ledger.save(venue)
    with StateCache.open(ledger, tmp_path / "late.states", 1) as cache:
        assert cache.notification_at(T0 + timedelta(minutes=90)) == 1
        assert cache.notification_at(T0 + timedelta(hours=2)) == 3
        assert cache.notification_at(T0 + timedelta(hours=3)) == 4
    assert scan_time(ledger, T0 + timedelta(minutes=90)) == 1
    assert scan_time(ledger, T0 + timedelta(hours=2)) == 3
    replayed = state_as_of(ledger, as_of=T0 + timedelta(hours=2), cache=tmp_path / "late.states")
    assert replayed.point.notification == 3 and reports.balances(replayed.state) == {"USDT": D(21)}


@given(k=st.integers(1, 10_000))
def test_codec_round_trips_every_state(scenario: tuple[Ledger, Path], k: int) -> None:
    """encode_state then decode_state gives back an equal state, exact Decimals and times included."""
    ledger, _folder = scenario
    state, _ = fold_to(ledger, 1 + k % ledger.max_notification_id())
    assert decode_state(encode_state(state)).comparable() == state.comparable()


@pytest.mark.parametrize("data", [b"", b"{}", b"[1,2]", b'{"format":"x"}', b"\x80\x04K\x01.",
                                  b"cos\nsystem\n(S'echo hi'\ntR."])
def test_malformed_or_pickled_state_is_refused(data: bytes) -> None:
    """Anything but our JSON (pickles included) is a ReplayError, never executed."""
    with pytest.raises(ReplayError):
        decode_state(data)


def test_cache_of_another_ledger_at_the_same_path_is_rebuilt(scenario: tuple[Ledger, Path],
                                                            truth_of: Truth, tmp_path: Path) -> None:
    """The cache is keyed to the ledger's first event: another ledger's cache is not trusted."""
    ledger, _folder = scenario
    other = Ledger.open(tmp_path / "other.db", create=True)
    venue = VenueLedger.open("main", "okx", "cex", T0)
    venue.record_deposit("x", "trading", "USDT", D(5), T0)
    other.save(venue)
    path = tmp_path / "shared.states"
    with StateCache.open(other, path, 1) as cache:
        assert cache.end == 2
    with StateCache.open(ledger, path, 1) as cache:
        top = ledger.max_notification_id()
        assert cache.end == top
        assert cache.state_at(top, complete=True)[0].comparable() == truth_of[top][0]
    other.close()


def test_a_foreign_file_at_the_cache_path_is_refused_not_overwritten(scenario: tuple[Ledger, Path],
                                                                   tmp_path: Path) -> None:
    """A file that is not a replay-state cache is left alone."""
    ledger, _folder = scenario
    foreign = tmp_path / "notes.states"
    foreign.write_text("my notes")
    with pytest.raises(ReplayError, match="not a replay-state cache"):
        StateCache.open(ledger, foreign)
    assert foreign.read_text() == "my notes"
    backup(Path(ledger.url.path), tmp_path / "ledger-copy.db")
    with pytest.raises(ReplayError, match="not a replay-state cache"):
        StateCache.open(ledger, tmp_path / "ledger-copy.db")


def test_an_encrypted_ledger_gets_no_plaintext_cache_by_default(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With LEDGER_CIPHER_KEY the state is folded from the first event and no cache file appears."""
    from eventsourcing.cipher import AESCipher

    monkeypatch.setenv("LEDGER_CIPHER_KEY", AESCipher.create_key(32))
    ledger = Ledger.open(tmp_path / "secret.db", create=True)
    venue = VenueLedger.open("main", "binance", "cex", T0)
    venue.record_deposit("d", "spot", "USDT", D(7), T0)
    ledger.save(venue)
    replayed = state_as_of(ledger)
    assert reports.balances(replayed.state) == {"USDT": D(7)} and "encrypted" in replayed.note
    assert replayed.cache is None and not (tmp_path / "secret.db.states").exists()
    ledger.close()
