"""CACHE-11: closed window rows reach the window index in its order, split by size label."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hyprstream.backend._duckdb_cache import _by_label
from hyprstream.service._service import _by_metric
from hyprstream.windows import StateColumns, WindowSize


def _rows(labels: list[str]) -> pa.Table:
    return pa.table({"window": labels, "n": list(range(len(labels)))})


def test_rows_of_one_label_are_kept_as_they_are() -> None:
    rows = _rows(["1d", "1d"])
    assert _by_label(rows) == [("1d", rows)]


def test_rows_of_several_labels_are_copied_not_sliced() -> None:
    rows = _rows(["5m"] * 1000 + ["1d"])
    parts = dict(_by_label(rows))
    assert parts["1d"]["n"].to_pylist() == [1000]
    # The 1d part does not keep the 5m rows' buffers alive.
    assert parts["1d"].get_total_buffer_size() < rows.get_total_buffer_size() // 10


def test_interleaved_labels_are_filtered_in_row_order() -> None:
    parts = dict(_by_label(_rows(["5m", "1h", "5m", "1h", "1d"])))
    assert {label: t["n"].to_pylist() for label, t in parts.items()} == {
        "5m": [0, 2],
        "1h": [1, 3],
        "1d": [4],
    }


def _block(codes: list[int]) -> StateColumns:
    column = np.array(codes, dtype=np.int64)
    return StateColumns(**{name: column for name in StateColumns.__dataclass_fields__})


def test_closed_rows_are_ordered_by_size_then_metric_text_then_start() -> None:
    names = pa.array(["b", "a", "é", "ab"])  # codes 0..3; in text order: a, ab, b, é
    m5, h1 = WindowSize.parse("5m"), WindowSize.parse("1h")
    blocks = [
        (h1, 3600, _block([0, 1]), None),
        (m5, 600, _block([1, 3]), None),
        (m5, 300, _block([0, 1, 2]), None),
    ]
    ordered, order = _by_metric(blocks, names)
    rows = [(z.label, start, names[int(c)].as_py()) for z, start, b, _ in ordered for c in b.code]
    assert [rows[i] for i in order] == [
        ("5m", 300, "a"),
        ("5m", 600, "a"),
        ("5m", 600, "ab"),
        ("5m", 300, "b"),
        ("5m", 300, "é"),
        ("1h", 3600, "a"),
        ("1h", 3600, "b"),
    ]


def test_closed_rows_of_empty_blocks_have_no_order_to_find() -> None:
    ordered, order = _by_metric([(WindowSize.parse("5m"), 0, _block([]), None)], pa.array(["a"]))
    assert len(ordered) == 1
    assert order.tolist() == []
