"""The result tables of the Flight SQL metadata commands, built from a catalog description.

Pure: pyarrow (no pyarrow.flight), our protobuf messages and ``hyprstream.errors``; no I/O,
no threads, no clock. The server describes what it serves as a :class:`Catalog` of
:class:`TableInfo` and :class:`ColumnInfo`; the ``get_*`` functions answer one command each
with a ``pa.Table`` whose schema is exactly the reference schema (clients compare with
``Schema.Equal``: names, types, nullability, field order, and no field metadata). An empty
answer is a table with that schema and no record batches (JDBC stops at the first empty
batch); a non-empty answer is a single record batch (the ADBC driver's ``GetTableSchema``
reads only the first batch of a GetTables answer).

What was verified, and where
----------------------------
Result schemas: the comments of ``format/FlightSql.proto`` (apache/arrow; the Arrow 21.0.0
documentation copy), cross-checked field by field against ``SqlSchema::Get*Schema`` in
apache/arrow ``cpp/src/arrow/flight/sql/server.cc`` and apache/arrow-go
``arrow/flight/flightsql/schema_ref/schema_ref.go`` (the schemas the ADBC Go driver
compares against in ``flightsql_connection.go``, ``readInfo``). Where the proto comment and
the implementations disagree we follow the implementations, because clients compare with
them:

* GetPrimaryKeys: the proto comment lists ``key_name`` before ``key_sequence``; C++ and Go
  both define ``..., column_name, key_sequence int32 not null, key_name utf8``.
* GetXdbcTypeInfo: ``create_params`` is ``list<item: utf8 not null>`` (C++ and Go; the
  proto comment says ``list<utf8 not null>`` without naming the child).

Column metadata in ``table_schema`` (GetTables with ``include_schema``): keys from the proto
comment of ``CommandGetTables``; booleans are the strings ``"1"`` and ``"0"`` (proto comment;
arrow-go ``column_metadata.go`` ``boolToStr``; arrow-java ``FlightSqlColumnMetadata``;
any other value reads as false there), integers are decimal strings (``strconv.Itoa``,
``Integer.toString``). The proto names the schema key ``ARROW:FLIGHT:SQL:DB_SCHEMA_NAME``,
but arrow-go (``SchemaNameKey``), arrow-java (``SCHEMA_NAME``) and arrow C++
(``ColumnMetadata::kSchemaName``) all use ``ARROW:FLIGHT:SQL:SCHEMA_NAME``, and the ADBC
Go driver reads that one for ``xdbc_scope_schema``; we write both. ``ARROW:FLIGHT:SQL:REMARKS``
(a column comment) is in the Arrow 21 proto comment ("added after all others, clients
should be prepared to find it missing"); we write it only for columns that have one.

XDBC codes: the ``XdbcDataType`` and ``XdbcDatetimeSubcode`` enums of FlightSql.proto. The
enum has no BOOLEAN (JDBC's 16) and no TIMESTAMP WITH TIME ZONE (JDBC's 2014) code, so
BOOLEAN is ``XDBC_BIT`` (-7, as in ODBC) and a time-zone timestamp is ``XDBC_TIMESTAMP``
(93) with ``datetime_subcode`` ``XDBC_SUBCODE_TIMESTAMP_WITH_TIMEZONE`` (5). As the proto
says for ``sql_data_type`` (and ODBC's SQLGetTypeInfo does), datetime types report the
generic ``XDBC_DATETIME`` (9) there, with the subcode saying which one.

Decisions
---------
* LIKE patterns (``db_schema_filter_pattern``, ``table_name_filter_pattern``): ``%`` matches
  any run of characters (newlines too), ``_`` exactly one character; everything else is
  literal. ``\\`` escapes the next character (JDBC's convention, e.g. ``metric\\_windows``
  matches only ``metric_windows``); a trailing lone ``\\`` is a literal backslash. Matching
  is case-sensitive, as in the spec's reference servers; the server should report
  SqlInfo ``SQL_SEARCH_STRING_ESCAPE`` (513) as ``"\\"`` to match.
* ``catalog`` / ``db_schema`` arguments are exact and case-sensitive; an empty string selects
  objects without a catalog (schema), an absent field does not narrow the search (spec).
  For the schema *pattern*, a table without a schema matches as the empty string: ``%``
  keeps it, ``""`` selects exactly those.
* ``table_types``: exact, case-sensitive membership; an empty list keeps every type.
* Ordering follows the spec for each command. Null catalog and schema names sort before
  every name (nulls first), and names compare by code point. Clients such as the ADBC
  driver read a null catalog as ``""``, which also sorts first, so the order survives that
  mapping.
* A catalog or schema given as ``""`` is stored as ``None`` (no catalog / schema): the
  result columns say "none" with a null, never with an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import pyarrow as pa
from google.protobuf.message import Message

from hyprstream.flightsql._protocol import SQL_INFO_SCHEMA, pb

__all__ = [
    "CATALOGS_SCHEMA",
    "CROSS_REFERENCE_SCHEMA",
    "DB_SCHEMAS_SCHEMA",
    "DEFAULT_TABLE_TYPES",
    "EXPORTED_KEYS_SCHEMA",
    "FOREIGN_KEYS_SCHEMA",
    "IMPORTED_KEYS_SCHEMA",
    "LIKE_ESCAPE",
    "PRIMARY_KEYS_SCHEMA",
    "SCHEMAS",
    "TABLES_SCHEMA",
    "TABLES_WITH_SCHEMA_SCHEMA",
    "TABLE_TYPES_SCHEMA",
    "XDBC_TYPES",
    "XDBC_TYPE_INFO_SCHEMA",
    "Catalog",
    "ColumnInfo",
    "ColumnMetadataKey",
    "DbSchemaInfo",
    "TableInfo",
    "XdbcDataType",
    "XdbcDatetimeSubcode",
    "XdbcTypeInfo",
    "column_metadata",
    "get_catalogs",
    "get_cross_reference",
    "get_db_schemas",
    "get_exported_keys",
    "get_imported_keys",
    "get_primary_keys",
    "get_table_types",
    "get_tables",
    "get_xdbc_type_info",
    "like_to_regex",
    "result_schema",
    "table_arrow_schema",
]

# -- exact result schemas ------------------------------------------------------------------


def _utf8(name: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, pa.utf8(), nullable=nullable)


#: CommandGetCatalogs: ``catalog_name utf8 not null``, ordered by catalog_name.
CATALOGS_SCHEMA = pa.schema([_utf8("catalog_name", nullable=False)])

#: CommandGetDbSchemas, ordered by catalog_name, then db_schema_name.
DB_SCHEMAS_SCHEMA = pa.schema([_utf8("catalog_name"), _utf8("db_schema_name", nullable=False)])

#: CommandGetTables without ``include_schema``, ordered by catalog_name, db_schema_name,
#: table_name, then table_type.
TABLES_SCHEMA = pa.schema(
    [
        _utf8("catalog_name"),
        _utf8("db_schema_name"),
        _utf8("table_name", nullable=False),
        _utf8("table_type", nullable=False),
    ]
)

#: CommandGetTables with ``include_schema``: ``table_schema`` is an IPC-serialized schema.
TABLES_WITH_SCHEMA_SCHEMA = TABLES_SCHEMA.append(
    pa.field("table_schema", pa.binary(), nullable=False)
)

#: CommandGetTableTypes: ``table_type utf8 not null``, ordered by table_type.
TABLE_TYPES_SCHEMA = pa.schema([_utf8("table_type", nullable=False)])

#: CommandGetPrimaryKeys (field order of the C++ and Go reference schemas, see above).
PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        _utf8("catalog_name"),
        _utf8("db_schema_name"),
        _utf8("table_name", nullable=False),
        _utf8("column_name", nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        _utf8("key_name"),
    ]
)

#: CommandGetExportedKeys, CommandGetImportedKeys and CommandGetCrossReference share it.
FOREIGN_KEYS_SCHEMA = pa.schema(
    [
        _utf8("pk_catalog_name"),
        _utf8("pk_db_schema_name"),
        _utf8("pk_table_name", nullable=False),
        _utf8("pk_column_name", nullable=False),
        _utf8("fk_catalog_name"),
        _utf8("fk_db_schema_name"),
        _utf8("fk_table_name", nullable=False),
        _utf8("fk_column_name", nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        _utf8("fk_key_name"),
        _utf8("pk_key_name"),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)
EXPORTED_KEYS_SCHEMA = FOREIGN_KEYS_SCHEMA
IMPORTED_KEYS_SCHEMA = FOREIGN_KEYS_SCHEMA
CROSS_REFERENCE_SCHEMA = FOREIGN_KEYS_SCHEMA

#: CommandGetXdbcTypeInfo, ordered by data_type, then type_name.
XDBC_TYPE_INFO_SCHEMA = pa.schema(
    [
        _utf8("type_name", nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        _utf8("literal_prefix"),
        _utf8("literal_suffix"),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        _utf8("local_type_name"),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)

#: The result schema of each metadata command, for GetSchema. CommandGetTables maps to its
#: schema without ``table_schema``; use :func:`result_schema` to honour ``include_schema``.
SCHEMAS: Mapping[type[Message], pa.Schema] = MappingProxyType(
    {
        pb.CommandGetSqlInfo: SQL_INFO_SCHEMA,
        pb.CommandGetXdbcTypeInfo: XDBC_TYPE_INFO_SCHEMA,
        pb.CommandGetCatalogs: CATALOGS_SCHEMA,
        pb.CommandGetDbSchemas: DB_SCHEMAS_SCHEMA,
        pb.CommandGetTables: TABLES_SCHEMA,
        pb.CommandGetTableTypes: TABLE_TYPES_SCHEMA,
        pb.CommandGetPrimaryKeys: PRIMARY_KEYS_SCHEMA,
        pb.CommandGetExportedKeys: EXPORTED_KEYS_SCHEMA,
        pb.CommandGetImportedKeys: IMPORTED_KEYS_SCHEMA,
        pb.CommandGetCrossReference: CROSS_REFERENCE_SCHEMA,
    }
)


def result_schema(cmd: Message) -> pa.Schema:
    """The exact result schema of metadata command ``cmd`` (KeyError for other messages)."""
    if isinstance(cmd, pb.CommandGetTables) and cmd.include_schema:
        return TABLES_WITH_SCHEMA_SCHEMA
    return SCHEMAS[type(cmd)]


# -- the catalog description ---------------------------------------------------------------


class ColumnMetadataKey:
    """Field-metadata keys of Flight SQL column descriptions (see the module docstring)."""

    CATALOG_NAME = "ARROW:FLIGHT:SQL:CATALOG_NAME"
    DB_SCHEMA_NAME = "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME"  # the spec's name
    SCHEMA_NAME = "ARROW:FLIGHT:SQL:SCHEMA_NAME"  # the name arrow-go/java/C++ and ADBC use
    TABLE_NAME = "ARROW:FLIGHT:SQL:TABLE_NAME"
    TYPE_NAME = "ARROW:FLIGHT:SQL:TYPE_NAME"
    PRECISION = "ARROW:FLIGHT:SQL:PRECISION"
    SCALE = "ARROW:FLIGHT:SQL:SCALE"
    IS_AUTO_INCREMENT = "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT"
    IS_CASE_SENSITIVE = "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE"
    IS_READ_ONLY = "ARROW:FLIGHT:SQL:IS_READ_ONLY"
    IS_SEARCHABLE = "ARROW:FLIGHT:SQL:IS_SEARCHABLE"
    REMARKS = "ARROW:FLIGHT:SQL:REMARKS"


#: Table types GetTableTypes reports even when no table of that type exists.
DEFAULT_TABLE_TYPES: tuple[str, ...] = ("TABLE", "VIEW")


def _none_if_empty(value: str | None) -> str | None:
    return value if value else None


def _require_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")


def _require_count(value: int | None, what: str) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnInfo:
    """One column of a table, as GetTables(include_schema) describes it.

    ``sql_type`` is the backend's type name (``ARROW:FLIGHT:SQL:TYPE_NAME``: VARCHAR,
    BIGINT, TIMESTAMP WITH TIME ZONE, ...). ``case_sensitive`` defaults to true for string
    columns and false otherwise. ``precision``/``scale`` are written only when given.
    """

    name: str
    arrow_type: pa.DataType
    sql_type: str
    nullable: bool = True
    remarks: str | None = None
    precision: int | None = None
    scale: int | None = None
    auto_increment: bool = False
    case_sensitive: bool | None = None
    read_only: bool = True
    searchable: bool = True

    def __post_init__(self) -> None:
        _require_name(self.name, "a column name")
        _require_name(self.sql_type, f"the SQL type of column {self.name!r}")
        if not isinstance(self.arrow_type, pa.DataType):
            raise TypeError(f"column {self.name!r}: arrow_type must be a pyarrow DataType")
        _require_count(self.precision, f"the precision of column {self.name!r}")
        _require_count(self.scale, f"the scale of column {self.name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TableInfo:
    """A table or view. ``primary_key`` lists column names in key order (may be empty)."""

    catalog: str | None
    db_schema: str | None
    name: str
    table_type: str = "TABLE"
    columns: tuple[ColumnInfo, ...] = ()
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "catalog", _none_if_empty(self.catalog))
        object.__setattr__(self, "db_schema", _none_if_empty(self.db_schema))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        _require_name(self.name, "a table name")
        _require_name(self.table_type, f"the table type of {self.name!r}")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name!r} has duplicate column names")
        unknown = [k for k in self.primary_key if k not in names]
        if unknown:
            raise ValueError(f"table {self.name!r}: primary key columns {unknown} do not exist")
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError(f"table {self.name!r}: a primary key column is repeated")


@dataclass(frozen=True, slots=True, kw_only=True)
class DbSchemaInfo:
    """A database schema that exists even if it holds no table (e.g. an empty ``main``)."""

    catalog: str | None
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "catalog", _none_if_empty(self.catalog))
        _require_name(self.name, "a schema name")


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """Everything the metadata commands describe.

    Catalogs and schemas of the tables are included automatically; ``db_schemas`` and
    ``catalogs`` add ones that hold no table. ``table_types`` are reported by
    GetTableTypes together with the types the tables actually have.
    """

    tables: tuple[TableInfo, ...] = ()
    db_schemas: tuple[DbSchemaInfo, ...] = ()
    catalogs: tuple[str, ...] = ()
    table_types: tuple[str, ...] = DEFAULT_TABLE_TYPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(self.tables))
        object.__setattr__(self, "db_schemas", tuple(self.db_schemas))
        object.__setattr__(self, "catalogs", tuple(self.catalogs))
        object.__setattr__(self, "table_types", tuple(self.table_types))
        for name in self.catalogs:
            _require_name(name, "a catalog name")
        for kind in self.table_types:
            _require_name(kind, "a table type")
        seen: set[tuple[str | None, str | None, str]] = set()
        for t in self.tables:
            key = (t.catalog, t.db_schema, t.name)
            if key in seen:
                raise ValueError(f"table {key} is described twice")
            seen.add(key)

    def catalog_names(self) -> list[str]:
        """Every catalog name, sorted (tables without a catalog contribute none)."""
        names = {t.catalog for t in self.tables} | {s.catalog for s in self.db_schemas}
        names.update(self.catalogs)
        return sorted(n for n in names if n is not None)

    def schema_names(self) -> list[tuple[str | None, str]]:
        """Every ``(catalog, schema)`` pair, sorted nulls first (tables without a schema
        contribute none)."""
        pairs = {(t.catalog, t.db_schema) for t in self.tables if t.db_schema is not None}
        pairs.update((s.catalog, s.name) for s in self.db_schemas)
        return sorted(pairs, key=_schema_sort_key)

    def table_type_names(self) -> list[str]:
        """Every table type, sorted."""
        return sorted(set(self.table_types) | {t.table_type for t in self.tables})


# -- LIKE ------------------------------------------------------------------------------------

LIKE_ESCAPE = "\\"


@lru_cache(maxsize=256)
def like_to_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex matching exactly the strings SQL ``LIKE pattern`` matches.

    ``%``: any run of characters, ``_``: one character, ``\\x``: the character x literally
    (a trailing lone ``\\`` is a literal backslash). Case-sensitive; anchored at both ends,
    so ``.match`` and ``.fullmatch`` agree.
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == LIKE_ESCAPE and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
        i += 1
    return re.compile(r"\A(?:" + "".join(parts) + r")\Z", re.DOTALL)


def _like(pattern: str | None) -> Callable[[str | None], bool]:
    """A predicate for an optional LIKE pattern; None never narrows, a null name is ``""``."""
    if pattern is None:
        return lambda _name: True
    regex = like_to_regex(pattern)
    return lambda name: regex.match(name or "") is not None


def _exact(value: str | None) -> Callable[[str | None], bool]:
    """A predicate for an optional exact name; None never narrows, ``""`` selects nulls."""
    if value is None:
        return lambda _name: True
    wanted = _none_if_empty(value)
    return lambda name: name == wanted


def _optional(cmd: Message, name: str) -> str | None:
    value: str | None = getattr(cmd, name) if cmd.HasField(name) else None
    return value


# -- ordering ---------------------------------------------------------------------------------


def _nulls_first(value: str | None) -> tuple[int, str]:
    return (0, "") if value is None else (1, value)


def _schema_sort_key(pair: tuple[str | None, str]) -> tuple[tuple[int, str], str]:
    return (_nulls_first(pair[0]), pair[1])


def _table_sort_key(t: TableInfo) -> tuple[Any, ...]:
    return (_nulls_first(t.catalog), _nulls_first(t.db_schema), t.name, t.table_type)


# -- table building ---------------------------------------------------------------------------


def _build(schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """A table of ``rows`` with exactly ``schema``: one record batch, or none when empty."""
    if not rows:
        return pa.Table.from_batches([], schema=schema)
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def column_metadata(table: TableInfo, column: ColumnInfo) -> dict[str, str]:
    """The Flight SQL field metadata of ``column`` of ``table`` (keys in a stable order)."""
    k = ColumnMetadataKey
    md: dict[str, str] = {}
    if table.catalog is not None:
        md[k.CATALOG_NAME] = table.catalog
    if table.db_schema is not None:
        md[k.DB_SCHEMA_NAME] = table.db_schema
        md[k.SCHEMA_NAME] = table.db_schema
    md[k.TABLE_NAME] = table.name
    md[k.TYPE_NAME] = column.sql_type
    if column.precision is not None:
        md[k.PRECISION] = str(column.precision)
    if column.scale is not None:
        md[k.SCALE] = str(column.scale)
    case_sensitive = column.case_sensitive
    if case_sensitive is None:
        t = column.arrow_type
        case_sensitive = pa.types.is_string(t) or pa.types.is_large_string(t)
    md[k.IS_AUTO_INCREMENT] = _flag(column.auto_increment)
    md[k.IS_CASE_SENSITIVE] = _flag(case_sensitive)
    md[k.IS_READ_ONLY] = _flag(column.read_only)
    md[k.IS_SEARCHABLE] = _flag(column.searchable)
    if column.remarks is not None:
        md[k.REMARKS] = column.remarks
    return md


def table_arrow_schema(table: TableInfo) -> pa.Schema:
    """The Arrow schema of ``table``, each field carrying its Flight SQL column metadata."""
    return pa.schema(
        [
            pa.field(c.name, c.arrow_type, nullable=c.nullable, metadata=column_metadata(table, c))
            for c in table.columns
        ]
    )


# -- the commands -----------------------------------------------------------------------------


def get_catalogs(catalog: Catalog) -> pa.Table:
    """CommandGetCatalogs: every catalog name, sorted."""
    return _build(CATALOGS_SCHEMA, [(name,) for name in catalog.catalog_names()])


def get_db_schemas(catalog: Catalog, cmd: pb.CommandGetDbSchemas) -> pa.Table:
    """CommandGetDbSchemas, filtered by ``catalog`` (exact) and ``db_schema_filter_pattern``."""
    in_catalog = _exact(_optional(cmd, "catalog"))
    schema_like = _like(_optional(cmd, "db_schema_filter_pattern"))
    rows = [(c, s) for c, s in catalog.schema_names() if in_catalog(c) and schema_like(s)]
    return _build(DB_SCHEMAS_SCHEMA, rows)


def _matching_tables(catalog: Catalog, cmd: pb.CommandGetTables) -> Iterable[TableInfo]:
    in_catalog = _exact(_optional(cmd, "catalog"))
    schema_like = _like(_optional(cmd, "db_schema_filter_pattern"))
    name_like = _like(_optional(cmd, "table_name_filter_pattern"))
    types = frozenset(cmd.table_types)
    for t in catalog.tables:
        if (
            in_catalog(t.catalog)
            and schema_like(t.db_schema)
            and name_like(t.name)
            and (not types or t.table_type in types)
        ):
            yield t


def get_tables(catalog: Catalog, cmd: pb.CommandGetTables) -> pa.Table:
    """CommandGetTables: matching tables, with their serialized schemas on ``include_schema``."""
    rows: list[tuple[Any, ...]] = []
    for t in sorted(_matching_tables(catalog, cmd), key=_table_sort_key):
        row: tuple[Any, ...] = (t.catalog, t.db_schema, t.name, t.table_type)
        if cmd.include_schema:
            row += (table_arrow_schema(t).serialize().to_pybytes(),)
        rows.append(row)
    return _build(result_schema(cmd), rows)


def get_table_types(catalog: Catalog) -> pa.Table:
    """CommandGetTableTypes: the supported table types, sorted."""
    return _build(TABLE_TYPES_SCHEMA, [(kind,) for kind in catalog.table_type_names()])


def get_primary_keys(catalog: Catalog, cmd: pb.CommandGetPrimaryKeys) -> pa.Table:
    """CommandGetPrimaryKeys: the key columns of the tables named ``cmd.table`` (exact),
    narrowed by ``catalog`` and ``db_schema`` (exact; ``""`` selects those without)."""
    in_catalog = _exact(_optional(cmd, "catalog"))
    in_schema = _exact(_optional(cmd, "db_schema"))
    rows = [
        (t.catalog, t.db_schema, t.name, column, seq, t.primary_key_name)
        for t in catalog.tables
        if t.name == cmd.table and in_catalog(t.catalog) and in_schema(t.db_schema)
        for seq, column in enumerate(t.primary_key, start=1)
    ]
    rows.sort(
        key=lambda r: (_nulls_first(r[0]), _nulls_first(r[1]), r[2], _nulls_first(r[5]), r[4])
    )
    return _build(PRIMARY_KEYS_SCHEMA, rows)


def get_exported_keys(catalog: Catalog, cmd: pb.CommandGetExportedKeys) -> pa.Table:
    """CommandGetExportedKeys: hyprstream has no foreign keys, so always empty."""
    del catalog, cmd
    return _build(EXPORTED_KEYS_SCHEMA, [])


def get_imported_keys(catalog: Catalog, cmd: pb.CommandGetImportedKeys) -> pa.Table:
    """CommandGetImportedKeys: hyprstream has no foreign keys, so always empty."""
    del catalog, cmd
    return _build(IMPORTED_KEYS_SCHEMA, [])


def get_cross_reference(catalog: Catalog, cmd: pb.CommandGetCrossReference) -> pa.Table:
    """CommandGetCrossReference: hyprstream has no foreign keys, so always empty."""
    del catalog, cmd
    return _build(CROSS_REFERENCE_SCHEMA, [])


# -- XDBC type info ---------------------------------------------------------------------------


class XdbcDataType:
    """``XdbcDataType`` of FlightSql.proto (the JDBC/ODBC codes)."""

    UNKNOWN_TYPE = 0
    CHAR = 1
    NUMERIC = 2
    DECIMAL = 3
    INTEGER = 4
    SMALLINT = 5
    FLOAT = 6
    REAL = 7
    DOUBLE = 8
    DATETIME = 9
    INTERVAL = 10
    VARCHAR = 12
    DATE = 91
    TIME = 92
    TIMESTAMP = 93
    LONGVARCHAR = -1
    BINARY = -2
    VARBINARY = -3
    LONGVARBINARY = -4
    BIGINT = -5
    TINYINT = -6
    BIT = -7
    WCHAR = -8
    WVARCHAR = -9


class XdbcDatetimeSubcode:
    """The datetime members of ``XdbcDatetimeSubcode`` of FlightSql.proto."""

    DATE = 1
    TIME = 2
    TIMESTAMP = 3
    TIME_WITH_TIMEZONE = 4
    TIMESTAMP_WITH_TIMEZONE = 5


_NULLABLE = 1  # Nullable.NULLABILITY_NULLABLE
_SEARCHABLE_BASIC = 2  # Searchable.SEARCHABLE_BASIC: any operator but LIKE
_SEARCHABLE_FULL = 3  # Searchable.SEARCHABLE_FULL: any operator


@dataclass(frozen=True, slots=True, kw_only=True)
class XdbcTypeInfo:
    """One row of the GetXdbcTypeInfo answer (field meanings as in FlightSql.proto)."""

    type_name: str
    data_type: int
    column_size: int | None = None
    literal_prefix: str | None = None
    literal_suffix: str | None = None
    create_params: tuple[str, ...] | None = None
    nullable: int = _NULLABLE
    case_sensitive: bool = False
    searchable: int = _SEARCHABLE_BASIC
    unsigned_attribute: bool | None = None
    fixed_prec_scale: bool = False
    auto_increment: bool | None = None
    local_type_name: str | None = None
    minimum_scale: int | None = None
    maximum_scale: int | None = None
    sql_data_type: int | None = None  # None: same as data_type
    datetime_subcode: int | None = None
    num_prec_radix: int | None = None
    interval_precision: int | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.type_name,
            self.data_type,
            self.column_size,
            self.literal_prefix,
            self.literal_suffix,
            None if self.create_params is None else list(self.create_params),
            self.nullable,
            self.case_sensitive,
            self.searchable,
            self.unsigned_attribute,
            self.fixed_prec_scale,
            self.auto_increment,
            self.local_type_name,
            self.minimum_scale,
            self.maximum_scale,
            self.data_type if self.sql_data_type is None else self.sql_data_type,
            self.datetime_subcode,
            self.num_prec_radix,
            self.interval_precision,
        )


def _integer(name: str, code: int, digits: int, *, unsigned: bool = False) -> XdbcTypeInfo:
    return XdbcTypeInfo(
        type_name=name,
        data_type=code,
        column_size=digits,
        unsigned_attribute=unsigned,
        auto_increment=False,
        minimum_scale=0,
        maximum_scale=0,
        num_prec_radix=10,
    )


def _approximate(name: str, code: int, bits: int) -> XdbcTypeInfo:
    return XdbcTypeInfo(
        type_name=name,
        data_type=code,
        column_size=bits,
        unsigned_attribute=False,
        auto_increment=False,
        num_prec_radix=2,
    )


def _datetime(
    name: str, code: int, *, size: int, prefix: str, subcode: int, scale: int | None
) -> XdbcTypeInfo:
    return XdbcTypeInfo(
        type_name=name,
        data_type=code,
        column_size=size,
        literal_prefix=prefix,
        literal_suffix="'",
        minimum_scale=scale,
        maximum_scale=scale,
        sql_data_type=XdbcDataType.DATETIME,
        datetime_subcode=subcode,
    )


#: The SQL types hyprstream's tables use, named as DuckDB names them in
#: ``information_schema.columns.data_type`` (so TYPE_NAME metadata joins with this table).
#: Sizes: exact numerics in decimal digits, approximate ones in bits (num_prec_radix 2),
#: datetimes as the length of their text form. VARCHAR and BLOB are unbounded: no size.
XDBC_TYPES: tuple[XdbcTypeInfo, ...] = (
    XdbcTypeInfo(
        type_name="VARCHAR",
        data_type=XdbcDataType.VARCHAR,
        literal_prefix="'",
        literal_suffix="'",
        case_sensitive=True,
        searchable=_SEARCHABLE_FULL,
    ),
    XdbcTypeInfo(type_name="BLOB", data_type=XdbcDataType.VARBINARY),
    XdbcTypeInfo(type_name="BOOLEAN", data_type=XdbcDataType.BIT, column_size=1),
    _integer("TINYINT", XdbcDataType.TINYINT, 3),
    _integer("UTINYINT", XdbcDataType.TINYINT, 3, unsigned=True),
    _integer("SMALLINT", XdbcDataType.SMALLINT, 5),
    _integer("USMALLINT", XdbcDataType.SMALLINT, 5, unsigned=True),
    _integer("INTEGER", XdbcDataType.INTEGER, 10),
    _integer("UINTEGER", XdbcDataType.INTEGER, 10, unsigned=True),
    _integer("BIGINT", XdbcDataType.BIGINT, 19),
    _integer("UBIGINT", XdbcDataType.BIGINT, 20, unsigned=True),
    XdbcTypeInfo(
        type_name="DECIMAL",
        data_type=XdbcDataType.DECIMAL,
        column_size=38,
        create_params=("precision", "scale"),
        unsigned_attribute=False,
        auto_increment=False,
        minimum_scale=0,
        maximum_scale=38,
        num_prec_radix=10,
    ),
    # DuckDB's FLOAT is single precision: XDBC/JDBC REAL (XDBC FLOAT is double precision).
    _approximate("FLOAT", XdbcDataType.REAL, 24),
    _approximate("DOUBLE", XdbcDataType.DOUBLE, 53),
    _datetime(
        "DATE",
        XdbcDataType.DATE,
        size=len("2000-01-01"),
        prefix="DATE '",
        subcode=XdbcDatetimeSubcode.DATE,
        scale=None,
    ),
    _datetime(
        "TIMESTAMP",
        XdbcDataType.TIMESTAMP,
        size=len("2000-01-01 00:00:00.000000"),
        prefix="TIMESTAMP '",
        subcode=XdbcDatetimeSubcode.TIMESTAMP,
        scale=6,
    ),
    _datetime(
        "TIMESTAMP WITH TIME ZONE",
        XdbcDataType.TIMESTAMP,
        size=len("2000-01-01 00:00:00.000000+00:00"),
        prefix="TIMESTAMPTZ '",
        subcode=XdbcDatetimeSubcode.TIMESTAMP_WITH_TIMEZONE,
        scale=6,
    ),
)


def get_xdbc_type_info(
    cmd: pb.CommandGetXdbcTypeInfo, types: Iterable[XdbcTypeInfo] = XDBC_TYPES
) -> pa.Table:
    """CommandGetXdbcTypeInfo: ``types`` whose data_type is ``cmd.data_type`` (all when the
    field is absent), ordered by data_type, then type_name."""
    wanted: int | None = cmd.data_type if cmd.HasField("data_type") else None
    chosen = sorted(
        (t for t in types if wanted is None or t.data_type == wanted),
        key=lambda t: (t.data_type, t.type_name),
    )
    return _build(XDBC_TYPE_INFO_SCHEMA, [t.row() for t in chosen])
