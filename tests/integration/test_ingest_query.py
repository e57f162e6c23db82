"""End to end through real clients: ingest over Arrow Flight, SQL over Flight SQL (ING-*, FSQL-*)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from pyarrow import flight

from conformance.process import spawn_server
from hyprstream.flightsql._protocol import SQL_INFO_SCHEMA, pack, pb

from .conftest import connect_adbc, put, query

# The seed README's "Quick Start with ADBC" example, verbatim.
SEED_EXAMPLE = '''
import adbc_driver_flightsql.dbapi

# Connect to Hyprstream using standard ADBC
conn = adbc_driver_flightsql.dbapi.connect("grpc://localhost:50051")

try:
    cursor = conn.cursor()

    # Query metrics with time windows
    cursor.execute("""
        SELECT
            metric_id,
            COUNT(*) as samples,
            AVG(value_running_window_avg) as avg_value
        FROM metrics
        WHERE timestamp >= NOW() - INTERVAL '1 hour'
        GROUP BY metric_id
        ORDER BY avg_value DESC
    """)

    results = cursor.fetch_arrow_table()
    print(results.to_pandas())

finally:
    cursor.close()
    conn.close()
'''

WINDOW_US = 300_000_000
TS = pa.timestamp("us", tz="UTC")


def samples(metric: str, times: list[dt.datetime], values: list[float], **labels: list[object]) -> pa.Table:
    cols: dict[str, pa.Array] = {
        "metric_id": pa.array([metric] * len(times)),
        "timestamp": pa.array(times, TS),
        "value": pa.array(values, pa.float64()),
    }
    cols.update({k: pa.array(v) for k, v in labels.items()})
    return pa.table(cols)


def us(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


LATENESS_US = 3_600_000_000  # the default allowed lateness


def running_avgs(batches: list[pa.Table]) -> list[tuple[str, dt.datetime, float | None]]:
    """The 'as of ingest' running average of every sample, computed the slow, obvious way.

    A sample more than the allowed lateness behind the newest sample of the batches before
    its own is late: it joins no window and its running columns are NULL.
    """
    seen: list[tuple[str, int, float]] = []  # on-time samples of earlier batches
    newest: int | None = None
    out: list[tuple[str, dt.datetime, float | None]] = []
    for batch in batches:
        rows = list(zip(batch["metric_id"].to_pylist(), batch["timestamp"].to_pylist(),
                        batch["value"].to_pylist(), strict=True))
        on_time = [r for r in rows if newest is None or us(r[1]) >= newest - LATENESS_US]
        for metric, t, _ in rows:
            if (metric, t, _) not in on_time:
                out.append((metric, t, None))
                continue
            window = us(t) // WINDOW_US
            mates = [v for m, ts, v in seen if m == metric and ts // WINDOW_US == window]
            mates += [v for m, ts, v in on_time if m == metric and us(ts) // WINDOW_US == window and ts <= t]
            out.append((metric, t, sum(mates) / len(mates)))
        seen += [(m, us(t), v) for m, t, v in on_time]
        if on_time:
            batch_max = max(us(t) for _, t, _ in on_time)
            newest = batch_max if newest is None else max(newest, batch_max)
    return out


def seed_expectation(batches: list[pa.Table], since: dt.datetime) -> list[tuple[str, int, float]]:
    per_metric: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for metric, t, avg in running_avgs(batches):
        if t >= since:
            counts[metric] += 1
            if avg is not None:
                per_metric[metric].append(avg)
    rows = [(m, counts[m], sum(a) / len(a)) for m, a in per_metric.items()]
    return sorted(rows, key=lambda r: -r[2])


def seed_batches(now: dt.datetime) -> list[pa.Table]:
    minute = dt.timedelta(minutes=1)
    return [
        # Two batches of cpu, overlapping windows, with ties and out-of-order rows.
        samples("cpu", [now - 40 * minute, now - 38 * minute, now - 38 * minute, now - 20 * minute],
                [10.0, 20.0, 30.0, 5.0]),
        samples("cpu", [now - 39 * minute, now - 3 * minute, now - 2 * minute], [1.0, 100.0, 50.0]),
        samples("mem", [now - 30 * minute, now - 29 * minute], [7.0, 9.0], host=["a", "b"]),
        # Outside the seed query's hour, and late (more than 1 h behind the newest sample).
        samples("disk", [now - 3 * 60 * minute, now - 2 * 60 * minute], [1.0, 2.0]),
        # Late: 88 minutes behind the newest sample, so it joins no window (NULL running values).
        samples("cpu", [now - 90 * minute], [1000.0]),
    ]


def parse_printed_frame(text: str) -> list[tuple[str, int, float]]:
    lines = [line.split() for line in text.strip().splitlines()]
    assert lines[0] == ["metric_id", "samples", "avg_value"], text
    return [(row[1], int(row[2]), float(row[3])) for row in lines[1:]]


def test_seed_example_runs_unchanged_against_the_default_server(tmp_path: Path) -> None:
    """From a fresh directory: `hyprstream` with no arguments serves on 127.0.0.1:50051 and the
    seed's own example prints the right table."""
    cwd = tmp_path / "fresh"
    cwd.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyprstream.cli"], cwd=cwd, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on grpc://127.0.0.1:50051" in line:
                break
        else:
            pytest.fail(f"the default server did not start (is port 50051 taken?): exit {proc.wait()}")
        assert (cwd / "hyprstream-data" / "hyprstream.duckdb").exists()
        now = dt.datetime.now(dt.UTC)
        batches = seed_batches(now)
        for b in batches:
            put(50051, b)
        script = tmp_path / "seed_example.py"
        script.write_text(SEED_EXAMPLE)
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        printed = parse_printed_frame(run.stdout)
        expected = seed_expectation(batches, since=now - dt.timedelta(hours=1))
        assert [(m, n) for m, n, _ in printed] == [(m, n) for m, n, _ in expected]
        for (_, _, got), (_, _, want) in zip(printed, expected, strict=True):
            assert got == pytest.approx(want, rel=1e-5)  # pandas prints 6 significant digits
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_running_columns_match_the_definition(server) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    batches = seed_batches(now)
    acks = [put(server.port, b)[0] for b in batches]
    assert [a["accepted"] for a in acks] == [b.num_rows for b in batches]
    got = query(server.port, "SELECT metric_id, timestamp, value_running_window_avg, "
                "value_running_window_count FROM metrics")
    expected = sorted(running_avgs(batches))
    rows = sorted(zip(got["metric_id"].to_pylist(), got["timestamp"].to_pylist(),
                      got["value_running_window_avg"].to_pylist(), strict=True))
    assert [(m, t) for m, t, _ in rows] == [(m, t) for m, t, _ in expected]
    for (_, _, a), (_, _, b) in zip(rows, expected, strict=True):
        assert a == pytest.approx(b, rel=1e-12) if b is not None else a is None
    hour = dt.timedelta(hours=1)
    late = {(m, t) for m, t, avg in expected if avg is None}
    assert late == {("disk", now - 3 * hour), ("disk", now - 2 * hour), ("cpu", now - 1.5 * hour)}
    assert [a["late"] for a in acks] == [0, 0, 0, 2, 1]


