"""A PostgreSQL store's audit trail (``azmem_audit``, ``azmem_audit_chain``) and its erasure of a scope.

Everything here runs in a transaction the store opened, so a change and its record commit
together. Several processes and machines write one chain: `append` locks the chain's head
row (``SELECT ... FOR UPDATE``) as the last step of a write, so appends are serialised
(sequence numbers without gaps, each record after the one before) while the rest of a
write runs concurrently; a write holds that lock only from its last statement to COMMIT.
Every write takes it last, after its own row locks, so it cannot be part of a deadlock.

``azmem_memory_owners`` remembers the scope of every memory ever written (a statement
trigger on insert): history rows carry no scope and outlive their memory, and `forget`
must find them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

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
from azmem.stores.postgres.connections import Conn

__all__ = ["PostgresAuditTable", "append", "create_tables", "forget", "scopes_of"]

T = TypeVar("T")
_MARKS = ", ".join(["%s"] * 15)
_TEXT = 'text COLLATE "C"'


def create_tables(conn: Conn) -> None:
    """Migration 003_audit: the chain, its head and anchor, its guard, and the owners table."""
    conn.execute(
        f"""
        CREATE TABLE azmem_audit (
            seq bigint PRIMARY KEY,
            id {_TEXT} NOT NULL UNIQUE,
            at {_TEXT} NOT NULL,
            principal {_TEXT} NOT NULL,
            operation {_TEXT} NOT NULL,
            user_id {_TEXT},
            agent_id {_TEXT},
            run_id {_TEXT},
            memory_ids text NOT NULL DEFAULT '[]',
            outcome text NOT NULL,
            details text NOT NULL DEFAULT '{{}}',
            content text,
            content_hash text,
            prev_hash text NOT NULL,
            hash text NOT NULL
        )
        """
    )
    for name, cols in (
        ("azmem_audit_at", "at"),
        ("azmem_audit_principal", "principal, seq"),
        ("azmem_audit_user", "user_id, seq"),
        ("azmem_audit_operation", "operation, seq"),
    ):
        conn.execute(f"CREATE INDEX {name} ON azmem_audit ({cols})")
    conn.execute("CREATE INDEX azmem_audit_content ON azmem_audit (seq) WHERE content IS NOT NULL")
    conn.execute(
        "CREATE TABLE azmem_audit_chain (id integer PRIMARY KEY CHECK (id = 1), head_seq bigint NOT NULL, "
        "head_hash text NOT NULL, anchor_seq bigint NOT NULL, anchor_hash text NOT NULL)"
    )
    conn.execute("INSERT INTO azmem_audit_chain VALUES (1, 0, %s, 0, %s)", [GENESIS, GENESIS])
    # A guard against mistakes, not against an attacker (who can drop it; verify still sees it):
    # only kept content may change, and only to NULL (erasure); only a pruned prefix may go.
    fixed = (
        "seq, id, at, principal, operation, user_id, agent_id, run_id, memory_ids, outcome, details, "
        "content_hash, prev_hash, hash"
    )
    old = ", ".join(f"OLD.{c.strip()}" for c in fixed.split(","))
    new = ", ".join(f"NEW.{c.strip()}" for c in fixed.split(","))
    conn.execute(
        f"""
        CREATE FUNCTION azmem_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                IF OLD.seq > (SELECT anchor_seq FROM azmem_audit_chain WHERE id = 1) THEN
                    RAISE EXCEPTION 'azmem audit records are append-only';
                END IF;
                RETURN OLD;
            END IF;
            IF NEW.content IS NOT NULL OR ({new}) IS DISTINCT FROM ({old}) THEN
                RAISE EXCEPTION 'azmem audit records are append-only';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER azmem_audit_guard BEFORE UPDATE OR DELETE ON azmem_audit "
        "FOR EACH ROW EXECUTE FUNCTION azmem_audit_guard()"
    )
    conn.execute(
        f"CREATE TABLE azmem_memory_owners (memory_id {_TEXT} PRIMARY KEY, user_id {_TEXT}, "
        f"agent_id {_TEXT}, run_id {_TEXT})"
    )
    for column in ("user_id", "agent_id", "run_id"):
        conn.execute(f"CREATE INDEX azmem_memory_owners_{column} ON azmem_memory_owners ({column})")
    conn.execute(
        """
        CREATE FUNCTION azmem_memory_owners_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO azmem_memory_owners (memory_id, user_id, agent_id, run_id)
            SELECT id, user_id, agent_id, run_id FROM azmem_new ON CONFLICT (memory_id) DO NOTHING;
            RETURN NULL;
        END
        $$
        """
    )
    conn.execute(
        "CREATE TRIGGER azmem_memory_owners_insert AFTER INSERT ON azmem_memories "
        "REFERENCING NEW TABLE AS azmem_new FOR EACH STATEMENT EXECUTE FUNCTION azmem_memory_owners_insert()"
    )
    conn.execute(
        "INSERT INTO azmem_memory_owners SELECT id, user_id, agent_id, run_id FROM azmem_memories "
        "ON CONFLICT (memory_id) DO NOTHING"
    )


