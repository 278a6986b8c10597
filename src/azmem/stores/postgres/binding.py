"""The embedder a PostgreSQL store's vectors belong to: recorded in `azmem_meta`, checked on use.

`azmem_meta` holds `embedder_name` and `dimension`. Every write reads them `FOR SHARE`;
a (re)binding or a reindex takes the table in `EXCLUSIVE` mode, so it waits for the
writes in flight and the next ones wait for it: no write ever mixes two embedders. A
store of vectors made by another embedder raises `EmbedderMismatchError`.
"""

from __future__ import annotations

from collections.abc import Callable

from azmem.stores.postgres import schema
from azmem.stores.postgres.connections import Conn
from azmem.stores.prepare import embedder_mismatch as mismatch

__all__ = ["bind", "checker", "is_empty", "mismatch", "record", "recorded"]


def recorded(conn: Conn, *, lock: bool = False) -> tuple[str, int] | None:
    """(name, dimension) recorded in the store, None when no embedder was ever bound."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM azmem_meta WHERE key IN ('embedder_name', 'dimension')"
            + (" FOR SHARE" if lock else "")
        ).fetchall()
    )
    if "embedder_name" not in rows:
        return None
    return rows["embedder_name"], int(rows["dimension"])


def record(conn: Conn, embedder: tuple[str, int]) -> None:
    conn.execute(
        "INSERT INTO azmem_meta (key, value) VALUES ('embedder_name', %s), ('dimension', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [embedder[0], str(embedder[1])],
    )


def is_empty(conn: Conn) -> bool:
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM azmem_memories)").fetchone()
    return bool(row and row[0])


def bind(conn: Conn, url: str, wanted: tuple[str, int], pgvector: tuple[int, ...]) -> None:
    """Record `wanted` (an empty store adopts any embedder; a full one only its own), making
    the embedding column `vector(dimension)` with its HNSW index."""
    conn.execute("LOCK TABLE azmem_meta IN EXCLUSIVE MODE")
    current = recorded(conn)
    if current == wanted:
        return
    if current is not None and not is_empty(conn):
        raise mismatch(url, current, wanted)
    schema.bind_vectors(conn, wanted[1], schema.vector_index(wanted[1], pgvector))
    record(conn, wanted)


def checker(url: str, mine: Callable[[], tuple[str, int]]) -> Callable[[tuple[str, int] | None], bool]:
    """For a search, given the embedder it finds recorded: raise if another process reindexed
    since our open() (not `mine()`), False when none is recorded (no vector to compare)."""

    def check(stored: tuple[str, int] | None) -> bool:
        if stored is None:
            return False
        wanted = mine()
        if stored != wanted:
            raise mismatch(url, stored, wanted)
        return True

    return check
