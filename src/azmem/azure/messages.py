"""Chat messages as typed, immutable values, and their conversion to the wire.

Peers lost assistant messages and mutated the caller's list; here every role is a
model of its own, normalisation always builds a *new* list, and the models are
frozen so a list we hand back can never be edited under a caller's feet.

Text is cleaned on the way to the wire (not when the message is built) so that a
caller's object keeps exactly what they put in, while the service never sees lone
surrogates, zero-width characters or control characters, which make tokenisers and
content filters misbehave.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from azmem.errors import InvalidInputError

__all__ = [
    "AssistantMessage",
    "ContentPart",
    "ImageDetail",
    "ImagePart",
    "Message",
    "MessageInput",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
    "clean_text",
    "image_part",
    "normalize_messages",
    "to_wire",
]

ImageDetail: TypeAlias = Literal["auto", "low", "high"]

# Lone surrogates (what invalid UTF-8 becomes under "surrogateescape"), C0/C1 control
# characters except tab, newline and carriage return, DEL, and the zero-width family
# (ZWSP, ZWNJ, ZWJ, word joiner, BOM).
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ud800-\udfff]")


def clean_text(text: str | bytes) -> str:
    """Make text safe to send: invalid UTF-8 dropped, zero-width and control characters removed.

    Newlines and tabs are kept because they carry structure (lists, code, tables)
    that the model relies on.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="ignore")
    if text.isascii() and text.isprintable():
        # The common case, answered by two C checks instead of a regex scan: printable
        # ASCII holds none of the characters below (isascii is O(1) in CPython).
        return text
    return _UNWANTED.sub("", text)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextPart(_Frozen):
    """A text segment of a multi-part user message."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(_Frozen):
    """An image for vision deployments; ``url`` is an http(s) URL or a ``data:`` URL."""

    type: Literal["image_url"] = "image_url"
    url: str
    detail: ImageDetail = "auto"


ContentPart: TypeAlias = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(_Frozen):
    """A function call the model asked for; ``arguments`` stays the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"

    def arguments_json(self) -> Any:
        """Decode the arguments; models occasionally emit invalid JSON, so this may raise ValueError."""
        return json.loads(self.arguments) if self.arguments else {}


class SystemMessage(_Frozen):
    """Instructions; ``developer`` is accepted because newer models name the role that way."""

    role: Literal["system", "developer"] = "system"
    content: str
    name: str | None = None


class UserMessage(_Frozen):
    """What the user said: plain text, or text and image parts."""

    role: Literal["user"] = "user"
    content: str | tuple[ContentPart, ...]
    name: str | None = None


