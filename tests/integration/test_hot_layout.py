"""CACHE-10: the hot ``metrics`` table is rewritten into its clustered order -- samples older
than the recent span sorted by metric, the recent ones by time -- without changing a single
answer, and an idle rewrite gives way to new work at once. CACHE-12: in idle time the hot
cache is checkpointed, which compresses it, again without changing an answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_duckdb
import adbc_driver_manager
import adbc_driver_manager.dbapi as adbc_dbapi
import numpy as np
import pyarrow as pa
import pytest

from hyprstream.backend import DuckDBHotCache
from hyprstream.backend._duckdb_cache import _abort
from hyprstream.model import TIMESTAMP_TYPE, metrics_schema
from hyprstream.service._appender import Appender

pytestmark = pytest.mark.integration

HOUR_US = 3_600_000_000
END_US = 1_800_000_000 * 1_000_000


def batch(rows: int, metrics: int, seed: int, start_us: int, end_us: int) -> pa.Table:
    """``rows`` samples of ``metrics`` metrics in time order between start and end."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(start_us, end_us, rows))
    names = np.array([f"m{i:03d}" for i in range(metrics)])[rng.integers(0, metrics, rows)]
    values = rng.normal(0, 1, rows)
    schema = metrics_schema([])
    return pa.table(
        {
            "metric_id": pa.array(names, pa.utf8()),
            "timestamp": pa.array(ts, TIMESTAMP_TYPE),
            "value": values,
            "value_running_window_sum": values,
            "value_running_window_avg": values,
            "value_running_window_count": np.ones(rows, np.int64),
        },
        schema=schema,
    )


@pytest.fixture
def cache() -> Iterator[DuckDBHotCache]:
    c = DuckDBHotCache(":memory:", recent_us=HOUR_US, rewrite_floor=1_000)
    try:
        yield c
    finally:
        c.close()


def content(cache: DuckDBHotCache) -> list[tuple[object, ...]]:
    rows = cache.query("SELECT * FROM metrics ORDER BY metric_id, timestamp, value").to_pylist()
    return [tuple(r.values()) for r in rows]


def test_rewrite_changes_no_answer_and_clusters_old_samples_by_metric(
    cache: DuckDBHotCache,
) -> None:
    cache.append(batch(20_000, 50, 1, END_US - 24 * HOUR_US, END_US))
    before = content(cache)
    seed = (
        "SELECT metric_id, count(*) AS n, avg(value) AS a FROM metrics "
        f"WHERE timestamp >= make_timestamptz({END_US - HOUR_US}::BIGINT) "
        "GROUP BY metric_id ORDER BY metric_id"
    )
    seed_before = cache.query(seed)
    assert cache.rewrite_wanted(idle=True)
    assert cache.rewrite_samples(idle=True)
    assert not cache.rewrite_wanted(idle=True)  # nothing changed since
    assert content(cache) == before
    assert cache.query(seed).equals(seed_before)
    # Physical order (a single-threaded scan returns it): old samples by (metric, time),
    # then the samples of the last hour (relative to the newest) by time.
    stored = cache.query("SELECT metric_id, epoch_us(timestamp) AS t FROM metrics")
    ids, ts = stored["metric_id"].to_pylist(), stored["t"].to_pylist()
    boundary = max(ts) - HOUR_US
    old = [(m, t) for m, t in zip(ids, ts, strict=True) if t < boundary]
    recent = [t for t in ts if t >= boundary]
    assert list(zip(ids, ts, strict=True))[: len(old)] == sorted(old)
    assert ts[len(old) :] == sorted(recent)


def test_new_rows_and_deletions_count_towards_the_next_rewrite(cache: DuckDBHotCache) -> None:
    cache.append(batch(8_000, 10, 2, END_US - 24 * HOUR_US, END_US))
    assert cache.rewrite_samples(idle=True)
    cache.append(batch(500, 10, 3, END_US, END_US + 60_000_000))
    assert not cache.rewrite_wanted(idle=True)  # 500 changed rows: below the floor
    cache.evict_samples(END_US - 12 * HOUR_US)  # about half the rows go
    assert cache.rewrite_wanted(idle=True)
    expected = content(cache)
    assert cache.rewrite_samples(idle=True)
    assert content(cache) == expected
    oldest = cache.query("SELECT min(epoch_us(timestamp)) AS t FROM metrics").to_pylist()
    assert oldest[0]["t"] >= END_US - 12 * HOUR_US


