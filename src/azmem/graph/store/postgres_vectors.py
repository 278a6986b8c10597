"""The PostgreSQL graph's vector search: pgvector HNSW indexes (cosine), re-ranked exactly.

The graph's ``embedding`` columns have no fixed dimension (a graph binds its embedder at
`open`), and HNSW needs one, so each index is on an expression: ``(embedding::vector(d))``
(``halfvec(d)`` above pgvector's 2,000-dimension limit for ``vector``, up to 4,000; no
index beyond), made for the bound dimension by `ensure_indexes` (at `open`, and by the
migration for a graph bound before indexes existed), remade if a graph is re-bound.

A search is the memory store's plan (`azmem.stores.postgres.search.dense`):

* at most `EXACT_ROWS` rows pass the group, time view and filters (a capped count): an
  exact scan, the index kept out of the plan, which is also what a group of a few
  thousand facts costs least;
* more: the HNSW index with ``hnsw.ef_search`` raised (``SET LOCAL``) and, on pgvector
  >= 0.8, ``hnsw.iterative_scan = relaxed_order`` so the filters do not starve it;
  `CANDIDATES` rows are fetched and re-ranked by exact cosine (``1 - (embedding <=> q)``,
  ties by rid), the ranking SQLite computes; if fewer come back than wanted, an exact scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from azmem.stores.postgres.connections import Conn
from azmem.stores.postgres.diagnostics import pgvector_version
from azmem.stores.postgres.schema import VectorIndex, vector_index

__all__ = ["CANDIDATES", "EXACT_ROWS", "VectorPlan", "ensure_indexes", "plan_for"]

Table = Literal["azmem_graph_facts", "azmem_graph_entities"]
TABLES: tuple[Table, ...] = ("azmem_graph_facts", "azmem_graph_entities")

#: Rows passing the filters at or below which a search is an exact scan.
EXACT_ROWS = 2000
#: HNSW candidates re-ranked exactly (at least the limit asked for).
CANDIDATES = 100
EF_SEARCH = 200


def _index_name(table: Table) -> str:
    return f"{table}_hnsw"


def _cast(kind: VectorIndex, dimension: int) -> str:
    return f"{kind}({int(dimension)})"


def _definition(table: Table, kind: VectorIndex, dimension: int) -> str:
    return (
        f"CREATE INDEX {_index_name(table)} ON {table} USING hnsw "
        f"((embedding::{_cast(kind, dimension)}) {kind}_cosine_ops)"
    )


def ensure_indexes(conn: Conn, dimension: int) -> VectorIndex:
    """Give both tables the HNSW index for ``dimension`` (dropping one made for another); the kind."""
    kind = vector_index(dimension, pgvector_version(conn))
    for table in TABLES:
        name = _index_name(table)
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
            (name,),
        ).fetchone()
        wanted = f"::{_cast(kind, dimension)}" if kind else None
        if row is not None and wanted is not None and wanted in row[0]:
            continue
        if row is not None:
            conn.execute(f"DROP INDEX {name}")
        if kind is not None:
            conn.execute(_definition(table, kind, dimension))
    return kind


@dataclass(frozen=True)
class VectorPlan:
    dimension: int
    index: VectorIndex
    iterative_scan: bool
    exact_rows: int = EXACT_ROWS
    ef_search: int = EF_SEARCH

    def dense(
        self,
        conn: Conn,
        table: Table,
        alias: str,
        key: str,
        where: str,
        params: Sequence[Any],
        vector: npt.NDArray[np.float32],
        limit: int,
    ) -> list[tuple[Any, float]]:
        """Top ``limit`` (``key`` column, cosine) of ``table`` (as ``alias``) among the rows
        ``where`` allows, best first, ties by rid."""
        x = alias
        if limit <= 0:
            return []
        exact = self.index is None
        if not exact:
            (n,) = conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} {x} WHERE {where} LIMIT %s) AS c",
                [*params, self.exact_rows + 1],
            ).fetchone() or (0,)
            if n == 0:
                return []
            exact = n <= self.exact_rows
        if not exact:
            settings = "SELECT set_config('hnsw.ef_search', %s, true)"
            if self.iterative_scan:
                settings += ", set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            conn.execute(settings, [str(min(1000, max(self.ef_search, limit)))])
            cast = _cast(self.index, self.dimension)
            found = conn.execute(
                f"SELECT k, cos FROM (SELECT {x}.{key} AS k, {x}.rid, 1 - ({x}.embedding <=> %s) AS cos "
                f"FROM {table} {x} WHERE {where} ORDER BY ({x}.embedding::{cast}) <=> %s::{cast} "
                "LIMIT %s) AS s "
                "ORDER BY cos DESC, rid LIMIT %s",
                [vector, *params, vector, max(limit, min(self.ef_search, CANDIDATES)), limit],
            ).fetchall()
            if len(found) >= limit:
                return [(k, float(c)) for k, c in found]
        # OFFSET 0 keeps the subquery whole, so the planner cannot answer it from the HNSW index.
        found = conn.execute(
            f"SELECT k, cos FROM (SELECT {x}.{key} AS k, {x}.rid, 1 - ({x}.embedding <=> %s) AS cos "
            f"FROM {table} {x} WHERE {where} OFFSET 0) AS s ORDER BY cos DESC, rid LIMIT %s",
            [vector, *params, limit],
        ).fetchall()
        return [(k, float(c)) for k, c in found]


def plan_for(conn: Conn, dimension: int, *, exact_rows: int = EXACT_ROWS) -> VectorPlan:
    version = pgvector_version(conn)
    return VectorPlan(
        dimension=dimension,
        index=vector_index(dimension, version),
        iterative_scan=version >= (0, 8),
        exact_rows=exact_rows,
    )
