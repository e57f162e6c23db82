"""The series index (CACHE-11) against a naive oracle: every row ever appended, filtered.

Random sequences of appends (metrics from a small alphabet so that they collide, timestamps
in and out of order, duplicates, a label column that appears part way) and evictions; after
each step, every metric's lookup must hold exactly the rows of that metric appended so far and
not evicted, in timestamp order, with the newest schema's columns.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from hyprstream.backend._series import BUCKET_ORIGIN_US, SeriesIndex, bucket_groups
from hyprstream.model import TIMESTAMP_TYPE, metrics_schema

#: Includes ids past the fixed-width limit (kept as Python strings) next to short ones.
METRICS = ["a", "b", "c", "cpu.load", "z", "é", "a b", "m" * 70, "m" * 70 + "a"]
LABEL = pa.field("host", pa.utf8())

_row = st.tuples(
    st.sampled_from(METRICS),
    st.integers(min_value=0, max_value=50),  # timestamp (small: many ties)
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
_append = st.tuples(st.just("append"), st.lists(_row, min_size=0, max_size=40), st.booleans())
_evict = st.tuples(st.just("evict"), st.integers(min_value=0, max_value=55), st.just(False))
_compact = st.tuples(st.just("compact"), st.none(), st.just(False))


def _table(rows: list[tuple[str, int, float]], with_label: bool, serial: int) -> pa.Table:
    schema = metrics_schema([LABEL] if with_label else [])
    n = len(rows)
    values = [v for _, _, v in rows]
    columns: dict[str, pa.Array] = {
        "metric_id": pa.array([m for m, _, _ in rows], pa.utf8()),
        "timestamp": pa.array([t for _, t, _ in rows], pa.int64()).cast(TIMESTAMP_TYPE),
        "value": pa.array(values, pa.float64()),
        "value_running_window_sum": pa.array(values, pa.float64()),
        "value_running_window_avg": pa.array(values, pa.float64()),
        # A unique serial per row: ties in timestamp are told apart by it.
        "value_running_window_count": pa.array(range(serial, serial + n), pa.int64()),
    }
    if with_label:
        columns["host"] = pa.array([f"h{t % 3}" for _, t, _ in rows], pa.utf8())
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _key(row: dict[str, object]) -> tuple[object, ...]:
    return (row["timestamp"], row["value_running_window_count"])


@example(  # two runs at the size cap, cut down by an eviction: three small runs remain
    steps=[
        ("append", [("a", 0, 0.0)] * 15 + [("a", 1, 0.0)], False),
        ("append", [("a", 0, 0.0)] * 15 + [("a", 1, 0.0)], False),
        ("append", [("a", 1, 0.0)], False),
        ("evict", 1, False),
    ],
    merge_factor=2,
    max_runs=2,
    max_run_rows=16,
)
@given(
    steps=st.lists(st.one_of(_append, _append, _evict, _compact), min_size=1, max_size=25),
    merge_factor=st.sampled_from([2, 4]),
    max_runs=st.sampled_from([2, 3, 32]),
    max_run_rows=st.sampled_from([16, 1 << 22]),
)
def test_lookups_match_the_rows_appended_and_not_evicted(
    steps: list[tuple[str, object, bool]], merge_factor: int, max_runs: int, max_run_rows: int
) -> None:
    index = SeriesIndex(merge_factor=merge_factor, max_runs=max_runs, max_run_rows=max_run_rows)
    everything: list[dict[str, object]] = []
    watermark: int | None = None
    labelled = False
    serial = 0
    for kind, payload, with_label in steps:
        if kind == "append":
            assert isinstance(payload, list)
            labelled = labelled or with_label
            table = _table(payload, labelled, serial)
            serial += table.num_rows
            index.append(table)
            everything.extend(table.to_pylist())
            # Runs stay few: an append leaves at most max_runs of them, besides those too
            # large to merge. (An eviction may then cut large runs down below that size;
            # the next append merges them.)
            capped = sum(1 for run in index._runs if run.rows >= max_run_rows)
            assert index.runs <= max_runs + capped
        elif kind == "compact":
            index.compact()
        else:
            assert isinstance(payload, int)
            index.evict(payload)
            watermark = payload if watermark is None else max(watermark, payload)
        schema = metrics_schema([LABEL] if labelled else [])
        for metric in METRICS:
            got = index.series(metric, schema)
            assert got is not None
            assert got.schema == schema
            got_rows = got.to_pylist()
            stamps = [r["timestamp"] for r in got_rows]
            assert stamps == sorted(stamps)  # type: ignore[type-var]
            expected = [
                {**{f.name: None for f in schema}, **r}
                for r in everything
                if r["metric_id"] == metric
                and (watermark is None or r["timestamp"].timestamp() * 1e6 >= watermark)  # type: ignore[attr-defined]
            ]
            assert sorted(got_rows, key=_key) == sorted(expected, key=_key)  # type: ignore[arg-type]
    # O(log rows) runs right after a compaction (when no run is too large to merge).
    index.compact()
    if index.rows and max_run_rows > index.rows:
        assert index.runs <= 1 + int(np.log2(index.rows + 1))


_force = st.tuples(st.just("force"), st.none(), st.just(False))
#: A merge planned aside, then what the writer does meanwhile, then the merge installed.
_planned = st.tuples(
    st.just("planned"),
    st.lists(st.one_of(_append, _evict, _evict, _force), max_size=4),
    st.booleans(),
)


def _eight(start: int) -> tuple[str, object, bool]:
    return ("append", [("ab"[t % 2], t, float(t)) for t in range(start, start + 8)], False)


@example(  # a run cut by an eviction while the merge that read it was planned
    steps=[_eight(0), _eight(8), _eight(16), ("planned", [("evict", 4, False)], False)],
    max_runs=32,
)
@example(  # a run dropped whole meanwhile, and one appended
    steps=[_eight(0), _eight(8), ("planned", [("evict", 8, False), _eight(30)], False)],
    max_runs=32,
)
@given(
    steps=st.lists(
        st.one_of(_append, _append, _evict, _compact, _force, _planned, _planned),
        min_size=1,
        max_size=25,
    ),
    max_runs=st.sampled_from([2, 3, 32]),
)
def test_merges_planned_aside_never_change_what_lookups_return(
    steps: list[tuple[str, object, bool]], max_runs: int
) -> None:
    """The hot cache plans merges on another thread while the writer appends, evicts and
    merges (CACHE-11): whatever happened in between, an installed merge (or a refused one)
    leaves every lookup holding exactly the rows appended and not evicted."""
    index = SeriesIndex(merge_factor=2, max_runs=max_runs)
    everything: list[dict[str, object]] = []
    watermark: int | None = None
    serial = 0

    def do(kind: str, payload: object) -> None:
        nonlocal watermark, serial
        if kind == "append":
            assert isinstance(payload, list)
            table = _table(payload, False, serial)
            serial += table.num_rows
            index.append(table)
            everything.extend(table.to_pylist())
        elif kind == "evict":
            assert isinstance(payload, int)
            index.evict(payload)
            watermark = payload if watermark is None else max(watermark, payload)
        elif kind == "compact":
            index.compact()
        else:
            index.compact(force=True)

    for kind, payload, force in steps:
        if kind == "planned":
            assert isinstance(payload, list)
            pending = index.plan_compaction(background=True, force=force)
            for inner_kind, inner_payload, _ in payload:
                do(inner_kind, inner_payload)
            if pending is not None:
                index.install(pending)
        else:
            do(kind, payload)
        schema = metrics_schema([])
        for metric in METRICS:
            got = index.series(metric, schema)
            assert got is not None
            got_rows = got.to_pylist()
            stamps = [r["timestamp"] for r in got_rows]
            assert stamps == sorted(stamps)
            expected = [
                r
                for r in everything
                if r["metric_id"] == metric
                and (watermark is None or r["timestamp"].timestamp() * 1e6 >= watermark)  # type: ignore[attr-defined]
            ]
            assert sorted(got_rows, key=_key) == sorted(expected, key=_key)


AGGREGATED = ("value", "value_running_window_avg", "value_running_window_count", "timestamp")


def _with_nulls(rows: list[tuple[str, int, float]], serial: int) -> pa.Table:
    """Rows whose running columns are NULL now and then (as for late samples)."""
    table = _table(rows, False, serial)
    stamps = [t for _, t, _ in rows]
    avg = [None if t % 4 == 0 else v for (_, t, v) in rows]
    count = [None if t % 5 == 0 else serial + i for i, t in enumerate(stamps)]
    table = table.set_column(4, "value_running_window_avg", pa.array(avg, pa.float64()))
    return table.set_column(5, "value_running_window_count", pa.array(count, pa.int64()))


def _micros(value: object) -> int:
    return int(value.timestamp() * 1_000_000)  # type: ignore[attr-defined]


@given(
    steps=st.lists(st.one_of(_append, _append, _evict, _compact), min_size=1, max_size=20),
    bounds=st.lists(st.one_of(st.none(), st.integers(min_value=-1, max_value=56)), max_size=3),
    max_runs=st.sampled_from([2, 32]),
    max_run_rows=st.sampled_from([16, 1 << 22]),
)
def test_aggregates_match_the_rows_appended_and_not_evicted(
    steps: list[tuple[str, object, bool]],
    bounds: list[int | None],
    max_runs: int,
    max_run_rows: int,
) -> None:
    index = SeriesIndex(max_runs=max_runs, max_run_rows=max_run_rows)
    everything: list[dict[str, object]] = []
    watermark: int | None = None
    serial = 0
    for kind, payload, _ in steps:
        if kind == "append":
            assert isinstance(payload, list)
            table = _with_nulls(payload, serial)
            serial += table.num_rows
            index.append(table)
            everything.extend(table.to_pylist())
        elif kind == "compact":
            index.compact()
        else:
            assert isinstance(payload, int)
            index.evict(payload)
            watermark = payload if watermark is None else max(watermark, payload)
        for bound in [None, *bounds]:
            groups = index.aggregate(AGGREGATED, bound, extremes=AGGREGATED)
            assert groups is not None
            floor = max(b for b in (bound, watermark, -(1 << 62)) if b is not None)
            admitted = [r for r in everything if _micros(r["timestamp"]) >= floor]
            metrics = sorted({str(r["metric_id"]) for r in admitted})
            assert groups.keys.tolist() == metrics
            assert groups.names.to_pylist() == metrics
            for i, metric in enumerate(metrics):
                mine = [r for r in admitted if r["metric_id"] == metric]
                assert groups.rows[i] == len(mine)
                for name in AGGREGATED:
                    stats = groups.stats[name]
                    values = [r[name] for r in mine if r[name] is not None]
                    if name == "timestamp":
                        values = [_micros(v) for v in values]
                    assert stats.count[i] == len(values)
                    if not values:
                        continue
                    assert stats.min[i] == min(values)  # type: ignore[type-var]
                    assert stats.max[i] == max(values)  # type: ignore[type-var]
                    if name != "timestamp":
                        exact = math.fsum(values)  # type: ignore[arg-type]
                        assert math.isclose(stats.sum[i], exact, rel_tol=1e-12, abs_tol=1e-6)


@given(
    stamps=st.lists(st.integers(min_value=-(10**12), max_value=10**12), max_size=60),
    width=st.sampled_from(
        [1, 7, 1_000_000, 300_000_000, 420_000_000, 86_400_000_000, 604_800_000_000]
    ),
)
def test_time_buckets_match_duckdbs_definition(stamps: list[int], width: int) -> None:
    # time_bucket(width, t) = origin + floor((t - origin) / width) * width, origin
    # 2000-01-03 00:00 UTC; the rows come in time order, as the series index gives them.
    stamps = sorted(stamps)
    rows = _with_nulls([("m", t, float(i)) for i, t in enumerate(stamps)], 0)
    rows = rows.set_column(1, "timestamp", pa.array(stamps, pa.int64()).cast(TIMESTAMP_TYPE))
    groups = bucket_groups(rows, width, ["value", "value_running_window_avg"], ["value"])
    expected: dict[int, list[dict[str, object]]] = {}
    for r, t in zip(rows.to_pylist(), stamps, strict=True):
        start = BUCKET_ORIGIN_US + (t - BUCKET_ORIGIN_US) // width * width
        expected.setdefault(start, []).append(r)
    assert groups.keys.tolist() == sorted(expected)
    assert groups.names.cast(pa.int64()).to_pylist() == sorted(expected)
    for i, start in enumerate(sorted(expected)):
        mine = expected[start]
        assert groups.rows[i] == len(mine)
        values = [float(r["value"]) for r in mine]  # type: ignore[arg-type]
        assert groups.stats["value"].sum[i] == math.fsum(values)  # small integers: exact
        assert groups.stats["value"].min[i] == min(values)
        assert groups.stats["value"].max[i] == max(values)
        present = [
            r["value_running_window_avg"] for r in mine if r["value_running_window_avg"] is not None
        ]
        assert groups.stats["value_running_window_avg"].count[i] == len(present)
