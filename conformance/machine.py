"""Checking a window engine against the naive oracle: engines, comparisons, a state machine.

``WindowEngine`` is the system under test: anything that ingests batches and answers SQL.
``ServiceEngine`` runs hyprstream's service in process (fast, for property tests);
``FlightEngine`` talks to a running server over Arrow Flight and ADBC (for deployments).
``WindowMachine`` is a hypothesis ``RuleBasedStateMachine`` that takes the engine as a
constructor argument::

    run_state_machine_as_test(lambda: WindowMachine(ServiceEngine.create()))
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pyarrow import flight

from conformance.oracle import NaiveWindows, OracleRow, OracleWindow
from hyprstream.backend import DuckDBHotCache, MemoryBackend
from hyprstream.config import parse_duration
from hyprstream.service import Hyprstream
from hyprstream.windows import WindowSize, WindowStore

__all__ = [
    "FlightEngine",
    "ServiceEngine",
    "WindowEngine",
    "WindowMachine",
    "assert_rows_match",
    "assert_windows_match",
    "to_batch",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TS_TYPE = pa.timestamp("us", tz="UTC")
MINUTE = 60_000_000
#: The quantile sketch's guaranteed relative accuracy (spec/windows.md, WIN-17).
QUANTILE_ACCURACY = 0.01 * (1 + 1e-9)
HOUR = 60 * MINUTE


class WindowEngine(Protocol):
    #: Labels of the window sizes whose rows must carry quantiles.
    quantile_labels: frozenset[str]

    def ingest(self, batch: pa.Table) -> tuple[int, int]:
        """Ingest one record batch; returns (accepted, late)."""
        ...

    def query(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


def to_batch(samples: Sequence[tuple[str, int, float]]) -> pa.Table:
    return pa.table(
        {
            "metric_id": pa.array([m for m, _, _ in samples], pa.utf8()),
            "timestamp": pa.array([t for _, t, _ in samples], pa.int64()).cast(TS_TYPE),
            "value": pa.array([v for _, _, v in samples], pa.float64()),
        }
    )


class ServiceEngine:
    """hyprstream's service in this process, with the in-memory backend."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.quantile_labels = frozenset(w.label for w in service.store.quantile_sizes)

    @classmethod
    def create(
        cls,
        sizes: Sequence[str] = ("5m", "30m", "1h", "1d"),
        lateness: str = "1h",
        retention: dict[str, str] | None = None,
    ) -> ServiceEngine:
        windows = [WindowSize.parse(s) for s in sizes]
        keep = {
            WindowSize.parse(k): parse_duration(v, what=k) for k, v in (retention or {}).items()
        }
        store = WindowStore(
            sizes=windows,
            lateness_us=parse_duration(lateness, what="lateness"),
            retention_us=keep,
        )
        cache = DuckDBHotCache(window_labels=[w.label for w in store.sizes], threads=1)
        return cls(Hyprstream(backend=MemoryBackend(), cache=cache, store=store))

    def ingest(self, batch: pa.Table) -> tuple[int, int]:
        result = self.service.ingest(batch)
        return result.accepted, result.late

    def query(self, sql: str) -> pa.Table:
        return self.service.query(sql)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.service.close()


class FlightEngine:
    """A running hyprstream server, reached as a user would: Arrow Flight and ADBC."""

    def __init__(
        self, uri: str, *, quantile_labels: frozenset[str] = frozenset({"1h", "1d"})
    ) -> None:
        self.quantile_labels = quantile_labels
        self.client = flight.connect(uri)
        self.conn = flightsql.connect(uri, autocommit=True)

    def ingest(self, batch: pa.Table) -> tuple[int, int]:
        writer, reader = self.client.do_put(
            flight.FlightDescriptor.for_path("metrics"), batch.schema
        )
        writer.write_table(batch)
        ack = json.loads(reader.read().to_pybytes())
        writer.done_writing()
        writer.close()
        return ack["accepted"], ack["late"]

    def query(self, sql: str) -> pa.Table:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    def close(self) -> None:
        self.conn.close()
        self.client.close()


def _us(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def served_windows(engine: WindowEngine) -> dict[tuple[str, str, int], dict[str, Any]]:
    table = engine.query("SELECT * FROM metric_windows")
    out = {}
    for row in table.to_pylist():
        key = (row["metric_id"], row["window"], _us(row["window_start"]))
        out[key] = row
    return out


def _close(got: float, want: float, scale: float, what: str, key: object) -> None:
    # Float sums depend on the order of addition: allow a few ulps of the magnitudes involved.
    tolerance = 1e-9 * scale + 1e-12
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=tolerance), (
        f"{what} of {key}: served {got!r}, oracle {want!r}"
    )


def assert_windows_match(engine: WindowEngine, oracle: NaiveWindows) -> None:
    served = served_windows(engine)
    expected = oracle.windows()
    assert set(served) == set(expected), (
        f"windows differ: only served {sorted(set(served) - set(expected))[:5]}, "
        f"only in oracle {sorted(set(expected) - set(served))[:5]}"
    )
    for key, want in expected.items():
        got = served[key]
        size = oracle.sizes[key[1]]
        assert _us(got["window_end"]) == key[2] + size
        _check_window(got, want, key, quantiles=key[1] in engine.quantile_labels)


