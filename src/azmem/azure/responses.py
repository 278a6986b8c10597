"""The Responses API (``POST /openai/responses``) as a second wire protocol for the same calls.

Azure documents the Responses API for reasoning and newer model families: it returns
reasoning summaries and typed output items, and it is the API Graphiti already calls.
azmem sends a deployment's ``generate``/``stream`` calls through it when the deployment's
``responses_api`` capability says so (on by default for reasoning models where the API mode
serves it); everything else about a call (the output mode and its fallback, re-asks, retries,
typed errors, usage, cache, spans) is the chat flow's, in :mod:`azmem.azure.chat`. This
module holds only what differs on the wire: building the request from our messages and
options, and reading a response, or a stream of events, back into the same results.

Pure functions, no I/O, shared by the sync and async clients. A response is read from its
JSON body (a dict), as chat completions are (see :mod:`azmem.azure.response`); a stream's
closing ``Response`` object is turned back into that dict, so both are read by one reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from openai.lib._pydantic import to_strict_json_schema
from openai.types.responses import Response

from azmem.azure.errors import RequestContext
from azmem.azure.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    clean_text,
)
from azmem.azure.request import ChatOptions, OutputMode, prompt_items
from azmem.azure.response import (
    LLMResult,
    StreamStateBase,
    ValidationFailure,
    answer_result,
    error_info,
)
from azmem.azure.usage import Usage
from azmem.errors import (
    ContentFilterError,
    InvalidInputError,
    OutputTruncatedError,
    RefusalError,
    ServiceError,
)

__all__ = [
    "ResponsesStreamState",
    "build_responses_kwargs",
    "interpret_response",
    "response_usage",
    "to_input",
]

_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def _content(content: str | tuple[Any, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return clean_text(content)
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, ImagePart):
            parts.append({"type": "input_image", "image_url": part.url, "detail": part.detail})
        else:
            parts.append({"type": "input_text", "text": clean_text(part.text)})
    return parts


def to_input(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages as Responses input items.

    Roles keep their messages (``system``/``developer``/``user``/``assistant``); an assistant's
    tool calls become ``function_call`` items and tool results ``function_call_output`` items
    linked by ``call_id``, which is how the Responses API pairs them (it rejects an output
    whose call is missing). Message ``name``s have no place in this API and are dropped.
    """
    items: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            items.append({"role": message.role, "content": clean_text(message.content)})
        elif isinstance(message, UserMessage):
            items.append({"role": "user", "content": _content(message.content)})
        elif isinstance(message, AssistantMessage):
            if message.content:
                items.append({"role": "assistant", "content": clean_text(message.content)})
            for call in message.tool_calls:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                    }
                )
        elif isinstance(message, ToolMessage):
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id,
                    "output": clean_text(message.content),
                }
            )
    return items


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-shaped function tool (``{"type": "function", "function": {...}}``), flattened for Responses."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, Mapping):
        return {"type": "function", **function}
    return dict(tool)


