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

import json
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from azmem.azure import messages as chat
from azmem.azure.errors import (
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFoundError,
    StructuredOutputError,
)
from azmem.memory.prompts import Prompt, Prompts
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
from azmem.memory.schemas import Answer, Decision, ExtractedFact, Extraction, answer_model, reconcile_model
from azmem.stores._validate import MAX_MEMORY_BYTES, check_text, encode_metadata
from azmem.stores.filters import compile_filters
from azmem.stores.models import (
    AddOp,
    DeleteOp,
    HistoryEvent,
    MemoryRecord,
    Op,
    Page,
    Scope,
    SearchHit,
    SearchMode,
    UpdateOp,
    utcnow,
)
from azmem.stores.protocol import MemoryStore

__all__ = [
    "MAX_ADD_BYTES",
    "MAX_MESSAGE_BYTES",
    "Chat",
    "Embed",
    "EngineState",
    "Flow",
    "InputMessage",
    "OpenStore",
    "Step",
    "StoreCall",
    "add_flow",
    "delete_all_flow",
    "delete_flow",
    "explain_mismatch",
    "get_all_flow",
    "get_flow",
    "history_flow",
    "make_scope",
    "normalize_messages",
    "query_flow",
    "reindex_flow",
    "reset_flow",
    "search_flow",
    "update_flow",
]

log = logging.getLogger("azmem.memory")

T = TypeVar("T")
R = TypeVar("R")

#: One message is stored verbatim by infer=False, so it shares the store's per-memory limit.
MAX_MESSAGE_BYTES = MAX_MEMORY_BYTES
#: All messages of one ``add`` together: bounds the extraction prompt (~128k tokens).
MAX_ADD_BYTES = 512 * 1024
MAX_LIMIT = 1000
#: Existing memories retrieved per new fact for reconciliation, and in total.
SIMILAR_PER_FACT = 5
MAX_EXISTING = 50
#: Facts kept from one extraction (a runaway model must not produce a huge reconcile call).
MAX_FACTS = 100

ROLES = frozenset({"user", "assistant", "system", "tool", "developer"})
_CONVERSATION_ROLES = frozenset({"user", "assistant", "tool"})

NO_CHAT_NOTICE = (
    "No Azure OpenAI chat deployment is configured: memories are stored verbatim (infer=False). "
    "Configure a chat deployment to extract and reconcile facts with the LLM."
)
NO_CHAT_QUERY_NOTE = (
    "No chat deployment is configured, so no answer was generated: these are the retrieved memories."
)
NO_MEMORIES_NOTE = "No relevant memories were found in this scope; nothing to answer from."


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Embed:
    """Embed texts with the configured embedder; the driver sends back ``float32 [n, dim]``."""

    texts: list[str]


@dataclass(frozen=True)
class Chat:
    """One structured LLM call; the driver sends back the parsed ``response_model`` instance."""

    prompt: Prompt
    messages: list[dict[str, str]]
    response_model: type[BaseModel]
    group_id: str | None = None
    """The scope, so usage and spans can be attributed per user / agent / run."""


@dataclass(frozen=True)
class StoreCall(Generic[T]):
    """Run ``fn(store)``; the driver sends back its result.

    A closure rather than a method name so flows stay type-checked; the async driver
    runs it on the store's own worker thread.
    """

    fn: Callable[[MemoryStore], T]


@dataclass(frozen=True)
class OpenStore:
    """Bind the store to the embedder before the first vector read or write (once per instance)."""


Step: TypeAlias = Embed | Chat | StoreCall[Any] | OpenStore
Flow: TypeAlias = Generator[Step, Any, R]


@dataclass
class EngineState:
    """What the flows need to know about the configured engine; owned by one Memory."""

    prompts: Prompts = field(default_factory=Prompts)
    can_chat: bool = False
    infer_notice_given: bool = False

    def resolve_infer(self, infer: object) -> bool:
        """``infer=None`` means "if a chat deployment exists"; the fallback is announced once."""
        if infer is None:
            if not self.can_chat and not self.infer_notice_given:
                self.infer_notice_given = True
                log.warning(NO_CHAT_NOTICE)
            return self.can_chat
        if not isinstance(infer, bool):
            raise InvalidInputError(f"infer must be True, False or None, got {type(infer).__name__}")
        if infer and not self.can_chat:
            raise InvalidInputError(
                "infer=True needs an Azure OpenAI chat deployment, and none is configured.",
                error_code="no_chat_deployment",
                suggestion="Configure chat (e.g. AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT), "
                "or pass infer=False to store the messages verbatim.",
            )
        return infer


