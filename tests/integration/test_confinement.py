"""Client SQL is confined (FSQL-20..FSQL-24): every escape is tried through a real client and
refused with a clear error, the server keeps serving, and per-query time and memory limits hold.
Both places client SQL runs are covered: the hot cache, and the backend (client tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import adbc_driver_manager
import pytest
from pyarrow import flight

from conformance.process import ServerProcess, spawn_server
from hyprstream.flightsql._protocol import pack, pb

from .conftest import connect_adbc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def confined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with spawn_server(
        args=["--query-timeout", "2s", "--query-memory", "64MiB", "--memory-limit", "512MiB"],
        data_dir=tmp_path_factory.mktemp("confined"),
    ) as proc:
        yield proc


def run(proc: ServerProcess, sql: str) -> list[tuple[object, ...]]:
    with connect_adbc(proc.port) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


ESCAPES = [
    # (what is tried, statement, words of the refusal)
    ("read a file", "SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("read a file as text", "SELECT * FROM read_text('/etc/hostname')", "file system operations are disabled"),
    ("read parquet", "SELECT * FROM read_parquet('/tmp/x.parquet')", "file system operations are disabled"),
    ("list files", "SELECT * FROM glob('/etc/*')", "file system operations are disabled"),
    ("write a file", "COPY (SELECT 1) TO '/tmp/hyprstream-leak.csv'", "COPY statements are not allowed"),
    ("export the database", "EXPORT DATABASE '/tmp/hyprstream-export'", "EXPORT statements are not allowed"),
    ("install an extension", "INSTALL httpfs", "LOAD statements are not allowed"),
    ("load an extension", "LOAD httpfs", "LOAD statements are not allowed"),
    ("attach a database", "ATTACH '/tmp/hyprstream-other.db' AS other", "ATTACH statements are not allowed"),
    ("attach in memory", "ATTACH ':memory:' AS other", "ATTACH statements are not allowed"),
    ("change a setting", "SET threads = 1", "SET statements are not allowed"),
    ("reset a setting", "RESET threads", "SET statements are not allowed"),
    ("pragma", "PRAGMA enable_profiling", "PRAGMA statements are not allowed"),
    ("call a procedure", "CALL pragma_version()", "CALL statements are not allowed"),
    ("detach", "DETACH memory", "DETACH statements are not allowed"),
    ("read the environment", "SELECT getenv('HOME')", "getenv"),
    ("read secrets", "SELECT * FROM duckdb_secrets()", "file system operations are disabled|not allowed"),
    ("several statements", "SELECT 1; SELECT 2", "exactly one SQL statement"),
    # Through the backend (client tables live there, in the embedded DuckDB file):
    ("create a table from a file", "CREATE TABLE leak AS SELECT * FROM read_csv('/etc/passwd')", "read_csv may not be called"),
    ("insert from a file", "INSERT INTO nowhere SELECT * FROM read_text('/etc/hostname')", "read_text may not be called"),
    ("rewrite hyprstream's tables", "DELETE FROM metrics", "may not touch metrics"),
    ("drop hyprstream's views", "DROP VIEW metrics_5m", "may not touch metrics_5m"),
    ("touch hyprstream's backend tables", "DELETE FROM hyprstream_batches", "may not touch hyprstream_batches"),
    ("a backend function that reads files", "SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
]


@pytest.mark.parametrize(("what", "sql", "words"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escape_is_refused(confined: ServerProcess, what: str, sql: str, words: str) -> None:
    with pytest.raises(adbc_driver_manager.Error, match=words):
        run(confined, sql)
    assert run(confined, "SELECT 1 AS still_serving") == [(1,)]


def test_the_embedded_backend_is_confined_on_its_own(tmp_path: Path) -> None:
    """Defence in depth: even a statement that got past hyprstream's own checks could not read
    files in the embedded backend, which runs with the hot cache's confinement."""
    from hyprstream.backend import AdbcBackend, connection_settings
    from hyprstream.backend._duckdb_cache import WINDOW_STORE_SCHEMA
    from hyprstream.errors import HyprstreamError

    settings = connection_settings(str(tmp_path / "b.duckdb"), options={"driver": "duckdb"})
    backend = AdbcBackend(settings, window_schema=WINDOW_STORE_SCHEMA)
    try:
        with pytest.raises(HyprstreamError, match="file system operations are disabled"):
            backend.execute("CREATE TABLE leak AS SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(HyprstreamError, match=r"lock|locked|configuration"):
            backend.execute("SET enable_external_access = true")
    finally:
        backend.close()


def test_time_limit(confined: ServerProcess) -> None:
    with pytest.raises(adbc_driver_manager.Error, match=r"longer than its time limit \(2 s\)"):
        run(confined, "SELECT count(*) FROM range(1000000000000) a")
    assert run(confined, "SELECT 2 AS after") == [(2,)]
    # The status is DEADLINE_EXCEEDED (FSQL-30), as a raw Flight client sees it.
    client = flight.connect(confined.uri)
    query = pb.CommandStatementQuery(query="SELECT count(*) FROM range(1000000000000) a")
    with pytest.raises(flight.FlightTimedOutError, match="time limit"):
        client.get_flight_info(flight.FlightDescriptor.for_command(pack(query)))
    client.close()


def test_memory_limit(confined: ServerProcess) -> None:
    # An 800 MB list in a server limited to 512 MiB: refused, not the process killed.
    with pytest.raises(adbc_driver_manager.Error, match="exceeded its memory limit"):
        run(confined, "SELECT len(list(a)) FROM range(100000000) t(a)")
    assert run(confined, "SELECT 3 AS after") == [(3,)]
    # ... and the failed query's memory is given back, not pinned in an idle connection.
    (held,) = run(confined, "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()")
    assert held[0] < 64 * 2**20


def test_large_results_arrive_in_client_sized_batches(confined: ServerProcess) -> None:
    # 2 million rows (~16 MB): more than one gRPC message allows, so the server splits them.
    with connect_adbc(confined.port) as conn, conn.cursor() as cur:
        cur.execute("SELECT a, a * 2 AS b FROM range(2000000) t(a)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 2_000_000
    assert table.column("b").to_pylist()[-1] == 2 * 1_999_999


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    for leftover in ("/tmp/hyprstream-leak.csv", "/tmp/hyprstream-export", "/tmp/hyprstream-other.db"):
        assert not Path(leftover).exists(), leftover
