"""PostgreSQL's lexical (BM25) half: a postings table kept by triggers, and the queries over it.

**Why postings.** Scoring BM25 from each memory's ``tsvector`` means unnesting the
vector of every matching row (about 7 µs a row: 57 ms for a 7,000-match query at 100k
memories). ``azmem_postings`` holds one row per (word, memory) with the word's
frequency, the memory's length and its scope, under a covering index on ``term``: a
query's scores are then an index-only scan plus a ``GROUP BY`` (about 0.5 µs a posting;
the same query in 3-6 ms), and document frequencies are capped index counts.

**Why triggers.** Every path that writes memories (``apply``, ``delete_all``, ``forget``,
``azmem copy``'s import, a migration's backfill, and any added later) changes the
postings in the same statement, so they cannot drift from ``lexemes``: statement
triggers with transition tables for INSERT and DELETE (one multi-row statement per
write, however many rows), a row trigger for UPDATE that fires only when the words, the
length or the scope changed (a reindex rewriting every vector never touches them).
``reset`` truncates the table with the memories.

**Scores.** Unchanged from the per-row formula: FTS5's constants and BM25 (k1 1.2, b
0.75, IDF ``log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6, N and the average length
of the whole store from ``azmem_lexical_stats``), term frequency = the word's positions
in the ``tsvector`` (``rows.document``: at most 256), so results equal the previous
schema's. The cost bounds are SQLite's (``ranking.rare_terms``): words in more than
RARE_DOCS memories are dropped while rarer ones exist; when every word is that common
only the newest COMMON_SCAN matching memories are scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azmem.stores import ranking
from azmem.stores.models import Scope
from azmem.stores.postgres import rows as codec
from azmem.stores.postgres.connections import Conn
from azmem.stores.ranking import Ranked

__all__ = [
    "BM25",
    "N_SQL",
    "LexicalPlan",
    "create_postings",
    "idf",
    "plan",
    "score",
    "stats_sql",
    "top_sql",
]

RARE_DOCS, RARE_BUDGET, COMMON_SCAN = ranking.RARE_DOCS, ranking.RARE_BUDGET, ranking.COMMON_SCAN

_POSTING = (
    "SELECT u.lexeme, n.rid, cardinality(u.positions), n.doc_len, n.user_id, n.agent_id, n.run_id "
    "FROM {} AS n, unnest(n.lexemes) AS u"
)


def create_postings(conn: Conn) -> None:
    """Migration 004: the table, its triggers, the backfill of existing memories, its indexes."""
    conn.execute(
        """
        CREATE TABLE azmem_postings (
            term text COLLATE "C" NOT NULL,
            rid bigint NOT NULL,
            tf integer NOT NULL,
            doc_len integer NOT NULL,
            user_id text COLLATE "C",
            agent_id text COLLATE "C",
            run_id text COLLATE "C"
        )
        """
    )
    cols = "(term, rid, tf, doc_len, user_id, agent_id, run_id)"
    conn.execute(
        f"""
        CREATE FUNCTION azmem_postings_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO azmem_postings {cols} {_POSTING.format("azmem_new")};
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER azmem_postings_insert AFTER INSERT ON azmem_memories "
        "REFERENCING NEW TABLE AS azmem_new FOR EACH STATEMENT EXECUTE FUNCTION azmem_postings_insert()"
    )
    conn.execute(
        """
        CREATE FUNCTION azmem_postings_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM azmem_postings p USING azmem_old o WHERE p.rid = o.rid;
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER azmem_postings_delete AFTER DELETE ON azmem_memories "
        "REFERENCING OLD TABLE AS azmem_old FOR EACH STATEMENT EXECUTE FUNCTION azmem_postings_delete()"
    )
    conn.execute(
        f"""
        CREATE FUNCTION azmem_postings_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM azmem_postings WHERE rid = OLD.rid;
            INSERT INTO azmem_postings {cols}
                SELECT u.lexeme, NEW.rid, cardinality(u.positions), NEW.doc_len, NEW.user_id,
                       NEW.agent_id, NEW.run_id
                FROM unnest(NEW.lexemes) AS u;
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER azmem_postings_update AFTER UPDATE OF lexemes, doc_len, user_id, agent_id, run_id "
        "ON azmem_memories FOR EACH ROW WHEN ((OLD.lexemes, OLD.doc_len, OLD.user_id, OLD.agent_id, "
        "OLD.run_id) IS DISTINCT FROM (NEW.lexemes, NEW.doc_len, NEW.user_id, NEW.agent_id, NEW.run_id)) "
        "EXECUTE FUNCTION azmem_postings_update()"
    )
    # Memories written before this migration; the indexes after the rows (one sorted build).
    conn.execute(f"INSERT INTO azmem_postings {cols} {_POSTING.format('azmem_memories')}")
    conn.execute(
        "CREATE INDEX azmem_postings_term ON azmem_postings (term) "
        "INCLUDE (rid, tf, doc_len, user_id, agent_id, run_id)"
    )
    conn.execute("CREATE INDEX azmem_postings_rid ON azmem_postings (rid)")


