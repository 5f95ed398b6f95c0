"""The SQL view: the folded state as SQLAlchemy Core tables in the ledger's own database.

Each batch of events is written together with its tracking record in one transaction, so a
projector killed at any point resumes exactly once from the last committed notification.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from aggregates.errors import StoreError
from projections.folds import apply
from projections.state import Fill, LedgerState, Order, Position, Transit

VIEW_NAME = "ledger-views"


@contextmanager
def _view_errors() -> Iterator[None]:
    """A database error while writing the views (a full disk, a read-only file) as one StoreError."""
    try:
        yield
    except DBAPIError as e:
        text = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__
        raise StoreError(f"cannot write the SQL views: {text}") from None


class DecimalText(TypeDecorator[Decimal]):
    """Exact Decimals stored as text: SQLite's NUMERIC would round-trip through float."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


def _tables(schema: str | None) -> tuple[MetaData, dict[str, Table]]:
    md = MetaData(schema=schema)
    s, d = String(200), DecimalText()

    def t(name: str, *cols: Column[Any]) -> Table:
        return Table(f"view_{name}", md, *cols)

    tables = {
        "streams": t("streams", Column("stream", s, primary_key=True), Column("venue", s)),
        "balances": t("balances", Column("venue", s, primary_key=True),
                      Column("wallet", s, primary_key=True), Column("asset", s, primary_key=True),
                      Column("amount", d)),
        "positions": t("positions", Column("venue", s, primary_key=True),
                       Column("instrument", s, primary_key=True), Column("market_type", s),
                       Column("quantity", d), Column("avg_entry", d), Column("realised", d),
                       Column("fees", d)),
        "lending": t("lending", Column("book", s, primary_key=True), Column("venue", s, primary_key=True),
                     Column("asset", s, primary_key=True), Column("amount", d)),
        "transit": t("transit", Column("transfer_id", s, primary_key=True), Column("from_venue", s),
                     Column("from_wallet", s), Column("to_venue", s), Column("to_wallet", s),
                     Column("asset", s), Column("amount", d), Column("instruction_id", s)),
        "orders": t("orders", Column("instruction_id", s, primary_key=True), Column("venue", s),
                    Column("kind", s), Column("instrument", s), Column("side", s), Column("amount", d),
                    Column("wallet", s), Column("status", s), Column("filled", d),
                    Column("notional", d), Column("fees", d), Column("ts_accepted", s),
                    Column("code", s)),
        "pnl": t("pnl", Column("line", s, primary_key=True), Column("asset", s, primary_key=True),
                 Column("amount", d)),
        "pnl_usd": t("pnl_usd", Column("line", s, primary_key=True), Column("amount", d)),
        "marks": t("marks", Column("key", s, primary_key=True), Column("price", d)),
        "tx_effects": t("tx_effects", Column("tx_hash", s, primary_key=True), Column("deltas", Text)),
        "observed": t("observed", Column("venue", s, primary_key=True),
                      Column("wallet", s, primary_key=True), Column("asset", s, primary_key=True),
                      Column("difference", d)),
        "equity": t("equity", Column("ts", s, primary_key=True), Column("equity", d)),
        "fills": t("fills", Column("venue", s, primary_key=True), Column("market_type", s, primary_key=True),
                   Column("instrument", s, primary_key=True), Column("trade_id", s, primary_key=True),
                   Column("instruction_id", s), Column("side", s), Column("quantity", d),
                   Column("price", d), Column("fee", d), Column("fee_asset", s), Column("ts", s)),
        "tracking": t("tracking", Column("name", s, primary_key=True),
                      Column("notification_id", Integer), Column("events", Integer),
                      Column("fills_count", Integer), Column("last_ts", s)),
    }
    return md, tables


