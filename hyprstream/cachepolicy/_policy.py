"""Expiry and eviction decisions (spec/cache.md, CACHE-2 to CACHE-4).

``evictions(entries, now, policy)`` returns the keys to drop, in the order to drop them:
first every entry older than the TTL (oldest first), then least-recently-used entries until
both the byte and the entry limits hold. It never drops more than needed, and an entry
that fits and is fresh is never dropped. Entries marked ``pinned`` (in use) are never
dropped; limits may then be exceeded until they are released.

Pure: time is the ``now`` argument (integer nanoseconds on any monotonic scale the caller
uses consistently).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

__all__ = ["CachePolicy", "Entry", "evictions", "may_evict"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """Limits of a cache; ``None`` means no limit of that kind."""

    ttl_ns: int | None = None
    max_bytes: int | None = None
    max_entries: int | None = None

    def __post_init__(self) -> None:
        for name in ("ttl_ns", "max_bytes", "max_entries"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    key: Hashable
    size: int
    created_ns: int
    last_used_ns: int
    pinned: bool = False


def evictions(entries: Iterable[Entry], now: int, policy: CachePolicy) -> list[Hashable]:
    """Keys to drop so that ``policy`` holds at ``now``."""
    entries = list(entries)
    live = [e for e in entries if not e.pinned]
    drop: list[Hashable] = []
    if policy.ttl_ns is not None:
        expired = sorted(
            (e for e in live if now - e.created_ns >= policy.ttl_ns), key=lambda e: e.created_ns
        )
        drop.extend(e.key for e in expired)
        gone = {id(e) for e in expired}
        live = [e for e in live if id(e) not in gone]
    pinned = [e for e in entries if e.pinned]
    total = sum(e.size for e in live) + sum(e.size for e in pinned)
    count = len(live) + len(pinned)
    for e in sorted(live, key=lambda e: e.last_used_ns):
        over_bytes = policy.max_bytes is not None and total > policy.max_bytes
        over_count = policy.max_entries is not None and count > policy.max_entries
        if not (over_bytes or over_count):
            break
        drop.append(e.key)
        total -= e.size
        count -= 1
    return drop


def may_evict(
    policy: CachePolicy, *, entries: int, total_bytes: int, oldest_created_ns: int | None, now: int
) -> bool:
    """Whether :func:`evictions` would drop anything from a cache without pinned entries that
    holds ``entries`` entries of ``total_bytes`` in all, the oldest created at
    ``oldest_created_ns`` (None: empty): an O(1) check to make before building the entries."""
    if policy.max_entries is not None and entries > policy.max_entries:
        return True
    if policy.max_bytes is not None and total_bytes > policy.max_bytes:
        return True
    if policy.ttl_ns is None or oldest_created_ns is None:
        return False
    return now - oldest_created_ns >= policy.ttl_ns