def test_read_your_writes_and_prepared_reexecution(server) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    with connect_adbc(server.port) as conn, conn.cursor() as cur:
        sql = "SELECT count(*) AS n, sum(value) AS s FROM metrics WHERE metric_id = ?"
        cur.execute(sql, ["x"])
        assert cur.fetchall() == [(0, None)]
        for i in range(1, 4):
            put(server.port, samples("x", [now], [float(i)]))
            cur.execute(sql, ["x"])  # same SQL: the driver reuses the prepared handle
            assert cur.fetchall() == [(i, float(sum(range(1, i + 1))))]
        cur.execute("SELECT count(*) FROM metrics_5m WHERE metric_id = 'x'")
        assert cur.fetchall() == [(1,)]


def test_window_views_serve_the_window_states(server) -> None:  # type: ignore[no-untyped-def]
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    put(server.port, samples("w", [base + k * minute for k in range(10)], [float(k) for k in range(10)]))
    five = query(server.port, "SELECT * FROM metrics_5m WHERE metric_id = ? ORDER BY window_start", ["w"])
    assert five["count"].to_pylist() == [5, 5]
    assert five["sum"].to_pylist() == [10.0, 35.0]
    assert five["avg"].to_pylist() == [2.0, 7.0]
    assert five["min"].to_pylist() == [0.0, 5.0]
    assert five["variance"].to_pylist() == [2.0, 2.0]
    assert five["window_end"].to_pylist()[0] == base + 5 * minute
    assert five["last_value"].to_pylist() == [4.0, 9.0]
    hour = query(server.port, "SELECT count, \"window\" FROM metric_windows WHERE \"window\" = '1h'")
    assert hour.to_pylist() == [{"count": 10, "window": "1h"}]
    for view in ("metrics_30m", "metrics_1d"):
        assert query(server.port, f"SELECT sum(count) AS n FROM {view}").to_pylist() == [{"n": 10}]


