"""DM-1..DM-9: batch validation accepts the documented types and refuses everything else,
naming the column and the first bad row."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from hyprstream.errors import InvalidBatch
from hyprstream.model import TIMESTAMP_MAX_US, TIMESTAMP_MIN_US, validate_batch

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def batch(**columns: pa.Array) -> pa.RecordBatch:
    defaults = {
        "metric_id": pa.array(["a", "b", "c"]),
        "timestamp": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC")),
        "value": pa.array([1.0, 2.0, 3.0]),
    }
    defaults.update(columns)
    return pa.RecordBatch.from_pydict({k: v for k, v in defaults.items() if v is not None})


def rejected(b: pa.RecordBatch, column: str | None, row: int | None = None, match: str = "") -> None:
    with pytest.raises(InvalidBatch, match=match) as info:
        validate_batch(b)
    assert info.value.column == column
    assert info.value.row == row
    if column is not None:
        assert repr(column) in str(info.value)
    if row is not None:
        assert f"row {row}" in str(info.value)


def test_accepts_canonical_batch() -> None:
    s = validate_batch(batch())
    assert s.num_rows == 3
    assert s.metric_id.to_pylist() == ["a", "b", "c"]
    assert s.timestamp_us.dtype == np.int64
    assert s.value.tolist() == [1.0, 2.0, 3.0]
    assert s.labels == ()


@pytest.mark.parametrize(
    "ids",
    [
        pa.array(["a", "b", "c"], pa.large_utf8()),
        pa.array(["a", "b", "c"], pa.string_view()),
        pa.array(["a", "b", "c"]).dictionary_encode(),
        pa.array(["a", "b", "c"], pa.large_utf8()).dictionary_encode(),
    ],
)
def test_accepts_other_string_encodings(ids: pa.Array) -> None:
    s = validate_batch(batch(metric_id=ids))
    assert s.metric_id.type == pa.utf8()
    assert s.metric_id.to_pylist() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("unit", "raw", "expected_us"),
    [
        ("s", 1_764_072_000, 1_764_072_000_000_000),
        ("ms", 1_764_072_000_123, 1_764_072_000_123_000),
        ("us", 1_764_072_000_123_456, 1_764_072_000_123_456),
        ("ns", 1_764_072_000_123_456_789, 1_764_072_000_123_456),
        ("ns", -1, -1),  # floored, not truncated towards zero
    ],
)
def test_timestamp_units_become_microseconds(unit: str, raw: int, expected_us: int) -> None:
    ts = pa.array([raw] * 3, pa.int64()).cast(pa.timestamp(unit))
    assert validate_batch(batch(timestamp=ts)).timestamp_us.tolist() == [expected_us] * 3


def test_zoned_timestamps_are_instants() -> None:
    # The same instant expressed in another zone stores the same microseconds.
    utc = validate_batch(batch()).timestamp_us
    paris = pa.array([T0] * 3, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="Europe/Paris"))
    assert validate_batch(batch(timestamp=paris)).timestamp_us.tolist() == utc.tolist()


@pytest.mark.parametrize(
    "values",
    [
        pa.array([1, 2, 3], pa.int8()),
        pa.array([1, 2, 3], pa.int64()),
        pa.array([1, 2, 3], pa.uint64()),
        pa.array([1.5, 2.5, 3.5], pa.float32()),
        pa.array(np.array([1.5, 2.5, 3.5], dtype=np.float16), pa.float16()),
    ],
)
def test_numeric_values_are_cast(values: pa.Array) -> None:
    s = validate_batch(batch(value=values))
    assert s.value.dtype == np.float64
    assert s.value.tolist() == pytest.approx([float(v) for v in values.to_pylist()])


@pytest.mark.parametrize(
    ("values", "row"),
    [
        (pa.array([2**53, 2**53 + 1, 0], pa.int64()), 1),
        (pa.array([-(2**53), 0, -(2**53) - 1], pa.int64()), 2),
        (pa.array([2**64 - 1, 0, 0], pa.uint64()), 0),
    ],
)
def test_integers_a_float64_cannot_hold_exactly_are_refused(values: pa.Array, row: int) -> None:
    rejected(batch(value=values), "value", row, match="not exactly representable as float64")


def test_missing_required_columns() -> None:
    for name in ("metric_id", "timestamp", "value"):
        rejected(batch(**{name: None}), name, None, match="missing required column")


def test_duplicate_column() -> None:
    b = pa.RecordBatch.from_arrays(
        [pa.array(["a"]), pa.array([T0], pa.timestamp("us")), pa.array([1.0]), pa.array([2.0])],
        names=["metric_id", "timestamp", "value", "value"],
    )
    rejected(b, "value", None, match="more than once")


def test_null_metric_id() -> None:
    rejected(batch(metric_id=pa.array(["a", None, "c"])), "metric_id", 1, match="null")


def test_empty_metric_id() -> None:
    rejected(batch(metric_id=pa.array(["a", "b", ""])), "metric_id", 2, match="empty")


def test_overlong_metric_id() -> None:
    rejected(batch(metric_id=pa.array(["a", "x" * 1025, "c"])), "metric_id", 1, match="longer")


@pytest.mark.parametrize("ids", [pa.array([1, 2, 3]), pa.array([b"a", b"b", b"c"])])
def test_metric_id_of_wrong_type(ids: pa.Array) -> None:
    rejected(batch(metric_id=ids), "metric_id", None, match="expected utf8")


def test_null_timestamp() -> None:
    ts = pa.array([T0, T0, None], pa.timestamp("us"))
    rejected(batch(timestamp=ts), "timestamp", 2, match="null")


@pytest.mark.parametrize("t", [pa.int64(), pa.int32(), pa.uint64()])
def test_integer_timestamps_are_ambiguous(t: pa.DataType) -> None:
    rejected(batch(timestamp=pa.array([1, 2, 3], t)), "timestamp", None, match="ambiguous")


@pytest.mark.parametrize(
    "ts",
    [
        pa.array(["2026-01-01"] * 3),
        pa.array([dt.date(2026, 1, 1)] * 3, pa.date32()),
        pa.array([1.0, 2.0, 3.0]),
    ],
)
def test_timestamp_of_wrong_type(ts: pa.Array) -> None:
    rejected(batch(timestamp=ts), "timestamp", None, match="expected an Arrow timestamp")


def test_timestamp_out_of_range() -> None:
    too_late = pa.array([0, 0, (TIMESTAMP_MAX_US // 1_000_000) + 1], pa.int64()).cast(pa.timestamp("s"))
    rejected(batch(timestamp=too_late), "timestamp", 2, match="out of range")
    too_early = pa.array([0, (TIMESTAMP_MIN_US // 1000) - 1, 0], pa.int64()).cast(pa.timestamp("ms"))
    rejected(batch(timestamp=too_early), "timestamp", 1, match="out of range")


@pytest.mark.parametrize(("bad", "row"), [(math.nan, 0), (math.inf, 1), (-math.inf, 2)])
def test_non_finite_values(bad: float, row: int) -> None:
    values = [1.0, 2.0, 3.0]
    values[row] = bad
    rejected(batch(value=pa.array(values)), "value", row, match="finite")


def test_null_value() -> None:
    rejected(batch(value=pa.array([1.0, None, 3.0])), "value", 1, match="null")


@pytest.mark.parametrize(
    "values",
    [pa.array(["1", "2", "3"]), pa.array([True, False, True]), pa.array([1, 2, 3], pa.decimal128(5, 0))],
)
def test_value_of_wrong_type(values: pa.Array) -> None:
    rejected(batch(value=values), "value", None, match="expected float64")


def test_labels_are_kept_and_normalised() -> None:
    s = validate_batch(
        batch(
            host=pa.array(["h1", "h2", None]).dictionary_encode(),
            port=pa.array([1, 2, 3], pa.int32()),
            seen=pa.array([T0] * 3, pa.timestamp("ns")),
        )
    )
    labels = dict(s.labels)
    assert labels["host"].type == pa.utf8()
    assert labels["host"].to_pylist() == ["h1", "h2", None]
    assert labels["port"].type == pa.int32()
    assert labels["seen"].type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("value_running_window_sum", "computed by hyprstream"),
        ("value_running_window_count", "computed by hyprstream"),
        ("Host", "lower-case"),
        ("1host", "lower-case"),
        ("host name", "lower-case"),
        ("x" * 64, "lower-case"),
    ],
)
def test_bad_label_names(name: str, match: str) -> None:
    rejected(batch(**{name: pa.array([1, 2, 3])}), name, None, match=match)


def test_nested_labels_are_refused() -> None:
    rejected(batch(tags=pa.array([[1], [2], [3]])), "tags", None, match="scalar")


def test_label_cast_to_known_type() -> None:
    s = validate_batch(batch(port=pa.array([1, 2, 3], pa.int8())), known_labels={"port": pa.int64()})
    assert dict(s.labels)["port"].type == pa.int64()
    with pytest.raises(InvalidBatch, match="cannot store") as info:
        validate_batch(batch(port=pa.array(["a", "b", "c"])), known_labels={"port": pa.int64()})
    assert info.value.column == "port"


def test_empty_batch_is_valid() -> None:
    b = pa.RecordBatch.from_pydict(
        {"metric_id": pa.array([], pa.utf8()), "timestamp": pa.array([], pa.timestamp("us")),
         "value": pa.array([], pa.float64())}
    )
    assert validate_batch(b).num_rows == 0


def test_table_input_is_accepted() -> None:
    table = pa.concat_tables([pa.Table.from_batches([batch()]), pa.Table.from_batches([batch()])])
    assert validate_batch(table).num_rows == 6


def test_invalid_batch_is_picklable() -> None:
    import pickle

    err = InvalidBatch("bad thing", column="value", row=3)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.column, copy.row, str(copy)) == ("value", 3, str(err))


@pytest.mark.parametrize(
    ("t", "stored"),
    [(pa.uint8(), pa.int16()), (pa.uint16(), pa.int32()), (pa.uint32(), pa.int64()), (pa.uint64(), pa.int64())],
)
def test_unsigned_labels_are_stored_signed(t: pa.DataType, stored: pa.DataType) -> None:
    s = validate_batch(batch(port=pa.array([0, 1, 200], t)))
    assert dict(s.labels)["port"].type == stored
    assert dict(s.labels)["port"].to_pylist() == [0, 1, 200]


def test_uint64_labels_beyond_int64_are_refused() -> None:
    rejected(batch(big=pa.array([1, 2**63, 3], pa.uint64())), "big", match="cannot store uint64")
