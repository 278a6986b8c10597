"""What the server offers the store: its version, pgvector, and how `icontains` folds case."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from azmem.errors import StoreError
from azmem.stores.postgres.connections import Conn, Connections
from azmem.stores.postgres.diagnostics import pgvector_version
from azmem.stores.postgres.errors import Where, vector_missing
from azmem.stores.postgres.filters import CASEFOLD, Folding, lower_folding

__all__ = ["MIN_SERVER_VERSION", "ServerInfo", "ensure_vector", "inspect"]

MIN_SERVER_VERSION = 130000  # gen_random_uuid(), and every supported Azure version


@dataclass
class ServerInfo:
    version: int
    pgvector: tuple[int, ...]
    """The installed pgvector's version, () when the extension is not in the database."""
    fold: Folding


def inspect(conn: Conn, where: Where) -> ServerInfo:
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise StoreError(
            f"{where.server} runs PostgreSQL {version // 10000}; azmem needs 13 or newer",
            error_code="server_too_old",
            suggestion="upgrade the server (Azure Database for PostgreSQL: 13 to 17 all work)",
        )
    fold = CASEFOLD
    if version < 180000:  # no casefold(): lower() under the best Unicode collation there is
        names = {
            r[0]
            for r in conn.execute(
                "SELECT collname FROM pg_collation WHERE collname IN ('pg_c_utf8', 'und-x-icu')"
            )
        }
        fold = lower_folding(next((n for n in ("pg_c_utf8", "und-x-icu") if n in names), None))
    return ServerInfo(version, pgvector_version(conn), fold)


def ensure_vector(conn: Conn, info: ServerInfo, where: Where) -> None:
    """Create the vector extension if the database lacks it (inside the migration's transaction)."""
    if info.pgvector:
        return
    try:
        with conn.transaction():  # a savepoint: the error below explains, the caller rolls back
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise vector_missing(where, exc) from exc
    Connections.register(conn)
    info.pgvector = pgvector_version(conn)