def idf(n_docs: int, df: int) -> float:
    value = math.log((n_docs - df + 0.5) / (df + 0.5))
    return value if value > 0.0 else 1e-6


N_SQL = "SELECT coalesce(sum(docs), 0) FROM azmem_lexical_stats"  # BM25's N: the memories


def stats_sql() -> str:
    """Three columns of the search's first statement (one %s: the capped count, then one: the
    words as text[]): N, total length, and each word's document count capped at RARE_DOCS + 1."""
    return (
        f"({N_SQL}), (SELECT coalesce(sum(tokens), 0) FROM azmem_lexical_stats), "
        "ARRAY(SELECT (SELECT count(*) FROM (SELECT 1 FROM azmem_postings p WHERE p.term = q.t "
        "LIMIT %s) AS x) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS q(t, i) ORDER BY q.i)"
    )


@dataclass(frozen=True)
class LexicalPlan:
    """The words a search scores, their IDFs, the average length, and the newest-matches cap
    (None: every match is scored)."""

    terms: list[str]
    idfs: list[float]
    avgdl: float
    newest: int | None


def plan(
    conn: Conn, terms: list[str], n_docs: int, n_tokens: int, counts: Sequence[int]
) -> LexicalPlan | None:
    """Choose the words to score from the capped counts (`stats_sql`); None when none matches."""
    df = {t: c for t, c in zip(terms, counts, strict=True) if c}
    if not df:
        return None
    chosen = ranking.rare_terms(df, rare_docs=RARE_DOCS, budget=RARE_BUDGET)
    newest: int | None = None
    if not chosen:  # every word is common: exact counts for the IDF, and only the newest matches scored
        chosen = list(df)
        newest = COMMON_SCAN
        df.update(
            (str(t), int(c))
            for t, c in conn.execute(
                "SELECT term, count(*) FROM azmem_postings WHERE term = ANY(%s::text[]) GROUP BY term",
                [chosen],
            )
        )
    n_docs = max(n_docs, max(df[t] for t in chosen))
    avgdl = n_tokens / n_docs if n_docs and n_tokens > 0 else 1.0
    return LexicalPlan(chosen, [idf(n_docs, df[t]) for t in chosen], avgdl, newest)


# BM25 of one posting `p` against the word table `t(term, idf)`; %s is the average length.
# The same arithmetic, in the same order, as the per-row formula of schema versions before 004.
BM25 = (
    "t.idf * (p.tf * 2.2::float8) "
    "/ (p.tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * p.doc_len / %s::float8))"
)


def _scope_sql(scope: Scope) -> tuple[str, list[Any]]:
    parts, params = [], []
    for column, value in scope.as_dict().items():  # fixed column names only
        parts.append(f" AND p.{column} = %s")
        params.append(value)
    return "".join(parts), params


