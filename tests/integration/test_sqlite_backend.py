"""BE-2: read-through on a SQLite backend, which holds instants as ISO text.

Queries over samples the hot cache no longer holds go to SQLite. Instants in their
conditions are written as the text SQLite holds (so comparing text compares instants), and
instant columns come back as ``timestamp[us, tz=UTC]``, as from the hot cache.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_sqlite.dbapi as sqlite
import duckdb
import pyarrow as pa
import pytest

from hyprstream.app import Node, start
from hyprstream.config import load_config
from hyprstream.model import TIMESTAMP_TYPE
from hyprstream.service._routing import sqlite_instant, to_backend_sql
from tests.integration.conftest import put, query

pytestmark = pytest.mark.integration

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, Path, list[int]]]:
    backend = tmp_path / "backend.sqlite"
    flags = {
        "port": 0,
        "data_dir": str(tmp_path / "data"),
        "engine": "adbc",
        "engine_connection": f"sqlite://{backend}",
        "cache_max_duration": "2h",
    }
    n = start(load_config(flags=flags))
    now = time.time_ns() // 1000
    old = [now - 5 * HOUR_US + m * MINUTE_US + 123 for m in range(3)]  # hot no longer
    try:
        put(n.port, _samples(old, [1.0, 2.0, 3.0]))
        put(n.port, _samples([now], [4.0]))  # the eviction check runs at ingest
        time.sleep(0.3)
        yield n, backend, old
    finally:
        n.shutdown()


def _samples(stamps: list[int], values: list[float]) -> pa.Table:
    return pa.table(
        {
            "metric_id": ["m"] * len(stamps),
            "timestamp": pa.array(stamps, TIMESTAMP_TYPE),
            "value": values,
        }
    )


def _text(micros: int) -> str:
    """An instant as a client writes it in DuckDB's dialect (a space, an offset)."""
    moment = dt.datetime.fromtimestamp(micros / 1e6, dt.UTC)
    return moment.isoformat(sep=" ", timespec="microseconds")


def test_interval_arithmetic_reads_through_with_instants_typed(
    node: tuple[Node, Path, list[int]],
) -> None:
    n, _, old = node
    got = query(
        n.port,
        "SELECT timestamp, value FROM metrics WHERE timestamp >= NOW() - INTERVAL '6 hours' "
        "ORDER BY timestamp",
    )
    assert got.schema.field("timestamp").type == TIMESTAMP_TYPE
    assert got["value"].to_pylist() == [1.0, 2.0, 3.0, 4.0]
    assert got["timestamp"].cast(pa.int64()).to_pylist()[:3] == old


def test_a_text_instant_cuts_between_samples_of_the_same_day(
    node: tuple[Node, Path, list[int]],
) -> None:
    # As text, '2026-01-01 10:00' sorts before '2026-01-01T09:00' (a space before 'T'): the
    # literal must be compared as an instant, not as the text it is written in.
    n, _, old = node
    got = query(
        n.port,
        f"SELECT value FROM metrics WHERE timestamp > '{_text(old[1])}' "
        f"AND timestamp < TIMESTAMP '{_text(old[2] + 1)}' ORDER BY value",
    )
    assert got["value"].to_pylist() == [3.0]


def test_aggregated_and_aliased_instants_come_back_typed(
    node: tuple[Node, Path, list[int]],
) -> None:
    n, _, old = node
    got = query(n.port, "SELECT count(*) AS c, min(timestamp) AS first_seen FROM metrics")
    assert got.schema.field("first_seen").type == TIMESTAMP_TYPE
    assert got.to_pylist()[0]["c"] == 4
    assert got["first_seen"].cast(pa.int64()).to_pylist() == [old[0]]


def test_labels_come_back_with_their_own_types(node: tuple[Node, Path, list[int]]) -> None:
    n, _, old = node
    labelled = _samples([old[0] + 1], [9.0]).append_column("shard", pa.array([7], pa.int32()))
    put(n.port, labelled)  # late: stored raw, and older than the hot horizon
    got = query(n.port, "SELECT shard, value FROM metrics WHERE shard IS NOT NULL")
    assert got.schema.field("shard").type == pa.int32()
    assert got.to_pylist() == [{"shard": 7, "value": 9.0}]