def _check_window(got: dict[str, Any], want: OracleWindow, key: object, *, quantiles: bool) -> None:
    assert got["count"] == want.count, f"count of {key}"
    magnitude = max(abs(want.min), abs(want.max))
    _close(got["sum"], want.sum, magnitude * want.count, "sum", key)
    _close(got["avg"], want.avg, magnitude, "avg", key)
    spread = want.max - want.min
    _close(
        got["variance"], want.variance, spread * spread + magnitude * 1e-3 * spread, "variance", key
    )
    assert (got["min"], got["max"], got["last_value"]) == (want.min, want.max, want.last_value), key
    assert _us(got["first_timestamp"]) == want.first_timestamp, key
    assert _us(got["last_timestamp"]) == want.last_timestamp, key
    for name, exact in zip(("p50", "p90", "p99"), want.quantiles, strict=True):
        # WIN-17: within the sketch's relative accuracy of the exact value of that rank.
        estimate = got[name]
        if not quantiles:
            assert estimate is None, f"{name} of {key}: no sketch was configured, got {estimate}"
            continue
        assert estimate is not None, f"{name} of {key} is missing"
        assert abs(estimate - exact) <= QUANTILE_ACCURACY * abs(exact) + 1e-9, (
            f"{name} of {key}: served {estimate!r}, exact {exact!r}"
        )


def assert_rows_match(engine: WindowEngine, oracle: NaiveWindows) -> None:
    """The running columns of every stored sample equal the oracle's 'as of ingest' ones."""
    table = engine.query(
        "SELECT metric_id, timestamp, value, value_running_window_count AS n, "
        "value_running_window_sum AS s, value_running_window_avg AS a FROM metrics"
    )

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return (row[0], row[1], row[2], -1 if row[3] is None else row[3])

    got = sorted(
        (
            (r["metric_id"], _us(r["timestamp"]), r["value"], r["n"], r["s"], r["a"])
            for r in table.to_pylist()
        ),
        key=key,
    )
    want = sorted(
        (
            (r.metric_id, r.timestamp, r.value, r.running_count, r.running_sum, r.running_avg)
            for r in oracle.rows
        ),
        key=key,
    )
    assert len(got) == len(want)
    # Rows with equal (metric, timestamp, value) are interchangeable only if their running
    # values agree too; sorting puts equal keys next to each other in both lists.
    for g, w in zip(got, want, strict=True):
        assert g[:4] == w[:4], f"stored {g}, oracle {w}"
        if w[3] is None:
            assert g[4] is None, g
            assert g[5] is None, g
            continue
        scale = abs(w[2]) * w[3] + sum(abs(r.value) for r in _same_window(oracle, w))
        _close(g[4], w[4], scale, "running sum", g[:3])
        _close(g[5], w[5], scale / w[3], "running avg", g[:3])


def _same_window(oracle: NaiveWindows, w: tuple[Any, ...]) -> list[OracleRow]:
    size = oracle.sizes[oracle.running]
    start = NaiveWindows.start_of(w[1], size)
    return [
        r
        for r in oracle.rows
        if r.metric_id == w[0] and NaiveWindows.start_of(r.timestamp, size) == start
    ]


# -- the state machine ------------------------------------------------------------------------

METRICS = ("cpu", "mem", "disk")
BASE = _us(dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC))
values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.integers(-1000, 1000).map(float),  # equal values and exact ties
    st.floats(-2.0, 2.0).map(lambda x: 1e9 + x),  # large offset, small spread
)


class WindowMachine(RuleBasedStateMachine):
    """Ingest, advance stream time, force evictions and query; after every step the served
    windows and running columns must equal the naive oracle's."""

    def __init__(
        self, engine: WindowEngine, *, make_oracle: Callable[[], NaiveWindows] | None = None
    ) -> None:
        super().__init__()
        self.engine = engine
        self.oracle = (make_oracle or _default_oracle)()
        self.now = BASE

    def teardown(self) -> None:
        self.engine.close()

    def _ingest(self, samples: list[tuple[str, int, float]]) -> None:
        if not samples:
            return
        got = self.engine.ingest(to_batch(samples))
        want = self.oracle.ingest(samples)
        assert got == want, f"DoPut said {got}, oracle {want}"
        self.now = max([self.now, *(t for _, t, _ in samples)])

    @rule(
        data=st.lists(
            st.tuples(st.sampled_from(METRICS), st.integers(-90 * MINUTE, 10 * MINUTE), values),
            min_size=1,
            max_size=30,
        )
    )
    def ingest(self, data: list[tuple[str, int, float]]) -> None:
        """A batch around stream time: some out of order, some late (> 1 h behind)."""
        self._ingest([(m, self.now + offset, v) for m, offset, v in data])

    @rule(jump=st.integers(1, 5 * HOUR), value=values, metric=st.sampled_from(METRICS))
    def advance_time(self, jump: int, value: float, metric: str) -> None:
        """Stream time moves ahead: windows behind the new watermark close."""
        self._ingest([(metric, self.now + jump, value)])

    @precondition(lambda self: self.oracle.stream_time is not None)
    @rule(days=st.integers(1, 40), value=values)
    def evict(self, days: int, value: float) -> None:
        """Far ahead, past the retention of some sizes: their windows must go, others stay."""
        self._ingest([("cpu", self.now + days * 24 * HOUR, value)])

    @rule()
    def query(self) -> None:
        assert_windows_match(self.engine, self.oracle)

    @invariant()
    def rows_match(self) -> None:
        assert_rows_match(self.engine, self.oracle)


def _default_oracle() -> NaiveWindows:
    sizes = {"5m": 5 * MINUTE, "30m": 30 * MINUTE, "1h": HOUR, "1d": 24 * HOUR}
    return NaiveWindows(
        sizes=sizes,
        running="5m",
        lateness_us=HOUR,
        retention_us={"5m": 6 * HOUR, "30m": 48 * HOUR, "1h": 48 * HOUR, "1d": 30 * 24 * HOUR},
    )
