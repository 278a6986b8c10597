"""PostgreSQL search: dense and lexical candidate lists (fused in ``stores/ranking.py``,
exactly as for SQLite), in as few round trips as the steps' dependencies allow.

**Round trips.** A dense search is one statement (the recorded embedder, the
exact-scan probe, the candidates and their rows), and so is a hybrid one with words
(`hybrid.py`: the lexical plan chosen in SQL too); a BM25 one is two, and so is a
hybrid one whose words are all common or whose HNSW scan came up short: (1) the
embedder, the lexical statistics (N, total length, each word's capped document count)
and the dense candidates; (2) the BM25 top, the BM25 of the dense candidates, the
cosines of the BM25-only ones and the rows of all of them (`lexical.score`). Each
statement reads one snapshot; there is no transaction around them (BEGIN and COMMIT
would be two more round trips): a memory deleted between the two is left out of the
hits, as it would be a moment later. ``hnsw.ef_search`` and ``hnsw.iterative_scan``
are set once per connection (`Connections.session`); a search needing more depth than
``ef_search``, or behind a transaction pooler (``prepare_threshold=None``, where session
settings do not stick), raises them with ``SET LOCAL`` in a transaction of its own.
Measured at 100k memories: 13 round trips -> 2 for hybrid (1 since `hybrid.py`), 9 -> 1 for dense.

**Dense.** Cosine = ``1 - (embedding <=> q)`` on L2-normalised vectors. Scope and
filters are SQL conditions on the same query, so they apply before ranking:

* when at most `exact_rows` memories pass them (a capped count), the search is an exact
  scan of those memories (the HNSW index is kept out of the plan), so small scopes and
  selective filters are exact; the count and both scans are one statement whose two
  branches are gated on the count (``One-Time Filter``: only one of them runs);
* otherwise the HNSW index (cosine) is used with ``hnsw.ef_search`` following the
  store's size unless set (`breadth.py`: 64 at 10k memories, 200 from 100k; at least the
  depth) and, on pgvector >= 0.8, ``hnsw.iterative_scan = relaxed_order``, so a filtered
  scan keeps walking the graph until it has enough rows; up to 100 candidates are fetched
  and re-ranked by exact cosine. If it still returns fewer than wanted (pgvector's
  ``max_scan_tuples``), an exact scan follows.

Measured (20,000 clustered 384-d vectors, 2 cores, pgvector 0.8, HNSW m 16 / ef_construction
64): recall@10 against exact search 1.00 unscoped, 1.00 in a 10% scope and a 1% scope
(0.97 and 0.93 when only the 10 asked for are fetched), 2-6 ms a query. An exact scan costs
about 3 ms per 1,000 memories at 384 dimensions and 10 ms at 1,536 (vectors read from
TOAST); up to about 2,000 memories it is no slower than HNSW there: hence `exact_rows` 2,000.

**Lexical (BM25)**: `lexical.py` (a postings table). Words are those of `query_terms`;
each memory's words are stored by the store itself as a ``tsvector`` (``rows.document``:
the same tokenizer, lower-cased, with positions). Not ``to_tsvector('simple', memory)``:
its parser keeps ``alice@contoso.com`` or ``3.14`` as one word and its ``lower()``
follows the database locale, so its words would not always be the query's. The score is
BM25 with FTS5's constants and formula. It differs from SQLite's exact FTS5 bm25 in the
words: FTS5 there uses the porter stemmer and folds diacritics ("likes" matches "like",
"Zoë" matches "zoe"); here words match exactly after lower-casing, so the two backends
can score and even match differently; the contract (ordering, s / (1 + s), hybrid
normalisation) is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.stores import ranking
from azmem.stores.models import Scope, SearchHit, SearchMode
from azmem.stores.postgres import hybrid, lexical
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres.breadth import Breadth
from azmem.stores.postgres.connections import Conn
from azmem.stores.postgres.filters import CompiledFilter, where_clause
from azmem.stores.postgres.schema import VectorIndex
from azmem.stores.ranking import Ranked

__all__ = [
    "LargeScopes",
    "Query",
    "VectorPlan",
    "fetch",
    "needs_transaction",
    "run",
    "session_settings",
]

CANDIDATES = 100  # HNSW candidates fetched for re-ranking (at most ef_search)
MAX_EF_SEARCH = 1000  # pgvector's limit


class LargeScopes:
    """Scopes recently found to hold more than `exact_rows` memories, so the next searches in
    them skip the exact-scan probe (a count of up to 2,001 rows: about 1 ms) for `ttl`
    seconds. Only unfiltered scopes are remembered; the store forgets them all whenever it
    writes (`clear`), so only another process's deletes can shrink a remembered scope, and
    then a search takes the HNSW path (iterative scan, still filtered by scope) until the
    entry expires."""

    def __init__(self, ttl: float = 10.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._until: dict[tuple[str | None, ...], float] = {}

    def __contains__(self, key: object) -> bool:
        until = self._until.get(key)  # type: ignore[call-overload]
        return until is not None and monotonic() < until

    def add(self, key: tuple[str | None, ...]) -> None:
        if len(self._until) >= self.size:
            self._until = {}
        self._until[key] = monotonic() + self.ttl

    def clear(self) -> None:
        self._until = {}


@dataclass(frozen=True)
class VectorPlan:
    """How dense search runs on this store (from the bound dimension and the server)."""

    dimension: int
    index: VectorIndex
    iterative_scan: bool
    ef_search: int
    exact_rows: int
    session: bool = False  # ef_search / iterative_scan already set on every connection
    large: LargeScopes | None = None
    breadth: Breadth | None = None  # told the memory count each search reads

    def distance(self) -> str:
        """The ORDER BY expression the HNSW index serves (one %s: the query vector)."""
        if self.index == "halfvec":
            return f"(m.embedding::halfvec({self.dimension})) <=> (%s::vector)::halfvec({self.dimension})"
        return "m.embedding <=> %s"


def session_settings(ef_search: int, iterative_scan: bool) -> list[tuple[str, str]]:
    """The HNSW settings every connection gets (`Connections.session`)."""
    settings = [("hnsw.ef_search", str(min(MAX_EF_SEARCH, ef_search)))]
    if iterative_scan:
        settings.append(("hnsw.iterative_scan", "relaxed_order"))
    return settings


def _exact(where: str) -> str:
    # OFFSET 0 keeps the subquery whole, so the planner cannot answer it from the HNSW index.
    return (
        "SELECT rid, cos FROM (SELECT m.rid, 1 - (m.embedding <=> %s) AS cos FROM azmem_memories m "
        f"WHERE {where} AND m.embedding IS NOT NULL OFFSET 0) AS e"
    )


def _hnsw(plan: VectorPlan, where: str, limit: str = "%s") -> str:
    return (
        "SELECT rid, cos FROM (SELECT m.rid, 1 - (m.embedding <=> %s) AS cos FROM azmem_memories m "
        f"WHERE {where} AND m.embedding IS NOT NULL ORDER BY {plan.distance()} LIMIT {limit}) AS h"
    )


def needs_transaction(q: Query, plan: VectorPlan | None) -> bool:
    """Whether a search needs a transaction: only to raise the HNSW settings for it (`SET
    LOCAL`); otherwise each of its (one or two) statements reads one consistent snapshot."""
    return plan is not None and _settings(plan, ranking.depth(q.mode, q.limit)) is not None


def _settings(plan: VectorPlan, depth: int) -> tuple[str, list[Any]] | None:
    """The statement raising the HNSW settings for this transaction, None when the session's do."""
    if plan.index is None:
        return None
    ef = min(MAX_EF_SEARCH, max(plan.ef_search, depth))
    if plan.session and ef == plan.ef_search:
        return None
    settings = "SELECT set_config('hnsw.ef_search', %s, true)"
    if plan.iterative_scan:
        settings += ", set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    return settings, [str(ef)]


