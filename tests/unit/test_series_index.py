"""The series index (CACHE-11): the cases the property test reaches only by luck."""

from __future__ import annotations

import pyarrow as pa

from hyprstream.backend._series import SeriesIndex
from hyprstream.model import TIMESTAMP_TYPE, metrics_schema

SCHEMA = metrics_schema()


def _rows(metric_ids: list[str], stamps: list[int]) -> pa.Table:
    values = [float(t) for t in stamps]
    return pa.table(
        {
            "metric_id": pa.array(metric_ids, pa.utf8()),
            "timestamp": pa.array(stamps, pa.int64()).cast(TIMESTAMP_TYPE),
            "value": values,
            "value_running_window_sum": values,
            "value_running_window_avg": values,
            "value_running_window_count": pa.array([1] * len(stamps), pa.int64()),
        },
        schema=SCHEMA,
    )


def _stamps(index: SeriesIndex, metric: str) -> list[int]:
    table = index.series(metric, SCHEMA)
    assert table is not None
    return table["timestamp"].cast(pa.int64()).to_pylist()


def test_a_partly_evicted_run_is_filtered_on_lookup_before_it_is_rewritten() -> None:
    index = SeriesIndex()
    index.append(_rows(["m"] * 100, list(range(100))))
    index.evict(5)  # 5 of 100 rows: below the share that rewrites the run
    assert index.rows == 100
    assert _stamps(index, "m") == list(range(5, 100))
    index.evict(50)  # now rewritten without them
    assert index.rows == 50
    assert _stamps(index, "m") == list(range(50, 100))


def test_rows_older_than_the_watermark_are_not_taken_in() -> None:
    index = SeriesIndex()
    index.evict(10)
    index.append(_rows(["m", "m", "m"], [9, 10, 11]))
    assert _stamps(index, "m") == [10, 11]


def test_late_rows_across_runs_come_back_in_time_order() -> None:
    index = SeriesIndex(merge_factor=2)
    index.append(_rows(["m"] * 8, list(range(10, 18))))
    index.append(_rows(["m", "n"], [3, 4]))  # late, in a run that is not merged yet
    assert index.runs == 2
    assert _stamps(index, "m") == [3, *range(10, 18)]
    index.append(_rows(["m", "m"], [5, 1]))  # unsorted within the batch; merges
    assert _stamps(index, "m") == [1, 3, 5, *range(10, 18)]
    assert _stamps(index, "n") == [4]


def test_runs_merge_to_a_logarithmic_number() -> None:
    index = SeriesIndex(merge_factor=2, max_runs=32)
    for start in range(0, 1024, 8):
        index.append(_rows(["a", "b"] * 4, list(range(start, start + 8))))
        assert index.runs <= 32  # appends merge only once runs pile up beyond max_runs
    assert index.rows == 1024
    assert index.compact()
    while index.compact():
        pass
    assert index.runs <= 11
    assert _stamps(index, "a") == list(range(0, 1024, 2))


def test_a_burst_of_appends_is_not_merged_until_compaction() -> None:
    index = SeriesIndex(max_runs=32)
    for start in range(0, 80, 8):
        index.append(_rows(["a"] * 8, list(range(start, start + 8))))
    assert index.runs == 10
    assert index.compact()
    assert index.runs == 1
    assert not index.compact()
    assert _stamps(index, "a") == list(range(80))


def test_runs_at_the_size_cap_are_not_merged_again() -> None:
    index = SeriesIndex(max_runs=2, max_run_rows=16)
    for start in range(0, 64, 16):
        index.append(_rows(["a"] * 16, list(range(start, start + 16))))
    assert index.runs == 4  # each run is at the cap
    assert not index.compact(force=True)
    assert _stamps(index, "a") == list(range(64))


def test_unknown_metric_is_an_empty_table_with_the_schema() -> None:
    index = SeriesIndex()
    assert index.series("m", SCHEMA) == SCHEMA.empty_table()
    index.append(_rows(["m"], [1]))
    assert index.series("x", SCHEMA) == SCHEMA.empty_table()


def test_ids_with_nul_characters_turn_the_index_off() -> None:
    # numpy strings drop trailing NULs, so "m\\0" and "m" would share a key.
    index = SeriesIndex()
    index.append(_rows(["m"], [1]))
    index.append(_rows(["m\x00"], [2]))
    assert index.series("m", SCHEMA) is None
    index.clear()
    index.append(_rows(["m"], [3]))
    assert _stamps(index, "m") == [3]


def test_columns_added_later_are_null_for_older_rows() -> None:
    labelled = metrics_schema([pa.field("host", pa.utf8())])
    index = SeriesIndex()
    index.append(_rows(["m"], [1]))
    newer = _rows(["m"], [2]).append_column("host", pa.array(["h"], pa.utf8()))
    index.append(newer)
    table = index.series("m", labelled)
    assert table is not None
    assert table.schema == labelled
    assert table["host"].to_pylist() == [None, "h"]


