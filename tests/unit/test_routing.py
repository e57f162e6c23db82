"""CACHE-5, CACHE-8, FSQL-22: which tables a query reads, the lower bound it puts on
``metrics.timestamp`` (which decides whether the hot cache can answer it), translation to the
backend's dialect, and the functions no client may call on the backend."""

from __future__ import annotations

import pytest

from hyprstream.errors import InvalidQuery
from hyprstream.service._routing import (
    Aggregate,
    analyse,
    forbidden_functions,
    grouped_lookup,
    instant_outputs,
    series_lookup,
    sqlite_instant,
    to_backend_sql,
)

NOW = 1_800_000_000_000_000  # microseconds
HOUR = 3_600_000_000


def test_tables_read_exclude_ctes() -> None:
    a = analyse("WITH recent AS (SELECT * FROM metrics) SELECT * FROM recent JOIN hosts USING (x)")
    assert a.tables == {"metrics", "hosts"}
    assert a.metrics_reads == 1


@pytest.mark.parametrize(
    ("where", "bound"),
    [
        ("timestamp >= NOW() - INTERVAL '1 hour'", NOW - HOUR),
        ("timestamp > now() - INTERVAL 2 HOURS", NOW - 2 * HOUR),
        ("NOW() - INTERVAL '30 minutes' <= timestamp", NOW - HOUR // 2),
        (
            "metric_id = 'x' AND (timestamp >= current_timestamp - INTERVAL '1 day')",
            NOW - 24 * HOUR,
        ),
        ("timestamp BETWEEN TIMESTAMPTZ '2027-01-15 08:00:00+00' AND NOW()", 1_800_000_000_000_000),
        ("timestamp >= '2027-01-15T08:00:00'", 1_800_000_000_000_000),
        ("timestamp >= TIMESTAMP '2027-01-15 08:00'", 1_800_000_000_000_000),
        ("timestamp >= '2027-01-15 09:00:00+01:00'::TIMESTAMPTZ", 1_800_000_000_000_000),
        ("timestamp >= DATE '2027-01-15' + INTERVAL '8 hours'", 1_800_000_000_000_000),
    ],
)
def test_lower_bounds_that_are_understood(where: str, bound: int) -> None:
    assert analyse(f"SELECT * FROM metrics WHERE {where}").lower_bound(NOW) == bound


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM metrics",  # no WHERE
        "SELECT * FROM metrics WHERE metric_id = 'x'",  # no bound on timestamp
        "SELECT * FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour' OR value > 1",
        "SELECT * FROM metrics WHERE timestamp <= NOW()",  # an upper bound only
        "SELECT * FROM metrics WHERE timestamp >= (SELECT min(window_start) FROM metrics_5m)",
        "SELECT * FROM metrics m JOIN metrics_5m w USING (metric_id) "
        "WHERE m.timestamp >= NOW() - INTERVAL '1 hour'",  # joins are not analysed
        # A bound outside a subquery over metrics filters the subquery's rows, not the samples
        # it counts: the counts need every sample, so there is no bound.
        "SELECT * FROM (SELECT metric_id, count(*) AS n, max(timestamp) AS timestamp "
        "FROM metrics GROUP BY 1) WHERE timestamp >= NOW() - INTERVAL '1 hour'",
        # metrics read twice: no single bound covers both reads.
        "SELECT * FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour' "
        "UNION ALL SELECT * FROM metrics",
        # Casts that move the instant (to a date, to whole seconds) are DuckDB's to work out,
        # as are texts Python would read but DuckDB might not, and odd interval amounts.
        "SELECT * FROM metrics WHERE timestamp >= NOW()::DATE",
        "SELECT * FROM metrics WHERE timestamp >= CAST(NOW() AS DATE) - INTERVAL '1 day'",
        "SELECT * FROM metrics WHERE timestamp >= TIMESTAMP_S '2027-01-15 08:00:00.5'",
        "SELECT * FROM metrics WHERE timestamp >= '2027-01-15 08:00:00'::TIMESTAMP_MS",
        "SELECT * FROM metrics WHERE timestamp >= '20270115'",
        "SELECT * FROM metrics WHERE timestamp >= '2027-W03-5'",
        "SELECT * FROM metrics WHERE timestamp >= '2027-01-15 08:00:00.1234567'",
        "SELECT * FROM metrics WHERE timestamp >= NOW() - INTERVAL 'nan hours'",
        "SELECT * FROM metrics WHERE timestamp >= NOW() - INTERVAL 'inf hours'",
        "SELECT * FROM metrics WHERE timestamp >= NOW() - INTERVAL '1e1 hours'",
    ],
)
def test_no_bound_where_none_holds_for_every_sample_read(sql: str) -> None:
    assert analyse(sql).lower_bound(NOW) is None


