"""PostgreSQL's BM25 postings (migration 004, kept by triggers): after every kind of write the
lexical results equal SQLite's (FTS5's own bm25, the reference) and the scores equal BM25
computed directly from each memory's words; migrating a store of the previous schema version
backfills them. Real SQLite and real PostgreSQL, the same ops applied to both."""

from __future__ import annotations

import math
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")

from azmem.stores import AddOp, DeleteOp, MemoryRecord, MemoryStore, Scope, SQLiteStore, UpdateOp
from azmem.stores.copy import copy_store
from azmem.stores.postgres import PostgresStore, schema
from azmem.stores.postgres import rows as codec

from .pg_statements import sent
from .store_helpers import DIM, EMBEDDER, fake_embed

# Words whose porter stems are all distinct, so SQLite's stemming FTS5 and PostgreSQL's exact
# words match the same memories.
VOCAB = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach", "plum", "melon"]
QUERIES = ["apple", "banana cherry", "plum melon grape", "olive", "peach lemon mango apple", "kiwi"]
USERS = ["u1", "u2", "u3"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 9)))


def _ranking(store: MemoryStore, query: str, scope: Scope) -> list[tuple[str, float]]:
    return [
        (h.record.id, round(h.bm25 or 0.0, 9))
        for h in store.search(query, None, scope, mode="bm25", limit=50)
    ]


def _same_results(sqlite: MemoryStore, pg: MemoryStore) -> None:
    for query in QUERIES:
        for scope in (Scope(), Scope(user_id="u1"), Scope(user_id="u2", agent_id="a")):
            want, got = _ranking(sqlite, query, scope), _ranking(pg, query, scope)
            assert [i for i, _ in got] == [i for i, _ in want], (query, scope)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6), (query, scope)


