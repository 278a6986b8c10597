"""The candidate half of SQLite search: dense and BM25 candidate lists (fused in ``stores/ranking.py``).

Scores (the contract is in `MemoryStore.search`): dense = cosine; bm25 = s / (1 + s)
with s = -bm25(); hybrid = a convex combination of the cosine and the BM25 score, each
divided by the best of the query's candidates (`fuse`), so a memory best by both scores
1.0. Why this fusion and not reciprocal rank fusion: docs/stores.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.stores import ranking
from azmem.stores.models import Scope
from azmem.stores.ranking import Ranked
from azmem.stores.sqlite import _rows as codec
from azmem.stores.sqlite._fts import or_expression
from azmem.stores.sqlite._index_cache import IN_CHUNK, IndexCache
from azmem.stores.sqlite._lexical import PhraseQuery
from azmem.stores.sqlite.filters import CompiledFilter

RARE_DOCS, RARE_BUDGET, COMMON_SCAN = ranking.RARE_DOCS, ranking.RARE_BUDGET, ranking.COMMON_SCAN


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
    id_list = [int(i) for i in ids]
    passing = _passing(conn, id_list, where, params)
    kept = [(i, float(s)) for i, s in zip(id_list, scores, strict=True) if i in passing]
    if len(kept) >= depth or len(id_list) < fetch:
        return kept[:depth]
    allowed = _all_passing(conn, where, params)
    if not allowed.size:
        return []
    ids, scores = cache.search(query, depth, allowed)
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]


def lexical(
    conn: sqlite3.Connection,
    cache: IndexCache,
    terms: list[str],
    scope: Scope,
    compiled: CompiledFilter | None,
    where: str,
    params: Sequence[Any],
    depth: int,
    also: Sequence[int] = (),
) -> tuple[Ranked, dict[int, float]]:
    """BM25 top `depth` (rowid, -bm25) within scope and filters, and -bm25 of the rows in
    `also` (the dense candidates, for score fusion; absent = matches no query word).

    Scored on the in-memory mirror of the FTS5 index (`_lexical.py`): exact FTS5 bm25 over
    every query word, scope from the mirror's scope columns, metadata filters checked in
    SQL on a shortlist (then, if too few pass, over the whole scope) as for dense search.
    A query word that FTS5 reads as a phrase (several tokens) goes to FTS5 itself.
    """
    index = cache.lexical(conn)
    try:
        tokens = index.query_tokens(conn, terms)
    except PhraseQuery:
        return lexical_fts(conn, terms, where, params, depth, also)
    slots, scores = index.score(tokens)
    mask = index.scope_mask(scope.user_id, scope.agent_id, scope.run_id)
    if mask is not None and slots.size:
        keep = mask[slots]
        slots, scores = slots[keep], scores[keep]
    rids = index.rids(slots)
    extra: dict[int, float] = {}
    if also and slots.size:  # slots are sorted: look the dense candidates up by bisection
        wanted = [(rid, slot) for rid in also if (slot := index.slot_of(rid)) is not None]
        if wanted:
            want = np.asarray([slot for _, slot in wanted], dtype=np.int64)
            pos = np.minimum(np.searchsorted(slots, want), slots.size - 1)
            found = slots[pos] == want
            extra = {
                rid: float(scores[p])
                for (rid, _), p, ok in zip(wanted, pos.tolist(), found.tolist(), strict=True)
                if ok
            }
    if compiled is None or not rids.size:
        return _top(rids, scores, depth), extra
    fetch = max(4 * depth, 200)
    shortlist = _top(rids, scores, fetch)
    passing = _passing(conn, [rid for rid, _ in shortlist], where, params)
    kept = [(rid, s) for rid, s in shortlist if rid in passing]
    if len(kept) >= depth or len(shortlist) < fetch:
        return kept[:depth], extra
    allowed = _all_passing(conn, where, params)
    keep = np.isin(rids, allowed)
    return _top(rids[keep], scores[keep], depth), extra


def _top(rids: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], k: int) -> Ranked:
    """The k best (rid, score): highest score first, ties by rowid."""
    if rids.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        rids, scores = rids[part], scores[part]
    order = np.lexsort((rids, -scores))
    return [(int(r), max(0.0, float(s))) for r, s in zip(rids[order], scores[order], strict=True)]


def _in_chunks(
    conn: sqlite3.Connection,
    rids: Sequence[int],
    sql: Callable[[str], str],
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> Iterator[Any]:
    """The rows of ``sql(marks)`` for every rid, IN_CHUNK rids per statement: SQLite caps a
    statement's parameters. ``marks`` is the ``?,?,...`` of one chunk, bound between the
    ``before`` and ``after`` parameters."""
    for i in range(0, len(rids), IN_CHUNK):
        chunk = rids[i : i + IN_CHUNK]
        yield from conn.execute(sql(",".join("?" * len(chunk))), (*before, *chunk, *after))


def _all_passing(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Every rowid the filter accepts: the fallback when too few of a shortlist pass."""
    return np.fromiter(
        (r[0] for r in conn.execute(f"SELECT m.rid FROM memories m WHERE {where}", params)), dtype=np.int64
    )


def _passing(conn: sqlite3.Connection, rids: Sequence[int], where: str, params: Sequence[Any]) -> set[int]:
    """Those of `rids` the filter accepts."""
    rows = _in_chunks(
        conn,
        rids,
        lambda marks: f"SELECT m.rid FROM memories m WHERE m.rid IN ({marks}) AND {where}",
        after=params,
    )
    return {r[0] for r in rows}


def lexical_fts(
    conn: sqlite3.Connection,
    terms: list[str],
    where: str,
    params: Sequence[Any],
    depth: int,
    also: Sequence[int] = (),
) -> tuple[Ranked, dict[int, float]]:
    """BM25 straight from FTS5 (the fallback for phrase words), at a bounded cost.

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
        return [], {}
    chosen = ranking.rare_terms({t: df[t] for t in present}, rare_docs=RARE_DOCS, budget=RARE_BUDGET)
    if chosen:
        expression = or_expression(chosen)
        sql = (
            "SELECT m.rid, -bm25(memories_fts) FROM memories_fts "
            "JOIN memories m ON m.rid = memories_fts.rowid "
            f"WHERE memories_fts MATCH ? AND {where} ORDER BY bm25(memories_fts) LIMIT ?"
        )
        args: tuple[Any, ...] = (expression, *params, depth)
    else:
        expression = or_expression(present)
        sql = (
            "SELECT f.rowid, -f.score FROM (SELECT rowid, bm25(memories_fts) AS score FROM memories_fts "
            "WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?) AS f "
            f"JOIN memories m ON m.rid = f.rowid WHERE {where} ORDER BY f.score LIMIT ?"
        )
        args = (expression, COMMON_SCAN, *params, depth)
    ranked = [(int(rid), max(0.0, float(s))) for rid, s in conn.execute(sql, args)]
    rows = _in_chunks(
        conn,
        list(also),
        lambda marks: (
            "SELECT rowid, -bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ? "
            f"AND rowid IN ({marks})"
        ),
        before=(expression,),
    )
    extra = {int(rid): max(0.0, float(s)) for rid, s in rows}
    return ranked, extra


def fetch(conn: sqlite3.Connection, rids: set[int]) -> dict[int, Sequence[Any]]:
    """Rows (codec.COLS, then rid) of the hits."""
    rows = _in_chunks(
        conn,
        sorted(rids),
        lambda marks: f"SELECT {codec.COLS}, m.rid FROM memories m WHERE m.rid IN ({marks})",
    )
    return {row[11]: row for row in rows}


def cosines(
    conn: sqlite3.Connection, cache: IndexCache, query: npt.NDArray[np.float32], rids: list[int]
) -> dict[int, float]:
    """Exact cosine of each row with the query, from the vector mirror (a restricted exact
    search; rows absent from it, which a synced mirror never has, are read from SQL)."""
    if not rids:
        return {}
    ids, scores = cache.search(query, len(rids), np.asarray(rids, dtype=np.int64))
    out = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    rest = [rid for rid in rids if rid not in out]
    for rid, blob in _in_chunks(
        conn, rest, lambda marks: f"SELECT rid, vector FROM memories WHERE rid IN ({marks})"
    ):
        out[rid] = float(np.frombuffer(blob, dtype="<f4") @ query)
    return out
