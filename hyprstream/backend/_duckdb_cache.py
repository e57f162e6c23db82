"""The DuckDB hot cache: the ``metrics`` table, the window tables and views, and client queries.

One in-process DuckDB database, reached through DuckDB's own ADBC driver (its per-query
overhead is a fraction of the Python client's). Ingest writes through one connection,
serialised by the service; every query thread gets its own connection (connections are not
thread-safe, but many connections to one database are, with snapshot isolation).

Confinement (spec/flightsql.md, FSQL-20): once our own setup is done, external access is
disabled (no files, no extension installs, no attaching files) and the configuration is
locked, so client SQL cannot change settings. Client statements are further restricted by
type before they run (see :meth:`DuckDBHotCache.check_readonly`), using DuckDB's own parser.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import adbc_driver_duckdb
import adbc_driver_manager
import adbc_driver_manager.dbapi as adbc_dbapi
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.backend._series import Groups, SeriesIndex
from hyprstream.backend._types import confine, duckdb_type
from hyprstream.backend._types import quote_identifier as _q
from hyprstream.backend._watchdog import Watchdog
from hyprstream.cachepolicy import REWRITE_FLOOR, compress_due, rewrite_due
from hyprstream.errors import (
    HyprstreamError,
    InternalError,
    InvalidQuery,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TimedOut,
)
from hyprstream.model import CORE_COLUMNS, metrics_schema

__all__ = ["WINDOW_COLUMNS", "DuckDBHotCache", "QueryShape"]

log = logging.getLogger("hyprstream.cache")

METRICS_TABLE = "metrics"
WINDOWS_TABLE = "metric_windows"
# Window states live in three tables (spec/cache.md, CACHE-9): closed windows in a base
# sorted by metric (so one metric's windows are a few segments), closed windows appended since
# the last compaction, and the open windows, rewritten as they change.
_WINDOWS_BASE = "_hyprstream_windows"
_WINDOWS_RECENT = "_hyprstream_windows_recent"
_WINDOWS_OPEN = "_hyprstream_windows_open"
_WINDOW_TABLES = (_WINDOWS_BASE, _WINDOWS_RECENT, _WINDOWS_OPEN)
#: Read-through results (service/_readthrough.py) are tables named with this prefix.
_RESULT_PREFIX = "_hyprstream_result_"
#: The clustered copy of ``metrics`` a rewrite beside the appends builds (CACHE-10).
_METRICS_NEXT = "_hyprstream_metrics_next"
#: At most this many copies, without the lock, of the rows appended while a rewrite beside
#: the appends runs; the last copy, under the lock, takes what they left.
_CATCH_UP_PASSES = 4

#: Columns of ``metric_windows`` (spec/windows.md, WIN-13), in order, with their Arrow types.
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
    pa.field("p50", pa.float64()),
    pa.field("p90", pa.float64()),
    pa.field("p99", pa.float64()),
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
        pa.field("p50", pa.float64()),
        pa.field("p90", pa.float64()),
        pa.field("p99", pa.float64()),
    ]
)

_NO_KEYS = pa.table(
    {"window": pa.array([], pa.utf8()), "window_start": pa.array([], pa.timestamp("us", tz="UTC"))}
)

_READ_ONLY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_UPDATE_TYPES = frozenset(
    {
        duckdb.StatementType.INSERT,
        duckdb.StatementType.UPDATE,
        duckdb.StatementType.DELETE,
        duckdb.StatementType.CREATE,
        duckdb.StatementType.DROP,
        duckdb.StatementType.ALTER,
    }
)


@dataclass(frozen=True, slots=True)
class QueryShape:
    """What a prepared query returns and how many parameters it takes."""

    schema: pa.Schema
    parameter_count: int


def _by_label(rows: pa.Table) -> list[tuple[str, pa.Table]]:
    """Window rows split by their ``window`` label: the table itself when it holds one
    label (as the service writes them), filtered copies otherwise. Never slices: an index
    keeping a slice would keep the buffers of every other label's rows too."""
    labels = rows["window"].combine_chunks().dictionary_encode()
    names = labels.dictionary.to_pylist()
    if len(names) == 1:
        return [(names[0], rows)]
    codes = labels.indices.to_numpy(zero_copy_only=False)
    return [(name, rows.filter(pa.array(codes == i))) for i, name in enumerate(names)]


