"""HNSW's search breadth (``hnsw.ef_search``) follows the store's size unless it was given:
the rule's values, a store whose count crosses a step changing the setting of the pooled
connections it already holds (one statement each, once), and a fixed breadth never moving.
A count that moves the breadth by less than a tenth leaves it. Real PostgreSQL; the setting
is read back from the server with SHOW."""

from __future__ import annotations

import os

import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")

from azmem.stores import AddOp, MemoryRecord, Scope
from azmem.stores.postgres import PostgresStore
from azmem.stores.postgres.breadth import Breadth, auto_ef_search

from .pg_statements import sent
from .store_helpers import DIM, EMBEDDER, fake_embed


@pytest.mark.parametrize(
    ("memories", "ef"),
    [(0, 40), (3_000, 40), (6_000, 50), (10_000, 64), (30_000, 111), (100_000, 200), (5_000_000, 200)],
)
def test_the_breadth_grows_as_the_square_root_of_the_size_from_40_to_200(memories: int, ef: int) -> None:
    assert auto_ef_search(memories) == ef


def _shown(store: PostgresStore) -> list[str]:
    """hnsw.ef_search on each of the pool's idle connections, as the server reports it."""
    seen: list[str] = []
    pool = store._conns._pool
    assert pool is not None
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    try:
        for conn in held:
            store._conns._catch_up(conn)
            row = conn.execute("SHOW hnsw.ef_search").fetchone()
            seen.append(str(row[0]) if row else "")
    finally:
        for conn in held:
            pool.putconn(conn)
    return seen


def _statements(store: PostgresStore, query: str) -> int:
    with sent() as statements:
        store.search(query, fake_embed(query), Scope(user_id="u"), mode="dense", limit=3)
    return len(statements)


def test_a_store_that_grows_past_a_step_widens_the_breadth_of_the_connections_it_holds(pg_url: str) -> None:
    with PostgresStore(pg_url, pool_size=1, exact_scan_rows=0) as s:
        s.open(EMBEDDER, DIM)
        assert _shown(s) == ["40"]
        records = [MemoryRecord.new(f"memory number {i}", Scope(user_id="u")) for i in range(6_000)]
        s.apply([AddOp(r, fake_embed(r.memory)) for r in records])
        assert _statements(s, "memory") == 1  # reads the count; the breadth is still 40 for it
        assert _statements(s, "memory") == 2  # 50 now: the held connection catches up, once
        assert _statements(s, "memory") == 1
        assert _shown(s) == ["50"]
        assert s.describe()["ef_search"] == "auto"
        hits = s.search(None, fake_embed(records[17].memory), Scope(user_id="u"), mode="dense", limit=1)
        assert [h.record.id for h in hits] == [records[17].id]
    with PostgresStore(pg_url, pool_size=1) as again:  # a new instance starts from the count
        assert _shown(again) == ["50"]


def test_the_breadth_moves_only_for_a_change_of_more_than_a_tenth() -> None:
    b = Breadth(None)
    b.observe(10_000)
    assert b.current() == 64
    for n in (11_000, 9_000, 12_000, 8_200):  # 67, 61, 70, 58: within 10 % of 64
        b.observe(n)
        assert b.current() == 64
    b.observe(12_500)  # 72
    assert b.current() == 72
    b.forget()
    assert b.current() == 40
    assert Breadth(300).current() == 300


def test_a_given_breadth_is_kept_whatever_the_size(pg_url: str) -> None:
    with PostgresStore(pg_url, pool_size=1, ef_search=123) as s:
        s.open(EMBEDDER, DIM)
        s.apply([AddOp(r, fake_embed(r.memory)) for r in [MemoryRecord.new("x y", Scope(user_id="u"))]])
        s.search("x", fake_embed("x"), Scope(user_id="u"), mode="dense")
        assert _shown(s) == ["123"]
        assert s.describe()["ef_search"] == 123
