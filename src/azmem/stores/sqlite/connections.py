"""Opening a SQLite store's file, and turning SQLite's errors into `StoreError`s.

A store is opened read-write (created owner-only, migrated, WAL) or read-only (never
writing a byte, so a backup or a snapshot in a read-only directory can be searched).
Every SQLite error leaves the store as a `StoreError` with a code and a way out, so
callers never see `sqlite3` exceptions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from azmem.config import create_private_file
from azmem.errors import SchemaVersionError, StoreError
from azmem.stores.sqlite._schema import READ_OPTIONAL, migrate, pending
from azmem.stores.sqlite.filters import register_sql_functions

__all__ = ["RECOVER", "connect", "translate"]

RECOVER = (
    "move the file aside (azmem then starts a new, empty store there) or restore it from a backup; "
    "`sqlite3 FILE 'PRAGMA integrity_check'` shows what is damaged"
)


def connect(path: str, busy_timeout: float, *, read_only: bool) -> sqlite3.Connection:
    """A migrated connection, or a clear `StoreError` when the file is not (or not yet) ours."""
    if read_only:
        return _connect_read_only(path, busy_timeout)
    if path != ":memory:":
        target = Path(path)
        if target.is_dir():
            raise StoreError(f"store path {path} is a directory", suggestion="point the store at a file path")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            create_private_file(target)  # memories are personal data: owner-only, like the cache
        except OSError as exc:
            raise StoreError(f"cannot create the directory for store {path}: {exc}") from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        register_sql_functions(conn)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "_migrations" not in tables:
            raise StoreError(
                f"{path} is an SQLite database but not an azmem store "
                f"(it has tables {', '.join(sorted(tables)[:5])})",
                suggestion="choose another store path; azmem will not write into someone else's database",
            )
        migrate(conn)
    except StoreError:
        if conn is not None:
            conn.close()
        raise
    except RuntimeError as exc:  # a newer schema
        if conn is not None:
            conn.close()
        raise SchemaVersionError(f"{path} was written by a newer azmem: {exc}") from exc
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise translate(exc, path, busy_timeout, "open") from exc
    return conn


def _connect_read_only(path: str, busy_timeout: float) -> sqlite3.Connection:
    """`mode=ro` where SQLite can still share the WAL index; `immutable=1` where it cannot.

    A WAL database opened read-only needs its -shm file, which SQLite cannot create in
    a read-only directory; `immutable=1` then reads the file as it is, without locks
    (right for a backup or snapshot, which nobody writes).
    """
    target = Path(path)
    if not target.is_file():
        raise StoreError(
            f"store {path} does not exist (opened read-only, so it is not created)",
            suggestion="check the path; open it read-write once to create an empty store",
        )
    uri = target.resolve().as_uri()
    last: sqlite3.Error | None = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                f"{uri}?{flags}",
                uri=True,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            register_sql_functions(conn)
            todo = [name for name in pending(conn) if name not in READ_OPTIONAL]
        except RuntimeError as exc:
            if conn is not None:
                conn.close()
            raise SchemaVersionError(f"{path} was written by a newer azmem: {exc}") from exc
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            last = exc
            continue
        if todo:
            conn.close()
            raise StoreError(
                f"store {path} needs schema migrations ({', '.join(todo)}) that a read-only "
                "open cannot apply",
                error_code="store_needs_migration",
                suggestion="open it once read-write with this azmem version (or search a newer copy)",
            )
        return conn
    assert last is not None
    raise translate(last, path, busy_timeout, "open read-only") from last


def translate(exc: sqlite3.Error, path: str, busy_timeout: float, action: str) -> StoreError:
    """Locked, unopenable and damaged files each get their own code and remedy."""
    msg = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
        return StoreError(
            f"store {path} stayed locked by another writer for {busy_timeout:g}s ({action})",
            error_code="store_locked",
            suggestion="retry; if it persists, look for a hung process holding the file",
        )
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in msg:
        return StoreError(
            f"cannot open store file {path}: {msg}",
            suggestion="check that the directory exists and is writable",
        )
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return StoreError(
            f"store file {path} is not a valid azmem store or is damaged: {msg}",
            error_code="store_corrupt",
            suggestion=RECOVER,
        )
    return StoreError(f"store {path}: {action} failed: {msg}", suggestion=RECOVER)
