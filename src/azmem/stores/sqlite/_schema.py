"""SQLite schema as append-only, named migrations (the simonw/llm pattern).

Never edit or reorder a migration that has shipped: add a new one. Each migration
runs in its own `BEGIN IMMEDIATE` transaction and is recorded in `_migrations` in
that same transaction, so two processes opening a fresh file at once cannot both
apply it, and a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from azmem.stores.sqlite.audit import create_tables as create_audit_tables

Migration = Callable[[sqlite3.Connection], None]

#: The FTS5 tokenizer of `memories_fts` (also used by the in-memory BM25 mirror to tokenize
#: query words and changed rows exactly as FTS5 does). Changing it needs a migration.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"


_TRIGGERS = (
    """CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, memory) VALUES (new.rid, new.memory);
        INSERT INTO changes (rid) VALUES (new.rid);
    END""",
    """CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, memory) VALUES ('delete', old.rid, old.memory);
        INSERT INTO changes (rid) VALUES (old.rid);
    END""",
    """CREATE TRIGGER memories_au_text AFTER UPDATE OF memory ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, memory) VALUES ('delete', old.rid, old.memory);
        INSERT INTO memories_fts (rowid, memory) VALUES (new.rid, new.memory);
    END""",
    """CREATE TRIGGER memories_au_vector AFTER UPDATE OF vector ON memories BEGIN
        INSERT INTO changes (rid) VALUES (new.rid);
    END""",
)


def _m001_initial(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # rid is AUTOINCREMENT so a deleted memory's rowid is never reused: the in-memory
    # vector index and the change log identify rows by it.
    conn.execute(
        """
        CREATE TABLE memories (
            rid INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            memory TEXT NOT NULL,
            hash TEXT NOT NULL,
            user_id TEXT,
            agent_id TEXT,
            run_id TEXT,
            actor_id TEXT,
            role TEXT,
            metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """
    )
    for name, cols in (
        ("memories_user", "user_id, created_at"),
        ("memories_agent", "agent_id, created_at"),
        ("memories_run", "run_id, created_at"),
        ("memories_created", "created_at, rid"),
        ("memories_hash", "hash"),
    ):
        conn.execute(f"CREATE INDEX {name} ON memories ({cols})")
    # No foreign key to memories: history outlives a deleted memory.
    conn.execute(
        """
        CREATE TABLE history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            memory_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
            old_memory TEXT,
            new_memory TEXT,
            created_at TEXT NOT NULL,
            actor_id TEXT,
            role TEXT,
            metadata TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX history_memory ON history (memory_id, seq)")
    # External-content FTS5 kept in step by triggers, i.e. inside the writing transaction.
    conn.execute(
        f"""
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            memory, content='memories', content_rowid='rid',
            tokenize='{FTS_TOKENIZE}'
        )
        """
    )
    # The change log lets every process refresh its in-memory vector index
    # incrementally after anyone's write (its own included).
    conn.execute("CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, rid INTEGER NOT NULL)")
    # (executescript would COMMIT the migration's transaction, hence one execute each.)
    for trigger in _TRIGGERS:
        conn.execute(trigger)
    conn.execute("INSERT INTO meta (key, value) VALUES ('pruned_through', '0')")


def _m002_log_text_changes(conn: sqlite3.Connection) -> None:
    # The in-memory BM25 mirror (stores/_lexical.py) follows the change log. A text update
    # through the store always carries a new vector (logged by memories_au_vector), but the
    # mirror must not depend on that rule: log every text change too.
    conn.execute(
        """CREATE TRIGGER memories_au_text_log AFTER UPDATE OF memory ON memories BEGIN
            INSERT INTO changes (rid) VALUES (new.rid);
        END"""
    )


def _m003_api_keys(conn: sqlite3.Connection) -> None:
    # The server's API keys (stores/keys.py): the hash of each key, never the key. Revoked
    # rows are kept (who had access, until when); a name is unique among active keys only,
    # so a revoked key's name can be given to its replacement.
    conn.execute(
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            user_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(user_ids)),
            agent_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(agent_ids)),
            run_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(run_ids)),
            read_only INTEGER NOT NULL DEFAULT 0,
            rate_limit INTEGER,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )
        """
    )
    conn.execute("CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL")


def _m004_audit(conn: sqlite3.Connection) -> None:
    # The audit trail (hash chain, head and anchor) and the owners of every memory ever
    # written, which `forget` needs to find history rows: stores/sqlite/audit.py.
    create_audit_tables(conn)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_log_text_changes", _m002_log_text_changes),
    ("003_api_keys", _m003_api_keys),
    ("004_audit", _m004_audit),
]

#: Migrations a read-only open may find missing and still read the store: they add tables
#: that memories, search and history never read (a backup made before azmem had API keys
#: or an audit trail stays searchable; its key table and audit trail are simply empty).
READ_OPTIONAL: frozenset[str] = frozenset({"003_api_keys", "004_audit"})


def pending(conn: sqlite3.Connection) -> list[str]:
    """Migrations a store still needs, without applying any (for a read-only open).

    Raises RuntimeError for a store with migrations this code does not know (a newer azmem).
    """
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")} if has_table else set()
    unknown = sorted(applied - {name for name, _ in MIGRATIONS})
    if unknown:
        raise RuntimeError(f"store has migrations this azmem does not know: {', '.join(unknown)}")
    return [name for name, _ in MIGRATIONS if name not in applied]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; returns their names. Raises RuntimeError for a newer store."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    known = {name for name, _ in MIGRATIONS}
    applied_names = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    unknown = sorted(applied_names - known)
    if unknown:
        raise RuntimeError(f"store has migrations this azmem does not know: {', '.join(unknown)}")
    done: list[str] = []
    for name, fn in MIGRATIONS:
        if name in applied_names:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat()),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) "
                    "SELECT 'schema_version', CAST(count(*) AS TEXT) FROM _migrations"
                )
                done.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return done
