"""The store's connections: a psycopg_pool `ConnectionPool`, and how each call gets one.

* **Fresh passwords.** Every new connection (the pool's and the few made directly) goes
  through `StoreConnection.connect`, which calls the `password` callable when one is
  given (a Microsoft Entra ID token provider), so a token is fetched for each new
  connection; connections are retired after `max_lifetime` seconds, before a token
  they were opened with would matter again.
* **Configured.** Autocommit (every transaction is explicit), pgvector's types
  registered, for a read-only store `default_transaction_read_only = on`, and the
  store's `session` settings (HNSW search breadth): set once per connection, not per
  search, which saves a round trip on every search. The store may change them while
  open (the breadth follows the store's size): each connection then catches up, in one
  statement, the next time a call takes it.
* **Typed, fast failure.** A pool hides why it cannot connect: its workers retry in the
  background, with backoff, while callers wait. So every connection attempt records its
  outcome; while the last one failed, a call connects directly instead of waiting, and
  raises at once the precise error (`StoreAuthError`, `StoreUnavailableError` naming
  host and port). When a direct connection succeeds again, the pool (possibly asleep in
  its backoff) is replaced by a new one.
* **Retries.** A read that loses its connection is retried on a fresh one (twice), after
  the pool has dropped its dead idle connections. A write is retried once only when it
  failed before its COMMIT was sent (nothing can have been written); a connection lost
  during COMMIT leaves the outcome unknown, which the error says.
* **Nested reads.** A read made by the thread that is inside a write (`replace_vectors`
  reading `iter_all` for its vectors) runs on the write's connection and transaction,
  as SQLite does, so it needs no second connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any, Self, TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from azmem.errors import InvalidInputError, StoreError
from azmem.stores.postgres.errors import PasswordError, Where, is_disconnect, translate, unavailable

__all__ = ["Conn", "Connections", "check_option", "normalise_url"]

Conn = psycopg.Connection[Any]
T = TypeVar("T")

READ_RETRIES = 2
_SLICE = 0.1  # how often a caller waiting for the pool looks at the last connection attempt


def normalise_url(url: str) -> str:
    """libpq's URL for SQLAlchemy's ``postgresql+psycopg://`` spelling; others unchanged."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.lower() == "postgresql+psycopg" else url


def check_option(value: Any, what: str, *, minimum: float, integer: bool = False) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
        or value < minimum
    ):
        raise InvalidInputError(f"{what} must be a number >= {minimum:g}, got {value!r}")
    return value


