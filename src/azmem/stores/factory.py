"""One way to open a store: by URL, whatever the backend.

``sqlite:///path.db`` (or a bare path) is the embedded default; ``?mode=ro`` opens it
read-only. ``postgresql://user@host:port/db`` needs ``pip install 'azmem[postgres]'``;
its driver is imported only when such a URL is opened, so the embedded default never
pays for it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azmem.config import sqlite_path
from azmem.errors import ConfigurationError
from azmem.stores.protocol import MemoryStore

__all__ = ["backend_of", "open_store", "redact_url", "sqlite_target"]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def backend_of(url: str) -> str:
    """ "sqlite" or "postgres" for a store URL; ConfigurationError for anything else."""
    if "://" not in url:
        return "sqlite"
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in _POSTGRES_SCHEMES:
        return "postgres"
    raise ConfigurationError(
        f"Unknown store URL scheme {scheme!r}.",
        error_code="unknown_store_scheme",
        suggestion="Use sqlite:///path/to/memory.db or postgresql://user@host:5432/dbname.",
    )


def sqlite_target(url: str) -> tuple[str | Path, bool]:
    """The file a SQLite store URL names (``":memory:"`` kept as such) and whether it says ``?mode=ro``.

    For a URL `backend_of` calls "sqlite". The memories and the graph share the database
    a URL names; reading it here, once, keeps them opening the same file in the same mode.
    """
    query = dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}
    path = sqlite_path(url)
    assert path is not None
    return ":memory:" if str(path) == ":memory:" else path, query.get("mode") == "ro"


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_store(
    url: str | os.PathLike[str],
    *,
    read_only: bool = False,
    pool_size: int | None = None,
    password: Callable[[], str] | None = None,
    **options: Any,
) -> MemoryStore:
    """Open the store a URL names.

    ``read_only`` (or ``?mode=ro`` in a SQLite URL) opens without writing. For
    PostgreSQL, ``pool_size`` bounds this process's connections and ``password`` is
    called for each new connection (a Microsoft Entra ID access token provider).
    """
    text = os.fspath(url)
    if backend_of(text) == "sqlite":
        path, ro = sqlite_target(text)
        from azmem.stores.sqlite import SQLiteStore

        return SQLiteStore(path, read_only=read_only or ro, **options)
    try:
        postgres = importlib.import_module("azmem.stores.postgres")
    except ImportError as exc:
        raise ConfigurationError(
            f"A PostgreSQL store needs the postgres extra ({exc.name or exc} is missing).",
            error_code="missing_extra",
            suggestion="pip install 'azmem[postgres]'",
        ) from None
    store: MemoryStore = postgres.PostgresStore(
        text, read_only=read_only, pool_size=pool_size, password=password, **options
    )
    return store
