"""Helpers shared by the benchmarks: the data set, ingest, floor servers, queries, the summary.

Nothing here times anything on its own account except :func:`ingest` (reported as
information); latencies are measured by pytest-benchmark and summarised from its raw samples.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
from pyarrow import flight

from hyprstream.flightsql._protocol import pack, pb

# -- the data set ---------------------------------------------------------------------------

HOUR_US = 3_600_000_000
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
INGEST_SCHEMA = pa.schema(
    [
        pa.field("metric_id", pa.utf8()),
        pa.field("timestamp", TIMESTAMP_TYPE),
        pa.field("value", pa.float64()),
    ]
)
VALUE_LOW, VALUE_HIGH = 0.0, 100.0

#: The seed example's query (the README's aggregate over the last hour), as the benchmarks send it.
SEED_EXAMPLE_SQL = (
    "SELECT \n"
    "    metric_id,\n"
    "    COUNT(*) as samples,\n"
    "    AVG(value_running_window_avg) as avg_value\n"
    "FROM metrics\n"
    "WHERE timestamp >= NOW() - INTERVAL '1 hour'\n"
    "GROUP BY metric_id\n"
    "ORDER BY avg_value DESC"
)


@dataclass(frozen=True)
class Dataset:
    """Samples sorted by timestamp; ``codes[i]`` indexes ``names`` (``metric_0000``...)."""

    names: pa.StringArray
    codes: np.ndarray  # int32, one per sample
    timestamps_us: np.ndarray  # int64, sorted ascending
    values: np.ndarray  # float64
    end_us: int  # every timestamp is < end_us (the "now" of generation)
    span_us: int

    @property
    def rows(self) -> int:
        return len(self.timestamps_us)

    @property
    def metrics(self) -> int:
        return len(self.names)

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The samples in time order, ``rows`` at a time, as a live stream would send them."""
        for start in range(0, self.rows, rows):
            stop = min(start + rows, self.rows)
            yield pa.record_batch(
                [
                    self.names.take(pa.array(self.codes[start:stop])),
                    pa.array(self.timestamps_us[start:stop], TIMESTAMP_TYPE),
                    pa.array(self.values[start:stop], pa.float64()),
                ],
                schema=INGEST_SCHEMA,
            )

    def counts_since(self, since_us: int) -> np.ndarray:
        """Samples per metric code with ``timestamp >= since_us``."""
        first = int(np.searchsorted(self.timestamps_us, since_us, side="left"))
        return np.bincount(self.codes[first:], minlength=self.metrics)

    def samples_of(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values of one metric, sorted by (timestamp, value)."""
        code = self.names.to_pylist().index(metric)
        mask = self.codes == code
        ts, values = self.timestamps_us[mask], self.values[mask]
        order = np.lexsort((values, ts))
        return ts[order], values[order]


def generate_dataset(
    *, rows: int, metrics: int, span_us: int, seed: int, end_us: int | None = None
) -> Dataset:
    """``rows`` samples of ``metrics`` metrics at sorted random instants in [end - span, end)."""
    end = end_us if end_us is not None else time.time_ns() // 1000
    rng = np.random.default_rng(seed)
    timestamps = np.sort(rng.integers(end - span_us, end, size=rows, dtype=np.int64))
    codes = rng.integers(0, metrics, size=rows, dtype=np.int32)
    values = rng.uniform(VALUE_LOW, VALUE_HIGH, size=rows)
    names = pa.array([f"metric_{i:04d}" for i in range(metrics)], pa.utf8())
    return Dataset(names, codes, timestamps, values, end, span_us)


# -- ingest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    rows: int
    batches: int
    batch_rows: int
    seconds: float
    accepted: int
    late: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def ingest(uri: str, dataset: Dataset, *, batch_rows: int) -> IngestReport:
    """DoPut the data set on ``['metrics']``, waiting for each batch's acknowledgement."""
    accepted = late = batches = 0
    with flight.connect(uri) as client:
        start = time.perf_counter()
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), INGEST_SCHEMA)
        with writer:
            for batch in dataset.batches(batch_rows):
                writer.write_batch(batch)
                ack = json.loads(reader.read().to_pybytes())
                accepted += ack["accepted"]
                late += ack["late"]
                batches += 1
            writer.done_writing()
        seconds = time.perf_counter() - start
    return IngestReport(dataset.rows, batches, batch_rows, seconds, accepted, late)


