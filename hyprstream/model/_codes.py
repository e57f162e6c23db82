"""Dense integer codes for metric ids, so that window math can sort and search integers.

Codes are handed out in first-seen order and never reused. Looking a batch up is vectorised:
the batch is dictionary-encoded, each distinct id is hashed to 64 bits with numpy, the hashes
are found by binary search among the known ones, and every match is verified by comparing
the strings (so a hash collision can cost time, never correctness: a colliding id is kept in
a small side table).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MetricDictionary", "hash_strings", "text_key"]

_MAX_BYTES = 4096
_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime, as a polynomial base
_POWERS = np.cumprod(np.full(_MAX_BYTES, _MULTIPLIER, dtype=np.uint64), dtype=np.uint64)


def _mix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads every input bit over the whole word."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = h ^ (h >> np.uint64(31))
    return out


def hash_strings(strings: pa.StringArray) -> np.ndarray:
    """A 64-bit hash of each string (no nulls), computed with numpy over the Arrow buffers."""
    n = len(strings)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets_buf, data_buf = strings.buffers()[1], strings.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[strings.offset : strings.offset + n + 1]
    lengths = np.diff(offsets).astype(np.int64)
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    data = data[offsets[0] : offsets[-1]].astype(np.uint64)
    starts = (offsets[:-1] - offsets[0]).astype(np.int64)
    if lengths.max(initial=0) > _MAX_BYTES:
        raise ValueError(f"strings longer than {_MAX_BYTES} bytes are not hashed")
    position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    with np.errstate(over="ignore"):
        terms = data * _POWERS[position]  # wraps modulo 2**64, as intended
        h = np.zeros(n, np.uint64)
        nonempty = lengths > 0
        if nonempty.any():
            h[nonempty] = np.add.reduceat(terms, starts[nonempty])
        return _mix(h + lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def text_key(strings: pa.StringArray) -> np.ndarray:
    """The first 16 bytes of each string as two big-endian ``uint64`` words (zero padded),
    shape ``(n, 2)``: sorting by them (first word, then second) puts strings in byte order
    by their first 16 bytes.

    That is all the hot cache needs (rows of one id together, ids in text order but for
    ids sharing 16 bytes, for zone maps), at a fraction of the cost of a string sort.
    """
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + n + 1
    ]
    data_buf = strings.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else None
    if n == 0 or data is None or not len(data):
        return np.zeros((n, 2), np.uint64)
    column = np.arange(16, dtype=np.int32)
    at = np.minimum(offsets[:-1, None] + column, len(data) - 1)
    prefix = np.where(column < np.diff(offsets)[:, None], data[at], 0).astype(np.uint8)
    words: np.ndarray = prefix.view(">u8").reshape(n, 2).astype(np.uint64)
    return words


def _sortable(words: np.ndarray) -> np.ndarray:
    """:func:`text_key` words as 16-byte strings, which numpy orders as the words are."""
    big_endian = np.ascontiguousarray(words.astype(">u8"))
    out: np.ndarray = big_endian.view("S16").reshape(len(words))
    return out


#: How many ids :meth:`MetricDictionary.code` remembers.
_ASKED = 4096


class MetricDictionary:
    """Maps metric ids to codes ``0, 1, 2, ...`` and back."""

    def __init__(self) -> None:
        self._names: pa.StringArray = pa.array([], pa.utf8())
        self._hashes = np.zeros(0, np.uint64)  # sorted
        self._hash_codes = np.zeros(0, np.int64)  # code of each sorted hash
        # The known ids' text keys in text order, and each code's place in that order: a
        # batch of known ids is ranked by a gather, with no sort.
        self._sorted_keys = np.zeros(0, "S16")
        self._text_rank = np.zeros(0, np.int64)
        self._collided: dict[str, int] = {}  # ids whose hash another id already has
        self._asked: dict[str, int] = {}  # ids :meth:`code` found, at most _ASKED

    def __len__(self) -> int:
        return len(self._names)

    def encode(self, ids: pa.Array) -> tuple[np.ndarray, list[str]]:
        """Codes of ``ids`` (int64, one per row) and the ids that were new to the dictionary.

        New ids get codes without being committed: call :meth:`commit` with the returned
        list once the batch is accepted, or nothing, to forget them.
        """
        _, mapping, indices, new = self._encode(ids)
        return mapping[indices], new

    def encode_ranked(self, ids: pa.Array) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Like :meth:`encode`, plus a sort key per row that puts ids in text order (by the
        first 16 bytes, see :func:`text_key`): equal for rows of one id, larger for an id
        later in that order. Its values are not dense: they come from the ids' places in the
        text order of all known ids (kept up to date by :meth:`commit`).

        Storing a batch ordered by that rank keeps each id's rows together *and* in text
        order, so that per-segment min/max statistics on the id column can prune scans.
        """
        uniques, mapping, indices, new = self._encode(ids)
        committed = len(self._names)
        fresh = np.flatnonzero(mapping >= committed)
        if not len(fresh):  # every id known: its place in the text order of all known ids
            codes = mapping[indices]
            return codes, new, self._text_rank[codes]
        # Known ids keep their place r (key (2r + 1) * m); a new id goes between places, at
        # its insertion point p (key 2p * m), then by its order among the new ones (+ 0..m-1).
        # Only the new ids' text is read.
        keys = _sortable(text_key(uniques.take(pa.array(fresh))))
        by_key = np.argsort(keys, kind="stable")
        among_new = np.empty(len(fresh), np.int64)
        among_new[by_key] = np.arange(len(fresh), dtype=np.int64)
        m = len(fresh) + 1
        sort_key = np.empty(len(uniques), np.int64)
        known = mapping < committed
        sort_key[known] = (2 * self._text_rank[mapping[known]] + 1) * m
        sort_key[fresh] = 2 * np.searchsorted(self._sorted_keys, keys) * m + among_new
        return mapping[indices], new, sort_key[indices]

    def _encode(self, ids: pa.Array) -> tuple[pa.StringArray, np.ndarray, np.ndarray, list[str]]:
        """The batch's distinct ids, their codes, each row's index among them, and the new
        ids (coded from the next free code on, in first-seen order)."""
        encoded = ids.dictionary_encode()
        uniques = encoded.dictionary
        mapping = self._lookup(uniques)
        new: list[str] = []
        missing = np.flatnonzero(mapping < 0)
        if len(missing):
            next_code = len(self._names)
            for i, name in zip(
                missing.tolist(), uniques.take(pa.array(missing)).to_pylist(), strict=True
            ):
                code = self._collided.get(name)
                if code is None:
                    code = next_code + len(new)
                    new.append(name)
                mapping[i] = code
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        return uniques, mapping, indices, new

    def _lookup(self, uniques: pa.StringArray) -> np.ndarray:
        """Codes of distinct ids, -1 where unknown (or known only through the side table)."""
        mapping = np.full(len(uniques), -1, np.int64)
        if not len(self._hashes) or not len(uniques):
            return mapping
        h = hash_strings(uniques)
        # Searching for sorted needles walks the sorted hashes once, with warm caches: much
        # faster than random probes, even counting the sort.
        by_hash = np.argsort(h)
        pos = np.empty(len(h), np.int64)
        pos[by_hash] = np.searchsorted(self._hashes, h[by_hash])
        found = pos < len(self._hashes)
        found[found] = self._hashes[pos[found]] == h[found]
        candidates = np.flatnonzero(found)
        if len(candidates):
            codes = self._hash_codes[pos[candidates]]
            same = pc.equal(
                uniques.take(pa.array(candidates)), self._names.take(pa.array(codes))
            ).to_numpy(zero_copy_only=False)
            mapping[candidates[same]] = codes[same]
        return mapping

    def commit(self, new: list[str]) -> None:
        """Adopt ids returned as new by the latest :meth:`encode`."""
        if not new:
            return
        first = len(self._names)
        added = pa.array(new, pa.utf8())
        h = hash_strings(added)
        codes = np.arange(first, first + len(new), dtype=np.int64)
        # An id whose hash is already taken (or repeated within ``new``) goes to the side table.
        pos = np.searchsorted(self._hashes, h)
        taken = pos < len(self._hashes)
        taken[taken] = self._hashes[pos[taken]] == h[taken]
        _, first_of = np.unique(h, return_index=True)
        repeated = np.ones(len(h), bool)
        repeated[first_of] = False
        side = taken | repeated
        for i in np.flatnonzero(side).tolist():
            self._collided[new[i]] = int(codes[i])
        keep = ~side
        by_hash = np.argsort(h[keep])
        new_h, new_c = h[keep][by_hash], codes[keep][by_hash]
        at = np.searchsorted(self._hashes, new_h)  # a linear merge of two sorted arrays
        self._hashes = np.insert(self._hashes, at, new_h)
        self._hash_codes = np.insert(self._hash_codes, at, new_c)
        self._names = pa.concat_arrays([self._names, added])
        # Merged into the text order: a linear pass over the known ids, not a sort of them.
        # The i-th new key (in key order) lands at at[i] + i; a known place r moves up by the
        # number of new keys inserted at or before it.
        keys = _sortable(text_key(added))
        by_key = np.argsort(keys, kind="stable")
        at = np.searchsorted(self._sorted_keys, keys[by_key])
        self._sorted_keys = np.insert(self._sorted_keys, at, keys[by_key])
        rank = self._text_rank + np.searchsorted(at, self._text_rank, side="right")
        new_rank = np.empty(len(new), np.int64)
        new_rank[by_key] = at + np.arange(len(new), dtype=np.int64)
        self._text_rank = np.concatenate((rank, new_rank))

    def code(self, name: str) -> int | None:
        """The code of a committed id, or None. Found codes are remembered (a few thousand:
        the ids queries ask for one at a time); codes never change once given."""
        found = self._asked.get(name)
        if found is not None:
            return found
        looked = int(self._lookup(pa.array([name], pa.utf8()))[0])
        code = looked if looked >= 0 else self._collided.get(name)
        if code is not None:
            if len(self._asked) >= _ASKED:
                self._asked.clear()
            self._asked[name] = code
        return code

    def name(self, code: int) -> str:
        value = self._names[code].as_py()
        assert isinstance(value, str)
        return value

    def names(self) -> list[str]:
        return list(self._names.to_pylist())

    def names_array(self) -> pa.StringArray:
        return self._names
