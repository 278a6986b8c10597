"""Building chat requests: pure functions from (messages, options, capabilities) to SDK kwargs.

Kept free of I/O so the sync and async clients share it, and so the cache key is
computed from exactly the kwargs that are sent (peers keyed their cache on the
messages alone and served answers generated under other parameters).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from openai.lib._parsing import type_to_response_format_param
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from azmem.azure.messages import AssistantMessage, Message, SystemMessage, UserMessage, to_wire
from azmem.errors import InvalidInputError

__all__ = [
    "ChatOptions",
    "ModelSize",
    "OutputMode",
    "ReasoningEffort",
    "ReasoningSummary",
    "ToolSpec",
    "build_chat_kwargs",
    "cache_request",
    "choose_mode",
    "insert_system",
    "mentions_json",
    "reask_messages",
    "tool_param",
]

ModelSize: TypeAlias = Literal["small", "medium"]
ReasoningEffort: TypeAlias = Literal["minimal", "low", "medium", "high"]
ReasoningSummary: TypeAlias = Literal["auto", "concise", "detailed"]
"""How much of its reasoning a model summarises (Responses API only; reasoning deployments)."""
OutputMode: TypeAlias = Literal["text", "json_object", "json_schema", "schema_in_prompt"]
"""How the answer's shape is enforced: ``json_schema`` is the service's strict mode via
``chat.completions.parse``; ``schema_in_prompt`` is the fallback (json_object plus the
schema in a system message, validated by pydantic on our side)."""

ToolSpec: TypeAlias = Mapping[str, Any] | type[BaseModel]
"""A tool in the OpenAI wire shape, or a pydantic model whose fields are the arguments."""


@dataclass(slots=True)
class ChatOptions:
    """Everything about one ``generate`` call except the messages, in one place.

    Treated as immutable once built; not ``frozen`` only because a frozen dataclass's
    ``__init__`` costs several times more, and one is built on every call.
    """

    response_model: type[BaseModel] | None = None
    json: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: ReasoningEffort | None = None
    reasoning_summary: ReasoningSummary | None = None
    model_size: ModelSize = "medium"
    prompt_name: str | None = None
    group_id: str | None = None
    max_reasks: int = 2
    extra_body: dict[str, Any] = field(default_factory=dict)


def tool_param(tool: ToolSpec) -> dict[str, Any]:
    """A plain-dict tool definition (pydantic models become strict function tools).

    Plain dicts, not the SDK's helper objects, because the definition is also part of
    the cache key and must serialise as JSON.
    """
    if isinstance(tool, type) and issubclass(tool, BaseModel):
        function: dict[str, Any] = {
            "name": tool.__name__,
            "parameters": to_strict_json_schema(tool),
            "strict": True,
        }
        if tool.__doc__:
            function["description"] = tool.__doc__.strip()
        return {"type": "function", "function": function}
    if isinstance(tool, Mapping):
        if "function" not in tool and "name" in tool:  # the bare function shape
            return {"type": "function", "function": dict(tool)}
        return dict(tool)
    raise InvalidInputError(
        f"unsupported tool definition {type(tool).__name__}",
        suggestion="Pass {'type': 'function', 'function': {...}} dicts or pydantic model classes.",
    )


def choose_mode(options: ChatOptions, *, json_schema_supported: bool) -> OutputMode:
    if options.response_model is not None:
        return "json_schema" if json_schema_supported else "schema_in_prompt"
    return "json_object" if options.json else "text"


def mentions_json(wire: Sequence[Mapping[str, Any]], *, text_type: str = "text") -> bool:
    """Whether any message says "json"; ``text_type`` names a text part (``input_text`` on Responses)."""
    for item in wire:
        content = item.get("content")
        if isinstance(content, str):
            if "json" in content.lower():
                return True
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == text_type and "json" in str(part.get("text", "")).lower():
                    return True
    return False


def prompt_items(
    messages: Sequence[Message],
    options: ChatOptions,
    mode: OutputMode,
    convert: Callable[[Sequence[Message]], list[dict[str, Any]]],
    *,
    text_type: str = "text",
) -> list[dict[str, Any]]:
    """The messages in a wire protocol's shape (``convert``), with what the output mode adds.

    Shared by chat completions and the Responses API: ``schema_in_prompt`` carries the schema
    in a system message, and ``json_object``, which the service rejects unless the input
    says "json", gets that said for the caller.
    """
    msgs = list(messages)
    if mode == "schema_in_prompt":
        assert options.response_model is not None
        msgs = insert_system(msgs, schema_instruction(options.response_model))
    items = convert(msgs)
    if mode == "json_object" and not mentions_json(items, text_type=text_type):
        items = convert(insert_system(msgs, "Respond with a JSON object."))
    return items


def insert_system(messages: list[Message], text: str) -> list[Message]:
    """Add instructions after the caller's leading system messages (a new list)."""
    index = 0
    while index < len(messages) and isinstance(messages[index], SystemMessage):
        index += 1
    return [*messages[:index], SystemMessage(content=text), *messages[index:]]