class DuckDBHotCache:
    """The hot store and query engine. Writers must be serialised by the caller."""

    def __init__(
        self,
        database: str = ":memory:",
        *,
        window_labels: Sequence[str] = (),
        threads: int | None = None,
        memory_limit: str | None = None,
        query_timeout_s: float | None = None,
        query_memory: int | None = None,
        readers: int = 16,
        recent_us: int = 3_600_000_000,
        rewrite_floor: int = REWRITE_FLOOR,
        series_index: bool = True,
    ) -> None:
        database_handle = adbc_driver_manager.AdbcDatabase(
            driver=adbc_driver_duckdb.driver_path(), entrypoint="duckdb_adbc_init", path=database
        )
        # One reference-counted holder for all our connections: the database closes with the
        # last of them (the DB-API module's own holder, used by its connect()).
        self._db = adbc_dbapi._SharedDatabase(database_handle)
        self._in_memory = database in ("", ":memory:") or database.startswith(":memory:")
        self._connections: list[adbc_dbapi.Connection] = []
        self._cursors: list[adbc_dbapi.Cursor] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect(autocommit=False)
        # Appends to ``metrics`` have their own connection, so that they can run on another
        # thread while the writer refreshes window tables (different tables, no conflicts).
        self._appender = self._connect(autocommit=False)
        # Read-through results live in their own tables, written through their own connection.
        self._results = self._connect(autocommit=True)
        # Rewrites of ``metrics`` into its clustered order (CACHE-10) run on their own
        # connection (each in an explicit transaction, see rewrite_samples), so that
        # cancelling one can never touch an append.
        self._clusterer = self._connect(autocommit=True)
        # Rewrites beside the appends (rewrite_online) have their own.
        self._reorganizer = self._connect(autocommit=True)
        #: Held by whatever changes ``metrics``: appends, evictions, new columns, rewrites.
        self._samples_lock = threading.Lock()
        self._recent_us = recent_us
        self._rewrite_floor = rewrite_floor
        self._sample_rows = 0  # rows in ``metrics`` (as far as our own writes tell)
        self._changed_rows = 0  # appended or deleted since the last rewrite
        self._newest_us: int | None = None  # the newest sample timestamp appended
        self._evicted_before: int | None = None  # the latest expiry cutoff
        self._rewriting = False  # a cancellable rewrite is running
        self._abandoned = False  # ... and was asked to give way
        self._rewrite_state = threading.Lock()  # guards _rewriting and the cancel call
        self._rewrite_blocked_below = 0  # after a failed rewrite: wait for more changes
        self._online = False  # a rewrite beside the appends (rewrite_online) is under way
        self._online_idle = False  # ... by the idle rule: new work gives it up
        self._online_stop = False  # ... and is to be given up (a new column, closing)
        self._online_cancellable = False  # ... and its statement may be cancelled
        self._online_closed = False  # stop_online was called: no such rewrite starts again
        self._online_gave_way = False  # the last idle one was given up for new work
        self._uncompressed = 0  # rows written to any table since the last checkpoint
        self._compress_blocked_below = 0  # after a failed checkpoint: wait for more writes
        self._results_lock = threading.Lock()
        self._query_timeout_s = query_timeout_s
        self._watchdog = Watchdog("hyprstream-query-watchdog")
        #: A second copy of ``metrics`` for one-metric lookups (CACHE-11), or None.
        self._series = SeriesIndex() if series_index else None
        #: Closed window states by size label, for one-metric window lookups (CACHE-11).
        self._window_index: dict[str, SeriesIndex] | None = (
            {label: SeriesIndex(time_column="window_start") for label in window_labels}
            if series_index
            else None
        )
        self._series_schema = metrics_schema()
        #: Counts changes of the hot tables' columns: query shapes are valid for one value.
        self.generation = 0
        self._recent_rows = 0  # closed windows appended since the last compaction
        self._open_deleted = 0  # open-window rows deleted since the last compaction
        with self._writer.cursor() as cur:
            cur.execute("SET GLOBAL TimeZone = 'UTC'")
            if threads:
                cur.execute(f"SET GLOBAL threads = {int(threads)}")
            if memory_limit:
                cur.execute(f"SET GLOBAL memory_limit = '{_literal(memory_limit)}'")
        self._writer.commit()
        self._create_tables(window_labels)
        # Query connections are made now, before the configuration is locked, because each
        # carries its own limit on the memory a query's sorts and hash tables may use.
        self._readers: queue.SimpleQueue[adbc_dbapi.Cursor] = queue.SimpleQueue()
        for _ in range(readers):
            conn = self._connect(autocommit=True)
            cursor = conn.cursor()
            if query_memory:
                cursor.execute(f"SET operator_memory_limit = '{int(query_memory)}B'")
            self._cursors.append(cursor)
            self._readers.put(cursor)
        with self._writer.cursor() as cur:
            confine(cur)
        self._writer.commit()

    def _connect(self, *, autocommit: bool) -> adbc_dbapi.Connection:
        conn = adbc_dbapi.Connection(
            self._db, adbc_driver_manager.AdbcConnection(self._db._db), autocommit=autocommit
        )
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    # -- schema ----------------------------------------------------------------------------

    def _create_tables(self, window_labels: Sequence[str]) -> None:
        cols = ", ".join(f"{_q(f.name)} {duckdb_type(f.type)}" for f in CORE_COLUMNS)
        store_cols = ", ".join(f"{_q(f.name)} {duckdb_type(f.type)}" for f in WINDOW_STORE_SCHEMA)
        with self._writer.cursor() as w:
            # The hot cache starts empty even in a database file (warm start refills it from
            # the backend): nothing of an earlier run may be counted twice.
            w.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal")
            leftovers = [str(r[0]) for r in w.fetchall() if str(r[0]).startswith(_RESULT_PREFIX)]
            for name in leftovers:
                w.execute(f"DROP TABLE {_q(name)}")
            w.execute(f"CREATE OR REPLACE TABLE {METRICS_TABLE} ({cols})")
            for table in _WINDOW_TABLES:
                w.execute(f"CREATE OR REPLACE TABLE {table} ({store_cols})")
            union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in _WINDOW_TABLES)
            w.execute(
                f"""CREATE OR REPLACE VIEW {WINDOWS_TABLE} AS SELECT
                    metric_id, "window", window_start, window_end, "count", "sum",
                    mean AS "avg", "min", "max", m2 / "count" AS variance,
                    sqrt(m2 / "count") AS stddev, p50, p90, p99, first_timestamp,
                    last_timestamp, last_value
                FROM ({union})"""
            )
            for label in window_labels:
                w.execute(
                    f"CREATE OR REPLACE VIEW {_q('metrics_' + label)} AS "
                    f"SELECT * FROM {WINDOWS_TABLE} WHERE \"window\" = '{_literal(label)}'"
                )
        self._writer.commit()

    def add_labels(self, fields: Sequence[pa.Field]) -> None:
        # An idle rewrite that takes the lock after one interruption would run to its end
        # while this waits: interrupt until the lock is ours.
        while not self._samples_lock.acquire(timeout=0.05):
            self.interrupt_rewrite()
        try:
            self._add_labels(fields)
        finally:
            self._samples_lock.release()

    def _add_labels(self, fields: Sequence[pa.Field]) -> None:
        if self._online:  # its copy would lack the new columns
            self._online_stop = True
        with self._writer.cursor() as w:
            for field in fields:
                column = f"{_q(field.name)} {duckdb_type(field.type)}"
                w.execute(f"ALTER TABLE {METRICS_TABLE} ADD COLUMN {column}")
            self._writer.commit()
            self._series_schema = pa.schema([*self._series_schema, *fields])
            self.generation += 1

    # -- writes (serialised by the caller) -------------------------------------------------

    def append(self, rows: pa.Table) -> None:
        """Insert ``rows``: the full ``metrics`` schema, columns in table order.

        May run on another thread than the other writes, but not concurrently with itself or
        with :meth:`add_labels` (the caller orders them). Rows older than the latest expiry
        cutoff (:meth:`evict_samples`) are left out: they have already left the hot cache.
        """
        cutoff = self._evicted_before
        if cutoff is not None and rows.num_rows:
            stamps = rows["timestamp"].cast(pa.int64())
            if pc.min(stamps).as_py() < cutoff:
                rows = rows.filter(pc.greater_equal(stamps, pa.scalar(cutoff, pa.int64())))
        if not rows.num_rows:
            return
        newest = pc.max(rows["timestamp"]).cast(pa.int64()).as_py()
        with self._samples_lock:
            try:
                with self._appender.cursor() as a:
                    a.adbc_ingest(METRICS_TABLE, rows, mode="append")
                self._appender.commit()
            except BaseException:
                _abort(self._appender)
                raise
            self._sample_rows += rows.num_rows
            self._changed_rows += rows.num_rows
            self._uncompressed += rows.num_rows
            if self._newest_us is None or newest > self._newest_us:
                self._newest_us = newest
            self._index(lambda index: index.append(rows))

    def evict_samples(self, before_us: int) -> None:
        """Delete hot samples older than ``before_us`` (on the appender's connection)."""
        with self._samples_lock:
            try:
                with self._appender.cursor() as a:
                    a.execute(
                        f"DELETE FROM {METRICS_TABLE} "
                        f"WHERE timestamp < make_timestamptz({int(before_us)}::BIGINT)"
                    )
                    deleted = max(0, a.rowcount)
                self._appender.commit()
            except BaseException:
                _abort(self._appender)
                raise
            self._sample_rows = max(0, self._sample_rows - deleted)
            self._changed_rows += deleted
            self._uncompressed += deleted  # a checkpoint reclaims their space
            if self._evicted_before is None or before_us > self._evicted_before:
                self._evicted_before = before_us
            self._index(lambda index: index.evict(before_us))

    def _index(self, change: Callable[[SeriesIndex], None]) -> None:
        """Apply ``change`` to the series index (under the samples lock). The index is an
        optimisation: if it fails, it is dropped and every query goes to DuckDB."""
        if self._series is None:
            return
        try:
            change(self._series)
        except Exception as exc:
            self._index_failed(self._series, exc)

    def _index_failed(self, index: SeriesIndex, exc: Exception) -> None:
        """Turn the series index off (under the samples lock) after it failed."""
        if self._series is index:
            log.error("the series index failed and is turned off: %s", exc)
            self._series = None

    def compaction_pressing(self) -> bool:
        """Whether :meth:`compact_series` should run even though the writer is busy: once the
        series index's runs crowd (merges cost ingest some CPU, so a burst of up to about 32
        batches pays none; past 64 runs the writer would merge, its appends waiting)."""
        index = self._series
        return index is not None and index.crowded

    def compact_series(self) -> bool:
        """One compaction step of the series index (CACHE-11); whether it merged runs.

        The merge is computed without the samples lock, so appends and evictions go on
        meanwhile (a step over millions of rows takes a second or more); it is installed
        under the lock, unless the writer merged the same runs in the meantime."""
        index = self._series
        if index is None:
            return False
        try:
            planned = index.plan_compaction(background=True)
        except Exception as exc:
            with self._samples_lock:
                self._index_failed(index, exc)
            return False
        if planned is None:
            return False
        with self._samples_lock:
            return self._series is index and index.install(planned)

    def series(self, metric_id: str, since_us: int | None = None) -> pa.Table | None:
        """The hot rows of ``metric_id`` at or after ``since_us`` (None: all) in timestamp
        order, with every ``metrics`` column, from the series index (CACHE-11); None when
        the index is off."""
        index = self._series
        return None if index is None else index.series(metric_id, self._series_schema, since_us)

    def aggregate_series(
        self, columns: Sequence[str], lower_us: int | None, extremes: Collection[str] = ()
    ) -> Groups | None:
        """Per-metric partial aggregates of the hot rows at or after ``lower_us`` from the
        series index (see ``SeriesIndex.aggregate``, CACHE-11); None when the index is off
        or cannot answer."""
        index = self._series
        return None if index is None else index.aggregate(columns, lower_us, extremes)

    # -- the clustered layout of ``metrics`` (CACHE-10) ------------------------------------

    def rewrite_wanted(self, *, idle: bool) -> bool:
        """Whether :meth:`rewrite_online` (or :meth:`rewrite_samples`) would rewrite now (see
        ``rewrite_due``); never while a rewrite beside the appends is under way."""
        if self._changed_rows < self._rewrite_blocked_below or self._newest_us is None:
            return False
        if self._online:
            return False
        return rewrite_due(
            changed=self._changed_rows,
            rows=self._sample_rows,
            idle=idle,
            floor=self._rewrite_floor,
        )

    def _clustered_order(self) -> str:
        """The ORDER BY of a rewrite (under the samples lock): samples older than the recent
        span by (metric_id, timestamp), then the recent ones by timestamp."""
        assert self._newest_us is not None
        boundary = f"make_timestamptz({int(self._newest_us - self._recent_us)}::BIGINT)"
        return (
            f"ORDER BY timestamp >= {boundary}, "
            f"CASE WHEN timestamp < {boundary} THEN metric_id END, timestamp"
        )

    def rewrite_online(
        self, *, idle: bool = False, still_idle: Callable[[], bool] | None = None
    ) -> bool:
        """Rewrite ``metrics`` in its clustered order when it is due (CACHE-10), without
        holding up appends: the clustered copy is built from a snapshot beside them, the rows
        appended since are copied after it (by ``rowid``: DuckDB numbers appended rows
        upwards, and nothing here renumbers them: no checkpoint runs meanwhile), and only
        the last of those copies, the expiries since and the swap of the two tables hold the
        samples lock.

        An ``idle`` rewrite (due by the idle rule) is given up when :meth:`interrupt_rewrite`
        is called, as the appender does when new work arrives, and does not start if
        ``still_idle`` (asked once it could be interrupted) says work came in before. One
        under load runs to its end. For an in-memory hot cache only (a file's automatic
        checkpoints may renumber rows): a file-backed one rewrites with appends waiting
        (:meth:`rewrite_samples`). Returns whether it rewrote; a rewrite given up (new work
        when idle, new columns, :meth:`close`) or failed leaves ``metrics`` as it was."""
        self._online_gave_way = False
        if not self.rewrite_wanted(idle=idle):
            return False
        if not self._in_memory:
            rewrote = self.rewrite_samples(idle=idle, still_idle=still_idle)
            self._online_gave_way = idle and not rewrote and self._abandoned
            return rewrote
        copy = _q(_METRICS_NEXT)
        with self._samples_lock:
            if self._online or self._newest_us is None:
                return False
            with self._rewrite_state:
                if self._online_closed:
                    return False
                self._online, self._online_idle = True, idle
                self._online_stop = False
                self._online_cancellable = True
            changed_before = self._changed_rows
            order = self._clustered_order()
        try:
            if idle and still_idle is not None and not still_idle():
                self._online_gave_way = True  # work came in before an interruption could count
                return False
            with self._reorganizer.cursor() as c:
                try:
                    if self._online_stop:
                        return False
                    with self._samples_lock:  # no append half-way: the snapshot has them all
                        c.execute("BEGIN TRANSACTION")
                        copied = _next_rowid(c)
                    c.execute(f"CREATE TABLE {copy} AS SELECT * FROM {METRICS_TABLE} {order}")
                    c.execute("COMMIT")
                    # Catch up with the appends meanwhile, without the lock, while many come.
                    for _ in range(_CATCH_UP_PASSES):
                        if self._online_stop:
                            break
                        c.execute("BEGIN TRANSACTION")
                        upto = _next_rowid(c)
                        c.execute(
                            f"INSERT INTO {copy} SELECT * FROM {METRICS_TABLE} "
                            f"WHERE rowid >= {copied} AND rowid < {upto}"
                        )
                        c.execute("COMMIT")
                        done, copied = upto - copied, upto
                        if done < self._rewrite_floor:
                            break
                    with self._samples_lock:
                        self._not_cancellable()  # the last step is short: never cut it
                        if self._online_stop:
                            return False
                        c.execute("BEGIN TRANSACTION")
                        c.execute(
                            f"INSERT INTO {copy} SELECT * FROM {METRICS_TABLE} "
                            f"WHERE rowid >= {copied}"
                        )
                        if self._evicted_before is not None:  # expiries during the copy
                            c.execute(
                                f"DELETE FROM {copy} WHERE timestamp < "
                                f"make_timestamptz({int(self._evicted_before)}::BIGINT)"
                            )
                        c.execute(f"DROP TABLE {METRICS_TABLE}")
                        c.execute(f"ALTER TABLE {copy} RENAME TO {METRICS_TABLE}")
                        c.execute("COMMIT")
                        # Rows appended or deleted since the snapshot are not clustered.
                        self._changed_rows -= changed_before
                        self._rewrite_blocked_below = 0
                        self._uncompressed += self._sample_rows  # a new table
                        return True
                except BaseException:
                    # A cancel landing on the ROLLBACK would leave the transaction open,
                    # holding what it changed (``metrics`` itself, in the last step).
                    self._not_cancellable()
                    with contextlib.suppress(adbc_dbapi.Error):
                        c.execute("ROLLBACK")
                    raise
        except adbc_dbapi.Error as exc:
            if not self._online_stop:
                self._rewrite_failed(exc)
            return False
        finally:
            self._not_cancellable()
            # A copy given up or left by a failure goes; a swapped one has its new name.
            with contextlib.suppress(adbc_dbapi.Error), self._reorganizer.cursor() as c:
                c.execute(f"DROP TABLE IF EXISTS {copy}")
            with self._samples_lock, self._rewrite_state:
                self._online = False

    def idle_rewrite_gave_way(self) -> bool:
        """Whether the last :meth:`rewrite_online` was an idle rewrite given up for new work
        (not one that was not due, or failed, or was given up for new columns)."""
        return self._online_gave_way

    def stop_online(self) -> None:
        """Give up a rewrite beside the appends that is under way, and start none from now
        on (before closing)."""
        with self._rewrite_state:
            self._online_closed = True
            self._online_stop = True
            if self._online and self._online_cancellable:
                with contextlib.suppress(adbc_dbapi.Error):
                    self._reorganizer.adbc_connection.cancel()

    def _not_cancellable(self) -> None:
        """No cancel may land on the rewrite beside the appends from here on (a cancel made
        earlier landed on an earlier statement, or on none: DuckDB forgets it then)."""
        with self._rewrite_state:
            self._online_cancellable = False

    def _rewrite_failed(self, exc: adbc_dbapi.Error) -> None:
        log.warning("rewriting the hot samples failed: %s", _message(str(exc)))
        self._rewrite_blocked_below = self._changed_rows + self._rewrite_floor

    def rewrite_samples(
        self, *, idle: bool, force: bool = False, still_idle: Callable[[], bool] | None = None
    ) -> bool:
        """Rewrite ``metrics`` in its clustered order when it is due: samples older than the
        recent span sorted by (metric_id, timestamp), then the recent ones by timestamp.

        An ``idle`` rewrite is abandoned (and changes nothing) when :meth:`interrupt_rewrite`
        is called, as the appender does when new work arrives. ``still_idle`` is asked once
        the rewrite can be interrupted, before it starts: work that arrived earlier (whose
        interruption came too soon to count) stops it there. Returns whether it rewrote.
        """
        if not force and not self.rewrite_wanted(idle=idle):
            return False
        with self._samples_lock:
            if self._newest_us is None or self._online:
                return False
            sql = (
                f"CREATE OR REPLACE TABLE {METRICS_TABLE} AS SELECT * FROM {METRICS_TABLE} "
                f"{self._clustered_order()}"
            )
            with self._rewrite_state:
                self._rewriting = idle and not force
                self._abandoned = False
            if self._rewriting and still_idle is not None and not still_idle():
                with self._rewrite_state:
                    self._rewriting = False
                return False
            try:
                with self._clusterer.cursor() as c:
                    # An explicit transaction, begun under the lock (so it sees every append),
                    # lets a rewrite interrupted at any point be rolled back whole.
                    c.execute("BEGIN TRANSACTION")
                    try:
                        with self._rewrite_state:
                            abandoned = self._abandoned
                        if not abandoned:
                            with self._cancelled_while_running():
                                c.execute(sql)
                        with self._rewrite_state:
                            self._rewriting = False
                            abandoned = self._abandoned
                        c.execute("ROLLBACK" if abandoned else "COMMIT")
                    except BaseException:
                        with self._rewrite_state:  # no interruption may cancel the rollback
                            self._rewriting = False
                        with contextlib.suppress(adbc_dbapi.Error):
                            c.execute("ROLLBACK")
                        raise
            except adbc_dbapi.Error as exc:
                if not self._abandoned:
                    self._rewrite_failed(exc)
                return False
            finally:
                with self._rewrite_state:
                    self._rewriting = False
            if abandoned:
                return False
            self._changed_rows = 0
            self._rewrite_blocked_below = 0
            self._uncompressed += self._sample_rows  # a new table, not compressed yet
            return True

    # -- compression (CACHE-12) -------------------------------------------------------------

    def compress_wanted(self, *, idle: bool) -> bool:
        """Whether :meth:`compress` would checkpoint now (see ``compress_due``)."""
        if self._uncompressed < self._compress_blocked_below:
            return False
        return compress_due(written=self._uncompressed, idle=idle, floor=self._rewrite_floor)

    def compress(self, *, still_idle: Callable[[], bool] | None = None) -> bool:
        """Checkpoint the hot cache's database once a row group of rows or more was written
        since the last checkpoint (CACHE-12): DuckDB then compresses what was appended (about
        a quarter of the memory, and faster scans) and reclaims deleted rows. Queries go on
        meanwhile; appends wait until it ends, so the appender calls it only when idle, and
        ``still_idle`` (asked under the samples lock, before starting) can still stop it.
        Returns whether it checkpointed.

        DuckDB refuses to checkpoint while another transaction holds an uncommitted catalog
        change, or began before a committed one (a query that started before a rewrite);
        that passes, so the next idle moment tries again. Read-through results (whose
        tables are such changes) wait meanwhile."""
        if not self.compress_wanted(idle=True):
            return False
        with self._samples_lock, self._results_lock:
            if still_idle is not None and not still_idle():
                return False
            if self._online:  # a checkpoint may renumber the rows it is copying
                return False
            written = self._uncompressed
            try:
                with self._clusterer.cursor() as c:
                    c.execute("CHECKPOINT")
            except adbc_dbapi.Error as exc:
                text = _message(str(exc))
                if "Cannot CHECKPOINT" in text:
                    log.debug("the hot cache's checkpoint waits for a transaction: %s", text)
                    return False
                log.warning("compressing the hot cache failed: %s", text)
                self._compress_blocked_below = written + self._rewrite_floor
                return False
            self._uncompressed = 0
            self._compress_blocked_below = 0
            return True

    @contextlib.contextmanager
    def _cancelled_while_running(self) -> Iterator[None]:
        """While an idle rewrite's statement runs, cancel it again every 20 ms once it is
        abandoned: a cancel that lands before DuckDB has started the statement is lost."""
        if not self._rewriting:
            yield
            return
        done = threading.Event()

        def repeat() -> None:
            while not done.wait(0.02):
                with self._rewrite_state:
                    if self._rewriting and self._abandoned:
                        with contextlib.suppress(adbc_dbapi.Error):
                            self._clusterer.adbc_connection.cancel()

        watcher = threading.Thread(target=repeat, name="hyprstream-rewrite-cancel", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()

    def interrupt_rewrite(self) -> None:
        """Abandon a running idle rewrite of ``metrics``, if there is one."""
        with self._rewrite_state:
            if self._rewriting:
                self._abandoned = True
                with contextlib.suppress(adbc_dbapi.Error):
                    self._clusterer.adbc_connection.cancel()
            if self._online and self._online_idle and not self._online_stop:
                self._online_stop = self._online_gave_way = True
                if self._online_cancellable:
                    with contextlib.suppress(adbc_dbapi.Error):
                        self._reorganizer.adbc_connection.cancel()

    def store_result(self, name: str, table: pa.Table) -> None:
        with self._results_lock, self._results.cursor() as c:
            c.adbc_ingest(name, table, mode="replace")
            self._uncompressed += table.num_rows

    def read_result(self, name: str) -> pa.Table:
        return self.query(f"SELECT * FROM {_q(name)}")

    def drop_result(self, name: str) -> None:
        with self._results_lock, self._results.cursor() as c:
            c.execute(f"DROP TABLE IF EXISTS {_q(name)}")

    def update_windows(
        self, open_keys: pa.Table, open_rows: pa.Table, closed_rows: pa.Table
    ) -> None:
        """Replace the open windows named in ``open_keys`` (window, window_start) with
        ``open_rows``, and file ``closed_rows`` (windows that will not change again) away from
        the open ones, in one transaction."""
        try:
            with self._writer.cursor() as w:
                if open_keys.num_rows:
                    w.adbc_ingest("_hyprstream_keys", open_keys, mode="replace", temporary=True)
                    w.execute(
                        f"""DELETE FROM {_WINDOWS_OPEN} AS s USING _hyprstream_keys AS k
                        WHERE s."window" = k."window" AND s.window_start = k.window_start"""
                    )
                    self._open_deleted += open_keys.num_rows
                if open_rows.num_rows:
                    w.adbc_ingest(_WINDOWS_OPEN, open_rows, mode="append")
                if closed_rows.num_rows:
                    w.adbc_ingest(_WINDOWS_RECENT, closed_rows, mode="append")
                    self._recent_rows += closed_rows.num_rows
            self._writer.commit()
            self._uncompressed += open_keys.num_rows + open_rows.num_rows + closed_rows.num_rows
        except BaseException:
            _abort(self._writer)
            raise

    def load_closed_windows(self, rows: pa.Table) -> None:
        """Add windows that closed before this node started (from the backend)."""
        self.update_windows(_NO_KEYS, rows.slice(0, 0), rows)
        self.index_windows(rows)

    # -- the window index (CACHE-11; the caller serialises these) ----------------------------

    def index_windows(self, closed_rows: pa.Table) -> None:
        """Add closed window states (``WINDOW_STORE_SCHEMA`` rows) to the window index."""
        indexes = self._window_index
        if indexes is None or not closed_rows.num_rows:
            return
        try:
            for label, rows in _by_label(closed_rows):
                index = indexes.get(label)
                if index is not None:
                    index.append(rows)
                    if index.runs > 8:  # window states are few: keep lookups to a few runs
                        index.compact()
        except Exception as exc:
            log.error("the window index failed and is turned off: %s", exc)
            self._window_index = None

    def evict_window_index(self, label: str, before_start_us: int) -> None:
        """Forget closed windows of ``label`` that start before ``before_start_us``."""
        indexes = self._window_index
        index = indexes.get(label) if indexes is not None else None
        if index is not None:
            index.evict(before_start_us)

    def closed_windows(
        self, label: str, metric_id: str, schema: pa.Schema = WINDOW_STORE_SCHEMA
    ) -> pa.Table | None:
        """The closed windows of size ``label`` of ``metric_id`` in start order, with the
        columns of ``schema`` (some of ``WINDOW_STORE_SCHEMA``), or None when the index
        cannot answer."""
        indexes = self._window_index
        index = indexes.get(label) if indexes is not None else None
        return None if index is None else index.series(metric_id, schema)

    def evict_windows(self, label: str, end_at_or_before_us: int) -> None:
        with self._writer.cursor() as w:
            for table in (_WINDOWS_BASE, _WINDOWS_RECENT):
                w.execute(
                    f"""DELETE FROM {table} WHERE "window" = '{_literal(label)}'
                    AND window_end <= make_timestamptz({int(end_at_or_before_us)}::BIGINT)"""
                )
        self._writer.commit()

    def compact_windows(self, *, force: bool = False) -> bool:
        """Merge the recent closed windows into the base, sorted by metric, and drop the open
        table's deleted rows, once they have grown (a quarter of the base, or 50,000 rows).
        Returns whether anything was rewritten."""
        floor = 50_000
        if not force and self._recent_rows <= floor and self._open_deleted <= floor:
            return False
        base = int(self.query(f"SELECT count(*) FROM {_WINDOWS_BASE}").column(0)[0].as_py())
        rewrite_closed = force or self._recent_rows > max(floor, base // 4)
        rewrite_open = force or self._open_deleted > floor
        if not (rewrite_closed or rewrite_open):
            return False
        order = 'ORDER BY metric_id, "window", window_start'
        try:
            with self._writer.cursor() as w:
                if rewrite_closed:
                    both = (
                        f"SELECT * FROM {_WINDOWS_BASE} UNION ALL SELECT * FROM {_WINDOWS_RECENT}"
                    )
                    w.execute(
                        f"CREATE TABLE _hyprstream_windows_new AS SELECT * FROM ({both}) {order}"
                    )
                    w.execute(f"DROP TABLE {_WINDOWS_BASE}")
                    w.execute(f"ALTER TABLE _hyprstream_windows_new RENAME TO {_WINDOWS_BASE}")
                    empty = f"SELECT * FROM {_WINDOWS_BASE} LIMIT 0"
                    w.execute(f"CREATE OR REPLACE TABLE {_WINDOWS_RECENT} AS {empty}")
                if rewrite_open:
                    rows = f"SELECT * FROM {_WINDOWS_OPEN} {order}"
                    w.execute(f"CREATE OR REPLACE TABLE {_WINDOWS_OPEN} AS {rows}")
            self._writer.commit()
        except BaseException:
            _abort(self._writer)
            raise
        self._uncompressed += (base + self._recent_rows) if rewrite_closed else 0
        if rewrite_closed:
            self._recent_rows = 0
        if rewrite_open:
            self._open_deleted = 0
        return True

    # -- queries (any thread) --------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[adbc_dbapi.Cursor]:
        """A query connection for the block (at most ``readers`` queries run at once)."""
        cursor = self._readers.get()
        try:
            yield cursor
        finally:
            self._readers.put(cursor)

    def classify(self, sql: str) -> tuple[str, int]:
        """``("query" | "update", parameter count)`` for one statement; anything else is
        refused (FSQL-20): files, extensions, attaching, settings, exports, ... ."""
        statement = _one_statement(sql, "statement", "at a time")
        if statement.type in _READ_ONLY_TYPES:
            return "query", statement.parameters
        kind = str(statement.type).rsplit(".", 1)[-1]
        if statement.type in _UPDATE_TYPES:
            return kind, statement.parameters
        raise PermissionDenied(
            f"{kind} statements are not allowed: hyprstream runs queries, and INSERT, UPDATE, "
            "DELETE, CREATE, DROP and ALTER on client tables"
        )

    @property
    def catalog_name(self) -> str:
        return str(self.query("SELECT current_database() AS c").column(0)[0].as_py())

    def relations(self) -> list[tuple[str, str]]:
        """Tables and views in the hot cache: (name, "TABLE" or "VIEW")."""
        rows = self.query(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY table_name"
        ).to_pylist()
        return [(r["table_name"], "VIEW" if "VIEW" in r["table_type"] else "TABLE") for r in rows]

    def columns(self, name: str) -> list[tuple[str, pa.DataType, str]]:
        """(column, Arrow type as queries return it, SQL type name) of a table or view."""
        schema = self.shape(f"SELECT * FROM {_q(name)}", 0).schema
        types = {
            r["column_name"]: r["data_type"]
            for r in self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_schema = 'main' AND table_name = '{_literal(name)}'"
            ).to_pylist()
        }
        return [(f.name, f.type, types.get(f.name, str(f.type).upper())) for f in schema]

    def check_readonly(self, sql: str) -> int:
        """Refuse anything but one read-only statement; returns its parameter count."""
        statement = _one_statement(sql, "query", "per query")
        if statement.type not in _READ_ONLY_TYPES:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise PermissionDenied(
                f"{kind} statements are not allowed on the hot cache: hyprstream accepts "
                "read-only queries (SELECT, EXPLAIN) here; ingest goes through DoPut"
            )
        return statement.parameters

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only query and return its result as an Arrow table."""
        with self._reader() as cur:
            return self._run(cur, sql, params)

    def _run(
        self, cur: adbc_dbapi.Cursor, sql: str, params: pa.RecordBatch | Sequence[Any] | None
    ) -> pa.Table:
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _cancel(cur)

        limit = self._query_timeout_s
        deadline = self._watchdog.deadline(limit, expire) if limit else contextlib.nullcontext()
        try:
            with deadline:
                cur.execute(sql, params)
                table: pa.Table = cur.fetch_arrow_table()
        except adbc_dbapi.Error as exc:
            error = _translate(exc)
            if isinstance(error, ResourceExhausted) and expired.is_set():
                error = TimedOut(
                    f"the query ran longer than its time limit ({limit:g} s) and was cancelled"
                )
            _release(cur)
            raise error from None
        return table

    def shape(self, sql: str, parameter_count: int) -> QueryShape:
        """The result schema of ``sql`` without running it."""
        with self._reader() as cur:
            try:
                schema: pa.Schema = cur.adbc_execute_schema(sql)
            except adbc_dbapi.Error as exc:
                if parameter_count and "known only once it is executed" in str(exc):
                    # DuckDB types some parameterised statements only at execution: the
                    # result schema is then announced empty and known from the first result.
                    return QueryShape(schema=pa.schema([]), parameter_count=parameter_count)
                raise _translate(exc) from None
        return QueryShape(schema=schema, parameter_count=parameter_count)

    def close(self) -> None:
        self._watchdog.close()
        with self._connections_lock:
            connections, self._connections = self._connections, []
            cursors, self._cursors = self._cursors, []
        for resource in [*cursors, *connections]:
            with contextlib.suppress(adbc_dbapi.Error, RuntimeError):
                resource.close()
        self._db.close()


_parser: list[duckdb.DuckDBPyConnection] = []  # one shared, created on first use
_parser_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What DuckDB's parser says of a statement text: how many statements it holds, and the
    kind and parameter count of the first."""

    statements: int
    type: Any  # duckdb.StatementType, or None for an empty text
    parameters: int


@functools.lru_cache(maxsize=4096)
def _parse(sql: str) -> _Parsed:
    """DuckDB's own parse of ``sql``, in a separate empty database that never runs anything;
    cached by text, since every query is checked more than once and clients repeat them."""
    with _parser_lock:
        if not _parser:
            _parser.append(duckdb.connect(":memory:", config={"enable_external_access": False}))
        statements = _parser[0].extract_statements(sql)
    first = statements[0] if statements else None
    return _Parsed(
        statements=len(statements),
        type=first.type if first is not None else None,
        parameters=len(first.named_parameters) if first is not None else 0,
    )


def _one_statement(sql: str, what: str, per: str) -> _Parsed:
    try:
        parsed = _parse(sql)
    except duckdb.Error as exc:
        raise InvalidQuery(f"cannot parse the {what}: {_message(str(exc))}") from None
    if parsed.statements != 1:
        raise InvalidQuery(f"send exactly one SQL statement {per}, got {parsed.statements}")
    return parsed


def _next_rowid(cursor: adbc_dbapi.Cursor) -> int:
    """One past the largest ``rowid`` of ``metrics`` this transaction sees."""
    cursor.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM {METRICS_TABLE}")
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _release(cursor: adbc_dbapi.Cursor) -> None:
    """Let a reader drop what a failed query left behind (a query that ran out of memory
    leaves its allocations with the statement until the next one replaces it)."""
    with contextlib.suppress(Exception):
        cursor.execute("SELECT 1")
        cursor.fetchall()


def _cancel(cursor: adbc_dbapi.Cursor) -> None:
    with contextlib.suppress(Exception):
        cursor.adbc_cancel()


def _literal(text: str) -> str:
    return text.replace("'", "''")


_KIND = re.compile(r"^(?:[A-Z_]+: )?(?P<kind>[A-Za-z ]+?) Error: ")


def _message(text: str) -> str:
    return " ".join(text.split())[:1000]


def _translate(exc: adbc_dbapi.Error) -> HyprstreamError:
    """A DuckDB error (as ADBC reports it) as hyprstream's error; the kind decides the status."""
    text = _message(str(exc))
    match = _KIND.match(text)
    kind = match["kind"] if match else ""
    clean = text[match.start("kind") :] if match else text
    if kind == "Catalog":
        return NotFound(clean)
    if kind == "Permission":
        return PermissionDenied(clean)
    if kind.upper() == "INTERRUPT":
        return ResourceExhausted(f"the query was interrupted (time limit): {clean}")
    if kind == "Out of Memory":
        return ResourceExhausted(f"the query exceeded its memory limit: {clean}")
    if kind in ("INTERNAL", "Internal", "FATAL", "Fatal") or not kind:
        return InternalError(clean)
    return InvalidQuery(clean)


def _abort(conn: adbc_dbapi.Connection) -> None:
    """Roll back ``conn``'s transaction after a failed write. A COMMIT that failed (a conflict
    with another connection) leaves DuckDB's ADBC driver with no transaction open: every later
    statement would then commit on its own and every ``commit()`` fail, so one is begun again.
    Errors here are not raised: the caller raises the write's own."""
    try:
        conn.rollback()
    except adbc_dbapi.Error:
        with contextlib.suppress(adbc_dbapi.Error):
            conn.adbc_connection.set_autocommit(True)
            conn.adbc_connection.set_autocommit(False)