# --------------------------------------------------------------------------- input checks


def make_scope(user_id: object, agent_id: object, run_id: object, *, required: bool = True) -> Scope:
    """Validate scope ids; reads and writes through `Memory` both need at least one.

    Requiring a scope on reads too is what makes isolation hold by construction: there
    is no call on the public API that silently spans every user.
    """
    values: dict[str, str | None] = {}
    for name, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)):
        if value is None:
            values[name] = None
            continue
        text = check_text(value, name)
        if len(text) > 256:
            raise InvalidInputError(f"{name} is longer than 256 characters")
        if text != text.strip():
            raise InvalidInputError(
                f"{name} {text!r} has leading or trailing whitespace",
                suggestion="strip ids before passing them: 'alice' and 'alice ' would be different scopes",
            )
        values[name] = text
    scope = Scope(**values)
    if required and scope.is_empty():
        raise InvalidInputError(
            "At least one of user_id, agent_id or run_id is required.",
            error_code="missing_scope",
            suggestion="Pass user_id='...' (or agent_id / run_id) so memories stay with their owner.",
        )
    return scope


def group_id(scope: Scope) -> str:
    """``user_id=alice,agent_id=bot``: the usage-tracking group of an LLM call."""
    return ",".join(f"{k}={v}" for k, v in scope.as_dict().items())


def check_memory_id(value: object) -> str:
    text = check_text(value, "memory_id")
    if len(text) > 256:
        raise InvalidInputError("memory_id is longer than 256 characters")
    return text


def check_metadata(metadata: object) -> dict[str, Any]:
    if metadata is None:
        return {}
    encode_metadata(metadata)  # raises InvalidInputError with the offending key
    assert isinstance(metadata, Mapping)
    return dict(metadata)


def check_filters(filters: object) -> Mapping[str, Any] | None:
    """Reject an unknown operator or a malformed filter before any I/O, with the store's own parser."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    compile_filters(filters)
    return filters


def check_limit(value: object, what: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidInputError(f"{what} must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def check_threshold(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"threshold must be a number, got {type(value).__name__}")
    if not -1.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"threshold is a minimum cosine similarity in [-1, 1], got {value}")
    return float(value)


def check_mode(value: object) -> SearchMode:
    if value == "hybrid" or value == "dense" or value == "bm25":
        return value
    raise InvalidInputError(f"mode must be 'hybrid', 'dense' or 'bm25', got {value!r:.40}")


def _text(value: object, what: str, max_bytes: int) -> str:
    """Accept str, or bytes that are valid UTF-8 (and say where they are not)."""
    if isinstance(value, bytes | bytearray):
        if len(value) > max_bytes:
            raise InvalidInputError(f"{what} is {len(value):,} bytes; the limit is {max_bytes:,}")
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{what} is not valid UTF-8 (byte {exc.start})",
                suggestion="decode it yourself with the right encoding, or with errors='replace'",
            ) from None
    elif isinstance(value, str) and len(value) > max_bytes:
        # Characters are >= 1 byte: refuse early without encoding a huge string.
        raise InvalidInputError(
            f"{what} is {len(value):,} characters; the limit is {max_bytes:,} bytes of UTF-8",
            suggestion="split long text into several messages",
        )
    return check_text(value, what, max_bytes=max_bytes)


@dataclass(frozen=True)
class InputMessage:
    role: str
    content: str
    name: str | None = None
    timestamp: datetime | None = None


def parse_timestamp(value: object, what: str) -> datetime:
    """datetime, date, ISO 8601 text or Unix seconds; a naive time is taken as UTC."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            ts = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInputError(f"{what} {value!r} is not a valid Unix time") from None
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"{what} {value[:40]!r} is not an ISO 8601 time", suggestion="use e.g. '2024-05-08T13:56:00Z'"
            ) from None
    else:
        raise InvalidInputError(
            f"{what} must be a datetime, ISO 8601 string or Unix time, not {type(value).__name__}"
        )
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _content(value: object, what: str) -> str:
    if isinstance(value, list):  # OpenAI content parts: keep the text, refuse what we cannot store
        texts = []
        for i, part in enumerate(value):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise InvalidInputError(f"{what}[{i}] must be a text part {{'type': 'text', 'text': ...}}")
            texts.append(_text(part.get("text"), f"{what}[{i}].text", MAX_MESSAGE_BYTES))
        value = "\n".join(texts)
    return _text(value, what, MAX_MESSAGE_BYTES)


