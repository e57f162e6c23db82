"""Ingest throughput: window aggregation in process, and DoPut end to end through a server.

Data: 2,000,000 samples in time order over 24 hours, sent in 65,536-row batches, for 1,000
and for 100,000 series. Measured:

* ``aggregate``: the window engine alone (metric codes, plan, apply) into all four sizes;
* ``service``: the whole ingest path in process (validate, windows, hot cache, memory backend);
* ``doput``: Arrow Flight DoPut into a ``hyprstream`` process, from the first batch written to
  the last acknowledgement read (the client keeps writing while acknowledgements arrive), with
  the in-memory backend and with the embedded durable default;
* ``doput_live``: the same, with the samples spread over one second instead of 24 hours, as a
  live stream at the target rate would send them (the replay closes windows in almost every
  batch; a live stream closes them once per window length);
* memory: the server's resident set before and after, per series, and the window state's
  bytes per (series, window) in the store and in the hot cache's window table.

Run with ``pytest perf/test_ingest_throughput.py --benchmark-enable -p no:cacheprovider -s``;
the summary is printed at the end and written to ``perf/results/ingest_throughput.json``.
Nothing is asserted about speed; correctness (every sample accepted and counted) is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _support import put_pipelined

from conformance.process import ServerProcess
from hyprstream.backend import DuckDBHotCache, MemoryBackend
from hyprstream.model import MetricDictionary
from hyprstream.service import Hyprstream
from hyprstream.windows import DEFAULT_SIZES, WindowSize, WindowStore

ROWS = 2_000_000
BATCH_ROWS = 65_536
SPAN_US = 24 * 3_600_000_000
SERIES = (1_000, 100_000)
TARGET_ROWS_PER_S = 2_000_000
TARGET_STATE_BYTES = 400
RESULTS = Path(__file__).with_name("results") / "ingest_throughput.json"
SCHEMA = pa.schema(
    [("metric_id", pa.utf8()), ("timestamp", pa.timestamp("us", tz="UTC")), ("value", pa.float64())]
)

_summary: dict[str, Any] = {"rows": ROWS, "batch_rows": BATCH_ROWS, "results": {}}


def batches(series: int, span_us: int = SPAN_US) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(series)
    end = time.time_ns() // 1000
    ts = np.sort(rng.integers(end - span_us, end, ROWS, dtype=np.int64))
    codes = rng.integers(0, series, ROWS)
    names = pa.array([f"host{i // 100:04d}.cpu{i % 100:02d}" for i in range(series)])
    values = rng.normal(50, 10, ROWS)
    out = []
    for lo in range(0, ROWS, BATCH_ROWS):
        hi = min(ROWS, lo + BATCH_ROWS)
        out.append(
            pa.record_batch(
                [
                    names.take(pa.array(codes[lo:hi])),
                    pa.array(ts[lo:hi], SCHEMA.field(1).type),
                    pa.array(values[lo:hi]),
                ],
                schema=SCHEMA,
            )
        )
    return out


@pytest.fixture(scope="module", params=SERIES, ids=lambda n: f"{n}_series")
def data(request: pytest.FixtureRequest) -> tuple[int, list[pa.RecordBatch]]:
    return request.param, batches(request.param)


#: A live stream at the target rate: the samples span the second it takes to send them
#: (the 24-hour replay above closes windows in almost every batch; a live stream rarely).
LIVE_SPAN_US = ROWS * 1_000_000 // TARGET_ROWS_PER_S


@pytest.fixture(scope="module", params=SERIES, ids=lambda n: f"{n}_series")
def live_data(request: pytest.FixtureRequest) -> tuple[int, list[pa.RecordBatch]]:
    return request.param, batches(request.param, LIVE_SPAN_US)


def timed_seconds(benchmark: Any) -> list[float] | None:
    """The seconds of each timed round; None with --benchmark-disable (nothing was timed)."""
    return list(benchmark.stats.stats.data) if benchmark.stats else None


def record(name: str, seconds: list[float], **extra: Any) -> None:
    best = min(seconds)
    _summary["results"][name] = {
        "rows_per_s_best": ROWS / best,
        "rows_per_s_median": ROWS / float(np.median(seconds)),
        "rounds": len(seconds),
        **extra,
    }


@pytest.mark.parametrize("quantiles", ["default", "all", "none"])
def test_aggregate(benchmark: Any, data: tuple[int, list[pa.RecordBatch]], quantiles: str) -> None:
    series, bs = data
    decoded = [
        (b.column(0), b.column(1).cast(pa.int64()).to_numpy(), b.column(2).to_numpy()) for b in bs
    ]
    stores: list[WindowStore] = []
    counted: list[int] = []
    sketched = {
        "default": [WindowSize.parse("1h"), WindowSize.parse("1d")],
        "all": list(DEFAULT_SIZES),
        "none": [],
    }[quantiles]

    def run() -> None:
        store, names = WindowStore(quantiles=sketched), MetricDictionary()
        on_time = 0
        for ids, ts, values in decoded:
            codes, new = names.encode(ids)
            names.commit(new)
            plan = store.plan(codes, ts, values)
            store.apply(plan)
            on_time += plan.on_time
        stores.append(store)
        counted.append(on_time)

    benchmark.pedantic(run, rounds=3, iterations=1)
    assert counted
    assert all(n == ROWS for n in counted)  # in time order: every sample merged, none late
    seconds = timed_seconds(benchmark)
    if seconds is None:
        return
    store = stores[-1]
    states = sum(len(b) for _, _, b in store.iter_open())
    sketched_states = sum(len(b) for z, _, b in store.iter_open() if z in sketched)
    record(
        f"aggregate/{series}/quantiles={quantiles}",
        seconds,
        open_states=states,
        state_bytes_per_window=store.open_state_bytes / max(states, 1),
        sketch_bytes_per_sketched_window=store.sketch_bytes / max(sketched_states, 1),
    )


def duckdb_bytes(cache: DuckDBHotCache) -> int:
    """The memory DuckDB holds for the hot cache's database."""
    value = cache.query("SELECT sum(memory_usage_bytes)::BIGINT AS b FROM duckdb_memory()")
    return int(value.column("b")[0].as_py())


