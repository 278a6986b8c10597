"""A store opened read-only (a backup, a snapshot, a replica): reads work, nothing is written."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from azmem.errors import SchemaVersionError, StoreError
from azmem.stores import Scope, open_store
from azmem.stores.sqlite import SQLiteStore

from .store_helpers import DIM, EMBEDDER, add, fake_embed
from .store_helpers import open_store as open_rw


def _backup(tmp_path: Path) -> Path:
    store = open_rw(tmp_path / "live.db")
    for text in ("tea in the morning", "coffee at night", "green tea"):
        add(store, text)
    store.close()
    backup = tmp_path / "backup" / "memory.db"
    backup.parent.mkdir()
    shutil.copy(tmp_path / "live.db", backup)
    return backup


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_url_searches_and_refuses_writes(tmp_path: Path) -> None:
    backup = _backup(tmp_path)
    before = _digest(backup)
    store = open_store(f"sqlite:///{backup}?mode=ro")
    assert isinstance(store, SQLiteStore)
    assert store.read_only
    store.open(EMBEDDER, DIM)
    hits = store.search("tea", fake_embed("tea"), Scope(user_id="alice"), limit=5)
    assert {h.record.memory for h in hits} >= {"tea in the morning", "green tea"}
    assert store.count() == 3
    with pytest.raises(StoreError) as err:
        add(store, "a new memory")
    assert err.value.code == "store_read_only"
    with pytest.raises(StoreError, match="read-only"):
        store.reset()
    store.close()
    assert _digest(backup) == before


def test_read_only_never_creates_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def _lock_directory(path: Path, locked: bool) -> None:
    """No new file can be made in `path`: chmod for a user, the immutable attribute for root
    (whom permissions do not stop), as on a read-only mount."""
    if os.geteuid() != 0:
        path.chmod(0o555 if locked else 0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a directory read-only for root")
    subprocess.run([chattr, "+i" if locked else "-i", str(path)], check=True)


def test_a_store_in_a_read_only_directory_opens_read_only(tmp_path: Path) -> None:
    backup = _backup(tmp_path)
    assert not (backup.parent / "memory.db-shm").exists()  # SQLite would need to create it
    _lock_directory(backup.parent, True)
    try:
        with pytest.raises(PermissionError):
            (backup.parent / "probe").touch()
        with pytest.raises(StoreError):  # read-write cannot even start
            SQLiteStore(backup).count()
        store = open_store(f"sqlite:///{backup}?mode=ro")
        assert store.count() == 3
        store.open(EMBEDDER, DIM)
        assert store.search("coffee", fake_embed("coffee"), Scope(user_id="alice"), limit=1)[
            0
        ].record.memory == ("coffee at night")
        store.close()
    finally:
        _lock_directory(backup.parent, False)


def test_a_store_from_a_newer_azmem_is_refused_read_only(tmp_path: Path) -> None:
    backup = _backup(tmp_path)
    with sqlite3.connect(backup) as conn:
        conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('999_future', 'x')")
    with pytest.raises(SchemaVersionError) as err:
        open_store(backup, read_only=True)
    assert "upgrade" in (err.value.suggestion or "")


def test_a_store_needing_migrations_says_so_read_only(tmp_path: Path) -> None:
    backup = _backup(tmp_path)
    with sqlite3.connect(backup) as conn:
        conn.execute("DELETE FROM _migrations WHERE name = '002_log_text_changes'")
    with pytest.raises(StoreError) as err:
        open_store(backup, read_only=True)
    assert err.value.code == "store_needs_migration"