def test_a_bound_inside_the_subquery_that_reads_metrics_counts() -> None:
    sql = (
        "SELECT metric_id, n FROM (SELECT metric_id, count(*) AS n FROM metrics "
        "WHERE timestamp >= NOW() - INTERVAL '1 hour' GROUP BY 1) WHERE n > 3"
    )
    assert analyse(sql).lower_bound(NOW) == NOW - HOUR


def test_unparsable_sql_is_refused_with_invalid_query() -> None:
    with pytest.raises(InvalidQuery, match="cannot parse the query"):
        analyse("SELEC oops FROM")


def test_postgres_translation_numbers_placeholders_and_aligns_time_buckets() -> None:
    sql = to_backend_sql(
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS b, avg(value) FROM metrics "
        "WHERE metric_id = ? AND value > ? GROUP BY b",
        "postgres",
    )
    for part in ("$1", "$2", "2000-01-03"):
        assert part in sql
    assert "?" not in sql
    assert "DATE_BIN" in sql.upper()
    assert to_backend_sql("SELECT 1 WHERE ? = 1", "duckdb") == "SELECT 1 WHERE ? = 1"


def test_sqlite_translation_writes_instants_as_the_text_sqlite_holds() -> None:
    now = 1_700_000_000_123_456  # 2023-11-14T22:13:20.123456Z
    sql = to_backend_sql(
        "SELECT value FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour' "
        "AND window_start BETWEEN '2023-11-14 00:00:00+01' AND TIMESTAMP '2023-11-15 00:00:00' "
        "AND metric_id <> '2023-11-14' AND '2023-11-14 22:00:00' < last_timestamp",
        "sqlite",
        now,
    )
    assert "'2023-11-14T21:13:20.123456'" in sql  # NOW() - 1 hour, evaluated
    assert "'2023-11-13T23:00:00.000000'" in sql  # the offset taken into account
    assert "'2023-11-15T00:00:00.000000'" in sql
    assert "'2023-11-14T22:00:00.000000' < last_timestamp" in sql
    assert "metric_id <> '2023-11-14'" in sql  # not an instant column: text stays text
    assert "NOW" not in sql.upper()
    assert "INTERVAL" not in sql.upper()
    assert sqlite_instant(0) == "1970-01-01T00:00:00.000000"


def test_instant_outputs_are_found_under_aliases_and_min_max() -> None:
    sql = (
        "SELECT metric_id, min(timestamp) AS first_seen, max(window_end), timestamp AS t, "
        "count(*) AS n, avg(value) FROM metrics GROUP BY metric_id, timestamp"
    )
    # SQLite names an unnamed column by its text, as sent to it.
    assert instant_outputs(sql, "sqlite") == {"first_seen", "MAX(window_end)", "t"}
    assert instant_outputs("SELEC broken", "sqlite") == frozenset()
    assert instant_outputs("INSERT INTO t VALUES (1)", "sqlite") == frozenset()