def test_window_table_bytes() -> None:
    """The hot cache's copy of window states: DuckDB memory per window row, as written and
    once compressed (CACHE-12)."""
    cache = DuckDBHotCache(window_labels=["5m"])
    before = duckdb_bytes(cache)
    n = 1_000_000
    rng = np.random.default_rng(0)
    ts = pa.array(rng.integers(0, 10**15, n), pa.timestamp("us", tz="UTC"))
    f = pa.array(rng.random(n))
    rows = pa.table(
        {
            "metric_id": pa.array([f"host{i % 1000:04d}.cpu{i % 100:02d}" for i in range(n)]),
            "window": pa.array(["5m"] * n),
            "window_start": ts,
            "window_end": ts,
            "count": pa.array(rng.integers(1, 100, n)),
            "sum": f,
            "mean": f,
            "min": f,
            "max": f,
            "m2": f,
            "first_timestamp": ts,
            "last_timestamp": ts,
            "last_value": f,
            "p50": f,
            "p90": f,
            "p99": f,
        }
    )
    cache.load_closed_windows(rows)
    cache.compact_windows(force=True)
    after = duckdb_bytes(cache)
    assert cache.compress()
    compressed = duckdb_bytes(cache)
    cache.close()
    _summary["results"]["window_table"] = {
        "duckdb_bytes_per_window_row": (after - before) / n,
        "duckdb_bytes_per_window_row_compressed": (compressed - before) / n,
    }


def test_hot_cache_bytes(data: tuple[int, list[pa.RecordBatch]]) -> None:
    """The hot cache's copy of the samples: DuckDB memory per sample as appended, and once
    the idle checkpoint has compressed it (CACHE-12)."""
    series, bs = data
    service = Hyprstream(backend=MemoryBackend(), cache=DuckDBHotCache(), store=WindowStore())
    cache = service.cache
    try:
        base = duckdb_bytes(cache)
        # Held paused, the appender leaves the checkpoint to this test (as during warm start).
        with service._appender.paused():
            for b in bs:
                service.ingest(b)
            service.query("SELECT 1")  # window changes reach their tables too
            appended = duckdb_bytes(cache)
            assert cache.compress()
            compressed = duckdb_bytes(cache)
    finally:
        service.close()
    _summary["results"][f"hot_cache/{series}"] = {
        "duckdb_bytes_per_sample_appended": (appended - base) / ROWS,
        "duckdb_bytes_per_sample_compressed": (compressed - base) / ROWS,
    }