_ORDER = " ORDER BY cos DESC, rid LIMIT %s"


@dataclass(frozen=True)
class _Dense:
    """The dense candidates as SQL: an optional CTE ``n`` (the exact-scan probe) and a source of
    (rid, cos) rows, best first; `probed`: the source is the gated HNSW-or-exact union."""

    cte: str
    cte_params: list[Any]
    source: str
    params: list[Any]
    probed: bool


def _dense(
    plan: VectorPlan,
    query: npt.NDArray[np.float32],
    depth: int,
    where: str,
    params: Sequence[Any],
    known: bool,
    inline: bool = False,
) -> _Dense:
    """Every scan is gated (a One-Time Filter: constant for the statement, so a false one keeps
    the scan from running at all) on the recorded dimension being the plan's: after another
    process reindexed to another dimension, comparing vectors would fail before the store
    could say why (EmbedderMismatchError).

    `inline`: the limits are written into the SQL instead of passed as parameters, so that
    PostgreSQL's generic plan of the prepared statement knows them (with ``LIMIT $n`` it
    assumes a tenth of the table and plans an exact scan) and can be reused without
    planning the statement again (every search does; measured at 10k memories: dense
    store.search p50 2.4 -> 2.1 ms, see `hybrid.py` for hybrid)."""
    dimension = str(plan.dimension)
    same = "(SELECT value FROM azmem_meta WHERE key = 'dimension') = %s"
    exact = _exact(where)
    candidates = max(depth, min(plan.ef_search, CANDIDATES))

    def lim(value: int) -> tuple[str, list[Any]]:
        return (str(int(value)), []) if inline else ("%s", [value])

    (d_sql, d_par), (c_sql, c_par) = lim(depth), lim(candidates)
    order = f" ORDER BY cos DESC, rid LIMIT {d_sql}"
    if plan.index is None:
        return _Dense("", [], f"{exact} WHERE {same}{order}", [query, *params, dimension, *d_par], False)
    # More candidates than asked for, re-ranked by exact cosine: the relaxed iterative scan
    # returns them only roughly in order (measured: recall@10 0.97 -> 1.00 in a 10% scope).
    hnsw = _hnsw(plan, where, c_sql)
    hnsw_params = [query, *params, query, *c_par]
    if plan.exact_rows <= 0 or known:
        return _Dense("", [], f"{hnsw} WHERE {same}{order}", [*hnsw_params, dimension, *d_par], False)
    # The probe and both scans in one statement; the probe's count is NULL when the dimension
    # differs, so that neither scan runs.
    (e_sql, e_par), (p_sql, p_par) = lim(plan.exact_rows), lim(plan.exact_rows + 1)
    gate = [*e_par, *d_par]
    return _Dense(
        f"n AS MATERIALIZED (SELECT CASE WHEN {same} THEN (SELECT count(*) FROM (SELECT 1 "
        f"FROM azmem_memories m WHERE {where} AND m.embedding IS NOT NULL LIMIT {p_sql}) AS x) END AS n)",
        [dimension, *params, *p_par],
        f"({hnsw} WHERE (SELECT n FROM n) > {e_sql}{order}) UNION ALL "
        f"({exact} WHERE (SELECT n FROM n) <= {e_sql}{order})",
        [*hnsw_params, *gate, query, *params, *gate],
        True,
    )


