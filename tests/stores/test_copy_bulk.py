"""`copy_store` into PostgreSQL loads an empty store without the HNSW index and builds it once at
the end (`PostgresStore.bulk_load`); a store that already holds memories keeps its index all
along; an interrupted copy leaves a store that still searches (exactly) and the resumed copy
ends with the index. Real SQLite source, real PostgreSQL target; the index is observed from the
catalog (`pg_indexes`) on a connection of the test's own, before every imported batch."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import psycopg
else:
    psycopg = pytest.importorskip("psycopg")

from azmem.errors import StoreError
from azmem.stores import DeleteOp, Scope, SQLiteStore, UpdateOp
from azmem.stores.audit import AuditContext
from azmem.stores.copy import copy_store
from azmem.stores.models import StoredMemory
from azmem.stores.postgres import PostgresStore

from .store_helpers import DIM, EMBEDDER, add, fake_embed, open_store

INDEX = "azmem_memories_embedding"
WORDS = ["tea", "coffee", "rain", "sun", "train", "bike", "piano", "garden", "river", "book", "cat", "bread"]
QUERIES = ["tea garden", "rain on the river", "piano book cat", "bike train", "bread"]


def _has_index(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'azmem_memories' AND indexname = %s", [INDEX]
        ).fetchone()
    return bool(row and row[0])


class WatchedStore(PostgresStore):
    """A real PostgreSQL store that notes, before each imported batch, whether its index exists."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.watch_url = url
        self.seen: list[bool] = []

    def import_memories(self, items: Sequence[StoredMemory], *, audit: AuditContext | None = None) -> int:
        self.seen.append(_has_index(self.watch_url))
        return super().import_memories(items, audit=audit)


class FailingSource(SQLiteStore):
    """A real SQLite source whose memory export dies after `batches` batches (a crash mid-copy)."""

    def __init__(self, path: Path, batches: int) -> None:
        super().__init__(path)
        self.left = batches

    def export_memories(self, after_id: str | None, limit: int) -> list[StoredMemory]:
        if self.left == 0:
            raise RuntimeError("source lost mid-copy")
        self.left -= 1
        return super().export_memories(after_id, limit)


def _fill(path: Path, n: int = 60) -> None:
    rng = random.Random(4)
    store = open_store(path)
    records = [
        add(store, f"{' '.join(rng.sample(WORDS, 3))} note {i}", user_id=f"u{i % 3}", metadata={"i": i})
        for i in range(n)
    ]
    store.apply([UpdateOp(records[0].id, memory="tea by the river", vector=fake_embed("tea by the river"))])
    store.apply([DeleteOp(records[1].id)])
    store.close()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SQLiteStore]:
    _fill(tmp_path / "src.db")
    store = SQLiteStore(tmp_path / "src.db")
    store.open(EMBEDDER, DIM)
    yield store
    store.close()


@pytest.fixture
def target(pg_url: str) -> Iterator[WatchedStore]:
    store = WatchedStore(pg_url)
    yield store
    store.close()


def _dense(store: Any, query: str, scope: Scope) -> list[tuple[str, float]]:
    hits = store.search(None, fake_embed(query), scope, mode="dense", limit=5)
    return [(h.record.id, h.score) for h in hits]


def _same_dense(want_store: Any, got_store: Any) -> None:
    for query in QUERIES:
        for scope in (Scope(), Scope(user_id="u1")):
            want, got = _dense(want_store, query, scope), _dense(got_store, query, scope)
            assert want, (query, scope)
            assert [i for i, _ in got] == [i for i, _ in want], (query, scope)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5), (query, scope)


def test_a_copy_into_an_empty_store_loads_without_the_index_and_builds_it_once(
    source: SQLiteStore, target: WatchedStore, pg_url: str
) -> None:
    result = copy_store(source, target, batch_size=10)
    assert result.verified
    assert (result.memories, result.history) == (59, 62)
    assert len(target.seen) == 6
    assert target.seen == [False] * 6  # dropped before the first batch, absent throughout
    assert _has_index(pg_url)
    assert target.describe()["indexes_missing"] == []
    _same_dense(source, target)
    # The HNSW path itself (no exact-scan gate) finds the same, now through the rebuilt index.
    with PostgresStore(pg_url, exact_scan_rows=0) as hnsw:
        hnsw.open(EMBEDDER, DIM)
        _same_dense(source, hnsw)


def test_an_interrupted_copy_still_searches_and_the_resumed_one_builds_the_index(
    tmp_path: Path, source: SQLiteStore, target: WatchedStore, pg_url: str
) -> None:
    failing = FailingSource(tmp_path / "src.db", batches=3)
    failing.open(EMBEDDER, DIM)
    with pytest.raises(RuntimeError, match="lost mid-copy"):
        copy_store(failing, target, batch_size=10)
    failing.close()
    assert target.count() == 30
    assert target.seen == [False] * 3
    assert not _has_index(pg_url)  # the build belongs to a copy that finishes
    assert target.describe()["indexes_missing"] == [INDEX]
    # Without its index the store still searches, exactly, also on the HNSW path.
    partial = SQLiteStore(tmp_path / "partial.db")
    copy_store(target, partial)
    with PostgresStore(pg_url, exact_scan_rows=0) as hnsw:
        hnsw.open(EMBEDDER, DIM)
        _same_dense(partial, hnsw)
    partial.close()

    target.seen.clear()
    result = copy_store(source, target, batch_size=10)  # the target is not empty now
    assert result.verified
    assert result.memories == 59
    assert target.seen == [False] * 6  # still missing from the first run, not dropped again
    assert _has_index(pg_url)
    _same_dense(source, target)


def test_a_target_holding_memories_keeps_its_index_throughout(
    source: SQLiteStore, target: WatchedStore, pg_url: str
) -> None:
    # A copy stopped after its first batch by an older azmem: memories in, index never dropped.
    target.open(EMBEDDER, DIM)
    target.import_memories(source.export_memories(None, 10))
    target.seen.clear()
    result = copy_store(source, target, batch_size=10)
    assert result.verified
    assert result.inserted == 59 - 10 + 62
    assert target.seen == [True] * 6
    assert _has_index(pg_url)


def test_a_target_with_its_own_memories_keeps_its_index(
    tmp_path: Path, source: SQLiteStore, target: WatchedStore, pg_url: str
) -> None:
    target.open(EMBEDDER, DIM)
    add(target, "someone else's memory about trains")
    with pytest.raises(StoreError) as err:
        copy_store(source, target, batch_size=25)
    assert err.value.code == "copy_mismatch"
    assert target.seen == [True] * 3
    assert _has_index(pg_url)