def test_service(benchmark: Any, data: tuple[int, list[pa.RecordBatch]]) -> None:
    series, bs = data
    services: list[Hyprstream] = []
    acks: list[tuple[int, int]] = []

    def setup() -> tuple[tuple[Hyprstream], dict[str, Any]]:
        for s in services:
            s.close()
        services.clear()
        service = Hyprstream(
            backend=MemoryBackend(),
            cache=DuckDBHotCache(window_labels=["5m", "30m", "1h", "1d"]),
            store=WindowStore(),
        )
        services.append(service)
        return (service,), {}

    def run(service: Hyprstream) -> None:
        accepted = late = 0
        for b in bs:
            result = service.ingest(b)
            accepted += result.accepted
            late += result.late
        acks.append((accepted, late))

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    assert acks
    assert all(a == (ROWS, 0) for a in acks)  # every sample accepted, none late
    service = services[-1]
    # The hot cache's copy of the window states, after the flush a query triggers.
    service.query("SELECT 1")
    windows = service.query("SELECT count(*) AS n FROM metric_windows").column("n")[0].as_py()
    memory = (
        service.query("SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()")
        .column("b")[0]
        .as_py()
    )
    seconds = timed_seconds(benchmark)
    if seconds is not None:
        record(f"service/{series}", seconds, window_rows=windows, duckdb_memory_bytes=memory)
    for s in services:
        s.close()


def _rss(proc: ServerProcess) -> tuple[int, int]:
    status = Path(f"/proc/{proc.process.pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


@pytest.mark.parametrize("engine", ["memory", "embedded"])
def test_doput(
    benchmark: Any, data: tuple[int, list[pa.RecordBatch]], server_factory: Any, engine: str
) -> None:
    _doput(benchmark, "doput", data, server_factory, engine)


@pytest.mark.parametrize("engine", ["memory", "embedded"])
def test_doput_live(
    benchmark: Any, live_data: tuple[int, list[pa.RecordBatch]], server_factory: Any, engine: str
) -> None:
    _doput(benchmark, "doput_live", live_data, server_factory, engine)


def _doput(
    benchmark: Any,
    label: str,
    data: tuple[int, list[pa.RecordBatch]],
    server_factory: Any,
    engine: str,
) -> None:
    series, bs = data
    results: list[tuple[float, int, int, int, int, int]] = []

    def setup() -> tuple[tuple[ServerProcess], dict[str, Any]]:
        proc = server_factory("--engine", engine)
        time.sleep(0.5)
        return (proc,), {}

    def run(proc: ServerProcess) -> None:
        before, _ = _rss(proc)
        seconds, accepted, late = put_pipelined(proc.uri, bs)
        after, peak = _rss(proc)
        results.append((seconds, accepted, late, before, after, peak))
        proc.kill()

    benchmark.pedantic(run, setup=setup, rounds=2, iterations=1)
    for _, accepted, late, *_ in results:
        assert accepted == ROWS
        assert late == 0
    seconds = [r[0] for r in results]
    _, _, _, before, after, peak = results[-1]
    record(
        f"{label}/{engine}/{series}",
        seconds,
        rss_growth_bytes_per_series=(after - before) / series,
        peak_rss_bytes=peak,
    )


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Print and save what the tests measured, once they have all run."""
    yield
    lines = [f"ingest throughput: {ROWS:,} samples in batches of {BATCH_ROWS:,}, 4 window sizes"]
    for name, r in _summary["results"].items():
        if "rows_per_s_best" not in r:
            lines.append(f"  {name:<24} " + ", ".join(f"{k}={v:,.0f}" for k, v in r.items()))
            continue
        verdict = ""
        if name.startswith("doput"):
            verdict = "MET" if r["rows_per_s_best"] >= TARGET_ROWS_PER_S else "MISSED"
        extras = ", ".join(
            f"{k}={v:,.0f}"
            for k, v in r.items()
            if k not in ("rows_per_s_best", "rows_per_s_median", "rounds")
        )
        lines.append(
            f"  {name:<34} best {r['rows_per_s_best']:>12,.0f} rows/s  median "
            f"{r['rows_per_s_median']:>12,.0f} rows/s  {verdict:<6} {extras}"
        )
    print("\n" + "\n".join(lines))
    if _summary["results"]:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(_summary, indent=2, default=float) + "\n")
