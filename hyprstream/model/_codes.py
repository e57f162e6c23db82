"""Dense integer codes for metric ids, so that window math can sort and search integers.

Codes are handed out in first-seen order and never reused; ``encode`` looks up each distinct
id of a batch once (the batch is dictionary-encoded first), not each row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MetricDictionary"]


class MetricDictionary:
    """Maps metric ids to codes ``0, 1, 2, ...`` and back."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def encode(self, ids: pa.Array) -> tuple[np.ndarray, list[str]]:
        """Codes of ``ids`` (int64, one per row) and the ids that were new to the dictionary.

        New ids get codes without being committed: call :meth:`commit` with the returned
        list once the batch is accepted, or nothing, to forget them.
        """
        codes, new, _ = self.encode_ranked(ids)
        return codes, new

    def encode_ranked(self, ids: pa.Array) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Like :meth:`encode`, plus each row's rank of its id in text order within the batch.

        Storing a batch ordered by that rank keeps each id's rows together *and* in text
        order, so that per-segment min/max statistics on the id column can prune scans.
        """
        encoded = ids.dictionary_encode()
        dictionary = encoded.dictionary
        uniques = dictionary.to_pylist()
        codes = self._codes
        mapping = np.empty(len(uniques), dtype=np.int64)
        new: list[str] = []
        next_code = len(self._names)
        for i, name in enumerate(uniques):
            code = codes.get(name)
            if code is None:
                code = next_code + len(new)
                new.append(name)
            mapping[i] = code
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        by_text = pc.array_sort_indices(dictionary).to_numpy()
        rank_of_unique = np.empty(len(uniques), dtype=np.int64)
        rank_of_unique[by_text] = np.arange(len(uniques), dtype=np.int64)
        return mapping[indices], new, rank_of_unique[indices]

    def commit(self, new: list[str]) -> None:
        """Adopt ids returned as new by the latest :meth:`encode`."""
        for name in new:
            self._codes[name] = len(self._names)
            self._names.append(name)

    def name(self, code: int) -> str:
        return self._names[code]

    def names(self) -> list[str]:
        return list(self._names)

    def names_array(self) -> pa.StringArray:
        return pa.array(self._names, type=pa.utf8())
