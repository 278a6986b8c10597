"""Audit-trail tests: a store of each backend, and raw access to its tables (for tampering)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from azmem.config import CacheSettings
from azmem.stores import MemoryStore, SQLiteStore
from stores.store_helpers import DIM, EMBEDDER, fake_embed


class Raw:
    """SQL straight on a store's tables, past the store (and its guards): what an attacker does."""

    def __init__(self, backend: str, location: str) -> None:
        self.backend = backend
        self.location = location
        self.audit = "audit" if backend == "sqlite" else "azmem_audit"
        self.chain = "audit_chain" if backend == "sqlite" else "azmem_audit_chain"

    def run(self, *statements: str) -> list[Any]:
        rows: list[Any] = []
        if self.backend == "sqlite":
            with closing(sqlite3.connect(self.location)) as conn, conn:
                for sql in statements:
                    rows = conn.execute(sql).fetchall()
            return rows
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as pg:
            for sql in statements:
                cur = pg.execute(sql)
                rows = cur.fetchall() if cur.description else []
        return rows

    def unguard(self) -> None:
        if self.backend == "sqlite":
            self.run(
                "DROP TRIGGER audit_no_update",
                "DROP TRIGGER audit_no_delete",
                "DROP TRIGGER audit_content_erase_only",
            )
        else:
            self.run("ALTER TABLE azmem_audit DISABLE TRIGGER azmem_audit_guard")


class Stores:
    def __init__(self, backend: str, location: str) -> None:
        self.backend = backend
        self.location = location
        self.raw = Raw(backend, location)
        self.opened: list[MemoryStore] = []

    def __call__(self, dim: int | None = DIM) -> Any:
        store: MemoryStore
        if self.backend == "sqlite":
            store = SQLiteStore(self.location)
        else:
            from azmem.stores.postgres import PostgresStore

            store = PostgresStore(self.location)
        self.opened.append(store)
        if dim is not None:
            store.open(EMBEDDER, dim)
        return store


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    backend = str(request.param)
    location = str(request.getfixturevalue("pg_url")) if backend == "postgres" else str(tmp_path / "m.db")
    made = Stores(backend, location)
    yield made
    for store in made.opened:
        store.close()


class FakeEmbedder:
    """The store tests' bag-of-words vectors as an `Embedder`: no model to load."""

    name = EMBEDDER
    dimension = DIM

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.stack([fake_embed(t) for t in texts]) if texts else np.zeros((0, DIM), dtype=np.float32)


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


# Chat answers are cached only for unsampled calls unless asked (the engine's calls are sampled).
_SAMPLED = {"cache_sampled": True} if "cache_sampled" in CacheSettings.model_fields else {}


def azure_config(emulator: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Chat and embeddings on the emulator, the response cache on, a SQLite store in tmp_path."""
    return {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": "gpt-4o",
        "embedding": "text-embedding-3-small",
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
        "store": {"path": tmp_path / "memory.db"},
        "cache": {"enabled": True, "path": tmp_path / "cache.db", **_SAMPLED},
        **extra,
    }


def facts(*texts: str) -> str:
    """A scripted `memory.extract` reply."""
    return json.dumps({"facts": [{"text": t, "subject": "user"} for t in texts]})


def file_bytes(path: Path) -> bytes:
    """A SQLite file and its WAL, as they are on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
