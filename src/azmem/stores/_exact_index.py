"""Stand-in for `azmem.stores.vectors.VectorIndex` (same API, exact numpy search only).

Used only while `stores/vectors.py` (owned by another engineer) has not landed; the
SQLite store imports the real one when it exists.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class VectorIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._vecs = np.empty((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._vecs = np.concatenate([self._vecs, np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)])

    def remove(self, ids: npt.NDArray[np.int64]) -> None:
        keep = ~np.isin(self._ids, np.asarray(ids, dtype=np.int64))
        self._ids, self._vecs = self._ids[keep], self._vecs[keep]

    def search(
        self, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        ids, vecs = self._ids, self._vecs
        if allowed is not None:
            mask = np.isin(ids, np.asarray(allowed, dtype=np.int64))
            ids, vecs = ids[mask], vecs[mask]
        if ids.shape[0] == 0 or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores = vecs @ np.asarray(query, dtype=np.float32)
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((ids[top], -scores[top]))]
        return ids[top], scores[top].astype(np.float32)
