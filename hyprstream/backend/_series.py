"""The series index: every hot sample, grouped by metric, for one-metric lookups (CACHE-11).

DuckDB plans and scans for every query, so fetching one metric's samples costs about a
millisecond however the table is laid out. The index keeps a second, columnar copy of the hot
``metrics`` rows in *runs*, each sorted by ``(metric_id, timestamp)``, with the offsets of
every metric's rows: a lookup is a binary search and a slice per run. Runs do not store
``metric_id`` (a run's keys and offsets say it); a lookup repeats its one value.

A batch becomes a run of its own (it arrives sorted by ``(metric_id, timestamp)``, late rows
apart, so this is cheap). Runs are merged as in a log-structured merge tree: ``compact``
merges, in one k-way merge, the longest suffix of runs in which each run is at most
``merge_factor`` times as large as all the runs after it together, so sizes stay geometric:
O(log n) runs and each row merged O(log n) times. Merging sorted runs is a stable sort of
their metric ranks (ascending sequences: numpy's timsort merges them), then one ``take`` of
the fixed-width columns. The hot cache compacts on a thread of its own when its writer is
idle, and after an append once more than half of ``max_runs`` runs have piled up (the index
is ``crowded``): ``plan_compaction`` computes a merge from the runs as they are, without
changing the index (forcing one run more when crowded), and ``install`` puts it in under
the writer's lock unless the writer merged its runs.
``append`` compacts only once more than ``max_runs`` runs have piled up (twice as many from
the start of a merge planned aside until it is installed: under load, with the rewrite of
the hot table beside it, such a merge may take seconds), so appends rarely wait. Runs of
``max_run_rows`` rows or more are not merged again, which bounds the cost of one compaction;
lookups then visit one run per ``max_run_rows`` rows.

Eviction (``evict``) raises a watermark: lookups never return a row older than it, runs wholly
older are dropped at once, and the rows of a run are rewritten without the evicted ones when
they are at least an eighth of it (or when the run is merged).

The index of windows (``time_column="window_start"``) is the same structure over closed
window states, one index per window size.

Aggregates (``aggregate``, ``bucket_groups``) answer grouped and bucketed lookups: each
metric's rows at or after an instant are a suffix of its rows in a run, so one binary search
per run finds them all, and numpy's ``reduceat`` sums, counts and bounds the segments.

Not thread-safe for writers (the hot cache serialises them; ``plan_compaction`` only reads);
readers may run concurrently with a writer: a lookup works on the immutable tuple of runs it
read first.

Pure: pyarrow and numpy only; no clock, no threads, no I/O.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyprstream.model import METRIC_ID, TIMESTAMP

__all__ = ["BUCKET_ORIGIN_US", "ColumnStats", "Groups", "SeriesIndex", "bucket_groups"]

#: A partly evicted run is rewritten once at least this share of its rows is evicted.
_REWRITE_SHARE = 8
_SERIALS = itertools.count()
#: How many runs dropped whole by evictions are remembered, for merges planned aside.
_DROPPED_KEPT = 4096


@dataclass(frozen=True, slots=True)
class _Run:
    table: pa.Table  # the rows without metric_id, sorted by (metric_id, timestamp)
    keys: np.ndarray  # the distinct metric ids, sorted (numpy unicode)
    offsets: np.ndarray  # int64, len(keys) + 1: rows of keys[i] are offsets[i]:offsets[i+1]
    oldest_us: int
    newest_us: int
    #: Worked out on first use and kept: see :meth:`search_keys`.
    memo: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Unique per run made (never reused, unlike ``id``).
    serial: int = field(default_factory=lambda: next(_SERIALS))
    #: Serials of the runs this one was cut from by evictions (its rows are some of theirs).
    lineage: frozenset[int] = frozenset()

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def search_keys(self, time_column: str) -> np.ndarray | None:
        """``segment * span + (time - oldest)`` for every row: ascending, since the rows are
        sorted by (metric, time), so one ``searchsorted`` finds where each metric's rows
        reach an instant. Kept once made (8 bytes per row). None if that would overflow
        int64."""
        if "search" not in self.memo:
            span = self.newest_us - self.oldest_us + 1
            keys: np.ndarray | None = None
            if len(self.keys) * span < 1 << 62:
                base = np.arange(len(self.keys), dtype=np.int64) * span
                keys = np.repeat(base, np.diff(self.offsets))
                keys += _timestamps(self.table, time_column) - self.oldest_us
            self.memo["search"] = keys
        found: np.ndarray | None = self.memo["search"]
        return found

    def first_at_or_after(self, instant: int, time_column: str) -> np.ndarray:
        """For each metric, the position of its first row at or after ``instant`` (its end
        offset if none is)."""
        search = self.search_keys(time_column)
        if search is not None:
            span = self.newest_us - self.oldest_us + 1
            targets = np.arange(len(self.keys), dtype=np.int64) * span
            targets += instant - self.oldest_us
            found: np.ndarray = np.searchsorted(search, targets)
            return found
        # The search keys would overflow (times too far apart): a binary search per metric,
        # all metrics at once.
        ts = _timestamps(self.table, time_column)
        low, high = self.offsets[:-1].copy(), self.offsets[1:].copy()
        while True:
            active = low < high
            if not active.any():
                return low
            middle = (low + high) // 2
            before = active & (ts[np.minimum(middle, len(ts) - 1)] < instant)
            low = np.where(before, middle + 1, low)
            high = np.where(active & ~before, middle, high)

    def names(self) -> pa.Array:
        """``keys`` as an Arrow string array (made once: converting costs more than using)."""
        if "names" not in self.memo:
            self.memo["names"] = pa.array(self.keys, pa.utf8())
        names: pa.Array = self.memo["names"]
        return names

    def ranks(self, keys: np.ndarray) -> np.ndarray:
        """Each row's position of its metric in ``keys`` (a sorted superset of ours)."""
        return np.repeat(np.searchsorted(keys, self.keys), np.diff(self.offsets))


