"""The memory engine's logic, written once and free of I/O.

Every public operation of `Memory` / `AsyncMemory` is a *flow*: a generator that
validates its input, then yields the I/O it needs as small step objects (`Embed`,
`Chat`, `StoreCall`, `OpenStore`) and receives each result back through ``send``.
`Memory` drives a flow with blocking calls, `AsyncMemory` with awaits; neither
contains any logic of its own, so the two faces cannot drift apart.

Atomicity of ``add`` follows from the shape of the flow: every LLM call, embedding
and store read happens first; the only write is one `StoreCall` applying all ops in
one store transaction at the very end. An exception anywhere before it (a 5xx that
outlived its retries, a schema violation, an invented id) leaves the store exactly
as it was, and reaches the caller as the typed error the client layer raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.embeddings.rows import check_rows
from azmem.errors import EmbedderMismatchError, InvalidInputError, MemoryNotFoundError
from azmem.memory.inputs import (
    InputMessage,
    check_filters,
    check_limit,
    check_memory_id,
    check_metadata,
    check_mode,
    check_threshold,
    group_id,
    input_text,
    make_scope,
    normalize_messages,
)
from azmem.memory.planning import Change, clean_facts, gather_existing, plan_changes
from azmem.memory.rendering import answer_messages, extraction_messages, reconcile_messages
from azmem.memory.results import (
    AddResult,
    HistoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryList,
    QueryResult,
    ReindexResult,
    SearchResult,
)
from azmem.memory.schemas import Answer, Extraction, answer_model, reconcile_model
from azmem.memory.steps import (
    CONVERSATION_ROLES,
    MAX_MESSAGE_BYTES,
    NO_CHAT_QUERY_NOTE,
    NO_MEMORIES_NOTE,
    SIMILAR_PER_FACT,
    Chat,
    Embed,
    EngineState,
    Flow,
    OpenStore,
    ScrubCaches,
    StoreCall,
)
from azmem.stores.audit import ForgetReport
from azmem.stores.models import (
    AddOp,
    DeleteOp,
    HistoryEvent,
    MemoryRecord,
    Op,
    Page,
    Scope,
    SearchHit,
    UpdateOp,
    utcnow,
)
from azmem.stores.protocol import MemoryStore


def add_flow(
    state: EngineState,
    messages: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    metadata: object = None,
    infer: object = None,
) -> Flow[AddResult]:
    scope = make_scope(user_id, agent_id, run_id)
    msgs = normalize_messages(messages)
    md = check_metadata(metadata)
    if not state.resolve_infer(infer):
        return (yield from _add_verbatim(msgs, scope, md))
    return (yield from _add_inferred(state, msgs, scope, md))


def _add_verbatim(msgs: list[InputMessage], scope: Scope, md: dict[str, Any]) -> Flow[AddResult]:
    # System messages are instructions to the assistant, not something the user said.
    kept = [m for m in msgs if m.role not in ("system", "developer")]
    if not kept:
        return AddResult()
    records = []
    for m in kept:
        meta = {**md, "role": m.role}
        if m.timestamp is not None:
            meta["timestamp"] = m.timestamp.isoformat()
        records.append(MemoryRecord.new(m.content, scope, metadata=meta, role=m.role, actor_id=m.name))
    vectors = check_rows((yield Embed([r.memory for r in records])), len(records))
    yield OpenStore()
    ops: list[Op] = [AddOp(r, v) for r, v in zip(records, vectors, strict=True)]
    yield StoreCall(lambda s: s.apply(ops))
    return AddResult(
        results=[MemoryEvent(id=r.id, memory=r.memory, event="ADD", metadata=r.metadata) for r in records]
    )


def _add_inferred(
    state: EngineState, msgs: list[InputMessage], scope: Scope, md: dict[str, Any]
) -> Flow[AddResult]:
    if not any(m.role in CONVERSATION_ROLES for m in msgs):
        return AddResult()
    prompts = state.prompts
    extraction = yield Chat(
        prompts.extract,
        extraction_messages(prompts.extract, msgs, agent=scope.agent_id is not None, now=utcnow()),
        Extraction,
        group_id(scope),
    )
    assert isinstance(extraction, Extraction)
    facts = clean_facts(extraction.facts)
    if not facts:
        return AddResult()

    fact_vectors = check_rows((yield Embed([f.text for f in facts])), len(facts))
    yield OpenStore()

    def neighbours(store: MemoryStore) -> list[list[SearchHit]]:
        return [
            store.search(f.text, v, scope, limit=SIMILAR_PER_FACT, mode="hybrid")
            for f, v in zip(facts, fact_vectors, strict=True)
        ]

    existing = gather_existing((yield StoreCall(neighbours)))
    if existing:
        decided = yield Chat(
            prompts.reconcile,
            reconcile_messages(prompts.reconcile, facts, existing),
            reconcile_model(len(facts), len(existing)),
            group_id(scope),
        )
        changes = plan_changes(facts, existing, decided.decisions)
    else:
        # Nothing similar is stored: every fact is new, and asking the model would only
        # cost a call and a chance to lose a fact.
        changes = [Change("ADD", i, f.text) for i, f in enumerate(facts)]

    # Vectors: reuse the fact's own when the text is unchanged, embed the rest in one batch.
    fresh = [c.text for c in changes if c.event in ("ADD", "UPDATE") and c.text != facts[c.fact].text]
    fresh_vectors = check_rows((yield Embed(fresh)), len(fresh)) if fresh else None
    fresh_index = {t: i for i, t in enumerate(fresh)}

    def vector_for(c: Change) -> npt.NDArray[np.float32]:
        source = fact_vectors if c.text == facts[c.fact].text or fresh_vectors is None else fresh_vectors
        row: npt.NDArray[np.float32] = source[c.fact if source is fact_vectors else fresh_index[c.text]]
        return row

    now = utcnow()
    ops: list[Op] = []
    events: list[MemoryEvent] = []
    for c in changes:
        role = "assistant" if facts[c.fact].subject == "agent" else "user"
        if c.event == "ADD":
            record = MemoryRecord.new(c.text, scope, metadata=md, role=role, created_at=now)
            ops.append(AddOp(record, vector_for(c)))
            events.append(MemoryEvent(id=record.id, memory=c.text, event="ADD", metadata=record.metadata))
        elif c.event == "UPDATE" and c.target is not None:
            if c.text == c.target.memory:
                continue
            meta = {**c.target.metadata, **md}
            ops.append(
                UpdateOp(c.target.id, memory=c.text, vector=vector_for(c), metadata=meta, updated_at=now)
            )
            events.append(
                MemoryEvent(
                    id=c.target.id,
                    memory=c.text,
                    event="UPDATE",
                    previous_memory=c.target.memory,
                    metadata=meta,
                )
            )
        elif c.event == "DELETE" and c.target is not None:
            ops.append(DeleteOp(c.target.id))
            events.append(
                MemoryEvent(
                    id=c.target.id, memory=c.target.memory, event="DELETE", metadata=c.target.metadata
                )
            )
    if ops:
        yield StoreCall(lambda s: s.apply(ops))
    return AddResult(results=events)


def search_flow(
    query: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    filters: object = None,
    limit: object = 10,
    threshold: object = None,
    mode: object = "hybrid",
) -> Flow[SearchResult]:
    text = input_text(query, "query", MAX_MESSAGE_BYTES)
    hits = yield from _search(text, make_scope(user_id, agent_id, run_id), filters, limit, threshold, mode)
    return SearchResult(
        results=[MemoryItem.from_record(h.record, score=h.score, similarity=h.similarity) for h in hits]
    )


def _search(
    text: str, scope: Scope, filters: object, limit: object, threshold: object, mode: object
) -> Flow[list[SearchHit]]:
    flt = check_filters(filters)
    n = check_limit(limit)
    minimum = check_threshold(threshold)
    how = check_mode(mode)
    vector = None if how == "bm25" else check_rows((yield Embed([text])), 1)[0]
    yield OpenStore()
    hits: list[SearchHit] = yield StoreCall(
        lambda s: s.search(text, vector, scope, flt, limit=n, mode=how, threshold=minimum)
    )
    return hits


def query_flow(
    state: EngineState,
    question: object,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    filters: object = None,
    limit: object = 10,
) -> Flow[QueryResult]:
    text = input_text(question, "question", MAX_MESSAGE_BYTES)
    scope = make_scope(user_id, agent_id, run_id)
    hits = yield from _search(text, scope, filters, limit, None, "hybrid")
    items = [MemoryItem.from_record(h.record, score=h.score, similarity=h.similarity) for h in hits]
    if not state.can_chat:
        return QueryResult(question=text, memories=items, note=NO_CHAT_QUERY_NOTE)
    if not hits:
        return QueryResult(question=text, note=NO_MEMORIES_NOTE)
    prompt = state.prompts.answer
    answer = yield Chat(prompt, answer_messages(prompt, text, hits), answer_model(len(hits)), group_id(scope))
    assert isinstance(answer, Answer)
    cited: list[str] = []
    for i in answer.used:
        if 0 <= i < len(hits) and hits[i].record.id not in cited:
            cited.append(hits[i].record.id)
    return QueryResult(question=text, answer=answer.answer, cited_ids=cited, memories=items, answered=True)


def _optional_scope(user_id: object, agent_id: object, run_id: object) -> Scope | None:
    scope = make_scope(user_id, agent_id, run_id, required=False)
    return None if scope.is_empty() else scope


def get_flow(
    memory_id: object, *, user_id: object = None, agent_id: object = None, run_id: object = None
) -> Flow[MemoryItem]:
    mid = check_memory_id(memory_id)
    scope = _optional_scope(user_id, agent_id, run_id)
    record: MemoryRecord | None = yield StoreCall(lambda s: s.get(mid, scope))
    if record is None:
        raise _not_found(mid)
    return MemoryItem.from_record(record)


def get_all_flow(
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
    filters: object = None,
    limit: object = 100,
    cursor: object = None,
) -> Flow[MemoryList]:
    scope = make_scope(user_id, agent_id, run_id)
    flt = check_filters(filters)
    n = check_limit(limit)
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidInputError(
            f"cursor must be the next_cursor string of a previous page, not {type(cursor).__name__}"
        )
    page: Page = yield StoreCall(lambda s: s.list(scope, flt, limit=n, cursor=cursor))
    return MemoryList(results=[MemoryItem.from_record(r) for r in page.records], next_cursor=page.next_cursor)


def update_flow(
    memory_id: object,
    text: object = None,
    metadata: object = None,
    *,
    user_id: object = None,
    agent_id: object = None,
    run_id: object = None,
) -> Flow[MemoryItem]:
    mid = check_memory_id(memory_id)
    scope = _optional_scope(user_id, agent_id, run_id)
    if text is None and metadata is None:
        raise InvalidInputError("update() needs text, metadata or both")
    new_text = None if text is None else input_text(text, "text", MAX_MESSAGE_BYTES)
    md = None if metadata is None else check_metadata(metadata)
    current: MemoryRecord | None = yield StoreCall(lambda s: s.get(mid, scope))
    if current is None:
        raise _not_found(mid)
    if (new_text is None or new_text == current.memory) and (md is None or md == current.metadata):
        return MemoryItem.from_record(current)
    if new_text == current.memory:
        new_text = None
    vector = None if new_text is None else check_rows((yield Embed([new_text])), 1)[0]
    yield OpenStore()
    op = UpdateOp(mid, memory=new_text, vector=vector, metadata=md)
    yield StoreCall(lambda s: s.apply([op]))
    updated: MemoryRecord | None = yield StoreCall(lambda s: s.get(mid))
    if updated is None:  # deleted by another process in between
        raise _not_found(mid)
    return MemoryItem.from_record(updated)


def delete_flow(
    memory_id: object, *, user_id: object = None, agent_id: object = None, run_id: object = None
) -> Flow[MemoryEvent]:
    mid = check_memory_id(memory_id)
    scope = _optional_scope(user_id, agent_id, run_id)
    current: MemoryRecord | None = yield StoreCall(lambda s: s.get(mid, scope))
    if current is None:
        raise _not_found(mid)
    yield OpenStore()
    yield StoreCall(lambda s: s.apply([DeleteOp(mid)]))
    return MemoryEvent(id=mid, memory=current.memory, event="DELETE", metadata=current.metadata)


def delete_all_flow(*, user_id: object = None, agent_id: object = None, run_id: object = None) -> Flow[int]:
    scope = make_scope(user_id, agent_id, run_id)
    count: int = yield StoreCall(lambda s: s.delete_all(scope))
    return count


def forget_flow(
    *, user_id: object = None, agent_id: object = None, run_id: object = None, compact: object = True
) -> Flow[tuple[ForgetReport, int]]:
    """Erase a scope: the store's part in one transaction (with its audit record), then the caches."""
    scope = make_scope(user_id, agent_id, run_id)
    if not isinstance(compact, bool):
        raise InvalidInputError(f"compact must be True or False, got {type(compact).__name__}")
    report: ForgetReport = yield StoreCall(lambda s: s.forget(scope, compact=compact))
    cached: int = yield ScrubCaches(scope, report.texts)
    return report, cached