class AssistantMessage(_Frozen):
    """A previous model turn; kept verbatim (peers dropped these and lost the conversation)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    name: str | None = None


class ToolMessage(_Frozen):
    """The result of a tool call, linked to it by ``tool_call_id``."""

    role: Literal["tool"] = "tool"
    content: str
    tool_call_id: str


Message: TypeAlias = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
MessageInput: TypeAlias = Message | Mapping[str, Any] | BaseModel

_MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
_MESSAGE_TYPES = (SystemMessage, UserMessage, AssistantMessage, ToolMessage)


def _from_mapping(data: Mapping[str, Any]) -> Message:
    """Accept the OpenAI wire shape too, so callers can paste SDK-style dicts."""
    role = data.get("role")
    if role == "assistant" and data.get("tool_calls"):
        calls = []
        for call in data["tool_calls"]:
            if isinstance(call, ToolCall):
                calls.append(call)
                continue
            fn = call.get("function", call)
            calls.append(ToolCall(id=call["id"], name=fn["name"], arguments=fn.get("arguments") or "{}"))
        data = {**data, "tool_calls": tuple(calls)}
    elif role == "user" and isinstance(data.get("content"), list):
        parts: list[TextPart | ImagePart] = []
        for part in data["content"]:
            if isinstance(part, TextPart | ImagePart):
                parts.append(part)
            elif part.get("type") == "image_url" and isinstance(part.get("image_url"), Mapping):
                image = part["image_url"]
                # Only a detail the caller wrote counts as set (the role's vision_detail fills the rest).
                chosen = {"detail": image["detail"]} if "detail" in image else {}
                parts.append(ImagePart(url=image["url"], **chosen))
            else:
                parts.append(TextPart.model_validate(part))
        data = {**data, "content": tuple(parts)}
    return _MESSAGE_ADAPTER.validate_python(data)


def normalize_messages(messages: str | Sequence[MessageInput]) -> list[Message]:
    """Turn whatever the caller passed into a fresh list of typed messages.

    A bare string is one user message. Dicts may use the OpenAI wire shape; pydantic
    objects (ours or the SDK's ``ChatCompletionMessage``) are accepted as is or
    re-read from their fields. The returned list is always new: appending to it
    (schema instructions, re-ask turns) cannot reach the caller.
    """
    if isinstance(messages, str):
        return [UserMessage(content=messages)]
    if type(messages) is not list and isinstance(messages, Mapping | BaseModel):
        raise InvalidInputError(
            "messages must be a string or a sequence of messages, not a single message",
            suggestion="Wrap the message in a list: generate([message]).",
        )
    out: list[Message] = []
    for index, item in enumerate(messages):
        try:
            if type(item) is dict:  # first: the common case, and ABC checks are slow
                out.append(_from_mapping(item))
            elif isinstance(item, _MESSAGE_TYPES):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(_from_mapping(item))
            elif isinstance(item, BaseModel):
                out.append(_from_mapping(item.model_dump(exclude_none=True)))
            else:
                raise TypeError(f"unsupported message type {type(item).__name__}")
        except (ValidationError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(
                f"messages[{index}] is not a valid chat message: {exc}",
                suggestion="Use SystemMessage/UserMessage/AssistantMessage/ToolMessage or "
                "{'role': ..., 'content': ...} dicts.",
            ) from exc
    if not out:
        raise InvalidInputError("messages is empty", suggestion="Pass at least one message.")
    return out


def _wire_content(content: str | tuple[TextPart | ImagePart, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return clean_text(content)
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": clean_text(part.text)})
        else:
            parts.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
    return parts


def to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The JSON the chat completions API expects, with text cleaned.

    Built fresh on every call: it is also the cache key's input, so it must reflect
    exactly what is sent.
    """
    wire: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            item: dict[str, Any] = {"role": "user", "content": _wire_content(message.content)}
        elif isinstance(message, SystemMessage):
            item = {"role": message.role, "content": clean_text(message.content)}
        elif isinstance(message, AssistantMessage):
            item = {
                "role": "assistant",
                "content": None if message.content is None else clean_text(message.content),
            }
            if message.tool_calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in message.tool_calls
                ]
            if message.refusal is not None:
                item["refusal"] = message.refusal
        else:
            item = {
                "role": "tool",
                "content": clean_text(message.content),
                "tool_call_id": message.tool_call_id,
            }
        name = getattr(message, "name", None)
        if name:
            item["name"] = name
        wire.append(item)
    return wire


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _sniff_mime(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_part(
    source: str | bytes | os.PathLike[str],
    *,
    detail: ImageDetail | None = None,
    mime_type: str | None = None,
) -> ImagePart:
    """An image part from a URL, raw bytes or a local file.

    Bytes and files become ``data:`` URLs because the service cannot reach the
    caller's disk; the mime type is sniffed from the content (PNG, JPEG, GIF, WebP),
    then guessed from the file name, so a wrongly named file is still labelled right.
    Without ``detail`` the role's ``vision_detail`` setting applies (else ``"auto"``).
    """
    chosen = {"detail": detail} if detail is not None else {}
    if isinstance(source, str) and source.startswith(("http://", "https://", "data:")):
        return ImagePart(url=source, **chosen)
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        name = None
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(
                f"image source {str(source)[:200]!r} is neither an http(s)/data URL nor an existing file",
                suggestion="Pass an https:// URL, the image bytes, or the path of a local image file.",
            )
        data = path.read_bytes()
        name = path.name
    mime = mime_type or _sniff_mime(data) or (mimetypes.guess_type(name)[0] if name else None)
    if not mime or not mime.startswith("image/"):
        raise InvalidInputError(
            "could not tell the image type",
            suggestion="Pass mime_type='image/png' (or the right type) explicitly.",
        )
    encoded = base64.b64encode(data).decode("ascii")
    return ImagePart(url=f"data:{mime};base64,{encoded}", **chosen)


def has_images(messages: Sequence[Message]) -> bool:
    """Whether any user message carries an image part."""
    for m in messages:  # a plain loop: called on every request, and text-only is the rule
        if isinstance(m, UserMessage) and not isinstance(m.content, str):
            for p in m.content:
                if isinstance(p, ImagePart):
                    return True
    return False


def with_default_detail(messages: Sequence[Message], detail: ImageDetail) -> list[Message]:
    """``messages`` with ``detail`` on every image part that did not set one; the inputs are not changed.

    Messages and parts are frozen, so changed ones are copies and the rest are shared.
    """
    out: list[Message] = []
    for m in messages:
        if isinstance(m, UserMessage) and not isinstance(m.content, str):
            parts = tuple(
                p.model_copy(update={"detail": detail})
                if isinstance(p, ImagePart) and "detail" not in p.model_fields_set
                else p
                for p in m.content
            )
            if parts != m.content:
                m = m.model_copy(update={"content": parts})
        out.append(m)
    return out
