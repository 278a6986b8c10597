"""psycopg (and psycopg_pool) exceptions -> azmem errors, in one place.

Every public method of `PostgresStore` raises only azmem errors: this module decides
which one. The rules:

* The server cannot be reached, refused a new connection (down, restarting, too many
  clients) or dropped ours (killed, admin shutdown, network) ->
  `StoreUnavailableError` (retryable), naming host and port, never the password.
* The server refused the credentials (wrong password, expired Entra ID token, no such
  role, pg_hba) -> `StoreAuthError`.
* Anything else -> `StoreError` with a code and a suggestion where one helps
  (permissions, read-only server, lock/serialisation conflicts, disk full, tables
  changed outside azmem).

`is_disconnect` tells the store whether a failure lost the connection (so a read may
be retried on a fresh one, and a write knows whether its commit outcome is unknown).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from azmem.errors import StoreAuthError, StoreError, StoreUnavailableError
from azmem.stores.factory import redact_url

__all__ = ["PasswordError", "Where", "is_disconnect", "translate", "unavailable", "vector_missing"]

# SQLSTATEs of a lost or refused connection: class 08 (connection exception), admin /
# crash shutdown, "the database system is starting up", too many connections.
_DISCONNECT_STATES = ("57P01", "57P02", "57P03", "53300")
_AUTH_STATES = ("28000", "28P01")
_AUTH_WORDS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "pg_hba.conf",
    "password is required",
    "sasl authentication",
)
_UNAVAILABLE_WORDS = (
    "connection refused",
    "could not connect",
    "connection failed",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "terminating connection",
    "the database system is",
    "no route to host",
    "could not translate host name",
    "network is unreachable",
    "connection is lost",
    "connection is closed",
    "consuming input failed",
    "ssl syscall error",
    "ssl connection has been closed",
    "too many clients",
    "remaining connection slots",
    "server conn crashed",
)


class PasswordError(psycopg.OperationalError):
    """The store's `password` callable (an Entra ID token provider) raised instead of giving one."""


@dataclass(frozen=True)
class Where:
    """Which server and database a store talks to, for messages (never the password)."""

    url: str
    host: str
    port: str
    dbname: str
    user: str

    @classmethod
    def of(cls, conninfo: str) -> Where:
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            params = {}
        host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
        port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
        dbname = str(params.get("dbname") or os.environ.get("PGDATABASE") or "")
        user = str(params.get("user") or os.environ.get("PGUSER") or "")
        if "://" in conninfo:
            url = redact_url(conninfo)
        else:  # a key=value DSN: shown as a URL, without its password
            url = f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"
        return cls(url, host, port, dbname, user)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    # libpq repeats the target: 'connection failed: connection to server at "h", port 5 failed: X'
    for line in lines:
        if line.startswith(("FATAL:", "ERROR:")):
            return line.split(":", 1)[1].strip()
    if "failed:" in first:
        first = first.rsplit("failed:", 1)[1].strip() or first
    return first