def _ranked(rows: Any) -> Ranked:
    return [(int(rid), float(cos)) for rid, cos in rows]


def fetch(conn: Conn, rids: set[int]) -> dict[int, Sequence[Any]]:
    """Rows (codec.COLS, rid last) of the hits."""
    if not rids:
        return {}
    return {
        int(row[11]): row
        for row in conn.execute(
            f"SELECT {codec.COLS} FROM azmem_memories m WHERE m.rid = ANY(%s::bigint[])", [sorted(rids)]
        )
    }


@dataclass(frozen=True)
class Query:
    """One search, as the store hands it over (validated, filters compiled)."""

    mode: SearchMode
    vector: npt.NDArray[np.float32] | None
    terms: list[str] | None
    scope: Scope
    where: str  # scope and filters, over the memory row `m`
    params: Sequence[Any]
    filters: tuple[str, Sequence[Any]] | None  # the filters alone (None: scope only)
    limit: int
    threshold: float | None

    @classmethod
    def of(
        cls,
        mode: SearchMode,
        vector: npt.NDArray[np.float32] | None,
        terms: list[str] | None,
        scope: Scope,
        compiled: CompiledFilter | None,
        limit: int,
        threshold: float | None,
    ) -> Query:
        where, params = where_clause(scope, compiled)
        filters = None if compiled is None else (compiled.sql, compiled.params)
        return cls(mode, vector, terms, scope, where, params, filters, limit, threshold)


