"""WIN-2..WIN-14 against the naive oracle (conformance.oracle): for any stream, any split into
batches and any arrival order, the served windows and running columns equal the oracle's."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from conformance.machine import (
    BASE,
    HOUR,
    ServiceEngine,
    WindowMachine,
    _default_oracle,
    assert_rows_match,
    assert_windows_match,
    to_batch,
    values,
)
from hyprstream.windows import WindowSize, WindowState, aggregate, merge, sort_samples, upsert

pytestmark = pytest.mark.filterwarnings("ignore:engine 'memory'")

samples = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(-3 * HOUR, 3 * HOUR).map(lambda t: BASE + t),
        values,
    ),
    min_size=1,
    max_size=60,
)


def split(stream: list, cuts: list[int]) -> list[list]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=60)
@given(stream=samples, cuts=st.lists(st.integers(0, 1000), max_size=6), seed=st.integers(0, 2**32 - 1))
def test_any_stream_any_split_any_order(stream: list, cuts: list[int], seed: int) -> None:
    """Arbitrary arrival order, late samples included: the oracle applies the same lateness."""
    random.Random(seed).shuffle(stream)
    engine = ServiceEngine.create()
    oracle = _default_oracle()
    try:
        for batch in split(stream, cuts):
            note(f"batch {batch}")
            assert engine.ingest(to_batch(batch)) == oracle.ingest(batch)
        assert_windows_match(engine, oracle)
        assert_rows_match(engine, oracle)
    finally:
        engine.close()


@settings(max_examples=40)
@given(stream=samples, cuts=st.lists(st.integers(0, 1000), max_size=6), jitter=st.lists(st.floats(0, 0.999), min_size=60, max_size=60))
def test_order_within_lateness_merges_everything(stream: list, cuts: list[int], jitter: list[float]) -> None:
    """Arrival order within the lateness bound: no sample is late, so the windows are exactly
    those of the whole stream, whatever the batching."""
    # Arrive in order of timestamp + U[0, lateness): never behind the watermark.
    arrival = sorted(stream, key=lambda s: s[1] + jitter[stream.index(s) % len(jitter)] * HOUR)
    engine = ServiceEngine.create()
    oracle = _default_oracle()
    try:
        late = 0
        for batch in split(arrival, cuts):
            _, batch_late = engine.ingest(to_batch(batch))
            oracle.ingest(batch)
            late += batch_late
        assert late == 0
        assert len(oracle.merged) == len(stream)
        assert_windows_match(engine, oracle)
    finally:
        engine.close()


def test_state_machine() -> None:
    # Each step runs a real ingest and queries; a sixth of the profile's examples keeps the
    # default run near ten seconds (the nightly profile runs 300+ programs).
    current = settings.default
    run_state_machine_as_test(
        lambda: WindowMachine(ServiceEngine.create()),
        settings=settings(current, max_examples=max(10, current.max_examples // 6), stateful_step_count=25),
    )


# -- merge algebra, on the scalar and the columnar form --------------------------------------

states = st.lists(st.tuples(st.integers(0, 10**6), values), min_size=1, max_size=20).map(WindowState.of)


def same(a: WindowState, b: WindowState) -> None:
    assert a.count == b.count
    scale = max(abs(a.min), abs(a.max), 1.0) * a.count
    assert abs(a.sum - b.sum) <= 1e-9 * scale
    assert abs(a.mean - b.mean) <= 1e-9 * max(abs(a.min), abs(a.max), 1.0)
    spread = a.max - a.min
    assert abs(a.m2 - b.m2) <= 1e-9 * (spread * spread * a.count + scale)
    assert (a.min, a.max, a.first_timestamp, a.last_timestamp, a.last_value) == (
        b.min, b.max, b.first_timestamp, b.last_timestamp, b.last_value)


@given(states, states, states)
def test_merge_is_associative(a: WindowState, b: WindowState, c: WindowState) -> None:
    same(merge(merge(a, b), c), merge(a, merge(b, c)))


@given(states, states)
def test_merge_is_commutative(a: WindowState, b: WindowState) -> None:
    same(merge(a, b), merge(b, a))


@given(
    st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=200),
    st.sampled_from([1e6, 1e9, 1e12]),
    st.integers(1, 7),
)
def test_variance_stays_correct_for_large_offsets(noise: list[float], offset: float, parts: int) -> None:
    xs = [offset + x for x in noise]
    chunks = [xs[i::parts] for i in range(parts) if xs[i::parts]]
    total = None
    for chunk in chunks:
        s = WindowState.of((i, v) for i, v in enumerate(chunk))
        total = s if total is None else merge(total, s)
    assert total is not None
    # The exact variance of the noise (the offset does not change it), in exact arithmetic.
    from fractions import Fraction

    exact_xs = [Fraction(x) for x in xs]
    mean = sum(exact_xs) / len(xs)
    exact = float(sum((x - mean) ** 2 for x in exact_xs) / len(xs))
    # Representing offset + x in float64 already moves x by up to half an ulp of the offset.
    ulp = np.spacing(offset)
    assert abs(total.variance - exact) <= 4 * ulp * (max(abs(v) for v in noise) + ulp) + 1e-9 * exact


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(-10**7, 10**7), values), min_size=1, max_size=80),
    st.integers(1, 4),
)
def test_columnar_partials_merge_like_the_whole(rows: list, parts: int) -> None:
    """Aggregating parts and upserting them in any order equals aggregating everything."""
    size = WindowSize.parse("5m")
    code = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    value = np.array([r[2] for r in rows], dtype=np.float64)
    whole = dict(aggregate(sort_samples(code, ts, value), size))
    merged: dict = {}
    for k in reversed(range(parts)):
        idx = np.arange(k, len(rows), parts)
        for start, block in aggregate(sort_samples(code[idx], ts[idx], value[idx]), size):
            merged[start] = upsert(merged.get(start), block)
    assert set(merged) == set(whole)
    for start, block in whole.items():
        got = dict(merged[start].items())
        for c, state in block.items():
            same(got[c], state)


def test_a_broken_merge_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above can fail: drop the delta term of Chan's merge and the columnar merge no
    longer equals the whole (run the full property suite with such a mutant to see them all fail)."""
    import hyprstream.windows._columnar as columnar

    original = columnar.merge_aligned

    def broken(a, b):  # type: ignore[no-untyped-def]
        merged = original(a, b)
        return columnar.StateColumns(**{**{f: getattr(merged, f) for f in columnar._FIELDS}, "m2": a.m2 + b.m2})

    monkeypatch.setattr(columnar, "merge_aligned", broken)
    with pytest.raises(AssertionError):
        test_columnar_partials_merge_like_the_whole.hypothesis.inner_test(  # type: ignore[attr-defined]
            [(0, 0, 1.0), (0, 1, 5.0), (0, 2, 9.0), (0, 3, 2.0)], 2
        )
