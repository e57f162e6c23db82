"""CACHE-11: one-metric queries answered from the series index give DuckDB's answer exactly.

Each query is run twice on the same node: through the service (which takes the index for the
shapes it recognises) and straight on the DuckDB hot cache. Both answers must be equal, with
the same Arrow schema, and the test checks that the index really answered.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hyprstream.app import Node, start
from hyprstream.backend import DuckDBHotCache
from hyprstream.config import load_config
from hyprstream.errors import HyprstreamError
from hyprstream.model import TIMESTAMP_TYPE, metrics_schema
from hyprstream.service._routing import series_lookup
from tests.integration.conftest import connect_adbc, put

pytestmark = pytest.mark.integration

MINUTE_US = 60_000_000
#: The ``loaded`` samples lie between 60 and 40 minutes before this instant (taken when the
#: module is imported, so that SQL written at import time can name instants among them) ...
ANCHOR_US = time.time_ns() // 1000
#: ... so a bound 45 minutes before it cuts through them, whenever the test runs.
CUT = dt.datetime.fromtimestamp((ANCHOR_US - 45 * MINUTE_US) / 1e6, dt.UTC).isoformat(
    sep=" ", timespec="microseconds"
)
NAMES = ["cpu", "mem", "it's", "Cpu", "disk.io"]


def _now_us() -> int:
    return time.time_ns() // 1000


def _batch(rng: np.random.Generator, rows: int, start_us: int, labels: bool) -> pa.Table:
    ts = start_us + np.sort(rng.integers(0, 10 * MINUTE_US, rows))
    columns: dict[str, Any] = {
        "metric_id": pa.array(np.array(NAMES)[rng.integers(0, len(NAMES), rows)]),
        "timestamp": pa.array(ts, TIMESTAMP_TYPE),
        "value": rng.normal(0, 1, rows),
    }
    if labels:
        columns["host"] = pa.array([f"h{i % 3}" for i in range(rows)])
        columns["shard"] = pa.array(rng.integers(0, 4, rows), pa.int32())
    return pa.table(columns)


@pytest.fixture
def loaded(node: Node) -> Node:
    rng = np.random.default_rng(7)
    start_us = ANCHOR_US - 60 * MINUTE_US
    put(node.port, _batch(rng, 300, start_us, labels=False))
    put(node.port, _batch(rng, 300, start_us + 10 * MINUTE_US, labels=True))
    # Late samples (inside the default lateness), in their own batch.
    put(node.port, _batch(rng, 50, start_us + 5 * MINUTE_US, labels=True))
    return node


def _sorted(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


CASES = [
    (
        "SELECT timestamp, value, value_running_window_avg FROM metrics "
        "WHERE metric_id = ? ORDER BY timestamp",
        ["cpu"],
        True,
    ),
    ("SELECT * FROM metrics WHERE metric_id = 'cpu' ORDER BY timestamp", None, True),
    ("SELECT * FROM metrics WHERE metric_id = 'it''s'", None, False),
    (
        "SELECT timestamp AS t, value AS v FROM metrics WHERE 'mem' = metric_id "
        "ORDER BY timestamp DESC LIMIT 7",
        None,
        True,
    ),
    (
        "SELECT m.value, host, shard FROM metrics AS m WHERE m.metric_id = ? ORDER BY timestamp",
        ["disk.io"],
        True,
    ),
    ("SELECT VALUE, Timestamp FROM metrics WHERE metric_id = 'Cpu' ORDER BY TIMESTAMP", None, True),
    ("SELECT value FROM metrics WHERE metric_id = 'nothing' ORDER BY timestamp", None, True),
    ("SELECT value FROM metrics WHERE metric_id = ? LIMIT 0", ["cpu"], True),
    (
        "SELECT metric_id, value_running_window_count FROM metrics WHERE (metric_id = 'cpu') "
        "ORDER BY timestamp ASC LIMIT 1000",
        None,
        True,
    ),
    # Lower bounds on time: every sample, none, and a cut through the middle (literal, so
    # that DuckDB and the index cut at the same instant).
    (
        "SELECT timestamp, value FROM metrics WHERE metric_id = ? "
        "AND timestamp >= NOW() - INTERVAL '1 day' ORDER BY timestamp",
        ["mem"],
        True,
    ),
    (
        "SELECT value FROM metrics WHERE metric_id = 'mem' AND NOW() + INTERVAL '1 hour' "
        "< timestamp",
        None,
        True,
    ),
    (
        "SELECT timestamp, value FROM metrics WHERE metric_id = 'cpu' "
        f"AND timestamp > TIMESTAMPTZ '{CUT}' ORDER BY timestamp DESC",
        None,
        True,
    ),
]


@pytest.mark.parametrize(("sql", "params", "ordered"), CASES)
def test_the_index_answers_as_duckdb_does(
    loaded: Node, sql: str, params: list[Any] | None, ordered: bool
) -> None:
    service = loaded.service
    lookup = series_lookup(sql)
    assert lookup is not None, "the shape should be recognised"
    from_index = service._lookup(sql, lookup, params)
    assert from_index is not None, "the index should have answered"
    from_duckdb = service.cache.query(sql, params)
    assert from_index.schema == from_duckdb.schema
    assert from_index.num_rows == from_duckdb.num_rows
    if ordered:  # the samples' instants are all distinct (fixed seed): one right order
        assert from_index.to_pylist() == from_duckdb.to_pylist()
    assert _sorted(from_index) == _sorted(from_duckdb)
    # And the service's own answer is the index's.
    assert service.query(sql, params).equals(from_index)


def test_the_seed_point_query_over_adbc_reads_its_own_writes(loaded: Node) -> None:
    sql = (
        "SELECT timestamp, value, value_running_window_avg FROM metrics "
        "WHERE metric_id = ? ORDER BY timestamp"
    )
    now = _now_us()
    with connect_adbc(loaded.port) as conn, conn.cursor() as cur:
        cur.execute(sql, ["fresh"])
        assert cur.fetch_arrow_table().num_rows == 0
        put(
            loaded.port,
            pa.table(
                {
                    "metric_id": ["fresh"] * 3,
                    # One 5-minute window, a microsecond apart: running means 1, 1.5, 2.
                    "timestamp": pa.array(
                        [now - now % 300_000_000 + i for i in range(3)], TIMESTAMP_TYPE
                    ),
                    "value": [1.0, 2.0, 3.0],
                }
            ),
        )
        cur.execute(sql, ["fresh"])
        got = cur.fetch_arrow_table()
    assert got.column_names == ["timestamp", "value", "value_running_window_avg"]
    assert got["value"].to_pylist() == [1.0, 2.0, 3.0]
    assert got["value_running_window_avg"].to_pylist() == [1.0, 1.5, 2.0]


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT value FROM metrics WHERE metric_id = ?", [None]),
        ("SELECT value FROM metrics WHERE metric_id = $1", ["cpu"]),
        ("SELECT DISTINCT host FROM metrics WHERE metric_id = 'cpu'", None),
        ("SELECT value FROM metrics WHERE metric_id = 'cpu' AND value > 0", None),
        ("SELECT value AS timestamp FROM metrics WHERE metric_id = 'cpu' ORDER BY timestamp", None),
    ],
)
def test_other_shapes_and_parameters_are_left_to_duckdb(
    loaded: Node, sql: str, params: list[Any] | None
) -> None:
    service = loaded.service
    lookup = series_lookup(sql)
    assert lookup is None or service._lookup(sql, lookup, params) is None
    assert _sorted(service.query(sql, params)) == _sorted(service.cache.query(sql, params))


def test_a_parameter_that_is_not_text_gets_duckdbs_answer(loaded: Node) -> None:
    sql = "SELECT value FROM metrics WHERE metric_id = ?"
    lookup = series_lookup(sql)
    assert lookup is not None
    assert loaded.service._lookup(sql, lookup, [42]) is None
    with pytest.raises(HyprstreamError, match="Could not convert string"):
        loaded.service.query(sql, [42])


def test_an_unknown_column_is_duckdbs_error(loaded: Node) -> None:
    sql = "SELECT nope FROM metrics WHERE metric_id = 'cpu'"
    assert series_lookup(sql) is not None
    with pytest.raises(HyprstreamError, match="nope"):
        loaded.service.query(sql)
    # The server still answers.
    assert loaded.service.query("SELECT value FROM metrics WHERE metric_id = 'cpu'").num_rows


def test_a_label_added_after_a_query_is_seen_by_the_next(loaded: Node) -> None:
    sql = "SELECT * FROM metrics WHERE metric_id = 'cpu' ORDER BY timestamp"
    before = loaded.service.query(sql)
    put(
        loaded.port,
        pa.table(
            {
                "metric_id": ["cpu"],
                "timestamp": pa.array([_now_us()], TIMESTAMP_TYPE),
                "value": [9.0],
                "zone": ["eu"],
            }
        ),
    )
    after = loaded.service.query(sql)
    assert after.column_names == [*before.column_names, "zone"]
    assert after.num_rows == before.num_rows + 1
    assert after["zone"].to_pylist()[-1] == "eu"
    assert after.to_pylist() == loaded.service.cache.query(sql).to_pylist()


def _rows(metric: str, stamps: list[int]) -> pa.Table:
    values = [float(s) for s in stamps]
    return pa.table(
        {
            "metric_id": [metric] * len(stamps),
            "timestamp": pa.array(stamps, TIMESTAMP_TYPE),
            "value": values,
            "value_running_window_sum": values,
            "value_running_window_avg": values,
            "value_running_window_count": pa.array([1] * len(stamps), pa.int64()),
        },
        schema=metrics_schema(),
    )


def test_evicted_samples_leave_the_index_with_the_table(cache: DuckDBHotCache) -> None:
    cache.append(_rows("a", list(range(0, 100))))
    cache.append(_rows("a", list(range(100, 120))))
    cache.evict_samples(10)
    got = cache.series("a")
    assert got is not None
    expected = cache.query("SELECT * FROM metrics WHERE metric_id = 'a' ORDER BY timestamp")
    assert got.column_names == expected.column_names
    assert got.to_pylist() == expected.to_pylist()
    assert got.num_rows == 110


def test_with_the_index_off_every_query_goes_to_duckdb() -> None:
    n = start(load_config(flags={"engine": "memory", "port": 0, "series_index": "off"}))
    try:
        put(
            n.port,
            pa.table(
                {
                    "metric_id": ["a"],
                    "timestamp": pa.array([_now_us()], TIMESTAMP_TYPE),
                    "value": [1.0],
                }
            ),
        )
        assert n.service.cache.series("a") is None
        sql = "SELECT value FROM metrics WHERE metric_id = 'a'"
        lookup = series_lookup(sql)
        assert lookup is not None
        assert n.service._lookup(sql, lookup, None) is None
        assert n.service.query(sql)["value"].to_pylist() == [1.0]
    finally:
        n.shutdown()


# -- one metric's windows: metrics_<size> -------------------------------------------------------


@pytest.fixture
def windowed(node: Node) -> Node:
    """Eight hours of samples up to now (so 5-minute windows have closed, and the oldest have
    left their 6-hour retention), then a late batch."""
    rng = np.random.default_rng(11)
    now = _now_us()
    for hour in range(8, 0, -1):
        put(node.port, _batch(rng, 600, now - hour * 60 * MINUTE_US, labels=False))
    put(node.port, _batch(rng, 100, now - 30 * MINUTE_US, labels=False))
    put(node.port, _batch(rng, 50, now - 3 * 60 * MINUTE_US, labels=False))  # late: raw only
    return node


WINDOW_CASES = [
    ("SELECT * FROM metrics_5m WHERE metric_id = 'cpu' ORDER BY window_start", None),
    (
        "SELECT window_start AS bucket, avg AS avg_value FROM metrics_5m "
        "WHERE metric_id = 'cpu' AND window_start >= NOW() - INTERVAL '3 hours' "
        "- INTERVAL '5 minutes' ORDER BY bucket",
        None,
    ),
    (
        "SELECT window_start, count, p50, p90, p99, stddev FROM metrics_1h "
        "WHERE metric_id = ? ORDER BY window_start DESC",
        ["mem"],
    ),
    ("SELECT * FROM metrics_1d WHERE metric_id = 'it''s'", None),
    (
        "SELECT w.window_end, w.variance, last_value FROM metrics_30m AS w WHERE "
        "w.metric_id = 'disk.io' AND TIMESTAMPTZ '2000-01-01 00:00:00+00' < w.window_start "
        "ORDER BY w.window_start LIMIT 3",
        None,
    ),
    ("SELECT min, max, sum FROM metrics_5m WHERE metric_id = 'nothing'", None),
]


@pytest.mark.parametrize(("sql", "params"), WINDOW_CASES)
def test_window_lookups_answer_as_the_window_views_do(
    windowed: Node, sql: str, params: list[Any] | None
) -> None:
    service = windowed.service
    lookup = series_lookup(sql)
    assert lookup is not None
    assert lookup.table.startswith("metrics_")
    from_index = service._lookup(sql, lookup, params)
    assert from_index is not None, "the index should have answered"
    service._prepare_read()  # the window tables are written behind the index: wait for it
    from_duckdb = service.cache.query(sql, params)
    assert from_index.schema == from_duckdb.schema
    assert from_index.to_pylist() == from_duckdb.to_pylist()  # window starts are unique
    assert service.query(sql, params).equals(from_index)


def test_window_lookups_see_open_closed_and_evicted_windows(windowed: Node) -> None:
    service = windowed.service
    sql = "SELECT window_start, count FROM metrics_5m WHERE metric_id = 'cpu' ORDER BY window_start"
    got = service.query(sql)
    starts = got["window_start"].cast(pa.int64()).to_pylist()
    stream_time = service.store.watermark
    assert stream_time is not None
    # Some windows are closed (older than the watermark), some still open ...
    assert any(s + 5 * MINUTE_US <= stream_time for s in starts)
    assert any(s + 5 * MINUTE_US > stream_time for s in starts)
    # ... and none is older than the 6-hour retention of 5-minute windows.
    assert min(starts) >= _now_us() - 7 * 60 * MINUTE_US
    # A new sample in an open window shows at once.
    before = dict(zip(starts, got["count"].to_pylist(), strict=True))
    at = _now_us() - MINUTE_US
    put(
        windowed.port,
        pa.table(
            {"metric_id": ["cpu"], "timestamp": pa.array([at], TIMESTAMP_TYPE), "value": [1.0]}
        ),
    )
    after = service.query(sql)
    counts = dict(
        zip(
            after["window_start"].cast(pa.int64()).to_pylist(),
            after["count"].to_pylist(),
            strict=True,
        )
    )
    bucket = at - at % (5 * MINUTE_US)
    assert counts[bucket] == before.get(bucket, 0) + 1
    service._prepare_read()
    assert after.to_pylist() == service.cache.query(sql).to_pylist()


def test_each_window_index_holds_only_its_own_sizes_rows(windowed: Node) -> None:
    service = windowed.service
    service.query("SELECT 1")  # flushes the closed windows into the index
    indexes = service.cache._window_index
    assert indexes is not None
    held = {label: index._runs for label, index in indexes.items() if index.runs}
    assert {"5m", "30m", "1h"} <= set(held)
    for label, runs in held.items():
        for run in runs:
            assert pc.all(pc.equal(run.table["window"], label)).as_py()
            # Buffers of the run's own rows only, not of a table shared with other sizes.
            assert run.table.get_total_buffer_size() <= 2 * run.table.nbytes + 4096, label


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM metrics_5m WHERE metric_id = 'cpu' AND window_start >= now() + 0",
        "SELECT * FROM metrics_7m WHERE metric_id = 'cpu'",  # no such view
        "SELECT * FROM metrics_5m WHERE metric_id = 'cpu' AND window_end >= NOW()",
        "SELECT * FROM metrics_5m WHERE metric_id = 'cpu' AND window_start >= value",
    ],
)
def test_window_queries_the_index_cannot_answer_go_to_duckdb(windowed: Node, sql: str) -> None:
    service = windowed.service
    lookup = series_lookup(sql)
    assert lookup is None or service._lookup(sql, lookup, None) is None
    # ... and the service gives DuckDB's answer, or DuckDB's error.
    try:
        service._prepare_read()
        expected = service.cache.query(sql).to_pylist()
    except HyprstreamError as exc:
        with pytest.raises(type(exc)):
            service.query(sql)
    else:
        assert service.query(sql).to_pylist() == expected


def test_after_a_restart_the_indexes_hold_what_the_backend_gave_back(tmp_path: Any) -> None:
    # Warm start refills the hot cache and the closed windows from the embedded backend: the
    # indexes must be refilled with them, or lookups would answer from nothing.
    flags = {"port": 0, "data_dir": str(tmp_path / "data")}
    rng = np.random.default_rng(5)
    now = _now_us()
    first = start(load_config(flags=flags))
    try:
        for hour in range(4, 0, -1):
            put(first.port, _batch(rng, 400, now - hour * 60 * MINUTE_US, labels=hour < 3))
    finally:
        first.shutdown()
    second = start(load_config(flags=flags))
    try:
        service = second.service
        for sql in (
            "SELECT * FROM metrics WHERE metric_id = 'cpu' ORDER BY timestamp",
            "SELECT * FROM metrics_5m WHERE metric_id = 'mem' ORDER BY window_start",
            "SELECT * FROM metrics_1h WHERE metric_id = 'disk.io' ORDER BY window_start",
        ):
            lookup = series_lookup(sql)
            assert lookup is not None
            from_index = service._lookup(sql, lookup, None)
            assert from_index is not None
            assert from_index.num_rows > 0
            service._prepare_read()
            from_duckdb = service.cache.query(sql)
            assert _sorted(from_index) == _sorted(from_duckdb)
    finally:
        second.shutdown()


def test_a_time_bound_cuts_the_series_where_duckdb_does(loaded: Node) -> None:
    sql = (
        "SELECT timestamp FROM metrics WHERE metric_id = 'cpu' "
        f"AND timestamp >= TIMESTAMPTZ '{CUT}' ORDER BY timestamp"
    )
    every = loaded.service.query("SELECT timestamp FROM metrics WHERE metric_id = 'cpu'")
    lookup = series_lookup(sql)
    assert lookup is not None
    cut = loaded.service._lookup(sql, lookup, None)
    assert cut is not None
    assert 0 < cut.num_rows < every.num_rows
    assert cut.to_pylist() == loaded.service.cache.query(sql).to_pylist()


def test_samples_older_than_the_expiry_cutoff_stay_out_of_table_and_index(
    cache: DuckDBHotCache,
) -> None:
    # Late samples older than the last cutoff: they have left the hot cache already, so
    # neither DuckDB nor the index keeps them (else the two would disagree until the next
    # expiry).
    cache.append(_rows("a", [20, 30]))
    cache.evict_samples(25)
    cache.append(_rows("a", [10, 26, 40]))
    sql = "SELECT * FROM metrics WHERE metric_id = 'a' ORDER BY timestamp"
    expected = cache.query(sql).to_pylist()
    got = cache.series("a")
    assert got is not None
    assert got.to_pylist() == expected
    assert [r["value"] for r in expected] == [26.0, 30.0, 40.0]


@pytest.mark.parametrize("text_type", [pa.utf8(), pa.large_utf8(), pa.string_view()])
def test_a_text_parameter_of_any_string_type_is_looked_up(loaded: Node, text_type: Any) -> None:
    sql = "SELECT timestamp, value FROM metrics WHERE metric_id = ? ORDER BY timestamp"
    lookup = series_lookup(sql)
    assert lookup is not None
    params = pa.record_batch([pa.array(["cpu"], text_type)], names=["0"])
    got = loaded.service._lookup(sql, lookup, params)
    assert got is not None
    assert (
        got["timestamp"].to_pylist()
        == loaded.service.cache.query(sql, ["cpu"])["timestamp"].to_pylist()
    )
