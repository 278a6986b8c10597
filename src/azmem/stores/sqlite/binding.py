"""The embedder a SQLite store's vectors belong to: recorded in `meta`, checked on use.

Vectors from two embedders cannot be compared, so the first `open` records the
embedder's name and dimension and later opens with another embedder are refused
(`EmbedderMismatchError`) unless the store is empty; `azmem reindex` is the way across.
"""

from __future__ import annotations

import sqlite3

from azmem.stores.prepare import embedder_mismatch as mismatch

__all__ = ["is_empty", "mismatch", "record", "recorded"]


def recorded(conn: sqlite3.Connection) -> tuple[str, int] | None:
    """(name, dimension) recorded in the store, None when no embedder was ever bound."""
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedder_name', 'dimension')"))
    if "embedder_name" not in rows:
        return None
    return rows["embedder_name"], int(rows["dimension"])


def is_empty(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT NOT EXISTS (SELECT 1 FROM memories)").fetchone()[0])


def record(conn: sqlite3.Connection, embedder_name: str, dimension: int) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("embedder_name", embedder_name), ("dimension", str(dimension))],
    )