def test_labels_are_columns(server) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    put(server.port, samples("a", [now], [1.0], host=["h1"]))
    put(server.port, samples("a", [now], [2.0], region=["eu"], host=["h2"]))
    put(server.port, samples("a", [now], [3.0]))
    got = query(server.port, "SELECT value, host, region FROM metrics ORDER BY value")
    assert got.to_pylist() == [
        {"value": 1.0, "host": "h1", "region": None},
        {"value": 2.0, "host": "h2", "region": "eu"},
        {"value": 3.0, "host": None, "region": None},
    ]


def test_result_types_are_the_spec_types(server) -> None:  # type: ignore[no-untyped-def]
    put(server.port, samples("a", [dt.datetime.now(dt.UTC)], [1.0]))
    schema = query(server.port, "SELECT * FROM metrics").schema
    assert [(f.name, f.type) for f in schema] == [
        ("metric_id", pa.utf8()), ("timestamp", TS), ("value", pa.float64()),
        ("value_running_window_sum", pa.float64()), ("value_running_window_avg", pa.float64()),
        ("value_running_window_count", pa.int64()),
    ]


def test_restart_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = dt.datetime.now(dt.UTC)
    with spawn_server(data_dir=data) as first:
        for b in seed_batches(now):
            put(first.port, b)
        checks = ["SELECT * FROM metrics ORDER BY metric_id, timestamp, value",
                  "SELECT * FROM metric_windows ORDER BY metric_id, \"window\", window_start"]
        before = [query(first.port, q) for q in checks]
        assert first.stop() == 0
    with spawn_server(data_dir=data) as second:
        after = [query(second.port, q) for q in checks]
        assert after[0].equals(before[0])
        assert after[1].drop(["sum", "avg", "variance", "stddev"]).equals(
            before[1].drop(["sum", "avg", "variance", "stddev"]))
        for name in ("sum", "avg", "variance"):
            for a, b in zip(after[1][name].to_pylist(), before[1][name].to_pylist(), strict=True):
                assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
        assert "loaded 12 stored samples" in second.text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_shut_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with spawn_server(data_dir=tmp_path / "data") as proc:
        put(proc.port, samples("a", [dt.datetime.now(dt.UTC)], [1.0]))
        assert proc.stop(sig) == 0
    assert "stopped" in proc.text()


