"""Metric codes: stable, first-seen order, new ids only after commit, collisions handled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import hyprstream.model._codes as codes_module
from hyprstream.model import MetricDictionary
from hyprstream.model._codes import hash_strings


def test_codes_in_first_seen_order_and_stable() -> None:
    d = MetricDictionary()
    codes, new = d.encode(pa.array(["b", "a", "b", "c"]))
    assert new == ["b", "a", "c"]
    assert codes.tolist() == [0, 1, 0, 2]
    d.commit(new)
    codes, new = d.encode(pa.array(["c", "d", "a"]))
    assert (codes.tolist(), new) == ([2, 3, 1], ["d"])
    assert d.names() == ["b", "a", "c"]


def test_uncommitted_ids_are_forgotten() -> None:
    d = MetricDictionary()
    _, new = d.encode(pa.array(["x"]))
    assert new == ["x"]
    codes, new = d.encode(pa.array(["y", "x"]))  # "x" was never committed
    assert new == ["y", "x"]
    assert codes.tolist() == [0, 1]


def test_rank_is_text_order_within_the_batch() -> None:
    d = MetricDictionary()
    d.commit(["zeta", "alpha"])
    # Committed ids ("zeta", "alpha"), a new one ("mid") and an empty dictionary alike.
    for dictionary in (d, MetricDictionary()):
        codes, _, rank = dictionary.encode_ranked(pa.array(["zeta", "mid", "alpha", "zeta"]))
        assert rank[2] < rank[1] < rank[0] == rank[3]
    assert codes.tolist() == [0, 1, 2, 0]


def test_many_ids_round_trip() -> None:
    d = MetricDictionary()
    names = [f"host{i:05d}.cpu{i % 7}" for i in range(20_000)]
    rng = np.random.default_rng(0)
    ids = pa.array(names).take(pa.array(rng.integers(0, len(names), 50_000)))
    codes, new = d.encode(ids)
    d.commit(new)
    again, none = d.encode(ids)
    assert none == []
    assert np.array_equal(codes, again)
    assert [d.name(c) for c in again[:100].tolist()] == ids[:100].to_pylist()


def test_hash_collisions_cost_time_not_correctness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes_module, "hash_strings", lambda s: np.zeros(len(s), np.uint64))
    d = MetricDictionary()
    _, new = d.encode(pa.array(["a", "b", "c"]))
    d.commit(new)
    again, new = d.encode(pa.array(["c", "b", "a", "d"]))
    assert new == ["d"]
    assert again.tolist() == [2, 1, 0, 3]


def test_hash_is_deterministic_and_sensitive() -> None:
    a = hash_strings(pa.array(["metric", "metric", "metricc", "", "ab", "ba"]))
    assert a[0] == a[1]
    assert len({int(x) for x in a[1:]}) == 5
    sliced = pa.array(["zz", "metric", "q"]).slice(1, 1)
    assert hash_strings(sliced)[0] == a[0]


def test_text_key_orders_like_a_string_sort_on_the_first_16_bytes() -> None:
    from hyprstream.model._codes import text_key

    rng = np.random.default_rng(4)
    words = ["".join(rng.choice(list("abcAB09._-é"), rng.integers(1, 24))) for _ in range(500)]
    arr = pa.array(words).slice(3)  # an offset into the buffers, too
    key = text_key(arr)
    order = np.lexsort((key[:, 1], key[:, 0])).tolist()
    got = [words[3 + i].encode()[:16] for i in order]
    assert got == sorted(w.encode()[:16] for w in words[3:])
    assert text_key(pa.array([], pa.utf8())).shape == (0, 2)


def test_code_of_one_id_committed_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    d = MetricDictionary()
    _, new = d.encode(pa.array(["a", "b"]))
    assert d.code("a") is None  # not committed yet
    d.commit(new)
    assert (d.code("a"), d.code("b"), d.code("a"), d.code("zz")) == (0, 1, 0, None)
    # Ids whose hashes collide live in the side table; they are found too.
    monkeypatch.setattr(codes_module, "hash_strings", lambda s: np.zeros(len(s), np.uint64))
    c = MetricDictionary()
    _, new = c.encode(pa.array(["x", "y", "z"]))
    c.commit(new)
    assert [c.code(n) for n in ("z", "y", "x", "w")] == [2, 1, 0, None]


def test_a_planned_batch_is_stored_in_exact_text_order_of_ids_up_to_16_bytes() -> None:
    from hyprstream.windows import WindowStore

    d = MetricDictionary()
    d.commit(["host0001.cpu10", "host0000.cpu99"])  # known ids get their key from the dictionary
    rng = np.random.default_rng(9)
    ids = [f"host{h:04d}.cpu{c:02d}" for h in rng.integers(0, 3, 300) for c in rng.integers(0, 40, 1)]
    codes, _, rank = d.encode_ranked(pa.array(ids))
    ts = np.arange(len(ids), dtype=np.int64)
    plan = WindowStore().plan(codes, ts, np.ones(len(ids)), rank)
    stored = [ids[i] for i in plan.order]
    assert stored == sorted(ids)  # sharing 8 bytes, told apart by the next 8
