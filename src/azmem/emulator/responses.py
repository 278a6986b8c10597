"""The Responses API (``POST /openai/responses``, ``/openai/v1/responses``): checks, bodies, events.

A request is validated the way the service does (api-version, input items, parameters per
model family, ``text.format``, tools), then seen through a *chat view* (the same request in
chat-completions words) so that replies are scripted, generated, cut at the budget and
filtered by exactly the code chat uses; only the rendering differs: output items (reasoning,
message, function calls), ``usage`` with reasoning tokens, and the typed SSE events
(``response.created`` ... ``response.completed``) the SDK's ``ResponseStreamEvent`` parses.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from . import protocol, schema
from .chat import ChatReply, RequestRejected, api_version_date, output_tokens
from .config import Deployment
from .tokens import estimate_messages

MIN_VERSION = "2025-03-01"
MSG_VERSION = "Azure OpenAI Responses API is enabled only for api-version 2025-03-01-preview and later"
MSG_JSON_WORD = (
    "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
    "'json_object'."
)
MIN_OUTPUT_TOKENS = 16
_ROLES = ("assistant", "system", "developer", "user")
_TEXT_PARTS = ("input_text", "output_text")


def _bad(message: str, param: str | None = None, code: str | None = None) -> RequestRejected:
    return RequestRejected(400, protocol.invalid_request(message, param=param, code=code))


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The input as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [item for item in value or [] if isinstance(item, dict)]


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return ""
    if part.get("type") in _TEXT_PARTS:
        return str(part.get("text", ""))
    if part.get("type") == "refusal":
        return str(part.get("refusal", ""))
    return ""


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """The request in chat-completions words, so chat's reply machinery serves both APIs."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in _items(body):
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                parts: list[dict[str, Any]] = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "input_image":
                        parts.append({"type": "image_url", "image_url": {"url": part.get("image_url", "")}})
                    else:
                        parts.append({"type": "text", "text": _part_text(part)})
                content = parts
            messages.append({"role": item.get("role"), "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function", "function": item}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
    view: dict[str, Any] = {"messages": messages}
    tools = [
        {"type": "function", "function": t} for t in body.get("tools") or [] if t.get("type") == "function"
    ]
    if tools:
        view["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        view["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        view["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        view["response_format"] = {"type": "json_schema", "json_schema": fmt}
    elif fmt.get("type") == "json_object":
        view["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        view["max_completion_tokens"] = body["max_output_tokens"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        view["reasoning_effort"] = effort
    return view


def _check_items(body: dict[str, Any], dep: Deployment) -> None:
    value = body.get("input")
    if value is None:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if not isinstance(value, str | list):
        raise _bad("Invalid type for 'input': expected a string or an array of input items.", "input")
    calls: set[str] = set()
    for index, item in enumerate(_items(body)):
        kind = item.get("type", "message")
        where = f"input[{index}]"
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(
                    f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', "
                    "and 'user'.",
                    f"{where}.role",
                    "invalid_value",
                )
            content = item.get("content")
            for p_index, part in enumerate(content if isinstance(content, list) else []):
                if isinstance(part, dict) and part.get("type") == "input_image" and not dep.vision:
                    raise _bad(
                        "Invalid content type. image_url is only supported by certain models.",
                        f"{where}.content[{p_index}].type",
                    )
        elif kind == "function_call":
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output" and str(item.get("call_id")) not in calls:
            raise _bad(
                f"No tool call found for function call output with call_id {item.get('call_id')}.", "input"
            )


def _check_parameters(body: dict[str, Any], dep: Deployment) -> None:
    if dep.reasoning:
        for param in ("temperature", "top_p"):
            if body.get(param) is not None:
                raise _bad(
                    f"Unsupported parameter: '{param}' is not supported with this model.",
                    param,
                    "unsupported_parameter",
                )
    elif (body.get("reasoning") or {}).get("effort") is not None:
        raise _bad(
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
            "reasoning.effort",
            "unsupported_parameter",
        )
    budget = body.get("max_output_tokens")
    if budget is not None:
        if not isinstance(budget, int) or budget < MIN_OUTPUT_TOKENS:
            raise _bad(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                f"{MIN_OUTPUT_TOKENS}, but got {budget} instead.",
                "max_output_tokens",
                "integer_below_min_value",
            )
        limit = dep.max_output_tokens or 0
        if budget > limit:
            raise _bad(
                f"max_output_tokens is too large: {budget}. This model supports at most {limit} output "
                f"tokens, whereas you provided {budget}.",
                "max_output_tokens",
                "invalid_value",
            )
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type") == "function" and not tool.get("name"):
            # The chat shape ({"type": "function", "function": {...}}) is the classic mistake here.
            raise _bad(
                f"Missing required parameter: 'tools[{index}].name'.",
                f"tools[{index}].name",
                "missing_required_parameter",
            )


def _check_format(body: dict[str, Any], dep: Deployment, view: dict[str, Any]) -> Any:
    fmt = (body.get("text") or {}).get("format") or {}
    kind = fmt.get("type")
    if kind == "json_schema":
        if not dep.json_schema:
            raise _bad(protocol.MSG_JSON_SCHEMA_MODEL, "text.format")
        if not fmt.get("name"):
            raise _bad("Missing required parameter: 'text.format.name'.", "text.format.name")
        if fmt.get("strict"):
            problem = schema.check_strict(fmt.get("schema") or {}, str(fmt["name"]))
            if problem:
                raise _bad(problem, "text.format.schema")
        return fmt.get("schema")
    if kind == "json_object":
        text = " ".join(
            m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
            for m in view["messages"]
        )
        if "json" not in text.lower():
            raise _bad(MSG_JSON_WORD, "input")
    return None


def validate(body: dict[str, Any], dep: Deployment, api_version: str | None) -> int:
    """Raise ``RequestRejected`` as the service would; return the input token estimate."""
    if api_version is not None:
        date = api_version_date(api_version)
        if date is None or date < MIN_VERSION:
            raise RequestRejected(400, protocol.error("BadRequest", MSG_VERSION))
    _check_items(body, dep)
    _check_parameters(body, dep)
    view = chat_view(body)
    schema_extra = _check_format(body, dep, view)
    tokens = estimate_messages(view["messages"], [body.get("tools"), schema_extra])
    window = dep.context_window or 0
    if tokens > window:
        raise RequestRejected(400, protocol.context_length_exceeded(window, tokens))
    return tokens


def quota_tokens(body: dict[str, Any], input_tokens: int) -> int:
    budget = body.get("max_output_tokens")
    return input_tokens + (budget if isinstance(budget, int) else 0)


def stand_in_summary(dep: Deployment) -> str:
    """The reasoning summary of a generated reply: a stand-in, and it says so (no reasoning ran)."""
    return (
        f"Emulated reasoning summary from {dep.name}: no reasoning took place; "
        "the reply is a deterministic stand-in."
    )


def _summary(reply: ChatReply, dep: Deployment, body: dict[str, Any]) -> str | None:
    if not dep.reasoning or not (body.get("reasoning") or {}).get("summary"):
        return None
    return reply.summary if reply.summary is not None else stand_in_summary(dep)


def _usage(reply: ChatReply, input_tokens: int, dep: Deployment, body: dict[str, Any]) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    output, reasoning = output_tokens(reply, dep, chat_view(body))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output,
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


class _Rendering:
    """One reply's output items and response object, with ids fixed once so body and events agree."""

    def __init__(self, reply: ChatReply, input_tokens: int, dep: Deployment, body: dict[str, Any]) -> None:
        self.reply, self.dep, self.body = reply, dep, body
        self.id = _new_id("resp")
        self.created = int(time.time())
        self.summary = _summary(reply, dep, body)
        self.usage = _usage(reply, input_tokens, dep, body)
        self.incomplete = reply.finish_reason in ("length", "content_filter")
        self.reasoning_item: dict[str, Any] | None = None
        if dep.reasoning:
            summary = [{"type": "summary_text", "text": self.summary}] if self.summary else []
            self.reasoning_item = {"id": _new_id("rs"), "type": "reasoning", "summary": summary}
        self.message_item: dict[str, Any] | None = None
        if reply.content or reply.refusal or not reply.tool_calls:
            part: dict[str, Any] = (
                {"type": "refusal", "refusal": reply.refusal}
                if reply.refusal
                else {"type": "output_text", "text": reply.content or "", "annotations": [], "logprobs": []}
            )
            self.message_item = {
                "id": _new_id("msg"),
                "type": "message",
                "status": "incomplete" if self.incomplete else "completed",
                "role": "assistant",
                "content": [part] if (reply.content or reply.refusal) else [],
            }
        self.calls = [
            {
                "id": _new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "arguments": call["function"]["arguments"],
                "call_id": call["id"],
                "name": call["function"]["name"],
            }
            for call in reply.tool_calls
        ]

    def items(self) -> list[dict[str, Any]]:
        out = [self.reasoning_item, self.message_item, *self.calls]
        return [item for item in out if item is not None]

    def response(self, *, final: bool) -> dict[str, Any]:
        """The response object: ``final`` with output and usage, else as ``response.created`` shows it."""
        body = self.body
        fmt = (body.get("text") or {}).get("format") or {"type": "text"}
        status = ("incomplete" if self.incomplete else "completed") if final else "in_progress"
        reason = None
        if final and self.incomplete:
            reason = {
                "reason": "content_filter"
                if self.reply.finish_reason == "content_filter"
                else "max_output_tokens"
            }
        out: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": reason,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.dep.model,
            "output": self.items() if final else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {
                "effort": (body.get("reasoning") or {}).get("effort")
                or ("medium" if self.dep.reasoning else None),
                "summary": (body.get("reasoning") or {}).get("summary"),
            },
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": fmt},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self.usage if final else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }
        if final and self.reply.filtered:
            out["content_filters"] = [
                {
                    "blocked": True,
                    "source_type": "completion",
                    "content_filter_results": protocol.filter_results(self.reply.filtered, prompt=False),
                }
            ]
        return out


def response_body(
    reply: ChatReply, input_tokens: int, dep: Deployment, body: dict[str, Any]
) -> dict[str, Any]:
    return _Rendering(reply, input_tokens, dep, body).response(final=True)


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S*\s*", text)[:-1] or [text]


def stream_events(
    reply: ChatReply, input_tokens: int, dep: Deployment, body: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The event sequence of a streamed response, each event with its ``type`` and ``sequence_number``."""
    r = _Rendering(reply, input_tokens, dep, body)
    sequence = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal sequence
        out = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return out

    yield event("response.created", response=r.response(final=False))
    yield event("response.in_progress", response=r.response(final=False))
    index = 0
    if r.reasoning_item is not None:
        item = r.reasoning_item
        yield event("response.output_item.added", output_index=index, item={**item, "summary": []})
        for s_index, part in enumerate(item["summary"]):
            ids = {"item_id": item["id"], "output_index": index, "summary_index": s_index}
            yield event(
                "response.reasoning_summary_part.added", **ids, part={"type": "summary_text", "text": ""}
            )
            for piece in _pieces(part["text"]):
                yield event("response.reasoning_summary_text.delta", **ids, delta=piece)
            yield event("response.reasoning_summary_text.done", **ids, text=part["text"])
            yield event("response.reasoning_summary_part.done", **ids, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
        index += 1
    if r.message_item is not None:
        item = r.message_item
        yield event(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "content": []},
        )
        for c_index, part in enumerate(item["content"]):
            ids = {"item_id": item["id"], "output_index": index, "content_index": c_index}
            if part["type"] == "refusal":
                yield event("response.content_part.added", **ids, part={"type": "refusal", "refusal": ""})
                yield event("response.refusal.delta", **ids, delta=part["refusal"])
                yield event("response.refusal.done", **ids, refusal=part["refusal"])
            else:
                empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event("response.content_part.added", **ids, part=empty)
                for piece in _pieces(part["text"]):
                    yield event("response.output_text.delta", **ids, delta=piece, logprobs=[])
                yield event("response.output_text.done", **ids, text=part["text"], logprobs=[])
            yield event("response.content_part.done", **ids, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
        index += 1
    for call in r.calls:
        yield event(
            "response.output_item.added",
            output_index=index,
            item={**call, "arguments": "", "status": "in_progress"},
        )
        ids = {"item_id": call["id"], "output_index": index}
        yield event("response.function_call_arguments.delta", **ids, delta=call["arguments"])
        yield event(
            "response.function_call_arguments.done", **ids, arguments=call["arguments"], name=call["name"]
        )
        yield event("response.output_item.done", output_index=index, item=call)
        index += 1
    final = "response.incomplete" if r.incomplete else "response.completed"
    yield event(final, response=r.response(final=True))


def error_event(sequence_number: int) -> dict[str, Any]:
    """A mid-stream failure as the service sends it: an ``error`` event, then the stream ends."""
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "code": "server_error",
        "message": protocol.MSG_SERVER_ERROR,
        "param": None,
    }


def sse(event: dict[str, Any]) -> str:
    """One event in the Responses wire form: an ``event:`` line naming the type, then the data."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
