"""Fixtures of the benchmarks: servers in their own processes, the ingested data set, clients.

Every server runs in a child process so that the client being measured does not share a GIL
with it; each is stopped by its fixture's teardown, also when a test fails. At the end of the
session every :class:`~_support.Report` is printed and written to ``perf/results/<name>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql_dbapi
import pytest
from _support import (
    HOUR_US,
    Dataset,
    FloorServer,
    IngestReport,
    Report,
    format_summary,
    generate_dataset,
    ingest,
    spawn_floor_server,
    summarize,
)
from pyarrow import flight

from conformance.process import ServerProcess, spawn_server

RESULTS_DIR = Path(__file__).with_name("results")

#: The data set of the issue: 1,000,000 samples of 1,000 metrics over the last 24 hours,
#: ingested in time order in batches of 65,536 rows.
DATASET_ROWS = 1_000_000
DATASET_METRICS = 1_000
DATASET_SPAN_US = 24 * HOUR_US
DATASET_SEED = 20240601
INGEST_BATCH_ROWS = 65_536

_REPORTS = pytest.StashKey[dict[str, Report]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REPORTS] = {}


@pytest.fixture(scope="session")
def reports(pytestconfig: pytest.Config) -> dict[str, Report]:
    """Reports by name; a benchmark module opens its own (see ``test_query_latency.report``)."""
    return pytestconfig.stash[_REPORTS]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for report in config.stash.get(_REPORTS, {}).values():
        summary = summarize(report)
        terminalreporter.section(f"hyprstream benchmark: {report.name}")
        for line in format_summary(summary):
            terminalreporter.write_line(line)
        if report.measurements:
            RESULTS_DIR.mkdir(exist_ok=True)
            path = RESULTS_DIR / f"{report.name}.json"
            path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            terminalreporter.write_line(f"written to {path}")


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hyprstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``hyprstream --engine memory`` in a child process."""
    server = spawn_server(
        # All 24 hours of samples stay hot for the run (the default horizon is 24 h).
        args=["--engine", "memory", "--log-level", "warning", "--cache-max-duration", "48h"],
        data_dir=tmp_path_factory.mktemp("hyprstream"),
    )
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"hyprstream exited with {code}:\n{server.text()}"


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start ``hyprstream`` child processes with the given arguments (each in a data
    directory of its own); all are killed at teardown."""
    procs: list[ServerProcess] = []

    def make(*args: str) -> ServerProcess:
        proc = spawn_server(
            args=[*args, "--log-level", "warning"], data_dir=tmp_path / f"d{len(procs)}"
        )
        procs.append(proc)
        return proc

    yield make
    for p in procs:
        p.kill()


@pytest.fixture(scope="session")
def raw_floor_server() -> Iterator[FloorServer]:
    server = spawn_floor_server("raw")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sql_floor_server() -> Iterator[FloorServer]:
    server = spawn_floor_server("sql")
    try:
        yield server
    finally:
        server.stop()


# -- the data ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return generate_dataset(
        rows=DATASET_ROWS, metrics=DATASET_METRICS, span_us=DATASET_SPAN_US, seed=DATASET_SEED
    )


@pytest.fixture(scope="session")
def ingested(hyprstream_server: ServerProcess, dataset: Dataset) -> IngestReport:
    """The data set, ingested once per session into ``hyprstream_server``."""
    report = ingest(hyprstream_server.uri, dataset, batch_rows=INGEST_BATCH_ROWS)
    assert report.accepted == dataset.rows, report
    assert report.late == 0, report  # in time order: nothing is late
    return report


# -- clients ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hyprstream_flight(hyprstream_server: ServerProcess) -> Iterator[flight.FlightClient]:
    with flight.connect(hyprstream_server.uri) as client:
        yield client


@pytest.fixture(scope="session")
def raw_floor_flight(raw_floor_server: FloorServer) -> Iterator[flight.FlightClient]:
    with flight.connect(raw_floor_server.uri) as client:
        yield client


@pytest.fixture(scope="session")
def hyprstream_adbc(hyprstream_server: ServerProcess) -> Iterator[Any]:
    with flightsql_dbapi.connect(hyprstream_server.uri, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def sql_floor_adbc(sql_floor_server: FloorServer) -> Iterator[Any]:
    with flightsql_dbapi.connect(sql_floor_server.uri, autocommit=True) as conn:
        yield conn


@pytest.fixture
def hyprstream_cursor(hyprstream_adbc: Any) -> Iterator[Any]:
    """A fresh cursor per test, reused for all its rounds (so its prepared statement is)."""
    with hyprstream_adbc.cursor() as cursor:
        yield cursor


@pytest.fixture
def sql_floor_cursor(sql_floor_adbc: Any) -> Iterator[Any]:
    with sql_floor_adbc.cursor() as cursor:
        yield cursor
