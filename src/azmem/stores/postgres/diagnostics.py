"""What `azmem doctor` and the tests ask a PostgreSQL store: `describe` and `check`."""

from __future__ import annotations

from typing import Any

from azmem.stores.postgres import rows as codec
from azmem.stores.postgres import schema
from azmem.stores.postgres.connections import Conn

__all__ = ["check", "describe", "pgvector_version"]

_BATCH = 1000


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def pgvector_version(conn: Conn) -> tuple[int, ...]:
    """The installed pgvector's version, () when the extension is not in the database."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return _version(row[0]) if row else ()


def describe(conn: Conn) -> dict[str, Any]:
    """Server and pgvector versions, migrations applied vs known, indexes present and missing."""
    server = conn.execute("SELECT current_setting('server_version')").fetchone()
    ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    applied = schema.applied(conn) or []
    known = [name for name, _ in schema.MIGRATIONS]
    embedder = None
    dimension = None
    if "001_initial" in applied:
        meta = dict(conn.execute("SELECT key, value FROM azmem_meta").fetchall())
        if "embedder_name" in meta:
            embedder = [meta["embedder_name"], int(meta["dimension"])]
        dimension = schema.vector_dimension(conn)
    indexes = [
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN "
            "('azmem_memories', 'azmem_history', 'azmem_postings') AND indexname LIKE 'azmem%%' "
            "ORDER BY indexname"
        )
    ]
    kind = schema.vector_index(dimension or 0, _version(ext[0]) if ext else ())
    expected = schema.expected_indexes(kind)
    return {
        "backend": "postgres",
        "server_version": server[0] if server else None,
        "pgvector_version": ext[0] if ext else None,
        "pgvector_available": available[0] if available else None,
        "migrations_known": known,
        "migrations_applied": applied,
        "migrations_pending": [m for m in known if m not in applied],
        "migrations_unknown": [m for m in applied if m not in known],
        "indexes": indexes,
        "indexes_missing": [name for name in expected if name not in indexes],
        "embedder": embedder,
        "vector_index": None if dimension is None else kind,
    }


def check(conn: Conn, embedder: tuple[str, int] | None) -> list[str]:
    """Consistency problems found (empty when healthy)."""
    problems: list[str] = []
    dimension = schema.vector_dimension(conn)
    if embedder is not None:
        if dimension != embedder[1]:
            problems.append(
                f"the embedding column has dimension {dimension}, the store records {embedder[1]}"
            )
        elif (
            row := conn.execute("SELECT count(*) FROM azmem_memories WHERE embedding IS NULL").fetchone()
        ) and row[0]:
            problems.append(f"{row[0]} memories have no vector")
    last = 0
    drift = 0
    while True:
        rows = conn.execute(
            "SELECT rid, memory FROM azmem_memories WHERE rid > %s ORDER BY rid LIMIT %s", [last, _BATCH]
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        docs = [codec.document(text) for _, text in rows]
        row = conn.execute(
            "SELECT count(*) FROM azmem_memories m JOIN unnest(%s::bigint[], %s::text[], %s::integer[]) "
            "AS e(rid, lexemes, doc_len) ON e.rid = m.rid "
            "WHERE m.lexemes <> e.lexemes::tsvector OR m.doc_len <> e.doc_len",
            [[rid for rid, _ in rows], [d[0] for d in docs], [d[1] for d in docs]],
        ).fetchone()
        drift += int(row[0]) if row else 0
    if drift:
        problems.append(f"{drift} memories have search words out of step with their text")
    stats = conn.execute(
        "SELECT (SELECT coalesce(sum(docs), 0) FROM azmem_lexical_stats), "
        "(SELECT coalesce(sum(tokens), 0) FROM azmem_lexical_stats), "
        "(SELECT count(*) FROM azmem_memories), (SELECT coalesce(sum(doc_len), 0) FROM azmem_memories)"
    ).fetchone()
    if stats and (stats[0], stats[1]) != (stats[2], stats[3]):
        problems.append(
            f"BM25 statistics ({stats[0]} memories, {stats[1]} words) differ from the table "
            f"({stats[2]} memories, {stats[3]} words)"
        )
    postings = conn.execute(
        "SELECT (SELECT count(*) FROM azmem_postings), (SELECT coalesce(sum(length(lexemes)), 0) "
        "FROM azmem_memories)"
    ).fetchone()
    if postings and postings[0] != postings[1]:
        problems.append(
            f"the BM25 postings hold {postings[0]} rows where the memories have {postings[1]} distinct words"
        )
    orphans = conn.execute(
        "SELECT count(*) FROM azmem_memories m WHERE NOT EXISTS "
        "(SELECT 1 FROM azmem_history h WHERE h.memory_id = m.id AND h.event = 'ADD')"
    ).fetchone()
    if orphans and orphans[0]:
        problems.append(f"{orphans[0]} memories have no ADD history event")
    return problems
