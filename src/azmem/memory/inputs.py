"""Checks of everything a caller passes to the engine, before any I/O (typed errors, nothing written)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

from azmem.azure import messages as chat
from azmem.errors import InvalidInputError, PayloadTooLargeError
from azmem.memory.steps import MAX_ADD_BYTES, MAX_LIMIT, MAX_MESSAGE_BYTES, ROLES
from azmem.stores.filters import Filter, parse_filters
from azmem.stores.models import (
    Scope,
    SearchMode,
)
from azmem.stores.validate import check_text, encode_metadata


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


def check_filters(filters: object) -> Filter | None:
    """Parse the filter once, before any I/O: the store gets the tree, never the dict again."""
    return parse_filters(filters)  # type: ignore[arg-type]  # anything else is refused there


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


def input_text(value: object, what: str, max_bytes: int) -> str:
    """Accept str, or bytes that are valid UTF-8 (and say where they are not)."""
    if isinstance(value, bytes | bytearray):
        if len(value) > max_bytes:
            raise PayloadTooLargeError(f"{what} is {len(value):,} bytes; the limit is {max_bytes:,}")
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{what} is not valid UTF-8 (byte {exc.start})",
                suggestion="decode it yourself with the right encoding, or with errors='replace'",
            ) from None
    elif isinstance(value, str) and len(value) > max_bytes:
        # Characters are >= 1 byte: refuse early without encoding a huge string.
        raise PayloadTooLargeError(
            f"{what} is {len(value):,} characters; the limit is {max_bytes:,} bytes of UTF-8",
            suggestion="split long text into several messages",
        )
    text = check_text(value, what)  # type, blank, NUL and surrogates first: then it encodes cleanly
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"{what} is {size:,} bytes of UTF-8; the limit is {max_bytes:,}",
            suggestion="split long text into several memories (or let extraction summarise it)",
        )
    return text


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
            texts.append(input_text(part.get("text"), f"{what}[{i}].text", MAX_MESSAGE_BYTES))
        value = "\n".join(texts)
    return input_text(value, what, MAX_MESSAGE_BYTES)


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
            raise PayloadTooLargeError(
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
