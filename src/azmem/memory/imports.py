"""Adds that are safe to repeat, for imports that may be re-run.

An import killed half-way (a SIGKILL, a lost terminal) leaves the chunks it finished
committed, each whole (``add`` is one transaction); re-running it used to add those
chunks again. Here every source message gets a stable id, derived from what makes it
the same message — its scope, role, author name, timestamp and text, never its position
in a file or the chunk it fell in — so a re-run, with any batch size, finds what is
already stored and adds only the rest.

* Verbatim (``infer=False``): the message's id *is* the memory's id; a message whose id is
  stored, or repeated earlier in the same call, is skipped.
* Inferred: the model's facts are not one-to-one with messages, so the chunk is the unit.
  Its key (:func:`chunk_key`, from its messages' ids) goes into the metadata of the
  memories it adds or updates under :data:`IMPORT_KEY`; a chunk whose key is found in its
  scope is skipped without calling the model.

These are separate flows rather than options of ``add``, so ``add`` keeps its contract
(a fresh id per memory) and these functions stay the only place with a derived id.

Both faces that import (``azmem import`` and ``POST /v1/import``) run the same loop,
:func:`import_conversations` / :func:`aimport_conversations`: the same chunks (so an
inferred chunk imported by one is recognised by the other), the same skips, the same
counts. What each face adds is its own input reading and checks (files and lines, or an
upload and the API key's scopes).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azmem.embeddings.rows import check_rows
from azmem.memory.flows import add_flow
from azmem.memory.inputs import InputMessage, check_filters, check_metadata, make_scope, normalize_messages
from azmem.memory.results import AddResult, MemoryEvent
from azmem.memory.steps import MAX_ADD_BYTES, Embed, EngineState, Flow, OpenStore, StoreCall
from azmem.stores.models import AddOp, MemoryRecord, Op, Scope
from azmem.stores.protocol import MemoryStore

if TYPE_CHECKING:
    from azmem.memory.async_memory import AsyncMemory
    from azmem.memory.memory import Memory

__all__ = [
    "DEFAULT_CHUNK_MESSAGES",
    "IMPORT_KEY",
    "ImportConversation",
    "ImportOutcome",
    "ImportTally",
    "aimport_chunk",
    "aimport_conversations",
    "aimport_verbatim",
    "chunk_key",
    "chunk_messages",
    "import_chunk",
    "import_conversations",
    "import_inferred_flow",
    "import_verbatim",
    "import_verbatim_flow",
    "message_id",
]

DEFAULT_CHUNK_MESSAGES = 20
"""Messages per add (one transaction, one LLM round) unless the caller says otherwise.

Both faces default to it: an inferred chunk is recognised on a re-run by its messages,
so a re-run must cut the conversation the same way."""

IMPORT_KEY = "azmem_import"
"""Metadata key holding the chunk key of an inferred import, so a re-run can find the chunk."""

_NAMESPACE = uuid.UUID("5b0c6f0e-2f7a-5d1e-9c38-6a1f0f3e9b41")
"""Fixed forever: changing it would make every earlier import look new."""

_SKIPPED_ROLES = frozenset({"system", "developer"})
"""Instructions to the assistant, not something said: ``add`` stores none, so neither does an import."""


@dataclass(frozen=True)
class ImportOutcome:
    """What one idempotent add did: the memories it added, and the messages it left alone."""

    result: AddResult
    skipped: int
    """Messages already stored (by an earlier run), or repeated earlier in the same call."""


def message_id(scope: Scope, message: InputMessage) -> str:
    """The stable id of one source message in one scope (a UUID, like any memory id).

    JSON-encoded so no two different messages share a key string (no separator can be
    forged by the text); a missing timestamp or name is part of the key as ``null``.
    """
    key = json.dumps(
        [
            scope.user_id,
            scope.agent_id,
            scope.run_id,
            message.role,
            message.name,
            message.timestamp.isoformat() if message.timestamp is not None else None,
            message.content,
        ],
        ensure_ascii=False,
    )
    return str(uuid.uuid5(_NAMESPACE, key))


def chunk_key(
    messages: object, *, user_id: object = None, agent_id: object = None, run_id: object = None
) -> str:
    """The key of a chunk of messages for an inferred import: a digest of its messages' ids, in order."""
    scope = make_scope(user_id, agent_id, run_id)
    return _chunk_digest(scope, normalize_messages(messages))


