"""FSQL-1..FSQL-9: command decoding and the exact SqlInfo schema."""

from __future__ import annotations

import pyarrow as pa
import pytest
from google.protobuf import any_pb2

from hyprstream.errors import InvalidInput, Unsupported
from hyprstream.flightsql._protocol import (
    SQL_INFO_SCHEMA,
    TYPE_URL_PREFIX,
    Int32,
    pack,
    pb,
    sql_info_table,
    unpack,
)


def test_round_trip_uses_canonical_type_url() -> None:
    data = pack(pb.CommandStatementQuery(query="SELECT 1"))
    envelope = any_pb2.Any()
    envelope.ParseFromString(data)
    assert envelope.type_url == TYPE_URL_PREFIX + "CommandStatementQuery"
    message = unpack(data)
    assert isinstance(message, pb.CommandStatementQuery)
    assert message.query == "SELECT 1"


def test_unpack_checks_expected_type() -> None:
    with pytest.raises(InvalidInput, match="expected TicketStatementQuery"):
        unpack(pack(pb.CommandStatementQuery(query="x")), expect=pb.TicketStatementQuery)


def test_unknown_and_garbage_commands() -> None:
    foreign = any_pb2.Any(type_url="type.googleapis.com/other.Thing", value=b"").SerializeToString()
    with pytest.raises(InvalidInput, match="unknown command type"):
        unpack(foreign)
    unknown = any_pb2.Any(type_url=TYPE_URL_PREFIX + "CommandFrobnicate").SerializeToString()
    with pytest.raises(Unsupported, match="CommandFrobnicate"):
        unpack(unknown)
    with pytest.raises(InvalidInput):
        unpack(b"\xff\xff\xff")


def test_wire_compatible_with_field_numbers() -> None:
    # CommandStatementQuery.query is field 1, a string: tag 0x0a.
    raw = pb.CommandStatementQuery(query="abc").SerializeToString()
    assert raw == b"\x0a\x03abc"
    ingest = pb.CommandStatementIngest(table="t")
    ingest.options["k"] = "v"
    assert b"\x12\x01t" in ingest.SerializeToString()  # table is field 2
    assert b"\xc2\x3e" in ingest.SerializeToString()  # options is field 1000, length-delimited


def test_sql_info_schema_is_exact() -> None:
    table = sql_info_table(
        {0: "hyprstream", 3: False, 8: Int32(0), 100: 7, 508: ["a"], 9999: {1: [2, 3]}}, []
    )
    assert table.schema.equals(SQL_INFO_SCHEMA, check_metadata=True)
    union = SQL_INFO_SCHEMA.field("value").type
    assert [union.field(i).name for i in range(6)] == [
        "string_value", "bool_value", "bigint_value", "int32_bitmask", "string_list",
        "int32_to_int32_list_map",
    ]
    assert all(not union.field(i).nullable for i in range(6))
    assert not SQL_INFO_SCHEMA.field("info_name").nullable
    assert SQL_INFO_SCHEMA.field("info_name").type == pa.uint32()
    table.validate(full=True)
    assert table.to_pylist() == [
        {"info_name": 0, "value": "hyprstream"},
        {"info_name": 3, "value": False},
        {"info_name": 8, "value": 0},
        {"info_name": 100, "value": 7},
        {"info_name": 508, "value": ["a"]},
        {"info_name": 9999, "value": [(1, [2, 3])]},
    ]
    types = table.column("value").chunk(0).type_codes.to_pylist()
    assert types == [0, 1, 3, 2, 4, 5]


def test_sql_info_filters_requested_ids_and_skips_unknown() -> None:
    table = sql_info_table({0: "a", 1: "b"}, [1, 42])
    assert table.to_pylist() == [{"info_name": 1, "value": "b"}]
