"""A SQLite store's audit trail (tables ``audit``, ``audit_chain``) and its erasure of a scope.

Everything here runs on the connection of a transaction the store opened: the store's
writes call `append` inside their own ``BEGIN IMMEDIATE``, so a change and its record
commit together. SQLite has one writer at a time, so reading the chain head and
appending after it needs no lock of its own.

``memory_owners`` remembers the scope of every memory ever written (a trigger on
insert), because history rows carry no scope and outlive their memory: without it,
`forget` could not find the history text of a memory deleted before the erasure.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from azmem.stores.audit import (
    AUDIT_COLS,
    CONTENT_OWNERS,
    GENESIS,
    AuditContext,
    AuditEntry,
    AuditRecord,
    ChainState,
    ForgetReport,
    chain_rows,
    erasable,
    prune_entry,
    record_from_row,
)
from azmem.stores.audit_log import AuditQuery
from azmem.stores.filters import format_time
from azmem.stores.models import AddOp, Op, Scope

__all__ = ["SQLiteAuditTable", "append", "create_tables", "forget", "scopes_of"]

Transaction = Callable[[str], AbstractContextManager[sqlite3.Connection]]
_CHUNK = 500
_MARKS = ", ".join("?" * 15)
_APPEND_ONLY = "azmem audit records are append-only"


def create_tables(conn: sqlite3.Connection) -> None:
    """Migration 004_audit: the chain, its head and anchor, its guards, and the owners table."""
    conn.execute(
        """
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            at TEXT NOT NULL,
            principal TEXT NOT NULL,
            operation TEXT NOT NULL,
            user_id TEXT,
            agent_id TEXT,
            run_id TEXT,
            memory_ids TEXT NOT NULL DEFAULT '[]',
            outcome TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}',
            content TEXT,
            content_hash TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """
    )
    for name, cols in (
        ("audit_at", "at"),
        ("audit_principal", "principal, seq"),
        ("audit_user", "user_id, seq"),
        ("audit_operation", "operation, seq"),
    ):
        conn.execute(f"CREATE INDEX {name} ON audit ({cols})")
    conn.execute("CREATE INDEX audit_content ON audit (seq) WHERE content IS NOT NULL")
    conn.execute(
        "CREATE TABLE audit_chain (id INTEGER PRIMARY KEY CHECK (id = 1), head_seq INTEGER NOT NULL, "
        "head_hash TEXT NOT NULL, anchor_seq INTEGER NOT NULL, anchor_hash TEXT NOT NULL)"
    )
    conn.execute("INSERT INTO audit_chain VALUES (1, 0, ?, 0, ?)", (GENESIS, GENESIS))
    # Guards against mistakes, not against an attacker (who can drop them; verify still sees it):
    # only kept content may change, and only to NULL (erasure); only a pruned prefix may go.
    conn.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE OF seq, id, at, principal, operation, user_id, "
        "agent_id, run_id, memory_ids, outcome, details, content_hash, prev_hash, hash ON audit "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    )
    conn.execute(
        "CREATE TRIGGER audit_content_erase_only BEFORE UPDATE OF content ON audit "
        f"WHEN new.content IS NOT NULL BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    )
    conn.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
        "WHEN old.seq > (SELECT anchor_seq FROM audit_chain WHERE id = 1) "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    )
    conn.execute(
        "CREATE TABLE memory_owners (memory_id TEXT PRIMARY KEY, user_id TEXT, agent_id TEXT, run_id TEXT) "
        "WITHOUT ROWID"
    )
    for column in ("user_id", "agent_id", "run_id"):
        conn.execute(f"CREATE INDEX memory_owners_{column} ON memory_owners ({column})")
    conn.execute(
        "CREATE TRIGGER memories_owner AFTER INSERT ON memories BEGIN "
        "INSERT OR IGNORE INTO memory_owners VALUES (new.id, new.user_id, new.agent_id, new.run_id); END"
    )
    conn.execute("INSERT OR IGNORE INTO memory_owners SELECT id, user_id, agent_id, run_id FROM memories")


def has_tables(conn: sqlite3.Connection) -> bool:
    """False only in a store opened read-only before migration 004 (see _schema.READ_OPTIONAL)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").fetchone()
    return found is not None


def chain_state(conn: sqlite3.Connection) -> ChainState:
    row = conn.execute(
        "SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM audit_chain WHERE id = 1"
    ).fetchone()
    return ChainState() if row is None else ChainState(int(row[0]), row[1], int(row[2]), row[3])


def append(conn: sqlite3.Connection, entries: Sequence[AuditEntry]) -> builtins.list[AuditRecord]:
    """Chain `entries` after the head, in the caller's write transaction."""
    if not entries:
        return []
    state = chain_state(conn)
    rows = chain_rows(entries, state.head_seq, state.head_hash)
    conn.executemany(f"INSERT INTO audit ({AUDIT_COLS}) VALUES ({_MARKS})", [r.row() for r in rows])
    last = rows[-1].record
    conn.execute("UPDATE audit_chain SET head_seq = ?, head_hash = ? WHERE id = 1", (last.seq, last.hash))
    return [r.record for r in rows]


