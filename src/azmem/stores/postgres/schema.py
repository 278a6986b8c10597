"""PostgreSQL schema as append-only, named migrations, and the vector column that follows the embedder.

Never edit or reorder a migration that has shipped: add a new one. `migrate` applies
every pending migration in ONE transaction that first takes a transaction-scoped
advisory lock (`pg_advisory_xact_lock`), then re-reads what is applied: two processes
opening a fresh database together queue on the lock, and the second finds nothing left
to do. A crash mid-migration rolls the whole transaction back (PostgreSQL DDL is
transactional). A database holding a migration this code does not know was written by
a newer azmem: `SchemaTooNew`.

Tables (prefixed `azmem_`, so the store can live in an application's database):

    azmem_migrations(name PK, applied_at)
    azmem_meta(key PK, value)            -- schema_version, embedder_name, dimension
    azmem_memories(rid identity PK, id UNIQUE, memory, hash, user_id, agent_id, run_id,
                   actor_id, role, metadata jsonb, created_at, updated_at timestamptz,
                   lexemes tsvector, doc_len, embedding vector(dim) [added when bound])
    azmem_history(seq identity PK, id UNIQUE, memory_id, event, old_memory, new_memory,
                  created_at, actor_id, role, metadata jsonb)   -- no FK: outlives deletes
    azmem_lexical_stats(seq, docs, tokens)   -- 002: BM25's N and total length, as deltas
    azmem_audit(seq PK, id, at, principal, operation, user_id, agent_id, run_id, memory_ids,
                outcome, details, content, content_hash, prev_hash, hash)   -- 003: hash chain
    azmem_audit_chain(id = 1, head_seq, head_hash, anchor_seq, anchor_hash)  -- 003
    azmem_memory_owners(memory_id PK, user_id, agent_id, run_id)            -- 003: for forget
    azmem_postings(term, rid, tf, doc_len, user_id, agent_id, run_id)   -- 004: BM25, by triggers

The `embedding` column is created when an embedder is first bound (`bind_vectors`): its
dimension is only known then. Its HNSW index (cosine) is on the column itself up to
2,000 dimensions, on a `halfvec` cast of it up to 4,000 (pgvector's limits), and absent
beyond (dense search is then an exact scan).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from azmem.errors import StoreError
from azmem.stores.postgres.audit import create_tables as create_audit_tables
from azmem.stores.postgres.lexical import create_postings

__all__ = [
    "LOCK_KEY",
    "MIGRATIONS",
    "SchemaTooNew",
    "VectorIndex",
    "applied",
    "bind_vectors",
    "create_vector_index",
    "drop_vector_index",
    "expected_indexes",
    "migrate",
    "pending",
    "require_current",
    "vector_dimension",
    "vector_index",
]

Conn = psycopg.Connection[Any]
Migration = Callable[[Conn], None]

#: pg_advisory_xact_lock key for schema changes ("azmem" in ASCII).
LOCK_KEY = 0x617A6D656D
VECTOR_INDEX = "azmem_memories_embedding"
HNSW_VECTOR_MAX = 2000
HNSW_HALFVEC_MAX = 4000


class SchemaTooNew(RuntimeError):
    """The database holds migrations this azmem does not know."""


def _m001_initial(conn: Conn) -> None:
    conn.execute("CREATE TABLE azmem_meta (key text PRIMARY KEY, value text NOT NULL)")
    # Text columns compare bytewise (COLLATE "C"), like SQLite: ordering filters and ties
    # do not depend on the database's locale.
    conn.execute(
        """
        CREATE TABLE azmem_memories (
            rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text COLLATE "C" NOT NULL UNIQUE,
            memory text COLLATE "C" NOT NULL,
            hash text NOT NULL,
            user_id text COLLATE "C",
            agent_id text COLLATE "C",
            run_id text COLLATE "C",
            actor_id text COLLATE "C",
            role text COLLATE "C",
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            lexemes tsvector NOT NULL,
            doc_len integer NOT NULL CHECK (doc_len >= 0)
        )
        """
    )
    for name, cols in (
        ("azmem_memories_user", "user_id, created_at"),
        ("azmem_memories_agent", "agent_id, created_at"),
        ("azmem_memories_run", "run_id, created_at"),
        ("azmem_memories_created", "created_at, rid"),
        ("azmem_memories_hash", "hash"),
    ):
        conn.execute(f"CREATE INDEX {name} ON azmem_memories ({cols})")
    conn.execute("CREATE INDEX azmem_memories_lexemes ON azmem_memories USING gin (lexemes)")
    conn.execute(
        """
        CREATE TABLE azmem_history (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text COLLATE "C" NOT NULL UNIQUE,
            memory_id text COLLATE "C" NOT NULL,
            event text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
            old_memory text COLLATE "C",
            new_memory text COLLATE "C",
            created_at timestamptz NOT NULL,
            actor_id text COLLATE "C",
            role text COLLATE "C",
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    conn.execute("CREATE INDEX azmem_history_memory ON azmem_history (memory_id, seq)")


# BM25 needs the number of memories and their total length. Counting them per query costs
# a scan; one row of totals would serialise every writer. Statement triggers append the
# changes of each statement instead (insert-only, no contention) and a writer now and then
# folds them into one row (`compact_lexical_stats`).
_STATS_TRIGGERS = (
    (
        "insert",
        "INSERT",
        "NEW TABLE AS azmem_new",
        "SELECT count(*), coalesce(sum(doc_len), 0) FROM azmem_new HAVING count(*) > 0",
    ),
    (
        "delete",
        "DELETE",
        "OLD TABLE AS azmem_old",
        "SELECT -count(*), -coalesce(sum(doc_len), 0) FROM azmem_old HAVING count(*) > 0",
    ),
    (
        "update",
        "UPDATE",
        "OLD TABLE AS azmem_old NEW TABLE AS azmem_new",
        "SELECT 0, d FROM (SELECT (SELECT coalesce(sum(doc_len), 0) FROM azmem_new) "
        "- (SELECT coalesce(sum(doc_len), 0) FROM azmem_old) AS d) AS x WHERE d <> 0",
    ),
)


def _m002_lexical_stats(conn: Conn) -> None:
    conn.execute(
        "CREATE TABLE azmem_lexical_stats (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "docs bigint NOT NULL, tokens bigint NOT NULL)"
    )
    for name, event, tables, select in _STATS_TRIGGERS:
        conn.execute(
            f"""
            CREATE FUNCTION azmem_lexical_stats_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO azmem_lexical_stats (docs, tokens) {select};
                RETURN NULL;
            END
            $$
            """
        )
        conn.execute(
            f"CREATE TRIGGER azmem_lexical_stats_{name} AFTER {event} ON azmem_memories "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION azmem_lexical_stats_{name}()"
        )
    # Memories written before this migration.
    conn.execute(
        "INSERT INTO azmem_lexical_stats (docs, tokens) "
        "SELECT count(*), coalesce(sum(doc_len), 0) FROM azmem_memories"
    )
    # Metadata equality filters are containment (metadata @> ...), which this index serves.
    conn.execute("CREATE INDEX azmem_memories_metadata ON azmem_memories USING gin (metadata jsonb_path_ops)")


