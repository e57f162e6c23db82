"""An in-memory backend for tests and benchmarks: committed tables in lists; can be told to fail."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.backend._port import METRICS_TABLE, BatchAck, DuplicateBatch, StoredBatch
from hyprstream.errors import Unavailable, Unsupported
from hyprstream.model import RUNNING_COUNT, TIMESTAMP, metrics_schema

__all__ = ["MemoryBackend"]


_NO_CLIENT_TABLES = (
    "the in-memory backend holds no client tables; run hyprstream with a durable backend "
    "(the embedded default, or --engine adbc)"
)


class MemoryBackend:
    """Volatile backend: what it holds is lost with the process."""

    def __init__(self) -> None:
        self._schema = metrics_schema()
        self._tables: list[pa.Table] = []
        self._windows: list[pa.Table] = []
        self._batches: dict[str, tuple[BatchAck, int]] = {}
        self._lock = threading.Lock()
        #: Set to a message to make writes fail (fault injection in tests).
        self.fail_writes: str | None = None

    @property
    def description(self) -> str:
        return "memory (volatile)"

    @property
    def dialect(self) -> str:
        return "duckdb"

    def write(self, batch: StoredBatch) -> None:
        with self._lock:
            if self.fail_writes is not None:
                raise Unavailable(f"backend write failed: {self.fail_writes}")
            if batch.batch_id is not None and batch.batch_id in self._batches:
                raise DuplicateBatch(batch.batch_id, self._batches[batch.batch_id][0])
            self._tables.append(batch.rows.cast(self._schema))
            if batch.windows is not None and batch.windows.num_rows:
                self._windows.append(batch.windows)
            if batch.batch_id is not None:
                ack = batch.ack or BatchAck(batch.rows.num_rows, 0)
                self._batches[batch.batch_id] = (ack, batch.committed_at_us)

    def add_labels(self, fields: list[pa.Field]) -> None:
        with self._lock:
            self._schema = pa.schema([*self._schema, *fields])
            self._tables = [self._widen(t) for t in self._tables]

    def label_fields(self) -> list[pa.Field]:
        core = set(metrics_schema().names)
        return [f for f in self._schema if f.name not in core]

    def _widen(self, table: pa.Table) -> pa.Table:
        for f in self._schema:
            if f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        return table

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        for table in list(self._tables):
            selected = table
            if since_us is not None:
                cutoff = pa.scalar(since_us, pa.timestamp("us", tz="UTC"))
                selected = table.filter(pc.greater_equal(table[TIMESTAMP], cutoff))
            yield from selected.to_batches()

    def scan_windows(self, since_end_us: int | None) -> Iterator[pa.RecordBatch]:
        for table in list(self._windows):
            selected = table
            if since_end_us is not None:
                cutoff = pa.scalar(since_end_us, pa.timestamp("us", tz="UTC"))
                selected = table.filter(pc.greater(table["window_end"], cutoff))
            yield from selected.to_batches()

    def stream_time(self) -> int | None:
        best: int | None = None
        for table in list(self._tables):
            on_time = table.filter(pc.is_valid(table[RUNNING_COUNT]))
            if on_time.num_rows:
                value = pc.max(on_time[TIMESTAMP].cast(pa.int64())).as_py()
                best = value if best is None else max(best, value)
        return best

    def oldest_sample(self) -> int | None:
        values = [
            pc.min(t[TIMESTAMP].cast(pa.int64())).as_py() for t in list(self._tables) if t.num_rows
        ]
        return min(values) if values else None

    @property
    def queryable(self) -> bool:
        return False

    def batch_acks(self, since_us: int | None) -> dict[str, BatchAck]:
        return {
            k: ack for k, (ack, at) in self._batches.items() if since_us is None or at >= since_us
        }

    def tables(self) -> set[str]:
        return {METRICS_TABLE}

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        raise Unsupported("the in-memory backend answers no queries")

    def execute(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> int:
        raise Unsupported(_NO_CLIENT_TABLES)

    def ingest(self, table: str, data: pa.Table, mode: str) -> int:
        raise Unsupported(_NO_CLIENT_TABLES)

    def table_schema(self, table: str) -> pa.Schema | None:
        return self._schema if table == METRICS_TABLE else None

    @property
    def row_count(self) -> int:
        return sum(t.num_rows for t in self._tables)

    def table(self) -> pa.Table:
        return pa.concat_tables(self._tables) if self._tables else self._schema.empty_table()

    def close(self) -> None:
        self._tables = []