def test_small_runs_merge_past_a_run_at_the_size_cap() -> None:
    # A batch as large as the cap arrives between small ones: the small runs still merge.
    index = SeriesIndex(max_runs=2, max_run_rows=16)
    index.append(_rows(["m"], [0]))
    index.append(_rows(["m"], [1]))
    index.append(_rows(["n"] * 16, list(range(16))))
    index.append(_rows(["m"], [2]))
    assert index.runs <= 3
    assert _stamps(index, "m") == [0, 1, 2]


def _counts(index: SeriesIndex, lower_us: int | None) -> dict[str, int]:
    groups = index.aggregate(["value"], lower_us)
    assert groups is not None
    assert groups.names.to_pylist() == groups.keys.tolist()
    return dict(zip(groups.keys.tolist(), groups.rows.tolist(), strict=True))


def test_aggregates_leave_out_evicted_rows_a_run_still_holds() -> None:
    index = SeriesIndex()
    index.append(_rows(["m"] * 100 + ["n"], [*range(100), 3]))
    index.evict(5)  # below the share that rewrites the run
    assert index.rows == 101
    assert _counts(index, None) == {"m": 95}
    assert _counts(index, 2) == {"m": 95}  # a bound before the watermark is the watermark
    assert _counts(index, 90) == {"m": 10}


def test_aggregates_combine_runs_and_cut_each_metric_at_the_bound() -> None:
    index = SeriesIndex(max_runs=8)
    index.append(_rows(["a", "a", "b"], [10, 20, 30]))
    index.append(_rows(["b", "c"], [5, 40]))
    assert index.runs == 2
    groups = index.aggregate(["value"], None, extremes=["value"])
    assert groups is not None
    assert groups.keys.tolist() == ["a", "b", "c"]
    assert groups.rows.tolist() == [2, 2, 1]
    assert groups.stats["value"].sum.tolist() == [30.0, 35.0, 40.0]
    assert groups.stats["value"].min.tolist() == [10.0, 5.0, 40.0]
    assert groups.stats["value"].max.tolist() == [20.0, 30.0, 40.0]
    assert _counts(index, 20) == {"a": 1, "b": 1, "c": 1}
    assert _counts(index, 41) == {}
    # Without ``extremes`` no minimum or maximum is worked out.
    plain = index.aggregate(["value"], None)
    assert plain is not None
    assert len(plain.stats["value"].min) == 0


def test_aggregates_count_only_the_values_that_are_not_null() -> None:
    index = SeriesIndex()
    rows = _rows(["m", "m", "m"], [1, 2, 3])
    rows = rows.set_column(4, "value_running_window_avg", pa.array([None, 2.0, None]))
    rows = rows.set_column(
        5, "value_running_window_count", pa.array([None, None, None], pa.int64())
    )
    index.append(rows)
    cols = ["value_running_window_avg", "value_running_window_count"]
    groups = index.aggregate(cols, None, extremes=cols)
    assert groups is not None
    avg, count = (groups.stats[c] for c in cols)
    assert (avg.count.tolist(), avg.sum.tolist(), avg.min.tolist(), avg.max.tolist()) == (
        [1],
        [2.0],
        [2.0],
        [2.0],
    )
    assert (count.count.tolist(), count.sum.tolist()) == ([0], [0])


def test_aggregates_search_each_metric_when_a_run_spans_too_much_time() -> None:
    # The search keys (metric position * span + time) would overflow int64: each metric's
    # rows are then searched on their own (all at once).
    index = SeriesIndex()
    index.append(
        _rows(["a", "a", "b", "c", "c", "c", "d"], [-(1 << 61), 9, 0, 1, 2, 1 << 61, 5])
    )
    assert index._runs[0].search_keys("timestamp") is None
    assert _counts(index, None) == {"a": 2, "b": 1, "c": 3, "d": 1}
    assert _counts(index, 1) == {"a": 1, "c": 3, "d": 1}
    assert _counts(index, 3) == {"a": 1, "c": 1, "d": 1}
    assert _counts(index, 10) == {"c": 1}


def test_bounded_aggregates_count_their_search_keys_in_the_index_size() -> None:
    index = SeriesIndex()
    index.append(_rows(["a", "b"] * 50, list(range(100))))
    before = index.nbytes
    assert _counts(index, 50) == {"a": 25, "b": 25}
    assert index.nbytes >= before + 8 * 100


def test_runs_with_overlapping_metrics_merge_short_and_long_ids_alike() -> None:
    long_a, long_b = "a" * 70, "b" * 90  # past the fixed width: kept as Python strings
    index = SeriesIndex(max_runs=64)
    index.append(_rows(["m2", "m1", "m2"], [1, 2, 3]))
    index.append(_rows(["m3", "m1"], [4, 5]))
    index.append(_rows([long_b, "m2", long_a], [6, 7, 8]))
    index.append(_rows(["m1", long_b], [9, 10]))
    assert index.runs == 4
    while index.compact(force=True):
        pass
    assert index.runs == 1
    expected = {"m1": [2, 5, 9], "m2": [1, 3, 7], "m3": [4], long_a: [8], long_b: [6, 10]}
    assert {m: _stamps(index, m) for m in expected} == expected


