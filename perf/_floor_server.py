"""Trivial Arrow Flight servers that answer every query with one constant row: latency floors.

Run as a script in its own process (so the client under test does not share a GIL with it)::

    python perf/_floor_server.py raw   # plain Arrow Flight: GetFlightInfo + DoGet
    python perf/_floor_server.py sql   # just enough Flight SQL for the ADBC driver

It binds 127.0.0.1 on a free port and prints ``listening on port <n>`` on stdout once it
serves, then runs until SIGTERM/SIGINT. The servers do no work besides (de)serialising the
requests they must understand, so a round trip against them measures the cost of the
transport, pyarrow's Python server dispatch and the client: what no real query can beat.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyarrow import flight

from hyprstream.flightsql._protocol import Int32, SqlInfo, pack, pb, sql_info_table, unpack

#: The answer to every query.
CONSTANT = pa.table({"one": pa.array([1], pa.int64())})
_CONSTANT_TICKET = b"constant"
_SQL_INFO_TICKET = b"sql-info"
_HANDLE = b"floor-prepared-statement"
#: What the ADBC driver asks for when it connects: no transactions, like hyprstream.
_SQL_INFO = {SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: Int32(0)}


class RawFloorServer(flight.FlightServerBase):  # type: ignore[misc]
    """Plain Arrow Flight: any descriptor gets one endpoint whose DoGet is the constant row."""

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        endpoint = flight.FlightEndpoint(flight.Ticket(_CONSTANT_TICKET), [])
        return flight.FlightInfo(CONSTANT.schema, descriptor, [endpoint], CONSTANT.num_rows, -1)

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.RecordBatchStream:
        return flight.RecordBatchStream(CONSTANT)


class SqlFloorServer(RawFloorServer):
    """Enough Flight SQL for the ADBC driver: prepared statements that all yield one row.

    Every prepared statement has the same handle and every query the same ticket; the only
    other answer is GetSqlInfo, which the driver asks for when it connects.
    """

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        command = unpack(descriptor.command)
        if isinstance(command, pb.CommandGetSqlInfo):
            table = sql_info_table(_SQL_INFO, list(command.info))
            ticket = flight.Ticket(pack(pb.CommandGetSqlInfo(info=command.info)))
            endpoint = flight.FlightEndpoint(ticket, [])
            return flight.FlightInfo(table.schema, descriptor, [endpoint], table.num_rows, -1)
        return super().get_flight_info(context, descriptor)

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.RecordBatchStream:
        if ticket.ticket == _CONSTANT_TICKET:
            return flight.RecordBatchStream(CONSTANT)
        command = unpack(ticket.ticket, expect=pb.CommandGetSqlInfo)
        assert isinstance(command, pb.CommandGetSqlInfo)
        return flight.RecordBatchStream(sql_info_table(_SQL_INFO, list(command.info)))

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        # Parameter binding: DoPut(CommandPreparedStatementQuery) with the parameter batch.
        unpack(descriptor.command, expect=pb.CommandPreparedStatementQuery)
        reader.read_all()
        result = pb.DoPutPreparedStatementResult(prepared_statement_handle=_HANDLE)
        writer.write(pa.py_buffer(result.SerializeToString()))

    def do_action(
        self, context: flight.ServerCallContext, action: flight.Action
    ) -> Iterator[bytes]:
        if action.type == "CreatePreparedStatement":
            body = action.body.to_pybytes()
            request = unpack(body, expect=pb.ActionCreatePreparedStatementRequest)
            assert isinstance(request, pb.ActionCreatePreparedStatementRequest)
            parameters = pa.schema(
                [pa.field(f"${i + 1}", pa.null()) for i in range(request.query.count("?"))]
            )
            result = pb.ActionCreatePreparedStatementResult(
                prepared_statement_handle=_HANDLE,
                dataset_schema=CONSTANT.schema.serialize().to_pybytes(),
                parameter_schema=parameters.serialize().to_pybytes(),
                is_update=False,
            )
            return iter([pack(result)])
        if action.type == "ClosePreparedStatement":
            return iter([])
        raise NotImplementedError(f"action {action.type!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("raw", "sql"))
    args = parser.parse_args(argv)
    cls: Any = RawFloorServer if args.kind == "raw" else SqlFloorServer
    server = cls("grpc://127.0.0.1:0")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening on port {server.port}", flush=True)
    while not stop.wait(3600):
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
