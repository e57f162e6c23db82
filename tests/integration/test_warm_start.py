"""BE-4: a restart reads the backend as a stream, in pieces, and answers as before.

Backends hand rows back in batches of their own size (DuckDB 2,048 rows, SQLite 1,024).
Warm start joins them into large pieces before caching and merging them; each piece is
read, cached and merged while memory holds only that piece (and the one being cached).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hyprstream import app
from hyprstream.app import start
from hyprstream.backend import AdbcBackend, MemoryBackend, StoredBatch, connection_settings
from hyprstream.backend._duckdb_cache import WINDOW_STORE_SCHEMA
from hyprstream.config import load_config
from hyprstream.errors import Unavailable
from hyprstream.model import TIMESTAMP_TYPE, metrics_schema
from hyprstream.service import _service
from tests.integration.conftest import put, query

pytestmark = pytest.mark.integration

MINUTE_US = 60_000_000
ROWS = 12_000
PIECE = 2_500

QUERIES = {
    "totals": "SELECT count(*) AS n, sum(value) AS s, min(timestamp) AS lo, max(timestamp) AS hi "
    "FROM metrics",
    "series": "SELECT * FROM metrics WHERE metric_id = 'm07' ORDER BY timestamp, value",
    "running": "SELECT metric_id, timestamp, value, value_running_window_count, "
    "value_running_window_sum FROM metrics ORDER BY metric_id, timestamp, value",
    "windows": 'SELECT metric_id, "window", window_start, window_end, count, sum, min, max, '
    "first_timestamp, last_timestamp, last_value FROM metric_windows ORDER BY 1, 2, 3",
    "spread": 'SELECT metric_id, "window", window_start, avg, variance FROM metric_windows '
    "ORDER BY 1, 2, 3",
}


def _samples(seed: int, now_us: int) -> pa.Table:
    """4,000 samples of 30 metrics over the last three hours, whole-number values (sums do
    not depend on the order they are added in)."""
    rng = np.random.default_rng(seed)
    n = ROWS // 3
    ts = now_us - rng.integers(0, 3 * 60 * MINUTE_US, n)
    return pa.table(
        {
            "metric_id": pa.array([f"m{i:02d}" for i in rng.integers(0, 30, n)]),
            "timestamp": pa.array(ts, TIMESTAMP_TYPE),
            "value": rng.integers(-1_000, 1_000, n).astype(np.float64),
        }
    )


def _answers(port: int) -> dict[str, list[dict[str, Any]]]:
    return {name: query(port, sql).to_pylist() for name, sql in QUERIES.items()}


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_a_restart_reads_the_backend_in_pieces_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    flags: dict[str, Any] = {"port": 0, "data_dir": str(tmp_path / "data")}
    if engine == "sqlite":
        flags |= {"engine": "adbc", "engine_connection": f"sqlite://{tmp_path / 'b.sqlite'}"}
    now = time.time_ns() // 1000
    with start(load_config(flags=flags)) as node:
        acks = put(node.port, *(_samples(seed, now) for seed in range(3)))
        assert sum(a["accepted"] for a in acks) == ROWS
        before = _answers(node.port)
    assert before["totals"][0]["n"] == ROWS

    pieces: list[int] = []
    gathered = _service._gathered

    def recorded(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
        for table in gathered(batches, rows):
            pieces.append(table.num_rows)
            yield table

    monkeypatch.setattr(_service, "_WARM_ROWS", PIECE)
    monkeypatch.setattr(_service, "_gathered", recorded)
    with start(load_config(flags=flags)) as node:
        after = _answers(node.port)
    # Several pieces, each but the last at least PIECE rows, none much larger than PIECE
    # plus one of the driver's batches: the table was never read whole.
    assert len(pieces) >= 3, pieces
    assert all(p >= PIECE for p in pieces[:-1]), pieces
    assert all(p < PIECE + 2_048 for p in pieces), pieces
    assert sum(pieces) == ROWS
    for name in ("totals", "series", "running", "windows"):
        assert after[name] == before[name], name
    for b, a in zip(before["spread"], after["spread"], strict=True):
        assert a["avg"] == pytest.approx(b["avg"], rel=1e-12)
        assert a["variance"] == pytest.approx(b["variance"], rel=1e-9, abs=1e-9)


def _rows(n: int) -> pa.Table:
    values = np.arange(n, dtype=np.float64)
    return pa.table(
        {
            "metric_id": pa.array([f"m{i % 7}" for i in range(n)]),
            "timestamp": pa.array(1_800_000_000_000_000 + np.arange(n), TIMESTAMP_TYPE),
            "value": values,
            "value_running_window_sum": values,
            "value_running_window_avg": values,
            "value_running_window_count": np.ones(n, np.int64),
        },
        schema=metrics_schema([]),
    )


def test_a_scan_left_half_read_does_not_keep_its_connection(tmp_path: Path) -> None:
    settings = connection_settings(
        str(tmp_path / "b.duckdb"),
        options={"driver": "duckdb", "pool_max": "1", "connect_timeout": "0.5"},
    )
    backend = AdbcBackend(settings, window_schema=WINDOW_STORE_SCHEMA)
    try:
        backend.write(StoredBatch(rows=_rows(10_000)))
        scan = backend.scan(None)
        first = next(scan)
        assert 0 < first.num_rows < 10_000  # streamed: the driver's first batch only
        # Streamed, the scan holds the pool's one connection until it ends (a scan that read
        # the table whole would have given it back already).
        with pytest.raises(Unavailable, match="no backend connection free"):
            backend.write(StoredBatch(rows=_rows(5)))
        scan.close()
        # With one connection in the pool, a leaked one would make this wait and fail.
        assert sum(b.num_rows for b in backend.scan(None)) == 10_000
        backend.write(StoredBatch(rows=_rows(5)))
        assert sum(b.num_rows for b in backend.scan(None)) == 10_005
    finally:
        backend.close()


def test_a_node_that_shut_down_lets_another_process_open_its_database(tmp_path: Path) -> None:
    # The backend's pool once took two references to the database per connection and gave
    # one back: the embedded DuckDB file stayed locked until the process exited.
    flags = {"port": 0, "data_dir": str(tmp_path)}
    with start(load_config(flags=flags)) as node:
        put(node.port, _samples(1, time.time_ns() // 1000))
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; "
            "print(duckdb.connect(sys.argv[1]).sql('SELECT count(*) FROM metrics').fetchall()[0][0])",
            str(tmp_path / "hyprstream.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert count.returncode == 0, count.stderr[-500:]
    assert count.stdout.strip() == str(ROWS // 3)


class _FailingScan(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.write(StoredBatch(rows=_rows(10)))

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        raise Unavailable("backend (test) could not read stored samples: gone")
        yield  # a generator, as the real ones

    def close(self) -> None:
        self.closed = True
        super().close()


def test_a_failed_warm_start_leaves_no_threads_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _FailingScan()
    monkeypatch.setattr(app, "build_backend", lambda config: backend)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(Unavailable, match="could not read stored samples"):
        app.build_service(load_config(flags={"data_dir": str(tmp_path)}))
    assert backend.closed
    left = {t.name for t in threading.enumerate()} - before
    assert not {name for name in left if name.startswith("hyprstream")}, left
