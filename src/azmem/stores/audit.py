"""The audit trail's records and their hash chain, shared by both store backends.

Why a chain in the store: an audit trail is only evidence if a change and its record
cannot exist without each other, and if an edit after the fact shows. So every store
write (`apply`, `delete_all`, `reset`, `replace_vectors`, `import_*`, `forget`) appends
its record *inside its own transaction*, and each record carries the hash of the one
before it (one chain per store). `verify_chain` (``stores/audit_verify.py``) walks the
chain and names every record that was edited, removed or moved.

What is hashed: the record's fields in a fixed order, as canonical JSON (sorted keys,
no whitespace, UTF-8), together with the previous record's hash and the record's own
sequence number, so a record moved to another place no longer matches its hash.

Content (memory text) is kept only when the operator turns it on, and then *beside*
the chain: the record hashes ``sha256(content column)``, where the column also holds a
random salt. Erasing a user's data (`forget`) blanks that column; the chain still
verifies, and the hash left behind cannot be used to confirm a guessed text.

Sequence numbers are assigned by the store under its write lock (SQLite's one writer,
PostgreSQL's row lock on the chain head), so they have no gaps: a gap is a removal.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from azmem.stores.filters import format_time
from azmem.stores.models import AddOp, DeleteOp, Op, Scope, StoredMemory, UpdateOp, utcnow

__all__ = [
    "AUDIT_COLS",
    "AUDIT_VERSION",
    "CONTENT_OWNERS",
    "GENESIS",
    "MAX_IDS",
    "AuditContext",
    "AuditEntry",
    "AuditRecord",
    "ChainState",
    "ForgetReport",
    "Outcome",
    "canonical",
    "common_scope",
    "default_principal",
    "erasable",
    "ops_entries",
    "prune_entry",
    "record_from_row",
    "seal",
]

AUDIT_VERSION = 1
GENESIS = "0" * 64
"""The "previous hash" of the first record of a chain."""
MAX_IDS = 1000
"""Memory ids named in one record; a larger change names the first ones and counts all."""
MAX_TEXT = 256

Outcome = Literal["ok", "error"]

#: Column order of the audit table on both backends (the row codec below follows it).
AUDIT_COLS = (
    "seq, id, at, principal, operation, user_id, agent_id, run_id, memory_ids, outcome, details, "
    "content, content_hash, prev_hash, hash"
)


def canonical(value: Any) -> str:
    """The one text form of a JSON value: what is hashed and what is stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _clean(value: object) -> str | None:
    """An id or name as the audit trail can keep it (a plain short string), else None."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    text = value[:MAX_TEXT]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


@functools.cache
def default_principal() -> str:
    """Who acts when no face said so: the operating-system user (``os:<name>``)."""
    try:
        name = getpass.getuser()
    except Exception:  # no login name (some containers): the numeric id is still someone
        name = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"os:{name}"


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON (through canonical text), so what is hashed is what is read back."""
    return json.loads(canonical(value))


@dataclass(frozen=True)
class AuditEntry:
    """Something to record: the store gives it a sequence number, a place in the chain and a hash."""

    operation: str
    principal: str
    at: datetime = field(default_factory=utcnow)
    scope: Mapping[str, str] = field(default_factory=dict)
    memory_ids: tuple[str, ...] = ()
    outcome: Outcome = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)
    content: Any = None
    """Memory text and the like: only when the operator turned content on (never by default)."""


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and why: what the faces pass to every store write (``audit=``).

    A store writes `related` first (the LLM calls that led to the change), then one
    record for the change itself, built from the ops it applies; `details` are added to
    it. Without a context a store still records the change, as the OS user.
    """

    principal: str | None = None
    operation: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    include_content: bool = False
    related: tuple[AuditEntry, ...] = ()

    def entries(
        self,
        default_operation: str,
        *,
        scope: Mapping[str, str] | None = None,
        memory_ids: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
        content: Any = None,
    ) -> list[AuditEntry]:
        """The related records, then the change's own."""
        ids = [i for i in (_clean(m) for m in memory_ids) if i is not None]
        info: dict[str, Any] = dict(details or {})
        if len(ids) > MAX_IDS:
            info["memory_ids_total"] = len(ids)
            ids = ids[:MAX_IDS]
        info.update(self.details)
        entry = AuditEntry(
            operation=_clean(self.operation) or default_operation,
            principal=_clean(self.principal) or default_principal(),
            scope={k: v for k, v in (scope or {}).items() if _clean(v) is not None},
            memory_ids=tuple(ids),
            details=info,
            content=content if self.include_content else None,
        )
        return [*self.related, entry]


