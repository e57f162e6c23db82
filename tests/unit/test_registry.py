"""CACHE-3, CACHE-4: results awaiting DoGet and prepared statements are held under handles
and trimmed by their policy, whose limits hold after every put."""

from __future__ import annotations

import time

import pytest

from hyprstream.cachepolicy import CachePolicy
from hyprstream.errors import NotFound
from hyprstream.flightsql._server import _Registry


def test_entry_limit_drops_the_least_recently_used() -> None:
    registry = _Registry(CachePolicy(max_entries=2), "result")
    a = registry.put("a")
    b = registry.put("b")
    assert registry.get(a) == "a"  # a is now more recently used than b
    c = registry.put("c")
    assert len(registry) == 2
    with pytest.raises(NotFound, match="unknown or expired result handle"):
        registry.get(b)
    assert (registry.get(a), registry.get(c)) == ("a", "c")


def test_byte_limit_counts_what_is_held_and_what_was_taken_back() -> None:
    registry = _Registry(CachePolicy(max_bytes=100), "result")
    a = registry.put("a", 60)
    assert registry.pop(a) == "a"  # its 60 bytes no longer count
    b = registry.put("b", 60)
    registry.discard(b)
    c = registry.put("c", 60)
    d = registry.put("d", 30)
    assert len(registry) == 2  # 90 bytes: both fit
    e = registry.put("e", 50)  # 140: the oldest goes
    assert len(registry) == 2
    with pytest.raises(NotFound):
        registry.get(c)
    assert (registry.get(d), registry.get(e)) == ("d", "e")


def test_expired_entries_go_at_the_next_put() -> None:
    registry = _Registry(CachePolicy(ttl_ns=50_000_000), "prepared statement")
    old = registry.put("old")
    time.sleep(0.06)
    fresh = registry.put("fresh")
    with pytest.raises(NotFound, match="prepared statement"):
        registry.get(old)
    assert registry.get(fresh) == "fresh"
