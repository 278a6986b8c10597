"""How every backend turns its dense and lexical candidates into one ranked list.

Scores (the contract is in `MemoryStore.search`): dense = cosine; bm25 = s / (1 + s)
with s the backend's lexical score (-bm25() on SQLite); hybrid = a convex combination
of the cosine and the lexical score, each divided by the best of the query's candidates
(`fuse`), so a memory best by both scores 1.0. Why this fusion and not reciprocal rank
fusion: docs/stores.md. Candidates are identified by the backend's row key (an int).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from azmem.stores.models import MemoryRecord, SearchHit, SearchMode

__all__ = [
    "COMMON_SCAN",
    "DENSE_WEIGHT",
    "RARE_BUDGET",
    "RARE_DOCS",
    "Ranked",
    "Scored",
    "depth",
    "fuse",
    "hits",
    "rank",
    "rare_terms",
]

# Lexical search: a word in more than RARE_DOCS memories is common; the rare words scored
# add up to at most RARE_BUDGET matches; with only common words, the newest COMMON_SCAN
# matches are scored.
RARE_DOCS = 4_000
RARE_BUDGET = 12_000
COMMON_SCAN = 2_000

#: Weight of the normalised cosine in the hybrid score (the rest goes to normalised BM25).
DENSE_WEIGHT = 0.5

#: (row key, score) of a candidate list, best first.
Ranked: TypeAlias = list[tuple[int, float]]

#: (score, cosine or None, rowid) of a ranked candidate.
Scored: TypeAlias = list[tuple[float, float | None, int]]


def depth(mode: SearchMode, limit: int) -> int:
    """How many candidates each list (dense, lexical) brings: the hits asked for, or for
    hybrid, which fuses two lists, twice as many and at least 20. Measured on LoCoMo
    (`bench/locomo_retrieval.py`): 40, 30 and 20 per list for a top 10 give the same
    recall@1/@5/@10 (0.323 / 0.561 / 0.663), 10 loses (@10 0.646); each candidate beyond
    costs PostgreSQL a little (the hybrid statement, 10k memories: p50 2.8 -> 2.4 ms)."""
    return limit if mode != "hybrid" else max(2 * limit, 20)


def rank(
    mode: SearchMode,
    similarities: dict[int, float] | None,
    dense_hits: Ranked,
    lexical_hits: Ranked,
    lexical_extra: dict[int, float],
    lexical_ran: bool,
    threshold: float | None,
    limit: int,
) -> Scored:
    """Score every candidate, apply the threshold, and keep the best `limit` (plus any tied
    with the last on score and cosine, for the final tie-break on the rows in `hits`)."""
    lex_score = {**lexical_extra, **dict(lexical_hits)}
    candidates = dict.fromkeys([*(rid for rid, _ in dense_hits), *(rid for rid, _ in lexical_hits)])
    sims: dict[int, float | None] = {
        rid: None if similarities is None else min(1.0, max(-1.0, similarities[rid])) for rid in candidates
    }
    # Hybrid normalisers, over every candidate before the threshold (so a threshold only removes
    # hits, never changes the others' scores): the best cosine and the best BM25 of the query.
    dense_max = max((s for s in sims.values() if s is not None), default=0.0)
    lex_max = max(lex_score.values(), default=0.0)
    scored: Scored = []
    for rid in candidates:
        similarity = sims[rid]
        s = lex_score.get(rid)
        if mode == "dense":
            score = similarity
        elif mode == "bm25":
            score = None if s is None else s / (1.0 + s)
        else:
            score = fuse(similarity or 0.0, dense_max, s or 0.0, lex_max, lexical_ran)
        assert score is not None
        cut = score if mode == "bm25" else similarity
        if threshold is not None and cut is not None and cut < threshold:
            continue
        scored.append((score, similarity, rid))
    scored.sort(key=lambda t: (-t[0], -(t[1] or 0.0)))
    if len(scored) <= limit:
        return scored
    last = (scored[limit - 1][0], scored[limit - 1][1] or 0.0)
    end = limit
    while end < len(scored) and (scored[end][0], scored[end][1] or 0.0) == last:
        end += 1
    return scored[:end]


def fuse(cosine: float, cosine_max: float, bm25: float, bm25_max: float, lexical_ran: bool) -> float:
    """Hybrid score in [0, 1]: a convex combination of the two scores, each divided by the
    query's best (theoretical min-max: cosine floored at 0, BM25 >= 0 already).

    `DENSE_WEIGHT` x cosine / best cosine + (1 - DENSE_WEIGHT) x bm25 / best bm25; 1.0 for a
    memory that is best by both, at most 0.5 for one that matches no query word. When the
    query has no searchable word only the dense part exists (the best cosine scores 1.0).
    """
    dense_part = max(cosine, 0.0) / cosine_max if cosine_max > 0.0 else 0.0
    if not lexical_ran:
        return dense_part
    lex_part = bm25 / bm25_max if bm25_max > 0.0 else 0.0
    return DENSE_WEIGHT * dense_part + (1.0 - DENSE_WEIGHT) * lex_part


def hits(
    scored: Scored,
    rows: dict[int, Sequence[Any]],
    dense_hits: Ranked,
    lexical_hits: Ranked,
    lexical_extra: dict[int, float],
    limit: int,
    *,
    record: Callable[[Sequence[Any]], MemoryRecord],
) -> list[SearchHit]:
    """The final order (best score first; ties by cosine, then oldest, then id, so results are
    deterministic) as SearchHits; ``rows`` are a backend's memory rows by row key, ``record``
    turns one into its record."""
    dense_rank = {rid: i + 1 for i, (rid, _) in enumerate(dense_hits)}
    lex_rank = {rid: i + 1 for i, (rid, _) in enumerate(lexical_hits)}
    lex_score = {**lexical_extra, **dict(lexical_hits)}
    ordered = sorted(
        (t for t in scored if t[2] in rows),
        key=lambda t: (-t[0], -(t[1] or 0.0), rows[t[2]][9], rows[t[2]][0]),
    )
    return [
        SearchHit(
            record=record(rows[rid]),
            score=score,
            similarity=similarity,
            bm25=lex_score.get(rid),
            dense_rank=dense_rank.get(rid),
            bm25_rank=lex_rank.get(rid),
        )
        for score, similarity, rid in ordered[:limit]
    ]


def rare_terms(df: Mapping[str, int], *, rare_docs: int = RARE_DOCS, budget: int = RARE_BUDGET) -> list[str]:
    """The rare words a lexical search scores (rarest first, within ``budget`` matches), from
    each present word's document frequency (capped at ``rare_docs + 1``); none if all are common."""
    rare = sorted((t for t in df if df[t] <= rare_docs), key=lambda t: df[t])
    chosen: list[str] = []
    total = 0
    for term in rare:
        if chosen and total + df[term] > budget:
            break
        chosen.append(term)
        total += df[term]
    return chosen
