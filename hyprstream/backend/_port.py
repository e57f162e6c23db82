"""The backend port: the system of record that every acknowledged batch is written through to.

Contract (spec/backend.md, BE-1 to BE-10):

* ``write`` returns only after the batch is durably committed, in one transaction with its
  batch id (if any) and the windows it closed; if it raises, nothing of it is committed.
  A batch id that is already committed raises :class:`DuplicateBatch` and changes nothing.
  Failures and timeouts of the datastore surface as :class:`~hyprstream.errors.Unavailable`.
* ``scan`` / ``scan_windows`` / ``stream_time`` / ``batch_acks`` give back what was stored,
  for warming a restarted node.
* ``query`` runs SQL in the backend's own dialect (read-through of data the hot cache does not
  hold); ``tables`` lists what the backend holds.
* A backend never puts credentials in the messages it raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from hyprstream.errors import HyprstreamError

__all__ = [
    "BATCHES_TABLE",
    "BATCH_SCHEMA",
    "METRICS_TABLE",
    "WINDOWS_TABLE",
    "Backend",
    "BatchAck",
    "DuplicateBatch",
    "StoredBatch",
]

METRICS_TABLE = "metrics"
BATCHES_TABLE = "hyprstream_batches"
WINDOWS_TABLE = "hyprstream_windows"

#: One row per batch written with a client-supplied id (BE-6).
BATCH_SCHEMA = pa.schema(
    [
        pa.field("batch_id", pa.utf8(), nullable=False),
        pa.field("accepted", pa.int64(), nullable=False),
        pa.field("late", pa.int64(), nullable=False),
        pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class BatchAck:
    accepted: int
    late: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBatch:
    """What one write commits: the samples, the windows they closed, the batch id."""

    rows: pa.Table
    windows: pa.Table | None = None
    batch_id: str | None = None
    ack: BatchAck | None = None
    committed_at_us: int = 0


class DuplicateBatch(HyprstreamError):
    """The batch id was committed before; the stored acknowledgement is attached."""

    def __init__(self, batch_id: str, ack: BatchAck) -> None:
        super().__init__(f"batch {batch_id!r} was already committed")
        self.batch_id = batch_id
        self.ack = ack


@runtime_checkable
class Backend(Protocol):
    """Where acknowledged samples live durably."""

    @property
    def description(self) -> str:
        """A one-line, secret-free description for logs (driver and redacted location)."""
        ...

    @property
    def dialect(self) -> str:
        """The SQL dialect of ``query`` (a sqlglot dialect name)."""
        ...

    def write(self, batch: StoredBatch) -> None: ...

    def add_labels(self, fields: list[pa.Field]) -> None:
        """Add nullable label columns to the stored ``metrics`` table."""
        ...

    def label_fields(self) -> list[pa.Field]: ...

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        """Stored samples with ``timestamp >= since_us`` (all when ``None``)."""
        ...

    def scan_windows(self, since_end_us: int | None) -> Iterator[pa.RecordBatch]:
        """Closed windows with ``window_end > since_end_us`` (all when ``None``)."""
        ...

    def stream_time(self) -> int | None:
        """The largest timestamp of a stored on-time sample (non-NULL running count)."""
        ...

    def oldest_sample(self) -> int | None:
        """The smallest stored timestamp."""
        ...

    @property
    def queryable(self) -> bool:
        """Whether ``query`` answers (the volatile in-memory backend does not)."""
        ...

    def batch_acks(self, since_us: int | None) -> dict[str, BatchAck]:
        """Batch ids committed at or after ``since_us``, with their acknowledgements."""
        ...

    def tables(self) -> set[str]:
        """Names of the tables a client may query through the backend."""
        ...

    def query(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> pa.Table:
        """Run one query in the backend's dialect."""
        ...

    def execute(self, sql: str, params: pa.RecordBatch | Sequence[Any] | None = None) -> int:
        """Run one update or DDL statement in the backend's dialect; rows affected or -1."""
        ...

    def ingest(self, table: str, data: pa.Table, mode: str) -> int:
        """Bulk-ingest into a client table; ``mode`` is an ``adbc_ingest`` mode."""
        ...

    def table_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema of a backend table, or None if there is none of that name."""
        ...

    def close(self) -> None: ...
