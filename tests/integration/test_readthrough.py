"""CACHE-6/CACHE-7: read-through results against a real DuckDB hot cache, with a scripted
backend (only its ``query`` is used): same types on a miss and a hit, and no result kept when
a table it read was changed while the backend ran it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pytest

from hyprstream.backend import DuckDBHotCache
from hyprstream.cachepolicy import CachePolicy
from hyprstream.service._readthrough import ReadThrough

pytestmark = pytest.mark.integration


class ScriptedBackend:
    def __init__(self, answer: pa.Table) -> None:
        self.answer = answer
        self.calls = 0
        self.during: Callable[[], None] = lambda: None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        self.calls += 1
        self.during()
        return self.answer


def make(cache: DuckDBHotCache, backend: ScriptedBackend) -> ReadThrough:
    return ReadThrough(
        cache=cache,
        backend=backend,  # type: ignore[arg-type]
        policy=CachePolicy(ttl_ns=60 * 10**9),
        clock_ns=lambda: 0,
    )


def test_a_miss_and_a_hit_have_the_same_types(cache: DuckDBHotCache) -> None:
    answer = pa.table({"name": pa.array(["a", "b"], pa.large_utf8()), "n": pa.array([1, 2])})
    backend = ScriptedBackend(answer)
    rt = make(cache, backend)
    miss = rt.query("SELECT * FROM t", None, frozenset({"t"}))
    hit = rt.query("SELECT * FROM t", None, frozenset({"t"}))
    assert (backend.calls, rt.hits, rt.misses) == (1, 1, 1)
    assert miss.equals(hit)
    assert miss.schema.field("name").type == pa.utf8()  # FSQL-5: never large_utf8


def test_a_result_overtaken_by_an_ingest_is_not_kept(cache: DuckDBHotCache) -> None:
    backend = ScriptedBackend(pa.table({"n": [1]}))
    rt = make(cache, backend)
    backend.during = lambda: rt.invalidate("metrics")  # a batch acknowledged meanwhile
    assert rt.query("SELECT count(*) FROM metrics", None, frozenset({"metrics"})).num_rows == 1
    assert rt.cached == 0
    backend.during = lambda: None
    rt.query("SELECT count(*) FROM metrics", None, frozenset({"metrics"}))
    assert (backend.calls, rt.cached) == (2, 1)  # asked again, and now kept
    # Results of other tables are not affected by that table's invalidation.
    backend.during = lambda: rt.invalidate("metrics")
    rt.query("SELECT * FROM other", None, frozenset({"other"}))
    assert rt.cached == 1  # the metrics result was invalidated, the other one kept
    leftovers = cache.query(
        "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name LIKE '_hyprstream_result_%'"
    )
    assert leftovers.to_pylist() == [{"n": 1}]  # no orphan result tables
