"""WIN-16..WIN-18: the quantile sketch: monotone keys, relative accuracy, exact merges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyprstream.windows._sketch import RELATIVE_ACCURACY, Sketches, keys_of, value_of

finite = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False) | finite, min_size=2, max_size=200
    )
)
def test_keys_order_like_values_and_stand_for_them(values: list[float]) -> None:
    x = np.array(sorted(values))
    keys = keys_of(x)
    assert np.all(np.diff(keys) >= 0)
    estimate = value_of(keys)
    tiny = np.abs(x) < 1e-9
    assert np.all(estimate[tiny] == 0)
    rel = np.abs(estimate[~tiny] - x[~tiny]) / np.abs(x[~tiny])
    assert np.all(rel <= RELATIVE_ACCURACY * (1 + 1e-9))


def sketch(metric_values: dict[int, list[float]]) -> Sketches:
    codes = sorted(metric_values)
    lengths = [len(metric_values[c]) for c in codes]
    keys = keys_of(np.concatenate([np.array(metric_values[c], float) for c in codes]))
    return Sketches.of_runs(np.array(codes), np.concatenate(([0], np.cumsum(lengths))), keys)


@given(
    st.dictionaries(st.integers(0, 5), st.lists(finite, min_size=1, max_size=50), min_size=1),
    st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
)
def test_quantiles_within_relative_accuracy(data: dict[int, list[float]], q: float) -> None:
    merged = Sketches.merge([sketch(data)])
    got = merged.quantiles((q,))[:, 0]
    for row, code in enumerate(merged.code.tolist()):
        values = sorted(data[code])
        exact = values[int(np.floor(q * (len(values) - 1)))]
        assert abs(got[row] - exact) <= RELATIVE_ACCURACY * (1 + 1e-9) * abs(exact) + 1e-9


@given(
    st.lists(st.dictionaries(st.integers(0, 3), st.lists(finite, min_size=1, max_size=10), min_size=1), min_size=1, max_size=4)
)
def test_merge_is_order_independent_and_exact(parts: list[dict[int, list[float]]]) -> None:
    sketches = [sketch(p) for p in parts]
    a = Sketches.merge(sketches)
    b = Sketches.merge(list(reversed(sketches)))
    c = Sketches.merge([Sketches.merge(sketches[:1]), Sketches.merge(sketches[1:])])
    for other in (b, c):
        assert np.array_equal(a.code, other.code)
        assert np.array_equal(a.offsets, other.offsets)
        assert np.array_equal(a.keys, other.keys)
        assert np.array_equal(a.counts, other.counts)
    everything: dict[int, list[float]] = {}
    for p in parts:
        for code, values in p.items():
            everything.setdefault(code, []).extend(values)
    whole = Sketches.merge([sketch(everything)])
    assert np.array_equal(whole.keys, a.keys)
    assert np.array_equal(whole.counts, a.counts)


def test_sketch_size_is_bounded_by_the_value_range() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(50, 10, 100_000)
    s = Sketches.merge([sketch({0: list(values)})])
    # Values within [~5, ~95]: log(19)/log(gamma) buckets, whatever the count.
    assert len(s.keys) < 160
    assert s.counts.sum() == 100_000
    assert s.quantiles((0.5,))[0, 0] == pytest.approx(np.quantile(values, 0.5), rel=0.011)


def test_the_largest_buckets_stand_for_finite_values() -> None:
    # gamma ** index overflows for these: the estimate is worked out in logarithms, capped.
    x = np.array([1.5e308, -1.7e308, np.finfo(np.float64).max])
    estimate = value_of(keys_of(x))
    assert np.all(np.isfinite(estimate))
    assert np.all(np.abs(estimate - x) <= RELATIVE_ACCURACY * np.abs(x))