def _tool_choice(choice: str | Mapping[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if choice.get("type") == "function" and isinstance(function, Mapping):
            return {"type": "function", "name": function["name"]}
        return dict(choice)
    return choice


def _unsupported(option: str) -> InvalidInputError:
    return InvalidInputError(
        f"{option} is not a parameter of the Responses API, which this deployment uses",
        suggestion=f"Drop {option}, or set capabilities.responses_api: false for the deployment to use "
        "chat completions, which take it.",
    )


def build_responses_kwargs(
    *,
    model: str,
    messages: Sequence[Message],
    options: ChatOptions,
    mode: OutputMode,
    reasoning: bool,
    stream: bool = False,
) -> dict[str, Any]:
    """The keyword arguments for ``responses.create``: the same decisions as chat's, in this API's words.

    ``max_output_tokens`` is the one budget (reasoning included) for every model; reasoning
    deployments get ``reasoning: {effort, summary}`` and never temperature/top_p, which
    they reject. Structured output is ``text.format`` json_schema (strict), with the same
    json_object + schema-in-prompt fallback as chat. ``store`` is off: azmem sends the whole
    conversation each time and has no use for a copy kept on the service for 30 days.
    """
    if options.stop:
        raise _unsupported("stop")
    if options.seed is not None:
        raise _unsupported("seed")
    items = prompt_items(messages, options, mode, to_input, text_type="input_text")
    kwargs: dict[str, Any] = {"model": model, "input": items, "store": False}
    if options.max_tokens is not None:
        kwargs["max_output_tokens"] = options.max_tokens
    if reasoning:
        effort: dict[str, Any] = {}
        if options.reasoning_effort is not None:
            effort["effort"] = options.reasoning_effort
        if options.reasoning_summary is not None:
            effort["summary"] = options.reasoning_summary
        if effort:
            kwargs["reasoning"] = effort
    else:
        if options.reasoning_summary is not None:
            raise InvalidInputError(
                "reasoning_summary needs a reasoning deployment (o-series, gpt-5)",
                suggestion="Drop reasoning_summary, or set capabilities.reasoning: true if it reasons.",
            )
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
    if options.tools:
        kwargs["tools"] = [_tool(t) for t in options.tools]
        if options.tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(options.tool_choice)
    if mode == "json_schema":
        assert options.response_model is not None
        kwargs["text"] = {
            "format": {
                "type": "json_schema",
                "name": _NAME.sub("_", options.response_model.__name__)[:64],
                "schema": to_strict_json_schema(options.response_model),
                "strict": True,
            }
        }
    elif mode in ("json_object", "schema_in_prompt"):
        kwargs["text"] = {"format": {"type": "json_object"}}
    if stream:
        kwargs["stream"] = True
    if options.extra_body:
        kwargs["extra_body"] = dict(options.extra_body)
    return kwargs


def response_usage(body: Mapping[str, Any] | None) -> Usage:
    """Usage of a response body; reasoning tokens are part of ``output_tokens``, as billed."""
    u = body.get("usage") if body is not None else None
    if u is None:
        return Usage()
    input_tokens = u.get("input_tokens") or 0
    output_tokens = u.get("output_tokens") or 0
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=u.get("total_tokens") or input_tokens + output_tokens,
        cached_input_tokens=(u.get("input_tokens_details") or {}).get("cached_tokens") or 0,
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
    )


def _filter_results(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Azure's output content-filter results, where the response carries them."""
    for entry in body.get("content_filters") or ():
        if isinstance(entry, Mapping) and entry.get("source_type") != "prompt":
            results = entry.get("content_filter_results")
            if isinstance(results, Mapping):
                return results
    return None


def _parts(body: Mapping[str, Any]) -> tuple[str | None, str | None, tuple[ToolCall, ...], str | None]:
    """(text, refusal, tool calls, reasoning summary) from the output items, in order."""
    texts: list[str] = []
    refusals: list[str] = []
    summaries: list[str] = []
    calls: list[ToolCall] = []
    for item in body.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                part_kind = part.get("type")
                if part_kind == "output_text":
                    texts.append(part["text"])
                elif part_kind == "refusal":
                    refusals.append(part["refusal"])
        elif kind == "function_call":
            calls.append(
                ToolCall(id=item["call_id"], name=item["name"], arguments=item.get("arguments") or "{}")
            )
        elif kind == "reasoning":
            summaries.extend(s["text"] for s in item.get("summary") or () if s.get("text"))
    return (
        "".join(texts) if texts else None,
        "".join(refusals) if refusals else None,
        tuple(calls),
        "\n\n".join(summaries) if summaries else None,
    )


def _truncated(
    ctx: RequestContext, max_tokens: int | None, what: str, info: dict[str, Any]
) -> OutputTruncatedError:
    limit = f"max_output_tokens={max_tokens}" if max_tokens is not None else "the deployment's default limit"
    return OutputTruncatedError(
        f"The {what} from '{ctx.deployment}' was cut off at {limit} (status 'incomplete', "
        "reason 'max_output_tokens').",
        error_code="length",
        debug_info=info,
        suggestion="Raise max_tokens for this call: on the Responses API it is max_output_tokens, "
        "which reasoning tokens spend too.",
    )


def _failed(ctx: RequestContext, error: Mapping[str, Any] | None, info: dict[str, Any]) -> ServiceError:
    code = (error or {}).get("code") or "server_error"
    message = (error or {}).get("message") or "the response failed"
    return ServiceError(
        f"Deployment '{ctx.deployment}' failed to answer: {message}",
        error_code=str(code),
        debug_info=info,
    )


def interpret_response(
    body: Mapping[str, Any],
    *,
    usage: Usage | None = None,
    parsed: Any = None,
    mode: OutputMode,
    response_model: Any,
    ctx: RequestContext,
    headers: Mapping[str, str] | None,
    max_tokens: int | None,
    attempts: int,
) -> LLMResult[Any] | ValidationFailure:
    """A response body as a result, one of our exceptions, or a validation failure to re-ask (as for chat).

    ``parsed`` is always None here (``responses.create`` validates nothing) and is accepted so
    that both APIs are interpreted through the same call.
    """

    def info() -> dict[str, Any]:
        return error_info(ctx, attempts, headers)

    status = body.get("status")
    error = body.get("error")
    if error is not None or status == "failed":
        raise _failed(ctx, error, info())
    text, refusal, calls, summary = _parts(body)
    reason = (body.get("incomplete_details") or {}).get("reason")
    if reason == "content_filter":
        raise ContentFilterError.from_results(
            _filter_results(body), source="output", ctx=ctx, debug_info=info()
        )
    if reason == "max_output_tokens" or (status == "incomplete" and reason is None):
        raise _truncated(ctx, max_tokens, "answer", info())
    if refusal:
        raise RefusalError(f"The model refused to answer: {refusal}", refusal=refusal, debug_info=info())
    return answer_result(
        text,
        mode=mode,
        response_model=response_model,
        parsed=parsed,
        ctx=ctx,
        headers=headers,
        answer_id=body.get("id"),
        tool_calls=calls,
        usage=usage if usage is not None else response_usage(body),
        model=body.get("model"),
        finish_reason="tool_calls" if calls else "stop",
        attempts=attempts,
        reasoning_summary=summary,
    )


class ResponsesStreamState(StreamStateBase):
    """Accumulates a streamed response event by event: the Responses twin of ``StreamState``.

    Text arrives in ``response.output_text.delta`` events, the summary in
    ``response.reasoning_summary_text.delta``; the closing ``response.completed`` (or
    ``.incomplete``) carries the usage. ``error`` and ``response.failed`` events end it.
    """

    __slots__ = ("refusal", "summary")

    def __init__(self, ctx: RequestContext, *, max_tokens: int | None) -> None:
        super().__init__(ctx, max_tokens=max_tokens)
        self.summary: list[str] = []
        self.refusal: list[str] = []

    @property
    def reasoning_summary(self) -> str | None:
        return "".join(self.summary) or None

    def feed(self, event: Any) -> str | None:
        """The text delta in ``event`` (None if none); raises on a filter, refusal, failure or error event."""
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            self.parts.append(event.delta)
            return event.delta or None
        if kind == "response.reasoning_summary_text.delta":
            self.summary.append(event.delta)
        elif kind == "response.reasoning_summary_part.added" and self.summary:
            self.summary.append("\n\n")
        elif kind == "response.refusal.delta":
            self.refusal.append(event.delta)
        elif kind == "response.refusal.done":
            refusal = event.refusal or "".join(self.refusal)
            raise RefusalError(
                f"The model refused to answer: {refusal}", refusal=refusal, debug_info=self.ctx.debug_info()
            )
        elif kind == "response.created":
            self.model = event.response.model or None
            self.request_id = event.response.id or None
        elif kind in ("response.completed", "response.incomplete"):
            self._close(event.response)
        elif kind == "response.failed":
            raise _failed(self.ctx, event.response.to_dict().get("error"), self.ctx.debug_info())
        elif kind == "error":
            raise ServiceError(
                f"The stream from '{self.ctx.deployment}' failed: {event.message}",
                error_code=str(event.code or "stream_error"),
                debug_info=self.ctx.debug_info(),
            )
        return None

    def _close(self, response: Response) -> None:
        # Once per stream: the closing response, read by the same functions as a whole one.
        body: dict[str, Any] = response.to_dict()
        self.usage = response_usage(body)
        self.model = body.get("model") or self.model
        reason = (body.get("incomplete_details") or {}).get("reason")
        if reason == "content_filter":
            self.finish_reason = "content_filter"
            raise ContentFilterError.from_results(_filter_results(body), source="output", ctx=self.ctx)
        if body.get("status") == "incomplete":
            self.finish_reason = "length"
        else:
            _, _, calls, _ = _parts(body)
            self.finish_reason = "tool_calls" if calls else "stop"

    def check_finish(self) -> None:
        if self.finish_reason == "length":
            raise _truncated(self.ctx, self.max_tokens, "streamed answer", self.ctx.debug_info())