def _m003_audit(conn: Conn) -> None:
    # The audit trail and the owners of every memory ever written (stores/postgres/audit.py).
    create_audit_tables(conn)


def _m004_postings(conn: Conn) -> None:
    # BM25 from a postings table kept by triggers (stores/postgres/lexical.py), backfilled here.
    create_postings(conn)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_lexical_stats", _m002_lexical_stats),
    ("003_audit", _m003_audit),
    ("004_postings", _m004_postings),
]


def applied(conn: Conn) -> list[str] | None:
    """Names of the applied migrations, None when the database holds no azmem store."""
    exists = conn.execute("SELECT to_regclass('azmem_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    return [r[0] for r in conn.execute("SELECT name FROM azmem_migrations ORDER BY name")]


def pending(conn: Conn) -> list[str]:
    """Migrations still to apply, applying none. Raises SchemaTooNew for a newer store."""
    done = set(applied(conn) or [])
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:
        raise SchemaTooNew(f"the database has migrations this azmem does not know: {', '.join(unknown)}")
    return [name for name, _ in MIGRATIONS if name not in done]


def require_current(conn: Conn, url: str) -> None:
    """For a read-only open, which cannot migrate: raise unless every migration is applied."""
    todo = pending(conn)
    if not todo:
        return
    if applied(conn) is None:
        raise StoreError(
            f"store {url} does not exist (opened read-only, so it is not created)",
            error_code="store_not_found",
            suggestion="check the URL; open it read-write once to create an empty store",
        )
    raise StoreError(
        f"store {url} needs schema migrations ({', '.join(todo)}) that a read-only open cannot apply",
        error_code="store_needs_migration",
        suggestion="open it once read-write with this azmem version",
    )


def migrate(conn: Conn, ensure_vector: Callable[[Conn], None], upto: int | None = None) -> list[str]:
    """Apply the pending migrations (the first `upto` of MIGRATIONS when given) in one transaction.

    `conn` is in autocommit mode. Returns the names applied by this call.
    """
    wanted = MIGRATIONS[:upto] if upto is not None else MIGRATIONS
    if not [n for n in pending(conn) if n in {name for name, _ in wanted}]:
        return []
    done: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS azmem_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL)"
        )
        todo = set(pending(conn))  # again, under the lock: another process may have just done it
        ensure_vector(conn)
        for name, fn in wanted:
            if name not in todo:
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO azmem_migrations (name, applied_at) VALUES (%s, %s)", [name, datetime.now(UTC)]
            )
            done.append(name)
        if done:
            conn.execute(
                "INSERT INTO azmem_meta (key, value) SELECT 'schema_version', count(*)::text "
                "FROM azmem_migrations ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
    return done


# -- the vector column ---------------------------------------------------------------------------


VectorIndex = str | None  # "vector", "halfvec" or None (no index)


def vector_index(dimension: int, pgvector_version: tuple[int, ...]) -> VectorIndex:
    """Which HNSW index a column of `dimension` gets (pgvector's limits: 2,000 / 4,000 halfvec)."""
    if dimension <= HNSW_VECTOR_MAX:
        return "vector"
    if dimension <= HNSW_HALFVEC_MAX and pgvector_version >= (0, 7):
        return "halfvec"
    return None


def vector_dimension(conn: Conn) -> int | None:
    """The dimension of the embedding column, None when there is no such column yet."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'azmem_memories'::regclass "
        "AND attname = 'embedding' AND NOT attisdropped"
    ).fetchone()
    return None if row is None else int(row[0])


def drop_vector_index(conn: Conn) -> None:
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(VECTOR_INDEX)))


#: maintenance_work_mem for an HNSW build: pgvector builds the graph in memory and slows down
#: several times once it outgrows it (100k x 384-d needs about 200 MB; the server default is 64 MB).
INDEX_BUILD_MEMORY = "1GB"


def create_vector_index(
    conn: Conn, dimension: int, kind: VectorIndex, build_memory: str = INDEX_BUILD_MEMORY
) -> None:
    """The HNSW index, built (in the caller's transaction) with at least `build_memory` of
    maintenance_work_mem: raised for this transaction only, never lowered."""
    if kind is None:
        return
    conn.execute(
        "SELECT set_config('maintenance_work_mem', %s, true) "
        "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes(%s)",
        [build_memory, build_memory],
    )
    target: sql.Composable
    if kind == "vector":
        target = sql.SQL("embedding vector_cosine_ops")
    else:
        target = sql.SQL("(embedding::halfvec({})) halfvec_cosine_ops").format(sql.Literal(dimension))
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON azmem_memories USING hnsw ({})").format(
            sql.Identifier(VECTOR_INDEX), target
        )
    )


def bind_vectors(conn: Conn, dimension: int, kind: VectorIndex, *, rebuild_index: bool = True) -> None:
    """Make the embedding column `vector(dimension)` (creating or retyping it; a retype empties
    it, so callers only retype an empty store or one whose vectors they then rewrite)."""
    current = vector_dimension(conn)
    vector_type = sql.SQL("vector({})").format(sql.Literal(dimension))
    if current is None:
        conn.execute(sql.SQL("ALTER TABLE azmem_memories ADD COLUMN embedding {}").format(vector_type))
    elif current != dimension:
        drop_vector_index(conn)
        conn.execute(
            sql.SQL("ALTER TABLE azmem_memories ALTER COLUMN embedding TYPE {} USING NULL").format(
                vector_type
            )
        )
    if rebuild_index:
        create_vector_index(conn, dimension, kind)


def expected_indexes(kind: VectorIndex) -> list[str]:
    names = [
        "azmem_memories_user",
        "azmem_memories_agent",
        "azmem_memories_run",
        "azmem_memories_created",
        "azmem_memories_hash",
        "azmem_memories_lexemes",
        "azmem_memories_metadata",
        "azmem_history_memory",
        "azmem_postings_term",
        "azmem_postings_rid",
    ]
    return [*names, VECTOR_INDEX] if kind is not None else names