def top_sql(
    words: str,
    bm25: str,
    scope: Scope,
    filtered: tuple[str, Sequence[Any]] | None,
    recent: str = "",
    recent_params: Sequence[Any] = (),
) -> tuple[str, list[Any]]:
    """Every in-scope (and `filtered`) match's BM25, unordered: `words` is the word table
    ``t(term, idf)`` and `bm25` the score (both SQL, their parameters first, the caller's);
    the parameters returned are the scope's, `recent_params`, then the filter's."""
    scope_sql, scope_params = _scope_sql(scope)
    top = (
        f"SELECT p.rid, sum({bm25}) AS score FROM {words} JOIN azmem_postings p ON p.term = t.term "
        f"WHERE true{scope_sql}{recent} GROUP BY p.rid"
    )
    params: list[Any] = [*scope_params, *recent_params]
    if filtered is not None:
        top = f"SELECT s.rid, s.score FROM ({top}) AS s JOIN azmem_memories m ON m.rid = s.rid"
        top += f" WHERE {filtered[0]}"
        params += filtered[1]
    return top, params


def score(
    conn: Conn,
    lp: LexicalPlan,
    scope: Scope,
    filtered: tuple[str, Sequence[Any]] | None,
    depth: int,
    also: Sequence[int],
    vector: Any | None,
) -> tuple[Ranked, dict[int, float], dict[int, float], dict[int, Sequence[Any]]]:
    """One statement: the BM25 top `depth` within scope (and `filtered`, a condition on the
    memory row ``m``), the BM25 of the rows in `also` (the dense candidates, for fusion),
    when `vector` is given the cosine of the top rows that are not in `also`, and the rows
    (``rows.COLS``) of every one of these candidates, so that no statement has to follow.

    Returns (ranked, scores of `also` that match a word, cosines, rows by rid)."""
    recent, recent_params = "", []
    if lp.newest is not None:
        recent = (
            " AND p.rid IN (SELECT DISTINCT r.rid FROM azmem_postings r WHERE r.term = ANY(%s::text[]) "
            "ORDER BY r.rid DESC LIMIT %s)"
        )
        recent_params = [lp.terms, lp.newest]
    words = "unnest(%s::text[], %s::float8[]) AS t(term, idf)"
    top, top_params = top_sql(words, BM25, scope, filtered, recent, recent_params)
    params: list[Any] = [lp.avgdl, lp.terms, lp.idfs, *top_params]
    top += " ORDER BY score DESC, rid LIMIT %s"
    params.append(depth)
    others = list(also)
    params += [lp.avgdl, lp.terms, lp.idfs, others, others]
    cos = "NULL::float8"
    if vector is not None:
        cos = (
            "CASE WHEN top.rid IS NOT NULL AND NOT (m.rid = ANY(%s::bigint[])) "
            "THEN 1 - (m.embedding <=> %s) END"
        )
        params += [others, vector]
    sql = (
        f"WITH top AS ({top}), "
        f"extra AS (SELECT p.rid, sum({BM25}) AS score FROM {words} "
        "JOIN azmem_postings p ON p.term = t.term WHERE p.rid = ANY(%s::bigint[]) GROUP BY p.rid), "
        "cand AS (SELECT rid FROM top UNION SELECT unnest(%s::bigint[])) "
        f"SELECT top.score, extra.score, {cos}, {codec.COLS} FROM cand "
        "JOIN azmem_memories m ON m.rid = cand.rid "
        "LEFT JOIN top ON top.rid = cand.rid LEFT JOIN extra ON extra.rid = cand.rid"
    )
    ranked: Ranked = []
    extra: dict[int, float] = {}
    cosines: dict[int, float] = {}
    rows: dict[int, Sequence[Any]] = {}
    for row in conn.execute(sql, params):
        rid = int(row[3 + 11])
        rows[rid] = row[3:]
        if row[0] is not None:
            ranked.append((rid, float(row[0])))
        if row[1] is not None:
            extra[rid] = max(0.0, float(row[1]))
        if row[2] is not None:
            cosines[rid] = float(row[2])
    ranked.sort(key=lambda t: (-t[1], t[0]))  # the SQL's order: score, then rid
    return [(rid, max(0.0, s)) for rid, s in ranked], extra, cosines, rows
