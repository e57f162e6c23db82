"""When to rewrite the hot samples into their clustered order (spec/cache.md, CACHE-10).

The hot ``metrics`` table is kept in two sections: samples older than a recent span, sorted
by metric (a one-metric query reads one row group of them), and the recent span plus
everything appended since, in arrival order (a "last hour" query reads only those). Appends
and expiry slowly undo the order; a rewrite restores it at a cost proportional to the table.

``rewrite_due`` decides when, as a pure function of row counts:

* when the writer is idle, as soon as the rows appended or deleted since the last rewrite
  reach an eighth of the table (and at least ``floor`` rows): idle time is free, and such a
  rewrite may be abandoned the moment new work arrives;
* under continuous load, only once they reach twice the rows that were clustered (and at
  least ``64 * floor``, about 7.9 million rows): the table has then tripled since its last
  rewrite, so the total rewritten stays within 1.5 times the rows ever appended, whatever
  the ingest rate, and a burst of a few million rows (a backfill, a replay) is not slowed
  by a rewrite it does not need yet.

``idle_rewrite_may_start`` spaces out idle rewrites that new work keeps giving up.

Pure: no clock, no I/O.
"""

from __future__ import annotations

__all__ = ["REWRITE_FLOOR", "compress_due", "idle_rewrite_may_start", "rewrite_due"]

#: One DuckDB row group: rewriting fewer changed rows than this cannot skip a row group more.
REWRITE_FLOOR = 122_880
#: Under continuous load, never rewrite for fewer changed rows than this many floors.
_LOADED_FLOORS = 64
#: Idle rewrites given up in a row after which the wait before the next one stops doubling.
_MAX_BACKOFF = 5


def rewrite_due(*, changed: int, rows: int, idle: bool, floor: int = REWRITE_FLOOR) -> bool:
    """Whether to rewrite a table of ``rows`` rows, of which ``changed`` were appended (or
    deleted) since it was last clustered, given whether its writer is ``idle``."""
    if changed < 0 or rows < 0 or floor < 0:
        raise ValueError("row counts must not be negative")
    if changed == 0:
        return False  # already in order
    clustered = max(0, rows - changed)
    if idle:
        return changed >= max(floor, rows // 8)
    return changed >= max(_LOADED_FLOORS * floor, 2 * clustered)


def compress_due(*, written: int, idle: bool, floor: int = REWRITE_FLOOR) -> bool:
    """Whether to checkpoint (compress) the hot cache, given the rows ``written`` to its
    tables (appended, deleted or rewritten) since its last checkpoint and whether its writer
    is ``idle``: only when idle (a checkpoint holds up appends, not queries, for its whole
    length) and once at least ``floor`` rows, a row group, wait to be compressed."""
    if written < 0 or floor < 0:
        raise ValueError("row counts must not be negative")
    return idle and written > 0 and written >= floor


def idle_rewrite_may_start(*, idle_periods: int, given_up: int) -> bool:
    """Whether an idle rewrite that is due may start, after ``idle_periods`` idle periods
    (0.25 s each) since the last attempt, counted across the pauses between work, when the
    last ``given_up`` idle rewrites in a row were given up for new work: one period, then
    twice as many after each one given up, up to 32. Steady load with short pauses would
    otherwise start a rewrite in every pause and throw it away (a sort of the whole table
    each time, on the cores the ingest needs); a rewrite that ends resets the count. Since
    short pauses add up, a back-off never locks idle rewrites out for good."""
    if idle_periods < 0 or given_up < 0:
        raise ValueError("counts must not be negative")
    return idle_periods >= 1 << min(given_up, _MAX_BACKOFF)
