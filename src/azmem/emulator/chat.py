"""Chat completions: the request checks Azure makes, and the bodies and stream chunks it answers.

A reply is first normalised into a `ChatReply` (from a script entry or generated from the request),
then rendered either as one JSON body or as Azure's SSE chunk sequence, so scripted and generated
answers look identical on the wire.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import protocol, schema, stand_ins
from .config import Deployment
from .tokens import estimate_messages, estimate_text, message_text

JSON_SCHEMA_MIN_VERSION = "2024-08-01"
_VERSION_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview)?$")


class RequestRejected(Exception):
    """A 4xx the service would answer for this request; carries Azure's status and body."""

    def __init__(self, status: int, body: protocol.ErrorBody) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class ChatReply:
    content: str | None = None
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    filtered: dict[str, str] | None = None  # output content filter categories -> severity
    usage: dict[str, Any] | None = None
    summary: str | None = None  # the reasoning summary (Responses API, reasoning deployments)


def api_version_date(version: str) -> str | None:
    """The date part of a dated api-version, or None when it is not one Azure would recognise."""
    match = _VERSION_RE.match(version)
    return match.group(1) if match else None


def fingerprint(dep: Deployment) -> str:
    """Stable per model across processes (str hash() is salted per process, sha256 is not)."""
    return "fp_" + hashlib.sha256(str(dep.model).encode()).hexdigest()[:10]


def _all_text(messages: list[Any]) -> str:
    return " ".join(message_text(m) for m in messages)


