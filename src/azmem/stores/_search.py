"""The ranking half of SQLite search: dense and BM25 candidate lists, and their fusion.

Scores (the contract is in `MemoryStore.search`): dense = cosine; bm25 = s / (1 + s)
with s = -bm25(); hybrid = reciprocal rank fusion (k = RRF_K) divided by its maximum,
so rank 1 in every method that ran scores 1.0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.stores import _rows as codec
from azmem.stores._fts import or_expression
from azmem.stores._index_cache import IN_CHUNK, IndexCache
from azmem.stores.filters import CompiledFilter
from azmem.stores.models import Scope, SearchHit, SearchMode

RRF_K = 60
RARE_DOCS = 4_000
RARE_BUDGET = 12_000
COMMON_SCAN = 2_000

Ranked = list[tuple[int, float]]


def dense(
    conn: sqlite3.Connection,
    cache: IndexCache,
    query: npt.NDArray[np.float32],
    depth: int,
    scope: Scope,
    compiled: CompiledFilter | None,
    where: str,
    params: Sequence[Any],
) -> Ranked:
    """Top `depth` (rowid, cosine) within scope and filters.

    Scope comes from the in-memory scope columns. Metadata filters need SQL: first try
    the scope's top few hundred and keep those the filter accepts (exact whenever at
    least `depth` survive, since nothing outside the fetched top can outrank them);
    only a selective filter falls back to evaluating it over the whole scope.
    """
    scoped = cache.in_scope(scope)
    if scoped is not None and not scoped.size:
        return []
    if compiled is None:
        ids, scores = cache.search(query, depth, scoped)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]
    fetch = max(4 * depth, 200)
    ids, scores = cache.search(query, fetch, scoped)
    passing: set[int] = set()
    id_list = [int(i) for i in ids]
    for i in range(0, len(id_list), IN_CHUNK):
        chunk = id_list[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        passing.update(
            r[0]
            for r in conn.execute(
                f"SELECT m.rid FROM memories m WHERE m.rid IN ({marks}) AND {where}", (*chunk, *params)
            )
        )
    kept = [(i, float(s)) for i, s in zip(id_list, scores, strict=True) if i in passing]
    if len(kept) >= depth or len(id_list) < fetch:
        return kept[:depth]
    allowed = np.fromiter(
        (r[0] for r in conn.execute(f"SELECT m.rid FROM memories m WHERE {where}", params)), dtype=np.int64
    )
    if not allowed.size:
        return []
    ids, scores = cache.search(query, depth, allowed)
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]


def lexical(
    conn: sqlite3.Connection, terms: list[str], where: str, params: Sequence[Any], depth: int
) -> Ranked:
    """BM25 top `depth` (rowid, -bm25) within scope and filters, at a bounded cost.

    FTS5 scores every row matching any query word before it can sort, so one very
    common word would make a query scan most of a large store (measured 0.4 s at
    100k). Each word's document count is probed with a capped count. Words found in
    more than RARE_DOCS memories are dropped when rarer ones exist: their IDF is
    small (zero once a word is in half the store), so the ranking barely moves, and
    a store smaller than about 2 x RARE_DOCS loses nothing. If every word is that
    common, only the newest COMMON_SCAN matching memories are scored.
    """
    df: dict[str, int] = {}
    for term in terms:
        df[term] = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)",
            (or_expression([term]), RARE_DOCS + 1),
        ).fetchone()[0]
    present = [t for t in terms if df[t]]
    if not present:
        return []
    rare = sorted((t for t in present if df[t] <= RARE_DOCS), key=lambda t: df[t])
    if rare:
        chosen: list[str] = []
        total = 0
        for term in rare:
            if chosen and total + df[term] > RARE_BUDGET:
                break
            chosen.append(term)
            total += df[term]
        sql = (
            "SELECT m.rid, -bm25(memories_fts) FROM memories_fts "
            "JOIN memories m ON m.rid = memories_fts.rowid "
            f"WHERE memories_fts MATCH ? AND {where} ORDER BY bm25(memories_fts) LIMIT ?"
        )
        args: tuple[Any, ...] = (or_expression(chosen), *params, depth)
    else:
        sql = (
            "SELECT f.rowid, -f.score FROM (SELECT rowid, bm25(memories_fts) AS score FROM memories_fts "
            "WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?) AS f "
            f"JOIN memories m ON m.rid = f.rowid WHERE {where} ORDER BY f.score LIMIT ?"
        )
        args = (or_expression(present), COMMON_SCAN, *params, depth)
    return [(int(rid), max(0.0, float(s))) for rid, s in conn.execute(sql, args)]


def fetch(conn: sqlite3.Connection, rids: set[int]) -> dict[int, Sequence[Any]]:
    """Rows (codec.COLS, then rid, then vector) of the candidates."""
    out: dict[int, Sequence[Any]] = {}
    ordered = sorted(rids)
    for i in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {codec.COLS}, m.rid, m.vector FROM memories m WHERE m.rid IN ({marks})", chunk
        ):
            out[row[11]] = row
    return out


def rank(
    mode: SearchMode,
    query: npt.NDArray[np.float32] | None,
    dense_hits: Ranked,
    lexical_hits: Ranked,
    rows: dict[int, Sequence[Any]],
    methods: int,
    threshold: float | None,
    limit: int,
) -> list[SearchHit]:
    dense_rank = {rid: i + 1 for i, (rid, _) in enumerate(dense_hits)}
    lex_rank = {rid: i + 1 for i, (rid, _) in enumerate(lexical_hits)}
    lex_score = dict(lexical_hits)
    ranked: list[tuple[float, float | None, int, Sequence[Any]]] = []
    for rid, row in rows.items():
        similarity = None
        if query is not None:
            similarity = min(1.0, max(-1.0, float(np.frombuffer(row[12], dtype="<f4") @ query)))
        s = lex_score.get(rid)
        if mode == "dense":
            score = similarity
        elif mode == "bm25":
            score = None if s is None else s / (1.0 + s)
        else:
            ranks = (dense_rank.get(rid), lex_rank.get(rid))
            score = sum(1.0 / (RRF_K + r) for r in ranks if r is not None) * (RRF_K + 1) / methods
        assert score is not None
        cut = score if mode == "bm25" else similarity
        if threshold is not None and cut is not None and cut < threshold:
            continue
        ranked.append((score, similarity, rid, row))
    # Best score first; ties by cosine, then oldest, then id, so results are deterministic.
    ranked.sort(key=lambda t: (-t[0], -(t[1] or 0.0), t[3][9], t[3][0]))
    return [
        SearchHit(
            record=codec.record(row),
            score=score,
            similarity=similarity,
            bm25=lex_score.get(rid),
            dense_rank=dense_rank.get(rid),
            bm25_rank=lex_rank.get(rid),
        )
        for score, similarity, rid, row in ranked[:limit]
    ]
