"""CACHE-1..CACHE-4: expiry and eviction decisions."""

from __future__ import annotations

import pytest

from hyprstream.cachepolicy import CachePolicy, Entry, evictions


def e(key: str, size: int = 10, created: int = 0, used: int = 0, pinned: bool = False) -> Entry:
    return Entry(key=key, size=size, created_ns=created, last_used_ns=used, pinned=pinned)


def test_nothing_to_do_within_limits() -> None:
    policy = CachePolicy(ttl_ns=100, max_bytes=100, max_entries=10)
    assert evictions([e("a"), e("b")], now=50, policy=policy) == []


def test_ttl_expires_oldest_first_and_only_expired() -> None:
    entries = [e("young", created=90), e("old", created=0), e("older", created=-5)]
    assert evictions(entries, now=100, policy=CachePolicy(ttl_ns=50)) == ["older", "old"]


def test_lru_until_bytes_fit() -> None:
    entries = [e("a", 40, used=3), e("b", 40, used=1), e("c", 40, used=2)]
    assert evictions(entries, now=0, policy=CachePolicy(max_bytes=80)) == ["b"]
    assert evictions(entries, now=0, policy=CachePolicy(max_bytes=40)) == ["b", "c"]


def test_entry_limit() -> None:
    entries = [e(str(i), used=i) for i in range(5)]
    assert evictions(entries, now=0, policy=CachePolicy(max_entries=3)) == ["0", "1"]


def test_pinned_entries_stay_even_over_limits() -> None:
    entries = [e("p", 100, used=0, pinned=True), e("q", 10, used=1)]
    assert evictions(entries, now=0, policy=CachePolicy(max_bytes=50)) == ["q"]
    assert evictions(entries, now=10**9, policy=CachePolicy(ttl_ns=1)) == ["q"]


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        CachePolicy(ttl_ns=-1)