def test_text_that_is_not_an_instant_stays_text(node: tuple[Node, Path, list[int]]) -> None:
    n, backend, _ = node
    with sqlite.connect(str(backend)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (timestamp TEXT)")
        cur.execute("INSERT INTO notes VALUES ('yesterday')")
        conn.commit()
    got = query(n.port, "SELECT timestamp FROM notes")
    assert got.to_pylist() == [{"timestamp": "yesterday"}]


def test_time_buckets_read_through_as_instants(node: tuple[Node, Path, list[int]]) -> None:
    n, _, old = node
    got = query(
        n.port,
        "SELECT time_bucket(INTERVAL '1 minute', timestamp) AS minute, sum(value) AS total "
        "FROM metrics WHERE timestamp < NOW() - INTERVAL '3 hours' GROUP BY 1 ORDER BY 1",
    )
    assert got.schema.field("minute").type == TIMESTAMP_TYPE
    starts = [t - t % MINUTE_US for t in old]  # the samples are 123 µs into their minutes
    assert got["minute"].cast(pa.int64()).to_pylist() == starts
    assert got["total"].to_pylist() == [1.0, 2.0, 3.0]


INSTANTS_US = [
    -86_400_000_001,  # before the epoch
    0,
    946_857_599_999_999,  # just before DuckDB's origin, 2000-01-03
    946_857_600_000_000,
    1_700_000_000_000_000,
    1_700_000_099_999_999,
    1_700_000_100_000_000,
    1_764_000_000_123_456,
]
WIDTHS = ["1 second", "7 seconds", "5 minutes", "90 minutes", "1 hour", "1 day", "1 week"]


BUCKET_FILTERS = [
    "time_bucket(INTERVAL '1 hour', timestamp) = '2023-11-14 21:00:00'",
    "time_bucket(INTERVAL '1 hour', timestamp) >= '2023-11-14T20:00:00Z'",
    "time_bucket(INTERVAL '1 hour', timestamp) = TIMESTAMP '2023-11-14 21:00:00'",
    "'2023-11-14 20:00:00+01' < time_bucket(INTERVAL '1 hour', timestamp)",
    "time_bucket(INTERVAL '1 hour', timestamp) >= NOW() - INTERVAL '3 hours'",
]


def _sqlite_and_duckdb(stamps_us: list[int], sql: str, now_us: int) -> tuple[list[Any], list[Any]]:
    """``sql`` over a table ``metrics`` of these instants: translated and run by SQLite on
    the text it would hold, and run by DuckDB itself (in UTC, NOW() at ``now_us``)."""
    stamps = pa.table({"timestamp": pa.array(stamps_us, TIMESTAMP_TYPE)})
    with sqlite.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE metrics (timestamp TEXT)")
        for t in stamps_us:
            cur.execute("INSERT INTO metrics VALUES (?)", (sqlite_instant(t),))
        cur.execute(to_backend_sql(sql, "sqlite", now_us))
        got = cur.fetchall()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("metrics", stamps)
    expected = con.execute(sql.replace("NOW()", f"make_timestamptz({now_us})")).fetchall()
    return got, expected


@pytest.mark.parametrize("condition", BUCKET_FILTERS)
def test_sqlite_compares_time_buckets_as_instants(condition: str) -> None:
    """A bucket compared with text, a literal or a time expression, as DuckDB compares it."""
    now = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
    stamps = [now - i * 600_000_000 for i in range(40)]
    got, expected = _sqlite_and_duckdb(
        stamps, f"SELECT count(*) AS n FROM metrics WHERE {condition}", now
    )
    assert got == expected
    assert expected[0][0] > 0


@pytest.mark.parametrize("width", WIDTHS)
def test_sqlite_time_buckets_equal_duckdbs(width: str) -> None:
    """The translation, run by SQLite on its instant text, against DuckDB's time_bucket."""
    sql = f"SELECT time_bucket(INTERVAL '{width}', timestamp) AS b FROM metrics ORDER BY timestamp"
    got, expected = _sqlite_and_duckdb(INSTANTS_US, sql, 0)
    assert [row[0] for row in got] == [
        sqlite_instant(int(row[0].timestamp() * 1_000_000)) for row in expected
    ]