class Connections:
    def __init__(
        self,
        conninfo: str,
        where: Where,
        *,
        read_only: bool,
        pool_size: int,
        password: Callable[[], str] | None,
        timeout: float,
        connect_timeout: float,
        max_lifetime: float,
        max_idle: float,
        prepare_threshold: int | None,
    ) -> None:
        self.where = where
        self.read_only = read_only
        self.pool_size = pool_size
        self.timeout = timeout
        self._conninfo = conninfo
        self._password = password
        self._max_lifetime = max_lifetime
        self._max_idle = max_idle
        self._kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": prepare_threshold}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            self._kwargs["connect_timeout"] = max(1, round(connect_timeout))
        self._lock = threading.Lock()
        self._local = threading.local()
        self._failure: BaseException | None = None
        self._closed = False
        self._pool: ConnectionPool[Conn] | None = None
        self._class = self._connection_class()
        self._session: list[tuple[str, str]] = []
        self._session_version = 0

    # -- making connections --------------------------------------------------------------------
    def _connection_class(self) -> type[Conn]:
        owner = self

        class StoreConnection(psycopg.Connection[Any]):
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                try:
                    if owner._password is not None:
                        try:
                            kwargs["password"] = owner._password()
                        except Exception as exc:
                            raise PasswordError(f"the store's password callable failed: {exc}") from exc
                    conn = super().connect(conninfo, **kwargs)
                except BaseException as exc:
                    with owner._lock:
                        owner._failure = exc
                    raise
                with owner._lock:
                    owner._failure = None
                return conn

        return StoreConnection

    @property
    def session(self) -> list[tuple[str, str]]:
        """(name, value) set for the session on every connection (`configure`, `_catch_up`)."""
        return self._session

    @session.setter
    def session(self, settings: list[tuple[str, str]]) -> None:
        if settings != self._session:
            self._session, self._session_version = list(settings), self._session_version + 1

    @staticmethod
    def _set(conn: Conn, settings: list[tuple[str, str]]) -> None:
        if settings:
            conn.execute(
                "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
                [x for pair in settings for x in pair],
            )

    def configure(self, conn: Conn) -> None:
        """Session setup for every new connection (pool's `configure`)."""
        version, settings = self._session_version, list(self._session)
        self._set(conn, settings + ([("default_transaction_read_only", "on")] if self.read_only else []))
        conn.azmem_session = version  # type: ignore[attr-defined]
        self.register(conn)

    def _catch_up(self, conn: Conn) -> None:
        """Bring a connection configured before the last change of `session` up to date; outside
        any transaction, so that a rollback cannot undo it."""
        version = self._session_version
        if getattr(conn, "azmem_session", version) != version:
            self._set(conn, list(self._session))
            conn.azmem_session = version  # type: ignore[attr-defined]

    @staticmethod
    def register(conn: Conn) -> None:
        # No pgvector in the database yet: registered again once it is created.
        with contextlib.suppress(psycopg.ProgrammingError):
            register_vector(conn)

    def direct(self, action: str = "connect") -> Conn:
        """A new configured connection outside the pool; typed errors. The caller closes it."""
        try:
            conn = self._class.connect(self._conninfo, **self._kwargs)
        except (psycopg.Error, PasswordError) as exc:
            raise translate(exc, self.where, action) from exc
        try:
            self.configure(conn)
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc, self.where, action) from exc
        return conn

    def _new_pool(self) -> ConnectionPool[Conn]:
        return ConnectionPool(
            self._conninfo,
            connection_class=self._class,
            kwargs=self._kwargs,
            min_size=1,
            max_size=self.pool_size,
            open=True,
            configure=self.configure,
            name=f"azmem {self.where.server}",
            timeout=self.timeout,
            max_lifetime=self._max_lifetime,
            max_idle=self._max_idle,
        )

    def start(self) -> None:
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = self._new_pool()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def closed_error(self) -> StoreError:
        return StoreError(f"store {self.where.url} is closed", error_code="store_closed")

    # -- getting one for a call ----------------------------------------------------------------
    def _acquire(self, action: str) -> tuple[Conn, ConnectionPool[Conn] | None]:
        deadline = monotonic() + self.timeout
        while True:
            with self._lock:
                if self._closed:
                    raise self.closed_error()
                pool, failing = self._pool, self._failure is not None
            if failing or pool is None:
                return self._direct_then_renew(action, pool), None
            try:
                return pool.getconn(timeout=max(0.01, min(_SLICE, deadline - monotonic()))), pool
            except PoolClosed:
                continue  # replaced by a new pool, or the store was closed: look again
            except PoolTimeout:
                if self._failure is None and monotonic() >= deadline:
                    raise StoreError(
                        f"no connection to {self.where.server} became free within {self.timeout:g}s: "
                        f"all {self.pool_size} of the store's connections are in use",
                        error_code="store_busy",
                        suggestion="raise the store's pool_size, or run fewer calls at once",
                    ) from None

    def _direct_then_renew(self, action: str, pool: ConnectionPool[Conn] | None) -> Conn:
        conn = self.direct(action)  # raises the precise error while the server is unreachable
        retired = None
        with self._lock:
            if self._closed:
                conn.close()
                raise self.closed_error()
            if self._pool is pool and pool is not None:
                # The old pool may sleep in its reconnection backoff for a long while.
                retired, self._pool = pool, self._new_pool()
        if retired is not None:
            threading.Thread(target=retired.close, name="azmem-pool-retire", daemon=True).start()
        return conn

    @staticmethod
    def _release(conn: Conn, pool: ConnectionPool[Conn] | None) -> None:
        if pool is None:
            conn.close()
        else:
            pool.putconn(conn)

    def _purge(self) -> None:
        """Drop the pool's idle connections that died with the server (before a retry)."""
        pool = self._pool
        if pool is not None:
            with contextlib.suppress(psycopg.Error, PoolClosed):
                pool.check()

    def run(
        self,
        action: str,
        fn: Callable[[Conn], T],
        *,
        write: bool = False,
        retry: bool = True,
        snapshot: bool = False,
        atomic: bool = True,
    ) -> T:
        """`fn(conn)` in one transaction, with the retries described in the module docstring;
        `snapshot`: REPEATABLE READ, so that every statement of `fn` sees the same data (sent
        with the BEGIN: no round trip of its own). `atomic=False` (reads only): no transaction,
        each statement commits alone, for a read of one statement (saves BEGIN and COMMIT)."""
        assert atomic or not write
        nested: Conn | None = getattr(self._local, "conn", None)
        if nested is not None:
            return fn(nested)
        attempts = (1 + READ_RETRIES) if not write else (2 if retry else 1)
        for attempt in range(attempts):
            conn, pool = self._acquire(action)
            committing = False
            try:
                self._catch_up(conn)
                if snapshot:
                    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # client side only
                with conn.transaction() if atomic else contextlib.nullcontext():
                    self._local.conn = conn
                    try:
                        result = fn(conn)
                    finally:
                        self._local.conn = None
                    committing = True
                return result
            except (psycopg.Error, PoolClosed) as exc:
                if is_disconnect(exc) or conn.broken:
                    if write and committing:
                        raise unavailable(self.where, action, exc, outcome_unknown=True) from exc
                    if attempt + 1 < attempts:
                        self._purge()
                        continue
                    raise unavailable(self.where, action, exc) from exc
                raise translate(exc, self.where, action) from exc
            finally:
                if snapshot:
                    with contextlib.suppress(psycopg.Error):  # a broken one is discarded anyway
                        conn.isolation_level = None
                self._release(conn, pool)
        raise AssertionError("unreachable")
