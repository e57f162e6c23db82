"""Restart: how long a node takes to warm up from its embedded backend, and its peak memory.

Data: 2,000,000 and 6,000,000 samples of 1,000 series over the last 24 hours, ingested once
into the embedded DuckDB backend (the default) in 65,536-row batches. Measured: a fresh
process builds the service, which reads the samples back into the hot cache and merges the
open and recent windows again (BE-4), then answers a count; its wall time, samples per
second and peak resident set. Each round is a new process, so memory is the warm start's.

Run with ``pytest perf/test_warm_start.py --benchmark-enable -p no:cacheprovider -s``; the
summary is printed and written to ``perf/results/warm_start.json``. Nothing is asserted
about speed; every stored sample coming back is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hyprstream.app import build_service
from hyprstream.config import load_config

BATCH_ROWS = 65_536
SERIES = 1_000
SPAN_US = 24 * 3_600_000_000
SIZES = (2_000_000, 6_000_000)
ROUNDS = 3
RESULTS = Path(__file__).with_name("results") / "warm_start.json"

#: Run in a child process: warm start, one query, then the figures as JSON on stdout.
_CHILD = """
import json, resource, sys, time
from hyprstream.app import build_service
from hyprstream.config import load_config
start = time.perf_counter()
service = build_service(load_config(flags={"data_dir": sys.argv[1]}))
warmed = time.perf_counter() - start
rows = service.query("SELECT count(*) AS n FROM metrics").column(0)[0].as_py()
service.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": warmed, "rows": rows, "peak_rss_bytes": peak}))
"""

_summary: dict[str, Any] = {}


def _fill(data_dir: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    names = pa.array([f"host{i // 100:04d}.cpu{i % 100:02d}" for i in range(SERIES)])
    end = time.time_ns() // 1000
    ts = np.sort(rng.integers(end - SPAN_US, end, rows, dtype=np.int64))
    codes = rng.integers(0, SERIES, rows)
    values = rng.normal(50.0, 10.0, rows)
    service = build_service(load_config(flags={"data_dir": str(data_dir)}))
    try:
        for i in range(0, rows, BATCH_ROWS):
            part = slice(i, i + BATCH_ROWS)
            service.ingest(
                pa.record_batch(
                    {
                        "metric_id": names.take(pa.array(codes[part])),
                        "timestamp": pa.array(ts[part], pa.timestamp("us", tz="UTC")),
                        "value": values[part],
                    }
                )
            )
    finally:
        service.close()


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1_000_000}M")
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int]:
    data_dir = tmp_path_factory.mktemp("warm")
    _fill(data_dir, request.param)
    return data_dir, request.param


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if _summary:
        print("\nwarm start from the embedded backend (1,000 series over 24 hours)")
        for name, r in _summary.items():
            print(
                f"  {name:>4} samples: best {r['best_s']:.2f} s ({r['rows_per_s']:,.0f} rows/s), "
                f"median {r['median_s']:.2f} s, peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB"
            )
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(_summary, indent=2) + "\n")


def test_warm_start(stored: tuple[Path, int], benchmark: Any) -> None:
    data_dir, expected = stored
    runs: list[dict[str, Any]] = []

    def restart() -> None:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(data_dir)],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(restart, rounds=ROUNDS if benchmark.enabled else 1, iterations=1)
    assert all(r["rows"] == expected for r in runs), runs  # every stored sample is back
    seconds = sorted(r["seconds"] for r in runs)
    _summary[f"{expected // 1_000_000}M"] = {
        "best_s": seconds[0],
        "median_s": seconds[len(seconds) // 2],
        "rows_per_s": expected / seconds[0],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "rounds": len(runs),
    }
