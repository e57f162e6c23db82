"""The ``metrics`` data model (spec/data-model.md, DM-1 to DM-9).

A sample is ``(metric_id, timestamp, value)`` plus optional label columns. The server adds
the three ``value_running_window_*`` columns at ingest. Timestamps are UTC instants held at
microsecond precision, within the range every Arrow client can read back at nanosecond
precision (pandas), so that nothing we accept comes back unreadable.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

__all__ = [
    "CORE_COLUMNS",
    "INSTANT_COLUMNS",
    "METRIC_ID",
    "METRIC_ID_MAX_BYTES",
    "RESERVED_COLUMNS",
    "RUNNING_AVG",
    "RUNNING_COUNT",
    "RUNNING_SUM",
    "TIMESTAMP",
    "TIMESTAMP_MAX_US",
    "TIMESTAMP_MIN_US",
    "TIMESTAMP_TYPE",
    "VALUE",
    "as_instants",
    "metrics_schema",
]

METRIC_ID = "metric_id"
TIMESTAMP = "timestamp"
VALUE = "value"
RUNNING_SUM = "value_running_window_sum"
RUNNING_AVG = "value_running_window_avg"
RUNNING_COUNT = "value_running_window_count"

#: The Arrow type of ``timestamp`` in every result (DM-3).
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

#: 1677-09-21T00:12:43.145225Z .. 2262-04-11T23:47:16.854775Z: the int64-nanosecond range,
#: rounded inwards to whole microseconds (DM-3).
TIMESTAMP_MIN_US = -9_223_372_036_854_775 + 1
TIMESTAMP_MAX_US = 9_223_372_036_854_775 - 1

#: Longest metric id accepted, in UTF-8 bytes (DM-2).
METRIC_ID_MAX_BYTES = 1024

CORE_COLUMNS: tuple[pa.Field, ...] = (
    pa.field(METRIC_ID, pa.utf8(), nullable=False),
    pa.field(TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
    pa.field(VALUE, pa.float64(), nullable=False),
    pa.field(RUNNING_SUM, pa.float64()),
    pa.field(RUNNING_AVG, pa.float64()),
    pa.field(RUNNING_COUNT, pa.int64()),
)

#: The columns of hyprstream's own tables (samples, windows, batch ids) that hold instants.
INSTANT_COLUMNS = frozenset(
    {TIMESTAMP, "window_start", "window_end", "first_timestamp", "last_timestamp", "committed_at"}
)

#: Names a client may not use for label columns (DM-5).
RESERVED_COLUMNS = frozenset(f.name for f in CORE_COLUMNS)


def metrics_schema(labels: Iterable[pa.Field] = ()) -> pa.Schema:
    """The schema of the ``metrics`` table: the core columns, then labels in first-seen order."""
    return pa.schema([*CORE_COLUMNS, *labels])


def as_instants(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Instants as ``timestamp[us, tz=UTC]``, from any timestamp type or from the ISO text
    in UTC that stores without a timestamp type (SQLite) hold; raises ``ArrowInvalid`` for
    text that is not an instant."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = column.cast(pa.timestamp("us"))
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
    return column.cast(TIMESTAMP_TYPE)
