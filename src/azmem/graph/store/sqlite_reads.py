"""The SQLite graph store's reads: records, retrieval for resolution, and the three search retrievers.

* BM25: FTS5's ``bm25()`` over fact sentences and relation names (entity names,
  aliases and summaries for entities), query words quoted, never parsed as syntax.
  For facts, the same formula over each group's in-memory postings (`lexical`), with
  the time view applied by the vector block's columns; FTS5 only for a query word it
  would read as a phrase.
* Cosine: the group's vectors in memory (`vector_cache`), restricted by SQL to the
  rows the time view and filters allow, so a selective filter never starves it.
* Graph distance: a recursive CTE walking facts (both directions, the view's facts
  only) from the origin entities, then the facts touching what it reached, nearest first.

``CROSS JOIN`` is SQLite's way of fixing the join order: the planner otherwise scans a
group's facts by ``group_id`` and probes the few walked entities (30x slower at 10k facts).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.graph.changes import Vector
from azmem.graph.model import Entity, Episode, Fact, world_order
from azmem.graph.queries import EntityCandidates, EntityQuery, FactCandidates, FactQuery
from azmem.graph.results import GraphCounts
from azmem.graph.store.dump import Dump
from azmem.graph.store.lexical import LexicalCache, PhraseQuery, bm25_top
from azmem.graph.store.rows import (
    ENTITY_COLUMNS,
    EPISODE_COLUMNS,
    FACT_COLUMNS,
    FACT_JOINS,
    entity_from_row,
    episode_from_row,
    fact_from_row,
    format_time,
)
from azmem.graph.store.sql import Dialect, entity_where, fact_where
from azmem.graph.store.vector_cache import Block, Kind, VectorCache

__all__ = ["SQLITE", "SQLiteReads"]

_CHUNK = 900  # bound variables per IN list, well under SQLite's limit


def _in(column: str, n: int) -> str:
    return f"{column} IN ({', '.join('?' * n)})" if n else "FALSE"


SQLITE = Dialect(
    ph="?",
    time=format_time,
    in_list=_in,
    labels_any=lambda column, n: f"EXISTS (SELECT 1 FROM json_each({column}) WHERE {_in('value', n)})",
    list_param=list,
)

_FACTS = f"SELECT f.rid, {FACT_COLUMNS} FROM graph_facts f {FACT_JOINS.format(entities='graph_entities')}"
_ENTITIES = f"SELECT e.rid, {ENTITY_COLUMNS} FROM graph_entities e"
_FACT_MATCH = (
    "SELECT f.rid, f.id FROM graph_facts_fts CROSS JOIN graph_facts f ON f.rid = graph_facts_fts.rowid "
    "WHERE graph_facts_fts MATCH ?"
)
_ENTITY_MATCH = (
    "SELECT e.rid FROM graph_entities_fts CROSS JOIN graph_entities e ON e.rid = graph_entities_fts.rowid "
    "WHERE graph_entities_fts MATCH ?"
)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _match(terms: Sequence[str], prefix: bool) -> str:
    star = "*" if prefix else ""
    return " OR ".join(f'"{t}"{star}' for t in terms)


class SQLiteReads:
    """Read half of `SQLiteGraphStore`: needs its ``_read``, ``_cache`` and ``_dim``."""

    _cache: VectorCache
    _lexical: LexicalCache

    def _read(self, action: str = "read") -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _dim(self) -> int:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _version(conn: sqlite3.Connection, group_id: str) -> int:
        row = conn.execute("SELECT version FROM graph_groups WHERE group_id = ?", (group_id,)).fetchone()
        return int(row[0]) if row else 0

    def _block(self, conn: sqlite3.Connection, kind: Kind, group_id: str) -> Block:
        return self._cache.block(conn, kind, group_id, self._version(conn, group_id), self._dim())

    @staticmethod
    def _facts_where(conn: sqlite3.Connection, column: str, keys: Sequence[Any]) -> dict[Any, Fact]:
        """Facts by rid or id (``column``), with their episodes, keyed by it."""
        rows: list[Any] = []
        for part in _chunks(list(keys)):
            rows += conn.execute(f"{_FACTS} WHERE {_in('f.' + column, len(part))}", part).fetchall()
        episodes: dict[str, list[str]] = {}
        ids = [r[1] for r in rows]
        for part in _chunks(ids):
            sql = f"SELECT fact_id, episode_id FROM graph_fact_episodes WHERE {_in('fact_id', len(part))}"
            for fact_id, episode_id in conn.execute(sql + " ORDER BY seq", part):
                episodes.setdefault(fact_id, []).append(episode_id)
        key = 0 if column == "rid" else 1
        return {r[key]: fact_from_row(r[1:], episodes.get(r[1], [])) for r in rows}

    @staticmethod
    def _entities_where(conn: sqlite3.Connection, column: str, keys: Sequence[Any]) -> dict[Any, Entity]:
        out: dict[Any, Entity] = {}
        key = 0 if column == "rid" else 1
        for part in _chunks(list(keys)):
            for r in conn.execute(f"{_ENTITIES} WHERE {_in('e.' + column, len(part))}", part):
                out[r[key]] = entity_from_row(r[1:])
        return out

    @staticmethod
    def _episodes(
        conn: sqlite3.Connection, where: str, params: Sequence[Any], tail: str = ""
    ) -> list[Episode]:
        rows = conn.execute(
            f"SELECT {EPISODE_COLUMNS} FROM graph_episodes ep WHERE {where} {tail}", params
        ).fetchall()
        mentions: dict[str, list[str]] = {}
        ids = [r[0] for r in rows]
        for part in _chunks(ids):
            sql = f"SELECT episode_id, entity_id FROM graph_mentions WHERE {_in('episode_id', len(part))}"
            for episode_id, entity_id in conn.execute(sql + " ORDER BY seq", part):
                mentions.setdefault(episode_id, []).append(entity_id)
        return [episode_from_row(r, mentions.get(r[0], [])) for r in rows]

    @staticmethod
    def _counts(conn: sqlite3.Connection, group_ids: Sequence[str]) -> GraphCounts:
        where = _in("group_id", len(group_ids))
        counts = [
            conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", list(group_ids)).fetchone()[0]
            for table in ("graph_episodes", "graph_entities", "graph_facts")
        ]
        return GraphCounts(episodes=counts[0], entities=counts[1], facts=counts[2])

    # -- records ---------------------------------------------------------------------
    def group_version(self, group_id: str) -> int:
        with self._read() as conn:
            return self._version(conn, group_id)

    def counts(self, group_ids: Sequence[str]) -> GraphCounts:
        with self._read() as conn:
            return self._counts(conn, group_ids)

    def get_episodes(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> list[Episode]:
        where = _in("ep.group_id", len(group_ids))
        params: list[Any] = list(group_ids)
        if before is not None:
            where += " AND ep.reference_time < ?"
            params.append(format_time(before))
        with self._read() as conn:
            latest = self._episodes(
                conn, where, [*params, limit], "ORDER BY ep.reference_time DESC, ep.rid DESC LIMIT ?"
            )
        return latest[::-1]

    def get_episode(self, episode_id: str) -> Episode | None:
        with self._read() as conn:
            found = self._episodes(conn, "ep.id = ?", [episode_id])
        return found[0] if found else None

    def get_entities(self, entity_ids: Sequence[str]) -> list[Entity]:
        with self._read() as conn:
            found = self._entities_where(conn, "id", entity_ids)
        return [found[i] for i in entity_ids if i in found]

    def get_facts(self, fact_ids: Sequence[str]) -> list[Fact]:
        with self._read() as conn:
            found = self._facts_where(conn, "id", fact_ids)
        return [found[i] for i in fact_ids if i in found]

    def entity_facts(self, entity_id: str) -> list[Fact]:
        with self._read() as conn:
            rids = [
                r[0]
                for r in conn.execute(
                    "SELECT rid FROM graph_facts WHERE source_id = ? "
                    "UNION SELECT rid FROM graph_facts WHERE target_id = ?",
                    (entity_id, entity_id),
                )
            ]
            found = self._facts_where(conn, "rid", rids)
        return sorted(found.values(), key=world_order)

    def entities_by_names(self, group_id: str, names: Sequence[str]) -> dict[str, list[Entity]]:
        with self._read() as conn:
            pairs = conn.execute(
                "SELECT norm, entity_id FROM graph_entity_names "
                f"WHERE group_id = ? AND {_in('norm', len(names))} ORDER BY norm, entity_id",
                (group_id, *names),
            ).fetchall()
            found = self._entities_where(conn, "id", sorted({p[1] for p in pairs}))
        out: dict[str, list[Entity]] = {}
        for norm, entity_id in pairs:
            out.setdefault(norm, []).append(found[entity_id])
        return out

    def fact_vectors(self, fact_ids: Sequence[str]) -> dict[str, Vector]:
        return self._vectors("graph_facts", fact_ids)

    def entity_vectors(self, entity_ids: Sequence[str]) -> dict[str, Vector]:
        return self._vectors("graph_entities", entity_ids)

    def _vectors(self, table: str, ids: Sequence[str]) -> dict[str, Vector]:
        out: dict[str, Vector] = {}
        with self._read() as conn:
            for part in _chunks(list(ids)):
                for key, blob in conn.execute(
                    f"SELECT id, vector FROM {table} WHERE {_in('id', len(part))}", part
                ):
                    out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def dump(self, group_ids: Sequence[str]) -> Dump:
        where = _in("group_id", len(group_ids))
        with self._read() as conn:
            episodes = self._episodes(
                conn,
                where.replace("group_id", "ep.group_id"),
                list(group_ids),
                "ORDER BY ep.reference_time, ep.rid",
            )
            e_rids = [
                r[0]
                for r in conn.execute(f"SELECT rid FROM graph_entities WHERE {where} ORDER BY rid", group_ids)
            ]
            f_rids = [
                r[0]
                for r in conn.execute(f"SELECT rid FROM graph_facts WHERE {where} ORDER BY rid", group_ids)
            ]
            entities = self._entities_where(conn, "rid", e_rids)
            facts = self._facts_where(conn, "rid", f_rids)
        return Dump(episodes, [entities[r] for r in e_rids], [facts[r] for r in f_rids])

    # -- retrieval -------------------------------------------------------------------
    def similar_facts(
        self, group_id: str, vector: Vector, entity_ids: Sequence[str], limit: int
    ) -> list[tuple[Fact, float]]:
        wanted = set(entity_ids)
        with self._read() as conn:
            block = self._block(conn, "facts", group_id)
            mask = np.fromiter(
                (s in wanted or t in wanted for s, t in block.ends), dtype=bool, count=len(block.ends)
            )
            top = [(int(block.rids[row]), score) for row, score in block.top(_unit(vector), mask, limit)]
            facts = self._facts_where(conn, "rid", [rid for rid, _ in top])
        return [(facts[rid], score) for rid, score in top if rid in facts]

    def search_entities(self, query: EntityQuery) -> EntityCandidates:
        where = entity_where(SQLITE, "e", query.group_ids, known_at=query.known_at, labels=query.labels)
        with self._read() as conn:
            bm25: list[int] = []
            if query.terms:
                sql = f"{_ENTITY_MATCH} AND {where.sql} ORDER BY bm25(graph_entities_fts), e.rid LIMIT ?"
                bm25 = [
                    r[0]
                    for r in conn.execute(
                        sql, (_match(query.terms, query.prefix), *where.params, query.limit)
                    )
                ]
            dense: list[tuple[int, float]] = []
            if query.vector is not None:
                eligible = None
                if len(where.parts) > 1:  # more than the group: known_at or labels
                    sql = f"SELECT e.rid FROM graph_entities e WHERE {where.sql}"
                    eligible = np.fromiter((r[0] for r in conn.execute(sql, where.params)), dtype=np.int64)
                for group_id in query.group_ids:
                    block = self._block(conn, "entities", group_id)
                    mask = None if eligible is None else np.isin(block.rids, eligible)
                    dense += [
                        (int(block.rids[i]), s) for i, s in block.top(_unit(query.vector), mask, query.limit)
                    ]
                dense = sorted(dense, key=lambda h: (-h[1], h[0]))[: query.limit]
            found = self._entities_where(conn, "rid", [*bm25, *(r for r, _ in dense)])
        return EntityCandidates(
            bm25=[found[r] for r in bm25 if r in found],
            dense=[(found[r], s) for r, s in dense if r in found],
        )

    def _visible(
        self, conn: sqlite3.Connection, query: FactQuery, where: str, params: list[Any]
    ) -> list[tuple[str, Block, npt.NDArray[np.bool_]]]:
        """Each group's fact block and the rows the view and filters allow (numpy, or SQL for
        label and date filters)."""
        eligible = None
        out = []
        for group_id in query.group_ids:
            block = self._block(conn, "facts", group_id)
            mask = block.visible(query.view, query.filters)
            if mask is None:
                if eligible is None:
                    sql = f"SELECT f.rid FROM graph_facts f WHERE {where}"
                    eligible = np.fromiter((r[0] for r in conn.execute(sql, params)), dtype=np.int64)
                mask = np.isin(block.rids, eligible)
            out.append((group_id, block, mask))
        return out

    def _dense_facts(
        self, query: FactQuery, visible: list[tuple[str, Block, npt.NDArray[np.bool_]]]
    ) -> list[Any]:
        """(fact id, cosine), best first."""
        assert query.vector is not None
        hits: list[tuple[float, int, str]] = []
        for _, block, mask in visible:
            hits += [
                (s, int(block.rids[i]), block.ids[i])
                for i, s in block.top(_unit(query.vector), mask, query.limit)
            ]
        return [(key, s) for s, _, key in sorted(hits, key=lambda h: (-h[0], h[1]))[: query.limit]]

    def _bm25_facts(
        self,
        conn: sqlite3.Connection,
        query: FactQuery,
        visible: list[tuple[str, Block, npt.NDArray[np.bool_]]],
    ) -> list[str] | None:
        """Fact ids by BM25 from the in-memory postings; None when FTS5 must answer (a phrase)."""
        try:
            tokens = self._lexical.tokens(conn, query.terms)
        except PhraseQuery:
            return None
        lexicons = []
        for group_id, block, _ in visible:
            lex = self._lexical.lexicon(conn, group_id, block.version)
            if not np.array_equal(lex.rids, block.rids):  # one snapshot: cannot happen, but never guess
                return None
            lexicons.append(lex)
        top = bm25_top(lexicons, tokens, [mask for _, _, mask in visible], query.limit)
        return [visible[i][1].ids[row] for i, row in top]

    def search_facts(self, query: FactQuery) -> FactCandidates:
        where = fact_where(
            SQLITE, "f", query.group_ids, query.view, query.filters, entity_table="graph_entities"
        )
        w, p = where.sql, where.params
        with self._read() as conn:
            visible = self._visible(conn, query, w, p) if query.terms or query.vector is not None else []
            found = self._bm25_facts(conn, query, visible) if query.terms else []
            if found is None:
                sql = f"{_FACT_MATCH} AND {w} ORDER BY bm25(graph_facts_fts), f.rid LIMIT ?"
                found = [r[1] for r in conn.execute(sql, (_match(query.terms, False), *p, query.limit))]
            bm25: list[str] = found
            dense = self._dense_facts(query, visible) if query.vector is not None else []
            graph: list[tuple[str, int]] = []
            if query.origins:
                hops = query.depth - 1
                rows = conn.execute(
                    f"""WITH RECURSIVE walk(id, depth) AS (
                        SELECT value, 0 FROM json_each(?)
                        UNION SELECT f.target_id, w.depth + 1
                            FROM walk w CROSS JOIN graph_facts f ON f.source_id = w.id
                            WHERE w.depth < ? AND {w}
                        UNION SELECT f.source_id, w.depth + 1
                            FROM walk w CROSS JOIN graph_facts f ON f.target_id = w.id
                            WHERE w.depth < ? AND {w}
                    ), dist(id, depth) AS (SELECT id, min(depth) FROM walk GROUP BY id)
                    SELECT fid, min(depth) AS distance FROM (
                        SELECT f.rid, f.id AS fid, d.depth, f.created_at
                            FROM dist d CROSS JOIN graph_facts f ON f.source_id = d.id WHERE {w}
                        UNION ALL
                        SELECT f.rid, f.id AS fid, d.depth, f.created_at
                            FROM dist d CROSS JOIN graph_facts f ON f.target_id = d.id WHERE {w}
                    ) GROUP BY rid ORDER BY distance, max(created_at) DESC, rid LIMIT ?""",
                    (json.dumps(list(query.origins)), hops, *p, hops, *p, *p, *p, query.limit),
                )
                graph = [(r[0], int(r[1])) for r in rows]
        return FactCandidates(bm25=bm25, dense=dense, graph=graph)


def _unit(vector: Vector) -> Vector:
    return np.asarray(vector, dtype=np.float32).reshape(-1)