def _state(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


def is_disconnect(exc: BaseException) -> bool:
    """Whether `exc` means the connection is gone (or could not be made), not a query error."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or isinstance(
        exc, PasswordError
    ):
        return False
    state = _state(exc)
    if state is None:
        return not _is_auth(exc)
    return state.startswith("08") or state in _DISCONNECT_STATES


def _is_auth(exc: BaseException) -> bool:
    if _state(exc) in _AUTH_STATES:
        return True
    text = str(exc).lower()
    return any(word in text for word in _AUTH_WORDS) or ("role" in text and "does not exist" in text)


def unavailable(
    where: Where, action: str, exc: BaseException | None = None, *, outcome_unknown: bool = False
) -> StoreUnavailableError:
    reason = _first_line(exc) if exc is not None else "no connection"
    if outcome_unknown:
        return StoreUnavailableError(
            f"PostgreSQL server {where.server} went away while committing ({action}): {reason}. "
            "The write may or may not have been committed.",
            details={"server": where.server, "url": where.url, "committed": "unknown"},
            suggestion=f"When the server at {where.server} is back, check with get() or history() "
            "whether the change is there before repeating it.",
        )
    return StoreUnavailableError(
        f"PostgreSQL server {where.server} is unavailable ({action}): {reason}",
        details={"server": where.server, "url": where.url},
        suggestion=f"Check that the server at {where.server} is running and reachable "
        f"(pg_isready -h {where.host} -p {where.port}), then retry.",
    )


def vector_missing(where: Where, exc: BaseException) -> StoreError:
    """pgvector is not installed in the database and this role cannot install it."""
    not_on_server = _state(exc) == "58P01" or "could not open extension control file" in str(exc)
    if not_on_server:
        suggestion = (
            "Install pgvector on the server (https://github.com/pgvector/pgvector), then run "
            "CREATE EXTENSION vector; in the database as a superuser."
        )
    else:
        suggestion = (
            f"Ask an administrator to run CREATE EXTENSION vector; in database {where.dbname!r}. "
            "On Azure Database for PostgreSQL, first allow it: add VECTOR to the server parameter "
            "azure.extensions (allow-list), then run CREATE EXTENSION vector;."
        )
    return StoreError(
        f"the pgvector extension (vector) is not installed in database {where.dbname!r} on "
        f"{where.server}, and user {where.user!r} cannot install it: {_first_line(exc)}",
        error_code="pgvector_missing",
        details={"server": where.server, "url": where.url},
        suggestion=suggestion,
    )


def translate(exc: BaseException, where: Where, action: str) -> StoreError:
    """The azmem error for a psycopg / psycopg_pool exception raised while doing `action`."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, PasswordError):
        return StoreAuthError(
            f"could not get a password for {where.server} ({action}): {exc}",
            details={"server": where.server, "url": where.url},
            suggestion="The password callable (a Microsoft Entra ID token provider) failed: check the "
            "credential it uses (az login, managed identity, service principal) and its access.",
        )
    if _is_auth(exc):
        who = f"user {where.user!r}" if where.user else "the configured user"
        return StoreAuthError(
            f"PostgreSQL server {where.server} refused the credentials of {who} ({action}): "
            f"{_first_line(exc)}",
            details={"server": where.server, "url": where.url},
        )
    state = _state(exc)
    text = str(exc).lower()
    if state == "3D000" or ("database" in text and "does not exist" in text):
        return StoreError(
            f"database {where.dbname!r} does not exist on {where.server}",
            error_code="store_not_found",
            details={"server": where.server, "url": where.url},
            suggestion=f"Create it first (CREATE DATABASE {where.dbname or 'name'};), or fix the store URL.",
        )
    if is_disconnect(exc) or any(word in text for word in _UNAVAILABLE_WORDS):
        return unavailable(where, action, exc)
    message = f"store {where.url}: {action} failed: {_first_line(exc)}"
    if state == "42501":
        return StoreError(
            message,
            error_code="store_permission_denied",
            suggestion=f"Grant user {where.user!r} the privileges azmem needs on its azmem_* tables "
            "(the owner of the database has them), or use that user.",
        )
    if state == "25006":
        return StoreError(
            message,
            error_code="store_read_only",
            suggestion="The server (or this session) is read-only, e.g. a standby replica: "
            "point the store URL at the primary to write.",
        )
    if state in ("40001", "40P01", "55P03"):
        return StoreError(
            message,
            error_code="store_locked",
            suggestion="Another writer held a conflicting lock; retry.",
        )
    if state == "57014":
        return StoreError(
            message,
            error_code="store_timeout",
            suggestion="The statement was cancelled (statement_timeout?); retry, or raise the timeout.",
        )
    if state in ("53100", "53200"):
        return StoreError(
            message, error_code="store_full", suggestion="Free disk space / memory on the server."
        )
    if state in ("42P01", "42703", "42883"):
        return StoreError(
            message,
            error_code="store_corrupt",
            suggestion="The azmem_* tables were changed outside azmem: restore them from a backup "
            "or move them aside (azmem then creates new, empty ones).",
        )
    return StoreError(message, details={"server": where.server, "url": where.url})
