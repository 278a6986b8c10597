"""Reading conversation files for ``azmem import`` and ``azmem demo``.

Accepted shapes, so that exports from most chat tools load without a conversion step:

* JSON, one conversation: ``{"messages": [...], "user_id": ..., "agent_id": ...,
  "run_id": ..., "metadata": {...}}``, or a bare list of messages;
* JSON, several conversations: a list of such objects;
* JSONL: one object per line, each a conversation (it has ``messages``) or a single
  message; consecutive message lines form one conversation.

A message is ``{"role": "user" | "assistant" | "system", "content": str}`` plus an
optional ``timestamp`` (or ``created_at``) the memory engine uses to resolve relative
dates. Problems are reported with the file and line (or item) that has them, before
anything is written, so a bad file never half-imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azmem.cli.options import Scope
from azmem.cli.output import InputFileError

__all__ = ["Conversation", "load_conversations", "parse_conversations"]

_ROLES = frozenset({"user", "assistant", "system"})
_MESSAGE_KEYS = frozenset({"role", "content", "timestamp", "created_at", "name"})
_CONVERSATION_KEYS = frozenset({"messages", "user_id", "agent_id", "run_id", "metadata", "id", "title"})
_SCOPE_KEYS = ("user_id", "agent_id", "run_id")


@dataclass
class Conversation:
    """One conversation to add, with the scope and metadata its file gave it."""

    messages: list[dict[str, Any]]
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)


_SHAPES_HINT = (
    'Each message needs "role" (user, assistant or system) and "content" (text); '
    "see `azmem import --help` for the accepted file shapes."
)


_TOO_DEEP_HINT = "A conversation file is a few levels deep: an object, a list of messages, the messages."


def _bad(where: str, problem: str, suggestion: str = _SHAPES_HINT) -> InputFileError:
    return InputFileError(f"{where}: {problem}", suggestion=suggestion)


def _message(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _bad(where, f"a message must be a JSON object, not {type(raw).__name__}.")
    unknown = sorted(set(raw) - _MESSAGE_KEYS)
    if unknown:
        raise _bad(where, f"unknown message key {unknown[0]!r} (known: {', '.join(sorted(_MESSAGE_KEYS))}).")
    role = raw.get("role", "user")
    if role not in _ROLES:
        raise _bad(where, f"role {role!r} is not one of user, assistant, system.")
    content = raw.get("content")
    if not isinstance(content, str):
        raise _bad(where, f'"content" must be a string, not {type(content).__name__}.')
    message = {k: v for k, v in raw.items() if k in _MESSAGE_KEYS}
    message["role"] = role
    created_at = message.pop("created_at", None)
    if message.get("timestamp") is None and created_at is not None:
        message["timestamp"] = created_at  # the engine reads "timestamp"
    _check_message(message, where)
    return message


def _check_message(message: dict[str, Any], where: str) -> None:
    """Run the memory engine's own message checks now, so a bad line fails before any write.

    The same function ``Memory.add`` applies (empty or over-long content, NUL characters,
    unparsable timestamps), with its ``messages[0]`` position replaced by file and line.
    """
    from azmem.errors import InvalidInputError
    from azmem.memory.inputs import normalize_messages

    try:
        normalize_messages([message])
    except InvalidInputError as exc:
        problem = exc.message.replace("messages[0].", "", 1).replace("messages[0]", "the message", 1)
        raise _bad(where, problem.rstrip(".") + ".", exc.suggestion or _SHAPES_HINT) from None


def _conversation(raw: Mapping[str, Any], where: str) -> Conversation:
    unknown = sorted(set(raw) - _CONVERSATION_KEYS)
    if unknown:
        raise _bad(
            where,
            f"unknown conversation key {unknown[0]!r} (known: {', '.join(sorted(_CONVERSATION_KEYS))}).",
        )
    messages = raw.get("messages")
    if not isinstance(messages, list):
        raise _bad(where, '"messages" must be a list of messages.')
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise _bad(where, '"metadata" must be an object.')
    scope: dict[str, str | None] = {}
    for key in _SCOPE_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _bad(where, f'"{key}" must be a string.')
        scope[key] = value
    return Conversation(
        messages=[_message(m, f"{where}, message {i + 1}") for i, m in enumerate(messages)],
        metadata=dict(metadata),
        where=where,
        **scope,
    )


def _from_document(doc: Any, name: str) -> list[Conversation]:
    if isinstance(doc, Mapping) and "messages" not in doc and ("role" in doc or "content" in doc):
        return [Conversation(messages=[_message(doc, name)], where=name)]  # a single message
    if isinstance(doc, Mapping):
        return [_conversation(doc, name)]
    if isinstance(doc, list):
        if all(isinstance(item, Mapping) and "messages" in item for item in doc):
            return [_conversation(item, f"{name}, conversation {i + 1}") for i, item in enumerate(doc)]
        return [
            Conversation(
                messages=[_message(m, f"{name}, item {i + 1}") for i, m in enumerate(doc)], where=name
            )
        ]
    raise _bad(
        name, "the file must hold a conversation object, a list of conversations, or a list of messages."
    )


def _from_lines(lines: Iterator[tuple[int, str]], name: str) -> list[Conversation]:
    out: list[Conversation] = []
    pending: list[dict[str, Any]] = []
    first_pending = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{name} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(
                where,
                f"not valid JSON ({exc.msg}, column {exc.colno}).",
                "A JSONL file holds one complete JSON object per line.",
            ) from None
        except RecursionError:
            raise _bad(where, "JSON nested too deeply to read.", _TOO_DEEP_HINT) from None
        if isinstance(obj, Mapping) and "messages" in obj:
            if pending:
                out.append(Conversation(messages=pending, where=f"{name} line {first_pending}"))
                pending = []
            out.append(_conversation(obj, where))
        else:
            if not pending:
                first_pending = lineno
            pending.append(_message(obj, where))
    if pending:
        out.append(Conversation(messages=pending, where=f"{name} line {first_pending}"))
    return out


def parse_conversations(text: str, name: str, *, jsonl: bool | None = None) -> list[Conversation]:
    """Parse a JSON or JSONL document; ``jsonl=None`` decides from the content.

    A whole-document parse is tried first: a JSON file that happens to fit on one line
    per record is still JSON, and only "extra data" after the first value means JSONL.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InputFileError(f"{name} is empty.", suggestion="Pass a JSON or JSONL file of conversations.")
    if jsonl is not True:
        try:
            doc = json.loads(text)
        except RecursionError:
            raise InputFileError(
                f"{name}: JSON nested too deeply to read.", suggestion=_TOO_DEEP_HINT
            ) from None
        except json.JSONDecodeError as exc:
            if jsonl is False or exc.msg != "Extra data":
                raise InputFileError(
                    f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
                    suggestion="Fix the JSON, or name the file .jsonl if it holds one object per line.",
                ) from None
        else:
            return _from_document(doc, name)
    return _from_lines(enumerate(text.splitlines(), start=1), name)


def load_conversations(path: Path) -> list[Conversation]:
    """Read and parse a conversation file; ``.jsonl``/``.ndjson`` are read as one object per line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist.", suggestion="Check the path.") from None
    except OSError as exc:
        raise InputFileError(
            f"Cannot read {path}: {exc.strerror}.", suggestion="Check the path and its permissions."
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}).",
            suggestion="Re-save the file as UTF-8.",
        ) from None
    jsonl = True if path.suffix.lower() in {".jsonl", ".ndjson"} else None
    return parse_conversations(text, str(path), jsonl=jsonl)
