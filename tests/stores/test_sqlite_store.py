"""What only SQLiteStore has: file settings, the change log behind its in-memory indexes, bad or
foreign or locked files, its own schema table. The backend-neutral contract is test_store_contract.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from azmem.errors import StoreError
from azmem.stores import DeleteOp, Scope, SQLiteStore
from azmem.stores.sqlite import _schema
from azmem.stores.sqlite import store as sqlite_module

from .store_helpers import DIM, EMBEDDER, add, fake_embed, open_store


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = open_store(tmp_path / "m.db")
    yield s
    s.close()


def test_file_settings(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["embedder_name"] == EMBEDDER
    assert meta["dimension"] == str(DIM)
    assert meta["schema_version"] == str(len(_schema.MIGRATIONS))
    assert store.embedder == (EMBEDDER, DIM)


def test_reader_behind_pruned_change_log_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "_CHANGES_PRUNE_AT", 6)
    monkeypatch.setattr(sqlite_module, "_CHANGES_KEEP", 2)
    path = tmp_path / "m.db"
    reader, writer = open_store(path), open_store(path)
    keep = add(writer, "kept memory zero")
    reader.search("zero", fake_embed("zero"), Scope())
    doomed = [add(writer, f"doomed memory {i}") for i in range(10)]
    writer.apply([DeleteOp(r.id) for r in doomed])
    pruned = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
    assert int(pruned[0]) > 0
    hits = reader.search(None, fake_embed("doomed memory 3"), Scope(), mode="dense", limit=50)
    assert [h.record.id for h in hits] == [keep.id]
    reader.close()
    writer.close()


# -- opening bad files -----------------------------------------------------------------------------


def test_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError) as err:
        SQLiteStore(path)
    assert str(path) in err.value.message
    assert err.value.suggestion
    assert "move the file aside" in err.value.suggestion


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not an azmem store"):
        SQLiteStore(path)
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_directory_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        SQLiteStore(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO _migrations VALUES ('999_from_the_future', 'x')")
    with pytest.raises(StoreError, match="newer azmem"):
        SQLiteStore(path)


def test_reopen_does_not_rerun_migrations(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with open_store(path) as s:
        rec = add(s, "persisted")
    with open_store(path) as s:
        assert s.get(rec.id) == rec
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(_schema.MIGRATIONS)


def test_check_detects_fts_drift(store: SQLiteStore) -> None:
    rec = add(store, "alpha beta gamma")
    assert store.check() == []
    with sqlite3.connect(store.path) as conn:
        rid = conn.execute("SELECT rid FROM memories WHERE id = ?", (rec.id,)).fetchone()[0]
        conn.execute("DROP TRIGGER memories_au_text")
        conn.execute("UPDATE memories SET memory = 'delta epsilon' WHERE rid = ?", (rid,))
    assert any("full-text" in p for p in store.check())


def test_locked_store_reads_and_opens_but_writes_time_out(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with open_store(path) as s:
        add(s, "before the lock")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        store = SQLiteStore(path, busy_timeout=0.2)
        store.open(EMBEDDER, DIM)  # unchanged embedder: no write needed
        assert store.count() == 1
        assert store.search("lock", fake_embed("lock"), Scope())[0].record.memory == "before the lock"
        with pytest.raises(StoreError) as err:
            add(store, "blocked")
        assert err.value.error_code == "store_locked"
        assert "locked" in err.value.message
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    add(store, "after the lock")
    assert store.count() == 2
    store.close()


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_never_leaks_sqlite_errors(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "m.db"
    with open_store(path) as s:
        for i in range(300):
            add(s, f"memory {i} with some words to fill pages " * 5)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])

    def use_it() -> None:
        with open_store(path) as s:
            s.count()
            s.search("memory", fake_embed("memory"), Scope(), limit=50)
            s.list(Scope(), limit=500)
            add(s, "after damage")

    with pytest.raises(StoreError) as err:
        use_it()
    assert str(path) in err.value.message
    assert err.value.error_code == "store_corrupt"
    assert "move the file aside" in (err.value.suggestion or "")
