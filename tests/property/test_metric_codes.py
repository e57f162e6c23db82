"""The metric dictionary against a naive oracle: a Python dict of ids in first-seen order.

Random sequences of batches (ids from an alphabet with shared prefixes, ids longer than 16
bytes, multi-byte characters, ids that differ only past 16 bytes), each committed or not,
the dictionary's hash forced to collide or not: codes must be the oracle's, and each batch's
sort keys must put ids in the text order of their first 16 UTF-8 bytes, equal for rows of one
id -- whether the batch's ids are all known (a gather from the dictionary's text order) or
some are new (a sort within the batch).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hyprstream.model import MetricDictionary
from hyprstream.model import _codes as codes_module

IDS = [
    "a",
    "b",
    "ab",
    "a" * 16,
    "a" * 16 + "z",
    "a" * 16 + "b",  # equal to the one before in their first 16 bytes
    "cpu.load",
    "cpu.load.1m",
    "é",
    "e",
    "host0001.cpu00",
    "host0001.cpu01",
    "host0010.cpu00",
    "",
]

_batch = st.tuples(st.lists(st.sampled_from(IDS), min_size=1, max_size=30), st.booleans())


def _prefix(name: str) -> bytes:
    return name.encode("utf-8")[:16]


@given(batches=st.lists(_batch, min_size=1, max_size=12), collide=st.booleans())
@example(batches=[(["b", "a"], True), (["a", "b", "ab"], True)], collide=False)
@example(batches=[(["b", "a"], False), (["a", "b"], True)], collide=True)
def test_codes_and_text_order_match_the_oracle(
    batches: list[tuple[list[str], bool]], collide: bool
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if collide:  # every id hashes alike: the side table holds all but the first
            patch.setattr(
                codes_module, "hash_strings", lambda s: np.zeros(len(s), np.uint64)
            )
        dictionary = MetricDictionary()
        oracle: dict[str, int] = {}
        for ids, commit in batches:
            codes, new, rank = dictionary.encode_ranked(pa.array(ids, pa.utf8()))
            expected = dict(oracle)
            for name in ids:
                expected.setdefault(name, len(expected))
            assert codes.tolist() == [expected[name] for name in ids]
            assert new == [name for name in expected if name not in oracle]
            for i, a in enumerate(ids):
                for j, b in enumerate(ids):
                    if a == b:
                        assert rank[i] == rank[j]
                    elif _prefix(a) < _prefix(b):
                        assert rank[i] < rank[j], (a, b)
            if commit:
                dictionary.commit(new)
                oracle = expected
        assert dictionary.names() == list(oracle)
