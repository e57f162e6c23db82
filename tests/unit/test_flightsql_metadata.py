"""Flight SQL metadata commands: exact result schemas, filters, ordering, include_schema.

The expected schemas below are written out independently of the module, field by field,
from the reference definitions (apache/arrow cpp/src/arrow/flight/sql/server.cc
``SqlSchema::Get*Schema`` and apache/arrow-go ``flightsql/schema_ref/schema_ref.go``, which
the ADBC Go driver compares results against with ``Schema.Equal``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyprstream.flightsql import _metadata as md
from hyprstream.flightsql._metadata import (
    SCHEMAS,
    Catalog,
    ColumnInfo,
    ColumnMetadataKey,
    DbSchemaInfo,
    TableInfo,
    XdbcDataType,
    XdbcTypeInfo,
    column_metadata,
    get_catalogs,
    get_cross_reference,
    get_db_schemas,
    get_exported_keys,
    get_imported_keys,
    get_primary_keys,
    get_table_types,
    get_tables,
    get_xdbc_type_info,
    like_to_regex,
    result_schema,
    table_arrow_schema,
)
from hyprstream.flightsql._protocol import SQL_INFO_SCHEMA, pb

# -- expected schemas, written out by hand ---------------------------------------------------

U, I32, U8, B, BIN = pa.utf8(), pa.int32(), pa.uint8(), pa.bool_(), pa.binary()
CREATE_PARAMS = pa.list_(pa.field("item", pa.utf8(), nullable=False))

EXPECTED: dict[str, list[tuple[str, pa.DataType, bool]]] = {
    "catalogs": [("catalog_name", U, False)],
    "db_schemas": [("catalog_name", U, True), ("db_schema_name", U, False)],
    "tables": [
        ("catalog_name", U, True),
        ("db_schema_name", U, True),
        ("table_name", U, False),
        ("table_type", U, False),
    ],
    "tables_with_schema": [
        ("catalog_name", U, True),
        ("db_schema_name", U, True),
        ("table_name", U, False),
        ("table_type", U, False),
        ("table_schema", BIN, False),
    ],
    "table_types": [("table_type", U, False)],
    "primary_keys": [
        ("catalog_name", U, True),
        ("db_schema_name", U, True),
        ("table_name", U, False),
        ("column_name", U, False),
        ("key_sequence", I32, False),
        ("key_name", U, True),
    ],
    "foreign_keys": [
        ("pk_catalog_name", U, True),
        ("pk_db_schema_name", U, True),
        ("pk_table_name", U, False),
        ("pk_column_name", U, False),
        ("fk_catalog_name", U, True),
        ("fk_db_schema_name", U, True),
        ("fk_table_name", U, False),
        ("fk_column_name", U, False),
        ("key_sequence", I32, False),
        ("fk_key_name", U, True),
        ("pk_key_name", U, True),
        ("update_rule", U8, False),
        ("delete_rule", U8, False),
    ],
    "xdbc_type_info": [
        ("type_name", U, False),
        ("data_type", I32, False),
        ("column_size", I32, True),
        ("literal_prefix", U, True),
        ("literal_suffix", U, True),
        ("create_params", CREATE_PARAMS, True),
        ("nullable", I32, False),
        ("case_sensitive", B, False),
        ("searchable", I32, False),
        ("unsigned_attribute", B, True),
        ("fixed_prec_scale", B, False),
        ("auto_increment", B, True),
        ("local_type_name", U, True),
        ("minimum_scale", I32, True),
        ("maximum_scale", I32, True),
        ("sql_data_type", I32, False),
        ("datetime_subcode", I32, True),
        ("num_prec_radix", I32, True),
        ("interval_precision", I32, True),
    ],
}


def expected(name: str) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=null) for n, t, null in EXPECTED[name]])


def assert_exact(schema: pa.Schema, name: str) -> None:
    """Field by field (name, type, nullability, no metadata), then Schema.equals."""
    want = EXPECTED[name]
    assert schema.names == [n for n, _, _ in want]
    for f, (n, t, null) in zip(schema, want, strict=True):
        assert f.name == n
        assert f.type == t, f"{n}: {f.type} != {t}"
        assert f.nullable is null, f"{n}: nullable {f.nullable}"
        assert not f.metadata, f"{n} carries field metadata"
    assert not schema.metadata
    assert schema.equals(expected(name), check_metadata=True)


def assert_result(table: pa.Table, name: str) -> None:
    """A result table: the exact schema, and no empty record batch (one batch when rows)."""
    assert isinstance(table, pa.Table)
    assert_exact(table.schema, name)
    assert table.schema.equals(expected(name), check_metadata=True)
    batches = table.to_batches()
    assert all(b.num_rows for b in batches)
    assert len(batches) == (1 if table.num_rows else 0)
    for column, f in zip(table.columns, table.schema, strict=True):
        if not f.nullable:
            assert column.null_count == 0, f"{f.name} holds nulls"
    # The schema, nullability included, survives IPC as a client reads it.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    back = pa.ipc.open_stream(sink.getvalue()).read_all()
    assert back.schema.equals(expected(name), check_metadata=True)
    assert back.equals(table)


# -- a catalog to describe -------------------------------------------------------------------


def col(name: str, arrow_type: pa.DataType, sql_type: str, **kw: Any) -> ColumnInfo:
    return ColumnInfo(name=name, arrow_type=arrow_type, sql_type=sql_type, **kw)


METRICS_COLUMNS = (
    col("metric_id", pa.utf8(), "VARCHAR", nullable=False, remarks="the series"),
    col(
        "timestamp",
        pa.timestamp("us", tz="UTC"),
        "TIMESTAMP WITH TIME ZONE",
        nullable=False,
    ),
    col("value", pa.float64(), "DOUBLE", nullable=False, precision=53),
    col("value_running_window_count", pa.int64(), "BIGINT", precision=64, scale=0),
    col("price", pa.decimal128(18, 4), "DECIMAL(18,4)", precision=18, scale=4, read_only=False),
)

METRICS = TableInfo(
    catalog="memory",
    db_schema="main",
    name="metrics",
    table_type="TABLE",
    columns=METRICS_COLUMNS,
    primary_key=("metric_id", "timestamp"),
    primary_key_name="metrics_pk",
)
WINDOWS = TableInfo(
    catalog="memory",
    db_schema="main",
    name="metric_windows",
    table_type="VIEW",
    columns=(col("metric_id", pa.utf8(), "VARCHAR"),),
)
LOOKALIKE = TableInfo(  # matches metric_windows with an unescaped "_"
    catalog="memory",
    db_schema="main",
    name="metricXwindows",
    table_type="TABLE",
    columns=(col("id", pa.int32(), "INTEGER", auto_increment=True),),
    primary_key=("id",),
)
UPPER = TableInfo(catalog="memory", db_schema="main", name="Metrics", table_type="TABLE")
OTHER_SCHEMA = TableInfo(catalog="memory", db_schema="archive", name="metrics", table_type="TABLE")
OTHER_CATALOG = TableInfo(catalog="cold", db_schema="main", name="metrics", table_type="TABLE")
NO_CATALOG = TableInfo(
    catalog=None,
    db_schema="main",
    name="loose",
    table_type="TABLE",
    columns=(col("k", pa.int64(), "BIGINT"),),
    primary_key=("k",),
)
NOTHING = TableInfo(catalog=None, db_schema=None, name="bare", table_type="SYSTEM TABLE")

ALL_TABLES = (METRICS, WINDOWS, LOOKALIKE, UPPER, OTHER_SCHEMA, OTHER_CATALOG, NO_CATALOG, NOTHING)
CATALOG = Catalog(
    tables=ALL_TABLES,
    db_schemas=(DbSchemaInfo(catalog="memory", name="empty"), DbSchemaInfo(catalog="", name="z")),
    catalogs=("system",),
)


def tables_cmd(**kw: Any) -> pb.CommandGetTables:
    return pb.CommandGetTables(**kw)


def names(table: pa.Table, *columns: str) -> list[tuple[Any, ...]]:
    data = [table.column(c).to_pylist() for c in columns]
    return list(zip(*data, strict=True))


# -- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        (md.CATALOGS_SCHEMA, "catalogs"),
        (md.DB_SCHEMAS_SCHEMA, "db_schemas"),
        (md.TABLES_SCHEMA, "tables"),
        (md.TABLES_WITH_SCHEMA_SCHEMA, "tables_with_schema"),
        (md.TABLE_TYPES_SCHEMA, "table_types"),
        (md.PRIMARY_KEYS_SCHEMA, "primary_keys"),
        (md.FOREIGN_KEYS_SCHEMA, "foreign_keys"),
        (md.EXPORTED_KEYS_SCHEMA, "foreign_keys"),
        (md.IMPORTED_KEYS_SCHEMA, "foreign_keys"),
        (md.CROSS_REFERENCE_SCHEMA, "foreign_keys"),
        (md.XDBC_TYPE_INFO_SCHEMA, "xdbc_type_info"),
    ],
)
def test_schema_constants_are_exact(schema: pa.Schema, name: str) -> None:
    assert_exact(schema, name)


def test_xdbc_create_params_list_child() -> None:
    t = md.XDBC_TYPE_INFO_SCHEMA.field("create_params").type
    assert pa.types.is_list(t)
    assert not pa.types.is_large_list(t)
    assert t.value_field.name == "item"
    assert t.value_field.nullable is False
    assert t.value_field.type == pa.utf8()
    assert md.XDBC_TYPE_INFO_SCHEMA.field("create_params").nullable is True


def test_no_large_or_view_string_types_anywhere() -> None:
    for schema in {*SCHEMAS.values(), md.TABLES_WITH_SCHEMA_SCHEMA}:
        for f in schema:
            assert not pa.types.is_large_string(f.type)
            assert not pa.types.is_string_view(f.type)
            assert not pa.types.is_large_binary(f.type)


def test_schemas_mapping_covers_every_metadata_command() -> None:
    assert set(SCHEMAS) == {
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
    }
    assert SCHEMAS[pb.CommandGetSqlInfo] is SQL_INFO_SCHEMA
    assert_exact(SCHEMAS[pb.CommandGetCatalogs], "catalogs")
    assert_exact(SCHEMAS[pb.CommandGetTables], "tables")
    with pytest.raises(TypeError):
        SCHEMAS[pb.CommandGetCatalogs] = pa.schema([])  # type: ignore[index]


def test_result_schema_honours_include_schema() -> None:
    assert_exact(result_schema(tables_cmd()), "tables")
    assert_exact(result_schema(tables_cmd(include_schema=True)), "tables_with_schema")
    assert_exact(result_schema(pb.CommandGetPrimaryKeys(table="t")), "primary_keys")
    assert_exact(result_schema(pb.CommandGetCrossReference()), "foreign_keys")
    with pytest.raises(KeyError):
        result_schema(pb.CommandStatementQuery(query="SELECT 1"))


def test_every_builder_answers_exactly_when_empty() -> None:
    empty = Catalog(table_types=())
    assert_result(get_catalogs(empty), "catalogs")
    assert_result(get_db_schemas(empty, pb.CommandGetDbSchemas()), "db_schemas")
    assert_result(get_tables(empty, tables_cmd()), "tables")
    assert_result(get_tables(empty, tables_cmd(include_schema=True)), "tables_with_schema")
    assert_result(get_table_types(empty), "table_types")
    assert_result(get_primary_keys(empty, pb.CommandGetPrimaryKeys(table="x")), "primary_keys")
    assert_result(get_exported_keys(empty, pb.CommandGetExportedKeys(table="x")), "foreign_keys")
    assert_result(get_imported_keys(empty, pb.CommandGetImportedKeys(table="x")), "foreign_keys")
    assert_result(
        get_cross_reference(empty, pb.CommandGetCrossReference(pk_table="a", fk_table="b")),
        "foreign_keys",
    )
    assert_result(get_xdbc_type_info(pb.CommandGetXdbcTypeInfo(data_type=12345)), "xdbc_type_info")
    for table in (get_catalogs(empty), get_tables(empty, tables_cmd()), get_table_types(empty)):
        assert table.num_rows == 0
        assert table.to_batches() == []


def test_every_builder_answers_exactly_with_rows() -> None:
    assert_result(get_catalogs(CATALOG), "catalogs")
    assert_result(get_db_schemas(CATALOG, pb.CommandGetDbSchemas()), "db_schemas")
    assert_result(get_tables(CATALOG, tables_cmd()), "tables")
    assert_result(get_tables(CATALOG, tables_cmd(include_schema=True)), "tables_with_schema")
    assert_result(get_table_types(CATALOG), "table_types")
    assert_result(
        get_primary_keys(CATALOG, pb.CommandGetPrimaryKeys(table="metrics")), "primary_keys"
    )
    assert_result(get_xdbc_type_info(pb.CommandGetXdbcTypeInfo()), "xdbc_type_info")


def test_foreign_key_commands_are_empty_even_for_known_tables() -> None:
    for table in (
        get_exported_keys(CATALOG, pb.CommandGetExportedKeys(catalog="memory", table="metrics")),
        get_imported_keys(CATALOG, pb.CommandGetImportedKeys(table="metrics")),
        get_cross_reference(
            CATALOG, pb.CommandGetCrossReference(pk_table="metrics", fk_table="metric_windows")
        ),
    ):
        assert_result(table, "foreign_keys")
        assert table.num_rows == 0


# -- LIKE ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("%", "", True),
        ("%", "anything at all", True),
        ("%", "multi\nline", True),
        ("", "", True),
        ("", "a", False),
        ("metrics", "metrics", True),
        ("metrics", "metrics2", False),
        ("metrics", "xmetrics", False),
        ("met%", "metrics", True),
        ("met%", "met", True),
        ("%ics", "metrics", True),
        ("%tri%", "metrics", True),
        ("%tri%", "metrcs", False),
        ("m_trics", "metrics", True),
        ("m_trics", "mtrics", False),
        ("m_trics", "meetrics", False),
        ("____", "abcd", True),
        ("____", "abc", False),
        ("_", "\n", True),
        ("metric_windows", "metricXwindows", True),
        (r"metric\_windows", "metric_windows", True),
        (r"metric\_windows", "metricXwindows", False),
        (r"100\%", "100%", True),
        (r"100\%", "1000", False),
        (r"a\\b", "a\\b", True),
        (r"a\\%", "a\\xyz", True),
        (r"a\b", "ab", True),  # an escaped ordinary character is that character
        ("a\\", "a\\", True),  # a trailing lone escape is a literal backslash
        ("a\\", "a", False),
        ("Metrics", "metrics", False),  # case-sensitive
        ("metrics", "METRICS", False),
        ("M%", "metrics", False),
        ("a.c", "abc", False),  # regex metacharacters are literal
        ("a.c", "a.c", True),
        ("a*", "aaa", False),
        ("(x)|y", "y", False),
        ("(x)|y", "(x)|y", True),
        ("[ab]", "a", False),
        ("$^", "$^", True),
        ("é_", "éa", True),
    ],
)
def test_like(pattern: str, text: str, matches: bool) -> None:
    regex = like_to_regex(pattern)
    assert (regex.match(text) is not None) is matches
    assert (regex.fullmatch(text) is not None) is matches
    assert (regex.search(text) is not None) is matches  # anchored: search agrees too


def _escape(name: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", name)


@given(st.text(max_size=30))
def test_like_escaped_name_matches_only_itself(name: str) -> None:
    regex = like_to_regex(_escape(name))
    assert regex.match(name)
    assert not regex.match(name + "x")
    if name:
        assert not regex.match(name[:-1])


@given(st.text(max_size=20), st.text(max_size=20))
def test_like_percent_is_prefix_match(prefix: str, rest: str) -> None:
    assert like_to_regex(_escape(prefix) + "%").match(prefix + rest)


# -- GetCatalogs / GetDbSchemas --------------------------------------------------------------


def test_catalogs_sorted_distinct_and_never_null() -> None:
    table = get_catalogs(CATALOG)
    assert table.column("catalog_name").to_pylist() == ["cold", "memory", "system"]


def test_db_schemas_unfiltered_ordered_nulls_first() -> None:
    table = get_db_schemas(CATALOG, pb.CommandGetDbSchemas())
    assert names(table, "catalog_name", "db_schema_name") == [
        (None, "main"),
        (None, "z"),
        ("cold", "main"),
        ("memory", "archive"),
        ("memory", "empty"),
        ("memory", "main"),
    ]


def test_db_schemas_catalog_filter_is_exact() -> None:
    def schemas(**kw: Any) -> list[tuple[Any, ...]]:
        table = get_db_schemas(CATALOG, pb.CommandGetDbSchemas(**kw))
        return names(table, "catalog_name", "db_schema_name")

    assert schemas(catalog="memory") == [
        ("memory", "archive"),
        ("memory", "empty"),
        ("memory", "main"),
    ]
    assert schemas(catalog="") == [(None, "main"), (None, "z")]  # "" = without a catalog
    assert schemas(catalog="mem%") == []  # not a pattern
    assert schemas(catalog="MEMORY") == []
    assert schemas(catalog="nope") == []


def test_db_schemas_pattern() -> None:
    def schemas(pattern: str, **kw: Any) -> list[Any]:
        cmd = pb.CommandGetDbSchemas(db_schema_filter_pattern=pattern, **kw)
        return list(get_db_schemas(CATALOG, cmd).column("db_schema_name").to_pylist())

    assert schemas("ma%", catalog="memory") == ["main"]
    assert schemas("%a%", catalog="memory") == ["archive", "main"]
    assert schemas("_ain") == ["main", "main", "main"]
    assert schemas("MAIN") == []
    assert schemas("") == []
    assert schemas("%", catalog="cold") == ["main"]


# -- GetTables -------------------------------------------------------------------------------


def test_tables_ordered_by_catalog_schema_name_type_nulls_first() -> None:
    table = get_tables(CATALOG, tables_cmd())
    assert names(table, "catalog_name", "db_schema_name", "table_name", "table_type") == [
        (None, None, "bare", "SYSTEM TABLE"),
        (None, "main", "loose", "TABLE"),
        ("cold", "main", "metrics", "TABLE"),
        ("memory", "archive", "metrics", "TABLE"),
        ("memory", "main", "Metrics", "TABLE"),  # code point order: upper case first
        ("memory", "main", "metricXwindows", "TABLE"),
        ("memory", "main", "metric_windows", "VIEW"),
        ("memory", "main", "metrics", "TABLE"),
    ]


def test_tables_ordering_ignores_input_order() -> None:
    reversed_catalog = Catalog(tables=tuple(reversed(ALL_TABLES)))
    assert get_tables(reversed_catalog, tables_cmd()).equals(get_tables(CATALOG, tables_cmd()))


def test_tables_same_name_different_types_sorted_by_type() -> None:
    cat = Catalog(
        tables=(
            TableInfo(catalog="c", db_schema="s", name="t", table_type="VIEW"),
            TableInfo(catalog="c", db_schema="s2", name="t", table_type="TABLE"),
            TableInfo(catalog="c", db_schema="s", name="u", table_type="TABLE"),
        )
    )
    table = get_tables(cat, tables_cmd())
    assert names(table, "db_schema_name", "table_name", "table_type") == [
        ("s", "t", "VIEW"),
        ("s", "u", "TABLE"),
        ("s2", "t", "TABLE"),
    ]


def tables(**kw: Any) -> list[tuple[Any, ...]]:
    return names(
        get_tables(CATALOG, tables_cmd(**kw)), "catalog_name", "db_schema_name", "table_name"
    )


def test_tables_catalog_filter() -> None:
    assert tables(catalog="cold") == [("cold", "main", "metrics")]
    assert tables(catalog="") == [(None, None, "bare"), (None, "main", "loose")]
    assert tables(catalog="Cold") == []
    assert tables(catalog="c%") == []
    assert len(tables()) == len(ALL_TABLES)


def test_tables_schema_pattern() -> None:
    assert tables(catalog="memory", db_schema_filter_pattern="arch%") == [
        ("memory", "archive", "metrics")
    ]
    # A table without a schema matches as "": "%" keeps it, "" selects exactly those.
    assert (None, None, "bare") in tables(db_schema_filter_pattern="%")
    assert tables(db_schema_filter_pattern="") == [(None, None, "bare")]
    assert tables(db_schema_filter_pattern="_") == []


def test_tables_name_pattern_with_wildcards_escapes_and_case() -> None:
    assert tables(table_name_filter_pattern="metric_windows") == [
        ("memory", "main", "metricXwindows"),
        ("memory", "main", "metric_windows"),
    ]
    assert tables(table_name_filter_pattern=r"metric\_windows") == [
        ("memory", "main", "metric_windows")
    ]
    assert tables(table_name_filter_pattern="metrics") == [
        ("cold", "main", "metrics"),
        ("memory", "archive", "metrics"),
        ("memory", "main", "metrics"),
    ]
    assert tables(table_name_filter_pattern="Metrics") == [("memory", "main", "Metrics")]
    assert tables(table_name_filter_pattern="%windows") == [
        ("memory", "main", "metricXwindows"),
        ("memory", "main", "metric_windows"),
    ]
    assert tables(table_name_filter_pattern="nope%") == []


def test_tables_all_filters_combined() -> None:
    assert tables(
        catalog="memory",
        db_schema_filter_pattern="main",
        table_name_filter_pattern="metric%",
        table_types=["TABLE"],
    ) == [("memory", "main", "metricXwindows"), ("memory", "main", "metrics")]


def test_tables_table_types_filter() -> None:
    def types(*wanted: str) -> list[Any]:
        table = get_tables(CATALOG, tables_cmd(table_types=list(wanted)))
        return list(table.column("table_name").to_pylist())

    assert types("VIEW") == ["metric_windows"]
    assert types("SYSTEM TABLE") == ["bare"]
    assert types("VIEW", "SYSTEM TABLE") == ["bare", "metric_windows"]
    assert types("view") == []  # exact and case-sensitive
    assert types("TAB%") == []  # not a pattern
    assert len(types()) == len(ALL_TABLES)  # empty list: every type


def test_tables_include_schema_round_trip() -> None:
    table = get_tables(
        CATALOG, tables_cmd(include_schema=True, table_name_filter_pattern="metrics")
    )
    assert_result(table, "tables_with_schema")
    by_place = {
        (row["catalog_name"], row["db_schema_name"]): row["table_schema"]
        for row in table.to_pylist()
    }
    schema = pa.ipc.read_schema(pa.py_buffer(by_place[("memory", "main")]))
    assert schema.equals(table_arrow_schema(METRICS), check_metadata=True)
    assert schema.names == [c.name for c in METRICS_COLUMNS]
    assert [f.type for f in schema] == [c.arrow_type for c in METRICS_COLUMNS]
    assert [f.nullable for f in schema] == [False, False, False, True, True]
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert not schema.metadata

    def meta(column: str) -> dict[str, str]:
        raw = schema.field(column).metadata
        return {k.decode(): v.decode() for k, v in raw.items()}

    k = ColumnMetadataKey
    assert meta("metric_id") == {
        "ARROW:FLIGHT:SQL:CATALOG_NAME": "memory",
        "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": "main",
        "ARROW:FLIGHT:SQL:SCHEMA_NAME": "main",
        "ARROW:FLIGHT:SQL:TABLE_NAME": "metrics",
        "ARROW:FLIGHT:SQL:TYPE_NAME": "VARCHAR",
        "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "0",
        "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE": "1",
        "ARROW:FLIGHT:SQL:IS_READ_ONLY": "1",
        "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1",
        "ARROW:FLIGHT:SQL:REMARKS": "the series",
    }
    ts = meta("timestamp")
    assert ts[k.TYPE_NAME] == "TIMESTAMP WITH TIME ZONE"
    assert ts[k.IS_CASE_SENSITIVE] == "0"
    assert k.REMARKS not in ts  # only where a comment exists
    assert k.PRECISION not in ts
    assert k.SCALE not in ts
    assert meta("value")[k.PRECISION] == "53"
    assert meta("value")[k.TYPE_NAME] == "DOUBLE"
    count = meta("value_running_window_count")
    assert (count[k.TYPE_NAME], count[k.PRECISION], count[k.SCALE]) == ("BIGINT", "64", "0")
    price = meta("price")
    assert (price[k.PRECISION], price[k.SCALE], price[k.IS_READ_ONLY]) == ("18", "4", "0")
    for f in schema:
        values = {key.decode(): v.decode() for key, v in f.metadata.items()}
        for flag in (k.IS_AUTO_INCREMENT, k.IS_CASE_SENSITIVE, k.IS_READ_ONLY, k.IS_SEARCHABLE):
            assert values[flag] in {"0", "1"}


def test_include_schema_metadata_without_catalog_or_schema() -> None:
    table = get_tables(CATALOG, tables_cmd(include_schema=True, catalog=""))
    rows = {r["table_name"]: r["table_schema"] for r in table.to_pylist()}
    loose = pa.ipc.read_schema(pa.py_buffer(rows["loose"]))
    keys = {key.decode() for key in loose.field("k").metadata}
    assert ColumnMetadataKey.CATALOG_NAME not in keys
    assert {ColumnMetadataKey.DB_SCHEMA_NAME, ColumnMetadataKey.SCHEMA_NAME} <= keys
    bare = pa.ipc.read_schema(pa.py_buffer(rows["bare"]))
    assert len(bare) == 0  # a table without columns still serializes


def test_auto_increment_and_overrides() -> None:
    m = column_metadata(LOOKALIKE, LOOKALIKE.columns[0])
    assert m[ColumnMetadataKey.IS_AUTO_INCREMENT] == "1"
    c = col("s", pa.utf8(), "VARCHAR", case_sensitive=False, searchable=False)
    m = column_metadata(METRICS, c)
    assert m[ColumnMetadataKey.IS_CASE_SENSITIVE] == "0"
    assert m[ColumnMetadataKey.IS_SEARCHABLE] == "0"
    large = col("l", pa.large_utf8(), "VARCHAR")
    assert column_metadata(METRICS, large)[ColumnMetadataKey.IS_CASE_SENSITIVE] == "1"


def test_include_schema_false_has_no_schema_column() -> None:
    table = get_tables(CATALOG, tables_cmd(include_schema=False))
    assert "table_schema" not in table.schema.names


# -- GetTableTypes ---------------------------------------------------------------------------


def test_table_types_defaults_plus_present_sorted() -> None:
    assert get_table_types(CATALOG).column("table_type").to_pylist() == [
        "SYSTEM TABLE",
        "TABLE",
        "VIEW",
    ]
    assert get_table_types(Catalog()).column("table_type").to_pylist() == ["TABLE", "VIEW"]


# -- GetPrimaryKeys --------------------------------------------------------------------------


def pks(**kw: Any) -> list[tuple[Any, ...]]:
    table = get_primary_keys(CATALOG, pb.CommandGetPrimaryKeys(**kw))
    assert_result(table, "primary_keys")
    return names(
        table,
        "catalog_name",
        "db_schema_name",
        "table_name",
        "column_name",
        "key_sequence",
        "key_name",
    )


def test_primary_keys_in_key_order() -> None:
    assert pks(catalog="memory", db_schema="main", table="metrics") == [
        ("memory", "main", "metrics", "metric_id", 1, "metrics_pk"),
        ("memory", "main", "metrics", "timestamp", 2, "metrics_pk"),
    ]


def test_primary_keys_filters() -> None:
    assert pks(table="metricXwindows") == [("memory", "main", "metricXwindows", "id", 1, None)]
    assert pks(table="metric_windows") == []  # a view without a key
    assert pks(table="metric%") == []  # the table name is not a pattern
    assert pks(table="Metrics") == []  # exists, no key
    assert pks(table="METRICS") == []
    assert pks(table="") == []
    assert pks(table="loose", catalog="") == [(None, "main", "loose", "k", 1, None)]
    assert pks(table="loose", catalog="memory") == []
    assert pks(table="metrics", db_schema="") == []
    assert pks(table="metrics", db_schema="archive") == []  # exists, no key


def test_primary_keys_ordered_across_tables() -> None:
    def keyed(catalog: str | None, schema: str | None, key_name: str | None) -> TableInfo:
        return TableInfo(
            catalog=catalog,
            db_schema=schema,
            name="t",
            columns=(col("b", pa.int64(), "BIGINT"), col("a", pa.int64(), "BIGINT")),
            primary_key=("b", "a"),
            primary_key_name=key_name,
        )

    cat = Catalog(
        tables=(
            keyed("y", "s", "k"),
            keyed("x", "s", None),
            keyed(None, "s", "k"),
            keyed("x", None, "k"),
        )
    )
    table = get_primary_keys(cat, pb.CommandGetPrimaryKeys(table="t"))
    assert_result(table, "primary_keys")
    assert names(table, "catalog_name", "db_schema_name", "column_name", "key_sequence") == [
        (None, "s", "b", 1),
        (None, "s", "a", 2),
        ("x", None, "b", 1),
        ("x", None, "a", 2),
        ("x", "s", "b", 1),
        ("x", "s", "a", 2),
        ("y", "s", "b", 1),
        ("y", "s", "a", 2),
    ]


# -- GetXdbcTypeInfo -------------------------------------------------------------------------

#: XdbcDataType of FlightSql.proto, copied from the spec.
SPEC_XDBC_CODES = {
    "UNKNOWN_TYPE": 0, "CHAR": 1, "NUMERIC": 2, "DECIMAL": 3, "INTEGER": 4, "SMALLINT": 5,
    "FLOAT": 6, "REAL": 7, "DOUBLE": 8, "DATETIME": 9, "INTERVAL": 10, "VARCHAR": 12,
    "DATE": 91, "TIME": 92, "TIMESTAMP": 93, "LONGVARCHAR": -1, "BINARY": -2,
    "VARBINARY": -3, "LONGVARBINARY": -4, "BIGINT": -5, "TINYINT": -6, "BIT": -7,
    "WCHAR": -8, "WVARCHAR": -9,
}  # fmt: skip


def test_xdbc_codes_match_the_spec() -> None:
    for name, code in SPEC_XDBC_CODES.items():
        assert getattr(XdbcDataType, name) == code
    assert md.XdbcDatetimeSubcode.DATE == 1
    assert md.XdbcDatetimeSubcode.TIMESTAMP == 3
    assert md.XdbcDatetimeSubcode.TIMESTAMP_WITH_TIMEZONE == 5


def type_rows(data_type: int | None = None) -> dict[str, dict[str, Any]]:
    cmd = (
        pb.CommandGetXdbcTypeInfo()
        if data_type is None
        else pb.CommandGetXdbcTypeInfo(data_type=data_type)
    )
    table = get_xdbc_type_info(cmd)
    assert_result(table, "xdbc_type_info")
    return {r["type_name"]: r for r in table.to_pylist()}


def test_xdbc_type_info_rows_for_our_types() -> None:
    rows = type_rows()
    assert {
        "VARCHAR", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "BOOLEAN",
        "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DECIMAL", "BLOB",
    } <= set(rows)  # fmt: skip
    codes = {name: r["data_type"] for name, r in rows.items()}
    assert codes["VARCHAR"] == 12
    assert codes["BIGINT"] == -5
    assert codes["INTEGER"] == 4
    assert codes["SMALLINT"] == 5
    assert codes["TINYINT"] == -6
    assert codes["DOUBLE"] == 8
    assert codes["FLOAT"] == 7  # single precision: REAL
    assert codes["BOOLEAN"] == -7  # the enum has no BOOLEAN; BIT as in ODBC
    assert codes["DATE"] == 91
    assert codes["TIMESTAMP"] == 93
    assert codes["TIMESTAMP WITH TIME ZONE"] == 93
    assert codes["DECIMAL"] == 3
    assert codes["BLOB"] == -3
    assert set(codes.values()) <= set(SPEC_XDBC_CODES.values())


def test_xdbc_type_info_field_values() -> None:
    rows = type_rows()
    for name, r in rows.items():
        assert r["nullable"] == 1, name  # NULLABILITY_NULLABLE
        assert r["searchable"] in {0, 1, 2, 3}, name
        assert r["sql_data_type"] in set(SPEC_XDBC_CODES.values()), name
        if r["data_type"] in {91, 92, 93}:
            assert r["sql_data_type"] == 9, name  # datetime: generic code plus a subcode
            assert r["datetime_subcode"] is not None, name
        else:
            assert r["sql_data_type"] == r["data_type"], name
            assert r["datetime_subcode"] is None, name
    assert rows["DATE"]["datetime_subcode"] == 1
    assert rows["TIMESTAMP"]["datetime_subcode"] == 3
    assert rows["TIMESTAMP WITH TIME ZONE"]["datetime_subcode"] == 5
    assert rows["VARCHAR"]["case_sensitive"] is True
    assert rows["VARCHAR"]["searchable"] == 3
    assert (rows["VARCHAR"]["literal_prefix"], rows["VARCHAR"]["literal_suffix"]) == ("'", "'")
    assert rows["VARCHAR"]["unsigned_attribute"] is None
    assert rows["BIGINT"]["unsigned_attribute"] is False
    assert rows["UBIGINT"]["unsigned_attribute"] is True
    assert (rows["BIGINT"]["column_size"], rows["BIGINT"]["num_prec_radix"]) == (19, 10)
    assert (rows["DOUBLE"]["column_size"], rows["DOUBLE"]["num_prec_radix"]) == (53, 2)
    assert (rows["FLOAT"]["column_size"], rows["FLOAT"]["num_prec_radix"]) == (24, 2)
    assert rows["DECIMAL"]["create_params"] == ["precision", "scale"]
    assert rows["BIGINT"]["create_params"] is None
    assert rows["TIMESTAMP WITH TIME ZONE"]["literal_prefix"] == "TIMESTAMPTZ '"


def test_xdbc_type_info_ordered_by_data_type_then_name() -> None:
    table = get_xdbc_type_info(pb.CommandGetXdbcTypeInfo())
    keys = list(
        zip(
            table.column("data_type").to_pylist(),
            table.column("type_name").to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("code", sorted(set(SPEC_XDBC_CODES.values())))
def test_xdbc_type_info_filter_by_data_type(code: int) -> None:
    rows = type_rows(code)
    assert all(r["data_type"] == code for r in rows.values())
    everything = type_rows()
    assert set(rows) == {n for n, r in everything.items() if r["data_type"] == code}


def test_xdbc_type_info_filter_examples() -> None:
    assert list(type_rows(93)) == ["TIMESTAMP", "TIMESTAMP WITH TIME ZONE"]
    assert list(type_rows(-5)) == ["BIGINT", "UBIGINT"]
    assert list(type_rows(12)) == ["VARCHAR"]
    assert type_rows(0) == {}  # explicitly 0 filters (presence, not truthiness)
    assert type_rows(9) == {}  # data_type is the concise code, not sql_data_type


def test_xdbc_type_info_custom_types() -> None:
    custom = (
        XdbcTypeInfo(type_name="B", data_type=4),
        XdbcTypeInfo(type_name="A", data_type=4, create_params=()),
        XdbcTypeInfo(type_name="Z", data_type=-5),
    )
    table = get_xdbc_type_info(pb.CommandGetXdbcTypeInfo(), custom)
    assert_result(table, "xdbc_type_info")
    assert table.column("type_name").to_pylist() == ["Z", "A", "B"]
    assert table.column("create_params").to_pylist() == [None, [], None]


# -- the description -------------------------------------------------------------------------


def test_empty_catalog_and_schema_names_mean_none() -> None:
    t = TableInfo(catalog="", db_schema="", name="t")
    assert (t.catalog, t.db_schema) == (None, None)
    assert DbSchemaInfo(catalog="", name="s").catalog is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: TableInfo(catalog="c", db_schema="s", name=""),
        lambda: TableInfo(catalog="c", db_schema="s", name="t", table_type=""),
        lambda: TableInfo(
            catalog="c", db_schema="s", name="t", columns=(col("a", U, "VARCHAR"),) * 2
        ),
        lambda: TableInfo(catalog="c", db_schema="s", name="t", primary_key=("missing",)),
        lambda: TableInfo(
            catalog="c",
            db_schema="s",
            name="t",
            columns=(col("a", U, "VARCHAR"),),
            primary_key=("a", "a"),
        ),
        lambda: col("", U, "VARCHAR"),
        lambda: col("a", U, ""),
        lambda: col("a", U, "VARCHAR", precision=-1),
        lambda: col("a", U, "VARCHAR", scale=-2),
        lambda: DbSchemaInfo(catalog="c", name=""),
        lambda: Catalog(tables=(METRICS, METRICS)),
        lambda: Catalog(catalogs=("",)),
        lambda: Catalog(table_types=("",)),
    ],
)
def test_invalid_descriptions_are_rejected(make: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages vary by case
        make()


def test_column_arrow_type_must_be_a_data_type() -> None:
    with pytest.raises(TypeError):
        col("a", "utf8", "VARCHAR")


def test_descriptions_are_frozen() -> None:
    with pytest.raises(AttributeError):
        METRICS.name = "x"  # type: ignore[misc]


def test_catalog_helpers() -> None:
    assert CATALOG.catalog_names() == ["cold", "memory", "system"]
    assert CATALOG.schema_names()[:2] == [(None, "main"), (None, "z")]
    assert CATALOG.table_type_names() == ["SYSTEM TABLE", "TABLE", "VIEW"]


# -- purity ----------------------------------------------------------------------------------

FORBIDDEN = {"duckdb", "adbc_driver_manager", "adbc_driver_flightsql", "pyarrow.flight", "socket",
             "threading", "asyncio", "subprocess", "time", "datetime", "os", "grpc"}  # fmt: skip


def test_module_is_pure() -> None:
    source = Path(md.__file__).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found = [node.module]
        else:
            continue
        for name in found:
            assert name not in FORBIDDEN, name
            assert name.split(".")[0] not in FORBIDDEN, name
            if name.startswith("hyprstream."):
                assert name.split(".")[1] in {"errors", "flightsql"}, name