def test_time_buckets_go_to_sqlite_as_text_and_come_back_as_instants() -> None:
    sql = (
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS b, count(*) FROM metrics GROUP BY 1"
    )
    sent = to_backend_sql(sql, "sqlite", 1_700_000_000_000_000)
    assert "DATE_BIN" not in sent.upper()
    assert "STRFTIME('%s', timestamp)" in sent
    assert "946857600" in sent  # DuckDB's origin, 2000-01-03
    assert instant_outputs(sql, "sqlite") == {"b"}
    latest = "SELECT max(time_bucket(INTERVAL '1 hour', timestamp)) AS m FROM metrics"
    assert instant_outputs(latest, "sqlite") == {"m"}
    # A fraction of an hour that is whole seconds, not cut by float rounding.
    assert "% 4140)" in to_backend_sql(
        "SELECT time_bucket(INTERVAL '1.15 hours', timestamp) FROM metrics", "sqlite", 0
    )
    unnamed = "SELECT time_bucket(INTERVAL '1 hour', window_start), max(count) FROM metric_windows"
    (name,) = instant_outputs(unnamed, "sqlite")
    assert name.startswith("STRFTIME(")
    assert name in to_backend_sql(unnamed, "sqlite", 0)


@pytest.mark.parametrize(
    ("bucket", "words"),
    [
        ("time_bucket(INTERVAL '1 month', timestamp)", "whole seconds"),
        ("time_bucket(INTERVAL '1500 milliseconds', timestamp)", "whole seconds"),
        ("time_bucket(INTERVAL '1 hour', timestamp, TIMESTAMP '2020-01-01')", "origin, offset"),
        ("time_bucket(INTERVAL '1 hour', timestamp, INTERVAL '5 minutes')", "origin, offset"),
        ("time_bucket(INTERVAL '1 hour', timestamp, 'Europe/Paris')", "time zone"),
    ],
)
def test_time_buckets_sqlite_cannot_compute_are_refused(bucket: str, words: str) -> None:
    with pytest.raises(InvalidQuery, match=words):
        to_backend_sql(f"SELECT {bucket} FROM metrics", "sqlite", 0)


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT pg_read_file('/etc/passwd')", ["pg_read_file"]),
        ("SELECT * FROM pg_ls_dir('/')", ["pg_ls_dir"]),
        ("SELECT set_config('work_mem', '1GB', false)", ["set_config"]),
        ("SELECT pg_sleep(100)", ["pg_sleep"]),
        ("SELECT * FROM read_csv('/etc/passwd')", ["read_csv"]),
        ("SELECT dblink_exec('host=x', 'DROP TABLE t')", ["dblink_exec"]),
        ("SELECT count(*) FROM metrics WHERE metric_id = 'read_csv'", []),
    ],
)
def test_forbidden_backend_functions(sql: str, names: list[str]) -> None:
    assert forbidden_functions(sql) == names


# -- CACHE-11: the one-metric lookups the series index answers ----------------------------------


