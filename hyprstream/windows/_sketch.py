"""Approximate quantiles with a mergeable relative-error sketch (spec/windows.md, WIN-16..WIN-18).

The algorithm is DDSketch (Masson, Rim and Lee, VLDB 2019): a value ``x > 0`` falls into
bucket ``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, and the bucket is reported as
``2 gamma^i / (gamma + 1)``, which is within relative accuracy ``a`` of every value in it.
Negative values use the same buckets on ``-x``; values with ``|x| < MIN_INDEXABLE`` count as 0.
A sketch is a multiset of buckets, so merging is adding counts: associative and commutative.

Buckets are encoded as one int32 *key* that orders like the values it stands for (negative
values below zero below positive values), so that a sorted list of (key, count) pairs is the
cumulative distribution. The quantile ``q`` of ``n`` values is the bucket holding the value
of rank ``floor(q (n - 1))`` (0-based), within relative accuracy ``a`` of that value.

Why not Apache DataSketches' KLL: its Python API updates one sketch per call, and a 64k-row
batch touches about 25,000 (metric, window) pairs, at 2-5 microseconds per call: 50 to 125 ms
per batch, more than the whole ingest budget. Here every step is a numpy call over the batch.

Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "QUANTILES",
    "RELATIVE_ACCURACY",
    "Sketches",
    "keys_of",
    "value_of",
]

RELATIVE_ACCURACY = 0.01
QUANTILES = (0.5, 0.9, 0.99)
MIN_INDEXABLE = 1e-9
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = float(np.log(_GAMMA))
_LOG_SCALE = float(np.log(2.0 / (_GAMMA + 1.0)))
_LARGEST = float(np.finfo(np.float64).max)
_BIAS = 2_000  # ceil(log_gamma(1e-9)) is about -1037; keeps positive keys >= 1


def keys_of(values: np.ndarray) -> np.ndarray:
    """The bucket key of each value (int32, monotone in the value)."""
    magnitude = np.abs(values)
    indexable = magnitude >= MIN_INDEXABLE
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(np.where(indexable, magnitude, 1.0)) / _LOG_GAMMA)
    keys = (index + _BIAS).astype(np.int32)
    keys = np.where(values < 0, -keys, keys)
    return np.where(indexable, keys, 0).astype(np.int32)


def _reduce(packed: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``packed`` entries with equal ones added up: unique entries and their counts."""
    if not len(packed):
        return packed, counts
    runs = np.concatenate(([0], np.flatnonzero(packed[1:] != packed[:-1]) + 1))
    if len(runs) == len(packed):
        return packed, counts
    summed: np.ndarray = np.add.reduceat(counts, runs)
    return packed[runs], summed


def value_of(keys: np.ndarray) -> np.ndarray:
    """The representative value of each bucket key."""
    index = np.abs(keys).astype(np.float64) - _BIAS
    # 2 * gamma**index / (gamma + 1), in logarithms: gamma**index alone overflows for the
    # largest buckets. Values near the largest float are capped at it (they hold no more).
    with np.errstate(over="ignore"):
        magnitude = np.exp(index * _LOG_GAMMA + _LOG_SCALE)
    magnitude = np.minimum(magnitude, _LARGEST)
    out = np.where(keys < 0, -magnitude, magnitude)
    out[keys == 0] = 0.0
    result: np.ndarray = out
    return result


@dataclass(frozen=True, slots=True)
class Sketches:
    """Sketches of several metrics of one window, as compressed rows.

    Row ``i`` (metric ``code[i]``, ascending and unique) holds ``keys[offsets[i]:offsets[i+1]]``
    with ``counts`` alongside. Keys within a row are unique and ascending when ``compact``;
    a raw sketch (fresh from a batch) may repeat keys in any order.
    """

    code: np.ndarray
    offsets: np.ndarray
    keys: np.ndarray
    counts: np.ndarray
    compact: bool = False

    def __len__(self) -> int:
        return len(self.code)

    @property
    def nbytes(self) -> int:
        return int(self.code.nbytes + self.offsets.nbytes + self.keys.nbytes + self.counts.nbytes)

    @classmethod
    def of_runs(cls, code: np.ndarray, offsets: np.ndarray, keys: np.ndarray) -> Sketches:
        """Raw sketches: metric ``code[i]`` saw the keys ``keys[offsets[i]:offsets[i+1]]``."""
        return cls(code, offsets, keys, np.ones(len(keys), np.int64))

    def _packed(self) -> np.ndarray:
        """One int64 per entry, ordered like (metric, bucket)."""
        code = np.repeat(self.code.astype(np.int64), np.diff(self.offsets))
        packed: np.ndarray = (code << 32) | (self.keys.astype(np.int64) + (1 << 31))
        return packed

    @staticmethod
    def merge(parts: list[Sketches]) -> Sketches:
        """All parts added together, compacted (unique ascending keys per metric).

        Raw parts are sorted together with a plain sort (numpy does it with SIMD; their
        counts are all 1, so only the keys move), then merged with the compact parts, which
        are sorted already: a stable sort of sorted runs is a linear merge for timsort."""
        parts = [p for p in parts if len(p)]
        if not parts:
            empty = np.zeros(0, np.int64)
            return Sketches(
                empty, np.zeros(1, np.int64), np.zeros(0, np.int32), empty, compact=True
            )
        runs = [(p._packed(), p.counts) for p in parts if p.compact]
        raw = [p for p in parts if not p.compact]
        if raw:  # every count of a raw part is 1 (of_runs): the run lengths are the counts
            packed = np.sort(np.concatenate([p._packed() for p in raw]))
            starts = np.concatenate(([0], np.flatnonzero(packed[1:] != packed[:-1]) + 1))
            runs.append((packed[starts], np.diff(np.append(starts, len(packed)))))
        if len(runs) == 1:
            packed, counts = runs[0]
        else:
            packed = np.concatenate([r[0] for r in runs])
            counts = np.concatenate([r[1] for r in runs])
            order = np.argsort(packed, kind="stable")
            packed, counts = _reduce(packed[order], counts[order])
        code = packed >> 32
        keys = ((packed & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)
        row_start = np.concatenate(([0], np.flatnonzero(code[1:] != code[:-1]) + 1))
        offsets = np.append(row_start, len(code)).astype(np.int64)
        return Sketches(code[row_start], offsets, keys, counts, compact=True)

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:
        """``(len(self), len(qs))`` estimates; the sketches must be compact."""
        if not len(self):
            return np.zeros((0, len(qs)))
        cumulative = np.cumsum(self.counts)
        before = np.concatenate(([0], cumulative))[self.offsets[:-1]]
        total = cumulative[self.offsets[1:] - 1] - before
        out = np.empty((len(self), len(qs)))
        for j, q in enumerate(qs):
            rank = np.floor(q * (total - 1)).astype(np.int64)
            # The first bucket whose cumulative count exceeds the rank holds that value.
            at = np.searchsorted(cumulative, before + rank, side="right")
            out[:, j] = value_of(self.keys[at])
        return out