def common_scope(scopes: Iterable[Mapping[str, str | None]]) -> dict[str, str]:
    """The ids every scope shares (one user's batch: that user; a mixed batch: what they share)."""
    shared: dict[str, str] | None = None
    for scope in scopes:
        present = {k: v for k, v in scope.items() if v is not None}
        shared = present if shared is None else {k: v for k, v in shared.items() if present.get(k) == v}
    return shared or {}


def ops_entries(
    context: AuditContext | None, ops: Sequence[Op], scopes: Sequence[Mapping[str, str | None]]
) -> list[AuditEntry]:
    """The records of one `apply`: ids, counts per kind, the scope the ops share, new texts if asked."""
    ctx = context or AuditContext()
    counts = {"added": 0, "updated": 0, "deleted": 0}
    ids: list[str] = []
    texts: list[dict[str, str]] = []
    for op in ops:
        if isinstance(op, AddOp):
            counts["added"] += 1
            ids.append(op.record.id)
            texts.append({"id": op.record.id, "memory": op.record.memory})
        elif isinstance(op, UpdateOp):
            counts["updated"] += 1
            ids.append(op.id)
            if op.memory is not None:
                texts.append({"id": op.id, "memory": op.memory})
        elif isinstance(op, DeleteOp):
            counts["deleted"] += 1
            ids.append(op.id)
    return ctx.entries(
        "apply",
        scope=common_scope(scopes),
        memory_ids=ids,
        details={k: n for k, n in counts.items() if n},
        content=texts or None,
    )


def import_entries(
    context: AuditContext | None, items: Sequence[StoredMemory], inserted: int
) -> list[AuditEntry]:
    ctx = context or AuditContext()
    return ctx.entries(
        "import",
        scope=common_scope(i.record.scope.as_dict() for i in items),
        memory_ids=[i.record.id for i in items],
        details={"memories": inserted, "given": len(items)},
    )


class AuditRecord(BaseModel):
    """One record of the chain, as stored."""

    model_config = ConfigDict(frozen=True)

    seq: int
    id: str
    at: AwareDatetime
    principal: str
    operation: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    memory_ids: list[str] = []
    outcome: str = "ok"
    details: dict[str, Any] = {}
    content: Any = None
    """None when content was not kept, or was erased."""
    content_hash: str | None = None
    prev_hash: str
    hash: str

    @property
    def scope(self) -> dict[str, str]:
        return Scope(self.user_id, self.agent_id, self.run_id).as_dict()

    def body(self, seq: int | None = None) -> list[Any]:
        """What the hash covers (with this record's own `seq`, or another one to test a move)."""
        return [
            AUDIT_VERSION,
            self.seq if seq is None else seq,
            self.id,
            format_time(self.at),
            self.principal,
            self.operation,
            self.scope,
            list(self.memory_ids),
            self.outcome,
            self.details,
            self.content_hash,
            self.prev_hash,
        ]

    def computed_hash(self, seq: int | None = None) -> str:
        return hashlib.sha256(canonical(self.body(seq)).encode("utf-8")).hexdigest()

    def summary(self) -> str:
        """How a problem names this record."""
        return (
            f"seq {self.seq} ({self.operation} by {self.principal} at {format_time(self.at)}, id {self.id})"
        )


@dataclass(frozen=True)
class SealedRow:
    """A record and the exact values its row gets (the content column includes the salt)."""

    record: AuditRecord
    content_text: str | None

    def row(self) -> tuple[Any, ...]:
        r = self.record
        return (
            r.seq,
            r.id,
            format_time(r.at),
            r.principal,
            r.operation,
            r.user_id,
            r.agent_id,
            r.run_id,
            canonical(r.memory_ids),
            r.outcome,
            canonical(r.details),
            self.content_text,
            r.content_hash,
            r.prev_hash,
            r.hash,
        )