def test_labels_added_after_a_rewrite_and_kept_by_the_next(cache: DuckDBHotCache) -> None:
    cache.append(batch(5_000, 10, 4, END_US - 24 * HOUR_US, END_US))
    assert cache.rewrite_samples(idle=True)
    cache.add_labels([pa.field("host", pa.utf8())])
    labelled = batch(2_000, 10, 5, END_US, END_US + HOUR_US)
    labelled = labelled.append_column("host", pa.array(["h1"] * 2_000, pa.utf8()))
    cache.append(labelled)
    assert cache.rewrite_samples(idle=True, force=True)
    hosts = cache.query("SELECT host, count(*) AS n FROM metrics GROUP BY host ORDER BY host")
    assert hosts.to_pylist() == [{"host": "h1", "n": 2_000}, {"host": None, "n": 5_000}]


def test_an_idle_rewrite_gives_way_to_new_work(cache: DuckDBHotCache) -> None:
    for i in range(8):  # 4 million rows: a rewrite takes long enough to interrupt
        cache.append(batch(500_000, 1_000, 10 + i, END_US - 24 * HOUR_US, END_US))
    before = cache.query("SELECT count(*) AS n, sum(epoch_us(timestamp)) AS s FROM metrics")
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(cache.rewrite_samples(idle=True)))
    worker.start()
    deadline = time.monotonic() + 10
    while not cache._rewriting and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert cache._rewriting, "the rewrite did not start"
    cache.interrupt_rewrite()
    worker.join(30)
    assert done == [False]  # abandoned: nothing changed
    assert cache.query("SELECT count(*) AS n, sum(epoch_us(timestamp)) AS s FROM metrics").equals(
        before
    )
    cache.append(batch(10, 3, 99, END_US, END_US + 1_000))  # the connection still works
    assert cache.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 4_000_010}]
    assert cache.rewrite_wanted(idle=True)  # still due, for the next idle moment


def test_the_appender_rewrites_in_its_idle_time(cache: DuckDBHotCache) -> None:
    appender = Appender(cache, idle_s=0.02)
    try:
        for i in range(4):
            appender.submit(batch(3_000, 20, 40 + i, END_US - 24 * HOUR_US, END_US)).result(10)
        expected = content(cache)
        deadline = time.monotonic() + 20
        while (cache.rewrite_wanted(idle=True) or cache._online) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cache.rewrite_wanted(idle=True)
        assert content(cache) == expected
        first = cache.query("SELECT metric_id FROM metrics LIMIT 1").to_pylist()
        assert first == [{"metric_id": "m000"}]  # the oldest section now leads, by metric
    finally:
        appender.close()


def test_rows_loaded_around_the_appender_are_clustered_too(cache: DuckDBHotCache) -> None:
    appender = Appender(cache, idle_s=0.02)  # idle from the start, as after a warm start
    try:
        cache.append(batch(3_000, 20, 50, END_US - 24 * HOUR_US, END_US))  # as warm() does
        deadline = time.monotonic() + 20
        while (cache.rewrite_wanted(idle=True) or cache._online) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cache.rewrite_wanted(idle=True)
        first = cache.query("SELECT metric_id FROM metrics LIMIT 1").to_pylist()
        assert first == [{"metric_id": "m000"}]  # rewritten: the oldest section leads, by metric
    finally:
        appender.close()


def test_a_hot_cache_in_a_file_starts_empty(tmp_path: Path) -> None:
    path = str(tmp_path / "hot.duckdb")
    first = DuckDBHotCache(path, window_labels=["5m"])
    first.append(batch(100, 5, 60, END_US - HOUR_US, END_US))
    first.store_result("_hyprstream_result_0", pa.table({"x": [1]}))
    first.close()
    again = DuckDBHotCache(path, window_labels=["5m"])
    try:
        assert again.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 0}]
        assert again.query("SELECT count(*) AS n FROM metrics_5m").to_pylist() == [{"n": 0}]
        left = again.query(
            "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name LIKE '_hyprstream_result%'"
        )
        assert left.to_pylist() == [{"n": 0}]
    finally:
        again.close()


def test_calls_run_in_order_with_appends_and_report_their_failure(cache: DuckDBHotCache) -> None:
    # Window-table writes go through the appender: they must see the appends queued before
    # them, and a failing one must fail its own future, not the appends after it.
    appender = Appender(cache)
    try:
        seen: list[int] = []

        def count() -> None:
            seen.append(int(cache.query("SELECT count(*) FROM metrics").column(0)[0].as_py()))

        def fail() -> None:
            raise RuntimeError("window write failed")

        first = appender.submit(batch(100, 5, 1, END_US - HOUR_US, END_US))
        counted = appender.call(count)
        failed = appender.call(fail)
        second = appender.submit(batch(50, 5, 2, END_US - HOUR_US, END_US))
        counted_again = appender.call(count)
        for future in (first, counted, second, counted_again):
            future.result(timeout=30)
        with pytest.raises(RuntimeError, match="window write failed"):
            failed.result(timeout=30)
        assert seen == [100, 150]
    finally:
        appender.close()