def _row(state: LedgerState, book: str, key: Any) -> dict[str, Any] | None:
    """The SQL row for one dirty key, or None when the key no longer exists."""
    if book == "streams":
        venue = state.streams.get(key)
        return None if venue is None else {"stream": key.hex, "venue": venue}
    if book == "balances":
        amount = state.balances.get(key)
        return None if amount is None else dict(zip(("venue", "wallet", "asset"), key, strict=True),
                                                amount=amount)
    if book == "positions":
        p = state.positions.get(key)
        return None if p is None else {"venue": key[0], "instrument": key[1],
                                       "market_type": p.market_type, "quantity": p.quantity,
                                       "avg_entry": p.avg_entry, "realised": p.realised, "fees": p.fees}
    if book in ("supplied", "borrowed"):
        amount = getattr(state, book).get(key)
        return None if amount is None else {"book": book, "venue": key[0], "asset": key[1],
                                            "amount": amount}
    if book == "transit":
        t = state.transit.get(key)
        return None if t is None else {"transfer_id": key, **{f: getattr(t, f) for f in Transit.__slots__}}
    if book == "orders":
        o = state.orders.get(key)
        return None if o is None else {"instruction_id": key, **{f: getattr(o, f) for f in Order.__slots__}}
    if book == "pnl":
        amount = state.pnl.get(key)
        return None if amount is None else {"line": key[0], "asset": key[1], "amount": amount}
    if book == "pnl_usd":
        amount = state.pnl_usd.get(key)
        return None if amount is None else {"line": key, "amount": amount}
    if book == "marks":
        price = state.marks.get(key)
        return None if price is None else {"key": key, "price": price}
    if book == "tx_effects":
        deltas = state.tx_effects.get(key)
        return None if deltas is None else {
            "tx_hash": key, "deltas": json.dumps([[*d[:4], str(d[4])] for d in deltas])}
    if book == "observed":
        diff = state.observed.get(key)
        return None if diff is None else dict(zip(("venue", "wallet", "asset"), key, strict=True),
                                              difference=diff)
    if book == "equity":
        for ts, value in reversed(state.equity):
            if ts == key:
                return {"ts": ts, "equity": value}
        return None
    raise KeyError(book)


_TABLE_OF = {"supplied": "lending", "borrowed": "lending"}
_PK = {
    "streams": ("stream",), "balances": ("venue", "wallet", "asset"), "positions": ("venue", "instrument"),
    "lending": ("book", "venue", "asset"), "transit": ("transfer_id",), "orders": ("instruction_id",),
    "pnl": ("line", "asset"), "pnl_usd": ("line",), "marks": ("key",), "tx_effects": ("tx_hash",),
    "observed": ("venue", "wallet", "asset"), "equity": ("ts",),
}


def _pk_values(book: str, key: Any) -> dict[str, Any]:
    table = _TABLE_OF.get(book, book)
    if book in _TABLE_OF:
        return {"book": book, "venue": key[0], "asset": key[1]}
    values = key if isinstance(key, tuple) else (key.hex if isinstance(key, UUID) else key,)
    return dict(zip(_PK[table], values, strict=True))


