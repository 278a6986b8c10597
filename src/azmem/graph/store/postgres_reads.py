"""The PostgreSQL graph store's reads: the same retrievers as SQLite's, in SQL.

* Words: ``tsvector`` / ``tsquery`` (``english``; query words ORed, each quoted by
  construction: they are letters and digits only), ranked by ``ts_rank_cd``: close to,
  not the same as, SQLite's BM25 (the fusion uses ranks only, so the scales never mix).
* Cosine: pgvector's ``<=>`` over the rows the view and filters allow: an exact scan for
  a few thousand rows, else the HNSW index re-ranked exactly (`postgres_vectors`).
* Graph distance: a recursive CTE over facts in both directions, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from azmem.graph.changes import Vector
from azmem.graph.model import Entity, Episode, Fact, world_order
from azmem.graph.queries import EntityCandidates, EntityQuery, FactCandidates, FactQuery
from azmem.graph.results import GraphCounts
from azmem.graph.store.dump import Dump
from azmem.graph.store.postgres_schema import TEXT_CONFIG
from azmem.graph.store.postgres_vectors import VectorPlan
from azmem.graph.store.rows import (
    ENTITY_COLUMNS,
    EPISODE_COLUMNS,
    FACT_COLUMNS,
    FACT_JOINS,
    entity_from_row,
    episode_from_row,
    fact_from_row,
)
from azmem.graph.store.sql import Dialect, entity_where, fact_where
from azmem.stores.postgres.connections import Conn

__all__ = ["POSTGRES", "PostgresReads"]

T = TypeVar("T")

POSTGRES = Dialect(
    ph="%s",
    time=lambda value: value,
    in_list=lambda column, _n: f"{column} = ANY(%s)",
    labels_any=lambda column, _n: f"{column} && %s::text[]",
    list_param=lambda values: [list(values)],
)

_JOINS = FACT_JOINS.format(entities="azmem_graph_entities")
_FACTS = f"SELECT f.rid, {FACT_COLUMNS} FROM azmem_graph_facts f {_JOINS}"
_ENTITIES = f"SELECT e.rid, {ENTITY_COLUMNS} FROM azmem_graph_entities e"


def _array(value: Any) -> Vector:
    """pgvector hands back its own ``Vector`` (or, registered differently, a numpy array)."""
    raw = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(raw, dtype=np.float32)


def _query(terms: Sequence[str], prefix: bool) -> str:
    """A tsquery of the words ORed (``query_terms`` leaves letters and digits only)."""
    star = ":*" if prefix else ""
    return " | ".join(f"'{t}'{star}" for t in terms)


class PostgresReads:
    """Read half of `PostgresGraphStore`: needs its ``_run`` and ``_plan``."""

    def _run(self, action: str, fn: Callable[[Conn], T], *, write: bool = False) -> T:
        raise NotImplementedError

    def _plan(self) -> VectorPlan:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _facts_where(conn: Conn, column: str, keys: Sequence[Any]) -> dict[Any, Fact]:
        rows = conn.execute(f"{_FACTS} WHERE f.{column} = ANY(%s)", (list(keys),)).fetchall()
        episodes: dict[str, list[str]] = {}
        for fact_id, episode_id in conn.execute(
            "SELECT fact_id, episode_id FROM azmem_graph_fact_episodes WHERE fact_id = ANY(%s) ORDER BY seq",
            ([r[1] for r in rows],),
        ):
            episodes.setdefault(fact_id, []).append(episode_id)
        key = 0 if column == "rid" else 1
        return {r[key]: fact_from_row(r[1:], episodes.get(r[1], [])) for r in rows}

    @staticmethod
    def _entities_where(conn: Conn, column: str, keys: Sequence[Any]) -> dict[Any, Entity]:
        key = 0 if column == "rid" else 1
        rows = conn.execute(f"{_ENTITIES} WHERE e.{column} = ANY(%s)", (list(keys),)).fetchall()
        return {r[key]: entity_from_row(r[1:]) for r in rows}

    @staticmethod
    def _episodes(conn: Conn, where: str, params: Sequence[Any], tail: str = "") -> list[Episode]:
        rows = conn.execute(
            f"SELECT {EPISODE_COLUMNS} FROM azmem_graph_episodes ep WHERE {where} {tail}", params
        )
        found = rows.fetchall()
        mentions: dict[str, list[str]] = {}
        for episode_id, entity_id in conn.execute(
            "SELECT episode_id, entity_id FROM azmem_graph_mentions WHERE episode_id = ANY(%s) ORDER BY seq",
            ([r[0] for r in found],),
        ):
            mentions.setdefault(episode_id, []).append(entity_id)
        return [episode_from_row(r, mentions.get(r[0], [])) for r in found]

    @staticmethod
    def _counts(conn: Conn, group_ids: Sequence[str]) -> GraphCounts:
        counts = []
        for table in ("azmem_graph_episodes", "azmem_graph_entities", "azmem_graph_facts"):
            row = conn.execute(
                f"SELECT count(*) FROM {table} WHERE group_id = ANY(%s)", (list(group_ids),)
            ).fetchone()
            counts.append(int(row[0]) if row else 0)
        return GraphCounts(episodes=counts[0], entities=counts[1], facts=counts[2])

    # -- records ---------------------------------------------------------------------
    def group_version(self, group_id: str) -> int:
        def read(conn: Conn) -> int:
            row = conn.execute(
                "SELECT version FROM azmem_graph_groups WHERE group_id = %s", (group_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        return self._run("read", read)

    def counts(self, group_ids: Sequence[str]) -> GraphCounts:
        return self._run("read", lambda conn: self._counts(conn, group_ids))

    def get_episodes(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> list[Episode]:
        where, params = "ep.group_id = ANY(%s)", [list(group_ids)]
        if before is not None:
            where += " AND ep.reference_time < %s"
            params.append(before)  # type: ignore[arg-type]
        tail = "ORDER BY ep.reference_time DESC, ep.rid DESC LIMIT %s"
        return self._run("read", lambda conn: self._episodes(conn, where, [*params, limit], tail))[::-1]

    def get_episode(self, episode_id: str) -> Episode | None:
        found = self._run("read", lambda conn: self._episodes(conn, "ep.id = %s", [episode_id]))
        return found[0] if found else None

    def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        found = self._run("read", lambda conn: self._entities_where(conn, "id", entity_ids))
        return [found[i] for i in entity_ids if i in found]

    def get_facts(self, fact_ids: Sequence[str]) -> list[Fact]:
        found = self._run("read", lambda conn: self._facts_where(conn, "id", fact_ids))
        return [found[i] for i in fact_ids if i in found]

    def entity_facts(self, entity_id: str) -> list[Fact]:
        def read(conn: Conn) -> dict[Any, Fact]:
            rids = [r[0] for r in conn.execute(
                "SELECT rid FROM azmem_graph_facts WHERE source_id = %s UNION "
                "SELECT rid FROM azmem_graph_facts WHERE target_id = %s",
                (entity_id, entity_id))]  # fmt: skip
            return self._facts_where(conn, "rid", rids)

        found = self._run("read", read)
        return sorted(found.values(), key=world_order)

    def entities_by_names(self, group_id: str, names: Sequence[str]) -> dict[str, list[Entity]]:
        def read(conn: Conn) -> tuple[list[Any], dict[Any, Entity]]:
            pairs = conn.execute(
                "SELECT norm, entity_id FROM azmem_graph_entity_names WHERE group_id = %s AND norm = ANY(%s) "
                "ORDER BY norm, entity_id",
                (group_id, list(names)),
            ).fetchall()
            return pairs, self._entities_where(conn, "id", sorted({p[1] for p in pairs}))

        pairs, found = self._run("read", read)
        out: dict[str, list[Entity]] = {}
        for norm, entity_id in pairs:
            out.setdefault(norm, []).append(found[entity_id])
        return out

    def fact_vectors(self, fact_ids: Sequence[str]) -> dict[str, Vector]:
        return self._vectors("azmem_graph_facts", fact_ids)

    def entity_vectors(self, entity_ids: Sequence[str]) -> dict[str, Vector]:
        return self._vectors("azmem_graph_entities", entity_ids)

    def _vectors(self, table: str, ids: Sequence[str]) -> dict[str, Vector]:
        def read(conn: Conn) -> list[Any]:
            return conn.execute(
                f"SELECT id, embedding FROM {table} WHERE id = ANY(%s)", (list(ids),)
            ).fetchall()

        return {key: _array(v) for key, v in self._run("read", read)}

    def dump(self, group_ids: Sequence[str]) -> Dump:
        def read(conn: Conn) -> Dump:
            groups = [list(group_ids)]
            episodes = self._episodes(
                conn, "ep.group_id = ANY(%s)", groups, "ORDER BY ep.reference_time, ep.rid"
            )
            e_rids = [
                r[0]
                for r in conn.execute(
                    "SELECT rid FROM azmem_graph_entities WHERE group_id = ANY(%s) ORDER BY rid", groups
                )
            ]
            f_rids = [
                r[0]
                for r in conn.execute(
                    "SELECT rid FROM azmem_graph_facts WHERE group_id = ANY(%s) ORDER BY rid", groups
                )
            ]
            entities, facts = (
                self._entities_where(conn, "rid", e_rids),
                self._facts_where(conn, "rid", f_rids),
            )
            return Dump(episodes, [entities[r] for r in e_rids], [facts[r] for r in f_rids])  # fmt: skip

        return self._run("read", read)

    # -- retrieval -------------------------------------------------------------------
    def similar_facts(
        self, group_id: str, vector: Vector, entity_ids: Sequence[str], limit: int
    ) -> list[tuple[Fact, float]]:
        def read(conn: Conn) -> list[tuple[Fact, float]]:
            v = np.asarray(vector, dtype=np.float32)
            top = conn.execute(
                "SELECT rid, 1 - (embedding <=> %s) FROM azmem_graph_facts WHERE group_id = %s "
                "AND (source_id = ANY(%s) OR target_id = ANY(%s)) ORDER BY embedding <=> %s, rid LIMIT %s",
                (v, group_id, list(entity_ids), list(entity_ids), v, limit),
            ).fetchall()
            facts = self._facts_where(conn, "rid", [r[0] for r in top])
            return [(facts[r], float(s)) for r, s in top if r in facts]

        return self._run("read", read)

    def search_entities(self, query: EntityQuery) -> EntityCandidates:
        where = entity_where(POSTGRES, "e", query.group_ids, known_at=query.known_at, labels=query.labels)

        def read(conn: Conn) -> EntityCandidates:
            bm25: list[int] = []
            if query.terms:
                bm25 = [r[0] for r in conn.execute(
                    f"SELECT e.rid FROM azmem_graph_entities e, to_tsquery('{TEXT_CONFIG}', %s) q "
                    f"WHERE e.lexemes @@ q AND {where.sql} "
                    "ORDER BY ts_rank_cd(e.lexemes, q) DESC, e.rid LIMIT %s",
                    (_query(query.terms, query.prefix), *where.params, query.limit))]  # fmt: skip
            dense: list[Any] = []
            if query.vector is not None:
                v = np.asarray(query.vector, dtype=np.float32)
                dense = self._plan().dense(
                    conn, "azmem_graph_entities", "e", "rid", where.sql, where.params, v, query.limit
                )
            found = self._entities_where(conn, "rid", [*bm25, *(r for r, _ in dense)])
            return EntityCandidates(
                bm25=[found[r] for r in bm25 if r in found],
                dense=[(found[r], float(s)) for r, s in dense if r in found],
            )

        return self._run("read", read)

    def search_facts(self, query: FactQuery) -> FactCandidates:
        where = fact_where(
            POSTGRES, "f", query.group_ids, query.view, query.filters, entity_table="azmem_graph_entities"
        )
        w, p = where.sql, where.params

        def read(conn: Conn) -> FactCandidates:
            bm25: list[str] = []
            if query.terms:
                bm25 = [r[0] for r in conn.execute(
                    f"SELECT f.id FROM azmem_graph_facts f, to_tsquery('{TEXT_CONFIG}', %s) q "
                    f"WHERE f.lexemes @@ q AND {w} ORDER BY ts_rank_cd(f.lexemes, q) DESC, f.rid LIMIT %s",
                    (_query(query.terms, False), *p, query.limit))]  # fmt: skip
            dense: list[tuple[str, float]] = []
            if query.vector is not None:
                v = np.asarray(query.vector, dtype=np.float32)
                dense = self._plan().dense(conn, "azmem_graph_facts", "f", "id", w, p, v, query.limit)
            graph: list[tuple[str, int]] = []
            if query.origins:
                rows = conn.execute(
                    f"""WITH RECURSIVE walk(id, depth) AS (
                        SELECT unnest(%s::text[]) COLLATE "C", 0
                        UNION
                        SELECT CASE WHEN f.source_id = w.id THEN f.target_id ELSE f.source_id END, w.depth + 1
                        FROM walk w JOIN azmem_graph_facts f ON (f.source_id = w.id OR f.target_id = w.id)
                        WHERE w.depth < %s AND {w}
                    ), dist AS (SELECT id, min(depth) AS depth FROM walk GROUP BY id)
                    SELECT fid, min(depth) AS distance FROM (
                        SELECT f.rid, f.id AS fid, d.depth, f.created_at
                            FROM dist d JOIN azmem_graph_facts f ON f.source_id = d.id WHERE {w}
                        UNION ALL
                        SELECT f.rid, f.id AS fid, d.depth, f.created_at
                            FROM dist d JOIN azmem_graph_facts f ON f.target_id = d.id WHERE {w}
                    ) x GROUP BY rid, fid ORDER BY distance, max(created_at) DESC, rid LIMIT %s""",
                    (list(query.origins), query.depth - 1, *p, *p, *p, query.limit),
                )
                graph = [(r[0], int(r[1])) for r in rows]
            return FactCandidates(bm25=bm25, dense=dense, graph=graph)

        return self._run("read", read)
