"""The open windows of every configured size, the watermark, and what closes and expires.

Theory of operation (spec/windows.md, WIN-8 to WIN-14):

* Stream time is the largest sample timestamp merged so far (``max_timestamp``). The
  watermark is stream time minus the allowed lateness. Both only move forwards.
* A sample whose timestamp is below the watermark in force *before its batch* is late: it
  is not merged into any window (it is still stored raw, and counted). Every other sample
  is merged into its window of every size; that window is necessarily still open.
* A window ``[start, end)`` is open while ``end > watermark``; once the watermark reaches
  ``end`` it is closed and never changes again. Closing hands the final state out of the
  store (``StoreChanges.closed``) to whoever keeps closed windows.
* A closed window is kept until ``end <= max_timestamp - retention[size]``; the store hands
  out one cutoff per size and whoever keeps closed windows drops those at or below it.
  Retention is longer than lateness, so eviction only ever touches closed windows, and
  dropping one window never changes another.

Ingest is two-phase so that a write-through backend can refuse a batch: ``plan`` computes
everything (running totals, partial states) without changing the store; ``apply`` merges a
plan that the backend accepted. Plans must be applied in the order they were made.

Pure: no clock, no I/O, no threads; callers serialise ``plan``/``apply``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hyprstream.errors import ConfigError
from hyprstream.windows._columnar import (
    Partials,
    SortedSamples,
    StateColumns,
    _segments,
    aggregate,
    blocks,
    by_window,
    partials,
    regroup,
    rollup,
    running_totals,
    sort_samples,
    upsert,
)
from hyprstream.windows._sketch import Sketches, keys_of
from hyprstream.windows._spec import DEFAULT_SIZES, WindowSize

__all__ = [
    "DEFAULT_LATENESS_US",
    "DEFAULT_RETENTION",
    "IngestPlan",
    "StoreChanges",
    "WindowStore",
]

_HOUR = 3_600_000_000
DEFAULT_LATENESS_US = _HOUR

#: Default retention of closed windows per size (WIN-11); sizes not listed keep 48 of their
#: own length.
DEFAULT_RETENTION: Mapping[str, int] = {
    "5m": 6 * _HOUR,
    "30m": 48 * _HOUR,
    "1h": 48 * _HOUR,
    "1d": 30 * 24 * _HOUR,
}


def default_retention(size: WindowSize) -> int:
    return DEFAULT_RETENTION.get(size.label, 48 * size.micros)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestPlan:
    """What merging one batch will do, computed without changing the store.

    ``order`` lists the batch's rows as they should be stored: the on-time rows sorted by
    (metric, timestamp), then the late rows in arrival order. ``running_count`` and
    ``running_sum`` follow ``order``; late rows have count 0 (served as NULL).
    """

    order: np.ndarray
    on_time: int
    running_count: np.ndarray
    running_sum: np.ndarray
    partials: Mapping[WindowSize, list[tuple[int, StateColumns]]]
    sketches: Mapping[WindowSize, list[tuple[int, Sketches]]]
    #: Windows this batch closes, with their final states and quantiles: what a backend
    #: commits together with the batch, and what ``apply`` hands out as closed.
    closing: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]]
    max_timestamp: int | None
    base_version: int

    @property
    def late(self) -> int:
        return len(self.order) - self.on_time


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreChanges:
    """What ``apply`` changed, for the shell that mirrors windows into a queryable store."""

    updated: list[tuple[WindowSize, int]] = field(default_factory=list)
    #: Closed windows: final states and their quantiles (rows aligned; None without sketches).
    closed: list[tuple[WindowSize, int, StateColumns, np.ndarray | None]] = field(
        default_factory=list
    )
    evict_before: dict[WindowSize, int] = field(default_factory=dict)


#: Sums of finite values can still overflow: windows then hold what IEEE arithmetic gives
#: (an infinite sum, an infinite or NaN mean or variance) and ingest goes on (WIN-6); numpy
#: is not to warn about it.
_ieee = np.errstate(over="ignore", invalid="ignore")


class WindowStore:
    """Open window states, per size and window start, for metrics identified by int codes."""

    def __init__(
        self,
        *,
        sizes: Sequence[WindowSize] = DEFAULT_SIZES,
        running: WindowSize | None = None,
        lateness_us: int = DEFAULT_LATENESS_US,
        retention_us: Mapping[WindowSize, int] | None = None,
        quantiles: Sequence[WindowSize] | None = None,
    ) -> None:
        if not sizes:
            raise ConfigError("at least one window size is needed")
        if len(set(sizes)) != len(sizes):
            raise ConfigError("window sizes must be distinct")
        if lateness_us < 0:
            raise ConfigError("allowed lateness must not be negative")
        self.sizes: tuple[WindowSize, ...] = tuple(sorted(sizes))
        self.running = running if running is not None else self.sizes[0]
        if self.running not in self.sizes:
            raise ConfigError(f"the running window {self.running} is not a configured window size")
        self.lateness_us = lateness_us
        retention = dict(retention_us or {})
        self.retention_us = {s: retention.get(s, default_retention(s)) for s in self.sizes}
        for size, keep in self.retention_us.items():
            if keep <= lateness_us:
                raise ConfigError(
                    f"retention of {size} windows ({keep // 1_000_000} s) must exceed the allowed "
                    f"lateness ({lateness_us // 1_000_000} s), or open windows would be evicted"
                )
        self._open: dict[WindowSize, dict[int, StateColumns]] = {s: {} for s in self.sizes}
        # Each size is built from the largest smaller size that divides it, if any.
        self._rollup_source: dict[WindowSize, WindowSize] = {}
        for i, size in enumerate(self.sizes):
            divisors = [d for d in self.sizes[:i] if size.micros % d.micros == 0]
            if divisors:
                self._rollup_source[size] = divisors[-1]
        self._max_ts: int | None = None
        self._version = 0  # bumped by every change, so stale plans are refused
        # Sizes whose windows carry quantile sketches (default: all).
        self.quantile_sizes: tuple[WindowSize, ...] = (
            self.sizes if quantiles is None else tuple(sorted(set(quantiles)))
        )
        unknown = set(self.quantile_sizes) - set(self.sizes)
        if unknown:
            raise ConfigError(
                f"quantiles requested for {', '.join(s.label for s in sorted(unknown))}, "
                "which are not configured window sizes"
            )
        # Sketches of open windows only: compacted part and parts from batches since.
        self._sketches: dict[WindowSize, dict[int, list[Sketches]]] = {s: {} for s in self.sizes}

    # -- time ------------------------------------------------------------------------------

    @property
    def max_timestamp(self) -> int | None:
        return self._max_ts

    @property
    def watermark(self) -> int | None:
        """Samples below this instant are late; ``None`` before the first sample."""
        return None if self._max_ts is None else self._max_ts - self.lateness_us

    # -- ingest ----------------------------------------------------------------------------

    @_ieee
    def plan(
        self,
        code: np.ndarray,
        ts: np.ndarray,
        value: np.ndarray,
        rank: np.ndarray | None = None,
    ) -> IngestPlan:
        """Plan merging samples (metric codes, UTC microseconds, values); changes nothing.

        ``rank`` (optional: a sort key per row, the same for every row of a metric) sets the
        order of metrics in ``IngestPlan.order``; by default they are ordered by code.
        The windows keep code order whatever the rank.
        """
        n = len(code)
        wm = self.watermark
        if wm is None or n == 0:
            on_time_rows = np.arange(n)
            late_rows = np.zeros(0, dtype=np.intp)
        else:
            late_mask = ts < wm
            on_time_rows = np.flatnonzero(~late_mask)
            late_rows = np.flatnonzero(late_mask)
        s = sort_samples(code[on_time_rows], ts[on_time_rows], value[on_time_rows])
        run_count, run_sum = running_totals(s, self.running, self._open[self.running])
        stored = s.order
        if rank is not None:  # stored in rank order; the windows keep code order
            by_rank = regroup(s, rank[on_time_rows])
            stored, run_count, run_sum = stored[by_rank], run_count[by_rank], run_sum[by_rank]
        by_size: dict[WindowSize, Partials] = {}
        for size in self.sizes:  # ascending: roll up from a smaller size that divides this one
            source = self._rollup_source.get(size)
            by_size[size] = partials(s, size) if source is None else rollup(by_size[source], size)
        partial_blocks = {size: blocks(p) for size, p in by_size.items()}
        sketches = self._sketch_parts(s)
        order = np.concatenate((on_time_rows[stored], late_rows)).astype(np.intp)
        pad = len(late_rows)
        new_max = self._max_ts
        if len(s):
            batch_max = int(s.ts.max())
            new_max = batch_max if new_max is None else max(new_max, batch_max)
        return IngestPlan(
            order=order,
            on_time=len(s),
            running_count=np.concatenate((run_count, np.zeros(pad, np.int64))),
            running_sum=np.concatenate((run_sum, np.zeros(pad, np.float64))),
            partials=partial_blocks,
            sketches=sketches,
            closing=self._closing(new_max, partial_blocks, sketches),
            max_timestamp=new_max,
            base_version=self._version,
        )

    def _closing(
        self,
        new_max: int | None,
        partial_blocks: Mapping[WindowSize, list[tuple[int, StateColumns]]],
        sketches: Mapping[WindowSize, list[tuple[int, Sketches]]],
    ) -> list[tuple[WindowSize, int, StateColumns, np.ndarray | None]]:
        """The windows the new watermark closes, as they will be once the batch is merged."""
        if new_max is None:
            return []
        wm = new_max - self.lateness_us
        closing = []
        for size in self.sizes:
            parts = dict(partial_blocks.get(size, ()))
            raw = dict(sketches.get(size, ()))
            starts = {st for st in self._open[size] if st + size.micros <= wm}
            starts |= {st for st in parts if st + size.micros <= wm}
            for start in sorted(starts):
                block = self._open[size].get(start)
                part = parts.get(start)
                final = upsert(block, part) if part is not None else block
                assert final is not None
                quantiles = None
                pending = self._sketches[size].get(start, []) + (
                    [raw[start]] if start in raw else []
                )
                if pending:
                    merged = Sketches.merge(pending)
                    quantiles = merged.quantiles()
                closing.append((size, start, final, quantiles))
        return closing

    @_ieee
    def apply(self, plan: IngestPlan) -> StoreChanges:
        """Merge an accepted plan; returns what changed, closed and may be evicted."""
        if plan.base_version != self._version:
            raise RuntimeError("a plan must be applied to the store state it was made from")
        self._version += 1
        closing = {(size, start) for size, start, _, _ in plan.closing}
        updated = []
        for size, parts in plan.partials.items():
            open_blocks = self._open[size]
            for start, part in parts:
                if (size, start) not in closing:
                    open_blocks[start] = upsert(open_blocks.get(start), part)
                    updated.append((size, start))
        for size, raw in plan.sketches.items():
            self._add_sketches(size, [(st, sk) for st, sk in raw if (size, st) not in closing])
        for size, start in closing:
            self._open[size].pop(start, None)
            self._sketches[size].pop(start, None)
        self._max_ts = plan.max_timestamp
        changes = StoreChanges(updated=updated, closed=list(plan.closing))
        changes.evict_before.update(self._evictions())
        return changes

    def resume(self, max_timestamp: int | None) -> None:
        """Set stream time (when warming from a backend, before merging the open windows)."""
        self._version += 1
        if max_timestamp is not None:
            self._max_ts = (
                max_timestamp if self._max_ts is None else max(self._max_ts, max_timestamp)
            )

    def _evictions(self) -> dict[WindowSize, int]:
        if self._max_ts is None:
            return {}
        return {size: self._max_ts - self.retention_us[size] for size in self.sizes}

    @_ieee
    def warm(self, code: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        """Merge samples already known to be on time, in any order (restoring after a restart).

        Nothing closes until :meth:`close_due` is called, so batches may come in any order.
        """
        s = sort_samples(code, ts, value)
        if not len(s):
            return
        self._version += 1
        for size in self.sizes:
            open_blocks = self._open[size]
            for start, part in aggregate(s, size):
                open_blocks[start] = upsert(open_blocks.get(start), part)
        for size, raw in self._sketch_parts(s).items():
            self._add_sketches(size, raw)
        batch_max = int(s.ts.max())
        self._max_ts = batch_max if self._max_ts is None else max(self._max_ts, batch_max)

    @_ieee
    def close_due(self) -> StoreChanges:
        """Close every window the watermark has passed; say what may be evicted."""
        changes = StoreChanges()
        wm = self.watermark
        if wm is None or self._max_ts is None:
            return changes
        for size in self.sizes:
            open_blocks = self._open[size]
            for start in sorted(s for s in open_blocks if s + size.micros <= wm):
                block = open_blocks.pop(start)
                final = self.block_quantiles(size, start, block)
                self._sketches[size].pop(start, None)
                changes.closed.append((size, start, block, final))
        changes.evict_before.update(self._evictions())
        return changes

    # -- sketches ----------------------------------------------------------------------------

    def _sketch_parts(self, s: SortedSamples) -> dict[WindowSize, list[tuple[int, Sketches]]]:
        """Raw sketches of a sorted batch, per size and window start."""
        if not len(s) or not self.quantile_sizes:
            return {}
        keys = keys_of(s.value)
        out: dict[WindowSize, list[tuple[int, Sketches]]] = {}
        for size in self.quantile_sizes:
            seg, starts = _segments(s, size)
            ends = np.append(seg[1:], len(s))
            seg_code = s.code[seg]
            parts = []
            for start, group in by_window(starts, size.micros):
                if isinstance(group, slice):  # one window: every row, in order
                    offsets = np.append(seg, len(s))
                    parts.append((start, Sketches.of_runs(seg_code, offsets, keys)))
                    continue
                lengths = ends[group] - seg[group]
                offsets = np.concatenate(([0], np.cumsum(lengths)))
                rows = np.repeat(seg[group] - offsets[:-1], lengths) + np.arange(offsets[-1])
                parts.append((start, Sketches.of_runs(seg_code[group], offsets, keys[rows])))
            out[size] = parts
        return out

    def _add_sketches(self, size: WindowSize, raw: list[tuple[int, Sketches]]) -> None:
        pending = self._sketches[size]
        for start, sketch in raw:
            parts = pending.setdefault(start, [])
            parts.append(sketch)
            # Keep memory bounded: compact once the raw parts outgrow the compacted one.
            raw_entries = sum(len(p.keys) for p in parts[1:])
            if len(parts) > 16 or raw_entries > max(262_144, 4 * len(parts[0].keys)):
                pending[start] = [Sketches.merge(parts)]

    def block_quantiles(
        self, size: WindowSize, start: int, block: StateColumns
    ) -> np.ndarray | None:
        """Quantile estimates of an open window's metrics, rows aligned with ``block``."""
        parts = self._sketches[size].get(start)
        if not parts:
            return None
        merged = Sketches.merge(parts)
        self._sketches[size][start] = [merged]
        if not np.array_equal(merged.code, block.code):
            raise AssertionError("window sketches out of step with window states")
        return merged.quantiles()

    @property
    def sketch_bytes(self) -> int:
        return sum(p.nbytes for by in self._sketches.values() for ps in by.values() for p in ps)

    # -- reading ---------------------------------------------------------------------------

    def open_blocks(self, size: WindowSize) -> Mapping[int, StateColumns]:
        return self._open[size]

    def iter_open(self) -> Iterator[tuple[WindowSize, int, StateColumns]]:
        for size in self.sizes:
            for start, block in sorted(self._open[size].items()):
                yield size, start, block

    @property
    def open_state_bytes(self) -> int:
        return sum(b.nbytes for blocks in self._open.values() for b in blocks.values())
