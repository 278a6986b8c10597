"""The API keys' rows in a SQLite store (table ``api_keys``, migration 003).

The table lives in the store's own file, so a store and the keys that reach it are
backed up, copied and deleted together. Reads and writes go through the store's own
transactions (its lock and ``BEGIN IMMEDIATE``), passed in as callables so this module
does not import the store class.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from azmem.errors import InvalidInputError
from azmem.stores.filters import format_time
from azmem.stores.keys import ApiKey, KeyRow

__all__ = ["SQLiteKeyTable"]

Transaction = Callable[[str], AbstractContextManager[sqlite3.Connection]]

_COLUMNS = "id, name, key_hash, user_ids, agent_ids, run_ids, read_only, rate_limit, created_at, revoked_at"


def _row(values: tuple[Any, ...]) -> KeyRow:
    return KeyRow(
        key=ApiKey(
            id=values[0],
            name=values[1],
            user_ids=tuple(json.loads(values[3])),
            agent_ids=tuple(json.loads(values[4])),
            run_ids=tuple(json.loads(values[5])),
            read_only=bool(values[6]),
            rate_limit=values[7],
            created_at=datetime.fromisoformat(values[8]),
            revoked_at=None if values[9] is None else datetime.fromisoformat(values[9]),
        ),
        key_hash=values[2],
    )


def _has_table(conn: sqlite3.Connection) -> bool:
    """False only in a store opened read-only before it was migrated (see _schema.READ_OPTIONAL)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_keys'").fetchone()
    return found is not None


class SQLiteKeyTable:
    """`KeyTable` on a `SQLiteStore`: ``read`` / ``write`` are its transaction context managers."""

    def __init__(self, read: Transaction, write: Transaction) -> None:
        self._read = read
        self._write = write

    def insert(self, row: KeyRow) -> None:
        key = row.key
        with self._write("create an API key") as conn:
            taken = conn.execute(
                "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (key.name,)
            ).fetchone()
            if taken:
                raise InvalidInputError(
                    f"An active API key is already named {key.name!r}.",
                    error_code="key_exists",
                    suggestion=f"Choose another name, or `azmem keys revoke {key.name}` first.",
                )
            conn.execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key.id,
                    key.name,
                    row.key_hash,
                    json.dumps(list(key.user_ids)),
                    json.dumps(list(key.agent_ids)),
                    json.dumps(list(key.run_ids)),
                    int(key.read_only),
                    key.rate_limit,
                    format_time(key.created_at),
                ),
            )

    def by_id(self, key_id: str) -> KeyRow | None:
        with self._read("check an API key") as conn:
            if not _has_table(conn):
                return None
            found = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if found is None else _row(found)

    def all(self) -> builtins.list[ApiKey]:
        with self._read("list API keys") as conn:
            if not _has_table(conn):
                return []
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
        return [_row(r).key for r in rows]

    def revoke(self, name: str, when: datetime) -> ApiKey | None:
        with self._write("revoke an API key") as conn:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if found is None:
                return None
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (format_time(when), found[0]))
        return _row(found).key.model_copy(update={"revoked_at": when})
