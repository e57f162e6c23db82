"""Layer 4: the backend port and its adapters (ADBC, in-memory), and the DuckDB hot cache."""

from hyprstream.backend._adbc import AdbcBackend, DriverSpec, resolve_driver
from hyprstream.backend._duckdb_cache import WINDOW_COLUMNS, DuckDBHotCache, QueryShape
from hyprstream.backend._memory import MemoryBackend
from hyprstream.backend._port import Backend
from hyprstream.backend._types import duckdb_type

__all__ = [
    "WINDOW_COLUMNS",
    "AdbcBackend",
    "Backend",
    "DriverSpec",
    "DuckDBHotCache",
    "MemoryBackend",
    "QueryShape",
    "duckdb_type",
    "resolve_driver",
]
