"""BE-4, BE-8: closed windows after a restart, whether the backend kept them or they were
merged again from the stored samples, also when retention changes between runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from hyprstream.app import Node, start
from hyprstream.config import load_config
from hyprstream.service._routing import series_lookup
from tests.integration.conftest import put

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MINUTE = dt.timedelta(minutes=1)
WINDOWS = (
    'SELECT metric_id, "window", window_start, count, min, max, last_value '
    "FROM metric_windows ORDER BY 1, 2, 3"
)


def _start(data: Path, config: Path, toml: str) -> Node:
    """A node on the embedded backend in ``data``, configured by ``toml`` (written to
    ``config``)."""
    config.write_text(toml)
    return start(load_config(flags={"port": 0, "data_dir": str(data)}, config_file=config))


def _node(data: Path, config: Path, retention_5m: str | None) -> Node:
    retention = f'[windows]\nretention = {{ "5m" = "{retention_5m}" }}\n'
    return _start(data, config, retention if retention_5m else "")


def _samples(metric: str, minutes_ago: list[int]) -> pa.Table:
    return pa.table(
        {
            "metric_id": [metric] * len(minutes_ago),
            "timestamp": pa.array(
                [NOW - m * MINUTE for m in minutes_ago], pa.timestamp("us", tz="UTC")
            ),
            "value": [float(m) for m in minutes_ago],
        }
    )


def _closed_5m(table: pa.Table, watermark: dt.datetime) -> int:
    return sum(
        1
        for r in table.to_pylist()
        if r["window"] == "5m" and r["window_start"] + 5 * MINUTE <= watermark
    )


def test_windows_survive_restarts_as_retention_moves_across_the_rebuild_horizon(
    tmp_path: Path,
) -> None:
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"
    # Run 1: 5m windows kept 72 hours, so the backend keeps them as they close.
    with _node(data, config, "72h") as first:
        put(first.port, _samples("a", [150 - 7 * k for k in range(20)]))
        put(first.port, _samples("b", [0, 3]))
        before = first.service.query(WINDOWS)
    assert _closed_5m(before, NOW - 60 * MINUTE) >= 5  # the newest sample is NOW; lateness 1 h
    # Run 2: the default 6 hours: 5m windows are merged again from the samples, and the
    # stored copies of the same windows are not added to them.
    with _node(data, config, None) as second:
        assert second.service.query(WINDOWS).equals(before)
        put(second.port, _samples("c", [100, 90, 80]))  # closed already: late, stored raw
        # Stream time moves on half an hour: more 5m windows close, and are not stored.
        put(second.port, _samples("a", [1, -30]))
        middle = second.service.query(WINDOWS)
    # 5m windows ending in (NOW - 60 min, NOW - 30 min] were open in run 1, closed in run 2.
    closed_in_run_2 = _closed_5m(middle, NOW - 30 * MINUTE) - _closed_5m(middle, NOW - 60 * MINUTE)
    assert closed_in_run_2 > 0
    # Run 3: 72 hours again. Windows that closed while run 2 did not store them are within
    # the span warm start reads, so nothing is missing.
    with _node(data, config, "72h") as third:
        assert third.service.query(WINDOWS).equals(middle)


def test_windows_are_kept_when_retention_is_raised_past_the_rebuild_horizon(
    tmp_path: Path,
) -> None:
    # Found by review: 30m windows older than the span warm start used to read were lost
    # when their size went from rebuilt (48 h) to stored (72 h) across a restart.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"
    minutes_ago = list(range(60 * 60, -1, -5))  # 60 hours, one sample every 5 minutes
    with start(load_config(flags={"port": 0, "data_dir": str(data)})) as first:
        put(first.port, _samples("a", minutes_ago))
        before = first.service.query(WINDOWS)
    old_30m = [
        r
        for r in before.to_pylist()
        if r["window"] == "30m" and r["window_start"] < NOW - 30 * 60 * MINUTE
    ]
    assert len(old_30m) > 10  # kept 48 hours, so reaching well past a day back
    longer = '[windows]\nretention = { "30m" = "72h", "1h" = "72h" }\n'
    shown = {_key(r): r for r in before.to_pylist()}
    for _ in range(2):  # the restart that starts storing them, and one after it
        with _start(data, config, longer) as again:
            after = {_key(r): r for r in again.service.query(WINDOWS).to_pylist()}
        # Every window shown before is still there, the same; the only new ones are those
        # the longer retention keeps (they end more than 48 hours back).
        assert {k: after.get(k) for k in shown} == shown
        for key in after.keys() - shown.keys():
            assert key[2] + (30 if key[1] == "30m" else 60) * MINUTE <= NOW - 48 * 60 * MINUTE


def _key(row: dict[str, object]) -> tuple[object, ...]:
    return (row["metric_id"], row["window"], row["window_start"])


@pytest.mark.parametrize(("first", "then"), [("3h", "1h"), ("1h", "3h")])
def test_windows_survive_a_change_of_allowed_lateness(
    tmp_path: Path, first: str, then: str
) -> None:
    # Found by review. A shorter lateness closes windows at warm start that were open when
    # the server stopped: they must be committed then. A longer one reopens committed
    # windows, which are committed again when they close: each must be shown once.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"

    def node(lateness: str) -> Node:
        return _start(
            data,
            config,
            f'[windows]\nallowed_lateness = "{lateness}"\nretention = {{ "30m" = "72h" }}\n',
        )

    with node(first) as n:
        put(n.port, _samples("a", list(range(80 * 60, 70 * 60 - 1, -10))))
    with node(then) as n:
        for step in range(7):  # stream time moves on to NOW, ten hours at a time
            put(n.port, _samples("b", [70 * 60 - 10 - 600 * step]))
        put(n.port, _samples("b", [0]))
        middle = n.service.query(WINDOWS)
    with node(then) as n:
        assert n.service.query(WINDOWS).equals(middle)


def test_windows_of_a_size_no_longer_configured_are_not_shown(tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"
    with _node(data, config, None) as n:
        put(n.port, _samples("a", list(range(60 * 60, -1, -30))))  # closes 1d windows
        assert "1d" in n.service.query(WINDOWS)["window"].to_pylist()
    with _start(data, config, '[windows]\nsizes = ["5m", "30m", "1h"]\n') as n:
        assert set(n.service.query(WINDOWS)["window"].to_pylist()) == {"5m", "30m", "1h"}


def test_the_window_index_takes_stored_and_rebuilt_windows_alike(tmp_path: Path) -> None:
    # Found by review: the embedded backend gives stored windows back with another time
    # zone name than rebuilt ones have, and merging the two turned the window index off.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"
    with _node(data, config, None) as n:
        put(n.port, _samples("a", list(range(60 * 60, -1, -5))))
    with _node(data, config, None) as n:
        for label in ("1d", "1h", "5m"):
            sql = f"SELECT window_start, count FROM metrics_{label} WHERE metric_id = 'a'"
            lookup = series_lookup(sql)
            assert lookup is not None
            from_index = n.service._lookup(sql, lookup, None)
            assert from_index is not None
            assert from_index.num_rows > 0
            assert sorted(from_index.to_pylist(), key=str) == sorted(
                n.service.cache.query(sql).to_pylist(), key=str
            )
        assert n.service.cache._window_index is not None


def test_once_the_missing_windows_are_committed_restarts_read_the_usual_span(
    tmp_path: Path,
) -> None:
    # Found by review: after a size's retention was raised past the rebuild horizon, every
    # restart read its whole retention of samples again, though the first one had committed
    # every window the backend lacked. That restart now marks the size as wholly stored.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"
    with _node(data, config, None) as n:
        put(n.port, _samples("a", list(range(60 * 60, -1, -5))))
    n = _start(data, config, '[windows]\nretention = { "30m" = "30d" }\n')
    n.shutdown()
    con = duckdb.connect(str(data / "hyprstream.duckdb"), read_only=True)
    try:
        latest = con.sql(
            "SELECT window_start, count FROM hyprstream_windows WHERE metric_id IS NULL "
            "AND \"window\" = '30m' ORDER BY first_timestamp DESC NULLS LAST LIMIT 1"
        ).fetchall()
        stored_30m = con.sql(
            "SELECT count(*) FROM hyprstream_windows WHERE metric_id = 'a' AND \"window\" = '30m'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert latest[0][1] == 1  # stored ...
    assert latest[0][0].year < 1700  # ... since the beginning
    assert stored_30m >= 100  # the 30m windows of the 60 hours, committed at that restart


def test_the_sqlite_driver_is_a_backend_that_a_restart_reads_back(tmp_path: Path) -> None:
    # Found by review: adbc_driver_sqlite's connect() takes no options, and SQLite gives
    # timestamps back as the ISO text it stored them as.
    flags = {
        "port": 0,
        "data_dir": str(tmp_path / "data"),
        "engine": "adbc",
        "engine_connection": f"sqlite://{tmp_path / 'backend.sqlite'}",
    }
    samples = _samples("a", list(range(150, -1, -7)))
    samples = samples.append_column("host", pa.array([f"h{i % 2}" for i in range(len(samples))]))
    checks = ["SELECT * FROM metrics ORDER BY metric_id, timestamp", WINDOWS]
    with start(load_config(flags=flags)) as n:
        assert "adbc_driver_sqlite" in n.service.backend.description
        put(n.port, samples)
        put(n.port, _samples("b", [200]))  # late: stored with NULL running columns
        before = [n.service.query(sql) for sql in checks]
    with start(load_config(flags=flags)) as n:
        assert [n.service.query(sql) for sql in checks] == before


def test_sizes_added_or_added_back_get_their_windows_from_the_samples(tmp_path: Path) -> None:
    # Found by review: a size new to the configuration, or configured again after a run
    # without it, counted as stored from the beginning, so its windows older than the usual
    # warm-start span never came back.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"

    def node(toml: str) -> Node:
        return _start(data, config, toml)

    def starts(n: Node, label: str) -> list[dt.datetime]:
        rows = n.service.query(WINDOWS).to_pylist()
        return [r["window_start"] for r in rows if r["window"] == label]

    stored_30m = '[windows]\nretention = { "30m" = "72h" }\n'
    with node(stored_30m) as n:
        put(n.port, _samples("a", list(range(60 * 60, 30 * 60 - 1, -5))))  # 60 h to 30 h ago
        first = starts(n, "30m")
    with node('[windows]\nsizes = ["5m", "1h", "1d"]\n') as n:  # 30m removed
        put(n.port, _samples("a", list(range(30 * 60 - 5, -1, -5))))  # the last 30 hours
    # 30m back, and a new size kept longer than warm start usually reads.
    added_back = (
        '[windows]\nsizes = ["5m", "30m", "1h", "2h", "1d"]\n'
        'retention = { "30m" = "72h", "2h" = "72h" }\n'
    )
    with node(added_back) as n:
        back = starts(n, "30m")
        new = starts(n, "2h")

    def windows_of(minutes: int) -> int:  # distinct windows the samples fall in
        size = minutes * 60
        return len({int((NOW - m * MINUTE).timestamp()) // size for m in range(0, 3601, 5)})

    assert set(first) < set(back)
    assert len(back) == windows_of(30)  # every half hour of the 60 hours
    assert len(new) == windows_of(120)
    # And the next restart finds them stored.
    with node(added_back) as n:
        assert starts(n, "30m") == back
        assert starts(n, "2h") == new


def test_a_window_reopened_by_a_longer_lateness_is_stored_with_what_it_gained(
    tmp_path: Path,
) -> None:
    # Found by review: the backend's copy of a window was taken as complete whatever it
    # held, so a metric that first appeared in it after a longer lateness reopened it was
    # never stored, and vanished once the window was older than what warm start rebuilds.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"

    def node(lateness: str) -> Node:
        return _start(
            data,
            config,
            f'[windows]\nsizes = ["30m", "1d"]\nallowed_lateness = "{lateness}"\n'
            'retention = { "30m" = "72h" }\n',
        )

    def rows_of_b(n: Node) -> list[dict[str, object]]:
        rows = n.service.query(WINDOWS).to_pylist()
        return [r for r in rows if r["metric_id"] == "b" and r["window"] == "30m"]

    with node("1h") as n:
        put(n.port, _samples("a", list(range(300, -1, -10))))
    with node("3h") as n:  # reopens the windows of the last three hours
        assert put(n.port, _samples("b", [80]))[0]["late"] == 0
    with node("1h") as n:
        shown = rows_of_b(n)
        assert len(shown) == 1
        put(n.port, _samples("a", [-25 * 60]))  # a day on: the window is past the rebuild
    with node("1h") as n:
        assert rows_of_b(n) == shown


def test_a_shorter_lateness_keeps_the_windows_open_when_the_last_run_stopped(
    tmp_path: Path,
) -> None:
    # Found by review: windows still open at shutdown close at once under a shorter allowed
    # lateness; one that started before the span warm start reads was lost. Warm start
    # records the lateness in force, and reads back far enough when it shrinks.
    data, config = tmp_path / "data", tmp_path / "hyprstream.toml"

    def node(lateness: str) -> Node:
        return _start(
            data,
            config,
            f'[windows]\nsizes = ["30m"]\nallowed_lateness = "{lateness}"\n'
            'retention = { "30m" = "72h" }\n',
        )

    sql = "SELECT window_start, count FROM metric_windows ORDER BY 1"
    # Samples up to 10 minutes past a 30m boundary B: the window before B was still open
    # (the watermark was B - 10 min), closes at warm start (B + 10 min), and starts before
    # the usual span (the watermark minus 30 minutes).
    boundary = dt.datetime.fromtimestamp(int(NOW.timestamp()) // 1800 * 1800, dt.UTC)
    boundary -= 60 * MINUTE
    stamps = [boundary + k * 5 * MINUTE for k in range(-24, 3)]
    samples = pa.table(
        {
            "metric_id": ["a"] * len(stamps),
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "value": [1.0] * len(stamps),
        }
    )
    with node("20m") as n:
        put(n.port, samples)
        before = n.service.query(sql)
    for _ in range(2):  # the restart that closes them, and the one after
        with node("0m") as n:
            assert n.service.query(sql).equals(before)
