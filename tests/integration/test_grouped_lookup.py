"""CACHE-11: per-metric aggregates answered from the series index give DuckDB's answer.

Each query runs through the service (which answers the grouped shapes from the index) and
straight on the DuckDB hot cache. Schemas must be equal, every row equal (floating sums to
within rounding: DuckDB adds in whatever order its threads meet the rows), and rows in the
same order where the query fixes one.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hyprstream.app import Node, start
from hyprstream.config import load_config
from hyprstream.service._routing import grouped_lookup
from tests.integration.conftest import connect_adbc, put

pytestmark = pytest.mark.integration

MINUTE_US = 60_000_000
ANCHOR_US = time.time_ns() // 1000
#: A literal instant 45 minutes before the anchor: it cuts through the samples.
CUT = dt.datetime.fromtimestamp((ANCHOR_US - 45 * MINUTE_US) / 1e6, dt.UTC).isoformat(
    sep=" ", timespec="microseconds"
)
NAMES = ["cpu", "mem", "it's", "Cpu", "disk.io", "é"]


def _batch(
    rng: np.random.Generator, rows: int, start_us: int, names: list[str], labels: bool
) -> pa.Table:
    ts = start_us + np.sort(rng.choice(10 * MINUTE_US, rows, replace=False))
    columns: dict[str, Any] = {
        "metric_id": pa.array(np.array(names)[rng.integers(0, len(names), rows)]),
        "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "value": rng.normal(50, 20, rows),
    }
    if labels:
        columns["host"] = pa.array([f"h{i % 3}" for i in range(rows)])
    return pa.table(columns)


@pytest.fixture
def grouped() -> Iterator[Node]:
    """Samples from 60 to 40 minutes before the anchor, some with labels, and late samples
    (NULL running columns) including a metric that has nothing else."""
    n = start(load_config(flags={"engine": "memory", "port": 0, "allowed_lateness": "5m"}))
    try:
        rng = np.random.default_rng(11)
        start_us = ANCHOR_US - 60 * MINUTE_US
        put(n.port, _batch(rng, 400, start_us, NAMES, labels=False))
        put(n.port, _batch(rng, 400, start_us + 10 * MINUTE_US, NAMES, labels=True))
        # Older than the watermark (40 - 5 minutes before the anchor): late.
        acks = put(n.port, _batch(rng, 60, start_us, [*NAMES, "late.only"], labels=True))
        assert acks[0]["late"] == 60
        yield n
    finally:
        n.shutdown()


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return a == b


def _rows_match(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    return len(got) == len(want) and all(
        g.keys() == w.keys() and all(_same(g[k], w[k]) for k in g)
        for g, w in zip(got, want, strict=True)
    )


def _by_id(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: repr(sorted(r.items(), key=repr)))


SEED = """SELECT
    metric_id,
    COUNT(*) as samples,
    AVG(value_running_window_avg) as avg_value
