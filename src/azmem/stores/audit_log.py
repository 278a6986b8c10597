"""Reading, checking and pruning a store's audit trail, the same way on every backend.

`AuditLog` holds the rules; a backend only stores rows (`AuditTable`: SQLite in
``stores/sqlite/audit.py``, PostgreSQL in ``stores/postgres/audit.py``), like `KeyRing`.

`verify_chain` walks the records oldest first, in one pass and bounded memory, and
names each record that does not fit:

* **edited**: the record's fields no longer give its hash;
* **moved**: its hash fits only with another sequence number (records reordered, or
  renumbered after a removal);
* **removed**: a sequence number is missing, or the record's "previous hash" is not the
  hash of the record before it, or the chain head names records that are gone;
* **content**: kept content (when the operator turned it on) no longer matches its hash;
* **anchor**: the start of the chain moved without an ``audit.prune`` record saying so.

A chain is evidence relative to what is kept outside the database: someone who can
rewrite the whole table can also recompute every hash. So `verify` also checks an
`expect` anchor (a seq and hash printed earlier by ``azmem audit verify`` and kept
elsewhere, or the last line of an exported JSONL file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any, Protocol

from azmem.errors import InvalidInputError
from azmem.stores.audit import AuditEntry, AuditRecord, ChainState, default_principal
from azmem.stores.filters import format_time
from azmem.stores.models import utcnow

__all__ = ["AuditLog", "AuditQuery", "AuditTable", "Problem", "VerifyReport", "verify_chain"]

PAGE = 1000
_MOVE_REACH = 64  # how far a moved record is looked for (sequence numbers either side)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class AuditQuery:
    """Which records: every condition given must hold. ``operation`` ending in ``*`` is a prefix."""

    since: datetime | None = None
    until: datetime | None = None
    principal: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    operation: str | None = None
    memory_id: str | None = None

    def where(self, mark: str) -> tuple[str, list[Any]]:
        """SQL over fixed column names with `mark` placeholders ("?" or "%s"); values are bound."""
        parts: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            parts.append(f"at >= {mark}")
            params.append(format_time(self.since))
        if self.until is not None:
            parts.append(f"at < {mark}")
            params.append(format_time(self.until))
        for column in ("principal", "user_id", "agent_id", "run_id"):
            value = getattr(self, column)
            if value is not None:
                parts.append(f"{column} = {mark}")
                params.append(value)
        if self.operation is not None:
            if self.operation.endswith("*"):
                parts.append(f"operation LIKE {mark} ESCAPE '\\'")
                params.append(_escape_like(self.operation[:-1]) + "%")
            else:
                parts.append(f"operation = {mark}")
                params.append(self.operation)
        if self.memory_id is not None:
            parts.append(f"memory_ids LIKE {mark} ESCAPE '\\'")
            params.append("%" + _escape_like(json.dumps(self.memory_id, ensure_ascii=False)) + "%")
        return (" AND ".join(parts) or "1 = 1"), params


class AuditTable(Protocol):
    """A backend's rows; each call is its own transaction."""

    def available(self) -> bool:
        """False only for a store opened read-only before it had an audit trail."""
        ...

    def state(self) -> ChainState: ...

    def page(
        self, query: AuditQuery, after: int, limit: int, *, newest_first: bool
    ) -> list[tuple[AuditRecord, str | None]]:
        """Records matching `query` beyond sequence `after` (below it when newest first), with
        each one's raw content column."""
        ...

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]: ...

    def prune(self, before: datetime, principal: str) -> int:
        """Remove the oldest records written before `before` (a prefix), keeping an anchor;
        records it in the chain (``audit.prune``). Returns how many went."""
        ...


@dataclass(frozen=True)
class Problem:
    kind: str
    """edited | moved | removed | content | anchor | expected"""
    message: str
    seq: int | None = None
    record_id: str | None = None


@dataclass
class VerifyReport:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    anchor_seq: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _content_fits(record: AuditRecord, content_text: str | None) -> bool:
    if content_text is None:
        return True  # never kept, or erased: the hash it left stays in the chain
    return hashlib.sha256(content_text.encode("utf-8")).hexdigest() == record.content_hash


