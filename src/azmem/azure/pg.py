"""One PostgreSQL connection for the client layer's shared state (the limiter's ledger, the cache).

Small by design: these tables see short transactions, so one connection per object,
used under a lock, is enough, and a lost server shows up as azmem's typed error (the
connection is dropped, and the next call reconnects). Needs ``pip install 'azmem[postgres]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from azmem.errors import StoreAuthError, StoreError, StoreUnavailableError

__all__ = ["PgSession"]


class PgSession:
    def __init__(
        self,
        url: str,
        *,
        what: str,
        password: Callable[[], str] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.what = what
        """Named in errors: "the limiter's database", "the cache's database"."""
        self._password = password
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            kwargs: dict[str, Any] = {"connect_timeout": max(1, int(self._connect_timeout))}
            if self._password is not None:
                kwargs["password"] = self._password()  # an Entra ID token, fresh per connection
            self._conn = psycopg.connect(self.url, **kwargs)
        return self._conn

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """A cursor inside one transaction, committed when the block ends without an error."""
        import psycopg

        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    yield conn.cursor()
            except psycopg.Error as exc:
                self._drop()
                raise self._translate(exc) from exc

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        finally:
            self._conn = None

    def _translate(self, exc: Exception) -> StoreError:
        import psycopg

        parts = urlsplit(self.url)
        where = f"{self.what} at {parts.hostname}:{parts.port or 5432}"
        text = str(exc).lower()
        if isinstance(exc, psycopg.OperationalError) and "password authentication failed" in text:
            return StoreAuthError(f"{where} refused the credentials")
        if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown):
            return StoreUnavailableError(f"{where} is unreachable: {type(exc).__name__}")
        return StoreError(f"{where} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        with self._lock:
            self._drop()