@pytest.mark.parametrize(
    ("sql", "columns", "metric_id", "descending", "limit"),
    [
        (
            "SELECT timestamp, value FROM metrics WHERE metric_id = ? ORDER BY timestamp",
            ("timestamp", "value"),
            None,
            False,
            None,
        ),
        ("SELECT * FROM metrics WHERE metric_id = 'a''b'", None, "a'b", False, None),
        (
            "SELECT m.\"Value\" AS v FROM metrics m WHERE ('x' = m.metric_id) "
            "ORDER BY m.timestamp DESC LIMIT 3",
            ("value",),
            "x",
            True,
            3,
        ),
    ],
)
def test_series_lookups_are_recognised(
    sql: str,
    columns: tuple[str, ...] | None,
    metric_id: str | None,
    descending: bool,
    limit: int | None,
) -> None:
    lookup = series_lookup(sql)
    assert lookup is not None
    assert (lookup.columns, lookup.metric_id, lookup.descending, lookup.limit) == (
        columns,
        metric_id,
        descending,
        limit,
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT value FROM metrics WHERE metric_id = $1",  # numbered: DuckDB's business
        "SELECT value FROM metrics WHERE metric_id = 'a' AND value > 1",
        "SELECT value FROM metrics WHERE metric_id IN ('a', 'b')",
        "SELECT value FROM metrics WHERE metric_id <> 'a'",
        "SELECT value FROM metrics",
        "SELECT DISTINCT value FROM metrics WHERE metric_id = 'a'",
        "SELECT value + 1 FROM metrics WHERE metric_id = 'a'",
        "SELECT count(*) FROM metrics WHERE metric_id = 'a'",
        "SELECT value FROM metrics WHERE metric_id = 'a' ORDER BY value",
        "SELECT value FROM metrics WHERE metric_id = 'a' ORDER BY timestamp, value",
        "SELECT value FROM metrics WHERE metric_id = 'a' LIMIT 1 OFFSET 1",
        "SELECT value FROM metrics WHERE metric_id = 'a' LIMIT ?",
        "SELECT value AS timestamp FROM metrics WHERE metric_id = 'a' ORDER BY timestamp",
        "SELECT value AS metric_id FROM metrics WHERE metric_id = 'a'",
        "SELECT value FROM metrics JOIN other USING (metric_id) WHERE metric_id = 'a'",
        "SELECT value FROM main.metrics WHERE metric_id = 'a'",
        "SELECT o.value FROM metrics m WHERE metric_id = 'a'",
        "SELECT *, value FROM metrics WHERE metric_id = 'a'",
        "WITH x AS (SELECT 1) SELECT value FROM metrics WHERE metric_id = 'a'",
        "SELECT avg FROM metrics_5m WHERE metric_id = 'a' AND window_end >= NOW()",
        "SELECT avg FROM metrics_5m WHERE metric_id = 'a' AND window_start >= ?",
        "SELECT avg FROM metrics_5m WHERE metric_id = 'a' AND window_start >= avg",
        "SELECT avg FROM metrics_5m WHERE metric_id = 'a' ORDER BY timestamp",
        "SELECT avg FROM metrics WHERE metric_id = 'a' AND window_start >= NOW()",
        "SELECT avg AS b FROM metrics_5m WHERE metric_id = 'a' ORDER BY b",
        "SELECT value FROM metricsx WHERE metric_id = 'a'",
        "SELECT value FROM (SELECT * FROM metrics) WHERE metric_id = 'a'",
        "SELECT value FROM metrics WHERE metric_id = 'a' UNION ALL SELECT 1",
        "not sql at all",
        "SELECT value FROM metrics TABLESAMPLE 5 ROWS WHERE metric_id = 'a'",
        "SELECT value FROM metrics AS m(metric_id, value) WHERE metric_id = 'a'",
        "SELECT value FROM metrics WHERE metric_id = 'a' ORDER BY timestamp LIMIT 50%",
        "SELECT value AS t, timestamp AS t FROM metrics WHERE metric_id = 'a' ORDER BY t",
    ],
)
def test_other_queries_are_not_series_lookups(sql: str) -> None:
    assert series_lookup(sql) is None


def test_window_lookups_are_recognised_with_their_lower_bound() -> None:
    lookup = series_lookup(
        "SELECT window_start AS bucket, avg FROM metrics_5m WHERE metric_id = ? "
        "AND window_start >= NOW() - INTERVAL '24 hours' - INTERVAL '5 minutes' "
        "ORDER BY bucket DESC LIMIT 10"
    )
    assert lookup is not None
    assert (lookup.table, lookup.columns, lookup.metric_id, lookup.descending, lookup.limit) == (
        "metrics_5m",
        ("window_start", "avg"),
        None,
        True,
        10,
    )
    assert lookup.lower_bound(NOW) == NOW - 24 * HOUR - HOUR // 12
    strict = series_lookup(
        "SELECT * FROM metrics_1h WHERE TIMESTAMPTZ '2027-01-15 08:00:00+00' < window_start "
        "AND metric_id = 'x'"
    )
    assert strict is not None
    assert strict.metric_id == "x"
    assert strict.lower_bound(NOW) == 1_800_000_000_000_001
    unbounded = series_lookup("SELECT * FROM metrics_1d WHERE metric_id = 'x'")
    assert unbounded is not None
    assert unbounded.lower_bound(NOW) is None


