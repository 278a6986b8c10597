"""The API keys' rows in a PostgreSQL store (table ``azmem_api_keys``).

The table is created on the first write that needs it (``CREATE TABLE IF NOT EXISTS``
under the schema's advisory lock, so two processes creating their first key at once
do not race), not by a store migration: a database that never had a key holds no key
table, and a read of one that has none finds no keys. Reads therefore work on a
read-only connection (a replica) too.

`PostgresKeyTable` runs its statements through a *runner*, ``run(action, fn, write=)``
that calls ``fn(conn)`` inside one transaction and raises azmem's errors: the store's
own connection pool (``Connections.run``), or, standalone, `PostgresKeyTable.from_url`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import psycopg

from azmem.errors import InvalidInputError
from azmem.stores.keys import ApiKey, KeyRow
from azmem.stores.postgres.errors import PasswordError, Where, translate
from azmem.stores.postgres.schema import LOCK_KEY

__all__ = ["PostgresKeyTable", "Runner"]

Conn = psycopg.Connection[Any]
T = TypeVar("T")

_COLUMNS = "id, name, key_hash, user_ids, agent_ids, run_ids, read_only, rate_limit, created_at, revoked_at"
_CREATE = (
    """CREATE TABLE IF NOT EXISTS azmem_api_keys (
        id text PRIMARY KEY,
        name text NOT NULL,
        key_hash text NOT NULL,
        user_ids text[] NOT NULL DEFAULT '{}',
        agent_ids text[] NOT NULL DEFAULT '{}',
        run_ids text[] NOT NULL DEFAULT '{}',
        read_only boolean NOT NULL DEFAULT false,
        rate_limit integer,
        created_at timestamptz NOT NULL,
        revoked_at timestamptz
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS azmem_api_keys_active_name ON azmem_api_keys (name) "
    "WHERE revoked_at IS NULL",
)


class Runner(Protocol):
    """Calls ``fn(conn)`` in one transaction; raises azmem errors (`Connections.run` is one)."""

    def __call__(self, action: str, fn: Callable[[Conn], T], *, write: bool = False) -> T: ...


def _row(values: tuple[Any, ...] | list[Any]) -> KeyRow:
    return KeyRow(
        key=ApiKey(
            id=values[0],
            name=values[1],
            user_ids=tuple(values[3]),
            agent_ids=tuple(values[4]),
            run_ids=tuple(values[5]),
            read_only=bool(values[6]),
            rate_limit=values[7],
            created_at=values[8],
            revoked_at=values[9],
        ),
        key_hash=values[2],
    )


def _has_table(conn: Conn) -> bool:
    found = conn.execute("SELECT to_regclass('azmem_api_keys') IS NOT NULL").fetchone()
    return bool(found and found[0])


def _ensure_table(conn: Conn) -> None:
    if _has_table(conn):
        return
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
    for statement in _CREATE:
        conn.execute(statement)


class PostgresKeyTable:
    """`KeyTable` on a PostgreSQL database, through a `Runner`."""

    def __init__(self, run: Runner, *, on_close: Callable[[], None] | None = None) -> None:
        self._run = run
        self.close = on_close or (lambda: None)
        """Releases the connection of a table made by `from_url` (nothing for a store's runner)."""

    @classmethod
    def from_url(
        cls, url: str, *, password: Callable[[], str] | None = None, connect_timeout: float = 10.0
    ) -> PostgresKeyTable:
        """A table on its own connection (for ``azmem keys`` and the server's key checks)."""
        runner = _UrlRunner(url, password=password, connect_timeout=connect_timeout)
        return cls(runner, on_close=runner.close)

    def insert(self, row: KeyRow) -> None:
        key = row.key

        def insert(conn: Conn) -> None:
            _ensure_table(conn)
            taken = conn.execute(
                "SELECT 1 FROM azmem_api_keys WHERE name = %s AND revoked_at IS NULL", [key.name]
            ).fetchone()
            if taken:
                raise InvalidInputError(
                    f"An active API key is already named {key.name!r}.",
                    error_code="key_exists",
                    suggestion=f"Choose another name, or `azmem keys revoke {key.name}` first.",
                )
            conn.execute(
                f"INSERT INTO azmem_api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)",
                [
                    key.id,
                    key.name,
                    row.key_hash,
                    list(key.user_ids),
                    list(key.agent_ids),
                    list(key.run_ids),
                    key.read_only,
                    key.rate_limit,
                    key.created_at,
                ],
            )

        self._run("create an API key", insert, write=True)

    def by_id(self, key_id: str) -> KeyRow | None:
        def read(conn: Conn) -> KeyRow | None:
            if not _has_table(conn):
                return None
            found = conn.execute(f"SELECT {_COLUMNS} FROM azmem_api_keys WHERE id = %s", [key_id]).fetchone()
            return None if found is None else _row(found)

        return self._run("check an API key", read)

    def all(self) -> builtins.list[ApiKey]:
        def read(conn: Conn) -> builtins.list[ApiKey]:
            if not _has_table(conn):
                return []
            rows = conn.execute(f"SELECT {_COLUMNS} FROM azmem_api_keys ORDER BY created_at, id").fetchall()
            return [_row(r).key for r in rows]

        return self._run("list API keys", read)

    def revoke(self, name: str, when: datetime) -> ApiKey | None:
        def revoke(conn: Conn) -> ApiKey | None:
            if not _has_table(conn):
                return None
            found = conn.execute(
                f"UPDATE azmem_api_keys SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL "
                f"RETURNING {_COLUMNS}",
                [when, name],
            ).fetchone()
            return None if found is None else _row(found).key

        return self._run("revoke an API key", revoke, write=True)


class _UrlRunner:
    """One connection, used under a lock and reopened after a failure: key checks are short and rare
    (the server caches verified keys), so a pool would only hold idle connections."""

    def __init__(self, url: str, *, password: Callable[[], str] | None, connect_timeout: float) -> None:
        self._url = url
        self._where = Where.of(url)
        self._password = password
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Conn | None = None

    def _connect(self) -> Conn:
        if self._conn is None or self._conn.closed:
            kwargs: dict[str, Any] = {
                "autocommit": True,
                "connect_timeout": max(1, round(self._connect_timeout)),
            }
            if self._password is not None:
                try:
                    kwargs["password"] = self._password()  # an Entra ID token, fresh per connection
                except Exception as exc:
                    raise PasswordError(str(exc)) from exc
            self._conn = psycopg.connect(self._url, **kwargs)
        return self._conn

    def __call__(self, action: str, fn: Callable[[Conn], T], *, write: bool = False) -> T:
        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction():
                    return fn(conn)
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._drop()
                raise translate(exc, self._where, action) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
