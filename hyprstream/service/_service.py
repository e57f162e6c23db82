"""The hyprstream service: validated ingest, write-through, windows, and queries, wired together.

Ingest of one batch (spec/ingest.md, ING-1 to ING-9), under one lock:

1. validate the batch (nothing is stored if it is refused);
2. plan the window merge: running totals and partial states, without changing anything;
3. write the rows through to the backend, which commits them or raises ``Unavailable``;
4. only then: merge the plan into the window store, remember which windows the queryable
   copy must refresh, and hand the rows to the hot cache's appender.

The appender is one background thread: DuckDB appends without holding the GIL, so the next
batch is validated and planned while the previous one is appended. ``ingest_async`` returns
a future that resolves once the batch is in the hot cache; that is when it is acknowledged.
So an acknowledged batch is in the backend and visible to queries, and a refused one is
nowhere. (A batch not yet acknowledged may be visible in some tables before others.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.backend import Backend, DuckDBHotCache, QueryShape
from hyprstream.errors import InvalidQuery
from hyprstream.model import (
    METRIC_ID,
    RUNNING_AVG,
    RUNNING_COUNT,
    RUNNING_SUM,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    VALUE,
    MetricDictionary,
    SampleBatch,
    metrics_schema,
    validate_batch,
)
from hyprstream.windows import StateColumns, StoreChanges, WindowSize, WindowStore

__all__ = ["Hyprstream", "IngestResult"]

log = logging.getLogger("hyprstream.service")

#: Closed windows waiting for the queryable copy are flushed once this many accumulate.
_MAX_PENDING_CLOSED = 256


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    late: int


class Hyprstream:
    """One node: the window store, the DuckDB hot cache and a write-through backend."""

    def __init__(self, *, backend: Backend, cache: DuckDBHotCache, store: WindowStore) -> None:
        self.backend = backend
        self.cache = cache
        self.store = store
        self._metrics = MetricDictionary()
        self._names: pa.StringArray = self._metrics.names_array()
        self._labels: dict[str, pa.DataType] = {}
        self._lock = threading.RLock()
        self._dirty: set[tuple[WindowSize, int]] = set()
        self._closed: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = []
        self._evict: dict[WindowSize, int] = {}
        self._appender = _Appender(cache)

    # -- startup ---------------------------------------------------------------------------

    def warm(self) -> int:
        """Load what the backend holds into the hot cache and the windows; returns rows loaded.

        Samples that were late when ingested (stored with a NULL running count) stay out of
        the windows, so a restarted server serves the same windows it served before.
        """
        with self._lock:
            label_fields = [
                f
                for f in getattr(self.backend, "label_fields", lambda: [])()
                if f.name not in self._labels
            ]
            if label_fields:
                self.cache.add_labels(label_fields)
                self._labels.update({f.name: f.type for f in label_fields})
            loaded = 0
            for batch in self.backend.scan(None):
                if not batch.num_rows:
                    continue
                table = self._conform(pa.Table.from_batches([batch]))
                self.cache.append(table)
                merged = table.filter(pc.is_valid(table[RUNNING_COUNT]))
                if merged.num_rows:
                    codes, new = self._metrics.encode(merged[METRIC_ID].combine_chunks())
                    self._metrics.commit(new)
                    ts = merged[TIMESTAMP].combine_chunks().cast(pa.int64()).to_numpy()
                    values = merged[VALUE].combine_chunks().to_numpy()
                    self.store.warm(codes, ts, values)
                loaded += table.num_rows
            self._names = self._metrics.names_array()
            self._record(self.store.close_due())
            self._dirty.update((size, start) for size, start, _ in self.store.iter_open())
            self._flush_windows()
            return loaded

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

    def ingest(self, batch: pa.RecordBatch | pa.Table) -> IngestResult:
        """Ingest one batch and wait until it is acknowledged; see the module docstring."""
        return self.ingest_async(batch).result()

    def ingest_async(self, batch: pa.RecordBatch | pa.Table) -> Future[IngestResult]:
        """Validate, write through and merge one batch; the future resolves when it is
        visible in the hot cache. Refusals (invalid batch, backend down) raise here."""
        with self._lock:
            sample = validate_batch(batch, known_labels=self._labels)
            if sample.num_rows == 0:
                done: Future[IngestResult] = Future()
                done.set_result(IngestResult(0, 0))
                return done
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
            rows = self._rows(sample, plan.order, plan.running_count, plan.running_sum)
            self.backend.write(rows)
            # Committed: from here on nothing may refuse the batch.
            if new_ids:
                self._metrics.commit(new_ids)
                self._names = self._metrics.names_array()
            self._record(self.store.apply(plan))
            if len(self._closed) > _MAX_PENDING_CLOSED:
                self._flush_windows()
            appended = self._appender.submit(rows)
            return _then(appended, IngestResult(sample.num_rows, plan.late))

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

    def _flush_windows(self) -> None:
        """Bring the hot cache's window table up to date with the store (under the lock)."""
        if not (self._dirty or self._closed or self._evict):
            return
        blocks: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = list(self._closed)
        for size, start in self._dirty:
            block = self.store.open_blocks(size).get(start)
            if block is not None:
                blocks.append((size, start, block, self.store.block_quantiles(size, start, block)))
        keys = pa.table(
            {
                "window": pa.array([size.label for size, _, _, _ in blocks], pa.utf8()),
                "window_start": pa.array([start for _, start, _, _ in blocks], TIMESTAMP_TYPE),
            }
        )
        self.cache.replace_windows(keys, self._window_rows(blocks))
        for size, cutoff in self._evict.items():
            self.cache.evict_windows(size.label, cutoff)
        self._dirty.clear()
        self._closed.clear()
        self._evict.clear()

    def _window_rows(
        self, blocks: Sequence[tuple[WindowSize, int, StateColumns, np.ndarray | None]]
    ) -> pa.Table:
        if not blocks:
            return pa.table({})
        lengths = [len(b) for _, _, b, _ in blocks]

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for _, _, b, _ in blocks])

        starts = np.repeat(np.array([s for _, s, _, _ in blocks], dtype=np.int64), lengths)
        sizes = np.repeat(np.array([z.micros for z, _, _, _ in blocks], dtype=np.int64), lengths)
        labels = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(blocks), dtype=np.int32), lengths)),
            pa.array([z.label for z, _, _, _ in blocks], pa.utf8()),
        ).cast(pa.utf8())
        quantiles = np.concatenate(
            [q if q is not None else np.full((len(b), 3), np.nan) for _, _, b, q in blocks]
        )
        missing = np.isnan(quantiles)
        return pa.table(
            {
                "metric_id": self._names.take(pa.array(cat("code"))),
                "window": labels,
                "window_start": pa.array(starts, TIMESTAMP_TYPE),
                "window_end": pa.array(starts + sizes, TIMESTAMP_TYPE),
                "count": cat("count"),
                "sum": cat("sum"),
                "mean": cat("mean"),
                "min": cat("min"),
                "max": cat("max"),
                "m2": cat("m2"),
                "first_timestamp": pa.array(cat("first_ts"), TIMESTAMP_TYPE),
                "last_timestamp": pa.array(cat("last_ts"), TIMESTAMP_TYPE),
                "last_value": cat("last_value"),
                "p50": pa.array(quantiles[:, 0], pa.float64(), mask=missing[:, 0]),
                "p90": pa.array(quantiles[:, 1], pa.float64(), mask=missing[:, 1]),
                "p99": pa.array(quantiles[:, 2], pa.float64(), mask=missing[:, 2]),
            }
        )

    # -- queries ---------------------------------------------------------------------------

    def _prepare_read(self) -> None:
        if self._dirty or self._closed or self._evict:
            with self._lock:
                self._flush_windows()

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only SQL statement against the hot cache.

        ``params`` binds the statement's parameters: a sequence of values, or a one-row
        record batch (one column per parameter, in order), which keeps the client's types.
        """
        expected = self.cache.check_readonly(sql)
        _check_params(expected, params)
        self._prepare_read()
        return self.cache.query(sql, params)

    def shape(self, sql: str) -> QueryShape:
        """Result schema and parameter count of ``sql``, for prepared statements."""
        count = self.cache.check_readonly(sql)
        self._prepare_read()
        return self.cache.shape(sql, count)

    @property
    def labels(self) -> dict[str, pa.DataType]:
        return dict(self._labels)

    def close(self) -> None:
        with self._lock:
            self._appender.close()
            self.cache.close()
            self.backend.close()


class _Appender:
    """One thread that appends batches to the hot cache, in order.

    When batches queue up (ingest is faster than DuckDB's append), the thread takes all that
    are waiting and appends them in one transaction: a commit costs several milliseconds,
    however many rows it covers.
    """

    _MAX_ROWS = 1 << 20

    def __init__(self, cache: DuckDBHotCache) -> None:
        self._cache = cache
        self._queue: queue.SimpleQueue[tuple[pa.Table, Future[None]] | None] = queue.SimpleQueue()
        self._last: Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="hyprstream-append", daemon=True)
        self._thread.start()

    def submit(self, rows: pa.Table) -> Future[None]:
        future: Future[None] = Future()
        self._last = future
        self._queue.put((rows, future))
        return future

    def drain(self) -> None:
        """Wait until everything submitted so far is in the hot cache (or has failed)."""
        last = self._last
        if last is not None:
            with contextlib.suppress(Exception):
                last.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            rows = item[0].num_rows
            while rows < self._MAX_ROWS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                rows += more[0].num_rows
            try:
                tables = [t for t, _ in group]
                self._cache.append(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
            except BaseException as exc:
                for _, future in group:
                    future.set_exception(exc)
            else:
                for _, future in group:
                    future.set_result(None)


def _then(appended: Future[None], result: IngestResult) -> Future[IngestResult]:
    """A future of ``result`` that completes when ``appended`` does (or fails with it)."""
    out: Future[IngestResult] = Future()

    def finish(f: Future[None]) -> None:
        error = f.exception()
        if error is not None:
            log.error("appending an acknowledged-to-be batch to the hot cache failed: %s", error)
            out.set_exception(error)
        else:
            out.set_result(result)

    appended.add_done_callback(finish)
    return out


def _check_params(expected: int, params: pa.RecordBatch | Sequence[Any] | None) -> None:
    if isinstance(params, pa.RecordBatch):
        if params.num_rows != 1:
            raise InvalidQuery(f"bind one row of parameters per execution, got {params.num_rows}")
        given = params.num_columns
    else:
        given = len(params) if params is not None else 0
    if given != expected:
        raise InvalidQuery(f"the query takes {expected} parameter(s), got {given}")
