"""`copy_store`: whole stores move with their vectors and history, resume after an interruption,
and are verified by a checksum. Backends are real (SQLite files; PostgreSQL when the server runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from azmem.errors import EmbedderMismatchError, StoreError
from azmem.stores import DeleteOp, Scope, SQLiteStore, UpdateOp
from azmem.stores.copy import copy_store, store_checksum

from .store_helpers import DIM, EMBEDDER, add, fake_embed, open_store


def _filled(path: Path, n: int = 23) -> SQLiteStore:
    store = open_store(path)
    records = [add(store, f"fact {i} about tea", user_id=f"u{i % 3}", metadata={"i": i}) for i in range(n)]
    store.apply([UpdateOp(records[0].id, memory="changed fact", vector=fake_embed("changed fact"))])
    store.apply([DeleteOp(records[1].id)])  # its history must travel too
    return store


def test_copy_moves_memories_vectors_and_history(tmp_path: Path) -> None:
    src = _filled(tmp_path / "a.db")
    dst = SQLiteStore(tmp_path / "b.db")
    result = copy_store(src, dst, batch_size=5)
    assert result.verified
    assert (result.memories, result.history) == (22, 23 + 2)
    assert dst.embedder == (EMBEDDER, DIM)
    first = src.export_memories(None, 1)[0]
    copied = dst.get(first.record.id)
    assert copied == first.record
    assert np.array_equal(np.asarray(dst.export_memories(None, 1)[0].vector), np.asarray(first.vector))
    hits = dst.search("tea", fake_embed("tea"), Scope(user_id="u0"), limit=3)
    assert hits
    assert all(h.record.user_id == "u0" for h in hits)
    assert [e.event for e in dst.history(first.record.id)] == [e.event for e in src.history(first.record.id)]


def test_an_interrupted_copy_resumes_and_writes_nothing_twice(tmp_path: Path) -> None:
    src = _filled(tmp_path / "a.db")
    dst = SQLiteStore(tmp_path / "b.db")
    calls = 0

    def interrupt(phase: str, done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if phase == "memories" and done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(src, dst, batch_size=5, progress=interrupt)
    assert dst.count() == 10  # whole batches only
    result = copy_store(src, dst, batch_size=5)
    assert result.verified
    assert result.memories == 22
    assert result.inserted == 22 - 10 + 25
    again = copy_store(src, dst, batch_size=7)
    assert again.inserted == 0
    assert again.verified


def test_a_target_with_its_own_memories_fails_verification(tmp_path: Path) -> None:
    src = _filled(tmp_path / "a.db")
    dst = open_store(tmp_path / "b.db")
    add(dst, "something else entirely")
    with pytest.raises(StoreError) as err:
        copy_store(src, dst)
    assert err.value.code == "copy_mismatch"
    assert err.value.details["target"][0] == 23


def test_a_target_with_other_vectors_is_refused(tmp_path: Path) -> None:
    src = _filled(tmp_path / "a.db")
    dst = SQLiteStore(tmp_path / "b.db")
    dst.open("other-embedder", 8)
    dst.apply([])  # bound, empty: still another embedder's store once it holds vectors
    rec = add_with_dim(dst, 8)
    with pytest.raises(EmbedderMismatchError):
        copy_store(src, dst)
    assert dst.count() == 1
    assert dst.get(rec) is not None


def add_with_dim(store: SQLiteStore, dim: int) -> str:
    from azmem.stores import AddOp, MemoryRecord

    record = MemoryRecord.new("eight dims", Scope(user_id="x"))
    store.apply([AddOp(record, np.ones(dim, dtype=np.float32))])
    return record.id


def test_checksum_sees_any_change(tmp_path: Path) -> None:
    store = _filled(tmp_path / "a.db", n=4)
    before = store_checksum(store)
    rec = store.export_memories(None, 1)[0].record
    store.apply([UpdateOp(rec.id, metadata={"i": 99})])
    assert store_checksum(store) != before


def test_a_copy_keeps_each_memorys_events_in_order(tmp_path: Path) -> None:
    """History ids are random: exported by id, an UPDATE could arrive (and be numbered) before
    its ADD. Many updated memories make that near-certain under the old order."""
    src = open_store(tmp_path / "a.db")
    records = [add(src, f"fact {i} about tea", user_id="u") for i in range(40)]
    src.apply([UpdateOp(r.id, memory=f"changed {r.id}", vector=fake_embed(r.id)) for r in records])
    src.apply([DeleteOp(r.id) for r in records[:20]])
    dst = SQLiteStore(tmp_path / "b.db")
    assert copy_store(src, dst, batch_size=7).verified
    for r in records:
        assert [e.event for e in dst.history(r.id)] == [e.event for e in src.history(r.id)]