def _state(row: Sequence[Any] | None) -> ChainState:
    return ChainState() if row is None else ChainState(int(row[0]), row[1], int(row[2]), row[3])


def chain_state(conn: Conn, *, lock: bool = False) -> ChainState:
    row = conn.execute(
        "SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM azmem_audit_chain WHERE id = 1"
        + (" FOR UPDATE" if lock else "")
    ).fetchone()
    return _state(row)


def append(conn: Conn, entries: Sequence[AuditEntry]) -> builtins.list[AuditRecord]:
    """Chain `entries` after the head, in the caller's transaction (locking the head until COMMIT)."""
    if not entries:
        return []
    state = chain_state(conn, lock=True)
    rows = chain_rows(entries, state.head_seq, state.head_hash)
    conn.execute(
        f"INSERT INTO azmem_audit ({AUDIT_COLS}) VALUES " + ", ".join([f"({_MARKS})"] * len(rows)),
        [value for r in rows for value in r.row()],
    )
    last = rows[-1].record
    conn.execute(
        "UPDATE azmem_audit_chain SET head_seq = %s, head_hash = %s WHERE id = 1", [last.seq, last.hash]
    )
    return [r.record for r in rows]


def scopes_of(conn: Conn, ops: Sequence[Op]) -> builtins.list[dict[str, str | None]]:
    """The scope of each memory the ops touch (read before they run: a delete removes the row)."""
    scopes: builtins.list[dict[str, str | None]] = []
    ids = [op.id for op in ops if not isinstance(op, AddOp)]
    scopes.extend(dict(op.record.scope.as_dict()) for op in ops if isinstance(op, AddOp))
    if ids:
        rows = conn.execute(
            "SELECT user_id, agent_id, run_id FROM azmem_memories WHERE id = ANY(%s)", [ids]
        ).fetchall()
        scopes.extend({"user_id": u, "agent_id": a, "run_id": r} for u, a, r in rows)
    return scopes


def _erase_content(conn: Conn, scope: Scope, ids: set[str]) -> int:
    rows = conn.execute(f"SELECT {CONTENT_OWNERS} FROM azmem_audit WHERE content IS NOT NULL").fetchall()
    seqs = erasable(rows, scope, ids)
    if seqs:
        conn.execute("UPDATE azmem_audit SET content = NULL WHERE seq = ANY(%s)", [seqs])
    return len(seqs)


