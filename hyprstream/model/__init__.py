"""Layer 1, the data model: column names, Arrow types and the validation of ingested batches.

Pure: imports pyarrow and numpy only; no I/O, no clock.
"""

from hyprstream.model._codes import MetricDictionary
from hyprstream.model._schema import (
    CORE_COLUMNS,
    INSTANT_COLUMNS,
    METRIC_ID,
    METRIC_ID_MAX_BYTES,
    RESERVED_COLUMNS,
    RUNNING_AVG,
    RUNNING_COUNT,
    RUNNING_SUM,
    TIMESTAMP,
    TIMESTAMP_MAX_US,
    TIMESTAMP_MIN_US,
    TIMESTAMP_TYPE,
    VALUE,
    as_instants,
    metrics_schema,
)
from hyprstream.model._validate import SampleBatch, normalise_label_type, validate_batch

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
    "MetricDictionary",
    "SampleBatch",
    "as_instants",
    "metrics_schema",
    "normalise_label_type",
    "validate_batch",
]
