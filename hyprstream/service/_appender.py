"""The hot cache's writer thread: appends batches and evicts old samples, in order.

DuckDB appends without holding the GIL, so while one batch is appended here the next is
validated and planned on the ingest thread. When batches queue up, the thread takes all that
are waiting and appends them in one transaction: a commit costs several milliseconds however
many rows it covers. Evictions and window-table writes (``call``) run between appends, in the
order they were asked for.

A second thread keeps ``metrics`` in its clustered order (CACHE-10), rewriting it beside
the appends (they wait only for the final swap of the tables): when this thread has had
nothing to do for ``idle_s`` and enough has changed (new work arriving gives that rewrite
up), and under continuous load when the table has grown threefold since its last rewrite
(that one runs to its end). When idle, and after an append that leaves the series index's
runs crowded, this thread wakes a third that merges them (CACHE-11): a merge of millions of
rows takes a second or more, and appends go on meanwhile (the merge is dropped if the writer
merged the runs it read). At an idle moment with no rewrite due, it has DuckDB checkpoint
the hot cache, which compresses what was written since the last checkpoint (CACHE-12);
appends arriving then wait for it. While :meth:`Appender.paused` is held (warm start submits
the stored samples piece by piece) none of these runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeAlias

import pyarrow as pa

from hyprstream.backend import DuckDBHotCache
from hyprstream.cachepolicy import idle_rewrite_may_start

__all__ = ["Appender"]

log = logging.getLogger("hyprstream.service")

_Work: TypeAlias = "pa.Table | int | Callable[[], None]"
_Task = tuple[_Work, "Future[None]"]


class Appender:
    _MAX_ROWS = 1 << 20

    def __init__(self, cache: DuckDBHotCache, *, idle_s: float = 0.25) -> None:
        self._cache = cache
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._last: Future[None] | None = None
        self._pause_lock = threading.Lock()
        self._pauses = 0
        self._closing = False
        self._compact_wanted = threading.Event()
        self._compactor = threading.Thread(
            target=self._compact_loop, name="hyprstream-compact", daemon=True
        )
        self._compactor.start()
        self._rewrite_wanted = threading.Event()
        self._want_loaded = False  # a rewrite under load was asked for
        self._want_idle = False  # an idle rewrite was asked for
        #: Idle periods since the last idle rewrite started (not reset by work: short pauses
        #: add up, so that a back-off never locks idle rewrites out for good).
        self._idle_periods = 0
        self._given_up = 0  # idle rewrites given up in a row (for new work)
        self._rewriter = threading.Thread(
            target=self._rewrite_loop, name="hyprstream-rewrite", daemon=True
        )
        self._rewriter.start()
        self._thread = threading.Thread(target=self._run, name="hyprstream-append", daemon=True)
        self._thread.start()

    def submit(self, rows: pa.Table) -> Future[None]:
        """Append ``rows`` (the full ``metrics`` schema); resolves once committed."""
        return self._put(rows)

    def evict(self, before_us: int) -> Future[None]:
        """Delete hot samples older than ``before_us``, after the appends submitted so far."""
        return self._put(before_us)

    def call(self, action: Callable[[], None]) -> Future[None]:
        """Run ``action`` (a write to the hot cache) after the work submitted so far."""
        return self._put(action)

    def _put(self, work: _Work) -> Future[None]:
        future: Future[None] = Future()
        self._last = future
        self._queue.put((work, future))
        # After the put: an idle rewrite either sees the queue non-empty before it starts
        # (still_idle) or is running and is interrupted here.
        self._cache.interrupt_rewrite()
        return future

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No maintenance (index merges, rewrites of the table) while in the block, but what
        appends need: for a caller about to submit much more (warm start), whose appends
        would abandon or wait for it. It runs once the appender is idle again."""
        with self._pause_lock:
            self._pauses += 1
        self._cache.interrupt_rewrite()
        try:
            yield
        finally:
            with self._pause_lock:
                self._pauses -= 1

    def drain(self) -> None:
        """Wait until everything submitted so far is done (or has failed)."""
        last = self._last
        if last is not None:
            with contextlib.suppress(Exception):
                last.result()

    def close(self) -> None:
        self._closing = True
        self._compact_wanted.set()
        self._rewrite_wanted.set()
        self._queue.put(None)
        self._cache.interrupt_rewrite()  # after the put, as in _put
        self._cache.stop_online()
        self._thread.join()
        self._compactor.join()  # a merge under way finishes first
        self._rewriter.join()

    def _run(self) -> None:
        pending: list[_Task | None] = []  # taken from the queue but not yet done
        while True:
            if pending:
                item = pending.pop()
            else:
                try:
                    item = self._queue.get(timeout=self._idle_s)
                except queue.Empty:  # idle
                    if not self._pauses:
                        self._idle_periods += 1
                        self._compact_wanted.set()
                        if not self._cache.rewrite_wanted(idle=True):
                            self._compress()
                        elif idle_rewrite_may_start(
                            idle_periods=self._idle_periods, given_up=self._given_up
                        ):
                            # Compressed at a later idle moment, after the rewrite.
                            self._idle_periods = 0
                            self._want_idle = True
                            self._rewrite_wanted.set()
                        else:  # the rewrite waits out its back-off: compress meanwhile
                            self._compress()
                    continue
            if item is None:
                return
            work, future = item
            if isinstance(work, int):
                self._do(future, functools.partial(self._cache.evict_samples, work))
                continue
            if not isinstance(work, pa.Table):
                self._do(future, work)
                continue
            group: list[tuple[pa.Table, Future[None]]] = [(work, future)]
            rows = work.num_rows
            while rows < self._MAX_ROWS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None or not isinstance(more[0], pa.Table):
                    pending.append(more)  # anything but an append ends the group, runs next
                    break
                group.append((more[0], more[1]))
                rows += more[0].num_rows
            tables = [t for t, _ in group]
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            try:
                self._cache.append(table)
            except BaseException as exc:
                log.error("appending to the hot cache failed: %s", exc)
                for _, f in group:
                    f.set_exception(exc)
            else:
                for _, f in group:
                    f.set_result(None)
                if not self._pauses:
                    # Under continuous load too: runs left to pile up past max_runs would be
                    # merged by this thread, with the next appends waiting seconds for it.
                    if self._cache.compaction_pressing():
                        self._compact_wanted.set()
                    if self._cache.rewrite_wanted(idle=False):
                        self._want_loaded = True
                        self._rewrite_wanted.set()

    def _still_idle(self) -> bool:
        return self._queue.empty() and not self._pauses

    def _compact_loop(self) -> None:
        """The compacting thread: merges the series index's runs that are due (CACHE-11)
        each time the appender has been idle or has left the runs crowded, unless paused."""
        while True:
            self._compact_wanted.wait()
            self._compact_wanted.clear()
            if self._closing:
                return
            try:
                while not (self._closing or self._pauses) and self._cache.compact_series():
                    pass
            except Exception as exc:  # an optimisation too: never fail for it
                log.warning("could not compact the series index: %s", exc)

    def _rewrite_loop(self) -> None:
        """The rewriting thread: rewrites ``metrics`` into its clustered order (CACHE-10)
        beside the appends, when an append finds a rewrite under load due, or the appender,
        idle, finds an idle one due (new work gives that one up)."""
        while True:
            self._rewrite_wanted.wait()
            self._rewrite_wanted.clear()
            # Read after the clear: a request made since is run now or on the next pass,
            # never lost, and nothing runs that was not asked for.
            loaded, self._want_loaded = self._want_loaded, False
            idle, self._want_idle = self._want_idle, False
            if self._closing:
                return
            if self._pauses:
                continue
            try:
                if loaded:
                    self._cache.rewrite_online()
                elif not idle:
                    continue
                elif self._cache.rewrite_online(idle=True, still_idle=self._still_idle):
                    self._given_up = 0
                elif self._cache.idle_rewrite_gave_way():
                    self._given_up += 1  # back off (see idle_rewrite_may_start)
            except Exception as exc:  # the layout is an optimisation: never fail for it
                log.warning("could not rewrite the hot samples: %s", exc)

    def _compress(self) -> None:
        try:
            self._cache.compress(still_idle=self._still_idle)
        except Exception as exc:  # an optimisation as well
            log.warning("could not compress the hot cache: %s", exc)

    @staticmethod
    def _do(future: Future[None], action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:
            log.error("hot cache maintenance failed: %s", exc)
            future.set_exception(exc)
        else:
            future.set_result(None)