def put_pipelined(uri: str, batches: Sequence[pa.RecordBatch]) -> tuple[float, int, int]:
    """DoPut ``batches`` on ``['metrics']`` in one stream, writing on while a thread reads the
    acknowledgements; returns (seconds from opening the stream to the last acknowledgement,
    accepted, late)."""
    acks: list[dict[str, int]] = []
    with flight.connect(uri) as client:
        start = time.perf_counter()
        writer, reader = client.do_put(
            flight.FlightDescriptor.for_path("metrics"), batches[0].schema
        )
        with writer:

            def read_acks() -> None:
                for _ in batches:
                    acks.append(json.loads(reader.read().to_pybytes()))

            thread = threading.Thread(target=read_acks)
            thread.start()
            for batch in batches:
                writer.write_batch(batch)
            thread.join()
            seconds = time.perf_counter() - start
            writer.done_writing()
    return seconds, sum(a["accepted"] for a in acks), sum(a["late"] for a in acks)


# -- floor servers ----------------------------------------------------------------------------

FLOOR_SCRIPT = Path(__file__).with_name("_floor_server.py")


@dataclass
class FloorServer:
    """A ``_floor_server.py`` child process; ``log`` collects what it prints."""

    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> int:
        """Terminate (kill after ``timeout``), wait, and release the pipes."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pump in self.pumps:  # they stop at end of file, now that the process is gone
            pump.join(timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode


def spawn_floor_server(kind: Literal["raw", "sql"], *, timeout: float = 60) -> FloorServer:
    """Start a floor server in its own process and wait until it prints its port."""
    process = subprocess.Popen(
        [sys.executable, str(FLOOR_SCRIPT), kind],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = FloorServer(process, 0)
    ready = threading.Event()

    def pump(stream: IO[str], announces_port: bool) -> None:
        for line in stream:
            server.log.append(line)
            if announces_port and line.startswith("listening on port ") and not ready.is_set():
                server.port = int(line.split()[-1])
                ready.set()
        if announces_port:
            ready.set()  # exited before announcing a port

    assert process.stdout is not None
    assert process.stderr is not None
    for stream, announces in ((process.stdout, True), (process.stderr, False)):
        thread = threading.Thread(target=pump, args=(stream, announces), daemon=True)
        thread.start()
        server.pumps.append(thread)
    if not ready.wait(timeout) or not server.port:
        server.stop()
        raise RuntimeError(f"the {kind} floor server did not start:\n{''.join(server.log)}")
    return server


# -- queries ----------------------------------------------------------------------------------


def statement_descriptor(sql: str) -> flight.FlightDescriptor:
    """A Flight SQL ``CommandStatementQuery`` descriptor for ``sql``."""
    return flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query=sql)))


def flight_query(client: flight.FlightClient, descriptor: flight.FlightDescriptor) -> pa.Table:
    """GetFlightInfo + DoGet of the first endpoint, read to the end."""
    info = client.get_flight_info(descriptor)
    return client.do_get(info.endpoints[0].ticket).read_all()


def adbc_query(cursor: Any, sql: str, parameters: Sequence[Any] | None = None) -> pa.Table:
    """``execute`` + ``fetch_arrow_table`` on an ADBC DB-API cursor."""
    cursor.execute(sql, parameters)
    return cursor.fetch_arrow_table()


def bracketed(call: Callable[[], pa.Table]) -> tuple[int, pa.Table, int]:
    """``(before_us, result, after_us)``: wall-clock microseconds around ``call()``."""
    before = time.time_ns() // 1000
    result = call()
    after = -(-time.time_ns() // 1000)
    return before, result, after


# -- measurements and the summary ---------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    name: str
    description: str
    samples_s: tuple[float, ...]

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples_s), q)) * 1e3

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def as_dict(self) -> dict[str, Any]:
        data = np.asarray(self.samples_s) * 1e3
        return {
            "description": self.description,
            "rounds": len(data),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": float(data.mean()),
            "min_ms": float(data.min()),
            "max_ms": float(data.max()),
        }


@dataclass(frozen=True)
class Ratio:
    """``numerator`` p50 / ``denominator`` p50 (measurement names)."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Target:
    """An informational goal: the p50 (ms) of a measurement, or a ratio, at most ``limit``."""

    name: str
    subject: str  # a measurement name or a ratio name
    limit: float
    unit: str