def seal(entry: AuditEntry, *, seq: int, prev_hash: str) -> SealedRow:
    """Give `entry` its place in the chain: sequence number, previous hash, its own hash."""
    content_text: str | None = None
    content_hash: str | None = None
    if entry.content is not None:
        content_text = canonical({"salt": secrets.token_hex(16), "value": entry.content})
        content_hash = hashlib.sha256(content_text.encode("utf-8")).hexdigest()
    scope = Scope(**{k: v for k, v in entry.scope.items() if k in ("user_id", "agent_id", "run_id")})
    record = AuditRecord.model_construct(
        seq=seq,
        id=uuid.uuid4().hex,
        at=datetime.fromisoformat(format_time(entry.at)),
        principal=entry.principal,
        operation=entry.operation,
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        run_id=scope.run_id,
        memory_ids=list(entry.memory_ids),
        outcome=entry.outcome,
        details=_jsonable(dict(entry.details)),
        content=None if content_text is None else entry.content,
        content_hash=content_hash,
        prev_hash=prev_hash,
        hash="",
    )
    return SealedRow(record.model_copy(update={"hash": record.computed_hash()}), content_text)


def record_from_row(row: Sequence[Any]) -> tuple[AuditRecord, str | None]:
    """A stored row (AUDIT_COLS order) as a record, and its raw content column."""
    content_text = row[11]
    content = None
    if content_text is not None:
        try:
            content = json.loads(content_text).get("value")
        except (ValueError, AttributeError):
            content = None
    record = AuditRecord.model_construct(
        seq=int(row[0]),
        id=row[1],
        at=datetime.fromisoformat(row[2]),
        principal=row[3],
        operation=row[4],
        user_id=row[5],
        agent_id=row[6],
        run_id=row[7],
        memory_ids=json.loads(row[8]),
        outcome=row[9],
        details=json.loads(row[10]),
        content=content,
        content_hash=row[12],
        prev_hash=row[13],
        hash=row[14],
    )
    return record, content_text


def chain_rows(entries: Sequence[AuditEntry], head_seq: int, head_hash: str) -> list[SealedRow]:
    """Seal `entries` one after the other, starting after the head (seq, hash)."""
    rows: list[SealedRow] = []
    for entry in entries:
        sealed = seal(entry, seq=head_seq + 1, prev_hash=head_hash)
        rows.append(sealed)
        head_seq, head_hash = sealed.record.seq, sealed.record.hash
    return rows


@dataclass(frozen=True)
class ChainState:
    """Where the chain starts (the anchor left by pruning: seq 0 and GENESIS when never pruned)
    and where it ends (the head, updated with every append)."""

    anchor_seq: int = 0
    anchor_hash: str = GENESIS
    head_seq: int = 0
    head_hash: str = GENESIS


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` erased. `texts` are the erased texts, handed back once so the caller can
    scrub other copies (response caches); the store keeps none of them."""

    scope: dict[str, str]
    memories: int
    history: int
    audit_content: int
    """Audit records whose kept content was blanked."""
    compacted: bool = False
    """The file (SQLite) or tables (PostgreSQL) were compacted so freed space holds no old bytes."""
    texts: tuple[str, ...] = field(default=(), repr=False)


#: The columns `erasable` reads, for the records whose content is still kept.
CONTENT_OWNERS = "seq, user_id, agent_id, run_id, memory_ids"


def erasable(rows: Iterable[Sequence[Any]], scope: Scope, ids: set[str]) -> list[int]:
    """The seqs of the records (rows of `CONTENT_OWNERS`) about `scope` or naming one of `ids`:
    those whose kept content `forget` blanks (the chain keeps their hash)."""
    wanted = scope.as_dict()
    return [
        int(seq)
        for seq, user, agent, run, memory_ids in rows
        if all({"user_id": user, "agent_id": agent, "run_id": run}[k] == v for k, v in wanted.items())
        or ids.intersection(json.loads(memory_ids))
    ]


def prune_entry(
    principal: str, pruned: int, anchor_seq: int, anchor_hash: str, before: datetime
) -> AuditEntry:
    """The record a retention run leaves: what went, and the anchor the chain now starts from."""
    details: dict[str, Any] = {
        "pruned": pruned,
        "anchor_seq": anchor_seq,
        "anchor_hash": anchor_hash,
        "before": format_time(before),
    }
    return AuditEntry(operation="audit.prune", principal=principal, details=details)
