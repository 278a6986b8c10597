"""Fusing the retrievers' lists: reciprocal rank fusion, MMR and node distance, as plain functions.

RRF is the default because it needs no score calibration between BM25, cosine and
graph distance (their scales have nothing in common); MMR trades some relevance for
variety when many facts say nearly the same thing; ``distance`` puts facts near the
centre entity first (Graphiti's node-distance reranker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["RRF_K", "Reranker", "mmr", "rrf"]

Reranker: TypeAlias = Literal["rrf", "mmr", "distance"]

#: The usual RRF constant: damps the head of each list so no single retriever dominates.
RRF_K = 60


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Sum over the lists of 1 / (k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return scores


def mmr(
    query: npt.NDArray[np.float32],
    vectors: Mapping[str, npt.NDArray[np.float32]],
    *,
    limit: int,
    lambda_: float = 0.5,
) -> list[tuple[str, float]]:
    """Maximal marginal relevance over unit vectors: relevance minus redundancy with what was picked."""
    keys = list(vectors)
    if not keys:
        return []
    matrix = np.stack([vectors[key] for key in keys]).astype(np.float32)
    relevance = matrix @ query
    similarity = matrix @ matrix.T
    picked: list[int] = []
    scores: list[float] = []
    remaining = set(range(len(keys)))
    while remaining and len(picked) < limit:
        best, best_score = -1, -np.inf
        for i in sorted(remaining):
            redundancy = max((float(similarity[i, j]) for j in picked), default=0.0)
            score = lambda_ * float(relevance[i]) - (1 - lambda_) * redundancy
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
        scores.append(float(best_score))
        remaining.discard(best)
    return [(keys[i], s) for i, s in zip(picked, scores, strict=True)]
