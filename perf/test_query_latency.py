"""Query latency of hyprstream over Flight SQL, against the floors of the transport.

Two queries over the issue's data set (1,000,000 samples of 1,000 metrics over 24 hours):
the seed example (the README's aggregate over the last hour) and a point query (one metric's
~1,000 samples), each through the ADBC Flight SQL DB-API driver and through raw
``pyarrow.flight`` calls. The floors are the same client calls against trivial servers that
answer one constant row, so the ratios show what hyprstream adds on top of the transport.

Timings are never asserted: the targets are printed as MET / MISSED at the end of the session
and written to ``perf/results/query_latency.json``. Results are checked for correctness before
and after each timed run. Run with (see perf/README.md)::

    pytest perf/test_query_latency.py --benchmark-enable -p no:cacheprovider -s
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _support import (
    HOUR_US,
    SEED_EXAMPLE_SQL,
    TIMESTAMP_TYPE,
    VALUE_HIGH,
    VALUE_LOW,
    Dataset,
    IngestReport,
    Ratio,
    Report,
    Target,
    adbc_query,
    bracketed,
    flight_query,
    ingest_info,
    measure,
    statement_descriptor,
)
from pyarrow import flight

#: Timed rounds per measurement (one call each), after untimed warm-up rounds.
ROUNDS = 1000
WARMUP_ROUNDS = 100

POINT_METRIC = "metric_0042"
_POINT_SQL = (
    "SELECT timestamp, value, value_running_window_avg FROM metrics "
    "WHERE metric_id = {} ORDER BY timestamp"
)
#: The point query with a bound parameter (ADBC) and with the literal inlined (raw Flight).
POINT_SQL_PARAM = _POINT_SQL.format("?")
POINT_SQL_LITERAL = _POINT_SQL.format(f"'{POINT_METRIC}'")

#: The floors' constant answer (perf/_floor_server.py).
FLOOR_ROW = [{"one": 1}]

RAW_FLOOR = "raw_floor"
ADBC_FLOOR = "adbc_floor"
ADBC_FLOOR_PARAM = "adbc_floor_param"
RAW_SEED = "raw_seed_example"
ADBC_SEED = "adbc_seed_example"
RAW_POINT = "raw_point_query"
ADBC_POINT = "adbc_point_query"

RATIOS = (
    Ratio("point query ADBC / ADBC floor (1 parameter)", ADBC_POINT, ADBC_FLOOR_PARAM),
    Ratio("point query raw / raw Flight floor", RAW_POINT, RAW_FLOOR),
    Ratio("seed example ADBC / ADBC floor", ADBC_SEED, ADBC_FLOOR),
    Ratio("seed example raw / raw Flight floor", RAW_SEED, RAW_FLOOR),
)
TARGETS = (
    Target(
        "point query ADBC p50 within 1.5x of the ADBC floor",
        "point query ADBC / ADBC floor (1 parameter)",
        1.5,
        "x",
    ),
    Target(
        "point query raw p50 within 3x of the raw Flight floor",
        "point query raw / raw Flight floor",
        3.0,
        "x",
    ),
    Target("seed example ADBC p50 at most 5 ms", ADBC_SEED, 5.0, " ms"),
)


@pytest.fixture(scope="module")
def report(reports: dict[str, Report], dataset: Dataset, ingested: IngestReport) -> Report:
    opened = Report("query_latency", ratios=RATIOS, targets=TARGETS)
    opened.info["dataset"] = {
        "rows": dataset.rows,
        "metrics": dataset.metrics,
        "span_hours": dataset.span_us / HOUR_US,
        "in_time_order": True,
    }
    opened.info["ingest"] = ingest_info(ingested)
    opened.info["rounds"] = {"timed": ROUNDS, "warmup": WARMUP_ROUNDS}
    reports[opened.name] = opened
    return opened


def _measure(benchmark: Any, report: Report, name: str, description: str, call: Any) -> pa.Table:
    return measure(
        benchmark, report, name, description, call, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS
    )


# -- correctness checks -------------------------------------------------------------------------


def check_point_query(table: pa.Table, dataset: Dataset) -> None:
    """Exactly the generated samples of POINT_METRIC, in timestamp order."""
    assert table.column_names == ["timestamp", "value", "value_running_window_avg"]
    assert table.schema.field("timestamp").type == TIMESTAMP_TYPE
    expected_ts, expected_values = dataset.samples_of(POINT_METRIC)
    assert table.num_rows == len(expected_ts) > 0
    ts = table["timestamp"].combine_chunks().cast(pa.int64()).to_numpy()
    values = table["value"].to_numpy()
    assert np.all(np.diff(ts) >= 0), "not ordered by timestamp"
    order = np.lexsort((values, ts))
    np.testing.assert_array_equal(ts[order], expected_ts)
    np.testing.assert_array_equal(values[order], expected_values)
    assert table["value_running_window_avg"].null_count == 0


def check_seed_example(table: pa.Table, dataset: Dataset, before_us: int, after_us: int) -> None:
    """Per-metric counts of the last hour, for a NOW() between ``before_us`` and ``after_us``.

    The window start moves with NOW(): a metric's count can be no larger than the count since
    ``before_us - 1h`` and no smaller than the count since ``after_us - 1h``.
    """
    assert table.column_names == ["metric_id", "samples", "avg_value"]
    assert 0 < table.num_rows <= dataset.metrics
    most = dataset.counts_since(before_us - HOUR_US)
    least = dataset.counts_since(after_us - HOUR_US)
    names = dataset.names.to_pylist()
    codes = np.array([names.index(m) for m in table["metric_id"].to_pylist()])
    assert len(set(codes.tolist())) == table.num_rows, "a metric appears twice"
    samples = table["samples"].to_numpy()
    assert np.all(least[codes] <= samples), "fewer samples than in the last hour"
    assert np.all(samples <= most[codes]), "more samples than in the last hour"
    # Metrics left out must have had no sample in the window.
    missing = np.setdiff1d(np.arange(dataset.metrics), codes)
    assert np.all(least[missing] == 0)
    assert least.sum() <= samples.sum() <= most.sum()
    avg = table["avg_value"].to_numpy()
    assert not np.isnan(avg).any()
    assert np.all(np.diff(avg) <= 0), "not ordered by avg_value DESC"
    assert np.all((avg >= VALUE_LOW) & (avg <= VALUE_HIGH))


def check_seed_call(call: Any, dataset: Dataset) -> None:
    before, table, after = bracketed(call)
    check_seed_example(table, dataset, before, after)


def check_floor(table: pa.Table) -> None:
    assert table.to_pylist() == FLOOR_ROW


# -- floors -------------------------------------------------------------------------------------


@pytest.mark.benchmark(group="raw flight")
def test_raw_floor(benchmark: Any, report: Report, raw_floor_flight: flight.FlightClient) -> None:
    """GetFlightInfo + DoGet against a trivial Flight server (one constant row)."""
    descriptor = statement_descriptor(POINT_SQL_LITERAL)  # same request size as the point query
    table = _measure(
        benchmark,
        report,
        RAW_FLOOR,
        "raw pyarrow.flight GetFlightInfo + DoGet, trivial server, one constant row",
        lambda: flight_query(raw_floor_flight, descriptor),
    )
    check_floor(table)


@pytest.mark.benchmark(group="adbc")
def test_adbc_floor(benchmark: Any, report: Report, sql_floor_cursor: Any) -> None:
    """The seed example's call shape (no parameter) against a trivial Flight SQL server."""
    table = _measure(
        benchmark,
        report,
        ADBC_FLOOR,
        "ADBC execute + fetch_arrow_table, no parameter, trivial Flight SQL server",
        lambda: adbc_query(sql_floor_cursor, SEED_EXAMPLE_SQL),
    )
    check_floor(table)


