"""One window's aggregate state, and how two states merge (spec/windows.md, WIN-4 to WIN-7).

Contract: ``merge`` is associative and commutative, and ``WindowState.of(xs)`` merged with
``WindowState.of(ys)`` equals ``WindowState.of(xs + ys)`` up to floating-point rounding.
Variance uses Welford's M2 with Chan et al.'s pairwise merge, so it stays accurate for values
near 1e9 with unit spread, where the naive ``sum(x^2) - sum(x)^2 / n`` collapses to 0.

``last_value`` is the value at ``last_timestamp``; when several samples share that instant,
the largest of their values, which keeps ``merge`` commutative (arrival order is not part
of the state).

This scalar form is the reference; the columnar form in ``_columnar`` computes the same
thing for many keys at once and is tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["WindowState", "merge"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowState:
    count: int
    sum: float
    min: float
    max: float
    mean: float
    m2: float
    first_timestamp: int
    last_timestamp: int
    last_value: float

    def __post_init__(self) -> None:
        if self.count <= 0:
            raise ValueError("a window state holds at least one sample")

    @classmethod
    def of(cls, samples: Iterable[tuple[int, float]]) -> WindowState:
        """The state of ``(timestamp_us, value)`` samples, by Welford's update."""
        state: WindowState | None = None
        for ts, value in samples:
            one = cls(
                count=1,
                sum=value,
                min=value,
                max=value,
                mean=value,
                m2=0.0,
                first_timestamp=ts,
                last_timestamp=ts,
                last_value=value,
            )
            state = one if state is None else merge(state, one)
        if state is None:
            raise ValueError("no samples")
        return state

    @property
    def avg(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        """Population variance (the spec's ``variance`` column, WIN-6)."""
        return self.m2 / self.count

    @property
    def stddev(self) -> float:
        return math.sqrt(self.variance)


def merge(a: WindowState, b: WindowState) -> WindowState:
    """Chan et al.'s pairwise merge of two states of the same window."""
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / n)
    if a.last_timestamp != b.last_timestamp:
        last = a if a.last_timestamp > b.last_timestamp else b
        last_ts, last_value = last.last_timestamp, last.last_value
    else:
        last_ts, last_value = a.last_timestamp, max(a.last_value, b.last_value)
    return WindowState(
        count=n,
        sum=a.sum + b.sum,
        min=min(a.min, b.min),
        max=max(a.max, b.max),
        mean=mean,
        m2=m2,
        first_timestamp=min(a.first_timestamp, b.first_timestamp),
        last_timestamp=last_ts,
        last_value=last_value,
    )