def test_sql_info_and_adbc_get_info(server) -> None:  # type: ignore[no-untyped-def]
    with connect_adbc(server.port) as conn:
        info = conn.adbc_get_info()
    assert info["vendor_name"] == "hyprstream"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == pa.__version__
    client = flight.connect(server.uri)
    descriptor = flight.FlightDescriptor.for_command(pack(pb.CommandGetSqlInfo(info=[8, 0])))
    assert client.get_schema(descriptor).schema.equals(SQL_INFO_SCHEMA)
    fi = client.get_flight_info(descriptor)
    table = client.do_get(fi.endpoints[0].ticket).read_all()
    assert table.schema.equals(SQL_INFO_SCHEMA)
    assert table.to_pylist() == [{"info_name": 8, "value": 0}, {"info_name": 0, "value": "hyprstream"}]


def test_empty_results_send_no_batches(server) -> None:  # type: ignore[no-untyped-def]
    client = flight.connect(server.uri)
    descriptor = flight.FlightDescriptor.for_command(
        pack(pb.CommandStatementQuery(query="SELECT * FROM metrics WHERE false")))
    info = client.get_flight_info(descriptor)
    assert info.total_records == 0
    reader = client.do_get(info.endpoints[0].ticket)
    assert [chunk.data.num_rows for chunk in reader] == []
    # A ticket is good for one DoGet.
    with pytest.raises(pa.ArrowKeyError, match="unknown or expired result handle"):
        client.do_get(info.endpoints[0].ticket).read_all()


def test_help_explains_the_flags() -> None:
    run = subprocess.run([sys.executable, "-m", "hyprstream.cli", "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for flag in ("--host", "--port", "--data-dir", "--config", "--log-level", "--engine",
                 "--engine-connection", "--engine-options", "--enable-cache", "--cache-engine",
                 "--cache-connection"):
        assert flag in run.stdout


def test_bad_configuration_exits_with_a_message(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hyprstream.cli", "--engine", "adbc"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2
    assert "needs --engine-connection" in run.stderr
    with spawn_server(data_dir=tmp_path / "a") as taken:
        run = subprocess.run(
            [sys.executable, "-m", "hyprstream.cli", "--port", str(taken.port), "--data-dir", str(tmp_path / "b")],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 1
        assert "cannot start" in run.stderr


def test_seed_example_is_verbatim() -> None:
    # Guard against "fixing" the example: it must stay the seed's text, which the README shows.
    assert 'connect("grpc://localhost:50051")' in SEED_EXAMPLE
    assert textwrap.dedent(SEED_EXAMPLE).count("AVG(value_running_window_avg) as avg_value") == 1
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"```python\n{SEED_EXAMPLE.strip()}\n```" in readme


def test_acknowledgements_arrive_in_batch_order(node) -> None:  # type: ignore[no-untyped-def]
    """ING-2: a batch answered at once (a duplicate, an empty batch) is acknowledged after the
    batches sent before it, even when their appends take longer."""
    now = us(dt.datetime.now(dt.UTC))
    big = pa.table(
        {
            "metric_id": pa.array([f"m{i % 500}" for i in range(300_000)]),
            "timestamp": pa.array([now - i for i in range(300_000)], TS),
            "value": pa.array([float(i) for i in range(300_000)]),
        }
    ).combine_chunks().to_batches()[0]
    empty = big.slice(0, 0)
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), big.schema)
    meta = [json.dumps({"batch_id": i}).encode() for i in ("first", "first", "second")]
    for batch, m in ((big, meta[0]), (big, meta[1]), (empty, None), (big.slice(0, 10), meta[2])):
        if m is None:
            writer.write_batch(batch)
        else:
            writer.write_with_metadata(batch, pa.py_buffer(m))
    writer.done_writing()
    acks = [json.loads(reader.read().to_pybytes()) for _ in range(4)]
    writer.close()
    assert acks == [
        {"accepted": 300_000, "late": 0},
        {"accepted": 300_000, "late": 0, "duplicate": True},
        {"accepted": 0, "late": 0},
        {"accepted": 10, "late": 0},
    ]