def _chunks(items: Sequence[str]) -> builtins.list[Sequence[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def scopes_of(conn: sqlite3.Connection, ops: Sequence[Op]) -> builtins.list[dict[str, str | None]]:
    """The scope of each memory the ops touch (read before they run: a delete removes the row)."""
    scopes: builtins.list[dict[str, str | None]] = []
    ids: builtins.list[str] = []
    for op in ops:
        if isinstance(op, AddOp):
            scopes.append(dict(op.record.scope.as_dict()))
        else:
            ids.append(op.id)
    for chunk in _chunks(ids):
        rows = conn.execute(
            f"SELECT user_id, agent_id, run_id FROM memories WHERE id IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        scopes.extend({"user_id": u, "agent_id": a, "run_id": r} for u, a, r in rows)
    return scopes


def _scope_sql(scope: Scope) -> tuple[str, builtins.list[str]]:
    ids = scope.as_dict()  # fixed column names only
    return " AND ".join(f"{column} = ?" for column in ids), list(ids.values())


def _erase_content(conn: sqlite3.Connection, scope: Scope, ids: set[str]) -> int:
    """Blank kept content of records about the scope or its memories (the chain keeps its hash)."""
    seqs = erasable(conn.execute(f"SELECT {CONTENT_OWNERS} FROM audit WHERE content IS NOT NULL"), scope, ids)
    conn.executemany("UPDATE audit SET content = NULL WHERE seq = ?", [(s,) for s in seqs])
    return len(seqs)


def forget(conn: sqlite3.Connection, scope: Scope, context: AuditContext | None) -> ForgetReport:
    """Erase every memory the scope ever had, their history and kept audit content, in the caller's
    transaction, and record the erasure (counts only). FTS5 segments are merged afterwards so that
    the erased words leave its index too (a delete only adds tombstones to newer segments)."""
    where, params = _scope_sql(scope)
    owned = {r[0] for r in conn.execute(f"SELECT memory_id FROM memory_owners WHERE {where}", params)}
    owned |= {r[0] for r in conn.execute(f"SELECT id FROM memories WHERE {where}", params)}
    texts: set[str] = set()
    memories = history = 0
    for chunk in _chunks(sorted(owned)):
        marks = ", ".join("?" * len(chunk))
        texts.update(r[0] for r in conn.execute(f"SELECT memory FROM memories WHERE id IN ({marks})", chunk))
        for old, new in conn.execute(
            f"SELECT old_memory, new_memory FROM history WHERE memory_id IN ({marks})", chunk
        ):
            texts.update(t for t in (old, new) if t is not None)
        memories += conn.execute(f"DELETE FROM memories WHERE id IN ({marks})", chunk).rowcount
        history += conn.execute(f"DELETE FROM history WHERE memory_id IN ({marks})", chunk).rowcount
        conn.execute(f"DELETE FROM memory_owners WHERE memory_id IN ({marks})", chunk)
    erased = _erase_content(conn, scope, owned)
    conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
    counts = {"memories": memories, "history": history, "audit_content": erased}
    append(conn, (context or AuditContext()).entries("forget", scope=scope.as_dict(), details=counts))
    return ForgetReport(scope.as_dict(), memories, history, erased, texts=tuple(sorted(texts)))


def reset_owners(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM memory_owners")


class SQLiteAuditTable:
    """`AuditTable` on a `SQLiteStore`: ``read`` / ``write`` are its transaction context managers."""

    def __init__(self, read: Transaction, write: Transaction) -> None:
        self._read = read
        self._write = write

    def available(self) -> bool:
        with self._read("read the audit trail") as conn:
            return has_tables(conn)

    def state(self) -> ChainState:
        with self._read("read the audit trail") as conn:
            return chain_state(conn)

    def page(
        self, query: AuditQuery, after: int, limit: int, *, newest_first: bool
    ) -> builtins.list[tuple[AuditRecord, str | None]]:
        where, params = query.where("?")
        bound, order = ("<", "DESC") if newest_first else (">", "")
        with self._read("read the audit trail") as conn:
            rows = conn.execute(
                f"SELECT {AUDIT_COLS} FROM audit WHERE seq {bound} ? AND {where} "
                f"ORDER BY seq {order} LIMIT ?",
                (after, *params, limit),
            ).fetchall()
        return [record_from_row(r) for r in rows]

    def append(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditRecord]:
        with self._write("write the audit trail") as conn:
            return append(conn, entries)

    def prune(self, before: datetime, principal: str) -> int:
        with self._write("prune the audit trail") as conn:
            state = chain_state(conn)
            first_kept = conn.execute(
                "SELECT min(seq) FROM audit WHERE seq > ? AND at >= ?",
                (state.anchor_seq, format_time(before)),
            ).fetchone()[0]
            cut = state.head_seq if first_kept is None else int(first_kept) - 1
            if cut <= state.anchor_seq:
                return 0
            anchor_hash = conn.execute("SELECT hash FROM audit WHERE seq = ?", (cut,)).fetchone()[0]
            conn.execute(
                "UPDATE audit_chain SET anchor_seq = ?, anchor_hash = ? WHERE id = 1", (cut, anchor_hash)
            )
            pruned = conn.execute("DELETE FROM audit WHERE seq <= ?", (cut,)).rowcount
            append(conn, [prune_entry(principal, pruned, cut, anchor_hash, before)])
        return int(pruned)


def compact(conn: sqlite3.Connection) -> bool:
    """Rewrite the file so no freed page keeps erased bytes: checkpoint the WAL, VACUUM, and
    checkpoint again with TRUNCATE (VACUUM itself goes through the WAL). False when another
    connection kept part of it from completing (a reader on an old snapshot, a writer): the
    erasure is committed either way; running it again later finishes the job."""
    try:
        first = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        conn.execute("VACUUM")
        last = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:
        return False
    return (first is None or first[0] == 0) and (last is None or last[0] == 0)