@pytest.mark.parametrize("idle_s", [0.02, 600], ids=["idle", "never_idle"])
def test_the_series_index_is_compacted_by_its_own_thread(
    cache: DuckDBHotCache, idle_s: float
) -> None:
    # Merged in idle time, and under continuous load (an appender that is never idle) once
    # more than 32 runs crowd: the writer itself merges only past max_runs (64), with its
    # appends waiting, so forty runs left to it would stay forty.
    appender = Appender(cache, idle_s=idle_s)
    try:
        for seed in range(40):
            appender.submit(batch(200, 10, seed, END_US - HOUR_US, END_US)).result(timeout=30)
        index = cache._series
        assert index is not None
        # Geometric sizes: a run may stay beside a much larger one. Under load, merging
        # stops once the runs no longer crowd.
        most = 2 if idle_s < 1 else 32
        deadline = time.monotonic() + 30
        while index.runs > most and time.monotonic() < deadline:
            time.sleep(0.02)
        assert index.runs <= most
        got = cache.series("m003")
        expected = cache.query("SELECT * FROM metrics WHERE metric_id = 'm003' ORDER BY timestamp")
        assert got is not None
        assert got.to_pylist() == expected.to_pylist()
    finally:
        appender.close()


def test_a_paused_appender_appends_but_leaves_maintenance_until_it_resumes(
    cache: DuckDBHotCache,
) -> None:
    # Warm start appends millions of rows through the appender in pieces: a rewrite of the
    # table or a merge of the index between two pieces would be abandoned or waited for.
    appender = Appender(cache, idle_s=0.02)
    try:
        with appender.paused():
            for seed in range(4):
                appender.submit(batch(3_000, 20, 70 + seed, END_US - 24 * HOUR_US, END_US)).result(
                    timeout=30
                )
            time.sleep(0.5)  # idle for 25 idle periods
            index = cache._series
            assert index is not None
            assert index.runs > 1
            assert cache.rewrite_wanted(idle=True)
            assert cache.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 12_000}]
        deadline = time.monotonic() + 30
        while (
            cache.rewrite_wanted(idle=True) or cache._online or index.runs > 1
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not cache.rewrite_wanted(idle=True)
        assert index.runs == 1
    finally:
        appender.close()


def test_an_idle_rewrite_does_not_start_when_work_came_in_before_it(
    cache: DuckDBHotCache,
) -> None:
    # Work submitted just before an idle rewrite starts interrupts nothing (no rewrite is
    # running yet): the rewrite asks whether the writer is still idle once it could be
    # interrupted, and gives way.
    cache.append(batch(3_000, 20, 80, END_US - 24 * HOUR_US, END_US))
    before = content(cache)
    assert cache.rewrite_wanted(idle=True)
    assert not cache.rewrite_samples(idle=True, still_idle=lambda: False)
    assert cache.rewrite_wanted(idle=True)  # still due
    assert content(cache) == before
    assert cache.rewrite_samples(idle=True, still_idle=lambda: True)
    assert not cache.rewrite_wanted(idle=True)
    assert content(cache) == before


def test_interruptions_during_a_rewrite_never_leave_the_cache_unable_to_append() -> None:
    # Every submit interrupts an idle rewrite. An interruption that landed while the rewrite
    # rolled back cancelled the ROLLBACK itself: the rewriting connection stayed in an aborted
    # transaction holding the table, and every append after failed (found in review).
    cache = DuckDBHotCache(":memory:", recent_us=HOUR_US, rewrite_floor=1_000)
    try:
        cache.append(batch(2_000_000, 1_000, 90, END_US - 24 * HOUR_US, END_US))
        for attempt in range(5):
            stop = threading.Event()

            def hammer(delay: float = 0.02 + 0.02 * attempt, stop: threading.Event = stop) -> None:
                time.sleep(delay)
                while not stop.is_set():
                    cache.interrupt_rewrite()

            worker = threading.Thread(target=hammer)
            worker.start()
            try:
                assert not cache.rewrite_samples(idle=True)  # abandoned
            finally:
                stop.set()
                worker.join(30)
            cache.append(batch(10, 3, 91 + attempt, END_US, END_US + 1_000))
        total = cache.query("SELECT count(*) AS n FROM metrics").to_pylist()
        assert total == [{"n": 2_000_050}]
    finally:
        cache.close()


def test_a_failed_commit_leaves_the_connection_in_a_transaction() -> None:
    db = adbc_driver_duckdb.connect(":memory:")
    shared = adbc_dbapi._SharedDatabase(db)
    a, b = (
        adbc_dbapi.Connection(shared, adbc_driver_manager.AdbcConnection(db), autocommit=False)
        for _ in range(2)
    )
    try:
        with a.cursor() as c:
            c.execute("CREATE TABLE t (x INTEGER)")
        a.commit()
        with a.cursor() as c:
            c.execute("INSERT INTO t VALUES (1)")
        with b.cursor() as c:
            c.execute("CREATE OR REPLACE TABLE t AS SELECT * FROM t")
        b.commit()
        with pytest.raises(adbc_driver_manager.Error, match="COMMIT"):
            a.commit()  # a write-write conflict
        _abort(a)
        with a.cursor() as c:
            c.execute("INSERT INTO t VALUES (2)")
        with b.cursor() as c:
            c.execute("SELECT count(*) FROM t")
            assert c.fetchall() == [(0,)]  # not committed on its own
        b.commit()  # a new snapshot for the next read
        a.commit()
        with b.cursor() as c:
            c.execute("SELECT x FROM t")
            assert c.fetchall() == [(2,)]
    finally:
        a.close()
        b.close()
        shared.close()


def test_an_interruption_just_before_the_rewrite_starts_still_stops_it() -> None:
    # A cancel that lands before DuckDB has started the statement is lost; the rewrite then
    # used to run to its end (seconds, holding the samples lock) only to be rolled back.
    cache = DuckDBHotCache(":memory:", recent_us=HOUR_US, rewrite_floor=1_000)
    outcome: list[str] = []

    class Cursor:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *exc: object) -> None:
            self._inner.close()

        def execute(self, sql: str) -> None:
            if not sql.startswith("CREATE OR REPLACE TABLE"):
                self._inner.execute(sql)
                return
            cache.interrupt_rewrite()  # before the statement: the cancel finds nothing to stop
            try:
                self._inner.execute(sql)
            except Exception as exc:
                outcome.append(f"interrupted: {exc}")
                raise
            outcome.append("ran to its end")

    class Connection:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.adbc_connection = inner.adbc_connection

        def cursor(self) -> Cursor:
            return Cursor(self._inner.cursor())

    try:
        cache.append(batch(2_000_000, 1_000, 95, END_US - 24 * HOUR_US, END_US))
        before = cache.query("SELECT count(*) AS n FROM metrics").to_pylist()
        cache._clusterer = Connection(cache._clusterer)  # type: ignore[assignment]
        assert not cache.rewrite_samples(idle=True)
        assert len(outcome) == 1
        assert outcome[0].startswith("interrupted"), outcome
        assert cache.query("SELECT count(*) AS n FROM metrics").to_pylist() == before
        assert cache.rewrite_wanted(idle=True)  # still due
        cache.append(batch(10, 3, 96, END_US, END_US + 1_000))
    finally:
        cache.close()


