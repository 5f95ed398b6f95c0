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
    REAL,
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from aggregates.errors import StoreError
from aggregates.values import MONEY
from projections import reports
from projections.folds import apply, hour_end
from projections.prices import instrument_mark, usd_price
from projections.state import ZERO, Fill, LedgerState, Order, Position, Transit

VIEW_NAME = "ledger-views"


@contextmanager
def _view_errors() -> Iterator[None]:
    """A database error while writing the views (a full disk, a read-only file) as one StoreError."""
    try:
        yield
    except DBAPIError as e:
        text = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__
        raise StoreError(f"cannot write the SQL views: {text}") from None


class _Number(TypeDecorator[Any]):
    """A Decimal column: NUMERIC on PostgreSQL (arbitrary precision, exact); on SQLite the subclass's
    storage, written through `to_sqlite`. Read back as `read` gives it, the same on both stores."""

    impl = Text
    cache_ok = True
    sqlite: Any = Text
    to_sqlite: Any = str
    read: Any = Decimal

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(self.sqlite())

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else type(self).to_sqlite(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else type(self).read(value)


class DecimalText(_Number):
    """Exact Decimals: text on SQLite (its NUMERIC would round-trip through float), NUMERIC on
    PostgreSQL."""

    cache_ok = True


class QueryNumber(_Number):
    """The `<column>_num` copy of an exact column, for people's SQL (compare, order, sum): REAL on
    SQLite, NUMERIC on PostgreSQL. Written from the exact Decimal, never read back into the state;
    read as float on both stores, so `audit verify` compares a PostgreSQL view with a rebuild."""

    cache_ok = True
    sqlite = REAL
    to_sqlite = float
    read = float


NUM = "_num"


def _tables(schema: str | None) -> tuple[MetaData, dict[str, Table]]:
    md = MetaData(schema=schema)
    s = String(200)

    def m(name: str) -> tuple[Column[Any], Column[Any]]:
        """An exact decimal column and its typed `_num` copy."""
        return Column(name, DecimalText()), Column(name + NUM, QueryNumber())

    def t(name: str, *cols: Column[Any]) -> Table:
        return Table(f"view_{name}", md, *cols)

    tables = {
        "streams": t("streams", Column("stream", s, primary_key=True), Column("venue", s)),
        "balances": t("balances", Column("venue", s, primary_key=True),
                      Column("wallet", s, primary_key=True), Column("asset", s, primary_key=True),
                      *m("amount"), *m("supplied"), *m("borrowed"), *m("usd_value")),
        "positions": t("positions", Column("venue", s, primary_key=True),
                       Column("instrument", s, primary_key=True), Column("market_type", s),
                       *m("quantity"), *m("avg_entry"), *m("realised"),
                       *m("fees"), *m("mark"), *m("usd_value")),
        "lending": t("lending", Column("book", s, primary_key=True), Column("venue", s, primary_key=True),
                     Column("asset", s, primary_key=True), *m("amount")),
        "transit": t("transit", Column("transfer_id", s, primary_key=True), Column("from_venue", s),
                     Column("from_wallet", s), Column("to_venue", s), Column("to_wallet", s),
                     Column("asset", s), *m("amount"), Column("instruction_id", s)),
        "orders": t("orders", Column("instruction_id", s, primary_key=True), Column("venue", s),
                    Column("kind", s), Column("instrument", s), Column("side", s), *m("amount"),
                    Column("wallet", s), Column("status", s), *m("filled"),
                    *m("notional"), *m("fees"), Column("ts_accepted", s),
                    Column("code", s)),
        "pnl": t("pnl", Column("line", s, primary_key=True), Column("asset", s, primary_key=True),
                 *m("amount")),
        "pnl_usd": t("pnl_usd", Column("line", s, primary_key=True), *m("amount")),
        "pnl_statement": t("pnl_statement", Column("line", s, primary_key=True), Column("seq", Integer),
                           *m("amount")),
        "marks": t("marks", Column("key", s, primary_key=True), *m("price")),
        "tx_effects": t("tx_effects", Column("tx_hash", s, primary_key=True), Column("deltas", Text)),
        "observed": t("observed", Column("venue", s, primary_key=True),
                      Column("wallet", s, primary_key=True), Column("asset", s, primary_key=True),
                      *m("difference")),
        "equity": t("equity", Column("ts", s, primary_key=True), *m("equity")),
        "fills": t("fills", Column("venue", s, primary_key=True), Column("market_type", s, primary_key=True),
                   Column("instrument", s, primary_key=True), Column("trade_id", s, primary_key=True),
                   Column("instruction_id", s), Column("side", s), *m("quantity"),
                   *m("price"), *m("fee"), Column("fee_asset", s), Column("ts", s)),
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


def _value(state: LedgerState, asset: str, amount: Decimal) -> Decimal | None:
    """`amount` of `asset` in USD at the latest marks; None (NULL) when the asset has no price."""
    price = usd_price(state.marks, asset)
    return None if price is None else MONEY.multiply(amount, price)


def _derived(state: LedgerState) -> dict[str, dict[Any, dict[str, Any]]]:
    """The rows that depend on the marks as well as on their own book: balances (held, supplied and
    borrowed with their USD value), positions (with mark and USD value) and the P&L statement.
    Written by difference after every commit, since a new mark changes rows no event touched."""
    balances: dict[Any, dict[str, Any]] = {}
    for venue, wallet, asset in state.balances:
        balances[(venue, wallet, asset)] = {"venue": venue, "wallet": wallet, "asset": asset,
                                            "amount": state.balances[(venue, wallet, asset)],
                                            "supplied": None, "borrowed": None}
    # AAVE books are per venue and asset: they sit in the row of wallet "" beside any held amount.
    for book in ("supplied", "borrowed"):
        for (venue, asset), amount in getattr(state, book).items():
            row = balances.setdefault((venue, "", asset), {
                "venue": venue, "wallet": "", "asset": asset, "amount": None,
                "supplied": None, "borrowed": None})
            row[book] = amount
    for (_v, _w, asset), row in balances.items():
        net = MONEY.subtract(MONEY.add(row["amount"] or ZERO, row["supplied"] or ZERO),
                             row["borrowed"] or ZERO)
        row["usd_value"] = _value(state, asset, net)
    positions: dict[Any, dict[str, Any]] = {}
    for (venue, instrument), p in state.positions.items():
        mark = instrument_mark(state.marks, venue, reports.parse_instrument(instrument).base,
                               p.market_type)
        positions[(venue, instrument)] = {
            "venue": venue, "instrument": instrument, "market_type": p.market_type,
            "quantity": p.quantity, "avg_entry": p.avg_entry, "realised": p.realised, "fees": p.fees,
            "mark": mark, "usd_value": None if mark is None else MONEY.multiply(p.quantity, mark)}
    statement = {line: {"line": line, "seq": seq, "amount": amount}
                 for seq, (line, amount) in enumerate(pnl_statement(state).items())}
    return {"balances": balances, "positions": positions, "pnl_statement": statement}


def pnl_statement(state: LedgerState) -> dict[str, Decimal]:
    """The P&L statement the reports print, line by line in their order: view_pnl_statement's rows."""
    return reports.pnl(state)


_DERIVED = frozenset({"balances", "positions"})  # books whose rows _derived writes
_TABLE_OF = {"supplied": "lending", "borrowed": "lending"}
_PK = {
    "streams": ("stream",), "balances": ("venue", "wallet", "asset"), "positions": ("venue", "instrument"),
    "lending": ("book", "venue", "asset"), "transit": ("transfer_id",), "orders": ("instruction_id",),
    "pnl": ("line", "asset"), "pnl_usd": ("line",), "marks": ("key",), "tx_effects": ("tx_hash",),
    "observed": ("venue", "wallet", "asset"), "equity": ("ts",), "pnl_statement": ("line",),
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
        self._written: dict[str, dict[Any, dict[str, Any]]] = {}
        with _view_errors():
            self._upgrade(schema)
            self.metadata.create_all(self.engine)
            self.state, self.position = self._load()

    def _upgrade(self, schema: str | None) -> None:
        """Views written by an older version (other columns) are dropped: they are derived data,
        and the next run or rebuild writes them again from the log."""
        found = inspect(self.engine)
        names = set(found.get_table_names(schema=schema))
        for table in self.metadata.sorted_tables:
            if table.name in names and {c["name"] for c in found.get_columns(table.name, schema=schema)} \
                    != {c.name for c in table.columns}:
                self.metadata.drop_all(self.engine)
                return

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
            if book in _DERIVED:
                continue
            name = _TABLE_OF.get(book, book)
            deletes, inserts = by_table.setdefault(name, ([], []))
            deletes.append(_pk_values(book, key))
            row = _row(state, book, key)
            if row is not None:
                inserts.append(row)
        derived = _derived(state)
        for name, rows in derived.items():
            written = self._written.get(name, {})
            deletes, inserts = by_table.setdefault(name, ([], []))
            for key in sorted(written.keys() - rows.keys(), key=repr):
                deletes.append(_pk_values(name, key))
            for key, row in sorted(rows.items(), key=lambda kv: repr(kv[0])):
                if written.get(key) != row:
                    if key in written:
                        deletes.append(_pk_values(name, key))
                    inserts.append(row)
        self._written = derived
        for table_name, (deletes, inserts) in by_table.items():
            table: Table = self.tables[table_name]
            if deletes:
                cond = [table.c[k] == _bind(k) for k in deletes[0]]
                conn.execute(delete(table).where(*cond), [{f"b_{k}": v for k, v in d.items()}
                                                          for d in deletes])
            if inserts:
                conn.execute(insert(table), [_typed(table, row) for row in inserts])
        if state.new_fills:
            fills = self.tables["fills"]
            conn.execute(insert(fills), [
                _typed(fills, {f: getattr(fill, f) for f in Fill.__slots__}) for fill in state.new_fills])

    # ---- rebuild and loading -------------------------------------------------------------------

    def rebuild(self, source: Any, progress: Callable[[int], None] | None = None, batch: int = 5_000) -> int:
        """Empty every view table and replay every event, in one transaction: a log that cannot be read
        to its end (or a disk that fills) leaves the views as they were."""
        state = LedgerState(keep_fills=False)
        count, last = 0, 0
        self._written = {}
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
            for r in conn.execute(select(tb["balances"].c.venue, tb["balances"].c.wallet,
                                         tb["balances"].c.asset, tb["balances"].c.amount)):
                if r.amount is not None:  # None: a row that only shows AAVE books
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
        self._written = _derived(state)  # what the tables hold: they were written from this state
        state.events, state.fills_count = tracked.events, tracked.fills_count
        state.last_ts = datetime.fromisoformat(tracked.last_ts) if tracked.last_ts else None
        if state.marks and state.last_ts is not None:  # the hour still open: its sample is taken when
            state.equity_due = hour_end(state.last_ts)  # the next hour's first event comes, as in a fold
        return state, int(tracked.notification_id)

    def fills(self) -> list[dict[str, Any]]:
        tb = self.tables["fills"]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(tb).order_by(tb.c.ts, tb.c.venue, tb.c.trade_id))]

    def close(self) -> None:
        self.engine.dispose()


def _typed(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each exact value copied into its `_num` column."""
    return {**row, **{k + NUM: v for k, v in row.items() if k + NUM in table.c}}


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(f"b_{name}")


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True)
