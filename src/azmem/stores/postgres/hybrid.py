"""A hybrid search in one statement: the dense candidates, the lexical plan, the BM25 top,
the fusion's inputs and the rows of the likely hits, so that it costs one round trip.

**Why.** Done as two statements (`search.run`'s general path), the lexical plan (which
words to score, their IDFs, the average length: `lexical.plan`) is chosen in Python
between them. Here the same choice is made in SQL from the same capped counts:
``ranking.rare_terms`` is a prefix of the present rare words ordered by (count, position
in the query) whose running count stays within the budget (the first word always kept),
and the IDFs and the average length use the same float arithmetic, in the same order,
as `lexical.idf` and `lexical.plan`. The statement hands back what it chose;
`search.run` recomputes `lexical.plan` from the same counts and, if the two differ (or
every word is common, which needs exact counts), scores the words the general way, so a
result never depends on the SQL's choice being right.

**Rows.** The candidates are up to 2 x depth (40 for a top 10) while a search returns
`limit`; decoding every candidate's row cost about as much as the second round trip
(measured again at depth 20: sending every row, 1.56 -> 1.62 ms p50).
The statement fuses the scores the way ``ranking.rank`` does (normalised cosine and
BM25, the threshold on the cosine) only to pick which rows to send: those ranked within
`limit`, ties included. The ranking itself is still ``ranking.rank``'s, in Python; any
hit whose row did not come along (a float rounding differently here) is fetched after.

**Plans.** Planning this statement takes about 0.9 ms, more than it saves; its limits are
therefore written into the SQL (integers the store computes, never input text) rather than
passed as parameters, so that after psycopg prepares it PostgreSQL's generic plan (which
knows the limits, and with them that the HNSW index serves the dense scan) is reused
without planning: measured at 10k memories, 2 cores, idle, store.search alone, p50 4.1 ms
(two statements) -> 3.5 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azmem.stores.models import Scope
from azmem.stores.postgres import lexical
from azmem.stores.postgres import rows as codec
from azmem.stores.ranking import DENSE_WEIGHT, Ranked

__all__ = ["Folded", "parse", "statement"]

_HEADER = 10  # kind, embedder, dimension, N, total length, capped counts, probe, words, IDFs, avgdl
_CANDIDATE = 5  # rid, dense cosine, BM25 (top), BM25 (dense candidate), cosine (BM25-only)


def _nulls(n: int) -> str:
    return ", ".join(["NULL"] * n)


def statement(
    dense_cte: str,
    dense_cte_params: Sequence[Any],
    dense_source: str,
    dense_params: Sequence[Any],
    probed: bool,
    dimension: int,
    terms: list[str],
    scope: Scope,
    filtered: tuple[str, Sequence[Any]] | None,
    depth: int,
    vector: Any,
    limit: int,
    threshold: float | None,
) -> tuple[str, list[Any]]:
    """The statement and its parameters (`search._dense` gives the dense parts)."""
    params: list[Any] = [*dense_cte_params, *dense_params]
    words = "unnest((SELECT terms FROM lp), (SELECT idfs FROM lp)) AS t(term, idf)"
    bm25 = lexical.BM25.replace("%s", "(SELECT avgdl FROM lp)")
    ctes = [dense_cte] if dense_cte else []
    ctes.append(f"dn AS MATERIALIZED (SELECT s.rid, s.cos FROM ({dense_source}) AS s)")
    ctes.append(
        "w AS MATERIALIZED (SELECT q.t, q.i, (SELECT count(*) FROM (SELECT 1 FROM azmem_postings p "
        f"WHERE p.term = q.t LIMIT {int(lexical.RARE_DOCS) + 1}) AS x) AS df "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS q(t, i))"
    )
    params.append(terms)
    ctes.append(
        "st AS MATERIALIZED (SELECT coalesce(sum(docs), 0) AS docs, coalesce(sum(tokens), 0) AS tokens "
        "FROM azmem_lexical_stats)"
    )
    # ranking.rare_terms: rarest first (ties in query order), within the budget, the first always.
    ctes.append(
        "ch AS MATERIALIZED (SELECT t, df, i FROM (SELECT t, df, i, sum(df) OVER o AS cum, "
        f"row_number() OVER o AS k FROM w WHERE df > 0 AND df <= {int(lexical.RARE_DOCS)} "
        "WINDOW o AS (ORDER BY df, i ROWS UNBOUNDED PRECEDING)) AS r "
        f"WHERE k = 1 OR cum <= {int(lexical.RARE_BUDGET)})"
    )
    # lexical.plan and lexical.idf: N at least the largest count, log floored at 1e-6.
    ctes.append(
        "g AS MATERIALIZED (SELECT greatest(st.docs, (SELECT max(df) FROM ch)) AS docs, st.tokens FROM st)"
    )
    ctes.append(
        "lp AS MATERIALIZED (SELECT ARRAY(SELECT t FROM ch ORDER BY df, i) AS terms, "
        "ARRAY(SELECT CASE WHEN v > 0 THEN v ELSE 1e-6::float8 END FROM (SELECT ch.df, ch.i, "
        "ln(((g.docs - ch.df)::float8 + 0.5::float8) / (ch.df::float8 + 0.5::float8)) AS v "
        "FROM ch, g) AS l ORDER BY df, i) AS idfs, "
        "(SELECT CASE WHEN docs > 0 AND tokens > 0 THEN tokens::float8 / docs::float8 "
        "ELSE 1.0::float8 END FROM g) AS avgdl)"
    )
    # Every in-scope match's BM25 once: the top, and the BM25 of the dense candidates (which
    # are in scope too) that match a word, are both read from it.
    top, top_params = lexical.top_sql(words, bm25, scope, filtered)
    ctes.append(f"agg AS MATERIALIZED ({top})")
    ctes.append(f"top AS MATERIALIZED (SELECT * FROM agg ORDER BY score DESC, rid LIMIT {int(depth)})")
    params += top_params
    ctes.append("extra AS (SELECT agg.rid, agg.score FROM agg WHERE agg.rid IN (SELECT rid FROM dn))")
    # The cosine of a BM25-only candidate (its row read for it alone), gated like the dense
    # scans on the recorded dimension (another one would fail the comparison before the store
    # could say why).
    ctes.append(
        "c AS MATERIALIZED (SELECT x.rid, dn.cos AS dcos, top.score AS ts, extra.score AS es, "
        "CASE WHEN dn.rid IS NULL AND (SELECT value FROM azmem_meta WHERE key = 'dimension') = %s "
        "THEN (SELECT 1 - (m.embedding <=> %s) FROM azmem_memories m WHERE m.rid = x.rid) END AS lcos "
        "FROM (SELECT rid FROM top UNION SELECT rid FROM dn) AS x "
        "LEFT JOIN dn ON dn.rid = x.rid LEFT JOIN top ON top.rid = x.rid "
        "LEFT JOIN extra ON extra.rid = x.rid)"
    )
    params += [str(dimension), vector]
    # ranking.rank's scores, only to choose the rows sent (see the module's docstring).
    weight = repr(float(DENSE_WEIGHT))
    rest = repr(1.0 - float(DENSE_WEIGHT))
    ctes.append(
        "f AS (SELECT rid, dcos, ts, es, lcos, rank() OVER (ORDER BY sim < %s::float8, "
        f"{weight}::float8 * CASE WHEN dmax > 0 THEN greatest(sim, 0.0::float8) / dmax "
        "ELSE 0.0::float8 END + "
        f"{rest}::float8 * CASE WHEN lmax > 0 THEN lex / lmax ELSE 0.0::float8 END DESC, sim DESC) AS k "
        "FROM (SELECT *, max(sim) OVER () AS dmax, max(lex) OVER () AS lmax FROM (SELECT c.*, "
        "least(1.0::float8, greatest(-1.0::float8, coalesce(c.dcos, c.lcos, 0.0::float8))) AS sim, "
        "greatest(0.0::float8, coalesce(c.ts, c.es)) AS lex FROM c) AS y) AS z)"
    )
    params.append(threshold)
    sql = (
        "WITH " + ", ".join(ctes) + " SELECT 0, (SELECT value FROM azmem_meta WHERE key = 'embedder_name'), "
        "(SELECT value FROM azmem_meta WHERE key = 'dimension'), st.docs, st.tokens, "
        "ARRAY(SELECT df FROM w ORDER BY i), "
        + ("(SELECT n FROM n)" if probed else "NULL::bigint")
        + f", lp.terms, lp.idfs, lp.avgdl, {_nulls(_CANDIDATE + 12)} FROM st, lp "
        f"UNION ALL SELECT 1, {_nulls(_HEADER - 1)}, f.rid, f.dcos, f.ts, f.es, f.lcos, r.* "
        # LATERAL: the condition on f.k gates the row's lookup, rather than filtering after it.
        f"FROM f LEFT JOIN LATERAL (SELECT {codec.COLS} FROM azmem_memories m "
        "WHERE m.rid = f.rid AND f.k <= %s) AS r ON true"
    )
    params.append(limit)
    return sql, params


@dataclass(frozen=True)
class Folded:
    """What the statement found: its header (embedder, lexical statistics, probe, its lexical
    plan) and the candidates, in the shapes `search.run` and `lexical.score` use."""

    embedder: tuple[str, int] | None
    n_docs: int
    n_tokens: int
    counts: list[int]
    probe: int | None
    plan: tuple[list[str], list[float], float]
    dense: Ranked
    ranked: Ranked
    extra: dict[int, float]
    cosines: dict[int, float]
    rows: dict[int, Sequence[Any]]

    def agrees(self, lp: lexical.LexicalPlan | None) -> bool:
        """Whether the statement scored the words `lexical.plan` chose, with its IDFs and length."""
        if lp is None:
            return not self.plan[0]
        return lp.newest is None and (lp.terms, lp.idfs, lp.avgdl) == self.plan


def parse(found: Sequence[Sequence[Any]]) -> Folded:
    head: Sequence[Any] = ()
    dense: Ranked = []
    ranked: Ranked = []
    extra: dict[int, float] = {}
    cosines: dict[int, float] = {}
    rows: dict[int, Sequence[Any]] = {}
    for r in found:
        if r[0] == 0:
            head = r
            continue
        rid = int(r[_HEADER])
        dcos, ts, es, lcos = r[_HEADER + 1 : _HEADER + _CANDIDATE]
        if dcos is not None:
            dense.append((rid, float(dcos)))
        if ts is not None:
            ranked.append((rid, float(ts)))
        if es is not None:
            extra[rid] = max(0.0, float(es))
        if lcos is not None:
            cosines[rid] = float(lcos)
        row = r[_HEADER + _CANDIDATE :]
        if row[11] is not None:
            rows[rid] = row
    dense.sort(key=lambda t: (-t[1], t[0]))  # the dense scans' order: cosine, then rid
    ranked.sort(key=lambda t: (-t[1], t[0]))  # the BM25 top's: score, then rid
    name, dimension = head[1], head[2]
    return Folded(
        embedder=None if name is None else (str(name), int(dimension)),
        n_docs=int(head[3]),
        n_tokens=int(head[4]),
        counts=[int(c) for c in head[5]],
        probe=None if head[6] is None else int(head[6]),
        plan=([str(t) for t in head[7]], [float(x) for x in head[8]], float(head[9])),
        dense=dense,
        ranked=[(rid, max(0.0, s)) for rid, s in ranked],
        extra=extra,
        cosines=cosines,
        rows=rows,
    )