# -- CACHE-12: compression ------------------------------------------------------------------


def duckdb_bytes(cache: DuckDBHotCache) -> int:
    used = cache.query("SELECT sum(memory_usage_bytes)::BIGINT AS b FROM duckdb_memory()")
    return int(used.column("b")[0].as_py())


def test_compress_shrinks_the_hot_cache_and_changes_no_answer(cache: DuckDBHotCache) -> None:
    for seed in range(4):  # 400,000 rows: a few row groups to compress
        cache.append(batch(100_000, 50, 90 + seed, END_US - 24 * HOUR_US, END_US))
    before, used = content(cache), duckdb_bytes(cache)
    assert cache.compress_wanted(idle=True)
    assert not cache.compress_wanted(idle=False)  # never under load
    assert cache.compress()
    assert duckdb_bytes(cache) < used / 2
    assert content(cache) == before
    assert not cache.compress_wanted(idle=True)  # nothing written since
    cache.append(batch(500, 50, 95, END_US, END_US + 60_000_000))
    assert not cache.compress_wanted(idle=True)  # 500 rows: below the floor
    cache.evict_samples(END_US - 12 * HOUR_US)  # deletions count: a checkpoint reclaims them
    assert cache.compress_wanted(idle=True)
    expected = content(cache)
    assert cache.compress()
    assert content(cache) == expected
    assert len(expected) < 400_500


