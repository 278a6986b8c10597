"""The graph's PostgreSQL tables, as append-only named migrations of their own.

Beside the memory store's tables in the same database, prefixed ``azmem_graph_``, with
their own ledger (``azmem_graph_migrations``) and advisory lock, so neither schema's
migrations know about the other's. All pending migrations apply in one transaction
under ``pg_advisory_xact_lock``: two processes opening a fresh database queue, and the
second finds nothing to do.

Vectors are pgvector ``vector`` columns without a fixed dimension (the graph checks
it against its bound embedder); their HNSW indexes (cosine) are on the cast to the
bound dimension, made when a graph is bound (`postgres_vectors.ensure_indexes`) and,
for graphs bound before they existed, by migration 002. Words are ``tsvector`` columns
(``english``), written with each row, behind GIN indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

__all__ = ["LOCK_KEY", "MIGRATIONS", "SchemaTooNew", "migrate", "pending"]

Conn = psycopg.Connection[Any]

#: pg_advisory_xact_lock key for the graph's schema changes ("azgraph" in ASCII).
LOCK_KEY = 0x617A6772617068

TEXT_CONFIG = "english"


class SchemaTooNew(RuntimeError):
    """The database holds graph migrations this azmem does not know."""


_ID = 'text COLLATE "C" NOT NULL'

_STATEMENTS = (
    "CREATE TABLE azmem_graph_meta (key text PRIMARY KEY, value text NOT NULL)",
    f"CREATE TABLE azmem_graph_groups (group_id {_ID} PRIMARY KEY, version bigint NOT NULL)",
    f"""CREATE TABLE azmem_graph_episodes (
        rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id {_ID} UNIQUE,
        group_id {_ID},
        name text NOT NULL,
        source text NOT NULL CHECK (source IN ('message', 'text', 'json')),
        source_description text NOT NULL,
        content text NOT NULL,
        reference_time timestamptz NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX azmem_graph_episodes_group ON azmem_graph_episodes (group_id, reference_time, rid)",
    f"""CREATE TABLE azmem_graph_entities (
        rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id {_ID} UNIQUE,
        group_id {_ID},
        name text NOT NULL,
        summary text NOT NULL,
        labels text[] NOT NULL,
        attributes jsonb NOT NULL,
        aliases text[] NOT NULL,
        created_at timestamptz NOT NULL,
        embedding vector NOT NULL,
        lexemes tsvector NOT NULL
    )""",
    "CREATE INDEX azmem_graph_entities_group ON azmem_graph_entities (group_id, created_at)",
    "CREATE INDEX azmem_graph_entities_lexemes ON azmem_graph_entities USING gin (lexemes)",
    f"""CREATE TABLE azmem_graph_entity_names (
        group_id {_ID},
        norm {_ID},
        entity_id {_ID} REFERENCES azmem_graph_entities (id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, norm, entity_id)
    )""",
    "CREATE INDEX azmem_graph_entity_names_entity ON azmem_graph_entity_names (entity_id)",
    f"""CREATE TABLE azmem_graph_facts (
        rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id {_ID} UNIQUE,
        group_id {_ID},
        source_id {_ID} REFERENCES azmem_graph_entities (id) ON DELETE CASCADE,
        target_id {_ID} REFERENCES azmem_graph_entities (id) ON DELETE CASCADE,
        name text NOT NULL,
        fact text NOT NULL,
        attributes jsonb NOT NULL,
        valid_at timestamptz,
        invalid_at timestamptz,
        created_at timestamptz NOT NULL,
        expired_at timestamptz,
        invalidated_by text COLLATE "C",
        embedding vector NOT NULL,
        lexemes tsvector NOT NULL
    )""",
    "CREATE INDEX azmem_graph_facts_group ON azmem_graph_facts (group_id, created_at)",
    "CREATE INDEX azmem_graph_facts_source ON azmem_graph_facts (source_id)",
    "CREATE INDEX azmem_graph_facts_target ON azmem_graph_facts (target_id)",
    "CREATE INDEX azmem_graph_facts_invalidated_by ON azmem_graph_facts (invalidated_by)",
    "CREATE INDEX azmem_graph_facts_lexemes ON azmem_graph_facts USING gin (lexemes)",
    f"""CREATE TABLE azmem_graph_fact_episodes (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        fact_id {_ID} REFERENCES azmem_graph_facts (id) ON DELETE CASCADE,
        episode_id {_ID} REFERENCES azmem_graph_episodes (id) ON DELETE CASCADE,
        UNIQUE (fact_id, episode_id)
    )""",
    "CREATE INDEX azmem_graph_fact_episodes_episode ON azmem_graph_fact_episodes (episode_id)",
    f"""CREATE TABLE azmem_graph_mentions (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        episode_id {_ID} REFERENCES azmem_graph_episodes (id) ON DELETE CASCADE,
        entity_id {_ID} REFERENCES azmem_graph_entities (id) ON DELETE CASCADE,
        UNIQUE (episode_id, entity_id)
    )""",
    "CREATE INDEX azmem_graph_mentions_entity ON azmem_graph_mentions (entity_id)",
)


def _m001_graph(conn: Conn) -> None:
    for statement in _STATEMENTS:
        conn.execute(statement)


def _m002_vector_indexes(conn: Conn) -> None:
    from azmem.graph.store.postgres_vectors import ensure_indexes

    row = conn.execute("SELECT value FROM azmem_graph_meta WHERE key = 'dimension'").fetchone()
    if row is not None:  # else the first `open` binds a dimension and makes them
        ensure_indexes(conn, int(row[0]))


MIGRATIONS: list[tuple[str, Callable[[Conn], None]]] = [
    ("graph_001_initial", _m001_graph),
    ("graph_002_vector_indexes", _m002_vector_indexes),
]


def _applied(conn: Conn) -> set[str]:
    row = conn.execute("SELECT to_regclass('azmem_graph_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return set()
    return {r[0] for r in conn.execute("SELECT name FROM azmem_graph_migrations")}


def pending(conn: Conn) -> list[str]:
    done = _applied(conn)
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:
        raise SchemaTooNew(
            f"the database has graph migrations this azmem does not know: {', '.join(unknown)}"
        )
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(conn: Conn, ensure_vector: Callable[[Conn], None]) -> list[str]:
    """Apply the pending migrations in one transaction (``conn`` is in autocommit mode)."""
    if not pending(conn):
        return []
    done: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS azmem_graph_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL)"
        )
        todo = set(pending(conn))
        ensure_vector(conn)
        for name, fn in MIGRATIONS:
            if name in todo:
                fn(conn)
                conn.execute(
                    "INSERT INTO azmem_graph_migrations (name, applied_at) VALUES (%s, %s)",
                    [name, datetime.now(UTC)],
                )
                done.append(name)
    return done