FROM metrics
WHERE timestamp >= NOW() - INTERVAL '1 hour'
GROUP BY metric_id
ORDER BY avg_value DESC"""

#: (query, whether it fixes the order of its rows)
CASES = [
    # The seed example, verbatim: its hour reaches back past the oldest sample only for
    # the first minutes after the anchor, so it also cuts the samples (by NOW()).
    (SEED.replace("1 hour", "2 hours"), False),
    (
        "SELECT metric_id, count(*), count(value), sum(value), min(value), max(value), "
        "avg(value) FROM metrics GROUP BY metric_id ORDER BY metric_id",
        True,
    ),
    (
        "SELECT metric_id AS m, count(*) AS n FROM metrics "
        f"WHERE timestamp > TIMESTAMPTZ '{CUT}' GROUP BY 1 ORDER BY n DESC, m LIMIT 3",
        True,
    ),
    (  # the running columns are NULL for late samples, and only late for one metric
        "SELECT metric_id, count(value_running_window_avg) AS n, "
        "avg(value_running_window_avg) AS a, sum(value_running_window_count) AS s, "
        "min(value_running_window_sum), max(value_running_window_count), "
        "avg(value_running_window_count) FROM metrics AS x GROUP BY ALL",
        False,
    ),
    (
        "SELECT min(timestamp) AS first, max(timestamp) AS last, count(timestamp), metric_id "
        f"FROM metrics WHERE TIMESTAMPTZ '{CUT}' <= timestamp GROUP BY 4 ORDER BY first DESC",
        True,
    ),
    (
        "SELECT sum(value) FROM metrics WHERE timestamp >= NOW() + INTERVAL '1 hour' "
        "GROUP BY metric_id",
        False,
    ),
    (
        "SELECT metric_id, max(value) FROM metrics GROUP BY metric_id ORDER BY max(value) LIMIT 0",
        True,
    ),
]


@pytest.mark.parametrize(("sql", "ordered"), CASES)
def test_the_index_answers_grouped_queries_as_duckdb_does(
    grouped: Node, sql: str, ordered: bool
) -> None:
    service = grouped.service
    lookup = grouped_lookup(sql)
    assert lookup is not None, "the shape should be recognised"
    from_index = service._grouped(sql, lookup)
    assert from_index is not None, "the index should have answered"
    from_duckdb = service.cache.query(sql)
    assert from_index.schema == from_duckdb.schema
    if ordered:
        assert _rows_match(from_index.to_pylist(), from_duckdb.to_pylist())
    assert _rows_match(_by_id(from_index), _by_id(from_duckdb))
    assert _rows_match(_by_id(service.query(sql)), _by_id(from_index))


#: One metric's samples by time bucket: (query, parameters, whether it fixes the row order)
BUCKETED = [
    (  # the benchmark's dashboard over raw samples
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, avg(value) AS avg_value "
        "FROM metrics WHERE metric_id = 'cpu' AND timestamp >= NOW() - INTERVAL '24 hours' "
        "GROUP BY bucket ORDER BY bucket",
        None,
        True,
    ),
    (  # a parameter, buckets that do not divide an hour, DESC and LIMIT, NULL running columns
        "SELECT time_bucket(INTERVAL '7 minutes', m.timestamp) AS b, count(*) AS n, "
        "min(value), max(timestamp), sum(value_running_window_count), "
        "avg(value_running_window_avg) FROM metrics AS m WHERE ? = metric_id "
        "GROUP BY ALL ORDER BY b DESC LIMIT 5",
        ["mem"],
        True,
    ),
    (
        "SELECT max(value) AS top, time_bucket(INTERVAL 1 HOUR, timestamp) FROM metrics "
        f"WHERE metric_id = 'it''s' AND timestamp > TIMESTAMPTZ '{CUT}' GROUP BY 2 "
        "ORDER BY top",
        None,
        True,
    ),
    (
        "SELECT time_bucket(INTERVAL '1 day', timestamp) AS d, count(value_running_window_sum) "
        "FROM metrics WHERE metric_id = 'late.only' GROUP BY d",
        None,
        False,
    ),
    (
        "SELECT time_bucket(INTERVAL '30 seconds', timestamp) AS b, sum(value) FROM metrics "
        "WHERE metric_id = 'nothing' GROUP BY b",
        None,
        False,
    ),
]


@pytest.mark.parametrize(("sql", "params", "ordered"), BUCKETED)
def test_the_index_answers_bucketed_queries_as_duckdb_does(
    grouped: Node, sql: str, params: list[Any] | None, ordered: bool
) -> None:
    service = grouped.service
    lookup = grouped_lookup(sql)
    assert lookup is not None
    assert lookup.bucket_us is not None
    from_index = service._grouped(sql, lookup, params, 1 if params else 0)
    assert from_index is not None, "the index should have answered"
    from_duckdb = service.cache.query(sql, params)
    assert from_index.schema == from_duckdb.schema
    if ordered:
        assert _rows_match(from_index.to_pylist(), from_duckdb.to_pylist())
    assert _rows_match(_by_id(from_index), _by_id(from_duckdb))
    assert _rows_match(_by_id(service.query(sql, params)), _by_id(from_index))


def test_the_seed_example_over_adbc_reads_its_own_writes(grouped: Node) -> None:
    rows = grouped.service.cache.query(
        "SELECT metric_id, value_running_window_avg AS v FROM metrics "
        "WHERE timestamp >= NOW() - INTERVAL '1 hour'"
    ).to_pylist()
    with connect_adbc(grouped.port) as conn, conn.cursor() as cur:
        cur.execute(SEED)
        before = cur.fetch_arrow_table().to_pylist()
        # One more sample of a new metric, now: the next answer has it.
        put(
            grouped.port,
            pa.table(
                {
                    "metric_id": ["fresh"],
                    "timestamp": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
                    "value": [1e6],
                }
            ),
        )
        cur.execute(SEED)
        after = cur.fetch_arrow_table().to_pylist()
    # Counted independently from the raw rows (the hour may have moved on a little).
    expected: dict[str, list[float]] = {}
    for r in rows:
        expected.setdefault(r["metric_id"], []).append(r["v"])
    got = {r["metric_id"]: r for r in before}
    assert set(got) <= set(expected)
    for metric, row in got.items():
        assert row["samples"] <= len(expected[metric])
    assert after[0] == {"metric_id": "fresh", "samples": 1, "avg_value": 1e6}
    averages = [r["avg_value"] for r in after if r["avg_value"] is not None]
    assert averages == sorted(averages, reverse=True)


def test_a_sum_that_overflows_is_left_to_duckdb(grouped: Node) -> None:
    put(
        grouped.port,
        pa.table(
            {
                "metric_id": ["huge", "huge"],
                "timestamp": pa.array([ANCHOR_US, ANCHOR_US + 1], pa.timestamp("us", tz="UTC")),
                "value": [1.5e308, 1.5e308],
            }
        ),
    )
    sql = "SELECT metric_id, sum(value) AS s FROM metrics GROUP BY metric_id ORDER BY metric_id"
    lookup = grouped_lookup(sql)
    assert lookup is not None
    assert grouped.service._grouped(sql, lookup) is None
    answer = {r["metric_id"]: r["s"] for r in grouped.service.query(sql).to_pylist()}
    assert answer["huge"] == math.inf


def test_with_the_index_off_grouped_queries_go_to_duckdb() -> None:
    n = start(load_config(flags={"engine": "memory", "port": 0, "series_index": "off"}))
    try:
        put(
            n.port,
            pa.table(
                {
                    "metric_id": ["a", "a"],
                    "timestamp": pa.array([ANCHOR_US, ANCHOR_US + 1], pa.timestamp("us", tz="UTC")),
                    "value": [1.0, 2.0],
                }
            ),
        )
        lookup = grouped_lookup(SEED)
        assert lookup is not None
        assert n.service._grouped(SEED, lookup) is None
        assert n.service.query(SEED).to_pylist() == [
            {"metric_id": "a", "samples": 2, "avg_value": 1.25}  # running avgs 1.0, 1.5
        ]
    finally:
        n.shutdown()
