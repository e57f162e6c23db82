"""Layer 3, cache policy: which cached entries to drop, as a pure function of (entries, now),
when to rewrite the hot samples into their clustered order, and when to compress them."""

from hyprstream.cachepolicy._layout import (
    REWRITE_FLOOR,
    compress_due,
    idle_rewrite_may_start,
    rewrite_due,
)
from hyprstream.cachepolicy._policy import CachePolicy, Entry, evictions, may_evict

__all__ = [
    "REWRITE_FLOOR",
    "CachePolicy",
    "Entry",
    "compress_due",
    "evictions",
    "idle_rewrite_may_start",
    "may_evict",
    "rewrite_due",
]