def _chunk_digest(scope: Scope, messages: Sequence[InputMessage]) -> str:
    ids = [message_id(scope, m) for m in messages]
    return hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()[:32]


def import_verbatim_flow(
    messages: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    metadata: object = None,
) -> Flow[ImportOutcome]:
    """``add(messages, infer=False)`` that skips messages already stored under their :func:`message_id`.

    Stores the same records ``add`` would (``role`` and ``timestamp`` in metadata), with the
    derived id; atomic like ``add``. Nothing is embedded when everything is skipped.
    """
    scope = make_scope(user_id, agent_id, run_id)
    msgs = normalize_messages(messages)
    md = check_metadata(metadata)
    kept = [m for m in msgs if m.role not in _SKIPPED_ROLES]
    ids = [message_id(scope, m) for m in kept]

    def stored(store: MemoryStore) -> set[str]:
        return {mid for mid in set(ids) if store.get(mid) is not None}

    present: set[str] = yield StoreCall(stored)
    records: list[MemoryRecord] = []
    seen = set(present)
    for m, mid in zip(kept, ids, strict=True):
        if mid in seen:
            continue
        seen.add(mid)
        meta: dict[str, Any] = {**md, "role": m.role}
        if m.timestamp is not None:
            meta["timestamp"] = m.timestamp.isoformat()
        records.append(
            MemoryRecord.new(m.content, scope, metadata=meta, id=mid, role=m.role, actor_id=m.name)
        )
    skipped = len(kept) - len(records)
    if not records:
        return ImportOutcome(AddResult(), skipped)
    vectors = check_rows((yield Embed([r.memory for r in records])), len(records))
    yield OpenStore()
    ops: list[Op] = [AddOp(r, v) for r, v in zip(records, vectors, strict=True)]
    yield StoreCall(lambda s: s.apply(ops))
    events = [MemoryEvent(id=r.id, memory=r.memory, event="ADD", metadata=r.metadata) for r in records]
    return ImportOutcome(AddResult(results=events), skipped)