def forget(conn: Conn, scope: Scope, context: AuditContext | None) -> ForgetReport:
    """Erase every memory the scope ever had, their history and kept audit content, in the caller's
    transaction, and record the erasure (counts only)."""
    wanted = scope.as_dict()  # fixed column names only
    where = " AND ".join(f"{column} = %s" for column in wanted)
    params = list(wanted.values())
    ids = sorted(
        r[0]
        for r in conn.execute(
            f"SELECT memory_id FROM azmem_memory_owners WHERE {where} "
            f"UNION SELECT id FROM azmem_memories WHERE {where}",
            params * 2,
        ).fetchall()
    )
    texts: set[str] = set()
    texts.update(r[0] for r in conn.execute("SELECT memory FROM azmem_memories WHERE id = ANY(%s)", [ids]))
    for old, new in conn.execute(
        "SELECT old_memory, new_memory FROM azmem_history WHERE memory_id = ANY(%s)", [ids]
    ).fetchall():
        texts.update(t for t in (old, new) if t is not None)
    memories = conn.execute("DELETE FROM azmem_memories WHERE id = ANY(%s)", [ids]).rowcount
    history = conn.execute("DELETE FROM azmem_history WHERE memory_id = ANY(%s)", [ids]).rowcount
    conn.execute("DELETE FROM azmem_memory_owners WHERE memory_id = ANY(%s)", [ids])
    erased = _erase_content(conn, scope, set(ids))
    counts = {"memories": max(memories, 0), "history": max(history, 0), "audit_content": erased}
    append(conn, (context or AuditContext()).entries("forget", scope=wanted, details=counts))
    return ForgetReport(wanted, counts["memories"], counts["history"], erased, texts=tuple(sorted(texts)))


def compact(conn: Conn) -> bool:
    """VACUUM the tables that held the erased rows (`conn` in autocommit), so their dead row
    versions leave the heap and the indexes (a plain VACUUM; see docs/compliance.md for what
    stays in WAL, backups and free space). False when the server refused."""
    try:
        # azmem_postings holds the erased memories' words.
        conn.execute("VACUUM azmem_memories, azmem_history, azmem_memory_owners, azmem_audit, azmem_postings")
    except Exception:
        return False
    return True


class Runner(Protocol):
    """The store's ``_run``: ``fn(conn)`` in one transaction, azmem errors only."""

    def __call__(self, action: str, fn: Callable[[Conn], T], *, write: bool = False) -> T: ...


def _has_table(conn: Conn) -> bool:
    found = conn.execute("SELECT to_regclass('azmem_audit') IS NOT NULL").fetchone()
    return bool(found and found[0])


class PostgresAuditTable:
    """`AuditTable` on a `PostgresStore`, through its runner."""

    def __init__(self, run: Runner) -> None:
        self._run = run

    def available(self) -> bool:
        return self._run("read the audit trail", _has_table)

    def state(self) -> ChainState:
        return self._run("read the audit trail", chain_state)

    def page(
        self, query: AuditQuery, after: int, limit: int, *, newest_first: bool
    ) -> builtins.list[tuple[AuditRecord, str | None]]:
        where, params = query.where("%s")
        bound, order = ("<", "DESC") if newest_first else (">", "")
        sql = (
            f"SELECT {AUDIT_COLS} FROM azmem_audit WHERE seq {bound} %s AND {where} "
            f"ORDER BY seq {order} LIMIT %s"
        )
        rows = self._run(
            "read the audit trail", lambda conn: conn.execute(sql, [after, *params, limit]).fetchall()
        )
        return [record_from_row(r) for r in rows]

    def append(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditRecord]:
        return self._run("write the audit trail", lambda conn: append(conn, entries), write=True)

    def prune(self, before: datetime, principal: str) -> int:
        def body(conn: Conn) -> int:
            state = chain_state(conn, lock=True)
            row = conn.execute(
                "SELECT min(seq) FROM azmem_audit WHERE seq > %s AND at >= %s",
                [state.anchor_seq, format_time(before)],
            ).fetchone()
            cut = state.head_seq if row is None or row[0] is None else int(row[0]) - 1
            if cut <= state.anchor_seq:
                return 0
            found = conn.execute("SELECT hash FROM azmem_audit WHERE seq = %s", [cut]).fetchone()
            anchor_hash = found[0] if found else GENESIS
            conn.execute(
                "UPDATE azmem_audit_chain SET anchor_seq = %s, anchor_hash = %s WHERE id = 1",
                [cut, anchor_hash],
            )
            pruned = max(conn.execute("DELETE FROM azmem_audit WHERE seq <= %s", [cut]).rowcount, 0)
            append(conn, [prune_entry(principal, pruned, cut, anchor_hash, before)])
            return pruned

        return self._run("prune the audit trail", body, write=True)
