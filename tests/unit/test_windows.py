"""WIN-1..WIN-14: window sizes, bucket math, state merge, columnar aggregation and the store."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from hyprstream.errors import ConfigError
from hyprstream.windows import (
    WindowSize,
    WindowState,
    WindowStore,
    aggregate,
    merge,
    running_totals,
    sort_samples,
    upsert,
    window_start,
)

M5 = WindowSize.parse("5m")
H1 = WindowSize.parse("1h")
MIN = 60_000_000
HOUR = 60 * MIN


@pytest.mark.parametrize(
    ("text", "micros", "label"),
    [("5m", 300_000_000, "5m"), ("300s", 300_000_000, "5m"), ("90s", 90_000_000, "90s"),
     ("1h", 3_600_000_000, "1h"), ("24h", 86_400_000_000, "1d"), (" 30m ", 1_800_000_000, "30m")],
)
def test_parse_and_label(text: str, micros: int, label: str) -> None:
    size = WindowSize.parse(text)
    assert size.micros == micros
    assert size.label == label


@pytest.mark.parametrize("text", ["", "0m", "5", "5 minutes", "-5m", "1.5h", "5w"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="window size"):
        WindowSize.parse(text)


def test_window_start_is_floored_and_half_open() -> None:
    assert window_start(0, M5) == 0
    assert window_start(M5.micros - 1, M5) == 0
    assert window_start(M5.micros, M5) == M5.micros  # [start, end): end belongs to the next window
    assert window_start(-1, M5) == -M5.micros  # before 1970 too
    arr = np.array([-1, 0, 299_999_999, 300_000_000], dtype=np.int64)
    assert window_start(arr, M5).tolist() == [-300_000_000, 0, 0, 300_000_000]


def test_state_of_samples() -> None:
    s = WindowState.of([(10, 1.0), (30, 3.0), (20, 2.0)])
    assert (s.count, s.sum, s.min, s.max, s.mean) == (3, 6.0, 1.0, 3.0, 2.0)
    assert s.variance == pytest.approx(statistics.pvariance([1.0, 2.0, 3.0]))
    assert (s.first_timestamp, s.last_timestamp, s.last_value) == (10, 30, 3.0)


def test_last_value_tie_takes_largest_value_in_any_order() -> None:
    a = WindowState.of([(5, 1.0), (9, 7.0)])
    b = WindowState.of([(9, 4.0)])
    assert merge(a, b).last_value == merge(b, a).last_value == 7.0


def test_merge_is_associative_and_commutative() -> None:
    rng = random.Random(1)
    parts = [WindowState.of([(rng.randrange(100), rng.uniform(-5, 5)) for _ in range(rng.randint(1, 5))])
             for _ in range(3)]
    a, b, c = parts
    left, right, swapped = merge(merge(a, b), c), merge(a, merge(b, c)), merge(c, merge(b, a))
    for x in (right, swapped):
        assert x.count == left.count
        assert x.sum == pytest.approx(left.sum)
        assert x.m2 == pytest.approx(left.m2)
        assert (x.min, x.max, x.first_timestamp, x.last_timestamp, x.last_value) == (
            left.min, left.max, left.first_timestamp, left.last_timestamp, left.last_value)


def test_variance_survives_large_offsets() -> None:
    rng = random.Random(7)
    values = [1e9 + rng.gauss(0, 1) for _ in range(10_000)]
    chunks = [values[i:i + 977] for i in range(0, len(values), 977)]
    states = [WindowState.of((i, v) for i, v in enumerate(chunk)) for chunk in chunks]
    total = states[0]
    for s in states[1:]:
        total = merge(total, s)
    exact = statistics.pvariance(values)
    assert total.variance == pytest.approx(exact, rel=1e-6)
    # The naive formula loses everything at this offset (so this data does test the merge).
    naive = (math.fsum(v * v for v in values) - math.fsum(values) ** 2 / len(values)) / len(values)
    assert abs(naive - exact) > 0.1


def _columnar_vs_scalar(code: np.ndarray, ts: np.ndarray, value: np.ndarray, size: WindowSize) -> None:
    s = sort_samples(code, ts, value)
    got = {(start, c): st for start, block in aggregate(s, size) for c, st in block.items()}
    expected: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for c, t, v in zip(code.tolist(), ts.tolist(), value.tolist(), strict=True):
        expected.setdefault((window_start(t, size), c), []).append((t, v))
    assert set(got) == set(expected)
    for key, samples in expected.items():
        ref, mine = WindowState.of(samples), got[key]
        assert mine.count == ref.count
        assert mine.sum == pytest.approx(ref.sum, rel=1e-12, abs=1e-9)
        assert mine.mean == pytest.approx(ref.mean, rel=1e-12, abs=1e-9)
        assert mine.m2 == pytest.approx(ref.m2, rel=1e-9, abs=1e-9)
        assert (mine.min, mine.max, mine.first_timestamp, mine.last_timestamp, mine.last_value) == (
            ref.min, ref.max, ref.first_timestamp, ref.last_timestamp, ref.last_value)


def test_aggregate_matches_scalar_reference() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    code = rng.integers(0, 7, n)
    ts = rng.integers(-2 * HOUR, 2 * HOUR, n)
    ts[::10] = ts[1::10]  # plenty of equal timestamps
    value = rng.normal(0, 10, n).round(1)
    for size in (M5, H1):
        _columnar_vs_scalar(code, ts, value, size)


def test_aggregate_wide_time_span_uses_fallback_sort() -> None:
    code = np.array([2**40, 0, 2**40, 0], dtype=np.int64)
    ts = np.array([-(2**60), 2**60, 0, 0], dtype=np.int64)
    _columnar_vs_scalar(code, ts, np.array([1.0, 2.0, 3.0, 4.0]), M5)


def test_upsert_merges_and_inserts_in_code_order() -> None:
    rng = np.random.default_rng(5)
    code = rng.integers(0, 50, 400)
    ts = rng.integers(0, M5.micros, 400)
    value = rng.normal(size=400)
    half = 200
    (start_a, a), = aggregate(sort_samples(code[:half], ts[:half], value[:half]), M5)
    (start_b, b), = aggregate(sort_samples(code[half:], ts[half:], value[half:]), M5)
    (start_all, full), = aggregate(sort_samples(code, ts, value), M5)
    merged = upsert(a, b)
    assert start_a == start_b == start_all
    assert merged.code.tolist() == full.code.tolist()
    assert np.allclose(merged.sum, full.sum)
    assert np.allclose(merged.m2, full.m2)
    assert merged.count.tolist() == full.count.tolist()
    assert merged.last_value.tolist() == full.last_value.tolist()
    assert upsert(None, a) is a


def test_upsert_into_a_block_that_has_every_metric_and_into_one_that_has_some() -> None:
    rng = np.random.default_rng(6)
    code = rng.permutation(np.repeat(np.arange(0, 90, 3), 4))  # 30 metrics, 4 samples each
    ts = rng.integers(0, M5.micros, len(code))
    value = rng.normal(size=len(code))
    (_, full), = aggregate(sort_samples(code, ts, value), M5)
    for second in (code < 200, code % 2 == 0):  # every metric again; only some of them
        first = ~second | (rng.random(len(code)) < 0.5)
        rest = ~first
        (_, a), = aggregate(sort_samples(code[first], ts[first], value[first]), M5)
        (_, b), = aggregate(sort_samples(code[rest], ts[rest], value[rest]), M5)
        before = {name: getattr(a, name).copy() for name in ("code", "count", "sum", "m2")}
        merged = upsert(a, b)
        assert merged.code.tolist() == full.code.tolist()
        assert merged.count.tolist() == full.count.tolist()
        assert np.allclose(merged.sum, full.sum)
        assert np.allclose(merged.m2, full.m2)
        assert merged.first_ts.tolist() == full.first_ts.tolist()
        assert merged.last_value.tolist() == full.last_value.tolist()
        for name, column in before.items():  # the block readers may hold is unchanged
            assert getattr(a, name).tolist() == column.tolist()


def test_time_ordered_batches_with_codes_past_16_bits_sort_by_code_then_time() -> None:
    rng = np.random.default_rng(8)
    n = 5_000
    code = rng.choice(np.array([0, 70_000, 65_535, 65_536, 2**31 + 5, 131_072]), n)
    ts = np.sort(rng.integers(0, HOUR, n))
    s = sort_samples(code, ts, rng.normal(size=n))
    assert s.code.tolist() == sorted(code.tolist())
    assert s.ts.tolist() == [int(t) for t in ts[s.order]]
    pairs = list(zip(s.code.tolist(), s.ts.tolist(), strict=True))
    assert pairs == sorted(pairs)
    _columnar_vs_scalar(code, ts, rng.normal(size=n), M5)


def test_plan_orders_stored_rows_by_rank_and_time_with_their_running_totals() -> None:
    st = WindowStore(sizes=[M5, H1], lateness_us=10 * MIN)
    code = np.array([7, 3, 7, 9, 3, 7], dtype=np.int64)
    ts = np.array([5, 1, 2, 3, 4, 2], dtype=np.int64) * MIN
    value = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    rank = np.array([0, 2, 0, 1, 2, 0])  # metric 7 first, then 9, then 3
    plan = st.plan(code, ts, value, rank)
    assert code[plan.order].tolist() == [7, 7, 7, 9, 3, 3]
    assert ts[plan.order].tolist() == [*sorted(ts[code == 7].tolist()), 3 * MIN, MIN, 4 * MIN]
    # Running totals follow the stored order: metric 7 at 2m counts both ties; at 5m it is
    # in the next 5-minute window.
    assert plan.running_count.tolist() == [2, 2, 1, 1, 1, 2]
    assert plan.running_sum.tolist() == [36.0, 36.0, 1.0, 8.0, 2.0, 18.0]


def test_running_totals_include_ties_and_prior_state() -> None:
    code = np.array([1, 1, 1, 2, 1], dtype=np.int64)
    ts = np.array([10, 20, 20, 20, 30], dtype=np.int64)
    value = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    s = sort_samples(code, ts, value)
    prior_part = aggregate(sort_samples(np.array([1]), np.array([5]), np.array([100.0])), M5)
    prior = dict(prior_part)
    count, total = running_totals(s, M5, prior)
    by_row = {int(s.order[i]): (int(count[i]), float(total[i])) for i in range(len(s))}
    assert by_row == {
        0: (2, 101.0),
        1: (4, 107.0),  # ties at ts=20 both include each other
        2: (4, 107.0),
        3: (1, 8.0),  # another metric: no prior
        4: (5, 123.0),
    }


def store(**kw: object) -> WindowStore:
    return WindowStore(sizes=[M5, H1], lateness_us=10 * MIN, **kw)  # type: ignore[arg-type]


def ingest(st: WindowStore, rows: list[tuple[int, int, float]]):  # type: ignore[no-untyped-def]
    code, ts, value = (np.array(c) for c in zip(*rows, strict=True))
    plan = st.plan(code.astype(np.int64), ts.astype(np.int64), value.astype(np.float64))
    return plan, st.apply(plan)


def test_plan_changes_nothing_until_applied() -> None:
    st = store()
    code, ts, value = np.array([1]), np.array([MIN]), np.array([1.0])
    plan = st.plan(code, ts, value)
    assert st.max_timestamp is None
    assert not list(st.iter_open())
    st.apply(plan)
    assert st.max_timestamp == MIN
    with pytest.raises(RuntimeError, match="state it was made from"):
        st.apply(plan)


def test_late_samples_are_not_merged_and_closed_windows_never_change() -> None:
    st = store()
    ingest(st, [(1, 0, 1.0), (1, 2 * HOUR, 2.0)])  # watermark moves to 2h - 10m
    assert st.watermark == 2 * HOUR - 10 * MIN
    closed_before = {start for size, start, _ in st.iter_open() if size == M5}
    assert 0 not in closed_before  # the window of the first sample closed
    plan, changes = ingest(st, [(1, 60 * MIN, 5.0), (1, 2 * HOUR - 5 * MIN, 3.0)])
    assert plan.late == 1
    assert plan.on_time == 1
    assert plan.running_count.tolist() == [1, 0]  # on-time first; late rows count 0
    assert (M5, 60 * MIN) not in changes.updated  # the late sample touched no 5m window
    assert (M5, 2 * HOUR - 5 * MIN) in changes.updated


def test_windows_close_once_the_watermark_passes_their_end() -> None:
    st = store()
    _, changes = ingest(st, [(1, 0, 1.0)])
    assert changes.closed == []
    _, changes = ingest(st, [(1, 15 * MIN, 1.0)])  # watermark = 5m: closes [0, 5m)
    assert [(size, start) for size, start, _, _ in changes.closed] == [(M5, 0)]
    assert changes.evict_before[M5] == 15 * MIN - 6 * HOUR


def test_sums_beyond_the_largest_float_are_infinite_and_ingest_goes_on() -> None:
    # WIN-6: finite values whose sum overflows; numpy must not warn (warnings are errors here).
    st = store(quantiles=[M5])
    plan, _ = ingest(st, [(1, 0, 1.5e308), (1, 1, 1.5e308), (1, 2, -1e308)])
    assert plan.running_sum.tolist() == [1.5e308, np.inf, np.inf]
    open_5m = dict(st.open_blocks(M5))[0]
    assert open_5m.sum.tolist() == [np.inf]
    assert open_5m.count.tolist() == [3]
    assert np.all(np.isfinite(st.block_quantiles(M5, 0, open_5m)))
    _, changes = ingest(st, [(1, HOUR, 1.0)])  # closes the window, with the same numbers
    assert [int(block.count[0]) for size, _, block, _ in changes.closed if size == M5] == [3]


def test_retention_must_exceed_lateness() -> None:
    with pytest.raises(ConfigError, match="must exceed the allowed lateness"):
        WindowStore(sizes=[M5], lateness_us=HOUR, retention_us={M5: HOUR})


def test_running_window_must_be_configured() -> None:
    with pytest.raises(ConfigError, match="running window"):
        WindowStore(sizes=[M5], running=H1)


def test_warm_restores_windows_in_any_order() -> None:
    rows = [(c, t * MIN, float(t)) for c in range(3) for t in range(0, 200, 7)]
    live = store()
    ingest(live, rows)
    warmed = store()
    random.Random(2).shuffle(rows)
    for chunk in (rows[:30], rows[30:]):
        code, ts, value = (np.array(c) for c in zip(*chunk, strict=True))
        warmed.warm(code.astype(np.int64), ts.astype(np.int64), value.astype(np.float64))
    warmed.close_due()
    assert warmed.max_timestamp == live.max_timestamp
    a = {(z, s): b.count.tolist() for z, s, b in live.iter_open()}
    b = {(z, s): b.count.tolist() for z, s, b in warmed.iter_open()}
    assert a == b


def test_rollup_equals_aggregating_the_samples() -> None:
    from hyprstream.windows import blocks, partials, rollup

    rng = np.random.default_rng(11)
    n = 3_000
    code = rng.integers(0, 9, n)
    ts = rng.integers(-30 * HOUR, 30 * HOUR, n)
    ts[::7] = ts[3::7][: len(ts[::7])]
    value = rng.normal(1e6, 3, n).round(2)
    s = sort_samples(code, ts, value)
    five = partials(s, M5)
    for size in (WindowSize.parse("30m"), H1, WindowSize.parse("1d")):
        direct = dict(blocks(partials(s, size)))
        rolled = dict(blocks(rollup(five, size)))
        assert set(direct) == set(rolled)
        for start, block in direct.items():
            other = rolled[start]
            assert block.code.tolist() == other.code.tolist()
            assert block.count.tolist() == other.count.tolist()
            assert np.allclose(block.sum, other.sum, rtol=1e-12)
            assert np.allclose(block.m2, other.m2, rtol=1e-6, atol=1e-6)
            for name in ("min", "max", "first_ts", "last_ts", "last_value"):
                assert getattr(block, name).tolist() == getattr(other, name).tolist(), name


def test_segments_of_a_larger_size_derived_from_a_divisor_match_those_from_rows() -> None:
    from hyprstream.windows._columnar import _segments

    rng = np.random.default_rng(12)
    code = rng.integers(0, 30, 3_000)
    ts = rng.integers(-3 * 86_400_000_000, 3 * 86_400_000_000, 3_000)
    sizes = [WindowSize.parse(t) for t in ("90s", "5m", "30m", "1h", "1d", "7m")]
    derived = sort_samples(code, ts, rng.normal(size=3_000))
    for size in sizes:  # later sizes find earlier divisors in the cache
        seg, starts = _segments(derived, size)
        fresh = sort_samples(code, ts, derived.value[np.argsort(derived.order)])
        fresh_seg, fresh_starts = _segments(fresh, size)  # from the rows: nothing cached
        assert seg.tolist() == fresh_seg.tolist(), size
        assert starts.tolist() == fresh_starts.tolist(), size
        assert starts.tolist() == window_start(derived.ts[seg], size).tolist()
