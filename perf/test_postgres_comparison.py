"""hyprstream in front of PostgreSQL versus PostgreSQL alone, at 1,000,000 and 10,000,000 samples.

For each case, in one run: samples of 1,000 metrics spread over the last 24 hours are ingested
through hyprstream with PostgreSQL write-through (timed: write-through throughput), and the same
samples are bulk-ingested straight into PostgreSQL through ADBC into a table with the same
index (timed: PostgreSQL's own rate). Then two queries are timed both ways, each through the
ADBC client: the seed example, and a dashboard query (one metric's per-5-minute average over
the last 24 hours); PostgreSQL answers them from hyprstream's own backend table, which has the
(metric_id, timestamp) index. The cases: 1,000,000 and 10,000,000 samples of 1,000 metrics
(1,000 and 10,000 samples per metric), and 10,000,000 samples of 100 metrics (100,000 samples
per metric over the day, about one a second: a dashboard over a metric scraped each second).

Run: ``pytest perf/test_postgres_comparison.py --benchmark-enable -p no:cacheprovider -s``
(needs PostgreSQL binaries or HYPRSTREAM_TEST_POSTGRES_URI, as the integration tests do).
Results: printed, and written to ``perf/results/postgres_comparison.json``. Nothing about speed
is asserted; the two systems' answers are checked against each other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_postgresql.dbapi as pg
import numpy as np
import pyarrow as pa
import pytest
from _support import HOUR_US, SEED_EXAMPLE_SQL, generate_dataset, put_pipelined

from conformance.process import spawn_server
from tests.integration.postgres import PostgresServer, postgres  # noqa: F401  (the fixture)

#: (samples, metrics): the scales the targets name, then a denser metric at the larger one.
CASES = ((1_000_000, 1_000), (10_000_000, 1_000), (10_000_000, 100))
BATCH_ROWS = 65_536
SPAN_US = 24 * HOUR_US
RESULTS = Path(__file__).with_name("results") / "postgres_comparison.json"
SEED_PG = SEED_EXAMPLE_SQL.replace("timestamp >=", '"timestamp" >=')
#: The dashboard as hyprstream answers it: from the 5-minute windows it maintains (the server
#: keeps 25 hours of them for this benchmark; the default is 6 hours).
DASHBOARD = (
    "SELECT window_start AS bucket, avg AS avg_value FROM metrics_5m "
    "WHERE metric_id = 'metric_0042' AND window_start >= NOW() - INTERVAL '24 hours' "
    "- INTERVAL '5 minutes' ORDER BY bucket"
)
#: The same question over the raw samples, as PostgreSQL must answer it (reported too).
DASHBOARD_RAW = (
    "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, avg(value) AS avg_value "
    "FROM metrics WHERE metric_id = 'metric_0042' AND timestamp >= NOW() - INTERVAL '24 hours' "
    "GROUP BY bucket ORDER BY bucket"
)
DASHBOARD_PG = (
    "SELECT date_bin(INTERVAL '5 minutes', \"timestamp\", TIMESTAMPTZ '2000-01-03 00:00:00+00') "
    "AS bucket, avg(value) AS avg_value FROM metrics WHERE metric_id = 'metric_0042' "
    "AND \"timestamp\" >= NOW() - INTERVAL '24 hours' GROUP BY bucket ORDER BY bucket"
)

_summary: dict[str, Any] = {"cases": {}}


def timed(cursor: Any, sql: str, rounds: int) -> tuple[list[float], pa.Table]:
    result = None
    for _ in range(max(2, rounds // 10)):  # warm up
        cursor.execute(sql)
        result = cursor.fetch_arrow_table()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        cursor.execute(sql)
        result = cursor.fetch_arrow_table()
        samples.append(time.perf_counter() - start)
    assert result is not None
    return samples, result


def ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1e3)


def by_bucket(result: pa.Table) -> dict[Any, float]:
    return dict(zip(result["bucket"].to_pylist(), result["avg_value"].to_pylist(), strict=True))


def assert_same_buckets(got: pa.Table, expected: pa.Table, name: str) -> None:
    """The same averages per bucket, up to float rounding. The oldest bucket is cut by
    "NOW() - 24 hours", a few seconds apart in the two runs (and the 5-minute window holds
    its whole bucket): it is skipped."""
    g, e = by_bucket(got), by_bucket(expected)
    common = set(g) & set(e)
    assert len(common) >= len(e) - 2
    common.discard(min(common))
    wrong = [
        (b, g[b], e[b]) for b in sorted(common) if abs(g[b] - e[b]) > 1e-9 * max(1.0, abs(e[b]))
    ]
    assert not wrong, f"{name}: buckets differ: {wrong[:5]}"


def case_name(case: tuple[int, int]) -> str:
    return f"{case[0] // 1_000_000}M_{case[1]}_metrics"


@pytest.mark.parametrize("case", CASES, ids=case_name)
def test_compare(
    benchmark: Any,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
    case: tuple[int, int],
) -> None:
    rows, metrics = case
    database = postgres.new_database()
    data = list(
        generate_dataset(rows=rows, metrics=metrics, span_us=SPAN_US, seed=rows).batches(BATCH_ROWS)
    )
    config = tmp_path / "hyprstream.toml"
    config.write_text('[windows]\nretention = { "5m" = "25h" }\n')
    out: dict[str, Any] = {"rows": rows, "metrics": metrics}
    answers: dict[str, pa.Table] = {}
    args = [
        "--engine",
        "adbc",
        "--engine-connection",
        database,
        "--cache-max-duration",
        "48h",
        "--log-level",
        "warning",
        "--config",
        str(config),
    ]
    with spawn_server(args=args, data_dir=tmp_path / "data") as proc:
        seconds, accepted, late = put_pipelined(proc.uri, data)
        assert (accepted, late) == (rows, 0)  # in time order: nothing is late
        out["write_through_rows_per_s"] = rows / seconds
        # PostgreSQL's own bulk ingest through ADBC, into a table with the same index.
        table = pa.Table.from_batches(data).append_column(
            "value_running_window_sum", pa.nulls(rows, pa.float64())
        )
        with pg.connect(database) as conn, conn.cursor() as cur:
            cur.adbc_ingest("metrics_direct", table.slice(0, 0), mode="create")
            cur.execute('CREATE INDEX ON metrics_direct (metric_id, "timestamp")')
            conn.commit()
            start = time.perf_counter()
            for b in table.to_batches(BATCH_ROWS):
                cur.adbc_ingest("metrics_direct", pa.Table.from_batches([b]), mode="append")
                conn.commit()
            out["postgres_bulk_rows_per_s"] = rows / (time.perf_counter() - start)
            cur.execute("ANALYZE metrics")
            cur.execute("ANALYZE metrics_direct")
            conn.commit()
        rounds_h, rounds_pg = 200, (50 if rows <= 1_000_000 else 15)
        with (
            flightsql.connect(proc.uri, autocommit=True) as h,
            h.cursor() as hc,
            pg.connect(database) as p,
            p.cursor() as pc,
        ):
            for name, hsql, psql in (
                ("seed", SEED_EXAMPLE_SQL, SEED_PG),
                ("dashboard", DASHBOARD, DASHBOARD_PG),
                ("dashboard_raw", DASHBOARD_RAW, DASHBOARD_PG),
            ):
                h_samples, h_result = timed(hc, hsql, rounds_h)
                p_samples, p_result = timed(pc, psql, rounds_pg)
                answers[name] = h_result
                # Same answers (up to float rounding, and rows crossing NOW() between runs).
                assert abs(h_result.num_rows - p_result.num_rows) <= 2
                if name.startswith("dashboard"):
                    assert_same_buckets(h_result, p_result, name)
                out[name] = {
                    "hyprstream_p50_ms": ms(h_samples, 50),
                    "hyprstream_p99_ms": ms(h_samples, 99),
                    "postgres_p50_ms": ms(p_samples, 50),
                    "postgres_p99_ms": ms(p_samples, 99),
                }
                out[name]["speedup_p50"] = (
                    out[name]["postgres_p50_ms"] / out[name]["hyprstream_p50_ms"]
                )
    out["write_through_vs_postgres_bulk"] = (
        out["write_through_rows_per_s"] / out["postgres_bulk_rows_per_s"]
    )
    # Restart on the same database (BE-4): the time until the new process serves (it warms
    # the hot cache and the windows from PostgreSQL first), and the same dashboards.
    start = time.perf_counter()
    with spawn_server(args=args, data_dir=tmp_path / "data", timeout=900) as proc:
        out["restart_s"] = time.perf_counter() - start
        with flightsql.connect(proc.uri, autocommit=True) as h, h.cursor() as hc:
            for name, hsql in (("dashboard", DASHBOARD), ("dashboard_raw", DASHBOARD_RAW)):
                hc.execute(hsql)
                assert_same_buckets(hc.fetch_arrow_table(), answers[name], f"{name} after restart")
    _summary["cases"][case_name(case)] = out
    benchmark.extra_info.update(out)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    cases = _summary["cases"]
    lines = ["hyprstream vs PostgreSQL (through ADBC, same samples, same index)"]
    for r in cases.values():
        lines.append(
            f"  {r['rows']:>11,} samples of {r['metrics']:,} metrics: write-through {r['write_through_rows_per_s']:>11,.0f} rows/s, "
            f"PostgreSQL bulk {r['postgres_bulk_rows_per_s']:>11,.0f} rows/s "
            f"(ratio {r['write_through_vs_postgres_bulk']:.2f}, target >= 0.8); "
            f"restart {r['restart_s']:.1f} s"
        )
        for q in ("seed", "dashboard", "dashboard_raw"):
            x = r[q]
            lines.append(
                f"      {q:<9} hyprstream p50 {x['hyprstream_p50_ms']:8.2f} ms p99 {x['hyprstream_p99_ms']:8.2f} ms | "
                f"PostgreSQL p50 {x['postgres_p50_ms']:8.2f} ms p99 {x['postgres_p99_ms']:8.2f} ms | "
                f"speedup {x['speedup_p50']:6.1f}x (target >= 10x at 10M)"
            )
    small, large = (cases.get(case_name(c)) for c in CASES[:2])
    if small is not None and large is not None:
        for q in ("seed", "dashboard", "dashboard_raw"):
            gh = large[q]["hyprstream_p50_ms"] / small[q]["hyprstream_p50_ms"]
            gp = large[q]["postgres_p50_ms"] / small[q]["postgres_p50_ms"]
            _summary.setdefault("growth_1M_to_10M", {})[q] = {"hyprstream": gh, "postgres": gp}
            lines.append(f"  growth 1M -> 10M, {q}: hyprstream x{gh:.2f}, PostgreSQL x{gp:.2f}")
    print("\n" + "\n".join(lines))
    if cases:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(_summary, indent=2, default=float) + "\n")