def test_a_rewritten_table_is_compressed_again(cache: DuckDBHotCache) -> None:
    for seed in range(3):
        cache.append(batch(100_000, 50, 100 + seed, END_US - 24 * HOUR_US, END_US))
    assert cache.compress()
    compressed = duckdb_bytes(cache)
    assert cache.rewrite_samples(idle=True, force=True)  # a new table, not compressed
    assert cache.compress_wanted(idle=True)
    assert cache.compress()
    assert duckdb_bytes(cache) < 1.5 * compressed


def test_compress_does_not_start_when_work_came_in(cache: DuckDBHotCache) -> None:
    cache.append(batch(3_000, 20, 110, END_US - 24 * HOUR_US, END_US))
    assert not cache.compress(still_idle=lambda: False)
    assert cache.compress_wanted(idle=True)  # still due, for the next idle moment


def test_a_checkpoint_refused_for_an_older_transaction_is_tried_again(
    cache: DuckDBHotCache, caplog: pytest.LogCaptureFixture
) -> None:
    # A query that began before a rewrite committed keeps DuckDB from checkpointing until it
    # ends: no warning, no waiting for more writes, and the next try succeeds.
    cache.append(batch(20_000, 30, 115, END_US - 24 * HOUR_US, END_US))
    assert cache.compress()
    reader = cache._connect(autocommit=False)  # a transaction left open, as a long query's
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM metrics")
            assert cur.fetchall() == [(20_000,)]
            assert cache.rewrite_samples(idle=True, force=True)
            with caplog.at_level("WARNING", logger="hyprstream"):
                assert not cache.compress()
            assert not caplog.records
            assert cache.compress_wanted(idle=True)  # at the next idle moment
        reader.commit()
        assert cache.compress()
        assert not cache.compress_wanted(idle=True)
    finally:
        reader.close()


class _FailingConnection:
    """Stands in for the connection checkpoints run on: every statement fails."""

    def cursor(self) -> Any:
        return self

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str) -> None:
        raise adbc_dbapi.OperationalError(
            f"IO Error: could not run {sql}", status_code=adbc_driver_manager.AdbcStatusCode.IO
        )


def test_a_failed_checkpoint_waits_for_more_writes_and_breaks_nothing(
    cache: DuckDBHotCache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache.append(batch(3_000, 20, 120, END_US - 24 * HOUR_US, END_US))
    working = cache._clusterer
    monkeypatch.setattr(cache, "_clusterer", _FailingConnection())
    with caplog.at_level("WARNING", logger="hyprstream"):
        assert not cache.compress()
    assert "compressing the hot cache failed: IO Error: could not run CHECKPOINT" in caplog.text
    assert not cache.compress_wanted(idle=True)  # not again at once
    cache.append(batch(1_000, 20, 121, END_US, END_US + 1_000))
    assert cache.compress_wanted(idle=True)  # a floor of rows later: again
    monkeypatch.setattr(cache, "_clusterer", working)
    assert cache.compress()
    assert cache.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 4_000}]


