"""The DuckDB hot cache: the ``metrics`` table, the window tables and views, and client queries.

One in-process DuckDB database. Ingest writes through one cursor, serialised by the
service; every query thread gets its own cursor (DuckDB connections are not thread-safe,
but many connections to one database are, with snapshot isolation between them).

Confinement (spec/flightsql.md, FSQL-20 to FSQL-24): the database is opened with external
access disabled (no files, no extension installs, no attaching files), Python replacement
scans disabled (a query cannot read the server's Python variables), and the configuration
locked once our own setup is done, so client SQL cannot change settings. Client statements
are further restricted by type before they run (see :meth:`DuckDBHotCache.check_readonly`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from hyprstream.backend._types import duckdb_type
from hyprstream.errors import (
    InternalError,
    InvalidQuery,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from hyprstream.model import CORE_COLUMNS

__all__ = ["WINDOW_COLUMNS", "DuckDBHotCache", "QueryShape"]

METRICS_TABLE = "metrics"
WINDOWS_TABLE = "metric_windows"
_WINDOW_STORE = "_hyprstream_windows"

#: Columns of ``metric_windows`` (spec/windows.md, WIN-15), in order, with their Arrow types.
WINDOW_COLUMNS: tuple[pa.Field, ...] = (
    pa.field("metric_id", pa.utf8(), nullable=False),
    pa.field("window", pa.utf8(), nullable=False),
    pa.field("window_start", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("window_end", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
    pa.field("sum", pa.float64(), nullable=False),
    pa.field("avg", pa.float64(), nullable=False),
    pa.field("min", pa.float64(), nullable=False),
    pa.field("max", pa.float64(), nullable=False),
    pa.field("variance", pa.float64(), nullable=False),
    pa.field("stddev", pa.float64(), nullable=False),
    pa.field("first_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("last_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("last_value", pa.float64(), nullable=False),
)

#: The stored form of a window: the view derives variance and stddev from m2.
WINDOW_STORE_SCHEMA = pa.schema(
    [
        pa.field("metric_id", pa.utf8()),
        pa.field("window", pa.utf8()),
        pa.field("window_start", pa.timestamp("us", tz="UTC")),
        pa.field("window_end", pa.timestamp("us", tz="UTC")),
        pa.field("count", pa.int64()),
        pa.field("sum", pa.float64()),
        pa.field("mean", pa.float64()),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("m2", pa.float64()),
        pa.field("first_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("last_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("last_value", pa.float64()),
    ]
)

_READ_ONLY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


@dataclass(frozen=True, slots=True)
class QueryShape:
    """What a prepared query returns and how many parameters it takes."""

    schema: pa.Schema
    parameter_count: int


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBHotCache:
    """The hot store and query engine. Writers must be serialised by the caller."""

    def __init__(
        self,
        database: str = ":memory:",
        *,
        window_labels: Sequence[str] = (),
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "enable_external_access": False,
            "python_enable_replacements": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        }
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        self._db = duckdb.connect(database, config=config)
        self._db.execute("SET GLOBAL TimeZone = 'UTC'")
        self._writer = self._db.cursor()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._labels: dict[str, pa.DataType] = {}
        self._create_tables(window_labels)
        self._db.execute("SET lock_configuration = true")

    # -- schema ----------------------------------------------------------------------------

    def _create_tables(self, window_labels: Sequence[str]) -> None:
        w = self._writer
        cols = ", ".join(f"{_q(f.name)} {duckdb_type(f.type)}" for f in CORE_COLUMNS)
        w.execute(f"CREATE TABLE IF NOT EXISTS {METRICS_TABLE} ({cols})")
        store_cols = ", ".join(f"{_q(f.name)} {duckdb_type(f.type)}" for f in WINDOW_STORE_SCHEMA)
        w.execute(f"CREATE TABLE IF NOT EXISTS {_WINDOW_STORE} ({store_cols})")
        w.execute(
            f"""CREATE OR REPLACE VIEW {WINDOWS_TABLE} AS SELECT
                metric_id, "window", window_start, window_end, "count", "sum", mean AS "avg",
                "min", "max", m2 / "count" AS variance, sqrt(m2 / "count") AS stddev,
                first_timestamp, last_timestamp, last_value
            FROM {_WINDOW_STORE}"""
        )
        for label in window_labels:
            w.execute(
                f"CREATE OR REPLACE VIEW {_q('metrics_' + label)} AS "
                f"SELECT * FROM {WINDOWS_TABLE} WHERE \"window\" = '{label}'"
            )

    @property
    def labels(self) -> dict[str, pa.DataType]:
        return dict(self._labels)

    def add_labels(self, fields: Sequence[pa.Field]) -> None:
        for field in fields:
            self._writer.execute(
                f"ALTER TABLE {METRICS_TABLE} ADD COLUMN {_q(field.name)} {duckdb_type(field.type)}"
            )
            self._labels[field.name] = field.type

    # -- writes (serialised by the caller) -------------------------------------------------

    def append(self, rows: pa.Table) -> None:
        """Insert ``rows`` (columns by name; absent labels become NULL)."""
        w = self._writer
        w.register("_hyprstream_batch", rows)
        try:
            w.execute(f"INSERT INTO {METRICS_TABLE} BY NAME SELECT * FROM _hyprstream_batch")
        finally:
            w.unregister("_hyprstream_batch")

    def replace_windows(self, keys: pa.Table, rows: pa.Table) -> None:
        """Delete the windows named in ``keys`` (window, window_start), then insert ``rows``."""
        w = self._writer
        w.execute("BEGIN")
        try:
            if keys.num_rows:
                w.register("_hyprstream_keys", keys)
                w.execute(
                    f"""DELETE FROM {_WINDOW_STORE} AS s USING _hyprstream_keys AS k
                    WHERE s."window" = k."window" AND s.window_start = k.window_start"""
                )
                w.unregister("_hyprstream_keys")
            if rows.num_rows:
                w.register("_hyprstream_rows", rows)
                w.execute(f"INSERT INTO {_WINDOW_STORE} BY NAME SELECT * FROM _hyprstream_rows")
                w.unregister("_hyprstream_rows")
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise

    def evict_windows(self, label: str, end_at_or_before_us: int) -> None:
        self._writer.execute(
            f"""DELETE FROM {_WINDOW_STORE} WHERE "window" = ?
            AND window_end <= make_timestamptz(?::BIGINT)""",
            [label, end_at_or_before_us],
        )

    # -- queries (any thread) --------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._db.cursor()
            self._local.cursor = cur
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    def check_readonly(self, sql: str) -> int:
        """Refuse anything but one read-only statement; returns its parameter count."""
        try:
            statements = self._cursor().extract_statements(sql)
        except duckdb.Error as exc:
            raise InvalidQuery(f"cannot parse the query: {_message(exc)}") from None
        if len(statements) != 1:
            raise InvalidQuery(f"send exactly one SQL statement per query, got {len(statements)}")
        statement = statements[0]
        if statement.type not in _READ_ONLY_TYPES:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise PermissionDenied(
                f"{kind} statements are not allowed on the hot cache: hyprstream accepts "
                "read-only queries (SELECT, EXPLAIN) here; ingest goes through DoPut"
            )
        return len(statement.named_parameters)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only query and return its result as an Arrow table."""
        cur = self._cursor()
        try:
            relation = cur.sql(sql, params=list(params) if params is not None else None)
            if relation is None:
                raise InvalidQuery("the statement returned no result set")
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise _translate(exc) from None

    def shape(self, sql: str, parameter_count: int) -> QueryShape:
        """The result schema of ``sql`` without running it (parameters bound as NULL)."""
        cur = self._cursor()
        try:
            params = [None] * parameter_count if parameter_count else None
            relation = cur.sql(sql, params=params)
            if relation is None:
                raise InvalidQuery("the statement returned no result set")
            schema = relation.limit(0).to_arrow_table().schema
        except duckdb.Error as exc:
            raise _translate(exc) from None
        return QueryShape(schema=schema, parameter_count=parameter_count)

    def interrupt_all(self) -> None:
        with self._cursors_lock:
            for cur in self._cursors:
                cur.interrupt()

    def close(self) -> None:
        with self._cursors_lock:
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
        self._writer.close()
        self._db.close()


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:1000]


def _translate(exc: duckdb.Error) -> Exception:
    text = _message(exc)
    if isinstance(exc, duckdb.CatalogException):
        return NotFound(text)
    if isinstance(exc, duckdb.PermissionException):
        return PermissionDenied(text)
    if isinstance(exc, duckdb.InterruptException):
        return ResourceExhausted(f"the query was interrupted (time limit): {text}")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ResourceExhausted(f"the query ran out of memory: {text}")
    if isinstance(exc, duckdb.InternalException | duckdb.FatalException):
        return InternalError(text)
    return InvalidQuery(text)
