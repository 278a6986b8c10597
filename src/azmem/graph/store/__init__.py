"""Graph storage: the contract (`GraphStore`) and `open_graph_store(url)`, which picks the backend.

The same store URL as the memories (``AZMEM_STORE``, ``--store``): the graph's tables
live in the same SQLite file or PostgreSQL database. The PostgreSQL driver is imported
only when such a URL is opened.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from azmem.errors import ConfigurationError
from azmem.graph.store.protocol import Dump, GraphStore
from azmem.stores.factory import backend_of, sqlite_target

__all__ = ["Dump", "GraphStore", "open_graph_store"]


def open_graph_store(
    url: str | os.PathLike[str],
    *,
    read_only: bool = False,
    pool_size: int | None = None,
    password: Callable[[], str] | None = None,
) -> GraphStore:
    text = os.fspath(url)
    if backend_of(text) == "sqlite":
        path, ro = sqlite_target(text)
        from azmem.graph.store.sqlite import SQLiteGraphStore

        return SQLiteGraphStore(path, read_only=read_only or ro)
    try:
        module = importlib.import_module("azmem.graph.store.postgres")
    except ImportError as exc:
        raise ConfigurationError(
            f"A PostgreSQL graph needs the postgres extra ({exc.name or exc} is missing).",
            error_code="missing_extra",
            suggestion="pip install 'azmem[postgres]'",
        ) from None
    store: GraphStore = module.PostgresGraphStore(
        text, read_only=read_only, pool_size=pool_size, password=password
    )
    return store