def test_the_appender_compresses_in_its_idle_time_but_not_while_paused(
    cache: DuckDBHotCache,
) -> None:
    appender = Appender(cache, idle_s=0.02)
    try:
        with appender.paused():
            for seed in range(3):
                rows = batch(100_000, 50, 130 + seed, END_US - 24 * HOUR_US, END_US)
                appender.submit(rows).result(timeout=30)
            time.sleep(0.3)  # idle for 15 idle periods
            assert cache.compress_wanted(idle=True)
            used = duckdb_bytes(cache)
            expected = content(cache)
        deadline = time.monotonic() + 30
        while (
            cache.compress_wanted(idle=True) or cache.rewrite_wanted(idle=True)
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not cache.compress_wanted(idle=True)
        assert duckdb_bytes(cache) < used / 2
        assert content(cache) == expected
    finally:
        appender.close()


# -- the rewrite under load (CACHE-10): beside the appends --------------------------------


def physical(cache: DuckDBHotCache) -> list[tuple[str, int]]:
    """(metric_id, microseconds) of every row in storage order (a single-threaded scan)."""
    stored = cache.query("SELECT metric_id, epoch_us(timestamp) AS t FROM metrics")
    return list(zip(stored["metric_id"].to_pylist(), stored["t"].to_pylist(), strict=True))


def make_due_under_load(cache: DuckDBHotCache) -> None:
    """Append to ``cache`` (the fixture) until its rewrite under load is due: 100,000 rows,
    none clustered (its floor of 1,000 rows puts that threshold at 64,000 changed rows)."""
    cache.append(batch(100_000, 50, 100, END_US - 24 * HOUR_US, END_US))
    assert cache.rewrite_wanted(idle=False)


def no_copy_left(cache: DuckDBHotCache) -> bool:
    """Whether no clustered copy of a rewrite beside the appends is left behind."""
    left = cache.query(
        "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name LIKE '%metrics_next'"
    )
    return bool(left.to_pylist() == [{"n": 0}])


@pytest.fixture(params=["copied_by_a_pass", "copied_under_the_lock"])
def during_catch_up(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> list[Any]:
    """Callables run once, on the rewriting thread, when a rewrite beside the appends has
    built its clustered copy and, without the lock, looks for rows appended since its
    snapshot: just before its first catch-up pass takes its own snapshot (that pass copies
    what they append), or just after (nothing is left for the passes: the final step, under
    the lock, copies it)."""
    import hyprstream.backend._duckdb_cache as module

    actions: list[Any] = []
    calls = [0]
    real = module._next_rowid
    after = request.param == "copied_under_the_lock"

    def next_rowid(cursor: adbc_dbapi.Cursor) -> int:
        calls[0] += 1
        first_pass = calls[0] == 2  # the first call takes the snapshot, under the lock
        if first_pass and not after:
            for action in actions:
                action()
        upto = real(cursor)
        if first_pass and after:
            for action in actions:
                action()
        return upto

    monkeypatch.setattr(module, "_next_rowid", next_rowid)
    return actions


def test_a_rewrite_under_load_changes_no_answer_and_clusters_old_samples(
    cache: DuckDBHotCache,
) -> None:
    make_due_under_load(cache)
    before = content(cache)
    assert cache.rewrite_online()
    assert not cache.rewrite_wanted(idle=False)
    assert not cache.rewrite_wanted(idle=True)  # nothing changed since
    assert content(cache) == before
    rows = physical(cache)
    boundary = max(t for _, t in rows) - HOUR_US
    old = [r for r in rows if r[1] < boundary]
    assert rows[: len(old)] == sorted(old)
    assert [t for _, t in rows[len(old) :]] == sorted(t for _, t in rows if t >= boundary)
    assert no_copy_left(cache)


def test_rows_appended_during_a_rewrite_under_load_are_kept_after_it(
    during_catch_up: list[Any],
    cache: DuckDBHotCache,
) -> None:
    make_due_under_load(cache)
    late = batch(5_000, 50, 101, END_US, END_US + 60_000_000)
    during_catch_up.append(lambda: cache.append(late))
    expected = sorted(content(cache) + [tuple(r.values()) for r in late.to_pylist()])
    assert cache.rewrite_online()
    assert sorted(content(cache)) == expected
    # The clustered copy ends with the rows appended after its snapshot, which count
    # towards the next rewrite.
    assert physical(cache)[-5_000:] == [
        (m, t)
        for m, t in zip(
            late["metric_id"].to_pylist(),
            late["timestamp"].cast(pa.int64()).to_pylist(),
            strict=True,
        )
    ]
    assert cache._changed_rows == 5_000


def test_an_expiry_during_a_rewrite_under_load_holds_after_it(
    during_catch_up: list[Any],
    cache: DuckDBHotCache,
) -> None:
    make_due_under_load(cache)
    cutoff = END_US - 12 * HOUR_US
    during_catch_up.append(lambda: cache.evict_samples(cutoff))
    assert cache.rewrite_online()
    oldest = cache.query("SELECT min(epoch_us(timestamp)) AS t FROM metrics").to_pylist()
    assert oldest[0]["t"] >= cutoff
    counted = cache.query("SELECT count(*) AS n FROM metrics").to_pylist()[0]["n"]
    assert counted == cache._sample_rows  # the expiry's count still holds


def test_new_columns_during_a_rewrite_under_load_give_it_up(
    during_catch_up: list[Any],
    cache: DuckDBHotCache,
) -> None:
    make_due_under_load(cache)
    before = content(cache)
    during_catch_up.append(lambda: cache.add_labels([pa.field("host", pa.utf8())]))
    assert not cache.rewrite_online()
    assert [tuple(r[:6]) for r in content(cache)] == before
    assert cache.query("SELECT count(host) AS n FROM metrics").to_pylist() == [{"n": 0}]
    assert no_copy_left(cache)
    assert cache.rewrite_wanted(idle=False)  # still due: the next append tries again
    assert cache.rewrite_online()
    assert [tuple(r[:6]) for r in content(cache)] == before


def test_appends_go_on_while_a_rewrite_under_load_runs(cache: DuckDBHotCache) -> None:
    # The point of the rewrite under load: appends (and so acknowledgements) do not wait
    # for the seconds a rewrite of millions of rows takes, only for the final swap.
    cache.append(batch(3_000_000, 1_000, 102, END_US - 24 * HOUR_US, END_US))
    assert cache.rewrite_wanted(idle=False)
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(cache.rewrite_online()))
    worker.start()
    appended_during = 0
    seed = 103
    while worker.is_alive():
        cache.append(batch(1_000, 1_000, seed, END_US, END_US + 60_000_000))
        seed += 1
        appended_during += worker.is_alive()
    worker.join()
    assert done == [True]
    assert appended_during >= 5  # a blocked append would have finished after the rewrite
    n = cache.query("SELECT count(*) AS n FROM metrics").to_pylist()[0]["n"]
    assert n == 3_000_000 + (seed - 103) * 1_000


def test_the_appender_rewrites_under_load_on_its_own_thread(cache: DuckDBHotCache) -> None:
    appender = Appender(cache, idle_s=600)  # never idle: only the rewrite under load runs
    try:
        for i in range(5):
            rows = batch(20_000, 20, 110 + i, END_US - 24 * HOUR_US, END_US)
            appender.submit(rows).result(timeout=30)
        deadline = time.monotonic() + 30
        # (Not wanted while one runs: wait for its end too.)
        while (cache.rewrite_wanted(idle=False) or cache._online) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cache.rewrite_wanted(idle=False)
        first = cache.query("SELECT metric_id FROM metrics LIMIT 1").to_pylist()
        assert first == [{"metric_id": "m000"}]  # rewritten: the oldest section leads
        assert cache.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 100_000}]
    finally:
        appender.close()


