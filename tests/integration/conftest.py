"""Fixtures that run real hyprstream servers and talk to them with real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest
from pyarrow import flight

from conformance.process import ServerProcess, spawn_server
from hyprstream.app import Node, start
from hyprstream.backend import DuckDBHotCache
from hyprstream.config import load_config

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A ``hyprstream`` process on the embedded default, on a free port."""
    with spawn_server(data_dir=tmp_path / "data") as proc:
        yield proc


@pytest.fixture
def node() -> Iterator[Node]:
    """An in-process node with the in-memory backend, for tests that inspect the backend."""
    n = start(load_config(flags={"engine": "memory", "port": 0}))
    try:
        yield n
    finally:
        n.shutdown()


@pytest.fixture
def cache() -> Iterator[DuckDBHotCache]:
    """An empty in-memory DuckDB hot cache, closed after the test."""
    c = DuckDBHotCache(":memory:")
    try:
        yield c
    finally:
        c.close()


def connect_adbc(port: int) -> flightsql.Connection:
    # autocommit=True: hyprstream reports no transaction support, so the driver would warn
    # that it cannot disable autocommit (and this suite turns warnings into errors).
    return flightsql.connect(f"grpc://127.0.0.1:{port}", autocommit=True)


def put(port: int, *tables: pa.Table | pa.RecordBatch) -> list[dict[str, int]]:
    """DoPut each table as one record batch on ['metrics']; returns the acknowledgements."""
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    acks = []
    schema = tables[0].schema
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("metrics"), schema)
    try:
        for t in tables:
            batch = t if isinstance(t, pa.RecordBatch) else t.combine_chunks().to_batches()[0]
            writer.write_batch(batch)
            acks.append(json.loads(reader.read().to_pybytes()))
        writer.done_writing()
    finally:
        writer.close()
        client.close()
    return acks


def query(port: int, sql: str, params: list[object] | None = None) -> pa.Table:
    with connect_adbc(port) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()