def import_verbatim(
    memory: Memory,
    messages: Sequence[Mapping[str, Any]] | str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ImportOutcome:
    """Run :func:`import_verbatim_flow` on a blocking ``Memory``: its store, embedder, metrics and
    audit trail, which records the operation as ``import_verbatim`` in the scope."""
    flow = import_verbatim_flow(
        messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata
    )
    return memory._run(flow, Scope(user_id, agent_id, run_id))


async def aimport_verbatim(
    memory: AsyncMemory,
    messages: Sequence[Mapping[str, Any]] | str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ImportOutcome:
    """The awaitable mirror of :func:`import_verbatim`."""
    flow = import_verbatim_flow(
        messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata
    )
    return await memory._run(flow, Scope(user_id, agent_id, run_id))


def import_inferred_flow(
    state: EngineState,
    messages: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    metadata: object = None,
) -> Flow[ImportOutcome]:
    """``add(messages, infer=True)``, unless a memory of the scope already carries the chunk's key.

    The key (:func:`chunk_key`) goes into the metadata of what the chunk adds or updates. A
    chunk that changed nothing (every fact already known) leaves no key and is sent again
    on a re-run, where reconciliation finds its facts stored once more.
    """
    scope = make_scope(user_id, agent_id, run_id)
    msgs = normalize_messages(messages)
    key = _chunk_digest(scope, msgs)
    md = {**check_metadata(metadata), IMPORT_KEY: key}
    found = check_filters({IMPORT_KEY: key})
    page = yield StoreCall(lambda s: s.list(scope, found, limit=1))
    if page.records:
        return ImportOutcome(AddResult(), len(msgs))
    result = yield from add_flow(
        state, messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=md, infer=True
    )
    return ImportOutcome(result, 0)


@dataclass
class ImportConversation:
    """One conversation to import: its messages, the scope it goes to, and metadata for every memory."""

    messages: list[dict[str, Any]]
    scope: Mapping[str, str]
    """``user_id`` / ``agent_id`` / ``run_id``: only the ids that are set."""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportTally:
    """What an import did so far (kept up to date, so an import stopped by an error says how far it got)."""

    conversations: int = 0
    messages: int = 0
    skipped: int = 0
    """Messages already in the store (an earlier run imported them) or repeated in the input."""
    events: Counter[str] = field(default_factory=Counter)

    def count(self, chunk: Sequence[object], outcome: ImportOutcome) -> None:
        self.messages += len(chunk)
        self.skipped += outcome.skipped
        self.events.update(event.event for event in outcome.result.results)

    def event_counts(self) -> dict[str, int]:
        return {k: self.events.get(k, 0) for k in ("ADD", "UPDATE", "DELETE")}


def chunk_messages(
    messages: Sequence[dict[str, Any]], batch_size: int = DEFAULT_CHUNK_MESSAGES
) -> Iterator[list[dict[str, Any]]]:
    """Runs of at most ``batch_size`` messages, each under the engine's per-add size limit."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        n = len(str(message.get("content", "")).encode("utf-8", "surrogatepass"))
        if chunk and (len(chunk) >= batch_size or size + n > MAX_ADD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += n
    if chunk:
        yield chunk


def _chunk_flow(
    memory: Memory | AsyncMemory,
    chunk: list[dict[str, Any]],
    infer: bool | None,
    metadata: Mapping[str, Any] | None,
    scope: Mapping[str, str],
) -> Flow[ImportOutcome]:
    ids: dict[str, Any] = dict(scope)
    if memory._state.resolve_infer(infer):
        return import_inferred_flow(memory._state, chunk, metadata=metadata, **ids)
    return import_verbatim_flow(chunk, metadata=metadata, **ids)


def import_chunk(
    memory: Memory,
    chunk: list[dict[str, Any]],
    *,
    infer: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    scope: Mapping[str, str],
) -> ImportOutcome:
    """One chunk, idempotently: verbatim message by message, inferred chunk by chunk (``infer=None``:
    infer when the memory can)."""
    ids = Scope(scope.get("user_id"), scope.get("agent_id"), scope.get("run_id"))
    return memory._run(_chunk_flow(memory, chunk, infer, metadata, scope), ids)


async def aimport_chunk(
    memory: AsyncMemory,
    chunk: list[dict[str, Any]],
    *,
    infer: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    scope: Mapping[str, str],
) -> ImportOutcome:
    """The awaitable mirror of :func:`import_chunk`."""
    ids = Scope(scope.get("user_id"), scope.get("agent_id"), scope.get("run_id"))
    return await memory._run(_chunk_flow(memory, chunk, infer, metadata, scope), ids)


def _walk(
    conversations: Iterable[ImportConversation],
    batch_size: int,
    tally: ImportTally | None,
    on_chunk: Callable[[int], None] | None,
) -> Generator[tuple[ImportConversation, list[dict[str, Any]]], ImportOutcome, ImportTally]:
    """The import's order and counting, once for both faces: yields each chunk to import and
    takes back its outcome, so the sync and async drivers differ only in how they import it."""
    tally = tally if tally is not None else ImportTally()
    for conv in conversations:
        for chunk in chunk_messages(conv.messages, batch_size):
            outcome = yield conv, chunk
            tally.count(chunk, outcome)
            if on_chunk is not None:
                on_chunk(len(chunk))
        tally.conversations += 1
    return tally


def import_conversations(
    memory: Memory,
    conversations: Iterable[ImportConversation],
    *,
    infer: bool | None = None,
    batch_size: int = DEFAULT_CHUNK_MESSAGES,
    tally: ImportTally | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> ImportTally:
    """Every conversation in chunks of ``batch_size`` messages, in order, counted in ``tally``.

    ``on_chunk`` hears the number of messages of each chunk done (progress bars). The
    caller checks its input first: a chunk that fails stops the import there.
    """
    walk = _walk(conversations, batch_size, tally, on_chunk)
    try:
        conv, chunk = next(walk)
        while True:
            outcome = import_chunk(
                memory, chunk, infer=infer, metadata=conv.metadata or None, scope=conv.scope
            )
            conv, chunk = walk.send(outcome)
    except StopIteration as stop:
        done: ImportTally = stop.value
        return done


async def aimport_conversations(
    memory: AsyncMemory,
    conversations: Iterable[ImportConversation],
    *,
    infer: bool | None = None,
    batch_size: int = DEFAULT_CHUNK_MESSAGES,
    tally: ImportTally | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> ImportTally:
    """The awaitable mirror of :func:`import_conversations`."""
    walk = _walk(conversations, batch_size, tally, on_chunk)
    try:
        conv, chunk = next(walk)
        while True:
            outcome = await aimport_chunk(
                memory, chunk, infer=infer, metadata=conv.metadata or None, scope=conv.scope
            )
            conv, chunk = walk.send(outcome)
    except StopIteration as stop:
        done: ImportTally = stop.value
        return done