def _from_typed(item: BaseModel, where: str) -> Mapping[str, Any] | None:
    """A typed chat message as the dict shape read below, or None if it holds no text.

    Typed messages are ``azmem.azure.messages``' models (``UserMessage``,
    ``AssistantMessage``, ...) or another pydantic message such as the SDK's
    ``ChatCompletionMessage``; the client layer's `normalize_messages` reads them, so
    both layers accept exactly the same objects. An assistant turn that only calls tools
    (or only refuses) has no text to remember and is skipped.
    """
    try:
        (msg,) = chat.normalize_messages([item])
    except InvalidInputError as exc:
        reason = exc.__cause__ if exc.__cause__ is not None else exc.message
        raise InvalidInputError(
            f"{where} is not a valid chat message: {reason}", suggestion=exc.suggestion
        ) from None
    content: object = msg.content
    if isinstance(msg, chat.AssistantMessage) and msg.content is None:
        if msg.tool_calls or msg.refusal is not None:
            return None
    elif isinstance(msg, chat.UserMessage) and not isinstance(msg.content, str):
        content = [
            {"type": "text", "text": p.text} if isinstance(p, chat.TextPart) else {"type": p.type}
            for p in msg.content
        ]
    out: dict[str, Any] = {"role": msg.role, "content": content}
    name = getattr(msg, "name", None)
    if name is not None:
        out["name"] = name
    return out


def _is_tool_call_turn(item: Mapping[str, Any]) -> bool:
    """An OpenAI-shaped assistant dict with tool calls (or a refusal) and no text."""
    return (
        item.get("role") == "assistant"
        and item.get("content") is None
        and bool(item.get("tool_calls") or item.get("refusal"))
    )


def normalize_messages(messages: object) -> list[InputMessage]:
    """A str, one message, or a list of them -> validated messages (caller's objects untouched).

    A message is a ``{"role", "content"}`` dict with optional ``name`` and ``timestamp``
    (other keys, e.g. from the OpenAI wire shape, are ignored), or a typed message from
    `azmem.azure.messages` (``UserMessage``, ``AssistantMessage``, ``SystemMessage``,
    ``ToolMessage``) or the SDK. Assistant turns with tool calls and no text are skipped.
    """
    if isinstance(messages, str | bytes | bytearray):
        items: list[object] = [{"role": "user", "content": messages}]
    elif isinstance(messages, Mapping | BaseModel):
        items = [messages]
    elif isinstance(messages, list | tuple):
        items = list(messages)
    else:
        raise InvalidInputError(
            "messages must be a string, a message (dict or typed) or a list of them, "
            f"not {type(messages).__name__}"
        )
    if not items:
        raise InvalidInputError("messages is empty: there is nothing to remember")
    out: list[InputMessage] = []
    total = 0
    for i, raw in enumerate(items):
        where = f"messages[{i}]"
        item = _from_typed(raw, where) if isinstance(raw, BaseModel) else raw
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise InvalidInputError(
                f"{where} must be a dict with 'role' and 'content' or a typed message "
                f"(azmem.azure.messages), not {type(item).__name__}"
            )
        if _is_tool_call_turn(item):
            continue
        role = item.get("role", "user")
        if role not in ROLES:
            raise InvalidInputError(f"{where}.role must be one of {sorted(ROLES)}, got {role!r:.40}")
        if "content" not in item:
            raise InvalidInputError(f"{where} has no 'content'")
        content = _content(item["content"], f"{where}.content")
        total += len(content.encode("utf-8"))
        if total > MAX_ADD_BYTES:
            raise InvalidInputError(
                f"the messages of one add() exceed {MAX_ADD_BYTES:,} bytes",
                suggestion="add a long conversation in several calls (e.g. one per session)",
            )
        name = item.get("name")
        if name is not None:
            name = check_text(name, f"{where}.name")
        ts = item.get("timestamp")
        out.append(
            InputMessage(
                role=str(role),
                content=content,
                name=name,
                timestamp=None if ts is None else parse_timestamp(ts, f"{where}.timestamp"),
            )
        )
    return out


