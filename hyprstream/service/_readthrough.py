"""Read-through: backend query results kept in the hot cache under a policy (CACHE-6..CACHE-8).

A query the hot cache cannot answer runs on the backend; its Arrow result is stored in DuckDB
(table ``_hyprstream_result_<n>``) and answers the same query (same text, same parameters)
until the policy drops it: older than the TTL, least recently used beyond the byte or entry
limits, or invalidated because an ingest touched a table it read. Decisions come from
:func:`hyprstream.cachepolicy.evictions`; this class carries them out.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hyprstream.backend import Backend, DuckDBHotCache
from hyprstream.cachepolicy import CachePolicy, Entry, evictions

__all__ = ["ReadThrough"]

log = logging.getLogger("hyprstream.service")


@dataclass(slots=True)
class _Result:
    table: str
    size: int
    created_ns: int
    last_used_ns: int
    reads: frozenset[str]


def _key(sql: str, params: pa.RecordBatch | Sequence[Any] | None) -> tuple[str, str]:
    if params is None:
        return sql, ""
    if isinstance(params, pa.RecordBatch):
        return sql, repr(params.to_pylist())
    return sql, repr(list(params))


class ReadThrough:
    def __init__(
        self,
        *,
        cache: DuckDBHotCache,
        backend: Backend,
        policy: CachePolicy,
        clock_ns: Callable[[], int],
    ) -> None:
        self._cache = cache
        self._backend = backend
        self._policy = policy
        self._clock_ns = clock_ns
        self._entries: dict[tuple[str, str], _Result] = {}
        self._generation: dict[str, int] = {}  # per table: how often it was invalidated
        self._lock = threading.Lock()
        self._names = (f"_hyprstream_result_{i}" for i in itertools.count())
        self.hits = 0
        self.misses = 0

    def query(
        self, sql: str, params: pa.RecordBatch | Sequence[Any] | None, reads: frozenset[str]
    ) -> pa.Table:
        """The result of ``sql`` (backend dialect) from the cache, or from the backend.

        A miss is answered from its stored copy too, so that a result has the same Arrow
        types (DuckDB's, FSQL-5) whether it came from the backend just now or from the cache.
        A result is kept only if no table it read was invalidated while the backend ran it:
        an ingest acknowledged meanwhile must not be hidden by a result from before it.
        """
        key = _key(sql, params)
        now = self._clock_ns()
        with self._lock:
            self._trim(now)
            entry = self._entries.get(key)
            if entry is not None:
                entry.last_used_ns = now
                self.hits += 1
                return self._cache.read_result(entry.table)
            self.misses += 1
            seen = {t: self._generation.get(t, 0) for t in reads}
        result = self._backend.query(sql, params)
        name = next(self._names)
        self._cache.store_result(name, result)
        try:
            table = self._cache.read_result(name)
        except BaseException:
            self._cache.drop_result(name)
            raise
        with self._lock:
            current = all(self._generation.get(t, 0) == g for t, g in seen.items())
            if current and key not in self._entries:
                self._entries[key] = _Result(name, result.nbytes, now, now, reads)
                self._trim(now)
                return table
        self._cache.drop_result(name)
        return table

    def invalidate(self, table: str) -> None:
        """Drop every cached result that read ``table`` (an ingest changed it)."""
        with self._lock:
            self._generation[table] = self._generation.get(table, 0) + 1
            stale = [k for k, e in self._entries.items() if table in e.reads]
            for key in stale:
                self._drop(key)

    def _trim(self, now: int) -> None:
        entries = [
            Entry(key=k, size=e.size, created_ns=e.created_ns, last_used_ns=e.last_used_ns)
            for k, e in self._entries.items()
        ]
        for key in evictions(entries, now, self._policy):
            assert isinstance(key, tuple)
            self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key)
        try:
            self._cache.drop_result(entry.table)
        except Exception:  # the result stays as an orphan table: log, but keep serving
            log.exception("could not drop cached result %s", entry.table)

    @property
    def cached(self) -> int:
        return len(self._entries)