def test_sample_lookups_take_a_lower_bound_on_timestamp() -> None:
    lookup = series_lookup(
        "SELECT timestamp, value FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour' "
        "AND metric_id = ? ORDER BY timestamp"
    )
    assert lookup is not None
    assert lookup.table == "metrics"
    assert lookup.lower_bound(NOW) == NOW - HOUR
    # An upper bound is not a lower bound: DuckDB's business.
    assert (
        series_lookup("SELECT value FROM metrics WHERE metric_id = 'a' AND timestamp < NOW()")
        is None
    )
    strict = series_lookup("SELECT value FROM metrics WHERE NOW() < timestamp AND metric_id = 'a'")
    assert strict is not None
    assert strict.lower_bound(NOW) == NOW + 1
    assert (
        series_lookup(
            "SELECT value FROM metrics WHERE metric_id = 'a' AND timestamp >= NOW() "
            "AND timestamp >= NOW()"
        )
        is None
    )  # one bound only


# -- grouped lookups (CACHE-11) ------------------------------------------------------------------

SEED = """SELECT
    metric_id,
    COUNT(*) as samples,
    AVG(value_running_window_avg) as avg_value
FROM metrics
WHERE timestamp >= NOW() - INTERVAL '1 hour'
GROUP BY metric_id
ORDER BY avg_value DESC"""


def test_the_seed_example_is_a_grouped_lookup() -> None:
    lookup = grouped_lookup(SEED)
    assert lookup is not None
    assert lookup.items == (
        None,
        Aggregate("count", None),
        Aggregate("avg", "value_running_window_avg"),
    )
    assert lookup.order == ((2, True, False),)
    assert lookup.limit is None
    assert lookup.lower_bound(NOW) == NOW - HOUR


