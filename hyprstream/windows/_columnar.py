"""Window states for many keys at once, computed and merged with numpy (no per-row Python).

``StateColumns`` holds one row per metric code for a single window (size, start), sorted by
code. ``aggregate`` turns a batch into such partial states, ``upsert`` merges a partial into
an existing block with the same Chan merge as the scalar :func:`~._state.merge`, and
``running_totals`` computes the "as of ingest" running count and sum of each sample.

Contract (tested against the scalar reference): for every key, the columnar result equals
folding the scalar ``merge`` over the same samples, up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hyprstream.windows._spec import WindowSize, window_start
from hyprstream.windows._state import WindowState

__all__ = [
    "Partials",
    "SortedSamples",
    "StateColumns",
    "aggregate",
    "blocks",
    "by_window",
    "partials",
    "regroup",
    "rollup",
    "running_totals",
    "segmented_cumsum",
    "sort_samples",
    "upsert",
]

_I64 = np.int64
_F64 = np.float64


@dataclass(frozen=True, slots=True, kw_only=True)
class StateColumns:
    """Aggregate states of one window for several metrics; ``code`` is sorted and unique."""

    code: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    last_value: np.ndarray

    def __len__(self) -> int:
        return len(self.code)

    def take(self, index: np.ndarray | slice) -> StateColumns:
        """The states at ``index`` (positions, or a slice: views, no copy)."""
        return StateColumns(**{name: getattr(self, name)[index] for name in _FIELDS})

    def state(self, i: int) -> WindowState:
        return WindowState(
            count=int(self.count[i]),
            sum=float(self.sum[i]),
            min=float(self.min[i]),
            max=float(self.max[i]),
            mean=float(self.mean[i]),
            m2=float(self.m2[i]),
            first_timestamp=int(self.first_ts[i]),
            last_timestamp=int(self.last_ts[i]),
            last_value=float(self.last_value[i]),
        )

    def items(self) -> Iterator[tuple[int, WindowState]]:
        for i in range(len(self)):
            yield int(self.code[i]), self.state(i)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _FIELDS)


_FIELDS = tuple(StateColumns.__dataclass_fields__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SortedSamples:
    """Samples ordered by (code, timestamp); ``order`` maps back to the input rows.

    The order among samples of one metric at the same instant is unspecified: nothing
    computed from a ``SortedSamples`` depends on it.
    """

    order: np.ndarray
    code: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    #: Start of each run of equal (code, timestamp), and the largest value in each run.
    tie_start: np.ndarray
    tie_max: np.ndarray
    #: Segmentation per window size, computed once (see ``_segments``).
    segments: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.code)


def sort_samples(code: np.ndarray, ts: np.ndarray, value: np.ndarray) -> SortedSamples:
    """Sort by (metric code, timestamp) once; every window size reuses the order.

    Code order keeps every later step linear: partial states come out in the order window
    blocks keep (no re-sort per size), and lookups into those blocks search sorted needles.
    """
    if len(code) == 0:
        order = np.zeros(0, dtype=np.intp)
    elif bool(np.all(ts[1:] >= ts[:-1])) and int(code.max()) - int(code.min()) < 1 << 32:
        # Samples already in time order (a live stream): a stable sort by metric alone keeps
        # each metric's samples in time order. Stable sorts of 16-bit keys are radix sorts,
        # so two of them (low half, then high half) sort 32-bit codes in linear time.
        key = code - code.min()
        order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
        if int(key.max()) >= 1 << 16:
            high = (key[order] >> 16).astype(np.uint16)
            order = order[np.argsort(high, kind="stable")]
    else:
        # One packed int64 key sorts about twice as fast as lexsort on two keys; it fits
        # whenever the batch's code range and time span need 62 bits or fewer together.
        t0, k0 = int(ts.min()), int(code.min())
        span_bits = (int(ts.max()) - t0).bit_length()
        if span_bits + (int(code.max()) - k0).bit_length() <= 62:
            order = np.argsort(((code - k0) << span_bits) | (ts - t0))
        else:
            order = np.lexsort((ts, code))
    code, ts, value = code[order], ts[order], value[order]
    if len(code):
        tie_start = _boundaries((code[1:] != code[:-1]) | (ts[1:] != ts[:-1]))
        tie_max = np.maximum.reduceat(value, tie_start)
    else:
        tie_start, tie_max = np.zeros(0, np.intp), np.zeros(0, _F64)
    return SortedSamples(
        order=order, code=code, ts=ts, value=value, tie_start=tie_start, tie_max=tie_max
    )


def regroup(s: SortedSamples, rank: np.ndarray) -> np.ndarray:
    """Positions of ``s`` reordered so that metrics follow ``rank`` (a sort key given per
    input row, the same for all rows of a metric), each metric's samples kept together and
    in time order; metrics with equal keys come in no particular order.

    Moves whole runs of one metric, so it costs a sort of the batch's distinct metrics, not
    of its rows.
    """
    n = len(s)
    if n == 0:
        return np.zeros(0, np.intp)
    first = _boundaries(s.code[1:] != s.code[:-1])
    lengths = np.diff(np.append(first, n))
    by_rank = np.argsort(rank[s.order[first]])
    first, lengths = first[by_rank], lengths[by_rank]
    out_start = np.cumsum(lengths) - lengths
    positions: np.ndarray = np.repeat(first - out_start, lengths) + np.arange(n)
    return positions


def _boundaries(change: np.ndarray) -> np.ndarray:
    """Indices where a run starts, given ``change[i]`` = row i+1 starts a new run."""
    return np.concatenate(([0], np.flatnonzero(change) + 1)).astype(np.intp)


def _segments(s: SortedSamples, size: WindowSize) -> tuple[np.ndarray, np.ndarray]:
    """Run starts of equal (code, window start), and each run's window start.

    A size that a size already segmented divides is segmented from those runs (each of its
    runs is a union of theirs), not from every row again.
    """
    cached = s.segments.get(size.micros)
    if cached is None:
        finer = [w for w in s.segments if w < size.micros and size.micros % w == 0]
        if not len(s):
            cached = (np.zeros(0, np.intp), np.zeros(0, _I64))
        elif finer:  # the coarsest of them has the fewest runs
            finer_seg, finer_starts = s.segments[max(finer)]
            starts = window_start(finer_starts, size)
            heads = s.code[finer_seg]
            keep = _boundaries((heads[1:] != heads[:-1]) | (starts[1:] != starts[:-1]))
            cached = (finer_seg[keep], starts[keep])
        else:
            row_starts = window_start(s.ts, size)
            change = (s.code[1:] != s.code[:-1]) | (row_starts[1:] != row_starts[:-1])
            seg = _boundaries(change)
            cached = (seg, row_starts[seg])
        s.segments[size.micros] = cached
    return cached


@dataclass(frozen=True, slots=True, kw_only=True)
class Partials:
    """Partial states of one batch for one window size, one row per (metric, window start),
    ordered by metric code and then by window start."""

    start: np.ndarray
    states: StateColumns
    #: The window length, in microseconds.
    width: int

    def __len__(self) -> int:
        return len(self.start)


def partials(s: SortedSamples, size: WindowSize) -> Partials:
    """Aggregate sorted samples into one partial state per (metric, window of ``size``)."""
    if len(s) == 0:
        empty = np.zeros(0, _I64)
        return Partials(
            start=empty, states=StateColumns(**{f: empty for f in _FIELDS}), width=size.micros
        )
    seg, starts = _segments(s, size)
    ends = np.append(seg[1:], len(s))
    count = (ends - seg).astype(_I64)
    total = np.add.reduceat(s.value, seg)
    mean = total / count
    dev = s.value - np.repeat(mean, count)
    m2 = np.add.reduceat(dev * dev, seg)
    # last_value: the largest value among the run's samples at its latest instant.
    last_tie = np.searchsorted(s.tie_start, ends - 1, side="right") - 1
    states = StateColumns(
        code=s.code[seg],
        count=count,
        sum=total,
        min=np.minimum.reduceat(s.value, seg),
        max=np.maximum.reduceat(s.value, seg),
        mean=mean,
        m2=m2,
        first_ts=s.ts[seg],
        last_ts=s.ts[ends - 1],
        last_value=s.tie_max[last_tie],
    )
    return Partials(start=starts, states=states, width=size.micros)


def rollup(p: Partials, size: WindowSize) -> Partials:
    """Merge partial states of a smaller size into windows of ``size``.

    Exact when every smaller window lies in one window of ``size`` (``size`` is a multiple
    of the smaller size; both are epoch-aligned). This is how larger windows are built: from
    the few partials of the smallest size, not from the samples again.
    """
    if len(p) == 0:
        return Partials(start=p.start, states=p.states, width=size.micros)
    a = p.states
    starts = window_start(p.start, size)
    seg = _boundaries((a.code[1:] != a.code[:-1]) | (starts[1:] != starts[:-1]))
    lengths = np.diff(np.append(seg, len(p)))
    count = np.add.reduceat(a.count, seg)
    total = np.add.reduceat(a.sum, seg)
    mean = total / count
    # Chan et al., for many parts at once: M2 = sum(M2_i) + sum(n_i (mean_i - mean)^2).
    spread = a.mean - np.repeat(mean, lengths)
    m2 = np.add.reduceat(a.m2, seg) + np.add.reduceat(a.count * spread * spread, seg)
    last_ts = np.maximum.reduceat(a.last_ts, seg)
    at_last = a.last_ts == np.repeat(last_ts, lengths)
    last_value = np.maximum.reduceat(np.where(at_last, a.last_value, -np.inf), seg)
    states = StateColumns(
        code=a.code[seg],
        count=count,
        sum=total,
        min=np.minimum.reduceat(a.min, seg),
        max=np.maximum.reduceat(a.max, seg),
        mean=mean,
        m2=m2,
        first_ts=np.minimum.reduceat(a.first_ts, seg),
        last_ts=last_ts,
        last_value=last_value,
    )
    return Partials(start=starts[seg], states=states, width=size.micros)


def by_window(start: np.ndarray, width: int) -> list[tuple[int, slice | np.ndarray]]:
    """Positions grouped by window start (windows ascending), in their order within each.

    A stable sort by window start keeps rows that are ordered by metric code so; a batch
    within one window (a live stream, mostly) needs no sort at all.
    """
    if len(start) == 0:
        return []
    lo, hi = int(start.min()), int(start.max())
    if lo == hi:
        return [(lo, slice(None))]
    index = (start - lo) // width
    if (hi - lo) // width < 1 << 16:
        order = np.argsort(index.astype(np.uint16), kind="stable")  # a radix sort
    else:
        order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    cuts = _boundaries(sorted_index[1:] != sorted_index[:-1])
    return [
        (lo + int(sorted_index[a]) * width, order[a:b])
        for a, b in zip(cuts, np.append(cuts[1:], len(order)), strict=True)
    ]


def blocks(p: Partials) -> list[tuple[int, StateColumns]]:
    """Partial states grouped by window start, each block ordered by metric code."""
    return [(start, p.states.take(rows)) for start, rows in by_window(p.start, p.width)]


def aggregate(s: SortedSamples, size: WindowSize) -> list[tuple[int, StateColumns]]:
    """Partial states of ``s`` for windows of ``size``, as (window start, block) pairs."""
    return blocks(partials(s, size))


def merge_aligned(a: StateColumns, b: StateColumns) -> StateColumns:
    """Chan merge of row i of ``a`` with row i of ``b`` (same codes, same order)."""
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.count * (b.count / n))
    b_later = b.last_ts > a.last_ts
    same = b.last_ts == a.last_ts
    last_value = np.where(b_later, b.last_value, a.last_value)
    last_value = np.where(same, np.maximum(a.last_value, b.last_value), last_value)
    return StateColumns(
        code=a.code,
        count=n,
        sum=a.sum + b.sum,
        min=np.minimum(a.min, b.min),
        max=np.maximum(a.max, b.max),
        mean=mean,
        m2=m2,
        first_ts=np.minimum(a.first_ts, b.first_ts),
        last_ts=np.maximum(a.last_ts, b.last_ts),
        last_value=last_value,
    )


def _locate(block: StateColumns, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insertion positions of ``codes`` in ``block`` and whether each is already there."""
    pos = np.searchsorted(block.code, codes)
    hit = pos < len(block)
    hit[hit] = block.code[pos[hit]] == codes[hit]
    return pos, hit


