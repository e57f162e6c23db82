"""Flight SQL messages in and out, without any networking (spec/flightsql.md, FSQL-1 to FSQL-9).

Commands arrive as a serialised ``google.protobuf.Any`` whose type URL names a message of
package ``arrow.flight.protocol.sql``. :func:`unpack` checks the URL against the messages we
know and returns the decoded message; :func:`pack` does the reverse. DoPut replies are not
Any-packed (they are written raw into ``PutResult.app_metadata``), so they use plain
``SerializeToString``.

Also here: the exact GetSqlInfo result schema and its table builder, because clients compare
result schemas field by field (the ADBC driver uses ``Schema.Equal`` and panics inside the
client on a mismatch). The other metadata commands' schemas and tables are in ``_metadata``.

Pure: protobuf and pyarrow (no pyarrow.flight), no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import pyarrow as pa
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from hyprstream.errors import InvalidInput, Unsupported
from hyprstream.flightsql._proto import flightsql_pb2 as pb

__all__ = [
    "SQL_INFO_SCHEMA",
    "TYPE_URL_PREFIX",
    "Int32",
    "SqlInfo",
    "SqlInfoValue",
    "pack",
    "pb",
    "sql_info_table",
    "unpack",
]

TYPE_URL_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."

_MESSAGES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.name: cls
    for cls in (
        pb.CommandGetSqlInfo,
        pb.CommandGetXdbcTypeInfo,
        pb.CommandGetCatalogs,
        pb.CommandGetDbSchemas,
        pb.CommandGetTables,
        pb.CommandGetTableTypes,
        pb.CommandGetPrimaryKeys,
        pb.CommandGetExportedKeys,
        pb.CommandGetImportedKeys,
        pb.CommandGetCrossReference,
        pb.CommandStatementQuery,
        pb.CommandStatementSubstraitPlan,
        pb.TicketStatementQuery,
        pb.CommandPreparedStatementQuery,
        pb.CommandStatementUpdate,
        pb.CommandPreparedStatementUpdate,
        pb.CommandStatementIngest,
        pb.ActionCreatePreparedStatementRequest,
        pb.ActionCreatePreparedStatementResult,
        pb.ActionClosePreparedStatementRequest,
        pb.ActionBeginTransactionRequest,
        pb.ActionBeginTransactionResult,
        pb.ActionEndTransactionRequest,
        pb.ActionCancelQueryRequest,
        pb.ActionCancelQueryResult,
    )
}


def unpack(data: bytes, *, expect: type[Message] | None = None) -> Message:
    """Decode an Any-packed Flight SQL message; raise a client error naming what is wrong."""
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError:
        raise InvalidInput(
            "the command is not a serialized google.protobuf.Any holding a Flight SQL message"
        ) from None
    url = envelope.type_url
    if not url.startswith(TYPE_URL_PREFIX):
        raise InvalidInput(
            f"unknown command type {url!r}: expected a message of arrow.flight.protocol.sql"
        )
    name = url[len(TYPE_URL_PREFIX) :]
    cls = _MESSAGES.get(name)
    if cls is None:
        raise Unsupported(f"Flight SQL message {name} is not supported by hyprstream")
    if expect is not None and cls is not expect:
        raise InvalidInput(f"expected {expect.DESCRIPTOR.name}, got {name}")
    message = cls()
    try:
        message.ParseFromString(envelope.value)
    except DecodeError:
        raise InvalidInput(f"malformed {name} message") from None
    return message


def pack(message: Message) -> bytes:
    """Any-pack ``message`` under its canonical Flight SQL type URL."""
    envelope = any_pb2.Any(
        type_url=TYPE_URL_PREFIX + message.DESCRIPTOR.name, value=message.SerializeToString()
    )
    return envelope.SerializeToString()


# -- SqlInfo --------------------------------------------------------------------------------


class SqlInfo:
    """SqlInfo ids hyprstream answers (the numbering of the Flight SQL specification)."""

    FLIGHT_SQL_SERVER_NAME = 0
    FLIGHT_SQL_SERVER_VERSION = 1
    FLIGHT_SQL_SERVER_ARROW_VERSION = 2
    FLIGHT_SQL_SERVER_READ_ONLY = 3
    FLIGHT_SQL_SERVER_SQL = 4
    FLIGHT_SQL_SERVER_SUBSTRAIT = 5
    FLIGHT_SQL_SERVER_TRANSACTION = 8
    FLIGHT_SQL_SERVER_CANCEL = 9
    FLIGHT_SQL_SERVER_BULK_INGESTION = 10
    FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
    FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
    FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
    SQL_DDL_CATALOG = 500
    SQL_DDL_SCHEMA = 501
    SQL_DDL_TABLE = 502
    SQL_IDENTIFIER_CASE = 503
    SQL_IDENTIFIER_QUOTE_CHAR = 504
    SQL_QUOTED_IDENTIFIER_CASE = 505
    SQL_ALL_TABLES_ARE_SELECTABLE = 506
    SQL_NULL_ORDERING = 507
    SQL_KEYWORDS = 508
    SQL_NUMERIC_FUNCTIONS = 509
    SQL_STRING_FUNCTIONS = 510
    SQL_SYSTEM_FUNCTIONS = 511
    SQL_DATETIME_FUNCTIONS = 512
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_EXTRA_NAME_CHARACTERS = 514
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_TRANSACTIONS_SUPPORTED = 563


#: A SqlInfo value: which union member it travels in follows from its Python type, except
#: that ``Int32`` marks values for the ``int32_bitmask`` member.
class Int32(int):
    """An int sent as ``int32_bitmask`` (enums and bitmasks) rather than ``bigint_value``."""


SqlInfoValue: TypeAlias = str | bool | int | Int32 | list[str] | dict[int, list[int]]

_UNION_FIELDS = [
    pa.field("string_value", pa.utf8(), nullable=False),
    pa.field("bool_value", pa.bool_(), nullable=False),
    pa.field("bigint_value", pa.int64(), nullable=False),
    pa.field("int32_bitmask", pa.int32(), nullable=False),
    pa.field("string_list", pa.list_(pa.field("item", pa.utf8())), nullable=False),
    pa.field(
        "int32_to_int32_list_map",
        pa.map_(pa.int32(), pa.list_(pa.field("item", pa.int32()))),
        nullable=False,
    ),
]
_UNION_TYPE = pa.dense_union(_UNION_FIELDS, type_codes=[0, 1, 2, 3, 4, 5])

#: The exact GetSqlInfo result schema (FSQL-4).
SQL_INFO_SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", _UNION_TYPE, nullable=False),
    ]
)


def _type_code(value: SqlInfoValue) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, Int32):
        return 3
    if isinstance(value, int):
        return 2
    if isinstance(value, str):
        return 0
    if isinstance(value, list):
        return 4
    if isinstance(value, dict):
        return 5
    raise TypeError(f"unsupported SqlInfo value {value!r}")


def sql_info_table(values: Mapping[int, SqlInfoValue], requested: Sequence[int]) -> pa.Table:
    """The GetSqlInfo answer for ``requested`` ids (all known ids when empty).

    Ids we do not know are left out, as the specification allows.
    """
    ids = [i for i in (requested or sorted(values)) if i in values]
    children: list[list[Any]] = [[] for _ in _UNION_FIELDS]
    type_ids: list[int] = []
    offsets: list[int] = []
    for info_id in ids:
        value = values[info_id]
        code = _type_code(value)
        type_ids.append(code)
        offsets.append(len(children[code]))
        children[code].append(list(value.items()) if isinstance(value, dict) else value)
    child_arrays = [
        pa.array(items, type=f.type) for items, f in zip(children, _UNION_FIELDS, strict=True)
    ]
    # from_buffers keeps the exact union type (child names and non-nullability).
    union = pa.Array.from_buffers(
        _UNION_TYPE,
        len(ids),
        [
            None,
            pa.array(type_ids, type=pa.int8()).buffers()[1],
            pa.array(offsets, type=pa.int32()).buffers()[1],
        ],
        children=child_arrays,
    )
    return pa.Table.from_arrays([pa.array(ids, type=pa.uint32()), union], schema=SQL_INFO_SCHEMA)