def verify_chain(
    rows: Iterable[tuple[AuditRecord, str | None]],
    state: ChainState,
    expect: tuple[int, str] | None = None,
) -> VerifyReport:
    """Check every record against its hash, its neighbour and the chain's anchor and head."""
    report = VerifyReport(anchor_seq=state.anchor_seq)
    prev_seq, prev_hash = state.anchor_seq, state.anchor_hash
    # Hash of each recent record by the seq it was written with: after two records swapped
    # places, the one after them still follows the right record, and is not reported.
    written: dict[int, str] = {state.anchor_seq: state.anchor_hash}
    prune_confirms = state.anchor_seq == 0
    expect_found = False

    def flag(kind: str, record: AuditRecord | None, message: str) -> None:
        report.problems.append(
            Problem(
                kind, message, None if record is None else record.seq, None if record is None else record.id
            )
        )

    for record, content_text in rows:
        report.records += 1
        report.first_seq = record.seq if report.first_seq is None else report.first_seq
        fits = record.computed_hash() == record.hash
        moved: int | None = None
        if not fits:
            moved = next(
                (
                    s
                    for d in range(1, _MOVE_REACH + 1)
                    for s in (record.seq - d, record.seq + d)
                    if s > 0 and record.computed_hash(s) == record.hash
                ),
                None,
            )
            if moved is not None:
                written[moved] = record.hash
                flag(
                    "moved",
                    record,
                    f"record at seq {record.seq} was written as seq {moved}: records were reordered, "
                    f"or renumbered after a removal ({record.summary()})",
                )
            else:
                flag("edited", record, f"record {record.summary()} was changed after it was written")
        elif record.seq != prev_seq + 1:
            gone = (
                f"seq {prev_seq + 1}"
                if record.seq == prev_seq + 2
                else f"seq {prev_seq + 1}-{record.seq - 1}"
            )
            flag("removed", record, f"{gone} missing before record {record.summary()}: removed")
        elif record.prev_hash != written.get(record.seq - 1, prev_hash):
            flag(
                "removed",
                record,
                f"record {record.summary()} does not follow seq {prev_seq}: the record written before it "
                "was removed or replaced",
            )
        if not _content_fits(record, content_text):
            flag("content", record, f"the kept content of record {record.summary()} was changed")
        if (
            record.operation == "audit.prune"
            and record.details.get("anchor_seq") == state.anchor_seq
            and record.details.get("anchor_hash") == state.anchor_hash
        ):
            prune_confirms = True
        if expect is not None and record.seq == expect[0]:
            expect_found = True
            if record.hash != expect[1]:
                flag("expected", record, f"record seq {record.seq} has hash {record.hash}, not {expect[1]}")
        if moved is None:
            written[record.seq] = record.hash
        written.pop(record.seq - 2 * _MOVE_REACH - 2, None)
        prev_seq, prev_hash = record.seq, record.hash
    report.last_seq = prev_seq if report.records else None
    report.head_hash = prev_hash
    if prev_seq < state.head_seq:
        flag(
            "removed", None, f"records after seq {prev_seq} are gone (the chain head is seq {state.head_seq})"
        )
    elif (prev_seq, prev_hash) != (state.head_seq, state.head_hash):
        flag(
            "removed",
            None,
            f"the chain head (seq {state.head_seq}) does not match the last record (seq {prev_seq})",
        )
    if not prune_confirms:
        flag(
            "anchor",
            None,
            f"the chain starts after seq {state.anchor_seq}, but no audit.prune record says "
            "it was pruned there",
        )
    if expect is not None and not expect_found:
        if expect[0] <= state.anchor_seq:
            flag(
                "expected",
                None,
                f"record seq {expect[0]} was pruned (the chain starts after seq {state.anchor_seq})",
            )
        else:
            flag("expected", None, f"record seq {expect[0]} is missing")
    return report


class AuditLog:
    """A store's audit trail: list, export, verify, prune, and appends outside a store write."""

    def __init__(self, table: AuditTable, *, on_close: Callable[[], None] | None = None) -> None:
        self._table = table
        self._on_close = on_close

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Record events that change nothing in the store (LLM calls of a search, a failed attempt)."""
        return self._table.append(entries) if entries else []

    def state(self) -> ChainState:
        return self._table.state() if self._table.available() else ChainState()

    def _rows(
        self, query: AuditQuery | None, *, newest_first: bool = False
    ) -> Iterator[tuple[AuditRecord, str | None]]:
        if not self._table.available():
            return
        q = query or AuditQuery()
        after = 2**62 if newest_first else -1
        while True:
            page = self._table.page(q, after, PAGE, newest_first=newest_first)
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1][0].seq

    def records(
        self, query: AuditQuery | None = None, *, newest_first: bool = False
    ) -> Iterator[AuditRecord]:
        """Every record matching `query`, oldest first (or newest first), read page by page."""
        return (record for record, _ in self._rows(query, newest_first=newest_first))

    def list(self, query: AuditQuery | None = None, limit: int = 100) -> list[AuditRecord]:
        """The newest `limit` records matching `query`, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive integer, got {limit!r}")
        out: list[AuditRecord] = []
        for record in self.records(query, newest_first=True):
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def export(self, out: IO[str], query: AuditQuery | None = None) -> int:
        """Write matching records as JSON Lines, oldest first (hashes included, so the file can be
        checked against the store later); returns how many."""
        n = 0
        for record in self.records(query):
            out.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
        return n

    def verify(self, expect: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the whole chain; `expect` is a (seq, hash) kept outside the store."""
        state = self.state()
        return verify_chain(self._rows(None), state, expect)

    def prune(
        self,
        older_than: timedelta | None = None,
        *,
        before: datetime | None = None,
        principal: str | None = None,
    ) -> int:
        """Apply a retention: drop the records older than `older_than` (or written before `before`)."""
        if (older_than is None) == (before is None):
            raise InvalidInputError("prune() takes either older_than or before")
        if before is None:
            assert older_than is not None
            if older_than.total_seconds() < 0:
                raise InvalidInputError("older_than must not be negative")
            before = utcnow() - older_than
        format_time(before)  # aware, in range
        return self._table.prune(before, principal or default_principal())
