"""Every rejection of ING-3 / DM-*: INVALID_ARGUMENT naming the column and first bad row, the
server keeps serving, and nothing of the rejected batch is stored anywhere."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import pyarrow as pa
import pytest
from pyarrow import flight

from hyprstream.app import Node
from hyprstream.backend import MemoryBackend
from hyprstream.flightsql._protocol import pack, pb

from .conftest import put, query

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")


def good(n: int = 3) -> dict[str, pa.Array]:
    return {
        "metric_id": pa.array([f"m{i}" for i in range(n)]),
        "timestamp": pa.array([NOW + dt.timedelta(seconds=i) for i in range(n)], TS),
        "value": pa.array([float(i) for i in range(n)]),
    }


def with_(**changes: pa.Array | None) -> pa.Table:
    cols = good()
    for name, column in changes.items():
        if column is None:
            del cols[name]
        else:
            cols[name] = column
    return pa.table(cols)


# (case id, batch, column named in the error, first bad row or None, words in the message)
CASES: list[tuple[str, Callable[[], pa.Table], str, int | None, str]] = [
    ("null metric_id", lambda: with_(metric_id=pa.array(["a", "b", None])), "metric_id", 2, "null"),
    ("null timestamp", lambda: with_(timestamp=pa.array([NOW, None, NOW], TS)), "timestamp", 1, "null"),
    ("null value", lambda: with_(value=pa.array([None, 1.0, 2.0])), "value", 0, "null"),
    ("NaN value", lambda: with_(value=pa.array([1.0, math.nan, 2.0])), "value", 1, "finite"),
    ("+inf value", lambda: with_(value=pa.array([1.0, 2.0, math.inf])), "value", 2, "finite"),
    ("-inf value", lambda: with_(value=pa.array([-math.inf, 2.0, 3.0])), "value", 0, "finite"),
    ("integer timestamps", lambda: with_(timestamp=pa.array([1, 2, 3], pa.int64())), "timestamp", None, "ambiguous"),
    ("string timestamps", lambda: with_(timestamp=pa.array(["a", "b", "c"])), "timestamp", None, "expected an Arrow timestamp"),
    ("integer metric_id", lambda: with_(metric_id=pa.array([1, 2, 3])), "metric_id", None, "expected utf8"),
    ("string value", lambda: with_(value=pa.array(["1", "2", "3"])), "value", None, "expected float64"),
    ("bool value", lambda: with_(value=pa.array([True, False, True])), "value", None, "expected float64"),
    ("missing value", lambda: with_(value=None), "value", None, "missing required column"),
    ("inexact integer value", lambda: with_(value=pa.array([1, 2**53 + 1, 3], pa.int64())), "value", 1, "not exactly representable"),
    ("empty metric_id", lambda: with_(metric_id=pa.array(["a", "", "c"])), "metric_id", 1, "empty"),
    ("computed column sent", lambda: with_(value_running_window_avg=pa.array([1.0, 2.0, 3.0])),
     "value_running_window_avg", None, "computed by hyprstream"),
    ("bad label name", lambda: with_(**{"Host": pa.array(["a", "b", "c"])}), "Host", None, "lower-case"),
    ("nested label", lambda: with_(tags=pa.array([[1], [2], [3]])), "tags", None, "scalar"),
    ("timestamp out of range", lambda: with_(timestamp=pa.array([0, 0, 10**13], pa.int64()).cast(pa.timestamp("s"))),
     "timestamp", 2, "out of range"),
]


def snapshot(node: Node) -> tuple[int, int, int, dict[str, pa.DataType]]:
    backend = node.service.backend
    assert isinstance(backend, MemoryBackend)
    metrics = query(node.port, "SELECT count(*) AS n FROM metrics").to_pylist()[0]["n"]
    windows = query(node.port, "SELECT count(*) AS n FROM metric_windows").to_pylist()[0]["n"]
    return backend.row_count, metrics, windows, node.service.labels


@pytest.mark.parametrize(("case", "make", "column", "row", "words"), CASES, ids=[c[0] for c in CASES])
def test_rejected_batch_changes_nothing(
    node: Node, case: str, make: Callable[[], pa.Table], column: str, row: int | None, words: str
) -> None:
    put(node.port, pa.table(good()))
    before = snapshot(node)
    with pytest.raises(pa.ArrowInvalid) as info:  # INVALID_ARGUMENT
        put(node.port, make())
    message = str(info.value)
    assert f"column {column!r}" in message
    assert words in message
    if row is not None:
        assert f"row {row}" in message
    assert "Traceback" not in message
    assert snapshot(node) == before, f"{case}: the rejected batch left something behind"
    # Still serving, and still ingesting.
    put(node.port, pa.table(good()))
    assert snapshot(node)[0] == before[0] + 3


def test_bad_batch_mid_stream_keeps_the_acknowledged_ones(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    schema = pa.table(good()).schema
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), schema)
    writer.write_table(pa.table(good()))
    assert reader.read() is not None  # acknowledged
    bad = pa.table({**good(), "value": pa.array([1.0, math.nan, 3.0])})
    with pytest.raises(pa.ArrowInvalid, match=r"record batch 1 of this stream.*3 rows"):
        writer.write_table(bad)
        reader.read()
        writer.done_writing()
        writer.close()
    client.close()
    backend = node.service.backend
    assert isinstance(backend, MemoryBackend)
    assert backend.row_count == 3
    assert query(node.port, "SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 3}]


def test_label_type_conflict_is_refused(node: Node) -> None:
    put(node.port, with_(port=pa.array([1, 2, 3])))
    with pytest.raises(pa.ArrowInvalid, match=r"column 'port'.*cannot store string"):
        put(node.port, with_(port=pa.array(["a", "b", "c"])))
    assert query(node.port, "SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 3}]


def test_unknown_ingest_path_is_not_found(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("metricz"), pa.table(good()).schema)
    with pytest.raises(pa.ArrowKeyError, match=r"unknown ingest path \['metricz'\]"):
        writer.write_table(pa.table(good()))
        writer.close()
    client.close()


def test_garbage_and_unknown_commands(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    with pytest.raises(pa.ArrowInvalid, match=r"not a serialized google.protobuf.Any"):
        client.get_flight_info(flight.FlightDescriptor.for_command(b"\xff\x00garbage"))
    substrait = flight.FlightDescriptor.for_command(pack(pb.CommandStatementSubstraitPlan()))
    with pytest.raises(pa.ArrowNotImplementedError, match="CommandStatementSubstraitPlan"):
        client.get_flight_info(substrait)
    with pytest.raises(pa.ArrowNotImplementedError, match="not supported"):
        list(client.do_action(flight.Action("Frobnicate", b"")))
    with pytest.raises(pa.ArrowKeyError, match=r"unknown or expired result handle"):
        client.do_get(flight.Ticket(pack(pb.TicketStatementQuery(statement_handle=b"nope")))).read_all()
    client.close()
    assert query(node.port, "SELECT 1 AS one").to_pylist() == [{"one": 1}]


@pytest.mark.parametrize(
    ("sql", "error", "words"),
    [
        ("SELEC 1", pa.ArrowInvalid, "syntax error"),
        ("SELECT * FROM no_such_table", pa.ArrowKeyError, "no_such_table"),
        ("SELECT 1; SELECT 2", pa.ArrowInvalid, "exactly one SQL statement"),
        ("DELETE FROM metrics", flight.FlightUnauthorizedError, "DELETE statements may not touch metrics"),
        ("DROP TABLE metrics", flight.FlightUnauthorizedError, "may not touch metrics"),
        ("CREATE TABLE t (x INTEGER)", pa.ArrowNotImplementedError, "no backend that keeps client tables"),
        ("SET threads = 1", flight.FlightUnauthorizedError, "not allowed"),
        ("ATTACH ':memory:' AS other", flight.FlightUnauthorizedError, "not allowed"),
        ("COPY metrics TO '/tmp/leak.csv'", flight.FlightUnauthorizedError, "not allowed"),
        ("INSTALL httpfs", flight.FlightUnauthorizedError, "not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", flight.FlightUnauthorizedError, "file system operations are disabled"),
    ],
)
def test_bad_sql_is_refused_with_the_right_status(node: Node, sql: str, error: type[Exception], words: str) -> None:
    put(node.port, pa.table(good()))
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    descriptor = flight.FlightDescriptor.for_command(pack(pb.CommandStatementQuery(query=sql)))
    with pytest.raises(error, match=words):
        client.get_flight_info(descriptor)
    client.close()
    assert query(node.port, "SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 3}]