def history_flow(memory_id: object) -> Flow[list[HistoryEntry]]:
    mid = check_memory_id(memory_id)
    events: list[HistoryEvent] = yield StoreCall(lambda s: s.history(mid))
    return [HistoryEntry.from_event(e) for e in events]


def reset_flow() -> Flow[None]:
    yield StoreCall(lambda s: s.reset())
    return None


def reindex_flow(
    embedder_name: str, dimension: Callable[[], int], batch_size: int = 256
) -> Flow[ReindexResult]:
    """Re-embed every memory with the current embedder, then swap all vectors in one transaction.

    Needs no `OpenStore`: the recorded embedder is the one that mismatches. The
    dimension is read after embedding, because a remote embedder may only learn it
    from its first answer.
    """
    previous: tuple[str, int] | None = yield StoreCall(lambda s: s.embedder)
    batches = yield StoreCall(lambda s: s.iter_all(batch_size))
    pairs: list[tuple[str, npt.NDArray[np.float32]]] = []
    while True:
        batch: list[MemoryRecord] | None = yield StoreCall(lambda s: next(batches, None))
        if batch is None:
            break
        vectors = check_rows((yield Embed([r.memory for r in batch])), len(batch))
        pairs.extend((r.id, v) for r, v in zip(batch, vectors, strict=True))
    dim = dimension()
    count: int = yield StoreCall(lambda s: s.replace_vectors(embedder_name, dim, pairs))
    return ReindexResult(
        count=count,
        embedder=embedder_name,
        dimension=dim,
        previous_embedder=previous[0] if previous else None,
        previous_dimension=previous[1] if previous else None,
    )


REINDEX_HINT = "From Python: `memory.reindex()` (`await memory.reindex()` on AsyncMemory) does the same."


def explain_mismatch(exc: EmbedderMismatchError) -> EmbedderMismatchError:
    """Add the API's own fix to the store's suggestion (which names the CLI), once."""
    current = (exc.suggestion or "").rstrip()
    if REINDEX_HINT not in current:
        if current and current[-1] not in ".!?":
            current += "."
        exc.suggestion = f"{current} {REINDEX_HINT}" if current else REINDEX_HINT
    return exc


def _not_found(mid: str) -> MemoryNotFoundError:
    return MemoryNotFoundError(
        f"No memory with id {mid!r}.",
        error_code="memory_not_found",
        suggestion="Check the id (search and get_all show ids); a deleted memory keeps its history().",
        details={"id": mid},
    )