@pytest.mark.benchmark(group="adbc")
def test_adbc_floor_param(benchmark: Any, report: Report, sql_floor_cursor: Any) -> None:
    """The point query's call shape (one bound parameter) against a trivial Flight SQL server."""
    table = _measure(
        benchmark,
        report,
        ADBC_FLOOR_PARAM,
        "ADBC execute + fetch_arrow_table, one ? parameter, trivial Flight SQL server",
        lambda: adbc_query(sql_floor_cursor, POINT_SQL_PARAM, [POINT_METRIC]),
    )
    check_floor(table)


# -- hyprstream ---------------------------------------------------------------------------------


@pytest.mark.benchmark(group="raw flight")
def test_raw_seed_example(
    benchmark: Any, report: Report, dataset: Dataset, hyprstream_flight: flight.FlightClient
) -> None:
    descriptor = statement_descriptor(SEED_EXAMPLE_SQL)

    def call() -> pa.Table:
        return flight_query(hyprstream_flight, descriptor)

    check_seed_call(call, dataset)
    _measure(
        benchmark,
        report,
        RAW_SEED,
        "seed example, raw pyarrow.flight CommandStatementQuery GetFlightInfo + DoGet",
        call,
    )
    check_seed_call(call, dataset)


@pytest.mark.benchmark(group="adbc")
def test_adbc_seed_example(
    benchmark: Any, report: Report, dataset: Dataset, hyprstream_cursor: Any
) -> None:
    def call() -> pa.Table:
        return adbc_query(hyprstream_cursor, SEED_EXAMPLE_SQL)

    check_seed_call(call, dataset)
    _measure(
        benchmark,
        report,
        ADBC_SEED,
        "seed example, ADBC execute + fetch_arrow_table (prepared statement reused)",
        call,
    )
    check_seed_call(call, dataset)


@pytest.mark.benchmark(group="raw flight")
def test_raw_point_query(
    benchmark: Any, report: Report, dataset: Dataset, hyprstream_flight: flight.FlightClient
) -> None:
    descriptor = statement_descriptor(POINT_SQL_LITERAL)

    def call() -> pa.Table:
        return flight_query(hyprstream_flight, descriptor)

    check_point_query(call(), dataset)
    table = _measure(
        benchmark,
        report,
        RAW_POINT,
        f"point query ({POINT_METRIC} inlined), raw pyarrow.flight GetFlightInfo + DoGet",
        call,
    )
    check_point_query(table, dataset)


@pytest.mark.benchmark(group="adbc")
def test_adbc_point_query(
    benchmark: Any, report: Report, dataset: Dataset, hyprstream_cursor: Any
) -> None:
    def call() -> pa.Table:
        return adbc_query(hyprstream_cursor, POINT_SQL_PARAM, [POINT_METRIC])

    check_point_query(call(), dataset)
    table = _measure(
        benchmark,
        report,
        ADBC_POINT,
        f"point query (? = {POINT_METRIC}), ADBC execute + fetch_arrow_table "
        "(prepared statement reused)",
        call,
    )
    check_point_query(table, dataset)
