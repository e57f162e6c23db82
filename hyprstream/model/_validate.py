"""Validation of ingested record batches (spec/data-model.md, DM-1 to DM-9).

``validate_batch`` either returns a normalised :class:`SampleBatch` or raises
:class:`~hyprstream.errors.InvalidBatch` naming the column and the first bad row. It never
returns a partially valid batch: a rejected batch changes nothing downstream.

Accepted input types:

* ``metric_id``: utf8, large_utf8, string_view, or a dictionary of those; no nulls, no empty
  strings, at most :data:`METRIC_ID_MAX_BYTES` bytes.
* ``timestamp``: an Arrow timestamp of any unit; naive means UTC. No nulls; within
  :data:`TIMESTAMP_MIN_US` .. :data:`TIMESTAMP_MAX_US`. Sub-microsecond parts are floored.
  Integers are refused: their unit is ambiguous.
* ``value``: float64; other floats and integers are cast. No nulls, NaN or infinities.
* any other column is a label: a scalar type (string, integer, float, boolean, timestamp,
  date, decimal, binary) with a lower-case identifier for a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.errors import InvalidBatch
from hyprstream.model._schema import (
    METRIC_ID,
    METRIC_ID_MAX_BYTES,
    RESERVED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_MAX_US,
    TIMESTAMP_MIN_US,
    VALUE,
)

__all__ = ["SampleBatch", "normalise_label_type", "validate_batch"]

_LABEL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_UNIT_TO_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}
_NS_PER_US = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleBatch:
    """A validated batch: plain, non-null columns in the canonical types.

    ``timestamp_us`` holds UTC microseconds since the epoch; ``labels`` keeps the label
    columns in the order the client sent them, already cast to their normalised types.
    """

    metric_id: pa.StringArray
    timestamp_us: np.ndarray
    value: np.ndarray
    labels: tuple[tuple[str, pa.Array], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.metric_id)
        if len(self.timestamp_us) != n or len(self.value) != n:
            raise ValueError("SampleBatch columns differ in length")
        if self.timestamp_us.dtype != np.int64 or self.value.dtype != np.float64:
            raise TypeError("SampleBatch needs int64 timestamps and float64 values")
        for name, column in self.labels:
            if len(column) != n:
                raise ValueError(f"label {name!r} differs in length")

    @property
    def num_rows(self) -> int:
        return len(self.metric_id)

    @property
    def label_types(self) -> dict[str, pa.DataType]:
        return {name: column.type for name, column in self.labels}


def validate_batch(
    batch: pa.RecordBatch | pa.Table,
    *,
    known_labels: Mapping[str, pa.DataType] | None = None,
) -> SampleBatch:
    """Check ``batch`` against the data model and return it normalised.

    ``known_labels`` are the label columns the store already has, with their types; a label
    that arrives with another type is cast to the known one, and refused if that fails.
    """
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else _empty_batch(batch)
    names = batch.schema.names
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidBatch("the column appears more than once", column=name)
        seen.add(name)
    for required in (METRIC_ID, TIMESTAMP, VALUE):
        if required not in seen:
            raise InvalidBatch(
                f"missing required column {required!r}; a batch needs "
                f"{METRIC_ID!r}, {TIMESTAMP!r} and {VALUE!r}",
                column=required,
            )

    metric_id = _metric_ids(batch.column(METRIC_ID))
    timestamp_us = _timestamps(batch.column(TIMESTAMP))
    value = _values(batch.column(VALUE))

    known = known_labels or {}
    labels = []
    for name in names:
        if name in (METRIC_ID, TIMESTAMP, VALUE):
            continue
        labels.append((name, _label(name, batch.column(name), known.get(name))))
    return SampleBatch(
        metric_id=metric_id, timestamp_us=timestamp_us, value=value, labels=tuple(labels)
    )


def _empty_batch(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([], type=f.type) for f in table.schema], schema=table.schema
    )


def _first(mask: pa.Array | pa.ChunkedArray | np.ndarray) -> int | None:
    """Index of the first true entry of a boolean mask, or ``None``."""
    if not isinstance(mask, np.ndarray):
        mask = mask.to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _reject_nulls(column: pa.Array, name: str) -> None:
    if column.null_count:
        raise InvalidBatch("null values are not allowed", column=name, row=_first(column.is_null()))


def _metric_ids(column: pa.Array) -> pa.StringArray:
    t = column.type
    if pa.types.is_dictionary(t):
        if not _is_string(t.value_type):
            raise InvalidBatch(f"expected utf8 strings, got {t}", column=METRIC_ID)
        column = column.dictionary_decode()
    elif not _is_string(t):
        raise InvalidBatch(
            f"expected utf8 (or large_utf8, string_view, dictionary of utf8), got {t}",
            column=METRIC_ID,
        )
    _reject_nulls(column, METRIC_ID)
    if column.type != pa.utf8():
        column = column.cast(pa.utf8())
    lengths = pc.binary_length(column)
    if len(column):
        empty = _first(pc.equal(lengths, 0))
        if empty is not None:
            raise InvalidBatch("metric_id must not be empty", column=METRIC_ID, row=empty)
        too_long = _first(pc.greater(lengths, METRIC_ID_MAX_BYTES))
        if too_long is not None:
            raise InvalidBatch(
                f"metric_id is longer than {METRIC_ID_MAX_BYTES} bytes",
                column=METRIC_ID,
                row=too_long,
            )
    assert isinstance(column, pa.StringArray)
    return column


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _timestamps(column: pa.Array) -> np.ndarray:
    t = column.type
    if pa.types.is_integer(t):
        raise InvalidBatch(
            f"got {t}; integer timestamps are ambiguous (which unit?): send an Arrow "
            "timestamp type, e.g. timestamp[us] or timestamp[ns, tz=UTC]",
            column=TIMESTAMP,
        )
    if not pa.types.is_timestamp(t):
        raise InvalidBatch(f"expected an Arrow timestamp (any unit), got {t}", column=TIMESTAMP)
    _reject_nulls(column, TIMESTAMP)
    raw = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    factor = _UNIT_TO_US[t.unit]
    if factor is None:
        micros = np.floor_divide(raw, _NS_PER_US)
    else:
        # Check the range before multiplying so that nothing overflows silently.
        lo, hi = TIMESTAMP_MIN_US // factor, TIMESTAMP_MAX_US // factor
        bad = _first((raw < lo) | (raw > hi))
        if bad is not None:
            raise InvalidBatch(_range_message(), column=TIMESTAMP, row=bad)
        micros = raw * factor
    bad = _first((micros < TIMESTAMP_MIN_US) | (micros > TIMESTAMP_MAX_US))
    if bad is not None:
        raise InvalidBatch(_range_message(), column=TIMESTAMP, row=bad)
    return np.ascontiguousarray(micros, dtype=np.int64)


def _range_message() -> str:
    return (
        "timestamp out of range: accepted are 1677-09-21T00:12:43.145226Z to "
        "2262-04-11T23:47:16.854774Z"
    )


_EXACT_INT = 2**53


def _values(column: pa.Array) -> np.ndarray:
    t = column.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
        raise InvalidBatch(
            f"expected float64 (integers and other floats are cast), got {t}", column=VALUE
        )
    _reject_nulls(column, VALUE)
    if pa.types.is_integer(t):
        # Every integer up to 2**53 in magnitude is exactly a float64; beyond, refuse rather
        # than store a different number.
        ints = column.to_numpy(zero_copy_only=False)
        too_big = _first((ints > _EXACT_INT) | (ints < -_EXACT_INT))
        if too_big is not None:
            raise InvalidBatch(
                f"integer value {int(ints[too_big])} is not exactly representable as float64 "
                "(at most 2**53 in magnitude); send it as a float",
                column=VALUE,
                row=too_big,
            )
    if t != pa.float64():
        column = column.cast(pa.float64(), safe=False)
    values = column.to_numpy(zero_copy_only=False)
    bad = _first(~np.isfinite(values))
    if bad is not None:
        raise InvalidBatch(f"value must be finite, got {float(values[bad])}", column=VALUE, row=bad)
    return np.ascontiguousarray(values, dtype=np.float64)


_SIGNED_FOR_UNSIGNED = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}


def normalise_label_type(name: str, t: pa.DataType) -> pa.DataType:
    """The type a label column of Arrow type ``t`` is stored as; raises if unsupported."""
    if pa.types.is_dictionary(t):
        return normalise_label_type(name, t.value_type)
    if _is_string(t):
        return pa.utf8()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC")
    if (
        pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return pa.binary()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_unsigned_integer(t):
        # Stored signed (every SQL backend has signed integers): widened where that keeps
        # every value, and uint64 as int64, whose values above 2**63 - 1 are refused.
        return _SIGNED_FOR_UNSIGNED[t.bit_width]
    if (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_date32(t)
        or pa.types.is_decimal128(t)
        or pa.types.is_binary(t)
    ):
        return t
    if pa.types.is_date64(t):
        return pa.date32()
    raise InvalidBatch(
        f"labels must be scalar (string, integer, float, boolean, timestamp, date, decimal, "
        f"binary), got {t}",
        column=name,
    )


def _label(name: str, column: pa.Array, known: pa.DataType | None) -> pa.Array:
    if name in RESERVED_COLUMNS:
        raise InvalidBatch("this column is computed by hyprstream and cannot be sent", column=name)
    if not _LABEL_NAME.fullmatch(name):
        raise InvalidBatch(
            "label names must be lower-case identifiers of at most 63 characters "
            "(letters a-z, digits, underscore; not starting with a digit)",
            column=name,
        )
    target = known if known is not None else normalise_label_type(name, column.type)
    if column.type == target:
        return column
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidBatch(
            f"cannot store {column.type} in this label, which holds {target}: {exc}",
            column=name,
        ) from None