@pytest.mark.parametrize(
    ("sql", "items", "order", "limit", "bound"),
    [
        (
            "SELECT metric_id, count(value), sum(value), min(timestamp), max(timestamp) "
            "FROM metrics GROUP BY metric_id",
            (
                None,
                Aggregate("count", "value"),
                Aggregate("sum", "value"),
                Aggregate("min", "timestamp"),
                Aggregate("max", "timestamp"),
            ),
            (),
            None,
            None,
        ),
        (  # positions in GROUP BY and ORDER BY; an alias of the table; a strict bound
            "SELECT m.metric_id AS id, MAX(m.value) AS top FROM metrics m "
            "WHERE m.timestamp > NOW() GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
            (None, Aggregate("max", "value")),
            ((1, True, False), (None, False, False)),
            5,
            NOW + 1,
        ),
        (  # metric_id not selected, ORDER BY an aggregate and metric_id
            "SELECT avg(value_running_window_count), sum(value_running_window_sum) "
            "FROM metrics GROUP BY metric_id "
            "ORDER BY avg(value_running_window_count) NULLS FIRST, metric_id DESC",
            None,
            ((0, False, True), (None, True, False)),
            None,
            None,
        ),
        (  # the bound written the other way round, as a literal
            "SELECT metric_id, count(*) AS n FROM metrics "
            "WHERE TIMESTAMPTZ '2027-01-15 08:00:00+00' <= timestamp GROUP BY metric_id "
            "ORDER BY n",
            (None, Aggregate("count", None)),
            ((1, False, False),),
            None,
            NOW,  # the literal is that instant
        ),
    ],
)
def test_grouped_lookups_are_recognised(
    sql: str,
    items: tuple[Aggregate | None, ...] | None,
    order: tuple[tuple[int | None, bool, bool], ...],
    limit: int | None,
    bound: int | None,
) -> None:
    lookup = grouped_lookup(sql)
    assert lookup is not None
    if items is not None:
        assert lookup.items == items
    assert lookup.order == order
    assert lookup.limit == limit
    assert lookup.lower_bound(NOW) == bound


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT metric_id, count(*) FROM metrics",  # no GROUP BY
        "SELECT metric_id FROM metrics GROUP BY metric_id",  # no aggregate
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id, value",
        "SELECT metric_id, count(*) FROM metrics GROUP BY value",
        "SELECT host, count(*) FROM metrics GROUP BY host",
        "SELECT metric_id, count(*) FROM metrics GROUP BY 2",  # not the metric_id column
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id HAVING count(*) > 1",
        "SELECT DISTINCT metric_id, count(*) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, count(DISTINCT value) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, sum(value) FILTER (WHERE value > 0) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, sum(value) + 1 FROM metrics GROUP BY metric_id",
        "SELECT metric_id, sum(value * 2) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, median(value) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, min(value, 3) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, sum(timestamp) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, avg(timestamp) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, sum(host) FROM metrics GROUP BY metric_id",  # a label
        "SELECT metric_id, max(metric_id) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics WHERE metric_id = 'a' GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics WHERE timestamp < NOW() GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics WHERE timestamp >= NOW() AND value > 0 "
        "GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics WHERE timestamp >= ? GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics WHERE timestamp >= value GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics_5m GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM other.metrics GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM (SELECT * FROM metrics) GROUP BY metric_id",
        "SELECT m.metric_id, count(*) FROM metrics m JOIN hosts h ON true GROUP BY m.metric_id",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id ORDER BY value",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id ORDER BY sum(value)",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id ORDER BY 3",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id LIMIT ?",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id LIMIT 2 OFFSET 1",
        # Aliases that shadow a column name could change what ORDER BY means.
        "SELECT metric_id, avg(value) AS value FROM metrics GROUP BY metric_id ORDER BY value",
        "SELECT metric_id, count(*) AS metric_id FROM metrics GROUP BY 1",
        "SELECT metric_id AS timestamp, count(*) FROM metrics GROUP BY 1",
        "WITH x AS (SELECT 1) SELECT metric_id, count(*) FROM metrics GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id UNION ALL SELECT 'a', 1",
        "SELECT metric_id, count(*) OVER () FROM metrics GROUP BY metric_id",
        "SELECT metric_id, count(*) FROM metrics GROUP BY metric_id QUALIFY true",
        "SELECT metric_id, count(*) FROM metrics GROUP BY ROLLUP (metric_id)",
        "not sql at all (",
        # Found by review: each of these was taken, and answered otherwise than DuckDB.
        "SELECT count(*) FROM metrics GROUP BY ALL",  # one group, not one per metric
        "SELECT metric_id, count(*) FROM metrics TABLESAMPLE 5 ROWS GROUP BY 1",
        "SELECT metric_id, sum(value) FROM metrics AS m(metric_id, timestamp, "
        "value_running_window_sum, value) GROUP BY 1",
        "SELECT metric_id, count(*) AS c FROM metrics GROUP BY 1 ORDER BY c LIMIT 50%",
        "SELECT metric_id, count(*) AS c FROM metrics GROUP BY 1 ORDER BY c LIMIT 2 PERCENT",
        "SELECT metric_id AS n, count(*) AS n FROM metrics GROUP BY 1 ORDER BY n",
    ],
)
def test_other_queries_are_not_grouped_lookups(sql: str) -> None:
    assert grouped_lookup(sql) is None


def test_bounds_that_cannot_be_worked_out_leave_lookups_to_duckdb() -> None:
    # Recognised shapes, but the bound moves the instant (a cast to DATE truncates NOW()):
    # the lookups have no bound to use, so the service asks DuckDB.
    point = series_lookup(
        "SELECT value FROM metrics WHERE metric_id = 'a' AND timestamp >= NOW()::DATE"
    )
    grouped = grouped_lookup(
        "SELECT metric_id, count(*) FROM metrics WHERE timestamp >= NOW()::DATE GROUP BY 1"
    )
    assert point is not None
    assert grouped is not None
    assert point.lower_bound(NOW) is None
    assert grouped.lower_bound(NOW) is None