def upsert(block: StateColumns | None, part: StateColumns) -> StateColumns:
    """``block`` with ``part`` merged in; returns a new block and leaves both inputs intact
    (readers may hold ``block``)."""
    if block is None or len(block) == 0:
        return part
    pos, hit = _locate(block, part.code)
    n_hit = int(np.count_nonzero(hit))
    if n_hit == len(part):  # every metric already has a state: same codes, same layout
        merged = merge_aligned(block.take(pos), part)
        fields = {"code": block.code}
        for name in _FIELDS[1:]:
            column = getattr(block, name).copy()
            column[pos] = getattr(merged, name)
            fields[name] = column
        return StateColumns(**fields)
    # Codes are sorted in both, so the new rows land at their insertion points shifted by
    # the new rows before them; the old rows fill the other places, in order.
    miss = np.flatnonzero(~hit)
    size = len(block) + len(miss)
    new_at = pos[miss] + np.arange(len(miss))
    old_at = np.ones(size, bool)
    old_at[new_at] = False
    old_at = np.flatnonzero(old_at)
    merged_at = old_at[pos[hit]]
    both = None
    if n_hit:
        both = merge_aligned(block.take(pos[hit]), part.take(np.flatnonzero(hit)))
    fields = {}
    for name in _FIELDS:
        old, new = getattr(block, name), getattr(part, name)
        column = np.empty(size, old.dtype)
        column[old_at] = old
        column[new_at] = new[miss]
        if both is not None and name != "code":
            column[merged_at] = getattr(both, name)
        fields[name] = column
    return StateColumns(**fields)


