"""Sustained ingest: DoPut far past the hot cache's maintenance thresholds, and the gaps
between acknowledgements that maintenance causes.

The throughput benchmark (``test_ingest_throughput.py``) sends 2,000,000 samples: too few for
the hot cache's maintenance under load to start (CACHE-10 rewrites the table under load once
about 7.9 million rows have changed; CACHE-11 merges the series index's runs once 32 have
piled up). Here one DoPut stream sends 30,000,000 samples (20,000,000 to the embedded
default) of 1,000 series in 65,536-row batches, live (timestamps at the server's clock), with
at most 8 batches unacknowledged, and every acknowledgement's arrival is timed.

Reported per engine: samples per second over the whole stream, and the gaps between
consecutive acknowledgements (p50, p99, the largest, how many exceed 1 s). A gap is how long
the client saw no progress: a stall of the ingest path (a rewrite or merge in front of the
appends, a checkpoint of the embedded backend) shows up as one long gap.

Run with ``pytest perf/test_sustained_ingest.py --benchmark-enable -p no:cacheprovider -s``
(about a minute). Nothing is asserted about speed; every sample must be accepted, none late.
The summary is printed at the end and written to ``perf/results/sustained_ingest.json``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import flight

from conformance.process import ServerProcess

BATCH_ROWS = 65_536
SERIES = 1_000
ROWS = {"memory": 30_000_000, "embedded": 20_000_000}
IN_FLIGHT = 8
RESULTS = Path(__file__).with_name("results") / "sustained_ingest.json"
SCHEMA = pa.schema(
    [("metric_id", pa.utf8()), ("timestamp", pa.timestamp("us", tz="UTC")), ("value", pa.float64())]
)

_summary: dict[str, Any] = {"batch_rows": BATCH_ROWS, "series": SERIES, "results": {}}


class _Batches:
    """Live batches made on the fly (the stream is too large to hold): metric ids and values
    from a few pre-built columns, timestamps spread over the last millisecond before each
    batch is sent, in order."""

    def __init__(self) -> None:
        rng = np.random.default_rng(SERIES)
        names = pa.array([f"host{i // 100:04d}.cpu{i % 100:02d}" for i in range(SERIES)])
        self._ids = [names.take(pa.array(rng.integers(0, SERIES, BATCH_ROWS))) for _ in range(8)]
        self._values = [pa.array(rng.normal(50, 10, BATCH_ROWS)) for _ in range(8)]
        self._offsets = np.sort(rng.integers(-1_000, 0, BATCH_ROWS))

    def make(self, i: int) -> pa.RecordBatch:
        now = time.time_ns() // 1_000
        ts = pa.array(now + self._offsets, SCHEMA.field(1).type)
        return pa.record_batch([self._ids[i % 8], ts, self._values[i % 8]], schema=SCHEMA)


def sustained_put(uri: str, rows: int) -> dict[str, Any]:
    """DoPut ``rows`` samples in one stream with at most ``IN_FLIGHT`` batches unacknowledged;
    returns the rate, the acknowledgement gaps and what was acknowledged."""
    batches = _Batches()
    count = -(-rows // BATCH_ROWS)
    window = threading.Semaphore(IN_FLIGHT)
    acked: list[float] = []
    accepted = late = 0
    with flight.connect(uri) as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), SCHEMA)
        with writer:

            def read_acks() -> None:
                nonlocal accepted, late
                for _ in range(count):
                    ack = json.loads(reader.read().to_pybytes())
                    acked.append(time.perf_counter())
                    accepted += ack["accepted"]
                    late += ack["late"]
                    window.release()

            thread = threading.Thread(target=read_acks)
            start = time.perf_counter()
            thread.start()
            for i in range(count):
                window.acquire()
                writer.write_batch(batches.make(i))
            thread.join()
            writer.done_writing()
    gaps = np.diff(np.array([start, *acked]))
    return {
        "rows": count * BATCH_ROWS,
        "accepted": accepted,
        "late": late,
        "rows_per_s": count * BATCH_ROWS / (acked[-1] - start),
        "ack_gap_p50_ms": float(np.percentile(gaps, 50) * 1e3),
        "ack_gap_p99_ms": float(np.percentile(gaps, 99) * 1e3),
        "ack_gap_max_ms": float(gaps.max() * 1e3),
        "ack_gaps_over_1s": int((gaps > 1.0).sum()),
    }


@pytest.mark.parametrize("engine", ["memory", "embedded"])
def test_sustained_doput(benchmark: Any, server_factory: Any, engine: str) -> None:
    results: list[dict[str, Any]] = []

    def setup() -> tuple[tuple[ServerProcess], dict[str, Any]]:
        proc = server_factory("--engine", engine)
        time.sleep(0.5)
        return (proc,), {}

    def run(proc: ServerProcess) -> None:
        results.append(sustained_put(proc.uri, ROWS[engine]))
        proc.kill()

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    (result,) = results
    assert result["accepted"] == result["rows"]
    assert result["late"] == 0
    _summary["results"][engine] = result


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Print and save what the tests measured, once they have all run."""
    yield
    lines = [
        f"sustained ingest: {SERIES:,} series, batches of {BATCH_ROWS:,}, {IN_FLIGHT} in flight"
    ]
    for engine, r in _summary["results"].items():
        lines.append(
            f"  {engine:<9} {r['rows']:>12,} rows  {r['rows_per_s']:>12,.0f} rows/s  ack gaps "
            f"p50 {r['ack_gap_p50_ms']:.1f} ms  p99 {r['ack_gap_p99_ms']:.1f} ms  "
            f"max {r['ack_gap_max_ms']:.0f} ms  over 1 s: {r['ack_gaps_over_1s']}"
        )
    print("\n" + "\n".join(lines))
    if _summary["results"]:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(_summary, indent=2) + "\n")
