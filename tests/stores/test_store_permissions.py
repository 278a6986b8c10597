"""The store file holds people's memories: it is created owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from azmem.stores import SQLiteStore


def test_new_store_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "memory.db"
        store = SQLiteStore(path)
        try:
            for p in (path, Path(f"{path}-wal")):
                if p.exists():
                    assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        finally:
            store.close()
    finally:
        os.umask(old)


def test_an_existing_store_keeps_the_permissions_its_owner_chose(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    SQLiteStore(path).close()
    path.chmod(0o640)
    SQLiteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
