"""Write-through to a real PostgreSQL, read-through, expiry, restart and credentials (BE-*,
CACHE-*, CFG-4, CFG-6), with hyprstream running as a separate process like in production."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest
from pyarrow import flight

from conformance.process import ServerProcess, spawn_server

from .conftest import connect_adbc, put, query
from .postgres import PostgresServer, with_password
from .postgres import fetch as pg_rows

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TS = pa.timestamp("us", tz="UTC")


def samples(metric: str, times: list[dt.datetime], values: list[float]) -> pa.Table:
    return pa.table(
        {"metric_id": [metric] * len(times), "timestamp": pa.array(times, TS), "value": values}
    )


def without_password(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def hyprstream_pg(database: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with spawn_server(
        args=["--engine", "adbc", "--engine-connection", database], data_dir=tmp_path / "data"
    ) as proc:
        yield proc


def test_write_through_lands_in_postgresql(hyprstream_pg: ServerProcess, database: str) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    table = samples("cpu", [now - dt.timedelta(minutes=m) for m in (3, 2, 1)], [1.0, 2.0, 3.0])
    table = table.append_column("host", pa.array(["a", "b", "a"]))
    assert put(hyprstream_pg.port, table) == [{"accepted": 3, "late": 0}]
    # Acknowledged means committed: PostgreSQL has the rows, with their running columns.
    rows = pg_rows(
        database,
        'SELECT metric_id, "timestamp", value, value_running_window_count, host FROM metrics '
        'ORDER BY "timestamp"',
    )
    assert [(r[0], r[2], r[4]) for r in rows] == [("cpu", 1.0, "a"), ("cpu", 2.0, "b"), ("cpu", 3.0, "a")]
    assert all(r[3] is not None for r in rows)
    indexes = pg_rows(database, "SELECT indexname FROM pg_indexes WHERE tablename = 'metrics'")
    assert ("metrics_metric_ts",) in indexes


def test_backend_down_gives_unavailable_and_no_divergence(
    postgres: PostgresServer, hyprstream_pg: ServerProcess, database: str
) -> None:
    if not postgres.controllable:
        pytest.skip("the external PostgreSQL server cannot be stopped by the tests")
    now = dt.datetime.now(dt.UTC)
    put(hyprstream_pg.port, samples("cpu", [now], [1.0]))
    before_hot = query(hyprstream_pg.port, "SELECT count(*) AS n FROM metrics").to_pylist()
    before_windows = query(hyprstream_pg.port, "SELECT * FROM metric_windows ORDER BY 1, 2, 3")
    postgres.stop()
    try:
        with pytest.raises(flight.FlightUnavailableError, match=r"did not commit the batch|cannot connect"):
            put(hyprstream_pg.port, samples("cpu", [now + dt.timedelta(seconds=1)], [99.0]))
        # Still serving, and nothing of the refused batch is visible.
        assert query(hyprstream_pg.port, "SELECT count(*) AS n FROM metrics").to_pylist() == before_hot
        assert query(hyprstream_pg.port, "SELECT * FROM metric_windows ORDER BY 1, 2, 3").equals(before_windows)
    finally:
        postgres.start()
    # The backend is back: ingest resumes and both stores agree.
    put(hyprstream_pg.port, samples("cpu", [now + dt.timedelta(seconds=2)], [5.0]))
    hot = query(hyprstream_pg.port, "SELECT value FROM metrics ORDER BY timestamp").column("value").to_pylist()
    stored = [r[0] for r in pg_rows(database, 'SELECT value FROM metrics ORDER BY "timestamp"')]
    assert hot == stored == [1.0, 5.0]


def test_killing_the_backend_during_ingest_loses_no_acknowledged_row(
    postgres: PostgresServer, hyprstream_pg: ServerProcess, database: str
) -> None:
    if not postgres.controllable:
        pytest.skip("the external PostgreSQL server cannot be stopped by the tests")
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)
    acknowledged: list[int] = []
    failures: list[BaseException] = []

    def ingest() -> None:
        for i in range(400):
            try:
                put(hyprstream_pg.port, samples("load", [base + dt.timedelta(seconds=i)], [float(i)]))
                acknowledged.append(i)
            except flight.FlightUnavailableError as exc:
                failures.append(exc)
            time.sleep(0.005)

    thread = threading.Thread(target=ingest)
    thread.start()
    time.sleep(0.5)
    postgres.stop()
    time.sleep(0.5)
    postgres.start()
    thread.join()
    assert failures, "the backend outage was not noticed"
    stored = {int(r[0]) for r in pg_rows(database, "SELECT value FROM metrics WHERE metric_id = 'load'")}
    hot = set(
        int(v) for v in query(hyprstream_pg.port, "SELECT value FROM metrics WHERE metric_id = 'load'")
        .column("value").to_pylist()
    )
    assert set(acknowledged) <= stored  # every acknowledged row is in PostgreSQL
    assert hot == stored  # and the hot cache agrees with it


def test_restart_answers_the_same(database: str, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # 30m windows are kept longer than warm start rebuilds (BE-8): the backend keeps them.
    # The 5m and 1h windows are rebuilt from the samples.
    config = tmp_path / "hyprstream.toml"
    config.write_text('[windows]\nretention = { "30m" = "72h" }\n')
    args = ["--engine", "adbc", "--engine-connection", database, "--config", str(config)]
    checks = [
        "SELECT * FROM metrics ORDER BY metric_id, timestamp",
        'SELECT metric_id, "window", window_start, count, min, max, last_value FROM metric_windows '
        'ORDER BY 1, 2, 3',
    ]
    with spawn_server(args=args, data_dir=tmp_path / "a") as first:
        minute = dt.timedelta(minutes=1)
        # Enough stream time that the first windows close and are committed as closed.
        put(first.port, samples("a", [now - 150 * minute + k * 7 * minute for k in range(22)], [float(k) for k in range(22)]))
        put(first.port, samples("b", [now - 5 * minute, now - 4 * minute], [1.0, 2.0]))
        put(first.port, samples("a", [now - 300 * minute], [1e6]))  # late
        before = [query(first.port, q) for q in checks]
        assert first.stop() == 0
    committed = dict(pg_rows(database, 'SELECT "window", count(*) FROM hyprstream_windows WHERE metric_id IS NOT NULL GROUP BY 1'))
    assert committed.get("30m", 0) > 0  # closed windows were committed with their batches
    assert set(committed) <= {"30m", "1d"}  # and only of the sizes kept beyond the rebuild
    # Closed 5m windows (ending before the watermark, an hour behind the newest sample)
    # were served before the restart: after it they are the rebuilt ones.
    ends = [
        r["window_start"] + dt.timedelta(minutes=5)
        for r in before[1].to_pylist()
        if r["window"] == "5m"
    ]
    assert any(end <= now - 60 * dt.timedelta(minutes=1) for end in ends)
    with spawn_server(args=args, data_dir=tmp_path / "b") as second:
        after = [query(second.port, q) for q in checks]
        assert after[0].equals(before[0])
        assert after[1].equals(before[1])


def test_retried_batch_is_applied_once_and_acknowledged_twice(
    hyprstream_pg: ServerProcess, database: str, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    batch = samples("x", [now], [1.0]).to_batches()[0]
    client = flight.connect(hyprstream_pg.uri)

    def send() -> dict[str, object]:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), batch.schema)
        writer.write_with_metadata(batch, pa.py_buffer(json.dumps({"batch_id": "b-1"}).encode()))
        ack = json.loads(reader.read().to_pybytes())
        writer.done_writing()
        writer.close()
        return ack

    assert send() == {"accepted": 1, "late": 0}
    assert send() == {"accepted": 1, "late": 0, "duplicate": True}
    assert pg_rows(database, "SELECT count(*) FROM metrics") == [(1,)]
    assert query(hyprstream_pg.port, "SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 1}]
    # Also after a restart (the id is committed in the backend with the batch).
    hyprstream_pg.stop()
    with spawn_server(args=["--engine", "adbc", "--engine-connection", database], data_dir=tmp_path / "again") as again:
        client = flight.connect(again.uri)
        assert send()["duplicate"] is True
        # The descriptor form: ['metrics', prefix] numbers the batches of the stream.
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics", "stream-7"), batch.schema)
        writer.write_batch(batch)
        assert json.loads(reader.read().to_pybytes()) == {"accepted": 1, "late": 0}
        writer.done_writing()
        writer.close()
        assert pg_rows(database, "SELECT batch_id FROM hyprstream_batches ORDER BY 1") == [("b-1",), ("stream-7:0",)]


def test_a_constraint_failure_is_not_taken_for_a_duplicate(
    hyprstream_pg: ServerProcess, database: str
) -> None:
    """BE-6: only a stored batch id makes a batch a duplicate; another unique violation (here an
    operator's own index) answers UNAVAILABLE and is never acknowledged as committed."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    batch = samples("uniq", [now], [1.0]).to_batches()[0]
    with pg.connect(database) as conn, conn.cursor() as cur:
        cur.execute('CREATE UNIQUE INDEX metrics_one_sample ON metrics (metric_id, "timestamp")')
        conn.commit()
    client = flight.connect(hyprstream_pg.uri)

    def send(batch_id: str) -> dict[str, object]:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), batch.schema)
        writer.write_with_metadata(batch, pa.py_buffer(json.dumps({"batch_id": batch_id}).encode()))
        writer.done_writing()
        try:
            return dict(json.loads(reader.read().to_pybytes()))
        finally:
            writer.close()

    assert send("u-1") == {"accepted": 1, "late": 0}
    with pytest.raises(flight.FlightUnavailableError, match="did not commit the batch"):
        send("u-2")
    assert pg_rows(database, "SELECT batch_id FROM hyprstream_batches") == [("u-1",)]
    got = query(hyprstream_pg.port, "SELECT count(*) AS n FROM metrics WHERE metric_id = 'uniq'")
    assert got.to_pylist() == [{"n": 1}]