def test_a_hot_cache_in_a_file_rewrites_under_load_with_appends_waiting(tmp_path: Path) -> None:
    # Its automatic checkpoints may renumber rows, so it does not copy by rowid.
    cache = DuckDBHotCache(str(tmp_path / "hot.duckdb"), recent_us=HOUR_US, rewrite_floor=1_000)
    try:
        cache.append(batch(100_000, 50, 120, END_US - 24 * HOUR_US, END_US))
        before = content(cache)
        assert cache.rewrite_online()
        assert content(cache) == before
        assert physical(cache)[0][0] == "m000"
    finally:
        cache.close()


def test_an_idle_rewrite_beside_the_appends_gives_way_to_new_work(
    during_catch_up: list[Any],
    cache: DuckDBHotCache,
) -> None:
    cache.append(batch(20_000, 50, 130, END_US - 24 * HOUR_US, END_US))
    assert cache.rewrite_wanted(idle=True)
    assert not cache.rewrite_wanted(idle=False)  # not (yet) due under load
    before = physical(cache)
    during_catch_up.append(cache.interrupt_rewrite)  # as the appender's submit does
    assert not cache.rewrite_online(idle=True)
    assert physical(cache) == before  # given up: not a row moved
    assert cache.rewrite_wanted(idle=True)  # still due, for the next idle moment
    assert no_copy_left(cache)
    # Work that came in before it could be interrupted keeps it from starting.
    assert not cache.rewrite_online(idle=True, still_idle=lambda: False)
    assert physical(cache) == before
    assert cache.rewrite_online(idle=True, still_idle=lambda: True)
    assert not cache.rewrite_wanted(idle=True)


def test_new_work_does_not_give_up_a_rewrite_under_load(
    during_catch_up: list[Any], cache: DuckDBHotCache
) -> None:
    make_due_under_load(cache)
    before = content(cache)
    during_catch_up.append(cache.interrupt_rewrite)
    assert cache.rewrite_online()
    assert content(cache) == before
    assert not cache.rewrite_wanted(idle=False)


def test_interruptions_never_leave_a_rewrite_beside_the_appends_holding_the_table(
    cache: DuckDBHotCache,
) -> None:
    # Interruptions at every moment of idle rewrites (each stops one; a cancel landing on
    # its ROLLBACK, or on its last step, would leave a transaction open holding metrics or
    # the copy): appends, and the next rewrite, must still work.
    cache.append(batch(1_000_000, 1_000, 140, END_US - 24 * HOUR_US, END_US))
    results = []
    for attempt in range(6):
        stop = threading.Event()

        def hammer(delay: float = 0.05 * attempt, stop: threading.Event = stop) -> None:
            time.sleep(delay)
            while not stop.is_set():
                cache.interrupt_rewrite()

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            results.append(cache.rewrite_online(idle=True))
        finally:
            stop.set()
            worker.join(30)
        cache.append(batch(10, 3, 141 + attempt, END_US, END_US + 1_000))
    assert results.count(True) <= 1  # a rewrite may end before its first interruption
    total = cache.query("SELECT count(*) AS n FROM metrics").to_pylist()
    assert total == [{"n": 1_000_060}]
    cache.append(batch(200_000, 1_000, 150, END_US, END_US + 1_000))
    assert cache.rewrite_online(idle=True)  # nothing left behind in its way
    assert no_copy_left(cache)