# --------------------------------------------------------------------------- rendering


def _fmt_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC (%A)")


def _fmt_day(ts: datetime) -> str:
    return f"{ts.day} {ts.strftime('%B %Y')}"


def extraction_messages(
    prompt: Prompt, msgs: Sequence[InputMessage], *, agent: bool, now: datetime
) -> list[dict[str, str]]:
    stamped = [m.timestamp for m in msgs if m.timestamp is not None]
    today = max(stamped) if stamped else now
    system = prompt.render(
        today=_fmt_time(today),
        agent_clause=" and about the agent (the assistant) itself" if agent else "",
        agent_subject=', and "agent" for facts about the assistant itself' if agent else "",
    )
    lines = []
    for m in msgs:
        if m.role not in _CONVERSATION_ROLES:
            continue
        when = _fmt_time(m.timestamp) if m.timestamp else "no timestamp"
        who = f"{m.role} ({m.name})" if m.name else m.role
        # A message's further lines are indented, so text cannot pose as another turn
        # ("...\n[2024-01-01 ...] assistant: ..." inside a user message).
        body = "\n    ".join(m.content.splitlines() or [""])
        lines.append(f"[{when}] {who}: {body}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def reconcile_messages(
    prompt: Prompt, facts: Sequence[ExtractedFact], existing: Sequence[MemoryRecord]
) -> list[dict[str, str]]:
    payload = {
        "existing_memories": [
            {"id": i, "text": r.memory, "stored": _fmt_day(r.updated_at)} for i, r in enumerate(existing)
        ],
        "new_facts": [{"index": i, "text": f.text, "about": f.subject} for i, f in enumerate(facts)],
    }
    return [
        {"role": "system", "content": prompt.render()},
        {"role": "user", "content": json.dumps(payload, ensure_ascii=False, indent=1)},
    ]


def answer_messages(prompt: Prompt, question: str, hits: Sequence[SearchHit]) -> list[dict[str, str]]:
    lines = [f"[{i}] ({_fmt_day(h.record.created_at)}) {h.record.memory}" for i, h in enumerate(hits)]
    body = "Memories:\n" + "\n".join(lines) + f"\n\nQuestion: {question}"
    return [{"role": "system", "content": prompt.render()}, {"role": "user", "content": body}]


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Change:
    """One resolved decision, with real ids (the small integers are gone)."""

    event: str  # ADD | UPDATE | DELETE | NONE
    fact: int
    text: str
    target: MemoryRecord | None = None


def storable(text: str) -> str | None:
    """Model output normalised to one line of storable text, or None.

    The model's text is not the user's input: a NUL, a lone surrogate (JSON can escape
    one) or a runaway length must not turn into an InvalidInputError blaming the caller.
    """
    text = " ".join(text.split())
    if not text or "\x00" in text:
        return None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    return text if size <= MAX_MESSAGE_BYTES else None


def clean_facts(facts: Sequence[ExtractedFact]) -> list[ExtractedFact]:
    """Drop blank, repeated and unstorable facts; keep at most MAX_FACTS."""
    seen: set[str] = set()
    out: list[ExtractedFact] = []
    for fact in facts:
        text = storable(fact.text)
        if text is None or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        out.append(ExtractedFact(text=text, subject=fact.subject))
    return out[:MAX_FACTS]


