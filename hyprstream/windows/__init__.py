"""Layer 2, windows: sizes and bucket math, mergeable aggregate states, and the open-window store.

Pure: numpy only; no I/O, no clock (time is always an argument), no threads.
"""

from hyprstream.windows._columnar import (
    Partials,
    StateColumns,
    aggregate,
    blocks,
    partials,
    rollup,
    running_totals,
    sort_samples,
    upsert,
)
from hyprstream.windows._spec import DEFAULT_SIZES, WindowSize, window_start
from hyprstream.windows._state import WindowState, merge
from hyprstream.windows._store import (
    DEFAULT_LATENESS_US,
    DEFAULT_RETENTION,
    IngestPlan,
    StoreChanges,
    WindowStore,
    default_retention,
)

__all__ = [
    "DEFAULT_LATENESS_US",
    "DEFAULT_RETENTION",
    "DEFAULT_SIZES",
    "IngestPlan",
    "Partials",
    "StateColumns",
    "StoreChanges",
    "WindowSize",
    "WindowState",
    "WindowStore",
    "aggregate",
    "blocks",
    "default_retention",
    "merge",
    "partials",
    "rollup",
    "running_totals",
    "sort_samples",
    "upsert",
    "window_start",
]