def validate(body: dict[str, Any], dep: Deployment, api_version: str | None) -> int:
    """Raise `RequestRejected` like the service would; return the prompt token estimate."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected(
            400,
            protocol.invalid_request(
                "'messages' is a required property"
                if messages is None
                else "'messages' must be a non-empty array",
                param="messages",
            ),
        )
    if dep.reasoning:
        if body.get("max_tokens") is not None:
            raise RequestRejected(
                400,
                protocol.invalid_request(
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    param="max_tokens",
                    code="unsupported_parameter",
                ),
            )
        for param in ("temperature", "top_p"):
            value = body.get(param)
            if value is not None and value != 1:
                raise RequestRejected(
                    400,
                    protocol.invalid_request(
                        f"Unsupported value: '{param}' does not support {value} with this model. "
                        "Only the default (1) value is supported.",
                        param=param,
                        code="unsupported_value",
                    ),
                )
    elif body.get("reasoning_effort") is not None:
        raise RequestRejected(
            400,
            protocol.invalid_request(
                "Unrecognized request argument supplied: reasoning_effort", param="reasoning_effort"
            ),
        )
    if not dep.vision:
        _reject_images(messages)
    response_format = body.get("response_format")
    extra: Any = body.get("tools")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            date = api_version_date(api_version) if api_version else None
            if api_version is not None and (date is None or date < JSON_SCHEMA_MIN_VERSION):
                raise RequestRejected(400, protocol.error("BadRequest", protocol.MSG_JSON_SCHEMA_VERSION))
            if not dep.json_schema:
                raise RequestRejected(400, protocol.invalid_request(protocol.MSG_JSON_SCHEMA_MODEL))
            spec = response_format.get("json_schema") or {}
            if spec.get("strict"):
                problem = schema.check_strict(spec.get("schema") or {}, str(spec.get("name", "response")))
                if problem:
                    raise RequestRejected(400, protocol.invalid_request(problem, param="response_format"))
            extra = [extra, spec.get("schema")]
        elif kind == "json_object" and "json" not in _all_text(messages).lower():
            raise RequestRejected(400, protocol.invalid_request(protocol.MSG_JSON_WORD, param="messages"))
    prompt_tokens = estimate_messages(messages, extra)
    window = dep.context_window or 0
    completion_budget = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = dep.max_output_tokens or 0
    if isinstance(completion_budget, int) and completion_budget > limit:
        param = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
        raise RequestRejected(
            400,
            protocol.invalid_request(
                f"{param} is too large: {completion_budget}. This model supports at most {limit} completion "
                f"tokens, whereas you provided {completion_budget}.",
                param=param,
                code="invalid_value",
            ),
        )
    if isinstance(completion_budget, int) and prompt_tokens + completion_budget > window:
        raise RequestRejected(
            400,
            protocol.invalid_request(
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt_tokens + completion_budget} tokens ({prompt_tokens} in the messages, "
                f"{completion_budget} in the completion). "
                "Please reduce the length of the messages or completion.",
                param="messages",
                code="context_length_exceeded",
            ),
        )
    if prompt_tokens > window:
        raise RequestRejected(400, protocol.context_length_exceeded(window, prompt_tokens))
    return prompt_tokens


def _reject_images(messages: list[Any]) -> None:
    for m_index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for p_index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "image_url":
                raise RequestRejected(
                    400,
                    protocol.invalid_request(
                        "Invalid content type. image_url is only supported by certain models.",
                        param=f"messages.[{m_index}].content.[{p_index}].type",
                    ),
                )


def quota_tokens(body: dict[str, Any], prompt_tokens: int) -> int:
    """What a request costs against TPM: the prompt estimate plus the requested completion budget,
    as Azure counts it on admission (before the answer's real size is known)."""
    budget = body.get("max_completion_tokens") or body.get("max_tokens")
    return prompt_tokens + (budget if isinstance(budget, int) else 0)


def _normalise_tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    if "function" in call:
        fn = dict(call["function"])
        if not isinstance(fn.get("arguments"), str):
            fn["arguments"] = json.dumps(fn.get("arguments") or {})
        return {
            "id": call.get("id") or f"call_{index}_{secrets.token_hex(6)}",
            "type": "function",
            "function": fn,
        }
    arguments = call.get("arguments", {})
    return {
        "id": call.get("id") or f"call_{index}_{secrets.token_hex(6)}",
        "type": "function",
        "function": {
            "name": call["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _tools_by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            out[str(tool["function"].get("name"))] = tool["function"]
    return out


def generated_tool_call(body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A call to `name` (or the first tool) with arguments generated from its parameters schema,
    their strings drawn from the user's sentences (see `stand_ins`)."""
    tools = _tools_by_name(body)
    if not tools:
        raise ValueError("a tool call was asked for but the request has no tools")
    fn = tools.get(name) if name else next(iter(tools.values()))
    if fn is None:
        raise ValueError(f"the request has no tool named {name!r}")
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    texts = stand_ins.source_sentences(body.get("messages") or [])
    return {"name": fn["name"], "arguments": schema.generate(params, texts=texts)}


_SCHEMA_MARKER = re.compile(r"json[ _-]?schema\s*:\s*", re.IGNORECASE)


def schema_in_prompt(messages: list[Any]) -> dict[str, Any] | None:
    """The JSON schema a message states ("JSON schema: {...}"), system messages first, or None.

    That is how clients ask for structured output where ``json_schema`` is unavailable
    (an old api-version, a legacy model): ``json_object`` plus the schema in the prompt.
    """
    ordered = sorted(messages, key=lambda m: 0 if isinstance(m, dict) and m.get("role") == "system" else 1)
    decoder = json.JSONDecoder()
    for message in ordered:
        text = message_text(message)
        for match in _SCHEMA_MARKER.finditer(text):
            start = text.find("{", match.end())
            if start < 0:
                continue
            try:
                found, _ = decoder.raw_decode(text, start)
            except (ValueError, RecursionError):
                continue
            if isinstance(found, dict) and ("type" in found or "properties" in found or "$defs" in found):
                return found
    return None


def default_reply(body: dict[str, Any], dep: Deployment) -> ChatReply:
    """What the emulator says when nothing is scripted: a valid answer of the requested shape.

    Its content is a deterministic stand-in drawn from the request (see `stand_ins`): the
    user's own sentences, echoed into the text or into the fields of the requested JSON,
    as many of them as fit the completion budget (the echo must not be what truncates).
    """
    messages = body.get("messages") or []
    sentences = stand_ins.source_sentences(messages)
    choice = body.get("tool_choice")
    if body.get("tools") and (choice == "required" or isinstance(choice, dict)):
        name = choice["function"]["name"] if isinstance(choice, dict) else None
        return ChatReply(
            content=None,
            finish_reason="tool_calls",
            tool_calls=[_normalise_tool_call(generated_tool_call(body, name), 0)],
        )
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    shape: Any = None  # a JSON schema to instantiate
    template: Any = None  # or an example output to follow
    if kind == "json_schema":
        assert isinstance(response_format, dict)
        shape = (response_format.get("json_schema") or {}).get("schema") or {}
    elif kind == "json_object":
        # The json_schema -> json_object fallback states its schema in the prompt; other
        # prompts show an example output.
        shape = schema_in_prompt(messages)
        if shape is None:
            template = stand_ins.prompt_template(messages)

    def render(texts: list[str]) -> str:
        if shape is not None:
            return json.dumps(schema.generate(shape, texts=texts))
        if kind == "json_object" and template is not None:
            return json.dumps(stand_ins.fill_template(template, texts))
        if kind == "json_object":
            return json.dumps({"reply": stand_ins.text_reply(texts, dep.name)})
        return stand_ins.text_reply(texts, dep.name)

    return ChatReply(content=stand_ins.fitting(render, sentences, _room(body, dep)))


def _room(body: dict[str, Any], dep: Deployment) -> int | None:
    """Completion tokens left for the content once reasoning took its share, or None (no budget)."""
    budget = _budget(body)
    return None if budget is None else budget - reasoning_tokens(dep, body)


def coerce_reply(reply: Any, body: dict[str, Any]) -> ChatReply | dict[str, Any]:
    """A script entry as a `ChatReply`, or a dict that is already a whole response body."""
    if isinstance(reply, ChatReply):
        return reply
    if isinstance(reply, str):
        return ChatReply(content=reply)
    if isinstance(reply, dict):
        if "choices" in reply or "object" in reply or "output" in reply:
            return reply
        content = reply.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)
        calls = reply.get("tool_calls") or []
        if calls == "auto":
            calls = [generated_tool_call(body)]
        tool_calls = [_normalise_tool_call(c, i) for i, c in enumerate(calls)]
        finish = reply.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
        return ChatReply(
            content=content,
            finish_reason=finish,
            tool_calls=tool_calls,
            refusal=reply.get("refusal"),
            filtered=reply.get("filtered"),
            usage=reply.get("usage"),
            summary=reply.get("reasoning_summary"),
        )
    raise TypeError(f"unsupported scripted chat reply: {type(reply).__name__}")


def _budget(body: dict[str, Any]) -> int | None:
    budget = body.get("max_completion_tokens") or body.get("max_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def reasoning_tokens(dep: Deployment, body: dict[str, Any]) -> int:
    """The hidden reasoning a reasoning deployment spends, capped by the completion budget."""
    if not dep.reasoning:
        return 0
    effort = body.get("reasoning_effort") or "medium"
    spent = {"minimal": 0, "low": 16, "medium": 64, "high": 256}.get(str(effort), 64)
    budget = _budget(body)
    return spent if budget is None else min(spent, max(budget, 0))


def apply_limits(reply: ChatReply, body: dict[str, Any], dep: Deployment | None = None) -> ChatReply:
    """Cut the content at the requested completion budget and say "length", as the model does.

    On a reasoning deployment the reasoning tokens come out of the same budget
    (``max_completion_tokens``), so a small budget can leave empty content and "length".
    """
    budget = _budget(body)
    if budget is None or reply.usage is not None:
        return reply
    left = budget - (reasoning_tokens(dep, body) if dep is not None else 0)
    if left <= 0 and (reply.content or (dep is not None and dep.reasoning)):
        if reply.tool_calls:
            return reply
        reply.content = ""
        reply.finish_reason = "length"
    elif reply.content and estimate_text(reply.content) > left:
        reply.content = reply.content[: left * 4]
        reply.finish_reason = "length"
    return reply


def output_tokens(reply: ChatReply, dep: Deployment, body: dict[str, Any]) -> tuple[int, int]:
    """The reply's estimated output tokens (reasoning included) and their reasoning share;
    ``body`` in chat-completions words."""
    reasoning = reasoning_tokens(dep, body)
    output = estimate_text(reply.content or "") + estimate_text(reply.refusal or "") + reasoning
    for call in reply.tool_calls:
        output += estimate_text(json.dumps(call["function"]))
    return output, reasoning


def _usage(reply: ChatReply, prompt_tokens: int, dep: Deployment, body: dict[str, Any]) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    completion, reasoning = output_tokens(reply, dep, body)
    return {
        "completion_tokens": completion,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": reasoning,
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "total_tokens": prompt_tokens + completion,
    }


def _message(reply: ChatReply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "annotations": [],
        "content": reply.content,
        "refusal": reply.refusal,
        "role": "assistant",
    }
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return message


def _choice_filter(reply: ChatReply) -> dict[str, Any]:
    return protocol.filter_results(reply.filtered, prompt=False)


def completion_body(
    replies: list[ChatReply], prompt_tokens: int, dep: Deployment, body: dict[str, Any]
) -> dict[str, Any]:
    choices = []
    usage: dict[str, Any] | None = None
    for index, reply in enumerate(replies):
        choices.append(
            {
                "content_filter_results": _choice_filter(reply),
                "finish_reason": reply.finish_reason,
                "index": index,
                "logprobs": None,
                "message": _message(reply),
            }
        )
        u = _usage(reply, prompt_tokens, dep, body)
        if usage is None:
            usage = u
        else:
            usage["completion_tokens"] += u["completion_tokens"]
            usage["total_tokens"] += u["completion_tokens"]
    return {
        "choices": choices,
        "created": int(time.time()),
        "id": "chatcmpl-" + secrets.token_urlsafe(21),
        "model": dep.model,
        "object": "chat.completion",
        "prompt_filter_results": protocol.prompt_filter_results(),
        "system_fingerprint": fingerprint(dep),
        "usage": usage,
    }


def _pieces(text: str) -> list[str]:
    """Split text the way a model streams it: a few characters at a time, words kept whole."""
    return re.findall(r"\S*\s*", text)[:-1] or [text]


def sse(data: Any) -> str:
    return "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"


def stream_chunks(
    reply: ChatReply, prompt_tokens: int, dep: Deployment, body: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Azure's chunk sequence: prompt-filter chunk, role chunk, deltas, finish chunk, usage chunk."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    yield {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": protocol.prompt_filter_results(),
    }
    completion_id = "chatcmpl-" + secrets.token_urlsafe(21)
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, filters: Any = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}
        if filters is not None:
            choice["content_filter_results"] = filters
        out: dict[str, Any] = {
            "choices": [choice],
            "created": created,
            "id": completion_id,
            "model": dep.model,
            "object": "chat.completion.chunk",
            "system_fingerprint": fingerprint(dep),
        }
        if include_usage:
            out["usage"] = None
        return out

    yield chunk({"content": "", "refusal": None, "role": "assistant"}, filters={})
    if reply.content:
        for piece in _pieces(reply.content):
            yield chunk({"content": piece}, filters=protocol.filter_results(prompt=False))
    if reply.refusal:
        yield chunk({"refusal": reply.refusal})
    for index, call in enumerate(reply.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        yield chunk(
            {"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]}
        )
    yield chunk({}, reply.finish_reason, _choice_filter(reply) if reply.filtered else None)
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = _usage(reply, prompt_tokens, dep, body)
        yield final
