"""The memory engine's side of the audit trail: who acts, which LLM calls were made, erasure.

Each public operation of `Memory` / `AsyncMemory` runs with an `AuditSession`:

* **Who**: ``acting_as(principal)`` around the calls (a server wraps each request in it:
  ``key:<name>``), else the OS user (``os:<name>``).
* **What**: the flows' store writes go through `AuditedStore`, which hands the store an
  `AuditContext` (principal, operation name, the LLM calls made on the way), so the store
  writes those records in the same transaction as the change.
* **LLM calls**: the driver wraps each chat and embedding call (`AuditSession.chat`,
  `.embed`): deployment, model, tokens, cost, request id, outcome. Tokens and cost come
  from the usage tracker the Memory gives its own clients (`AuditSink`, a `UsageTracker`
  that also hands each record to the running call). Calls of an operation that writes
  nothing (a query) or fails are appended on their own at the end (`closing`).
* **Caches**: entries written during the calls are tagged with the operation's scope
  (`azmem.azure.cache.tagged`), so `forget` can find them.

No memory text reaches a record unless the operator turned ``audit.include_content`` on.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, cast

from azmem.azure.cache import scope_tags, tagged
from azmem.azure.settings import AzmemSettings
from azmem.azure.usage import PriceTable, Usage, UsageRecord, UsageTracker
from azmem.config import AuditSettings
from azmem.errors import AzmemError
from azmem.stores.audit import AuditContext, AuditEntry, ForgetReport, default_principal
from azmem.stores.models import HistoryEvent, Op, Scope, StoredMemory, Vector
from azmem.stores.protocol import MemoryStore

__all__ = [
    "AuditSession",
    "AuditSink",
    "AuditedStore",
    "acting_as",
    "current_principal",
    "set_principal",
]

log = logging.getLogger("azmem.audit")

MUTATING = frozenset({"add", "update", "delete", "delete_all", "reset", "reindex", "forget"})
_PRINCIPAL: ContextVar[str | None] = ContextVar("azmem_principal", default=None)
_USAGE: ContextVar[list[UsageRecord] | None] = ContextVar("azmem_audit_usage", default=None)
_REQUEST_ID_KEYS = ("request_id", "apim-request-id", "x-request-id", "apim_request_id", "x_request_id")


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """Record every Memory operation inside the block (this thread / task) as ``principal``."""
    token = _PRINCIPAL.set(principal)
    try:
        yield
    finally:
        _PRINCIPAL.reset(token)


def set_principal(principal: str | None) -> None:
    """Record the rest of this task's (thread's) operations as ``principal``: for code that learns
    who it serves inside a task of its own (an MCP tool call), where a ``with`` block does not fit."""
    _PRINCIPAL.set(principal)


def current_principal() -> str | None:
    return _PRINCIPAL.get()


class AuditSink(UsageTracker):
    """A usage tracker that also hands each record to the LLM call being audited (if any).

    ``report=False``: only price and hand over each record, adding nothing to the totals or to
    the cost metric (the Memory's embedder: its calls were never part of those figures).
    """

    def __init__(self, prices: PriceTable | None = None, *, report: bool = True) -> None:
        super().__init__(prices)
        self._report = report

    def record(
        self,
        *,
        deployment: str,
        usage: Usage,
        model: str | None = None,
        prompt_name: str | None = None,
        group_id: str | None = None,
        cached: bool | None = None,
    ) -> UsageRecord:
        make = super().record if self._report else self.priced
        rec = make(
            deployment=deployment,
            usage=usage,
            model=model,
            prompt_name=prompt_name,
            group_id=group_id,
            cached=cached,
        )
        collected = _USAGE.get()
        if collected is not None:
            collected.append(rec)
        return rec


def _usage_details(records: Sequence[UsageRecord]) -> dict[str, Any]:
    paid = [r for r in records if not r.cached]
    costs = [r.cost for r in paid if r.cost is not None]
    out: dict[str, Any] = {
        "input_tokens": sum(r.usage.input_tokens for r in paid),
        "output_tokens": sum(r.usage.output_tokens for r in paid),
        "total_tokens": sum(r.usage.total_tokens for r in paid),
        "cost_usd": round(sum(costs), 10) if costs or not paid else None,
    }
    if records:
        out["deployment"] = records[-1].deployment
        if records[-1].model:
            out["model"] = records[-1].model
        out["cached"] = all(r.cached for r in records)
    return out


def _result_details(result: Any, records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Deployment, model, tokens, cost and request id of a finished chat call."""
    out: dict[str, Any] = {}
    for name in ("deployment", "model", "request_id", "cached", "attempts"):
        value = getattr(result, name, None)
        if isinstance(value, str | int):
            out[name] = value
    if records:
        usage = _usage_details(records)
        for key in ("input_tokens", "output_tokens", "total_tokens", "cost_usd", "deployment", "model"):
            if key in usage:
                out.setdefault(key, usage[key])
        return out
    tokens = getattr(result, "usage", None)
    if isinstance(tokens, Usage):  # a client without the Memory's tracker: price it here
        out.update(
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            total_tokens=tokens.total_tokens,
        )
        cached = tokens.cached or bool(out.get("cached"))
        out["cost_usd"] = (
            0.0 if cached else PriceTable().cost(out.get("model") or out.get("deployment"), tokens)
        )
    return out


def _error_details(exc: BaseException, records: Sequence[UsageRecord]) -> dict[str, Any]:
    out: dict[str, Any] = {"error": exc.code if isinstance(exc, AzmemError) else type(exc).__name__}
    if records:
        out.update(_usage_details(records))
    if isinstance(exc, AzmemError):
        info = exc.debug_info or {}
        if isinstance(info.get("deployment"), str):
            out.setdefault("deployment", info["deployment"])
        for key in _REQUEST_ID_KEYS:
            if isinstance(info.get(key), str):
                out["request_id"] = info[key]
                break
        if exc.status_code is not None:
            out["status"] = exc.status_code
    return out


@dataclass
class AuditSession:
    """One public operation: its principal, name and scope, and the calls not yet written."""

    operation: str
    principal: str
    scope: dict[str, str]
    settings: AuditSettings

    def __post_init__(self) -> None:
        self.pending: list[AuditEntry] = []

    @property
    def mutating(self) -> bool:
        return self.operation in MUTATING

    def _entry(self, operation: str, outcome: str, details: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            operation=operation,
            principal=self.principal,
            scope=self.scope,
            outcome="error" if outcome == "error" else "ok",
            details={"during": self.operation, **details},
        )

    def take(self) -> AuditContext:
        """The context of a store write: it carries (and empties) the calls made so far."""
        related, self.pending = tuple(self.pending), []
        return AuditContext(
            principal=self.principal,
            operation=self.operation,
            include_content=self.settings.include_content,
            related=related,
        )

    def give_back(self, context: AuditContext) -> None:
        """A write that failed committed nothing: its calls are still to be written."""
        self.pending[:0] = context.related

    def note(self, operation: str, details: dict[str, Any]) -> None:
        self.pending.append(self._entry(operation, "ok", details))

    @contextmanager
    def call(self, operation: str, details: dict[str, Any]) -> Iterator[list[Any]]:
        """Audit one LLM call: yields a list to put its result in. Cache entries written meanwhile
        are tagged with the scope; usage records of the Memory's clients are collected."""
        collected: list[UsageRecord] = []
        result: list[Any] = []
        token = _USAGE.set(collected)
        try:
            with tagged(scope_tags(self.scope)):
                yield result
        except Exception as exc:
            self.pending.append(
                self._entry(operation, "error", {**details, **_error_details(exc, collected)})
            )
            raise
        finally:
            _USAGE.reset(token)
        if operation == "llm.chat":
            self.pending.append(
                self._entry(
                    operation, "ok", {**details, **_result_details(result[0] if result else None, collected)}
                )
            )
        elif collected:  # embeddings: only calls of an Azure embedder (a local model is no LLM call)
            self.pending.append(self._entry(operation, "ok", {**details, **_usage_details(collected)}))

    def closing(self, error: BaseException | None) -> list[AuditEntry]:
        """What is left to write when the operation ends: its calls, and its failure if it changes data."""
        entries, self.pending = self.pending, []
        if error is not None and self.mutating:
            entries.append(
                AuditEntry(
                    operation=self.operation,
                    principal=self.principal,
                    scope=self.scope,
                    outcome="error",
                    details={"error": error.code if isinstance(error, AzmemError) else type(error).__name__},
                )
            )
        return entries


class AuditedStore:
    """The store as the flows see it: every write carries the session's `AuditContext`."""

    def __init__(self, store: MemoryStore, session: AuditSession) -> None:
        self._store = store
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        context = self._session.take()
        try:
            return fn(*args, audit=context, **kwargs)
        except BaseException:
            self._session.give_back(context)
            raise

    def apply(self, ops: Sequence[Op]) -> builtins.list[HistoryEvent]:
        return cast(builtins.list[HistoryEvent], self._write(self._store.apply, ops))

    def delete_all(self, scope: Scope) -> int:
        return int(self._write(self._store.delete_all, scope))

    def reset(self) -> None:
        self._write(self._store.reset)

    def forget(self, scope: Scope, *, compact: bool = True) -> ForgetReport:
        return cast(ForgetReport, self._write(self._store.forget, scope, compact=compact))

    def replace_vectors(
        self, embedder_name: str, dimension: int, vectors: Iterable[tuple[str, Vector]]
    ) -> int:
        return int(self._write(self._store.replace_vectors, embedder_name, dimension, vectors))

    def import_memories(self, items: Sequence[StoredMemory]) -> int:
        return int(self._write(self._store.import_memories, items))

    def import_history(self, events: Sequence[HistoryEvent]) -> int:
        return int(self._write(self._store.import_history, events))


# -- what the drivers call -------------------------------------------------------------------


class Engine(Protocol):
    """What these functions use of a Memory (`MemoryBase`, which imports this module)."""

    _store: MemoryStore
    _llm: Any | None
    _audit: AuditSettings

    @property
    def settings(self) -> AzmemSettings: ...

    def _prune_due(self) -> bool: ...


def audit_settings(memory: Any) -> AuditSettings:
    """The settings' ``audit`` section when they have one, else the environment's."""
    found = getattr(memory.settings, "audit", None)
    return found if isinstance(found, AuditSettings) else AuditSettings.from_env()


def start(memory: Engine, flow: object, scope: Scope | None) -> AuditSession:
    operation = str(getattr(flow, "__name__", "operation")).removesuffix("_flow")
    principal = current_principal() or default_principal()
    return AuditSession(
        operation=operation,
        principal=principal,
        scope={} if scope is None else {k: v for k, v in scope.as_dict().items() if isinstance(v, str)},
        settings=memory._audit,
    )


def has_work(memory: Engine, session: AuditSession, error: BaseException | None) -> bool:
    """Whether `finish` has anything to do (so a driver skips the trip to the store's thread)."""
    if getattr(memory, "_closed", False) or getattr(memory._store, "read_only", False):
        return False
    retention = session.settings.retention_days is not None and error is None and session.mutating
    return bool(session.pending) or (error is not None and session.mutating) or retention


def finish(memory: Engine, session: AuditSession, error: BaseException | None) -> None:
    """Write what the operation left (calls, failure), then apply the retention if due. Never raises:
    an audit write that fails is logged, and the operation's own error is what the caller sees."""
    store = memory._store
    if not has_work(memory, session, error):
        return
    entries = session.closing(error)
    try:
        if entries:
            store.audit_log.append(entries)
        retention = session.settings.retention_days
        if retention is not None and error is None and session.mutating and memory._prune_due():
            from datetime import timedelta

            store.audit_log.prune(timedelta(days=retention), principal=session.principal)
    except AzmemError as exc:
        log.warning("could not write %d audit record(s) of %s: %s", len(entries), session.operation, exc)