def _three_runs(size: int = 8) -> SeriesIndex:
    index = SeriesIndex(max_runs=32)
    for start in range(0, 3 * size, size):
        index.append(_rows(["a", "b"] * (size // 2), list(range(start, start + size))))
    assert index.runs == 3
    return index


def test_a_merge_planned_aside_goes_in_after_later_appends_and_keeps_them() -> None:
    # The hot cache plans merges on a thread of its own while the writer appends.
    index = _three_runs()
    planned = index.plan_compaction(background=True)
    assert planned is not None
    assert len(planned.runs) == 3
    assert index.runs == 3  # planning changes nothing
    index.append(_rows(["a", "c"], [100, 101]))
    assert index.install(planned)
    assert index.runs == 2  # the merged run and the later one
    assert index.rows == 26
    assert _stamps(index, "a") == [*range(0, 24, 2), 100]
    assert _stamps(index, "b") == list(range(1, 24, 2))
    assert _stamps(index, "c") == [101]


def test_a_merge_whose_runs_changed_meanwhile_is_dropped() -> None:
    index = _three_runs()
    planned = index.plan_compaction(background=True)
    assert planned is not None
    assert index.compact(force=True)  # the writer merged the same runs first
    before = (index.runs, index.rows)
    assert not index.install(planned)
    assert (index.runs, index.rows) == before
    assert _stamps(index, "a") == list(range(0, 24, 2))


def test_a_merge_planned_before_an_eviction_never_brings_evicted_rows_back() -> None:
    index = _three_runs()
    planned = index.plan_compaction(background=True)
    assert planned is not None
    index.evict(4)  # half of the first run: rewritten without those rows
    assert index.install(planned)  # the rewritten run goes, the merged run holds its rows
    assert index.runs == 1
    assert _stamps(index, "a") == list(range(4, 24, 2))
    assert _stamps(index, "b") == list(range(5, 24, 2))
    index = _three_runs()
    planned = index.plan_compaction(background=True)
    assert planned is not None
    index.evict(8)  # the whole first run: dropped
    index.append(_rows(["a"], [30]))
    assert index.install(planned)
    assert index.runs == 2  # the merged run and the later one
    assert _stamps(index, "a") == [*range(8, 24, 2), 30]
    index = _three_runs(16)
    planned = index.plan_compaction(background=True)
    assert planned is not None
    index.evict(1)  # less than an eighth: no run is rewritten, the merge goes in
    assert index.install(planned)
    assert index.runs == 1
    assert _stamps(index, "a") == list(range(2, 48, 2))
    assert _stamps(index, "b") == list(range(1, 48, 2))


def test_appends_merge_runs_later_while_a_merge_is_planned_aside() -> None:
    index = SeriesIndex(max_runs=2)
    index._planning = True  # as while plan_compaction(background=True) runs
    for start in range(0, 32, 8):
        index.append(_rows(["a"] * 8, list(range(start, start + 8))))
    assert index.runs == 4  # up to twice max_runs
    index.append(_rows(["a"] * 8, list(range(32, 40))))
    assert index.runs < 5
    index._planning = False
    assert _stamps(index, "a") == list(range(40))


def test_a_background_merge_is_forced_once_half_of_max_runs_pile_up() -> None:
    # Under continuous load the compacting thread must bring the runs down before the
    # writer reaches max_runs and merges them itself, with its appends waiting.
    index = SeriesIndex(max_runs=8)
    start = 0
    for size in (1024, 128, 16, 1):  # each more than merge_factor (4) times the rest
        index.append(_rows(["a"] * size, list(range(start, start + size))))
        start += size
    assert index.plan_compaction(background=True) is None  # none due, four runs: not forced
    index.append(_rows(["a"], [start]))
    planned = index.plan_compaction(background=True)
    assert planned is not None
    # Due: the two single rows; past half of max_runs, forced: one run more.
    assert [run.rows for run in planned.runs] == [16, 1, 1]
    assert index.install(planned)
    assert index.runs == 3
    assert _stamps(index, "a") == list(range(start + 1))


def test_the_writer_keeps_its_raised_limit_until_a_planned_merge_is_installed() -> None:
    # Between the end of planning and the install, the writer must not merge the same runs
    # itself: its appends would wait for that merge, and the planned one would be dropped.
    index = SeriesIndex(max_runs=4)
    for start in range(0, 24, 8):
        index.append(_rows(["a"] * 8, list(range(start, start + 8))))
    planned = index.plan_compaction(background=True)
    assert planned is not None
    for start in range(24, 40, 8):
        index.append(_rows(["a"] * 8, list(range(start, start + 8))))
    assert index.runs == 5  # past max_runs, but the planned merge will take three of them
    assert index.install(planned)
    assert index.runs == 3
    index.append(_rows(["a"] * 8, list(range(40, 48))))
    index.append(_rows(["a"] * 8, list(range(48, 56))))
    assert index.runs < 5  # installed: the writer's own limit is back
    assert _stamps(index, "a") == list(range(56))
