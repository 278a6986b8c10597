"""One store fixture for both backends: the contract tests run on SQLite and on PostgreSQL.

`backend` is parameterised ("sqlite", "postgres"); `make_store(dim=..., **options)` opens
a new store object on this test's store (a fresh SQLite file, or a fresh database of the
session's PostgreSQL server from the `pg_url` fixture), bound to the fake embedder unless
`dim=None`; every object it made is closed after the test. `store` is one such object.
`module_make_store` is the same for a whole module (one file / database shared by its
tests). Without the PostgreSQL test extra the postgres half is skipped (see `pg_server`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azmem.stores import MemoryStore, SQLiteStore

from .store_helpers import DIM, EMBEDDER, remember_location

BACKENDS = ["sqlite", "postgres"]


class StoreFactory:
    """Opens store objects on one store location (a SQLite path or a PostgreSQL URL)."""

    def __init__(self, backend: str, location: str) -> None:
        self.backend = backend
        self.location = location
        self.stores: list[MemoryStore] = []

    def __call__(self, dim: int | None = DIM, embedder: str = EMBEDDER, **options: Any) -> Any:
        store: MemoryStore
        if self.backend == "sqlite":
            store = SQLiteStore(self.location, **options)
        else:
            from azmem.stores.postgres import PostgresStore

            store = PostgresStore(self.location, **options)
        remember_location(store, self.location)
        self.stores.append(store)
        if dim is not None:
            store.open(embedder, dim)
        return store

    def close_all(self) -> None:
        for store in self.stores:
            store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    location = str(request.getfixturevalue("pg_url")) if backend == "postgres" else str(tmp_path / "m.db")
    factory = StoreFactory(backend, location)
    yield factory
    factory.close_all()


@pytest.fixture
def store(make_store: StoreFactory) -> Any:
    return make_store()


@pytest.fixture(scope="module", params=BACKENDS)
def module_make_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    backend = str(request.param)
    name = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:30]
    if backend == "sqlite":
        factory = StoreFactory(backend, str(tmp_path_factory.mktemp(name) / "m.db"))
        yield factory
        factory.close_all()
        return
    server = request.getfixturevalue("pg_server")
    dbname = f"m_{name}_{uuid.uuid4().hex[:8]}"
    factory = StoreFactory(backend, server.create_database(dbname))
    try:
        yield factory
    finally:
        factory.close_all()
        if not server.running:
            server.restart()
        server.drop_database(dbname)