class SQLProjection:
    """Keeps the view_* tables equal to the fold of every event, exactly once, resumable."""

    def __init__(self, url: str | Engine, schema: str | None = None, name: str = VIEW_NAME) -> None:
        self.engine: Engine = _engine(url) if isinstance(url, str) else url
        self.name = name
        self.metadata, self.tables = _tables(schema)
        with _view_errors():
            self.metadata.create_all(self.engine)
            self.state, self.position = self._load()

    @classmethod
    def for_ledger(cls, ledger: Any) -> SQLProjection:
        """The SQL view in the same database as `ledger`'s event store."""
        url = ledger.url
        if url.kind == "postgresql":
            auth = url.user + (f":{url.password}" if url.password else "")
            return cls(f"postgresql+psycopg://{auth}@{url.host}:{url.port}/{url.dbname}", url.schema)
        if url.kind == "memory":
            return cls("sqlite://")
        from ledger.stores import sqlite_engine, sqlite_uri

        return cls(sqlite_engine(sqlite_uri(url.path, mode="rw")))

    # ---- running -------------------------------------------------------------------------------

    def run(self, source: Any, batch: int = 5_000, stop: int | None = None,
            progress: Callable[[int], None] | None = None) -> int:
        """Apply everything after the tracked position, committing every `batch` events."""
        applied = 0
        pending: list[tuple[int, Any]] = []
        for pair in source.iter_events(self.position, stop):
            pending.append(pair)
            if len(pending) >= batch:
                applied += self.commit(pending)
                pending = []
                if progress:
                    progress(applied)
        applied += self.commit(pending)
        if progress:
            progress(applied)
        return applied

    def commit(self, pairs: Iterable[tuple[int, Any]]) -> int:
        """Fold `pairs` and write the changed rows and the tracking record in one transaction."""
        state = self.state
        count, last = 0, self.position
        for nid, event in pairs:
            if nid <= last:
                continue
            apply(state, event)
            last = nid
            count += 1
        if not count:
            return 0
        try:
            with _view_errors(), self.engine.begin() as conn:
                self._write(conn, state)
                conn.execute(update(self.tables["tracking"]).where(
                    self.tables["tracking"].c.name == self.name).values(
                    notification_id=last, events=state.events, fills_count=state.fills_count,
                    last_ts=state.last_ts.isoformat() if state.last_ts else ""))
        except Exception:
            # The fold ran ahead of the tables: go back to what is committed, so a retry in
            # this process applies these events once, not twice.
            self.state, self.position = self._load()
            raise
        state.dirty.clear()
        state.new_fills.clear()
        self.position = last
        return count

    def _write(self, conn: Connection, state: LedgerState) -> None:
        by_table: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for book, key in sorted(state.dirty, key=lambda d: (d[0], repr(d[1]))):
            name = _TABLE_OF.get(book, book)
            deletes, inserts = by_table.setdefault(name, ([], []))
            deletes.append(_pk_values(book, key))
            row = _row(state, book, key)
            if row is not None:
                inserts.append(row)
        for table_name, (deletes, inserts) in by_table.items():
            table: Table = self.tables[table_name]
            if deletes:
                cond = [table.c[k] == _bind(k) for k in deletes[0]]
                conn.execute(delete(table).where(*cond), [{f"b_{k}": v for k, v in d.items()}
                                                          for d in deletes])
            if inserts:
                conn.execute(insert(table), inserts)
        if state.new_fills:
            conn.execute(insert(self.tables["fills"]), [
                {f: getattr(fill, f) for f in Fill.__slots__} for fill in state.new_fills])

    # ---- rebuild and loading -------------------------------------------------------------------

    def rebuild(self, source: Any, progress: Callable[[int], None] | None = None, batch: int = 5_000) -> int:
        """Empty every view table and replay every event, in one transaction: a log that cannot be read
        to its end (or a disk that fills) leaves the views as they were."""
        state = LedgerState(keep_fills=False)
        count, last = 0, 0
        try:
            with _view_errors(), self.engine.begin() as conn:
                for table in reversed(self.metadata.sorted_tables):
                    conn.execute(delete(table))
                for nid, event in source.iter_events():
                    apply(state, event)
                    count, last = count + 1, nid
                    if count % batch == 0:
                        self._flush(conn, state, progress, count)
                self._flush(conn, state, progress, count)
                conn.execute(insert(self.tables["tracking"]).values(
                    name=self.name, notification_id=last, events=state.events,
                    fills_count=state.fills_count,
                    last_ts=state.last_ts.isoformat() if state.last_ts else ""))
        finally:
            self.state, self.position = self._load()
        return count

    def _flush(self, conn: Connection, state: LedgerState, progress: Callable[[int], None] | None,
               count: int) -> None:
        self._write(conn, state)
        state.dirty.clear()
        state.new_fills.clear()
        if progress:
            progress(count)

    def _load(self) -> tuple[LedgerState, int]:
        tb = self.tables
        state = LedgerState(keep_fills=False)
        with self.engine.begin() as conn:
            tracked = conn.execute(select(tb["tracking"]).where(tb["tracking"].c.name == self.name)).first()
            if tracked is None:
                conn.execute(insert(tb["tracking"]).values(name=self.name, notification_id=0,
                                                           events=0, fills_count=0, last_ts=""))
                return state, 0
            for r in conn.execute(select(tb["streams"])):
                state.streams[UUID(r.stream)] = r.venue
            for r in conn.execute(select(tb["balances"])):
                state.balances[(r.venue, r.wallet, r.asset)] = r.amount
            for r in conn.execute(select(tb["positions"])):
                state.positions[(r.venue, r.instrument)] = Position(
                    r.market_type, r.quantity, r.avg_entry, r.realised, r.fees)
            for r in conn.execute(select(tb["lending"])):
                getattr(state, r.book)[(r.venue, r.asset)] = r.amount
            for r in conn.execute(select(tb["transit"])):
                state.transit[r.transfer_id] = Transit(*(getattr(r, f) for f in Transit.__slots__))
            for r in conn.execute(select(tb["orders"])):
                state.orders[r.instruction_id] = Order(*(getattr(r, f) for f in Order.__slots__))
            for r in conn.execute(select(tb["pnl"])):
                state.pnl[(r.line, r.asset)] = r.amount
            for r in conn.execute(select(tb["pnl_usd"])):
                state.pnl_usd[r.line] = r.amount
            for r in conn.execute(select(tb["marks"])):
                state.marks[r.key] = r.price
            for r in conn.execute(select(tb["tx_effects"])):
                state.tx_effects[r.tx_hash] = [
                    (a, b, c, d, Decimal(x)) for a, b, c, d, x in json.loads(r.deltas)]
            for r in conn.execute(select(tb["observed"])):
                state.observed[(r.venue, r.wallet, r.asset)] = r.difference
            state.equity = [(r.ts, r.equity) for r in conn.execute(
                select(tb["equity"]).order_by(tb["equity"].c.ts))]
        state.events, state.fills_count = tracked.events, tracked.fills_count
        state.last_ts = datetime.fromisoformat(tracked.last_ts) if tracked.last_ts else None
        return state, int(tracked.notification_id)

    def fills(self) -> list[dict[str, Any]]:
        tb = self.tables["fills"]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(tb).order_by(tb.c.ts, tb.c.venue, tb.c.trade_id))]

    def close(self) -> None:
        self.engine.dispose()


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(f"b_{name}")


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True)