def _direct_scores(url: str, terms: list[str]) -> dict[str, float]:
    """BM25 of every memory from its tsvector (the formula of schema versions before 004)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), coalesce(sum(doc_len), 0) FROM azmem_memories").fetchone()
        n, total = row if row else (0, 0)
        rows = conn.execute(
            "SELECT m.id, u.lexeme, cardinality(u.positions), m.doc_len FROM azmem_memories m, "
            "unnest(m.lexemes) AS u WHERE u.lexeme = ANY(%s)",
            [terms],
        ).fetchall()
    df: dict[str, int] = {}
    for _, term, _, _ in rows:
        df[term] = df.get(term, 0) + 1
    avgdl = total / n if n else 1.0
    scores: dict[str, float] = {}
    for mid, term, tf, doc_len in rows:
        idf = math.log((n - df[term] + 0.5) / (df[term] + 0.5))
        idf = idf if idf > 0 else 1e-6  # FTS5's floor
        scores[mid] = scores.get(mid, 0.0) + idf * (tf * 2.2) / (tf + 1.2 * (0.25 + 0.75 * doc_len / avgdl))
    return scores


@pytest.fixture
def pair(tmp_path: Path, pg_url: str) -> Iterator[tuple[SQLiteStore, PostgresStore]]:
    sqlite = SQLiteStore(tmp_path / "ref.db")
    pg = PostgresStore(pg_url)
    for s in (sqlite, pg):
        s.open(EMBEDDER, DIM)
    yield sqlite, pg
    sqlite.close()
    pg.close()


def _apply(stores: tuple[MemoryStore, ...], ops: list[Any]) -> None:
    for s in stores:
        s.apply(ops)


def test_postings_follow_every_write(pair: tuple[SQLiteStore, PostgresStore], pg_url: str) -> None:
    sqlite, pg = pair
    rng = random.Random(8)
    records = []
    for i in range(60):
        scope = Scope(user_id=USERS[i % 3], agent_id="a" if i % 2 else None)
        records.append(MemoryRecord.new(_text(rng), scope, id=f"m{i:03d}"))
    _apply(pair, [AddOp(r, fake_embed(r.memory)) for r in records])
    _same_results(sqlite, pg)

    # Text updates (the words change), metadata-only updates (they do not), deletes.
    ops: list[Any] = []
    for r in records[:10]:
        text = _text(rng)
        ops.append(UpdateOp(r.id, memory=text, vector=fake_embed(text)))
    ops += [UpdateOp(r.id, metadata={"k": 1}) for r in records[10:15]]
    ops += [DeleteOp(r.id) for r in records[15:22]]
    _apply(pair, ops)
    assert pg.check() == []
    _same_results(sqlite, pg)

    for s in pair:
        s.delete_all(Scope(user_id="u3", agent_id="a"))
    _same_results(sqlite, pg)
    for s in pair:
        s.forget(Scope(user_id="u2"), compact=False)
    assert pg.check() == []
    _same_results(sqlite, pg)

    # The scores are BM25 of the words each memory holds now.
    got = {h.record.id: h.bm25 for h in pg.search("apple plum", None, Scope(), mode="bm25", limit=100)}
    assert got == pytest.approx(_direct_scores(pg_url, ["apple", "plum"]), rel=1e-9)
    assert got  # the corpus still matches

    pg.reset()
    sqlite.reset()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM azmem_postings").fetchone() == (0,)
    _apply(pair, [AddOp(r, fake_embed(r.memory)) for r in records[:5]])
    _same_results(sqlite, pg)


def test_copy_into_postgres_indexes_the_words(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(9)
    with SQLiteStore(tmp_path / "src.db") as source, PostgresStore(pg_url) as target:
        source.open(EMBEDDER, DIM)
        target.open(EMBEDDER, DIM)
        records = [MemoryRecord.new(_text(rng), Scope(user_id=USERS[i % 3]), id=f"c{i}") for i in range(40)]
        source.apply([AddOp(r, fake_embed(r.memory)) for r in records])
        copy_store(source, target, batch_size=15)
        assert target.check() == []
        _same_results(source, target)


def _old_rows(conn: Any, texts: list[str]) -> list[str]:
    """Memories and their ADD events as the azmem of schema version 3 wrote them."""
    ids = []
    for i, text in enumerate(texts):
        mid = str(uuid.uuid4())
        literal, count = codec.document(text)
        conn.execute(
            "INSERT INTO azmem_memories (id, memory, hash, user_id, metadata, created_at, updated_at, "
            "lexemes, doc_len) VALUES (%s, %s, %s, %s, '{}', now(), now(), %s::tsvector, %s)",
            [mid, text, "h", USERS[i % 2], literal, count],
        )
        conn.execute(
            "INSERT INTO azmem_history (id, memory_id, event, new_memory, created_at) "
            "VALUES (%s, %s, 'ADD', %s, now())",
            [str(uuid.uuid4()), mid, text],
        )
        ids.append(mid)
    return ids


def test_migration_from_the_previous_version_backfills_the_postings(pg_url: str) -> None:
    rng = random.Random(10)
    texts = [_text(rng) for _ in range(30)]
    before = len(schema.MIGRATIONS) - 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert schema.migrate(conn, lambda c: None, upto=before) == [n for n, _ in schema.MIGRATIONS[:before]]
        assert conn.execute("SELECT to_regclass('azmem_postings')").fetchone() == (None,)
        _old_rows(conn, texts)
    with PostgresStore(pg_url) as s:
        assert s.describe()["migrations_applied"] == [n for n, _ in schema.MIGRATIONS]
        assert {"azmem_postings_term", "azmem_postings_rid"} <= set(s.describe()["indexes"])
        assert s.check() == []
        got = {h.record.id: h.bm25 for h in s.search("melon peach", None, Scope(), mode="bm25", limit=100)}
        assert got
        assert got == pytest.approx(_direct_scores(pg_url, ["melon", "peach"]), rel=1e-9)
        scoped = {
            h.record.id for h in s.search("melon peach", None, Scope(user_id="u2"), mode="bm25", limit=100)
        }
        assert scoped
        assert scoped < set(got)


def test_check_reports_postings_out_of_step(pg_url: str) -> None:
    with PostgresStore(pg_url) as s:
        s.open(EMBEDDER, DIM)
        s.apply([AddOp(MemoryRecord.new("apple banana", Scope(user_id="u1")), fake_embed("apple banana"))])
        assert s.check() == []
        with psycopg.connect(pg_url) as conn:
            conn.execute("DELETE FROM azmem_postings WHERE term = 'apple'")
        assert any("postings" in p for p in s.check())


def test_scope_size_probe_is_skipped_only_while_the_scope_is_known_large(pg_url: str) -> None:
    """The exact-scan probe is skipped for a scope just found large, and runs again after this
    store writes (a delete may have made the scope small: it must be searched exactly again)."""
    rng = random.Random(11)
    with PostgresStore(pg_url, exact_scan_rows=20) as s:
        s.open(EMBEDDER, DIM)
        recs = [MemoryRecord.new(_text(rng), Scope(user_id="u1"), id=f"s{i:02d}") for i in range(60)]
        s.apply([AddOp(r, fake_embed(r.memory)) for r in recs])
        query = fake_embed("apple plum")

        def probes() -> int:
            with sent() as statements:
                hits = s.search(None, query, Scope(user_id="u1"), mode="dense", limit=5)
            assert hits
            return sum("(SELECT n FROM n) >" in q for q in statements)

        assert probes() == 1  # found large (60 > 20)
        assert probes() == 0  # remembered
        s.apply([DeleteOp(r.id) for r in recs[10:]])
        assert probes() == 1  # probed again: 10 left, searched exactly
        left = {r.id: fake_embed(r.memory) for r in recs[:10]}
        exact = sorted(left, key=lambda i: -float(left[i] @ query))[:5]
        hits = s.search(None, query, Scope(user_id="u1"), mode="dense", limit=5)
        assert [h.record.id for h in hits] == exact


def test_searches_that_raise_hnsw_settings_per_transaction_agree(pg_url: str) -> None:
    """Behind a transaction pooler (prepare_threshold=None) the HNSW settings are raised per
    search in a transaction instead of once per connection; a search deeper than ef_search
    raises them too. Both give the results of the usual one-statement path."""
    rng = random.Random(12)
    recs = [MemoryRecord.new(_text(rng), Scope(user_id="u1"), id=f"h{i:03d}") for i in range(300)]
    with (
        PostgresStore(pg_url, exact_scan_rows=0) as s,
        PostgresStore(pg_url, exact_scan_rows=0, prepare_threshold=None) as pooled,
    ):
        s.open(EMBEDDER, DIM)
        pooled.open(EMBEDDER, DIM)
        s.apply([AddOp(r, fake_embed(r.memory)) for r in recs])
        for mode in ("hybrid", "dense"):
            for limit in (10, 80):  # 80: hybrid depth 320 > ef_search 200
                query = "plum melon"
                want = s.search(query, fake_embed(query), Scope(user_id="u1"), mode=mode, limit=limit)
                got = pooled.search(query, fake_embed(query), Scope(user_id="u1"), mode=mode, limit=limit)
                assert len(want) == limit
                assert [h.record.id for h in got] == [h.record.id for h in want]
                assert [h.score for h in got] == pytest.approx([h.score for h in want])


def test_index_builds_get_enough_maintenance_memory_and_never_less(pg_url: str) -> None:
    """`create_vector_index` raises maintenance_work_mem for its transaction only, never lowers it."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE azmem_memories (rid bigint, embedding vector(3))")
        server = conn.execute("SHOW maintenance_work_mem").fetchone()
        for before, during in (("64MB", "1GB"), ("2GB", "2GB")):
            with conn.transaction():
                conn.execute(f"SET LOCAL maintenance_work_mem = '{before}'")
                schema.create_vector_index(conn, 3, "vector")
                assert conn.execute("SHOW maintenance_work_mem").fetchone() == (during,)
                schema.drop_vector_index(conn)
            assert conn.execute("SHOW maintenance_work_mem").fetchone() == server  # for the transaction only
