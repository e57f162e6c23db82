"""Layer 4: the backend port and its adapters (ADBC, in-memory), and the DuckDB hot cache."""

from hyprstream.backend._adbc import (
    AdbcBackend,
    ConnectionSettings,
    DriverSpec,
    connection_settings,
    resolve_driver,
)
from hyprstream.backend._duckdb_cache import WINDOW_COLUMNS, DuckDBHotCache, QueryShape
from hyprstream.backend._memory import MemoryBackend
from hyprstream.backend._port import Backend, BatchAck, DuplicateBatch, StoredBatch
from hyprstream.backend._series import ColumnStats, Groups
from hyprstream.backend._types import duckdb_type

__all__ = [
    "WINDOW_COLUMNS",
    "AdbcBackend",
    "Backend",
    "BatchAck",
    "ColumnStats",
    "ConnectionSettings",
    "DriverSpec",
    "DuckDBHotCache",
    "DuplicateBatch",
    "Groups",
    "MemoryBackend",
    "QueryShape",
    "StoredBatch",
    "connection_settings",
    "duckdb_type",
    "resolve_driver",
]
