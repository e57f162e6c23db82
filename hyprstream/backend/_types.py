"""Arrow types as DuckDB SQL type names (other dialects go through sqlglot from these)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hyprstream.errors import InvalidInput

__all__ = ["DUCKDB_CONFINEMENT", "confine", "duckdb_type", "quote_identifier"]

_SIMPLE = {
    pa.utf8(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.date32(): "DATE",
    pa.binary(): "BLOB",
}


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (DuckDB, PostgreSQL and SQLite alike)."""
    return '"' + name.replace('"', '""') + '"'


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB column type that stores Arrow type ``t`` without loss."""
    if t in _SIMPLE:
        return _SIMPLE[t]
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz is not None else "TIMESTAMP"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    raise InvalidInput(f"no column type for Arrow type {t}")


#: The settings that confine client SQL in a DuckDB database (spec/flightsql.md, FSQL-20):
#: no files, no extension installs or loads, and no further settings changes. Applied last,
#: with ``SET GLOBAL``, after our own setup.
DUCKDB_CONFINEMENT = (
    "enable_external_access = false",
    "autoinstall_known_extensions = false",
    "autoload_known_extensions = false",
    "allow_community_extensions = false",
    "lock_configuration = true",
)


def confine(cursor: Any, *extra: str) -> None:
    """Apply ``extra`` DuckDB settings, then :data:`DUCKDB_CONFINEMENT` (which locks the
    configuration, so it comes last), on a DB-API cursor of the database."""
    for setting in (*extra, *DUCKDB_CONFINEMENT):
        cursor.execute(f"SET GLOBAL {setting}")
