"""The PostgreSQL graph's HNSW indexes (`graph/store/postgres_vectors.py`): made for the bound
dimension, used by the planner, and re-ranked so results equal the exact scan's."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from azmem.graph.changes import Changes, NewEntity, NewFact
from azmem.graph.model import Entity, Fact, new_id
from azmem.graph.queries import EntityQuery, FactQuery, TimeView
from azmem.graph.store.postgres import PostgresGraphStore

DIM = 16
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _open(url: str, exact_rows: int | None = None) -> PostgresGraphStore:
    store = PostgresGraphStore(url)
    if exact_rows is not None:
        store.exact_rows = exact_rows
    store.open("test:vectors", DIM)
    return store


def _fill(store: PostgresGraphStore, n: int) -> None:
    rng, r = np.random.default_rng(7), random.Random(7)

    def unit() -> np.ndarray:
        v = rng.standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)

    people = [Entity(id=new_id(), group_id="g", name=f"Person {i}", created_at=NOW) for i in range(40)]
    store.apply(Changes("g", new_entities=[NewEntity(e, unit()) for e in people]))
    facts = []
    for i in range(n):
        a, b = r.sample(people, 2)
        ended = r.random() < 0.3
        facts.append(NewFact(Fact(
            id=new_id(), group_id="g", source_id=a.id, target_id=b.id, name="KNOWS", fact=f"fact {i}",
            valid_at=NOW - timedelta(days=i), invalid_at=NOW - timedelta(days=1) if ended else None,
            created_at=NOW, expired_at=NOW if ended else None), unit()))  # fmt: skip
    store.apply(Changes("g", new_facts=facts))


def test_hnsw_search_returns_what_the_exact_scan_returns(pg_url: str) -> None:
    exact = _open(pg_url)  # the default: a small group is scanned exactly
    _fill(exact, 400)
    hnsw = _open(pg_url, exact_rows=0)  # every search through the index, then re-ranked
    rng = np.random.default_rng(11)
    for i in range(8):
        v = rng.standard_normal(DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        view = TimeView(now=NOW, as_of=NOW - timedelta(days=100) if i % 2 else None)
        fq = FactQuery(["g"], [], v, view, None, [], 2, 20)
        expected = exact.search_facts(fq).dense
        assert len(expected) == 20
        got = hnsw.search_facts(fq).dense
        assert [k for k, _ in got] == [k for k, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected])
        eq = EntityQuery(["g"], [], v, limit=10)
        assert [e.id for e, _ in hnsw.search_entities(eq).dense] == [
            e.id for e, _ in exact.search_entities(eq).dense
        ]
    exact.close()
    hnsw.close()


def test_the_indexes_are_made_for_the_bound_dimension_and_serve_the_query(pg_url: str) -> None:
    store = _open(pg_url)
    _fill(store, 50)
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        defs: dict[str, str] = dict(
            conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE '%_hnsw'")
        )
        assert set(defs) == {"azmem_graph_facts_hnsw", "azmem_graph_entities_hnsw"}
        assert all(f"vector({DIM})" in d and "vector_cosine_ops" in d for d in defs.values())
        conn.execute("SET enable_seqscan = off")  # 50 rows: a scan and a sort would be cheaper
        conn.execute("SET enable_sort = off")
        q = "[" + ",".join(["0.25"] * DIM) + "]"
        plan = " ".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT id FROM azmem_graph_facts f WHERE f.group_id = 'g' "
                f"ORDER BY (f.embedding::vector({DIM})) <=> '{q}'::vector({DIM}) LIMIT 5"
            )
        )
        assert "azmem_graph_facts_hnsw" in plan
        # an empty graph re-bound to another dimension gets indexes for it
        conn.execute("DELETE FROM azmem_graph_entities")
    other = PostgresGraphStore(pg_url)
    other.open("test:other", 8)
    other.close()
    with psycopg.connect(pg_url) as conn:
        defs = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE '%_hnsw'"))
    assert len(defs) == 2
    assert all("vector(8)" in d for d in defs.values())
