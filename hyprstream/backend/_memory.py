"""An in-memory backend for tests: keeps committed tables in a list, and can be told to fail."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.errors import Unavailable
from hyprstream.model import TIMESTAMP, metrics_schema

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Volatile backend: what it holds is lost with the process."""

    def __init__(self) -> None:
        self._schema = metrics_schema()
        self._tables: list[pa.Table] = []
        #: Set to an exception message to make the next writes fail (fault injection in tests).
        self.fail_writes: str | None = None

    @property
    def description(self) -> str:
        return "memory (volatile)"

    def write(self, rows: pa.Table) -> None:
        if self.fail_writes is not None:
            raise Unavailable(f"backend write failed: {self.fail_writes}")
        self._tables.append(rows.cast(self._schema))

    def add_labels(self, fields: list[pa.Field]) -> None:
        self._schema = pa.schema([*self._schema, *fields])
        self._tables = [self._widen(t) for t in self._tables]

    def _widen(self, table: pa.Table) -> pa.Table:
        for field in self._schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        return table

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        for table in self._tables:
            selected = table
            if since_us is not None:
                cutoff = pa.scalar(since_us, pa.timestamp("us", tz="UTC"))
                selected = table.filter(pc.greater_equal(table[TIMESTAMP], cutoff))
            yield from selected.to_batches()

    @property
    def row_count(self) -> int:
        return sum(t.num_rows for t in self._tables)

    def table(self) -> pa.Table:
        return pa.concat_tables(self._tables) if self._tables else self._schema.empty_table()

    def close(self) -> None:
        self._tables = []
