"""FSQL-13: hyprstream has no transactions; every command that names one is refused with
UNIMPLEMENTED, and nothing of it runs."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyarrow import flight

from hyprstream.app import Node
from hyprstream.flightsql._protocol import pack, pb

pytestmark = pytest.mark.integration

TXN = b"txn-1"


def test_statement_query_in_a_transaction_is_refused(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    query = pb.CommandStatementQuery(query="SELECT 1", transaction_id=TXN)
    with pytest.raises(pa.ArrowNotImplementedError, match="transactions are not supported"):
        client.get_flight_info(flight.FlightDescriptor.for_command(pack(query)))
    client.close()


def test_prepared_statement_in_a_transaction_is_refused(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    request = pb.ActionCreatePreparedStatementRequest(query="SELECT 1", transaction_id=TXN)
    with pytest.raises(pa.ArrowNotImplementedError, match="transactions are not supported"):
        list(client.do_action(flight.Action("CreatePreparedStatement", pack(request))))
    client.close()


def test_bulk_ingest_in_a_transaction_is_refused_and_stores_nothing(node: Node) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{node.port}")
    options = pb.CommandStatementIngest.TableDefinitionOptions(if_not_exist=2, if_exists=2)
    command = pb.CommandStatementIngest(
        table="metrics", table_definition_options=options, transaction_id=TXN
    )
    table = pa.table(
        {
            "metric_id": ["txn"],
            "timestamp": pa.array([1_800_000_000_000_000], pa.timestamp("us", tz="UTC")),
            "value": [1.0],
        }
    )
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(pack(command)), table.schema)
    # The refusal may reach the client while it is still writing, or when it reads.
    with pytest.raises(pa.ArrowNotImplementedError, match="transactions are not supported"):
        writer.write_table(table)
        writer.done_writing()
        reader.read()
        writer.close()
    assert node.service.query("SELECT count(*) AS n FROM metrics").to_pylist() == [{"n": 0}]
    client.close()
