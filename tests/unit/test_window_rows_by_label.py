"""CACHE-11: closed window rows are split by size label for the window index."""

from __future__ import annotations

import pyarrow as pa

from hyprstream.backend._duckdb_cache import _by_label


def _rows(labels: list[str]) -> pa.Table:
    return pa.table({"window": labels, "n": list(range(len(labels)))})


def test_rows_grouped_by_label_are_sliced_in_place() -> None:
    parts = _by_label(_rows(["5m", "5m", "1h", "1d", "1d"]))
    assert [(label, t["n"].to_pylist()) for label, t in parts] == [
        ("5m", [0, 1]),
        ("1h", [2]),
        ("1d", [3, 4]),
    ]


def test_interleaved_labels_are_filtered_in_row_order() -> None:
    parts = dict(_by_label(_rows(["5m", "1h", "5m", "1h", "1d"])))
    assert {label: t["n"].to_pylist() for label, t in parts.items()} == {
        "5m": [0, 2],
        "1h": [1, 3],
        "1d": [4],
    }