def segmented_cumsum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Prefix sums that restart at every segment, each summed only over its own values.

    A single cumulative sum minus each segment's offset would lose a small metric's values
    next to a large one (1e-11 after 1e9 sums to 0.0). Segments of equal length are summed
    together as the rows of a 2-D array, so there is one numpy call per distinct length.
    """
    out = np.empty_like(values)
    for length in np.unique(lengths):
        first = starts[lengths == length]
        index = first[:, None] + np.arange(length)[None, :]
        out[index] = np.cumsum(values[index], axis=1)
    return out


def running_totals(
    s: SortedSamples, size: WindowSize, prior: dict[int, StateColumns]
) -> tuple[np.ndarray, np.ndarray]:
    """Running count and sum of each sample of ``s``, in the sorted order.

    A sample's running total covers every sample of its metric and window merged before
    this batch (``prior``, keyed by window start) plus the samples of this batch with a
    timestamp at or before its own (so samples sharing an instant share their totals).
    """
    n = len(s)
    if n == 0:
        return np.zeros(0, _I64), np.zeros(0, _F64)
    seg, starts = _segments(s, size)
    # Last row of each run of equal (code, window, timestamp): ties share that row's total.
    if len(s.tie_start) == n:  # no ties: every row is its own run
        row_tie_end = np.arange(n)
    else:
        tie_end = np.append(s.tie_start[1:], n) - 1
        tie_len = np.diff(np.append(s.tie_start, n))
        row_tie_end = np.repeat(tie_end, tie_len)
    seg_len = np.diff(np.append(seg, n))
    row_seg_start = np.repeat(seg, seg_len)

    csum = segmented_cumsum(s.value, seg, seg_len)
    run_sum = csum[row_tie_end]
    run_count = (row_tie_end - row_seg_start + 1).astype(_I64)

    # Add what earlier batches merged into the same (metric, window).
    prior_count = np.zeros(len(seg), _I64)
    prior_sum = np.zeros(len(seg), _F64)
    seg_code = s.code[seg]
    for start, group in by_window(starts, size.micros):
        block = prior.get(start)
        if block is None or len(block) == 0:
            continue
        idx = np.arange(len(seg)) if isinstance(group, slice) else group
        pos, hit = _locate(block, seg_code[idx])
        prior_count[idx[hit]] = block.count[pos[hit]]
        prior_sum[idx[hit]] = block.sum[pos[hit]]
    run_count += np.repeat(prior_count, seg_len)
    run_sum = run_sum + np.repeat(prior_sum, seg_len)
    return run_count, run_sum
