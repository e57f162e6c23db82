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
        self._lock = threading.Lock()
        self._names = (f"_hyprstream_result_{i}" for i in itertools.count())
        self.hits = 0
        self.misses = 0

    def query(
        self, sql: str, params: pa.RecordBatch | Sequence[Any] | None, reads: frozenset[str]
    ) -> pa.Table:
        """The result of ``sql`` (backend dialect) from the cache, or from the backend."""
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
        result = self._backend.query(sql, params)
        with self._lock:
            if key not in self._entries:
                name = next(self._names)
                self._cache.store_result(name, result)
                self._entries[key] = _Result(name, result.nbytes, now, now, reads)
                self._trim(now)
        return result

    def invalidate(self, table: str) -> None:
        """Drop every cached result that read ``table`` (an ingest changed it)."""
        with self._lock:
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

    @property
    def cached_bytes(self) -> int:
        return sum(e.size for e in self._entries.values())
