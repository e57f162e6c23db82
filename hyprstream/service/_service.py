"""The hyprstream service: validated ingest, write-through, windows, and queries, wired together.

Ingest of one batch (spec/ingest.md, ING-1 to ING-9), under one lock:

1. validate the batch (nothing is stored if it is refused); a batch id already committed is
   acknowledged again as it was the first time, and nothing else happens (BE-6);
2. plan the window merge: running totals, partial states, and the windows the batch closes,
   without changing anything;
3. write the rows, the closed windows and the batch id through to the backend, which commits
   them in one transaction or raises ``Unavailable``;
4. only then: merge the plan into the window store, remember which windows the queryable
   copy must refresh, and hand the rows to the hot cache's appender thread.

``ingest_async`` returns a future that resolves once the batch is in the hot cache; that is
when it is acknowledged. So an acknowledged batch is in the backend and visible to queries,
and a refused one is nowhere.

Queries go to the hot cache when it holds everything they read, and otherwise to the backend
through the read-through cache (see ``_routing``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.backend import (
    WINDOW_COLUMNS,
    Backend,
    DuckDBHotCache,
    Groups,
    QueryShape,
    duckdb_type,
)
from hyprstream.backend._duckdb_cache import WINDOW_STORE_SCHEMA
from hyprstream.backend._port import (
    BATCHES_TABLE,
    WINDOWS_TABLE,
    BatchAck,
    DuplicateBatch,
    StoredBatch,
)
from hyprstream.backend._series import bucket_groups
from hyprstream.cachepolicy import CachePolicy
from hyprstream.errors import InvalidInput, InvalidQuery, NotFound, PermissionDenied, Unsupported
from hyprstream.flightsql._metadata import Catalog, ColumnInfo, TableInfo
from hyprstream.model import (
    INSTANT_COLUMNS,
    METRIC_ID,
    RUNNING_AVG,
    RUNNING_COUNT,
    RUNNING_SUM,
    TIMESTAMP,
    TIMESTAMP_MAX_US,
    TIMESTAMP_MIN_US,
    TIMESTAMP_TYPE,
    VALUE,
    MetricDictionary,
    SampleBatch,
    as_instants,
    metrics_schema,
    validate_batch,
)
from hyprstream.service._appender import Appender
from hyprstream.service._readthrough import ReadThrough
from hyprstream.service._routing import (
    GroupedLookup,
    SeriesLookup,
    analyse,
    forbidden_functions,
    grouped_lookup,
    instant_outputs,
    series_lookup,
    to_backend_sql,
)
from hyprstream.windows import StateColumns, StoreChanges, WindowSize, WindowStore

__all__ = ["Hyprstream", "IngestResult", "ServiceOptions", "Statement"]

log = logging.getLogger("hyprstream.service")

#: Closed windows waiting for the queryable copy are flushed once this many accumulate.
_MAX_PENDING_CLOSED = 256
#: Samples read back at warm start are merged and cached in groups of at least this many.
_WARM_ROWS = 1 << 20
_HOUR_US = 3_600_000_000
_MAX_BATCH_ID = 256
#: Result shapes of hot queries kept, by query text (prepared statements ask on every run).
_MAX_SHAPES = 4096
#: The columns of a ``metrics_<size>`` view, each with the stored columns it is made from.
_VIEW_BASE: dict[str, tuple[str, ...]] = {
    f.name: {"avg": ("mean",), "variance": ("m2", "count"), "stddev": ("m2", "count")}.get(
        f.name, (f.name,)
    )
    for f in WINDOW_COLUMNS
}
_VIEW_NAMES = [f.name for f in WINDOW_COLUMNS]


_INTERNAL = "_hyprstream"
_BACKEND_INTERNAL = frozenset({BATCHES_TABLE, WINDOWS_TABLE})
#: Columns hyprstream never leaves NULL, for the metadata commands.
_METRICS_NOT_NULL = frozenset({METRIC_ID, TIMESTAMP, VALUE})
_WINDOWS_NOT_NULL = frozenset(f.name for f in WINDOW_COLUMNS if not f.nullable)


@dataclass(frozen=True, slots=True)
class Statement:
    kind: str  # "query" or "update"
    parameter_count: int
    tables: frozenset[str]


def _backend_table(catalog: str, name: str, schema: pa.Schema) -> TableInfo:
    columns = []
    for f in schema:
        try:
            sql_type = duckdb_type(f.type)
        except InvalidInput:
            sql_type = str(f.type).upper()
        columns.append(
            ColumnInfo(
                name=f.name,
                arrow_type=f.type,
                sql_type=sql_type,
                nullable=f.nullable,
                read_only=False,
            )
        )
    return TableInfo(
        catalog=catalog, db_schema="main", name=name, table_type="TABLE", columns=tuple(columns)
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    late: int
    duplicate: bool = False


#: Read-through results: one minute, 256 MiB, 1,000 results (CACHE-6).
DEFAULT_RESULT_POLICY = CachePolicy(ttl_ns=60 * 10**9, max_bytes=256 * 1024**2, max_entries=1_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    """How long things are kept; times in microseconds (spec/cache.md, CACHE-5..CACHE-8)."""

    #: Hot samples older than this (by wall clock) are evicted from the hot cache; None: never.
    hot_max_duration_us: int | None = None
    #: How long committed batch ids are remembered in memory (older ones: asked of the backend).
    batch_id_horizon_us: int = 24 * _HOUR_US
    #: Policy of the read-through result cache.
    result_cache: CachePolicy = DEFAULT_RESULT_POLICY
    #: How often (at most) the hot cache is checked for expired samples.
    eviction_interval_us: int = 60_000_000
    #: Window sizes whose retention is at most this are rebuilt from the stored samples at
    #: warm start instead of being written to the backend as they close (BE-8).
    window_rebuild_us: int = 48 * _HOUR_US


def _wall_clock_us() -> int:
    return time.time_ns() // 1_000


class Hyprstream:
    """One node: the window store, the DuckDB hot cache and a write-through backend."""

    def __init__(
        self,
        *,
        backend: Backend,
        cache: DuckDBHotCache,
        store: WindowStore,
        options: ServiceOptions | None = None,
        clock_us: Callable[[], int] = _wall_clock_us,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.store = store
        self.options = options or ServiceOptions()
        self._clock_us = clock_us
        self._metrics = MetricDictionary()
        self._labels: dict[str, pa.DataType] = {}
        self._lock = threading.RLock()
        self._dirty: set[tuple[WindowSize, int]] = set()
        self._closed: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = []
        self._evict: dict[WindowSize, int] = {}
        self._appender = Appender(cache)
        self._windows_written: Future[None] | None = None  # the latest window-table write
        self._acks: dict[str, tuple[BatchAck, int]] = {}  # batch id -> (ack, committed at)
        #: The hot cache holds every sample at or after this instant (None: every sample).
        self._complete_since: int | None = None
        self._oldest_sample: int | None = None  # the oldest sample the hot cache ever got
        self._next_eviction = 0
        self.results = ReadThrough(
            cache=cache,
            backend=backend,
            policy=self.options.result_cache,
            clock_ns=lambda: self._clock_us() * 1_000,
        )
        self._hot_tables = frozenset(
            {"metrics", "metric_windows", *(f"metrics_{s.label}" for s in store.sizes)}
        )
        self._backend_table_names: set[str] | None = None
        self._shapes: dict[str, tuple[int, QueryShape]] = {}  # sql -> (cache generation, shape)
        self._views = {f"metrics_{s.label}": s for s in store.sizes}
        #: Sizes whose closed windows are written to the backend (the others are rebuilt).
        self._persisted = frozenset(
            s for s in store.sizes if store.retention_us[s] > self.options.window_rebuild_us
        )
        #: Quantiles of each open window as last flushed, rows aligned with its block.
        self._open_quantiles: dict[tuple[WindowSize, int], np.ndarray | None] = {}

    # -- startup ---------------------------------------------------------------------------

    def warm(self) -> int:
        """Load what the backend holds into the hot cache and the windows (BE-4).

        Open windows, and closed windows recent enough to be whole among the samples read
        (all those of the sizes the backend does not keep), are merged again from the on-time
        samples (non-NULL running count); older closed windows come back as they were
        committed; the hot cache gets the samples within its horizon. Returns the samples
        loaded.
        """
        with self._lock:
            now = self._clock_us()
            label_fields = [f for f in self.backend.label_fields() if f.name not in self._labels]
            if label_fields:
                self.cache.add_labels(label_fields)
                self._labels.update({f.name: f.type for f in label_fields})
            stream_time = self.backend.stream_time()
            self.store.resume(stream_time)
            hot_since = (
                None
                if self.options.hot_max_duration_us is None
                else now - self.options.hot_max_duration_us
            )
            oldest_kept = None
            if stream_time is not None:
                oldest_kept = stream_time - max(self.store.retention_us.values())
            stored, marks, lateness_before = _read_stored_windows(
                self.backend.scan_windows(oldest_kept)
            )
            seen = {str(v) for t in stored for v in pc.unique(t["window"]).to_pylist()}
            open_since, new_marks = self._rebuild_span(marks, seen, lateness_before, stream_time)
            since = None if hot_since is None or open_since is None else min(hot_since, open_since)
            pieces = (
                self._conform(piece) for piece in _gathered(self.backend.scan(since), _WARM_ROWS)
            )
            with self._appender.paused():
                loaded = self._load_samples(pieces, hot_since, open_since)
            # Windows the watermark has passed: those that start at or after open_since as
            # merged again (they are whole), older ones as the backend committed them (only
            # sizes kept longer than the rebuild horizon have any still kept, BE-8).
            labels = [s.label for s in self.store.sizes]
            backend_rows = _stored_windows(stored, labels)
            rebuilt: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = []
            for size, start, block, quantiles in self.store.close_due().closed:
                if open_since is None or start < open_since:
                    continue
                assert stream_time is not None  # as open_since is set
                if start + size.micros > stream_time - self.store.retention_us[size]:  # kept
                    self._closed.append((size, start, block, quantiles))
                    if size in self._persisted:
                        rebuilt.append((size, start, block, quantiles))
            if open_since is not None:
                starts = backend_rows["window_start"].cast(pa.int64())
                older = backend_rows.filter(pc.less(starts, open_since))
            else:
                older = backend_rows
            if older.num_rows:
                self.cache.load_closed_windows(older)
            # Closed windows of stored sizes the backend lacks, or holds with fewer samples
            # (a shorter allowed lateness closed them only now; a longer one reopened them
            # and they gained samples), are committed now.
            keys = ["metric_id", "window", "window_start", "count"]
            unstored = self._window_rows(rebuilt, self._metrics.names_array()).join(
                backend_rows.select(keys), keys=keys, join_type="left anti"
            )
            if new_marks or unstored.num_rows:
                windows = [unstored.select(WINDOW_STORE_SCHEMA.names)]
                if new_marks:
                    windows.append(_storage_marks(new_marks, written_us=now))
                self.backend.write(
                    StoredBatch(
                        rows=metrics_schema(
                            pa.field(n, t) for n, t in self._labels.items()
                        ).empty_table(),
                        windows=pa.concat_tables(windows),
                    )
                )
            if stream_time is not None:
                self._evict.update(
                    {s: stream_time - self.store.retention_us[s] for s in self.store.sizes}
                )
            self._dirty.update((size, start) for size, start, _ in self.store.iter_open())
            written = self._flush_windows()
            if written is not None:
                written.result()
            horizon = now - self.options.batch_id_horizon_us
            self._acks = {k: (ack, now) for k, ack in self.backend.batch_acks(horizon).items()}
            # If the backend holds samples older than the hot horizon, they were left out.
            oldest = self.backend.oldest_sample() if hot_since is not None else None
            if oldest is not None and hot_since is not None and oldest < hot_since:
                self._complete_since = hot_since if self.backend.queryable else None
                self._oldest_sample = hot_since
            elif oldest is not None:
                self._oldest_sample = oldest
            return loaded

    def _load_samples(
        self, tables: Iterable[pa.Table], hot_since: int | None, open_since: int | None
    ) -> int:
        """Warm start's samples: those since ``hot_since`` (None: all) into the hot cache,
        the on-time ones since ``open_since`` (None: none) into the windows. The appender
        caches one table while the next is read and merged. Returns the samples cached."""
        loaded = 0
        appended: Future[None] | None = None
        try:
            for table in tables:
                hot = (
                    table
                    if hot_since is None
                    else table.filter(
                        pc.greater_equal(table[TIMESTAMP], pa.scalar(hot_since, TIMESTAMP_TYPE))
                    )
                )
                if hot.num_rows:
                    if appended is not None:
                        appended.result()  # one table in flight: memory stays bounded
                    appended = self._appender.submit(hot)
                    loaded += hot.num_rows
                if open_since is None:
                    continue
                merged = table.filter(
                    pc.and_(
                        pc.is_valid(table[RUNNING_COUNT]),
                        pc.greater_equal(table[TIMESTAMP], pa.scalar(open_since, TIMESTAMP_TYPE)),
                    )
                )
                if merged.num_rows:
                    codes, new = self._metrics.encode(merged[METRIC_ID].combine_chunks())
                    self._metrics.commit(new)
                    ts = merged[TIMESTAMP].combine_chunks().cast(pa.int64()).to_numpy()
                    values = merged[VALUE].combine_chunks().to_numpy()
                    self.store.warm(codes, ts, values)
        finally:
            if appended is not None:
                self._appender.drain()
        if appended is not None:
            appended.result()
        return loaded

    def _rebuild_span(
        self,
        marks: dict[str, tuple[int, bool]],
        seen: set[str],
        lateness_before: int | None,
        stream_time: int | None,
    ) -> tuple[int | None, list[tuple[str, int, int]]]:
        """For warm start (BE-4, BE-8): the instant R from which windows are merged again
        from the samples (None: nothing to merge), and the storage marks to write, given the
        latest marks (``marks``: size label -> (instant, stored)), the sizes the backend holds
        windows of (``seen``) and the allowed lateness of the last run."""
        new_marks: list[tuple[str, int, int]] = []
        watermark = self.store.watermark
        lateness = self.store.lateness_us
        if lateness_before != lateness:  # the lateness in force, for the next start
            new_marks.append((_LATENESS_MARK, TIMESTAMP_MIN_US, lateness))
        configured = {s.label for s in self.store.sizes} | {_LATENESS_MARK}
        for label in sorted((seen | marks.keys()) - configured):
            if marks.get(label, (0, True))[1]:  # removed: not stored from now on
                at = TIMESTAMP_MIN_US if watermark is None else watermark
                new_marks.append((label, at, 0))
        for size in self.store.sizes:
            mark = marks.get(size.label)
            keep = size in self._persisted
            # No mark: stored since the beginning. A stored size marked as not stored, or the
            # other way round, is stored (or not) from now on.
            if (keep and mark is not None and not mark[1]) or (
                not keep and (mark is None or mark[1])
            ):
                at = TIMESTAMP_MIN_US if watermark is None else watermark
                new_marks.append((size.label, at, int(keep)))
        if watermark is None or stream_time is None:
            return None, new_marks
        largest = max(s.micros for s in self.store.sizes)
        open_since = watermark - largest
        if lateness_before is not None and lateness_before > lateness:
            # A shorter lateness closes now windows that were open when the last run stopped:
            # they start after this, and are merged again (and committed).
            open_since = min(open_since, stream_time - lateness_before - largest)
        for size in self.store.sizes:
            mark = marks.get(size.label)
            keep = size in self._persisted
            # Windows of this size that closed up to ``since`` are not stored (None: every one
            # is): those still kept (WIN-11) are merged again whole.
            since: int | None = watermark
            if keep and mark is None and size.label in seen:
                since = None  # stored from the beginning (a size never stored, or new, has
                # none of its windows in the table: all are merged again)
            elif keep and mark is not None and mark[1]:
                since = mark[0]
            kept_from = stream_time - self.store.retention_us[size]
            if since is not None and since > kept_from:
                open_since = min(open_since, kept_from - size.micros)
                if keep:
                    # Every kept window is merged again now, and the closed ones the backend
                    # lacks are committed: from then on it holds them all.
                    new_marks = [m for m in new_marks if m[0] != size.label]
                    new_marks.append((size.label, TIMESTAMP_MIN_US, 1))
        return open_since, new_marks

    def _conform(self, table: pa.Table) -> pa.Table:
        """Backend rows in the hot schema (drivers may return other but equivalent types)."""
        schema = metrics_schema(pa.field(n, t) for n, t in self._labels.items())
        columns = []
        for field in schema:
            if field.name in table.column_names:
                column = table[field.name]
                columns.append(column if column.type == field.type else column.cast(field.type))
            else:
                columns.append(pa.nulls(table.num_rows, field.type))
        return pa.Table.from_arrays(columns, schema=schema)

    # -- ingest ----------------------------------------------------------------------------

    def ingest(self, batch: pa.RecordBatch | pa.Table, batch_id: str | None = None) -> IngestResult:
        """Ingest one batch and wait until it is acknowledged; see the module docstring."""
        return self.ingest_async(batch, batch_id).result()

    def ingest_async(
        self, batch: pa.RecordBatch | pa.Table, batch_id: str | None = None
    ) -> Future[IngestResult]:
        """Validate, write through and merge one batch; the future resolves when it is
        visible in the hot cache. Refusals (invalid batch, backend down) raise here."""
        if batch_id is not None and not 0 < len(batch_id) <= _MAX_BATCH_ID:
            raise InvalidInput(f"a batch id must have 1 to {_MAX_BATCH_ID} characters")
        with self._lock:
            now = self._clock_us()
            if batch_id is not None and batch_id in self._acks:
                ack = self._acks[batch_id][0]
                return _resolved(IngestResult(ack.accepted, ack.late, duplicate=True))
            sample = validate_batch(batch, known_labels=self._labels)
            if sample.num_rows == 0:
                return _resolved(IngestResult(0, 0))
            new_labels = [
                pa.field(name, t)
                for name, t in sample.label_types.items()
                if name not in self._labels
            ]
            codes, new_ids, rank = self._metrics.encode_ranked(sample.metric_id)
            # Stored in metric_id text order within the batch, so scans can skip segments.
            plan = self.store.plan(codes, sample.timestamp_us, sample.value, rank)
            if new_labels:
                # Schema changes are not rolled back if the write then fails: an unused
                # nullable column is harmless, and the next batch with that label needs it.
                self._appender.drain()  # no append may run while the table changes
                self.backend.add_labels(new_labels)
                self.cache.add_labels(new_labels)
                self._labels.update({f.name: f.type for f in new_labels})
            names = self._metrics.names_array()
            if new_ids:  # not committed yet: the closing windows may name them
                names = pa.concat_arrays([names, pa.array(new_ids, pa.utf8())])
            rows = self._rows(sample, plan.order, plan.running_count, plan.running_sum)
            ack = BatchAck(sample.num_rows, plan.late)
            kept = [w for w in plan.closing if w[0] in self._persisted]
            stored = StoredBatch(
                rows=rows,
                windows=self._window_rows(kept, names) if kept else None,
                batch_id=batch_id,
                ack=ack,
                committed_at_us=now,
            )
            try:
                self.backend.write(stored)
            except DuplicateBatch as dup:
                first = dup.ack
                self._acks[batch_id or ""] = (first, now)
                return _resolved(IngestResult(first.accepted, first.late, duplicate=True))
            # Committed: from here on nothing may refuse the batch.
            if new_ids:
                self._metrics.commit(new_ids)
            if batch_id is not None:
                self._acks[batch_id] = (ack, now)
            oldest = int(sample.timestamp_us.min())
            if self._oldest_sample is None or oldest < self._oldest_sample:
                self._oldest_sample = oldest
            self._record(self.store.apply(plan))
            if len(self._closed) > _MAX_PENDING_CLOSED:
                self._flush_windows()
            self.results.invalidate("metrics")
            appended = self._appender.submit(rows)
            self._maintain(now)
            return _then(appended, IngestResult(sample.num_rows, plan.late))

    def _maintain(self, now: int) -> None:
        """Expire hot samples and remembered batch ids, at most once per interval."""
        if now < self._next_eviction:
            return
        self._next_eviction = now + self.options.eviction_interval_us
        horizon = now - self.options.batch_id_horizon_us
        self._acks = {k: v for k, v in self._acks.items() if v[1] >= horizon}
        if self.options.hot_max_duration_us is not None:
            cutoff = now - self.options.hot_max_duration_us
            nothing_older = self._oldest_sample is None or self._oldest_sample >= cutoff
            if nothing_older and self._complete_since is None:
                return  # no sample the cutoff would remove: the hot cache stays complete
            if self._complete_since is None or cutoff > self._complete_since:
                # Queries that may need samples before the cutoff now read the backend, which
                # holds them all -- unless it cannot answer queries (the volatile backend).
                if self.backend.queryable:
                    self._complete_since = cutoff
                self._appender.evict(cutoff)

    def _rows(
        self,
        sample: SampleBatch,
        order: np.ndarray,
        running_count: np.ndarray,
        running_sum: np.ndarray,
    ) -> pa.Table:
        """The stored form of a batch, in ``order``, with every known label column."""
        take = pa.array(order, type=pa.int64())
        merged = running_count > 0
        mask = ~merged
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(merged, running_sum / np.maximum(running_count, 1), 0.0)
        columns: dict[str, pa.Array] = {
            METRIC_ID: sample.metric_id.take(take),
            TIMESTAMP: pa.array(sample.timestamp_us[order], type=TIMESTAMP_TYPE),
            VALUE: pa.array(sample.value[order], type=pa.float64()),
            RUNNING_SUM: pa.array(running_sum, type=pa.float64(), mask=mask),
            RUNNING_AVG: pa.array(avg, type=pa.float64(), mask=mask),
            RUNNING_COUNT: pa.array(running_count, type=pa.int64(), mask=mask),
        }
        present = dict(sample.labels)
        for name, t in self._labels.items():
            columns[name] = (
                present[name].take(take) if name in present else pa.nulls(sample.num_rows, t)
            )
        schema = metrics_schema(pa.field(n, t) for n, t in self._labels.items())
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

    # -- the queryable copy of the windows --------------------------------------------------

    def _record(self, changes: StoreChanges) -> None:
        self._dirty.update(changes.updated)
        for size, start, block, quantiles in changes.closed:
            self._dirty.discard((size, start))
            self._closed.append((size, start, block, quantiles))
        for size, cutoff in changes.evict_before.items():
            self._evict[size] = max(cutoff, self._evict.get(size, cutoff))

    def _flush_windows(self) -> Future[None] | None:
        """Hand the window changes since the last flush to the appender thread, which writes
        them to the hot cache's window tables after the appends before them (under the lock).
        Returns the future of the latest window write (None: there never was one)."""
        if not (self._dirty or self._closed or self._evict):
            return self._windows_written
        opened: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = []
        for size, start in self._dirty:
            block = self.store.open_blocks(size).get(start)
            if block is not None:
                quantiles = self.store.block_quantiles(size, start, block)
                self._open_quantiles[(size, start)] = quantiles
                opened.append((size, start, block, quantiles))
        for size, start, _, _ in self._closed:
            self._open_quantiles.pop((size, start), None)
        # Every window named here leaves the open table: re-added if open, filed if closed.
        named = [(size, start) for size, start, _, _ in [*opened, *self._closed]]
        keys = pa.table(
            {
                "window": pa.array([size.label for size, _ in named], pa.utf8()),
                "window_start": pa.array([start for _, start in named], TIMESTAMP_TYPE),
            }
        )
        names = self._metrics.names_array()
        open_rows = self._window_rows(opened, names)
        # One table per size, its rows in the window index's order: each index keeps only
        # its own size's rows (a slice of a shared table would keep every size's buffers).
        by_size: dict[WindowSize, list[tuple[WindowSize, int, StateColumns, np.ndarray | None]]]
        by_size = {}
        for closed_window in self._closed:
            by_size.setdefault(closed_window[0], []).append(closed_window)
        closed_tables = []
        for _, blocks in sorted(by_size.items()):
            ordered, order = _by_metric(blocks, names)
            closed_tables.append(self._window_rows(ordered, names, order=order))
        closed_rows = (
            pa.concat_tables(closed_tables) if closed_tables else self._window_rows([], names)
        )
        evictions = [(size.label, cutoff) for size, cutoff in self._evict.items()]
        cache = self.cache
        # The window index changes here, under the lock; DuckDB's tables in ``write``.
        for table in closed_tables:
            cache.index_windows(table)
        for size, cutoff in self._evict.items():
            cache.evict_window_index(size.label, cutoff - size.micros + 1)

        def write() -> None:
            cache.update_windows(keys, open_rows, closed_rows)
            for label, cutoff in evictions:
                cache.evict_windows(label, cutoff)
            cache.compact_windows()

        self._dirty.clear()
        self._closed.clear()
        self._evict.clear()
        self._windows_written = self._appender.call(write)
        return self._windows_written

    @staticmethod
    def _window_rows(
        blocks: Sequence[tuple[WindowSize, int, StateColumns, np.ndarray | None]],
        names: pa.StringArray,
        schema: pa.Schema = WINDOW_STORE_SCHEMA,
        *,
        order: np.ndarray | None = None,
    ) -> pa.Table:
        """The stored form of window states: ``schema``'s columns (``WINDOW_STORE_SCHEMA``
        or some of them), one row per state of each block, in ``order`` if given (positions
        into the blocks' rows, one after the other)."""
        if not blocks:
            return schema.empty_table()
        lengths = [len(b) for _, _, b, _ in blocks]

        def ordered(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        def cat(name: str) -> np.ndarray:
            return ordered(np.concatenate([getattr(b, name) for _, _, b, _ in blocks]))

        def starts() -> np.ndarray:
            per_block = np.array([s for _, s, _, _ in blocks], dtype=np.int64)
            return ordered(np.repeat(per_block, lengths))

        def sizes() -> np.ndarray:
            per_block = np.array([z.micros for z, _, _, _ in blocks], dtype=np.int64)
            return ordered(np.repeat(per_block, lengths))

        def labels() -> pa.Array:
            return pa.DictionaryArray.from_arrays(
                pa.array(ordered(np.repeat(np.arange(len(blocks), dtype=np.int32), lengths))),
                pa.array([z.label for z, _, _, _ in blocks], pa.utf8()),
            ).cast(pa.utf8())

        def quantile(j: int) -> pa.Array:
            values = ordered(
                np.concatenate(
                    [q[:, j] if q is not None else np.full(len(b), np.nan) for _, _, b, q in blocks]
                )
            )
            return pa.array(values, pa.float64(), mask=np.isnan(values))

        build: dict[str, Callable[[], Any]] = {
            "metric_id": lambda: names.take(pa.array(cat("code"))),
            "window": labels,
            "window_start": lambda: pa.array(starts(), TIMESTAMP_TYPE),
            "window_end": lambda: pa.array(starts() + sizes(), TIMESTAMP_TYPE),
            "first_timestamp": lambda: pa.array(cat("first_ts"), TIMESTAMP_TYPE),
            "last_timestamp": lambda: pa.array(cat("last_ts"), TIMESTAMP_TYPE),
            "p50": lambda: quantile(0),
            "p90": lambda: quantile(1),
            "p99": lambda: quantile(2),
        }
        return pa.table(
            [build[f.name]() if f.name in build else cat(f.name) for f in schema], schema=schema
        )

    # -- queries ---------------------------------------------------------------------------

    def _prepare_read(self) -> None:
        """Make the window tables show every acknowledged sample (CACHE-9)."""
        if self._dirty or self._closed or self._evict:
            with self._lock:
                self._flush_windows()
        written = self._windows_written
        if written is not None:
            written.result()  # a failed write fails the read, as when it ran here

    def _on_backend(self, sql: str) -> frozenset[str] | None:
        """The tables ``sql`` reads if it must go to the backend, or None for the hot cache."""
        analysis = analyse(sql)
        if not analysis.tables <= self._hot_tables:
            return analysis.tables
        if "metrics" not in analysis.tables or self._complete_since is None:
            return None
        bound = analysis.lower_bound(self._clock_us())
        if bound is not None and bound >= self._complete_since:
            return None
        return analysis.tables

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only SQL statement on the hot cache, or on the backend when the hot
        cache does not hold what it reads.

        ``params`` binds the statement's parameters: a sequence of values, or a one-row
        record batch (one column per parameter, in order), which keeps the client's types.
        """
        expected = self.cache.check_readonly(sql)
        _check_params(expected, params)
        reads = self._on_backend(sql) if self.backend.queryable else None
        if reads is None:
            lookup = series_lookup(sql)
            if lookup is not None:
                found = self._lookup(sql, lookup, params, expected)
                if found is not None:
                    return found
            else:
                grouped = grouped_lookup(sql)
                if grouped is not None:
                    found = self._grouped(sql, grouped, params, expected)
                    if found is not None:
                        return found
            self._prepare_read()
            return self.cache.query(sql, params)
        unknown = reads - self._hot_tables - self._backend_tables()
        if unknown:
            self._backend_table_names = None  # a table may have been created around us
            unknown = reads - self._hot_tables - self._backend_tables()
        if unknown:
            raise NotFound(
                f"no table named {', '.join(sorted(unknown))} in hyprstream or its backend"
            )
        _refuse_forbidden(sql)
        backend_sql = to_backend_sql(sql, self.backend.dialect, self._clock_us())
        result = self.results.query(backend_sql, params, reads)
        if self.backend.dialect == "sqlite":  # instants come back as the text SQLite holds
            named = {n for n in result.column_names if n.lower() in INSTANT_COLUMNS}
            result = _instants_from_text(result, instant_outputs(sql, "sqlite") | named)
            result = _label_types(result, self._labels)  # and integers as int64
        return result

    def _backend_tables(self) -> set[str]:
        names = self._backend_table_names
        if names is None:
            names = self._backend_table_names = {t.lower() for t in self.backend.tables()}
        return names

    def _lookup(
        self,
        sql: str,
        lookup: SeriesLookup,
        params: pa.RecordBatch | Sequence[Any] | None,
        parameter_count: int | None = None,
    ) -> pa.Table | None:
        """``sql`` (bound for the hot cache) answered from the series index (CACHE-11), or
        None to ask DuckDB: the index is off, the parameter is not text, a bound cannot be
        worked out, or a column is not one of the table's."""
        metric_id = lookup.metric_id if lookup.metric_id is not None else _text(params)
        if metric_id is None:
            return None
        bound = lookup.lower_bound(self._clock_us())
        if lookup.bound is not None and bound is None:
            return None
        size = self._views.get(lookup.table)
        if size is None and lookup.table != "metrics":
            return None  # not a window view hyprstream keeps: DuckDB says what it is
        if parameter_count is None:
            parameter_count = self.cache.check_readonly(sql)
        schema = self._hot_shape(sql, parameter_count).schema
        if not len(schema):
            return None
        if size is None:
            rows = self.cache.series(metric_id, bound)
            if rows is None:
                return None
            return _project(rows, lookup, schema)
        return self._window_lookup(size, lookup, metric_id, bound, schema)

    def _grouped(
        self,
        sql: str,
        lookup: GroupedLookup,
        params: pa.RecordBatch | Sequence[Any] | None = None,
        parameter_count: int = 0,
    ) -> pa.Table | None:
        """``sql`` (bound for the hot cache) answered from the series index (CACHE-11), or
        None to ask DuckDB."""
        # Bucketed lookups are over one metric, named in the query or by its one parameter.
        by_parameter = lookup.bucket_us is not None and lookup.metric_id is None
        if parameter_count != int(by_parameter):
            return None
        metric_id = _text(params) if by_parameter else lookup.metric_id
        if lookup.bucket_us is not None and metric_id is None:
            return None
        bound = lookup.lower_bound(self._clock_us())
        if lookup.bound is not None and bound is None:
            return None
        schema = self._hot_shape(sql, parameter_count).schema
        if len(schema) != len(lookup.items):
            return None
        columns = sorted({a.column for a in lookup.items if a is not None and a.column})
        extremes = {
            a.column
            for a in lookup.items
            if a is not None and a.column and a.function in ("min", "max")
        }
        if metric_id is None:
            groups = self.cache.aggregate_series(columns, bound, extremes)
        else:
            assert lookup.bucket_us is not None
            rows = self.cache.series(metric_id, bound)
            if rows is None:
                return None
            groups = bucket_groups(rows, lookup.bucket_us, columns, extremes)
        if groups is None:
            return None
        return _grouped_rows(groups, lookup, schema)

    def _window_lookup(
        self,
        size: WindowSize,
        lookup: SeriesLookup,
        metric_id: str,
        bound: int | None,
        schema: pa.Schema,
    ) -> pa.Table | None:
        """One metric's windows of one size: the closed ones from the window index, the
        open ones from the store, as the ``metrics_<size>`` view shows them."""
        names = _VIEW_NAMES if lookup.columns is None else list(dict.fromkeys(lookup.columns))
        if any(name not in _VIEW_BASE for name in names):
            return None  # not a column of the view: DuckDB says so
        needed = {"window_start", *(base for name in names for base in _VIEW_BASE[name])}
        stored = pa.schema([f for f in WINDOW_STORE_SCHEMA if f.name in needed])
        with self._lock:
            self._flush_windows()  # closed windows into the index; open ones are the store's
            closed = self.cache.closed_windows(size.label, metric_id, stored)
            if closed is None:
                return None
            opened = self._open_rows(size, metric_id, stored)
        rows = pa.concat_tables([closed, opened]) if opened.num_rows else closed
        starts = rows["window_start"].combine_chunks().cast(pa.int64()).to_numpy()
        keep = np.argsort(starts, kind="stable")
        if bound is not None:
            keep = keep[starts[keep] >= bound]
        rows = rows.take(pa.array(keep))
        columns: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name in names:
            if name == "avg":
                columns[name] = rows["mean"]
            elif name in ("variance", "stddev"):
                variance = rows["m2"].to_numpy() / rows["count"].to_numpy()
                value = variance if name == "variance" else np.sqrt(variance)
                columns[name] = pa.array(value, pa.float64())
            else:
                columns[name] = rows[name]
        return _project(pa.table(columns), lookup, schema)

    def _open_rows(self, size: WindowSize, metric_id: str, stored: pa.Schema) -> pa.Table:
        """The open windows of ``size`` of ``metric_id``, as flushed (under the lock), with
        the columns of ``stored`` (some of ``WINDOW_STORE_SCHEMA``)."""
        code = self._metrics.code(metric_id)
        rows: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = []
        if code is not None:
            for start, block in sorted(self.store.open_blocks(size).items()):
                i = int(np.searchsorted(block.code, code))
                if i < len(block) and int(block.code[i]) == code:
                    at = slice(i, i + 1)
                    quantiles = self._open_quantiles.get((size, start))
                    rows.append(
                        (size, start, block.take(at), None if quantiles is None else quantiles[at])
                    )
        return self._window_rows(rows, self._metrics.names_array(), stored)

    def shape(self, sql: str) -> QueryShape:
        """Result schema and parameter count of ``sql``, for prepared statements."""
        count = self.cache.check_readonly(sql)
        if self.backend.queryable and self._on_backend(sql) is not None:
            return QueryShape(schema=pa.schema([]), parameter_count=count)
        return self._hot_shape(sql, count)

    def _hot_shape(self, sql: str, count: int) -> QueryShape:
        """The shape of a read-only hot-cache query with ``count`` parameters, cached per
        query text and table layout."""
        generation = self.cache.generation
        known = self._shapes.get(sql)
        if known is not None and known[0] == generation:
            return known[1]
        self._prepare_read()
        shape = self.cache.shape(sql, count)
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[sql] = (generation, shape)
        return shape

    # -- statements that change data, and client tables ---------------------------------------

    def _maintained(self, table: str) -> bool:
        """Whether hyprstream maintains ``table`` (lower-case), so clients may not change it."""
        return (
            table in self._hot_tables or table.startswith(_INTERNAL) or table in _BACKEND_INTERNAL
        )

    def statement(self, sql: str) -> Statement:
        """What kind of statement ``sql`` is and where it runs; refuses what hyprstream does
        not run (FSQL-20): only queries, and updates or DDL on client tables in the backend."""
        kind, count = self.cache.classify(sql)
        if kind == "query":
            return Statement(kind="query", parameter_count=count, tables=frozenset())
        tables = analyse(sql).tables
        protected = {t for t in tables if self._maintained(t)}
        if protected:
            raise PermissionDenied(
                f"{kind} statements may not touch {', '.join(sorted(protected))}: hyprstream "
                "maintains it; ingest samples with DoPut or CommandStatementIngest on 'metrics'"
            )
        if not self.backend.queryable:
            raise Unsupported(
                "this node has no backend that keeps client tables (engine 'memory'); run it "
                "with the embedded default or --engine adbc"
            )
        return Statement(kind="update", parameter_count=count, tables=tables)

    def update(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> int:
        """Run an update or DDL statement on the backend; returns rows affected (or -1)."""
        statement = self.statement(sql)
        if statement.kind != "update":
            raise InvalidQuery("this is a query, not an update; run it as a query")
        _refuse_forbidden(sql)
        count = self.backend.execute(
            to_backend_sql(sql, self.backend.dialect, self._clock_us()), params
        )
        for table in statement.tables:
            self.results.invalidate(table)
        self._backend_table_names = None
        return count

    def ingest_table(self, table: str, data: pa.Table, mode: str) -> int:
        """Bulk ingest (``CommandStatementIngest``): into ``metrics`` through the validated,
        written-through, windowed path (appending only), or into a client table."""
        name = table.lower()
        if name == "metrics":
            if mode not in ("append", "create_append"):
                raise InvalidInput(
                    f"ingest mode {mode!r} would create or replace 'metrics', which exists and "
                    "is maintained by hyprstream; append to it"
                )
            accepted = 0
            for batch in data.to_batches():
                if batch.num_rows:
                    accepted += self.ingest(batch).accepted
            return accepted
        if self._maintained(name):
            raise PermissionDenied(
                f"{table!r} is maintained by hyprstream; it cannot be ingested into"
            )
        if not self.backend.queryable:
            raise Unsupported("this node has no backend that keeps client tables (engine 'memory')")
        count = self.backend.ingest(table, data, mode)
        self.results.invalidate(name)
        self._backend_table_names = None
        return count

    def catalog(self) -> Catalog:
        """The tables and views a client can query, for the metadata commands."""
        catalog_name = self.cache.catalog_name
        tables = []
        for name, kind in self.cache.relations():
            if name.startswith(_INTERNAL):
                continue
            not_null = (
                _METRICS_NOT_NULL
                if name == "metrics"
                else _WINDOWS_NOT_NULL
                if name in self._hot_tables
                else frozenset()
            )
            columns = tuple(
                ColumnInfo(name=c, arrow_type=t, sql_type=sql, nullable=c not in not_null)
                for c, t, sql in self.cache.columns(name)
            )
            tables.append(
                TableInfo(
                    catalog=catalog_name,
                    db_schema="main",
                    name=name,
                    table_type=kind,
                    columns=columns,
                )
            )
        seen = {t.name for t in tables}
        if self.backend.queryable:
            for name in sorted(self._backend_tables() - seen):
                schema = self.backend.table_schema(name)
                if schema is not None:
                    tables.append(_backend_table(catalog_name, name, schema))
        return Catalog(tables=tuple(tables))

    def sql_keywords(self) -> list[str]:
        """The SQL keywords of the engine clients talk to (SqlInfo SQL_KEYWORDS)."""
        table = self.cache.query("SELECT keyword_name FROM duckdb_keywords() ORDER BY 1")
        return [str(k).upper() for k in table.column(0).to_pylist()]

    @property
    def labels(self) -> dict[str, pa.DataType]:
        return dict(self._labels)

    def close(self) -> None:
        with self._lock:
            self._appender.close()
            self.cache.close()
            self.backend.close()


def _refuse_forbidden(sql: str) -> None:
    names = forbidden_functions(sql)
    if names:
        raise PermissionDenied(
            f"{', '.join(names)} may not be called: client SQL cannot reach files, other "
            "servers, sessions or settings"
        )


def _read_stored_windows(
    batches: Iterator[pa.RecordBatch],
) -> tuple[list[pa.Table], dict[str, tuple[int, bool]], int | None]:
    """What ``hyprstream_windows`` gave back: the stored windows, the latest storage mark of
    each size (label -> (instant, stored)), and the allowed lateness last recorded (BE-8)."""
    stored: list[pa.Table] = []
    marks: dict[str, tuple[int, bool]] = {}
    latest: dict[str, tuple[int, int]] = {}  # of the marks: (written at, instant)
    lateness: int | None = None
    for batch in batches:
        if not batch.num_rows:
            continue
        table = pa.Table.from_batches([batch])
        is_mark = pc.is_null(table["metric_id"])
        marked = table.filter(is_mark)
        instants = [  # as microseconds, whatever time zone name or unit the driver gave
            marked[name].cast(TIMESTAMP_TYPE).cast(pa.int64()).to_pylist()
            for name in ("window_start", "first_timestamp")
        ]
        labels, counts = marked["window"].to_pylist(), marked["count"].to_pylist()
        for label, count, at, when in zip(labels, counts, *instants, strict=True):
            order = (TIMESTAMP_MIN_US if when is None else when, at)
            if label not in latest or order >= latest[label]:
                latest[label] = order
                marks[label] = (at, bool(count))
                if label == _LATENESS_MARK:
                    lateness = int(count)
        stored.append(table.filter(pc.invert(is_mark)))
    return stored, marks, lateness


def _stored_windows(tables: Sequence[pa.Table], labels: Sequence[str]) -> pa.Table:
    """Closed windows as the backend gave them back, in ``WINDOW_STORE_SCHEMA`` (drivers
    differ in time zone names and units): those of the configured sizes ``labels``, each
    window once. A window the backend holds twice (committed,
    reopened by a longer allowed lateness, committed again) keeps its larger count: a
    window only ever gains samples."""
    if not tables:
        return WINDOW_STORE_SCHEMA.empty_table()
    table = pa.concat_tables(
        [t.select(WINDOW_STORE_SCHEMA.names).cast(WINDOW_STORE_SCHEMA) for t in tables]
    )
    table = table.filter(pc.is_in(table["window"], pa.array(labels, pa.utf8())))
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(
        table,
        [
            ("metric_id", "ascending"),
            ("window", "ascending"),
            ("window_start", "ascending"),
            ("count", "ascending"),
        ],
    )
    table = table.take(order)
    # same_as_next[i]: row i has the key of row i + 1, so only the later one is kept.
    same_as_next = np.zeros(table.num_rows, dtype=bool)
    same_as_next[:-1] = True
    for name in ("metric_id", "window", "window_start"):
        column = table[name].combine_chunks()
        equal = pc.equal(column.slice(1), column.slice(0, len(column) - 1))
        same_as_next[:-1] &= np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool)
    return table.filter(pa.array(~same_as_next))


#: The ``window`` of the mark that records the allowed lateness in force (``count``, µs).
_LATENESS_MARK = "lateness"


def _storage_marks(marks: Sequence[tuple[str, int, int]], *, written_us: int) -> pa.Table:
    """Marker rows of ``hyprstream_windows`` (BE-8): windows of size ``window`` that close
    after ``window_start`` are stored (``count`` 1) or not (0), or, for ``window``
    "lateness", the allowed lateness in force (``count``); ``first_timestamp`` is when the
    mark was written (the latest one holds). ``metric_id`` is NULL, and ``window_end`` the
    last instant, so that every scan returns them."""
    n = len(marks)
    columns: dict[str, pa.Array] = {
        "window": pa.array([label for label, _, _ in marks], pa.utf8()),
        "window_start": pa.array([at for _, at, _ in marks], TIMESTAMP_TYPE),
        "window_end": pa.array([TIMESTAMP_MAX_US] * n, TIMESTAMP_TYPE),
        "count": pa.array([count for _, _, count in marks], pa.int64()),
        "first_timestamp": pa.array([written_us] * n, TIMESTAMP_TYPE),
    }
    return pa.Table.from_arrays(
        [columns.get(f.name, pa.nulls(n, f.type)) for f in WINDOW_STORE_SCHEMA],
        schema=WINDOW_STORE_SCHEMA,
    )


def _by_metric(
    blocks: Sequence[tuple[WindowSize, int, StateColumns, np.ndarray | None]],
    names: pa.StringArray,
) -> tuple[list[tuple[WindowSize, int, StateColumns, np.ndarray | None]], np.ndarray]:
    """``blocks`` sorted by size and start, and the order of their rows by (size, metric id
    in text order, start): the order the window index keeps, so it need not sort them."""
    ordered = sorted(blocks, key=lambda block: (block[0], block[1]))
    if not ordered:
        return ordered, np.zeros(0, np.int64)
    lengths = [len(b) for _, _, b, _ in ordered]
    codes = np.concatenate([b.code for _, _, b, _ in ordered])
    present = np.zeros(len(names), bool)
    present[codes] = True
    used = np.flatnonzero(present)
    by_text = pc.sort_indices(names.take(pa.array(used))).to_numpy()
    rank = np.empty(len(names), np.int64)
    rank[used[by_text]] = np.arange(len(used))
    size_numbers = {size: i for i, size in enumerate(dict.fromkeys(z for z, _, _, _ in ordered))}
    size_of_row = np.repeat([size_numbers[z] for z, _, _, _ in ordered], lengths)
    key = size_of_row * len(used) + rank[codes]
    if not len(key):
        return ordered, key
    if int(key.max()) < 1 << 16:
        return ordered, np.argsort(key.astype(np.uint16), kind="stable")  # a radix sort
    return ordered, np.argsort(key, kind="stable")


def _instants_from_text(table: pa.Table, names: frozenset[str]) -> pa.Table:
    """``table`` with the text columns among ``names`` read as UTC instants, where they all
    are ISO text (else left as they are: a client's own text column of such a name)."""
    for i, field in enumerate(table.schema):
        if field.name in names and pa.types.is_string(field.type):
            try:
                instants = as_instants(table.column(i))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            table = table.set_column(i, field.name, instants)
    return table


def _label_types(table: pa.Table, labels: dict[str, pa.DataType]) -> pa.Table:
    """``table`` with columns named like labels cast back to the labels' types where that
    keeps every value (SQLite gives its integers back as int64, whatever was stored)."""
    for i, field in enumerate(table.schema):
        want = labels.get(field.name)
        if want is not None and field.type != want:
            try:
                table = table.set_column(i, field.name, table.column(i).cast(want, safe=True))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    return table


def _gathered(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """``batches`` joined into tables of at least ``rows`` rows, but the last; empty ones are
    left out. Backends stream in batches of their own size (DuckDB's are 2,048 rows), and
    each table the hot cache appends costs a commit and an index run. Batches whose schemas
    differ (the memory backend's, from before and after a label was added) are unified."""
    group: list[pa.Table] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        group.append(pa.Table.from_batches([batch]))
        count += batch.num_rows
        if count >= rows:
            yield pa.concat_tables(group, promote_options="default")
            group, count = [], 0
    if group:
        yield pa.concat_tables(group, promote_options="default")


def _resolved(result: IngestResult) -> Future[IngestResult]:
    done: Future[IngestResult] = Future()
    done.set_result(result)
    return done


def _then(appended: Future[None], result: IngestResult) -> Future[IngestResult]:
    """A future of ``result`` that completes when ``appended`` does (or fails with it)."""
    out: Future[IngestResult] = Future()

    def finish(f: Future[None]) -> None:
        error = f.exception()
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(result)

    appended.add_done_callback(finish)
    return out


def _project(rows: pa.Table, lookup: SeriesLookup, schema: pa.Schema) -> pa.Table | None:
    """``rows`` (in time order) with the lookup's columns, order and limit, in DuckDB's
    result ``schema``; None if a column is not one of ``rows``."""
    position = {name.lower(): i for i, name in enumerate(rows.column_names)}
    if lookup.columns is None:  # SELECT *: DuckDB's columns, in its order
        if [n.lower() for n in schema.names] != list(position):
            return None
        wanted = list(range(rows.num_columns))
    else:
        found = [position.get(name) for name in lookup.columns]
        if None in found or len(found) != len(schema):
            return None
        wanted = [i for i in found if i is not None]
    if lookup.descending:
        rows = rows.take(pa.array(np.arange(rows.num_rows - 1, -1, -1)))
    if lookup.limit is not None:
        rows = rows.slice(0, lookup.limit)
    columns = [rows.column(i) for i in wanted]
    if all(c.type == f.type for c, f in zip(columns, schema, strict=True)):
        return pa.Table.from_arrays(columns, schema=schema)  # at most nullability differs
    try:
        return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _grouped_rows(groups: Groups, lookup: GroupedLookup, schema: pa.Schema) -> pa.Table | None:
    """The result of a grouped lookup, in DuckDB's result ``schema``, from the per-metric
    aggregates; None if a value is one DuckDB would treat otherwise (an overflow) or a
    column does not convert to DuckDB's type."""
    count = len(groups.keys)
    if not count:
        return schema.empty_table()
    values: list[np.ndarray] = []  # per item, what it orders by
    arrays: list[pa.Array] = []
    for item, target in zip(lookup.items, schema, strict=True):
        if item is None:
            value = groups.keys
            array = groups.names
        elif item.column is None:  # COUNT(*)
            value = groups.rows
            array = pa.array(value, pa.int64())
        else:
            stats = groups.stats[item.column]
            empty = stats.count == 0
            mask = empty if empty.any() else None
            if item.function == "count":
                value = stats.count
            elif item.function == "sum":
                value = stats.sum
            elif item.function == "avg":
                value = stats.sum / np.where(empty, 1, stats.count)
            else:
                value = stats.min if item.function == "min" else stats.max
            if value.dtype == np.float64 and not np.isfinite(value[~empty]).all():
                return None
            array = pa.array(value, mask=mask) if item.function != "count" else pa.array(value)
            if item.column == TIMESTAMP and item.function != "count":
                array = array.cast(pa.timestamp("us", tz="UTC"))
        if array.type != target.type:
            try:
                array = array.cast(target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        values.append(value)
        arrays.append(array)
    order: np.ndarray | None = None
    if lookup.order:
        ranks: list[np.ndarray] = []
        for position, descending, nulls_first in reversed(lookup.order):  # lexsort: last first
            key = None if position is None else values[position]
            if key is None:
                rank = np.arange(count)  # metric ids are already in order
            elif key.dtype.kind in "if":  # finite numbers (checked above) order as they are
                rank = key
            else:
                rank = np.unique(key, return_inverse=True)[1].reshape(-1)
            ranks.append(-rank if descending else rank)
            if position is not None and arrays[position].null_count:
                null = np.asarray(arrays[position].is_null().to_numpy(zero_copy_only=False))
                ranks.append(~null if nulls_first else null)  # before the values' order
        order = np.lexsort(ranks)
    if lookup.limit is not None:
        order = (order if order is not None else np.arange(count))[: lookup.limit]
    if order is not None:
        indices = pa.array(order)
        arrays = [array.take(indices) for array in arrays]
    return pa.Table.from_arrays(arrays, schema=schema)


_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


def _text(params: pa.RecordBatch | Sequence[Any] | None) -> str | None:
    """The one parameter of a series lookup, if it is text."""
    if isinstance(params, pa.RecordBatch):
        if params.num_columns != 1 or params.num_rows != 1:
            return None
        column = params.column(0)
        if not any(is_text(column.type) for is_text in _TEXT_TYPES):
            return None
        value = column[0].as_py()
    elif params is not None and len(params) == 1:
        value = params[0]
    else:
        return None
    return value if isinstance(value, str) else None


def _check_params(expected: int, params: pa.RecordBatch | Sequence[Any] | None) -> None:
    if isinstance(params, pa.RecordBatch):
        if params.num_rows != 1:
            raise InvalidQuery(f"bind one row of parameters per execution, got {params.num_rows}")
        given = params.num_columns
    else:
        given = len(params) if params is not None else 0
    if given != expected:
        raise InvalidQuery(f"the query takes {expected} parameter(s), got {given}")
