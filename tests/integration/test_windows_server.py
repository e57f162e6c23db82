"""Windows through a real server and real clients (WIN-*): an out-of-order stream ingested with
DoPut equals the naive oracle when read back with ADBC, and the stateful machine runs against a
server process as it does in process."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.machine import (
    BASE,
    HOUR,
    MINUTE,
    FlightEngine,
    WindowMachine,
    _default_oracle,
    _us,
    assert_rows_match,
    assert_windows_match,
    to_batch,
)
from conformance.process import ServerProcess, spawn_server

from .conftest import connect_adbc

pytestmark = pytest.mark.integration


def out_of_order_stream(seed: int) -> list[list[tuple[str, int, float]]]:
    rng = random.Random(seed)
    samples = [
        (rng.choice(["cpu", "mem", "disk"]), BASE + rng.randrange(0, 3 * HOUR), round(rng.uniform(-50, 50), 3))
        for _ in range(600)
    ]
    samples += [("cpu", BASE + 10 * MINUTE, 7.0)] * 3  # ties
    # Arrive out of order, but never more than the allowed lateness behind: sort by a jittered key.
    samples.sort(key=lambda s: s[1] + rng.randrange(0, 50 * MINUTE))
    batches, i = [], 0
    while i < len(samples):
        n = rng.randint(1, 80)
        batches.append(samples[i : i + n])
        i += n
    # A late straggler at the end: 2 h behind, counted late and not merged.
    batches.append([("cpu", BASE, 123.0)])
    return batches


def test_metrics_5m_point_query_equals_the_oracle(server: ServerProcess) -> None:
    engine = FlightEngine(server.uri)
    oracle = _default_oracle()
    try:
        for batch in out_of_order_stream(3):
            assert engine.ingest(to_batch(batch)) == oracle.ingest(batch)
        assert oracle.rows[-1].running_count is None  # the straggler was late
        expected = {k: w for k, w in oracle.windows().items() if k[0] == "cpu" and k[1] == "5m"}
        with connect_adbc(server.port) as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM metrics_5m WHERE metric_id = ?", ["cpu"])
            rows = cur.fetch_arrow_table().to_pylist()
        assert len(rows) == len(expected) > 30
        for row in rows:
            want = expected[("cpu", "5m", _us(row["window_start"]))]
            assert row["count"] == want.count
            assert row["min"] == want.min
            assert row["max"] == want.max
            assert row["sum"] == pytest.approx(want.sum, rel=1e-12, abs=1e-9)
            assert row["avg"] == pytest.approx(want.avg, rel=1e-12, abs=1e-9)
            assert row["variance"] == pytest.approx(want.variance, rel=1e-9, abs=1e-9)
            assert row["last_value"] == want.last_value
            assert _us(row["first_timestamp"]) == want.first_timestamp
            assert _us(row["last_timestamp"]) == want.last_timestamp
        assert_windows_match(engine, oracle)
        assert_rows_match(engine, oracle)
    finally:
        engine.close()


def test_state_machine_against_a_server_process(tmp_path: Path) -> None:
    procs: list[ServerProcess] = []

    def fresh() -> WindowMachine:
        proc = spawn_server(args=["--engine", "memory", "--quantiles", "all"], data_dir=tmp_path / str(len(procs)))
        procs.append(proc)
        engine = FlightEngine(proc.uri, quantile_labels=frozenset({"5m", "30m", "1h", "1d"}))
        return WindowMachine(engine)

    try:
        run_state_machine_as_test(
            fresh, settings=settings(max_examples=4, stateful_step_count=12, deadline=None, derandomize=True)
        )
    finally:
        for p in procs:
            p.kill()