def _timestamps(table: pa.Table, name: str) -> np.ndarray:
    chunks = table[name]
    column = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False))


#: Keys longer than this are kept as Python strings: numpy's fixed-width strings take four
#: bytes per character of the longest key for every key.
_FIXED_WIDTH_CHARS = 64


def _values(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A fixed-width column of a run as numpy (timestamps as int64 microseconds), without
    copying, and its validity (None when nothing is NULL)."""
    chunks = table[name]
    column = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    dtype = np.float64 if pa.types.is_floating(column.type) else np.int64
    values = np.frombuffer(column.buffers()[1], dtype=dtype, count=len(column) + column.offset)
    values = values[column.offset :]
    valid = None
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return values, valid


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Per-metric partial aggregates of one column over the rows a query admits."""

    count: np.ndarray  # int64: non-NULL values
    sum: np.ndarray  # float64 or int64 (0 where count is 0)
    min: np.ndarray  # the column's dtype; meaningless where count is 0; empty if not asked
    max: np.ndarray


@dataclass(frozen=True, slots=True)
class Groups:
    """What :meth:`SeriesIndex.aggregate` found: the metrics with admitted rows, sorted."""

    keys: np.ndarray  # metric ids (numpy unicode or object)
    names: pa.Array  # the same as Arrow strings
    rows: np.ndarray  # int64: admitted rows per metric
    stats: dict[str, ColumnStats]


def _reduce(
    values: np.ndarray, valid: np.ndarray | None, starts: np.ndarray, extremes: bool
) -> ColumnStats:
    """Partial aggregates of ``values`` over the segments beginning at ``starts`` (each
    non-empty, together covering ``values``); minimum and maximum only with ``extremes``."""
    if valid is None:
        count = np.diff(np.append(starts, len(values)))
        summed = low = high = values
    else:
        count = np.add.reduceat(valid.astype(np.int64), starts)
        if values.dtype == np.float64:
            low_fill, high_fill = np.inf, -np.inf
        else:
            low_fill, high_fill = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        summed = np.where(valid, values, 0)
        low = np.where(valid, values, low_fill) if extremes else values
        high = np.where(valid, values, high_fill) if extremes else values
    nothing = np.empty(0, dtype=values.dtype)
    return ColumnStats(
        count=count.astype(np.int64, copy=False),
        sum=np.add.reduceat(summed, starts),
        min=np.minimum.reduceat(low, starts) if extremes else nothing,
        max=np.maximum.reduceat(high, starts) if extremes else nothing,
    )


def _combine(parts: list[Groups], columns: Sequence[str]) -> Groups:
    """Partial aggregates of several runs merged per metric."""
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([p.keys for p in parts])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    names = pa.concat_arrays([p.names for p in parts]).take(pa.array(order[first]))

    def merged(arrays: list[np.ndarray], how: np.ufunc) -> np.ndarray:
        return np.asarray(how.reduceat(np.concatenate(arrays)[order], first))

    stats = {
        name: ColumnStats(
            count=merged([p.stats[name].count for p in parts], np.add),
            sum=merged([p.stats[name].sum for p in parts], np.add),
            min=merged([p.stats[name].min for p in parts], np.minimum)
            if len(parts[0].stats[name].min)
            else parts[0].stats[name].min,
            max=merged([p.stats[name].max for p in parts], np.maximum)
            if len(parts[0].stats[name].max)
            else parts[0].stats[name].max,
        )
        for name in columns
    }
    rows = merged([p.rows for p in parts], np.add)
    return Groups(keys=keys[first], names=names, rows=rows, stats=stats)


#: DuckDB's ``time_bucket`` origin for widths in days or less: 2000-01-03 00:00 UTC (a Monday).
BUCKET_ORIGIN_US = 946_857_600_000_000


def bucket_groups(
    rows: pa.Table,
    width_us: int,
    columns: Sequence[str],
    extremes: Collection[str] = (),
    time_column: str = TIMESTAMP,
) -> Groups:
    """``rows`` (in time order) grouped as ``time_bucket(width, time)`` groups them: the
    bucket starts (``keys``, int64 microseconds; ``names``, as timestamps), rows per bucket,
    and the count and sum (and minimum and maximum for ``extremes``) of each of ``columns``."""
    ts = _timestamps(rows, time_column)
    if not len(ts):
        nothing = np.array([], dtype=np.int64)
        return Groups(
            keys=nothing,
            names=pa.array([], pa.timestamp("us", tz="UTC")),
            rows=nothing,
            stats={name: ColumnStats(nothing, nothing, nothing, nothing) for name in columns},
        )
    ids = np.floor_divide(ts - BUCKET_ORIGIN_US, width_us)
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    keys = ids[starts] * width_us + BUCKET_ORIGIN_US
    stats = {}
    for name in columns:
        values, valid = _values(rows, name)
        stats[name] = _reduce(values, valid, starts, name in extremes)
    return Groups(
        keys=keys,
        names=pa.array(keys, pa.timestamp("us", tz="UTC")),
        rows=np.diff(np.append(starts, len(ts))).astype(np.int64),
        stats=stats,
    )


def _unicode(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Metric ids as a numpy array that sorts and searches like the ids."""
    longest = pc.max(pc.utf8_length(values)).as_py() or 0
    if longest > _FIXED_WIDTH_CHARS:
        return np.asarray(values.to_pylist(), dtype=object)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=str)


def _run(table: pa.Table, ranks: np.ndarray, keys: np.ndarray, ts: np.ndarray) -> _Run | None:
    """A run of ``table`` (already sorted), whose rows have metrics ``keys[ranks]``."""
    if not table.num_rows:
        return None
    counts = np.bincount(ranks, minlength=len(keys))
    present = counts > 0
    offsets = np.zeros(int(present.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[present], out=offsets[1:])
    return _Run(
        table=table.combine_chunks(),
        keys=keys[present],
        offsets=offsets,
        oldest_us=int(ts.min()),
        newest_us=int(ts.max()),
    )


def _sorted(ranks: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The order of rows by (rank, timestamp); ranks first stably sorted (cheap when the
    input is made of sorted runs), then fully sorted only if timestamps went backwards."""
    if len(ranks) and int(ranks.max()) < 1 << 16:
        order = np.argsort(ranks.astype(np.uint16), kind="stable")  # a radix sort
    else:
        order = np.argsort(ranks, kind="stable")
    r, t = ranks[order], ts[order]
    if len(order) > 1 and bool(np.any((r[1:] == r[:-1]) & (t[1:] < t[:-1]))):
        order = np.lexsort((ts, ranks))
    return order


def _union(sorted_keys: Sequence[np.ndarray]) -> np.ndarray:
    """The sorted union of sorted unique arrays. A stable sort (timsort) of their
    concatenation merges the sorted runs; repeated ``np.union1d`` would sort again per run."""
    merged = np.sort(np.concatenate(sorted_keys), kind="stable")
    if len(merged) < 2:
        return merged
    keep = np.empty(len(merged), bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    result: np.ndarray = merged[keep]
    return result


@dataclass(frozen=True, slots=True)
class Compaction:
    """A merge of some of an index's runs (``runs``) into one (``merged``; None when every
    row of them was evicted), computed but not yet installed."""

    runs: tuple[_Run, ...]
    merged: _Run | None


class SeriesIndex:
    """Rows grouped by metric, each metric's in ``time_column`` order (see the module
    docstring): the hot ``metrics`` samples, or closed window states."""

    def __init__(
        self,
        *,
        time_column: str = TIMESTAMP,
        merge_factor: int = 4,
        max_runs: int = 64,
        max_run_rows: int = 1 << 22,
    ) -> None:
        if merge_factor < 2 or max_runs < 2 or max_run_rows < 1:
            raise ValueError("merge_factor and max_runs must be at least 2, max_run_rows 1")
        self._time = time_column
        self._merge_factor = merge_factor
        self._max_runs = max_runs
        self._max_run_rows = max_run_rows
        self._runs: tuple[_Run, ...] = ()
        self._watermark: int | None = None  # rows older than this are evicted
        self._disabled = False  # a metric id the index cannot hold was appended
        self._planning = False  # plan_compaction(background=True) is running
        #: Serials of the latest runs evictions dropped whole (see ``install``).
        self._dropped: collections.deque[int] = collections.deque(maxlen=_DROPPED_KEPT)

    @property
    def rows(self) -> int:
        """Rows held, including evicted rows not yet rewritten away."""
        return sum(r.rows for r in self._runs)

    @property
    def nbytes(self) -> int:
        """Bytes held, including what bounded aggregates keep per run (8 per row)."""
        return sum(
            r.table.nbytes
            + r.keys.nbytes
            + r.offsets.nbytes
            + sum(getattr(m, "nbytes", 0) for m in list(r.memo.values()))
            for r in self._runs
        )

    @property
    def runs(self) -> int:
        return len(self._runs)

    @property
    def crowded(self) -> bool:
        """Whether more than half of ``max_runs`` runs have piled up: a merge planned aside
        is then forced (one run more than is due), so that the writer need not merge."""
        return len(self._runs) > self._max_runs // 2

    # -- writes ------------------------------------------------------------------------------

    def append(self, rows: pa.Table) -> None:
        """Add ``rows`` (the ``metrics`` columns; more columns than earlier rows is fine)."""
        if self._disabled:
            return
        ts = _timestamps(rows, self._time)
        if self._watermark is not None and len(ts) and int(ts.min()) < self._watermark:
            keep = ts >= self._watermark
            rows, ts = rows.filter(pa.array(keep)), ts[keep]
        if not rows.num_rows:
            return
        encoded = rows[METRIC_ID].combine_chunks().dictionary_encode()
        if pc.any(pc.match_substring(encoded.dictionary, "\x00")).as_py():
            # numpy's strings drop trailing NULs: such ids would collide. Leave them to DuckDB.
            self._disabled = True
            self._runs = ()
            return
        keys = _unicode(encoded.dictionary)
        order_keys = np.argsort(keys, kind="stable")
        keys = keys[order_keys]
        # The dictionary's codes, renumbered to the sorted keys.
        position = np.empty(len(order_keys), dtype=np.int64)
        position[order_keys] = np.arange(len(order_keys))
        ranks = position[np.asarray(encoded.indices.to_numpy(zero_copy_only=False))]
        rows = rows.drop_columns([METRIC_ID])
        order = _sorted(ranks, ts)
        if not np.array_equal(order, np.arange(len(order))):
            rows = rows.take(pa.array(order))
            ranks, ts = ranks[order], ts[order]
        run = _run(rows, ranks, keys, ts)
        if run is None:
            return
        self._runs = (*self._runs, run)
        # While a merge planned on another thread is under way, a forced merge here would
        # most likely take some of its runs and so waste it: runs may pile up twice as far.
        limit = self._max_runs * (2 if self._planning else 1)
        while len(self._runs) > limit and self.compact(force=True):
            pass

    def compact(self, *, force: bool = False) -> bool:
        """Merge the runs that are due (see the module docstring); with ``force``, also one
        run more than due, to bring the number of runs down. Whether any were merged."""
        planned = self.plan_compaction(force=force)
        return planned is not None and self.install(planned)

    def plan_compaction(
        self, *, force: bool = False, background: bool = False
    ) -> Compaction | None:
        """The merge :meth:`compact` would do, computed from the runs as they are now without
        changing the index (None: nothing is due). With ``background``, it runs on another
        thread than the writer, which goes on appending and evicting meanwhile;
        :meth:`install` then puts it in. A background merge is forced too once half of
        ``max_runs`` runs have piled up: under continuous load it runs often enough that the
        writer need not merge them itself (which its appends would wait for)."""
        if not background:
            return self._plan(force)
        self._planning = True  # until the plan is installed (or there is none)
        planned = None
        try:
            planned = self._plan(force or self.crowded)
            return planned
        finally:
            if planned is None:
                self._planning = False

    def _plan(self, force: bool) -> Compaction | None:
        # Runs too large to merge go first, so that the others form one suffix (a large run
        # appended after small ones would otherwise strand them). Lookups do not depend on
        # the order of runs.
        current = self._runs
        large = tuple(run for run in current if run.rows >= self._max_run_rows)
        runs = large + tuple(run for run in current if run.rows < self._max_run_rows)
        total = 0
        start = len(runs)
        for i in range(len(runs) - 1, -1, -1):
            run = runs[i]
            if run.rows >= self._max_run_rows:
                break
            due = start == len(runs) or run.rows <= self._merge_factor * total
            if not due and not force:
                break
            total += run.rows
            start = i
            if not due:
                break  # forced: one run more than due
        if len(runs) - start < 2:
            return None
        return Compaction(runs[start:], self._merge(runs[start:]))

    def install(self, compaction: Compaction) -> bool:
        """Replace the runs ``compaction`` merged by its result; False (and nothing changes)
        if the writer merged any of them since it was planned.

        Evictions since are no obstacle: a run cut by one is replaced by a run of some of its
        rows (its lineage says so), and that run goes too; a run dropped whole had only rows
        below the watermark. The merged run holds them all, and lookups leave out the evicted
        ones until the run is rewritten. Runs appended since stay as they are."""
        self._planning = False
        merged_from = {run.serial for run in compaction.runs}
        current = self._runs
        present = {run.serial for run in current}
        cut = set().union(*(run.lineage for run in current)) & merged_from
        dropped = merged_from.intersection(self._dropped)
        if merged_from - present - cut - dropped:
            return False  # merged by the writer: its rows are in another run now
        runs: list[_Run] = []
        placed = compaction.merged is None
        for run in current:
            if run.serial in merged_from or run.lineage & merged_from:
                if not placed and compaction.merged is not None:
                    runs.append(compaction.merged)  # where the first of them was
                    placed = True
                continue
            runs.append(run)
        if not placed and compaction.merged is not None:
            runs.append(compaction.merged)  # every run it read was dropped whole
        self._runs = tuple(runs)
        return True

    def _merge(self, runs: Sequence[_Run]) -> _Run | None:
        keys = _union([run.keys for run in runs])
        ranks = np.concatenate([run.ranks(keys) for run in runs])
        table = pa.concat_tables([run.table for run in runs], promote_options="default")
        ts = np.concatenate([_timestamps(run.table, self._time) for run in runs])
        order = _sorted(ranks, ts)
        if self._watermark is not None:
            order = order[ts[order] >= self._watermark]
        return _run(table.take(pa.array(order)), ranks[order], keys, ts[order])

    def evict(self, before_us: int) -> None:
        """Forget rows whose timestamp is before ``before_us``."""
        if self._watermark is not None and before_us <= self._watermark:
            return
        self._watermark = before_us
        runs: list[_Run] = []
        for run in self._runs:
            kept: _Run | None = run
            if run.newest_us < before_us:
                kept = None
            elif run.oldest_us < before_us:
                ts = _timestamps(run.table, self._time)
                keep = ts >= before_us
                if (len(keep) - int(keep.sum())) * _REWRITE_SHARE >= len(keep):
                    ranks = run.ranks(run.keys)[keep]
                    kept = _run(run.table.filter(pa.array(keep)), ranks, run.keys, ts[keep])
                    if kept is not None:
                        lineage = run.lineage | {run.serial}
                        kept = dataclasses.replace(kept, lineage=lineage)
            if kept is not None:
                runs.append(kept)
            else:
                self._dropped.append(run.serial)
        self._runs = tuple(runs)

    def clear(self) -> None:
        self._runs = ()
        self._dropped.clear()
        self._watermark = None
        self._disabled = False

    # -- reads -------------------------------------------------------------------------------

    def _at(self, table: pa.Table, row: int) -> int:
        """The time of one row, in microseconds."""
        value = table[self._time][row]
        return int(value.cast(pa.int64()).as_py())

    @np.errstate(over="ignore", invalid="ignore")  # an overflowing sum is the caller's to see
    def aggregate(
        self, columns: Sequence[str], lower_us: int | None, extremes: Collection[str] = ()
    ) -> Groups | None:
        """Per metric, the number of rows at or after ``lower_us`` (None: all rows) and the
        count and sum of each of ``columns`` (fixed-width columns every row has) over them,
        with minimum and maximum for those also in ``extremes``; None if the index cannot
        answer."""
        runs, watermark = self._runs, self._watermark
        if self._disabled:
            return None
        if watermark is not None and (lower_us is None or lower_us < watermark):
            lower_us = watermark
        parts: list[Groups] = []
        for run in runs:
            if lower_us is not None and lower_us > run.newest_us:
                continue
            offsets = run.offsets
            if lower_us is None or lower_us <= run.oldest_us:
                starts, stops = offsets[:-1], offsets[1:]
            else:
                starts, stops = run.first_at_or_after(lower_us, self._time), offsets[1:]
            lengths = stops - starts
            present = lengths > 0
            if not present.any():
                continue
            names = run.names()
            if not present.all():
                names = names.filter(pa.array(present))
            keys, starts, lengths = run.keys[present], starts[present], lengths[present]
            firsts = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1], out=firsts[1:])
            whole = len(keys) == len(run.keys) and bool(np.array_equal(starts, offsets[:-1]))
            take = (
                None
                if whole
                else np.repeat(starts - firsts, lengths)
                + np.arange(int(lengths.sum()), dtype=np.int64)
            )
            stats: dict[str, ColumnStats] = {}
            for name in columns:
                values, valid = _values(run.table, name)
                if take is not None:
                    values = values[take]
                    valid = None if valid is None else valid[take]
                stats[name] = _reduce(values, valid, firsts, name in extremes)
            rows = lengths.astype(np.int64)
            parts.append(Groups(keys=keys, names=names, rows=rows, stats=stats))
        if not parts:
            nothing = np.array([], dtype=np.int64)
            return Groups(
                keys=np.array([], dtype=str),
                names=pa.array([], pa.utf8()),
                rows=nothing,
                stats={name: ColumnStats(nothing, nothing, nothing, nothing) for name in columns},
            )
        return _combine(parts, columns)

    def series(
        self, metric_id: str, schema: pa.Schema, since_us: int | None = None
    ) -> pa.Table | None:
        """The rows of ``metric_id`` at or after ``since_us`` (None: all) in time order, with
        the columns of ``schema`` (the hot table's, or some of them: columns the rows predate
        are NULL); None if the index cannot answer."""
        runs, lower = self._runs, self._watermark
        if self._disabled:
            return None
        if since_us is not None and (lower is None or since_us > lower):
            lower = since_us
        pieces: list[pa.Table] = []
        for run in runs:
            i = int(np.searchsorted(run.keys, metric_id))
            if i < len(run.keys) and run.keys[i] == metric_id:
                start, stop = int(run.offsets[i]), int(run.offsets[i + 1])
                piece = run.table.slice(start, stop - start)
                if lower is not None and run.oldest_us < lower:
                    # The piece is in time order: the rows admitted are a suffix.
                    ts = _timestamps(piece, self._time)
                    piece = piece.slice(int(np.searchsorted(ts, lower, side="left")))
                if piece.num_rows:
                    pieces.append(piece)
        if not pieces:
            return schema.empty_table()
        if len(pieces) == 1:
            table = pieces[0]
        else:
            # Each piece is in time order; they need a sort only if their spans overlap.
            spans = [(self._at(p, 0), self._at(p, p.num_rows - 1), p) for p in pieces]
            spans.sort(key=lambda span: span[0])
            ordered = all(spans[k][0] >= spans[k - 1][1] for k in range(1, len(spans)))
            table = pa.concat_tables([p for _, _, p in spans], promote_options="default")
            if not ordered:
                ts = _timestamps(table, self._time)
                table = table.take(pa.array(np.argsort(ts, kind="stable")))
        have = set(table.column_names)
        columns = [
            pa.repeat(pa.scalar(metric_id, f.type), table.num_rows)
            if f.name == METRIC_ID
            else table[f.name]
            if f.name in have
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)