def run(
    conn: Conn,
    q: Query,
    plan: VectorPlan | None,
    check: Callable[[tuple[str, int] | None], bool],
) -> list[SearchHit]:
    """One search (in the caller's snapshot transaction when `needs_transaction`): candidates,
    fusion, the hits' rows.

    `check` gets the embedder recorded in the store when the search is dense or hybrid; it
    raises on a mismatch and returns False when none is recorded (no vector to compare)."""
    depth = ranking.depth(q.mode, q.limit)
    query = q.vector
    head: list[str] = []
    head_params: list[Any] = []
    if query is not None:
        head += [
            "(SELECT value FROM azmem_meta WHERE key = 'embedder_name')",
            "(SELECT value FROM azmem_meta WHERE key = 'dimension')",
        ]
        if not q.terms:  # the memory count, for the breadth (with words, the statistics hold it)
            head.append(f"({lexical.N_SQL})")
    if q.terms:
        head.append(lexical.stats_sql())
        head_params += [lexical.RARE_DOCS + 1, q.terms]
    rows: dict[int, Sequence[Any]] = {}
    dense_hits: Ranked = []
    first: Sequence[Any] = ()
    if query is None:
        if head:
            first = conn.execute("SELECT " + ", ".join(head), head_params).fetchone() or ()
    else:
        assert plan is not None
        key = None if q.filters is not None else (q.scope.user_id, q.scope.agent_id, q.scope.run_id)
        known = plan.large is not None and key is not None and key in plan.large
        folded = q.mode == "hybrid" and bool(q.terms)
        d = _dense(plan, query, depth, q.where, q.params, known, inline=True)
        settings = _settings(plan, depth)
        if settings is not None:
            conn.execute(*settings)
        if folded:
            return _hybrid(conn, q, plan, d, depth, key, check)
        with_rows = q.mode == "dense"  # the candidates are the hits: their rows come along
        # One statement: the embedder, the lexical statistics, the probe and the dense candidates.
        found = conn.execute(
            (f"WITH {d.cte} " if d.cte else "")
            + "SELECT "
            + ", ".join([*head, "(SELECT n FROM n)" if d.probed else "NULL::bigint", "s.rid", "s.cos"])
            + (f", {codec.COLS}" if with_rows else "")
            + f" FROM (SELECT 1) AS one LEFT JOIN ({d.source}) AS s ON true"
            + (" LEFT JOIN azmem_memories m ON m.rid = s.rid" if with_rows else "")
            + " ORDER BY s.cos DESC, s.rid",
            [*d.cte_params, *head_params, *d.params],
        ).fetchall()
        first = found[0]
        name, dimension = first[0], first[1]
        if not check(None if name is None else (str(name), int(dimension))):
            return []
        if plan.breadth is not None:
            plan.breadth.observe(int(first[2]))  # N: the statistics' first column, or alone
        at = 5 if q.terms else 3  # the probe's count: after the embedder and the 3 statistics (or N)
        for r in found:
            if r[at + 1] is not None:
                dense_hits.append((int(r[at + 1]), float(r[at + 2])))
                if with_rows:
                    rows[int(r[at + 1])] = r[at + 3 :]
        n = first[at]
        rescanned = _rescan(conn, q, plan, d, depth, key, None if n is None else int(n), dense_hits)
        if rescanned is not None:
            dense_hits = rescanned
        first = first[2:]
    lexical_hits: Ranked = []
    lexical_extra: dict[int, float] = {}
    cosines: dict[int, float] = {}
    lp = None
    if q.terms:
        lp = lexical.plan(conn, q.terms, int(first[0]), int(first[1]), [int(c) for c in first[2]])
    if lp is not None:
        also = [rid for rid, _ in dense_hits] if q.mode == "hybrid" else []
        lexical_hits, lexical_extra, cosines, found_rows = lexical.score(
            conn, lp, q.scope, q.filters, depth, also, query
        )
        rows.update(found_rows)
    return _finish(conn, q, dense_hits, lexical_hits, lexical_extra, cosines, rows)