@dataclass
class Report:
    """One benchmark module's results: filled by its tests, written at the end of the session."""

    name: str
    ratios: Sequence[Ratio] = ()
    targets: Sequence[Target] = ()
    info: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Measurement] = field(default_factory=dict)

    def record(self, benchmark: Any, name: str, description: str) -> None:
        """Keep the raw per-round samples of a finished ``benchmark`` (none when disabled)."""
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: the call ran once, untimed
            return
        self.measurements[name] = Measurement(name, description, tuple(stats.stats.data))


def summarize(report: Report) -> dict[str, Any]:
    """The JSON summary: environment, info, p50/p99 per measurement, ratios, targets."""
    m = report.measurements
    ratio_values: dict[str, dict[str, Any]] = {}
    for r in report.ratios:
        if r.numerator in m and r.denominator in m:
            ratio_values[r.name] = {
                "numerator": r.numerator,
                "denominator": r.denominator,
                "p50_ratio": m[r.numerator].p50_ms / m[r.denominator].p50_ms,
            }
    target_values: list[dict[str, Any]] = []
    for t in report.targets:
        value: float | None = None
        if t.subject in ratio_values:
            value = ratio_values[t.subject]["p50_ratio"]
        elif t.subject in m:
            value = m[t.subject].p50_ms
        target_values.append(
            {
                "name": t.name,
                "subject": t.subject,
                "value": value,
                "limit": t.limit,
                "unit": t.unit,
                "met": None if value is None else value <= t.limit,
            }
        )
    return {
        "benchmark": report.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": _environment(),
        **report.info,
        "measurements": {name: x.as_dict() for name, x in m.items()},
        "ratios": ratio_values,
        "targets": target_values,
    }


def ingest_info(report: IngestReport) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "batches": report.batches,
        "batch_rows": report.batch_rows,
        "seconds": report.seconds,
        "rows_per_second": report.rows_per_second,
        "accepted": report.accepted,
        "late": report.late,
    }


def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    for package in ("hyprstream", "pyarrow", "adbc-driver-flightsql", "duckdb"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The summary as lines of text for the terminal."""
    lines: list[str] = []
    dataset = summary.get("dataset")
    if dataset is not None:
        lines.append(
            f"data set: {dataset['rows']:,} samples of {dataset['metrics']:,} metrics over "
            f"{dataset['span_hours']:g} h"
        )
    ingest_report = summary.get("ingest")
    if ingest_report is not None:
        lines.append(
            f"ingest: {ingest_report['rows']:,} rows in {ingest_report['batches']} batches of "
            f"{ingest_report['batch_rows']:,} in {ingest_report['seconds']:.2f} s = "
            f"{ingest_report['rows_per_second']:,.0f} rows/s "
            f"(accepted {ingest_report['accepted']:,}, late {ingest_report['late']:,})"
        )
    measurements = summary["measurements"]
    if not measurements:
        lines.append(
            "no latency samples: benchmarks are disabled by default; run with "
            "--benchmark-enable (see perf/README.md)"
        )
        return lines
    width = max(len(n) for n in measurements)
    lines.append(f"{'measurement':<{width}}  {'rounds':>6}  {'p50 ms':>8}  {'p99 ms':>8}")
    for name, x in measurements.items():
        lines.append(f"{name:<{width}}  {x['rounds']:>6}  {x['p50_ms']:>8.3f}  {x['p99_ms']:>8.3f}")
    if summary["ratios"]:
        lines.append("")
        lines.append("ratios of p50:")
        for name, r in summary["ratios"].items():
            lines.append(
                f"  {name}: {r['p50_ratio']:.2f}x  ({r['numerator']} / {r['denominator']})"
            )
    lines.append("")
    lines.append("targets (informational, not asserted):")
    for t in summary["targets"]:
        if t["value"] is None:
            verdict, shown = "NOT MEASURED", "-"
        else:
            verdict = "MET" if t["met"] else "MISSED"
            shown = f"{t['value']:.2f}{t['unit']}"
        lines.append(f"  {verdict:<6}  {t['name']}: {shown} (limit {t['limit']:g}{t['unit']})")
    return lines


def measure(
    benchmark: Any,
    report: Report,
    name: str,
    description: str,
    call: Callable[[], pa.Table],
    *,
    rounds: int,
    warmup_rounds: int,
) -> pa.Table:
    """Time ``call`` (one call per round) and record the samples; returns the last result."""
    benchmark.extra_info["description"] = description
    result: pa.Table = benchmark.pedantic(
        call, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
    )
    report.record(benchmark, name, description)
    return result