DASHBOARD_RAW = (
    "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, avg(value) AS avg_value "
    "FROM metrics WHERE metric_id = 'metric_0042' AND timestamp >= NOW() - INTERVAL '24 hours' "
    "GROUP BY bucket ORDER BY bucket"
)


def test_a_dashboard_over_raw_samples_is_a_bucketed_lookup() -> None:
    lookup = grouped_lookup(DASHBOARD_RAW)
    assert lookup is not None
    assert lookup.bucket_us == 5 * 60_000_000
    assert lookup.metric_id == "metric_0042"
    assert lookup.items == (None, Aggregate("avg", "value"))
    assert lookup.order == ((None, False, False),)
    assert lookup.lower_bound(NOW) == NOW - 24 * HOUR


@pytest.mark.parametrize(
    ("sql", "width", "metric"),
    [
        (
            "SELECT count(*), time_bucket(INTERVAL 1 HOUR, m.timestamp) FROM metrics m "
            "WHERE ? = metric_id GROUP BY 2 ORDER BY 2 DESC LIMIT 24",
            HOUR,
            None,
        ),
        (
            "SELECT time_bucket(INTERVAL '7 minutes', timestamp), max(value) FROM metrics "
            "WHERE metric_id = 'a' GROUP BY time_bucket(INTERVAL '7 minutes', timestamp)",
            7 * 60_000_000,
            "a",
        ),
        (
            "SELECT time_bucket(INTERVAL '1 week', timestamp) AS w, sum(value) FROM metrics "
            "WHERE metric_id = 'a' AND timestamp > NOW() GROUP BY ALL",
            7 * 24 * HOUR,
            "a",
        ),
    ],
)
def test_bucketed_lookups_are_recognised(sql: str, width: int, metric: str | None) -> None:
    lookup = grouped_lookup(sql)
    assert lookup is not None
    assert lookup.bucket_us == width
    assert lookup.metric_id == metric


@pytest.mark.parametrize(
    "sql",
    [
        # every metric's buckets together
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) b, count(*) FROM metrics GROUP BY b",
        # an origin or offset, months, a zero width, another column
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp, TIMESTAMPTZ '2000-01-01') b, "
        "count(*) FROM metrics WHERE metric_id = 'a' GROUP BY b",
        "SELECT time_bucket(INTERVAL '1 month', timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' GROUP BY b",
        "SELECT time_bucket(INTERVAL '0 minutes', timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' GROUP BY b",
        "SELECT time_bucket(INTERVAL '5 minutes', last_timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' GROUP BY b",
        # metric_id and a bucket, two widths, a bucket named like a column
        "SELECT metric_id, time_bucket(INTERVAL '5 minutes', timestamp) b, count(*) "
        "FROM metrics WHERE metric_id = 'a' GROUP BY ALL",
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) b, "
        "time_bucket(INTERVAL '10 minutes', timestamp) c, count(*) FROM metrics "
        "WHERE metric_id = 'a' GROUP BY ALL",
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS timestamp, count(*) "
        "FROM metrics WHERE metric_id = 'a' GROUP BY 1",
        # grouped by something else, other conditions, a metric filter on the per-metric shape
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' GROUP BY metric_id",
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' AND value > 0 GROUP BY b",
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) b, count(*) FROM metrics "
        "WHERE metric_id = 'a' AND metric_id = 'b' GROUP BY b",
        "SELECT metric_id, count(*) FROM metrics WHERE metric_id = 'a' GROUP BY 1",
    ],
)
def test_other_queries_are_not_bucketed_lookups(sql: str) -> None:
    assert grouped_lookup(sql) is None