def gather_existing(results: Sequence[Sequence[SearchHit]]) -> list[MemoryRecord]:
    """Union of the per-fact neighbours, best-ranked first, each once; these get ids 0..n-1."""
    seen: set[str] = set()
    out: list[MemoryRecord] = []
    for rank in range(max((len(r) for r in results), default=0)):
        for hits in results:
            if rank < len(hits) and hits[rank].record.id not in seen:
                seen.add(hits[rank].record.id)
                out.append(hits[rank].record)
    return out[:MAX_EXISTING]


def plan_changes(
    facts: Sequence[ExtractedFact], existing: Sequence[MemoryRecord], decisions: Sequence[Decision]
) -> list[Change]:
    """Map the model's decisions back to real memories and make them consistent.

    * A fact index or target outside what was shown is already impossible (the response
      model is an enum of the ids shown, so the client re-asks and finally raises);
      checked again here so that no code path can ever touch an id it did not show.
    * One decision per fact: the first wins; a fact with no decision is added (losing
      information silently is worse than a near-duplicate).
    * One change per existing memory: a second UPDATE of the same memory becomes an ADD
      of its text, a second DELETE/NONE is dropped.
    """
    by_fact: dict[int, Decision] = {}
    for d in decisions:
        if not 0 <= d.fact < len(facts):
            raise StructuredOutputError(
                f"reconciliation named fact {d.fact}, but only {len(facts)} were given"
            )
        if d.target is not None and not 0 <= d.target < len(existing):
            raise StructuredOutputError(
                f"reconciliation named memory {d.target}, but only ids 0..{len(existing) - 1} were shown"
            )
        by_fact.setdefault(d.fact, d)
    touched: set[str] = set()
    changes: list[Change] = []
    for i, fact in enumerate(facts):
        found = by_fact.get(i)
        if found is None:
            changes.append(Change("ADD", i, fact.text))
            continue
        d = found
        text = (storable(d.text) or fact.text) if d.event in ("ADD", "UPDATE") else ""
        target = existing[d.target] if d.target is not None else None
        if target is not None and target.id in touched:
            if d.event == "UPDATE":
                changes.append(Change("ADD", i, text))
            continue
        if target is not None:
            touched.add(target.id)
        changes.append(Change(d.event, i, text, target))
    return changes


# --------------------------------------------------------------------------- flows


def _vectors(value: object, n: int) -> npt.NDArray[np.float32]:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise RuntimeError(f"embedder returned shape {arr.shape} for {n} texts")
    return arr


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
    vectors = _vectors((yield Embed([r.memory for r in records])), len(records))
    yield OpenStore()
    ops: list[Op] = [AddOp(r, v) for r, v in zip(records, vectors, strict=True)]
    yield StoreCall(lambda s: s.apply(ops))
    return AddResult(
        results=[MemoryEvent(id=r.id, memory=r.memory, event="ADD", metadata=r.metadata) for r in records]
    )


def _add_inferred(
    state: EngineState, msgs: list[InputMessage], scope: Scope, md: dict[str, Any]
) -> Flow[AddResult]:
    if not any(m.role in _CONVERSATION_ROLES for m in msgs):
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

    fact_vectors = _vectors((yield Embed([f.text for f in facts])), len(facts))
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
    fresh_vectors = _vectors((yield Embed(fresh)), len(fresh)) if fresh else None
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
    text = _text(query, "query", MAX_MESSAGE_BYTES)
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
    vector = None if how == "bm25" else _vectors((yield Embed([text])), 1)[0]
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
    text = _text(question, "question", MAX_MESSAGE_BYTES)
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
    new_text = None if text is None else _text(text, "text", MAX_MESSAGE_BYTES)
    md = None if metadata is None else check_metadata(metadata)
    current: MemoryRecord | None = yield StoreCall(lambda s: s.get(mid, scope))
    if current is None:
        raise _not_found(mid)
    if (new_text is None or new_text == current.memory) and (md is None or md == current.metadata):
        return MemoryItem.from_record(current)
    if new_text == current.memory:
        new_text = None
    vector = None if new_text is None else _vectors((yield Embed([new_text])), 1)[0]
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
        vectors = _vectors((yield Embed([r.memory for r in batch])), len(batch))
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