def test_unsigned_labels_reach_postgresql(hyprstream_pg: ServerProcess, database: str) -> None:
    """DM-5: PostgreSQL has no unsigned integers; such labels are stored signed, widened."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    table = samples("u", [now, now + dt.timedelta(seconds=1)], [1.0, 2.0])
    table = table.append_column("port", pa.array([443, 65535], pa.uint16()))
    writer, reader = flight.connect(hyprstream_pg.uri).do_put(
        flight.FlightDescriptor.for_path("metrics"), table.schema
    )
    writer.write_table(table)
    writer.done_writing()
    assert json.loads(reader.read().to_pybytes())["accepted"] == 2
    writer.close()
    assert pg_rows(database, "SELECT port FROM metrics ORDER BY port") == [(443,), (65535,)]
    got = query(hyprstream_pg.port, "SELECT port FROM metrics ORDER BY port")
    assert got.column("port").type == pa.int32()


def test_read_through_of_a_backend_only_table(hyprstream_pg: ServerProcess, database: str) -> None:
    with pg.connect(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE hosts (host TEXT PRIMARY KEY, region TEXT)")
        cur.execute("INSERT INTO hosts VALUES ('a', 'eu'), ('b', 'us')")
        conn.commit()
    sql = "SELECT host, region FROM hosts WHERE region = ? ORDER BY host"
    assert query(hyprstream_pg.port, sql, ["eu"]).to_pylist() == [{"host": "a", "region": "eu"}]
    with pytest.raises(Exception, match="no table named nowhere"):
        query(hyprstream_pg.port, "SELECT * FROM nowhere")


def test_read_through_results_are_cached_and_invalidated(database: str, tmp_path: Path) -> None:
    with spawn_server(
        args=["--engine", "adbc", "--engine-connection", database, "--cache-ttl", "60s"],
        data_dir=tmp_path / "d",
    ) as proc:
        with pg.connect(database) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE notes (n INTEGER)")
            cur.execute("INSERT INTO notes VALUES (1)")
            conn.commit()
        assert query(proc.port, "SELECT count(*) AS c FROM notes").to_pylist() == [{"c": 1}]
        with pg.connect(database) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (2)")
            conn.commit()
        # Served from the cache within its TTL (the change went around hyprstream).
        assert query(proc.port, "SELECT count(*) AS c FROM notes").to_pylist() == [{"c": 1}]
    with spawn_server(
        args=["--engine", "adbc", "--engine-connection", database, "--cache-ttl", "1s"],
        data_dir=tmp_path / "e",
    ) as short:
        assert query(short.port, "SELECT count(*) AS c FROM notes").to_pylist() == [{"c": 2}]
        with pg.connect(database) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO notes VALUES (3)")
            conn.commit()
        time.sleep(1.2)
        assert query(short.port, "SELECT count(*) AS c FROM notes").to_pylist() == [{"c": 3}]  # expired


def test_hot_samples_expire_and_older_queries_read_through(database: str, tmp_path: Path) -> None:
    with spawn_server(
        args=["--engine", "adbc", "--engine-connection", database, "--cache-max-duration", "2h"],
        data_dir=tmp_path / "d",
    ) as proc:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        old = [now - dt.timedelta(hours=5, minutes=m) for m in range(3)]
        put(proc.port, samples("m", old, [1.0, 2.0, 3.0]))
        put(proc.port, samples("m", [now], [4.0]))  # the eviction check runs at ingest
        time.sleep(0.5)
        # Within the hot horizon: answered by the hot cache.
        recent = query(proc.port, "SELECT value FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour'")
        assert recent.column("value").to_pylist() == [4.0]
        # Older than the horizon: the hot cache no longer holds them; PostgreSQL does.
        everything = query(proc.port, "SELECT value FROM metrics ORDER BY value")
        assert everything.column("value").to_pylist() == [1.0, 2.0, 3.0, 4.0]
        # Ingest invalidates read-through results that read metrics.
        put(proc.port, samples("m", [now + dt.timedelta(seconds=1)], [5.0]))
        everything = query(proc.port, "SELECT value FROM metrics ORDER BY value")
        assert everything.column("value").to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_credentials_precedence_and_secrecy(postgres: PostgresServer, database: str, tmp_path: Path) -> None:
    bare = without_password(database)
    wrong = "not-the-password"
    right = postgres.password

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[ServerProcess | None, str]:
        try:
            proc = spawn_server(args=["--engine", "adbc", "--engine-connection", *args], data_dir=tmp_path / str(time.monotonic_ns()), env=env, timeout=60)
        except RuntimeError as exc:
            return None, str(exc)
        return proc, proc.text()

    # 1. The environment wins over flags and the URI.
    proc, log = start(with_password(database, wrong, user=postgres.user), "--engine-password", wrong,
                      env={"HYPRSTREAM_ENGINE_PASSWORD": right, "HYPRSTREAM_ENGINE_USERNAME": postgres.user})
    assert proc is not None, log
    proc.kill()
    # 2. Flags win over the URI.
    proc, log = start(with_password(database, wrong, user=postgres.user), "--engine-password", right,
                      "--engine-username", postgres.user, env={"HYPRSTREAM_ENGINE_PASSWORD": ""})
    assert proc is not None, log
    proc.kill()
    # 3. The URI's own credentials, when nothing else is given.
    proc, log = start(database, env={"HYPRSTREAM_ENGINE_PASSWORD": ""})
    assert proc is not None, log
    # Nothing shows the password: logs, --help, errors.
    assert right not in proc.text()
    proc.kill()
    # 4. A wrong password from the environment fails, and the error does not echo it.
    proc, log = start(bare, env={"HYPRSTREAM_ENGINE_PASSWORD": "hunter2-secret", "HYPRSTREAM_ENGINE_USERNAME": postgres.user})
    assert proc is None
    assert "cannot connect to the backend" in log
    assert "hunter2-secret" not in log
    assert "authentication" in log


def test_pool_and_connect_timeout_options(database: str, tmp_path: Path) -> None:
    # A listener that accepts connections and never answers: the connect must time out.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="did not accept a connection within 1 s"):
            spawn_server(
                args=["--engine", "adbc", "--engine-connection",
                      f"postgresql://u:secret-pw@127.0.0.1:{port}/db?connect_timeout=1"],
                data_dir=tmp_path / "t",
            )
        assert time.monotonic() - started < 20
    finally:
        silent.close()
    # pool_max and pool_min are hyprstream's: they never reach libpq (which would refuse them).
    with spawn_server(
        args=["--engine", "adbc", "--engine-connection", database + "?pool_min=2&pool_max=3&connect_timeout=5"],
        data_dir=tmp_path / "p",
    ) as proc:
        put(proc.port, samples("p", [dt.datetime.now(dt.UTC)], [1.0]))
        active = pg_rows(
            database,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = '' AND pid <> pg_backend_pid()",
        )[0][0]
        assert 2 <= active <= 3


def test_help_shows_no_secret(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "HYPRSTREAM_ENGINE_PASSWORD": "s3cr3t-in-env"}
    run = subprocess.run([sys.executable, "-m", "hyprstream.cli", "--help"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "--engine-password" in run.stdout  # the help was printed, and shows no secret
    assert "s3cr3t-in-env" not in run.stdout + run.stderr


def test_adbc_client_over_postgres_backend_matches(hyprstream_pg: ServerProcess) -> None:
    now = dt.datetime.now(dt.UTC)
    put(hyprstream_pg.port, samples("z", [now], [7.0]))
    with connect_adbc(hyprstream_pg.port) as conn, conn.cursor() as cur:
        cur.execute("SELECT value FROM metrics WHERE timestamp >= NOW() - INTERVAL '1 hour'")
        assert cur.fetchall() == [(7.0,)]