def _rescan(
    conn: Conn,
    q: Query,
    plan: VectorPlan,
    d: _Dense,
    depth: int,
    key: tuple[str | None, ...] | None,
    probe: int | None,
    dense_hits: Ranked,
) -> Ranked | None:
    """Remember a scope the probe (`probe`: its count) found large; the exact scan's candidates
    when the HNSW scan returned fewer than `depth` (pgvector's max_scan_tuples), else None."""
    large = d.probed and probe is not None and probe > plan.exact_rows
    if large and plan.large is not None and key is not None:
        plan.large.add(key)
    if plan.index is None or (d.probed and not large) or len(dense_hits) >= depth:
        return None
    return _ranked(conn.execute(_exact(q.where) + _ORDER, [q.vector, *q.params, depth]))


def _finish(
    conn: Conn,
    q: Query,
    dense_hits: Ranked,
    lexical_hits: Ranked,
    lexical_extra: dict[int, float],
    cosines: dict[int, float],
    rows: dict[int, Sequence[Any]],
) -> list[SearchHit]:
    """Fusion (`ranking.rank`) and the hits, with the rows of any not already in `rows`;
    `cosines`: those of the lexical candidates that are not dense ones."""
    similarities: dict[int, float] | None = None
    if q.vector is not None:
        similarities = dict(dense_hits)
        for rid, _ in lexical_hits:
            similarities.setdefault(rid, cosines.get(rid, 0.0))  # 0.0: a row without a vector
    scored = ranking.rank(
        q.mode, similarities, dense_hits, lexical_hits, lexical_extra, bool(q.terms), q.threshold, q.limit
    )
    rows.update(fetch(conn, {rid for _, _, rid in scored if rid not in rows}))
    return ranking.hits(scored, rows, dense_hits, lexical_hits, lexical_extra, q.limit, record=codec.record)


def _hybrid(
    conn: Conn,
    q: Query,
    plan: VectorPlan,
    d: _Dense,
    depth: int,
    key: tuple[str | None, ...] | None,
    check: Callable[[tuple[str, int] | None], bool],
) -> list[SearchHit]:
    """A hybrid search with words: one statement (`hybrid.py`), then the general path's
    second statement only if the dense candidates were re-scanned exactly or the words
    scored are not those `lexical.plan` chooses (every word common)."""
    assert q.vector is not None
    assert q.terms
    found = hybrid.parse(
        conn.execute(
            *hybrid.statement(
                d.cte,
                d.cte_params,
                d.source,
                d.params,
                d.probed,
                plan.dimension,
                q.terms,
                q.scope,
                q.filters,
                depth,
                q.vector,
                q.limit,
                q.threshold,
            )
        ).fetchall()
    )
    if not check(found.embedder):
        return []
    if plan.breadth is not None:
        plan.breadth.observe(found.n_docs)
    dense_hits, rows = found.dense, found.rows
    rescanned = _rescan(conn, q, plan, d, depth, key, found.probe, dense_hits)
    if rescanned is not None:
        dense_hits = rescanned
    lp = lexical.plan(conn, q.terms, found.n_docs, found.n_tokens, found.counts)
    lexical_hits, lexical_extra, cosines = found.ranked, found.extra, found.cosines
    if rescanned is not None or not found.agrees(lp):
        lexical_hits, lexical_extra, cosines = [], {}, {}
        if lp is not None:
            also = [rid for rid, _ in dense_hits]
            lexical_hits, lexical_extra, cosines, more = lexical.score(
                conn, lp, q.scope, q.filters, depth, also, q.vector
            )
            rows.update(more)
    return _finish(conn, q, dense_hits, lexical_hits, lexical_extra, cosines, rows)
