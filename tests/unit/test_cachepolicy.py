"""CACHE-2..CACHE-4 and CACHE-10: expiry and eviction decisions, and when to rewrite the hot samples."""

from __future__ import annotations

import pytest

from hyprstream.cachepolicy import (
    CachePolicy,
    Entry,
    compress_due,
    evictions,
    idle_rewrite_may_start,
    may_evict,
    rewrite_due,
)


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


# -- CACHE-10: when the hot samples are rewritten into their clustered order ---------------


def test_idle_rewrite_once_an_eighth_of_the_table_changed() -> None:
    assert not rewrite_due(changed=100, rows=1_000_000, idle=True, floor=1_000)
    assert not rewrite_due(changed=124_999, rows=1_000_000, idle=True, floor=1_000)
    assert rewrite_due(changed=125_000, rows=1_000_000, idle=True, floor=1_000)


def test_idle_rewrite_needs_at_least_the_floor() -> None:
    assert not rewrite_due(changed=999, rows=999, idle=True, floor=1_000)
    assert rewrite_due(changed=1_000, rows=1_000, idle=True, floor=1_000)
    assert not rewrite_due(changed=0, rows=10, idle=True, floor=0)  # already in order


def test_under_load_rewrite_only_when_the_table_tripled() -> None:
    assert not rewrite_due(changed=1_999_999, rows=2_999_999, idle=False, floor=1)
    assert rewrite_due(changed=2_000_000, rows=3_000_000, idle=False, floor=1)
    # ... and never for fewer than 64 floors of changed rows.
    assert not rewrite_due(changed=639, rows=639, idle=False, floor=10)
    assert rewrite_due(changed=640, rows=640, idle=False, floor=10)


def test_rewrites_under_continuous_load_cost_at_most_one_and_a_half_times_the_rows() -> None:
    floor, rows, changed, rewritten = 1_000, 0, 0, 0
    for _ in range(100_000):  # batches of 1,000 rows, never idle
        rows += 1_000
        changed += 1_000
        if rewrite_due(changed=changed, rows=rows, idle=False, floor=floor):
            rewritten += rows
            changed = 0
    assert rewritten > 0  # the load does trigger rewrites
    assert rewritten <= 1.5 * rows + 64 * floor


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        rewrite_due(changed=-1, rows=0, idle=True)
    with pytest.raises(ValueError, match="must not be negative"):
        compress_due(written=-1, idle=True)
    with pytest.raises(ValueError, match="must not be negative"):
        compress_due(written=1, idle=True, floor=-1)


def test_idle_rewrites_given_up_in_a_row_wait_twice_as_long_each_time() -> None:
    # One idle period at first; then 2, 4, 8, 16 and at most 32 after each given up.
    needed = [
        min(p for p in range(100) if idle_rewrite_may_start(idle_periods=p, given_up=g))
        for g in range(8)
    ]
    assert needed == [1, 2, 4, 8, 16, 32, 32, 32]
    assert not idle_rewrite_may_start(idle_periods=0, given_up=0)  # never without idling
    with pytest.raises(ValueError, match="must not be negative"):
        idle_rewrite_may_start(idle_periods=-1, given_up=0)
    with pytest.raises(ValueError, match="must not be negative"):
        idle_rewrite_may_start(idle_periods=1, given_up=-1)


# -- CACHE-12: when the hot cache is checkpointed (compressed) -----------------------------


def test_compress_only_when_idle_and_a_row_group_was_written() -> None:
    assert not compress_due(written=999, idle=True, floor=1_000)
    assert compress_due(written=1_000, idle=True, floor=1_000)
    assert compress_due(written=10**9, idle=True, floor=1_000)
    # Under load never: appends would wait for the whole checkpoint.
    assert not compress_due(written=10**9, idle=False, floor=1_000)
    # Nothing written: nothing to compress, even with no floor.
    assert not compress_due(written=0, idle=True, floor=0)
    assert compress_due(written=1, idle=True, floor=0)


@pytest.mark.parametrize(
    "policy",
    [
        CachePolicy(ttl_ns=100),
        CachePolicy(max_bytes=25),
        CachePolicy(max_entries=2),
        CachePolicy(ttl_ns=50, max_bytes=40, max_entries=3),
        CachePolicy(),
    ],
)
def test_may_evict_says_whether_evictions_drops_anything(policy: CachePolicy) -> None:
    for count in range(5):
        for now in (0, 49, 50, 99, 100, 150, 1_000):
            entries = [e(f"k{i}", size=10, created=i * 20, used=i * 20) for i in range(count)]
            expected = bool(evictions(entries, now, policy))
            assert may_evict(
                policy,
                entries=count,
                total_bytes=10 * count,
                oldest_created_ns=entries[0].created_ns if entries else None,
                now=now,
            ) == expected