def test_idle_rewrites_given_up_in_a_row_are_tried_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch,
    cache: DuckDBHotCache,
) -> None:
    # Steady load with short pauses would start an idle rewrite in every pause and throw it
    # away. Here every idle rewrite is "given up": the appender must back off (1, 2, 4, ...
    # 32 idle periods between attempts), not try again at every idle period.
    attempts: list[float] = []

    def given_up(*, idle: bool = False, still_idle: Any = None) -> bool:
        attempts.append(time.monotonic())
        return False

    monkeypatch.setattr(cache, "rewrite_wanted", lambda *, idle: idle)
    monkeypatch.setattr(cache, "rewrite_online", given_up)
    monkeypatch.setattr(cache, "idle_rewrite_gave_way", lambda: True)
    appender = Appender(cache, idle_s=0.01)
    try:
        time.sleep(1.0)  # about 100 idle periods
    finally:
        appender.close()
    # 1 + 2 + 4 + 8 + 16 + 32 = 63 periods for six attempts, then one every 32.
    assert 3 <= len(attempts) <= 9


def test_short_pauses_add_up_so_the_back_off_never_locks_idle_rewrites_out(
    monkeypatch: pytest.MonkeyPatch,
    cache: DuckDBHotCache,
) -> None:
    # Work every 50 ms leaves pauses of about 4 idle periods of 10 ms. After five idle
    # rewrites given up in a row the back-off asks for 32 periods: counted per pause, that
    # would never come, and the table would never be rewritten again (found in review).
    # Meanwhile, idle moments must still compress (CACHE-12).
    outcomes = [False] * 5 + [True]
    attempts: list[bool] = []
    compressed: list[bool] = []

    def rewrite(*, idle: bool = False, still_idle: Any = None) -> bool:
        attempts.append(outcomes[min(len(attempts), len(outcomes) - 1)])
        return attempts[-1]

    monkeypatch.setattr(cache, "rewrite_wanted", lambda *, idle: idle and not any(attempts))
    monkeypatch.setattr(cache, "rewrite_online", rewrite)
    monkeypatch.setattr(cache, "idle_rewrite_gave_way", lambda: not attempts[-1])
    monkeypatch.setattr(cache, "compress", lambda **_: compressed.append(True) or False)
    appender = Appender(cache, idle_s=0.01)
    try:
        deadline = time.monotonic() + 20
        seed = 160
        while not any(attempts) and time.monotonic() < deadline:
            appender.submit(batch(10, 3, seed, END_US, END_US + 1_000)).result(timeout=30)
            seed += 1
            time.sleep(0.05)
    finally:
        appender.close()
    assert attempts == outcomes  # the sixth attempt came, after 63 periods in short pauses
    assert compressed  # idle moments compressed while the rewrite waited


def test_only_idle_rewrites_given_up_for_new_work_count_towards_the_back_off(
    during_catch_up: list[Any],
    cache: DuckDBHotCache,
) -> None:
    cache.append(batch(500, 50, 170, END_US - 24 * HOUR_US, END_US))
    assert not cache.rewrite_online(idle=True)  # not due: below the floor
    assert not cache.idle_rewrite_gave_way()
    cache.append(batch(20_000, 50, 171, END_US - 24 * HOUR_US, END_US))
    assert not cache.rewrite_online(idle=True, still_idle=lambda: False)
    assert cache.idle_rewrite_gave_way()  # work came in before it started
    during_catch_up.append(lambda: cache.add_labels([pa.field("host", pa.utf8())]))
    assert not cache.rewrite_online(idle=True)
    assert not cache.idle_rewrite_gave_way()  # given up for new columns, not new work
    during_catch_up.clear()
    assert cache.rewrite_online(idle=True)
    assert not cache.idle_rewrite_gave_way()


def test_no_rewrite_beside_the_appends_starts_once_stopped_for_closing(
    cache: DuckDBHotCache,
) -> None:
    # The appender stops rewrites before it closes; a rewrite its thread was about to start
    # must not start then (closing would wait for all of it).
    make_due_under_load(cache)
    cache.stop_online()
    assert cache.rewrite_wanted(idle=False)
    assert not cache.rewrite_online()
    assert not cache.rewrite_online(idle=True)
