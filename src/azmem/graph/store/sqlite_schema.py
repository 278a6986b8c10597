"""The graph's SQLite tables, as append-only named migrations of their own.

The graph lives in the memory store's file (one file to back up), in tables prefixed
``graph_`` with their own ``graph_migrations`` ledger, so neither schema's migrations
know about the other's. Never edit or reorder a shipped migration: add one. Each runs
in its own ``BEGIN IMMEDIATE`` transaction and is recorded in it, so two processes
opening a fresh file cannot both apply it.

Times are ISO 8601 UTC text of fixed width (``2024-03-01T00:00:00.000000+00:00``):
they sort and compare as strings. Vectors are float32 blobs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["FTS_TOKENIZE", "MIGRATIONS", "migrate", "pending"]

Migration = Callable[[sqlite3.Connection], None]

FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"

_TABLES = (
    "CREATE TABLE graph_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE graph_groups (group_id TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE graph_episodes (
        rid INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        group_id TEXT NOT NULL,
        name TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('message', 'text', 'json')),
        source_description TEXT NOT NULL,
        content TEXT NOT NULL,
        reference_time TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX graph_episodes_group ON graph_episodes (group_id, reference_time, rid)",
    """CREATE TABLE graph_entities (
        rid INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        group_id TEXT NOT NULL,
        name TEXT NOT NULL,
        summary TEXT NOT NULL,
        labels TEXT NOT NULL CHECK (json_valid(labels)),
        attributes TEXT NOT NULL CHECK (json_valid(attributes)),
        aliases TEXT NOT NULL CHECK (json_valid(aliases)),
        created_at TEXT NOT NULL,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX graph_entities_group ON graph_entities (group_id, created_at)",
    # Normalised names and aliases: exact resolution is an index lookup.
    """CREATE TABLE graph_entity_names (
        group_id TEXT NOT NULL,
        norm TEXT NOT NULL,
        entity_id TEXT NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, norm, entity_id)
    )""",
    "CREATE INDEX graph_entity_names_entity ON graph_entity_names (entity_id)",
    """CREATE TABLE graph_facts (
        rid INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        group_id TEXT NOT NULL,
        source_id TEXT NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
        target_id TEXT NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        fact TEXT NOT NULL,
        attributes TEXT NOT NULL CHECK (json_valid(attributes)),
        valid_at TEXT,
        invalid_at TEXT,
        created_at TEXT NOT NULL,
        expired_at TEXT,
        invalidated_by TEXT,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX graph_facts_group ON graph_facts (group_id, created_at)",
    "CREATE INDEX graph_facts_source ON graph_facts (source_id)",
    "CREATE INDEX graph_facts_target ON graph_facts (target_id)",
    "CREATE INDEX graph_facts_invalidated_by ON graph_facts (invalidated_by)",
    """CREATE TABLE graph_fact_episodes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        fact_id TEXT NOT NULL REFERENCES graph_facts (id) ON DELETE CASCADE,
        episode_id TEXT NOT NULL REFERENCES graph_episodes (id) ON DELETE CASCADE,
        UNIQUE (fact_id, episode_id)
    )""",
    "CREATE INDEX graph_fact_episodes_episode ON graph_fact_episodes (episode_id)",
    """CREATE TABLE graph_mentions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        episode_id TEXT NOT NULL REFERENCES graph_episodes (id) ON DELETE CASCADE,
        entity_id TEXT NOT NULL REFERENCES graph_entities (id) ON DELETE CASCADE,
        UNIQUE (episode_id, entity_id)
    )""",
    "CREATE INDEX graph_mentions_entity ON graph_mentions (entity_id)",
)

# External-content FTS5 tables kept in step by triggers, i.e. inside the writing transaction.
_FTS = (
    f"""CREATE VIRTUAL TABLE graph_facts_fts USING fts5(
        fact, name, content='graph_facts', content_rowid='rid', tokenize='{FTS_TOKENIZE}')""",
    """CREATE TRIGGER graph_facts_ai AFTER INSERT ON graph_facts BEGIN
        INSERT INTO graph_facts_fts (rowid, fact, name) VALUES (new.rid, new.fact, new.name);
    END""",
    """CREATE TRIGGER graph_facts_ad AFTER DELETE ON graph_facts BEGIN
        INSERT INTO graph_facts_fts (graph_facts_fts, rowid, fact, name)
        VALUES ('delete', old.rid, old.fact, old.name);
    END""",
    f"""CREATE VIRTUAL TABLE graph_entities_fts USING fts5(
        name, aliases, summary, content='graph_entities', content_rowid='rid', tokenize='{FTS_TOKENIZE}')""",
    """CREATE TRIGGER graph_entities_ai AFTER INSERT ON graph_entities BEGIN
        INSERT INTO graph_entities_fts (rowid, name, aliases, summary)
        VALUES (new.rid, new.name, new.aliases, new.summary);
    END""",
    """CREATE TRIGGER graph_entities_ad AFTER DELETE ON graph_entities BEGIN
        INSERT INTO graph_entities_fts (graph_entities_fts, rowid, name, aliases, summary)
        VALUES ('delete', old.rid, old.name, old.aliases, old.summary);
    END""",
    """CREATE TRIGGER graph_entities_au AFTER UPDATE OF name, aliases, summary ON graph_entities BEGIN
        INSERT INTO graph_entities_fts (graph_entities_fts, rowid, name, aliases, summary)
        VALUES ('delete', old.rid, old.name, old.aliases, old.summary);
        INSERT INTO graph_entities_fts (rowid, name, aliases, summary)
        VALUES (new.rid, new.name, new.aliases, new.summary);
    END""",
)


def _m001_graph(conn: sqlite3.Connection) -> None:
    # (executescript would COMMIT the migration's transaction, hence one execute each.)
    for statement in (*_TABLES, *_FTS):
        conn.execute(statement)


MIGRATIONS: list[tuple[str, Migration]] = [("graph_001_initial", _m001_graph)]

_LEDGER = "CREATE TABLE IF NOT EXISTS graph_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


def _applied(conn: sqlite3.Connection) -> set[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'graph_migrations'"
    ).fetchone()
    return {r[0] for r in conn.execute("SELECT name FROM graph_migrations")} if exists else set()


def pending(conn: sqlite3.Connection) -> list[str]:
    """Migrations still to apply (none applied). RuntimeError for a graph written by a newer azmem."""
    done = _applied(conn)
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:
        raise RuntimeError(f"graph has migrations this azmem does not know: {', '.join(unknown)}")
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; returns their names."""
    todo = pending(conn)
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name not in todo:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_LEDGER)
            if conn.execute("SELECT 1 FROM graph_migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(conn)
                conn.execute(
                    "INSERT INTO graph_migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat()),
                )
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied
