"""``azmem doctor``'s store checks: can the store be opened, and does it match the embedder.

A SQLite store is checked without being created (its directory must be writable); a
PostgreSQL store is opened read-only and asked what a fix needs to know: the server and
pgvector versions, the indexes, and whether its migrations are current.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from azmem.cli.checks import Check, Report

if TYPE_CHECKING:
    from azmem.azure.settings import AzmemSettings

__all__ = ["check_store"]


def check_store(settings: AzmemSettings, embedder: tuple[str, int] | None, report: Report) -> None:
    from azmem.config import sqlite_path

    path = sqlite_path(settings.store_url)
    if path is not None:
        _check_sqlite(path, embedder, report)
    else:
        _check_postgres(settings, embedder, report)


def _check_postgres(settings: AzmemSettings, embedder: tuple[str, int] | None, report: Report) -> None:
    from azmem.errors import AzmemError
    from azmem.stores.factory import open_store, redact_url

    url = redact_url(settings.store_url)
    try:
        store: Any = open_store(settings.store_url, read_only=True, pool_size=1)
    except AzmemError as exc:
        report.add(Check("store", "fail", f"{url}: {exc.message}", exc.suggestion))
        return
    try:
        info = store.describe()
        recorded = store.embedder
    except AzmemError as exc:
        report.add(Check("store", "fail", f"{url}: {exc.message}", exc.suggestion))
        return
    finally:
        store.close()
    report.add(Check("store", "ok", f"{url}: PostgreSQL {info.get('server_version')}"))
    if not info.get("pgvector_version"):
        report.add(
            Check(
                "pgvector",
                "fail",
                "the vector extension is not installed in this database",
                "Run CREATE EXTENSION vector (on Azure Database for PostgreSQL, first allow it: "
                "server parameter azure.extensions += VECTOR).",
            )
        )
    else:
        report.add(Check("pgvector", "ok", f"version {info['pgvector_version']}"))
    pending = [m for m in info.get("migrations_known", []) if m not in info.get("migrations_applied", [])]
    if pending:
        report.add(
            Check(
                "migrations",
                "warn",
                f"{len(pending)} pending: {', '.join(pending)}",
                "They are applied when azmem next opens the store read-write (any command that writes).",
            )
        )
    else:
        report.add(Check("migrations", "ok", f"current ({len(info.get('migrations_applied', []))} applied)"))
    missing = info.get("indexes_missing", [])
    if missing:
        report.add(
            Check(
                "indexes",
                "warn",
                f"missing: {', '.join(missing)}",
                "Open the store read-write once (the vector index is built when the embedder is bound).",
            )
        )
    elif info.get("indexes"):
        report.add(Check("indexes", "ok", ", ".join(info["indexes"])))
    if embedder is not None and recorded is not None and recorded != embedder:
        report.add(
            Check(
                "embedding dimension",
                "fail",
                f"{url} holds {recorded[0]} vectors ({recorded[1]} dimensions) but the settings embed with "
                f"{embedder[0]} ({embedder[1]} dimensions)",
                "Run `azmem reindex`, or switch the settings back, or use another --store.",
            )
        )


def _recorded_embedder(path: Path) -> tuple[str, int] | None:
    """The (embedder name, dimension) the store's vectors were made with, read without writing."""
    from azmem.stores.sqlite.store import SQLiteStore

    with SQLiteStore(path, read_only=True) as store:
        return store.embedder


def _store_location_problem(path: Path) -> str | None:
    """Why the store file cannot be created or written at ``path``, or None.

    Probed without leaving anything behind: the first existing ancestor must be a
    directory in which a (deleted at once) temporary file can be created, which is what
    creating the missing directories, the database and its -wal/-shm files needs.
    """
    import tempfile

    if path.exists() and not path.is_file():
        return f"{path} exists but is not a file"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so the directory {path.parent} cannot be created"
    try:
        with tempfile.TemporaryFile(dir=ancestor, prefix=".azmem-doctor-"):
            pass
    except OSError as exc:
        return f"cannot create files in {ancestor} ({exc.strerror or exc})"
    return None


def _check_sqlite(path: Path, embedder: tuple[str, int] | None, report: Report) -> None:
    from azmem.errors import AzmemError

    problem = _store_location_problem(path)
    if problem is not None:
        report.add(
            Check(
                "store",
                "fail",
                f"The store {path} cannot be created or written: {problem}.",
                "Point --store, store.url or AZMEM_HOME at a writable directory.",
            )
        )
        return
    if embedder is None:
        report.add(Check("store", "skip", f"{path}: not compared (the embedder is not usable)"))
        return
    name, dimension = embedder
    if not path.exists():
        report.add(
            Check("store", "ok", f"{path} does not exist yet; it will use {name} ({dimension} dimensions)")
        )
        return
    try:
        recorded = _recorded_embedder(path)
    except AzmemError as exc:
        report.add(Check("store", "fail", exc.message, exc.suggestion))
        return
    if recorded is None:
        report.add(
            Check("store", "ok", f"{path} holds no vectors yet; it will use {name} ({dimension} dimensions)")
        )
    elif recorded == (name, dimension):
        report.add(
            Check("embedding dimension", "ok", f"{path} holds {name} vectors ({dimension} dimensions)")
        )
    else:
        old_name, old_dim = recorded
        report.add(
            Check(
                "embedding dimension",
                "fail",
                f"{path} holds {old_name} vectors ({old_dim} dimensions) but the settings embed with "
                f"{name} ({dimension} dimensions)",
                f"Run `azmem reindex` to re-embed the store with {name}, or switch the settings back to "
                f"{old_name}, or use another --store.",
            )
        )