def schema_instruction(model: type[BaseModel]) -> str:
    schema = json.dumps(model.model_json_schema(), separators=(",", ":"), ensure_ascii=False)
    return (
        "Respond with a single JSON object that conforms to this JSON schema. "
        "Output only the JSON, no prose and no code fences.\n"
        f"JSON schema: {schema}"
    )


def build_chat_kwargs(
    *,
    model: str,
    messages: Sequence[Message],
    options: ChatOptions,
    mode: OutputMode,
    reasoning: bool,
    stream: bool = False,
) -> dict[str, Any]:
    """The keyword arguments for ``chat.completions.create`` / ``parse``.

    Reasoning deployments get ``max_completion_tokens`` and ``reasoning_effort`` and
    never ``temperature``/``top_p``/``max_tokens`` (the service rejects them); the
    decision comes from the resolved capability, so a deployment named ``prod-chat``
    running o3-mini is handled right.
    """
    wire = prompt_items(messages, options, mode, to_wire)
    kwargs: dict[str, Any] = {"model": model, "messages": wire}
    if reasoning:
        if options.max_tokens is not None:
            kwargs["max_completion_tokens"] = options.max_tokens
        if options.reasoning_effort is not None:
            kwargs["reasoning_effort"] = options.reasoning_effort
    else:
        if options.max_tokens is not None:
            kwargs["max_tokens"] = options.max_tokens
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
    if options.seed is not None:
        kwargs["seed"] = options.seed
    if options.stop:
        kwargs["stop"] = list(options.stop)
    if options.tools:
        kwargs["tools"] = [dict(t) for t in options.tools]
        if options.tool_choice is not None:
            kwargs["tool_choice"] = options.tool_choice
    if mode == "json_schema":
        kwargs["response_format"] = options.response_model
    elif mode in ("json_object", "schema_in_prompt"):
        kwargs["response_format"] = {"type": "json_object"}
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
    if options.extra_body:
        kwargs["extra_body"] = dict(options.extra_body)
    return kwargs


def cache_request(kwargs: Mapping[str, Any], *, endpoint: str, mode: OutputMode) -> dict[str, Any]:
    """The JSON-safe description of a request that the cache key hashes.

    Every parameter is in it (max_tokens, temperature, tools, the schema, the output
    mode) because any of them changes the answer.
    """
    request = {k: v for k, v in kwargs.items() if k != "response_format"}
    response_format = kwargs.get("response_format")
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        request["response_format"] = type_to_response_format_param(response_format)
    elif response_format is not None:
        request["response_format"] = response_format
    request["endpoint"] = endpoint
    request["mode"] = mode
    return request


def reask_messages(messages: Sequence[Message], *, bad_output: str | None, error: str) -> list[Message]:
    """The conversation for one more attempt after output failed validation.

    The bad answer is kept as an assistant turn so the model can see what to fix; the
    returned list is new, so neither the caller's list nor the previous attempt's is touched.
    """
    out = list(messages)
    if bad_output is not None:
        out.append(AssistantMessage(content=bad_output))
    out.append(
        UserMessage(
            content=(
                "Your previous reply was not valid for the required JSON format:\n"
                f"{error}\n"
                "Reply again with only the corrected JSON object."
            )
        )
    )
    return out
