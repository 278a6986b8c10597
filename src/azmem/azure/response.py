"""Reading chat completions into typed results; pure, shared by both clients.

Every outcome the service can produce becomes either an :class:`LLMResult` or one of
our exceptions (refusal, truncation, output filter, empty answer), and output that
fails validation becomes a :class:`ValidationFailure` the call flow can re-ask with.

A completion is read from its JSON body (a dict), not from the SDK's ``ChatCompletion``:
building that object tree costs about 70 µs per call (``construct_type``), twenty times
the ``json.loads`` that precedes it, and :class:`LLMResult` keeps only a few of its fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from openai.types.chat import (
    ChatCompletionChunk,
    ParsedChatCompletionMessage,
    ParsedChoice,
    ParsedFunction,
    ParsedFunctionToolCall,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from azmem.azure.errors import RequestContext
from azmem.azure.headers import debug_headers
from azmem.azure.messages import ToolCall
from azmem.azure.request import OutputMode
from azmem.azure.usage import Usage
from azmem.errors import ContentFilterError, EmptyResponseError, OutputTruncatedError, RefusalError

__all__ = [
    "LLMResult",
    "StreamState",
    "StreamStateBase",
    "ValidationFailure",
    "answer_result",
    "error_info",
    "first_content",
    "interpret_completion",
    "request_id_of",
    "shape_answer",
    "usage_of",
    "validation_text",
]

T = TypeVar("T", bound=BaseModel)


class LLMResult(BaseModel, Generic[T]):
    """What one ``generate`` call produced.

    Exactly one of ``text`` (plain), ``data`` (JSON mode) or ``parsed`` (a validated
    ``response_model`` instance; ``data`` then holds its dict) is the answer; tool
    calls may come with or without text.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    text: str | None = None
    data: dict[str, Any] | None = None
    parsed: T | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage
    deployment: str
    model: str | None = None
    request_id: str | None = None
    finish_reason: str | None = None
    cached: bool = False
    attempts: int = 1
    reasoning_summary: str | None = None
    """The model's own summary of its reasoning (Responses API with ``reasoning_summary``), if asked."""

    @property
    def output_text(self) -> str:
        """The answer's text, named as the SDK's ``Response.output_text`` ("" when only tools were called)."""
        return self.text or ""

    @property
    def choices(self) -> list[ParsedChoice[Any]]:
        """The result as the SDK's one-choice ``choices`` list, for code written against ``ChatCompletion``.

        Built on each access (it is a view, not stored): ``choices[0].message.content``,
        ``.tool_calls``, ``.parsed`` and ``choices[0].finish_reason`` read the fields above.
        """
        calls = [
            ParsedFunctionToolCall.model_construct(
                id=c.id,
                type="function",
                function=ParsedFunction.model_construct(name=c.name, arguments=c.arguments),
            )
            for c in self.tool_calls
        ]
        message = ParsedChatCompletionMessage[Any].model_construct(
            role="assistant",
            content=self.text,
            refusal=None,
            tool_calls=calls or None,
            parsed=self.parsed,
        )
        return [
            ParsedChoice[Any].model_construct(
                index=0, finish_reason=cast(Any, self.finish_reason or "stop"), logprobs=None, message=message
            )
        ]


@dataclass(frozen=True, slots=True)
class ValidationFailure:
    """Output that parsed badly; ``content`` is what the model wrote, for the re-ask turn."""

    content: str | None
    error: str


def usage_of(body: Mapping[str, Any]) -> Usage:
    """A completion body's usage; :meth:`Usage.from_sdk` reads a stream chunk's object the same way."""
    return Usage.from_sdk(body.get("usage"))


def error_info(ctx: RequestContext, attempts: int, headers: Mapping[str, str] | None) -> dict[str, Any]:
    """``debug_info`` for an exception raised while reading an answer (only error paths pay for it)."""
    return {**ctx.debug_info(), "attempt": attempts, **debug_headers(headers)}


def answer_result(
    content: str | None,
    *,
    mode: OutputMode,
    response_model: type[T] | None,
    parsed: Any = None,
    ctx: RequestContext,
    headers: Mapping[str, str] | None,
    answer_id: str | None,
    tool_calls: tuple[ToolCall, ...],
    usage: Usage,
    model: str | None,
    finish_reason: str | None,
    attempts: int,
    reasoning_summary: str | None = None,
) -> LLMResult[T] | ValidationFailure:
    """An answer that passed the API's own checks, as a result (or a failure to re-ask), for either API.

    Neither text nor a tool call is :class:`EmptyResponseError`. The request id is the
    service's ``apim-request-id``/``x-request-id`` header, else the answer's own id.
    """
    if content is None and not tool_calls:
        raise EmptyResponseError(
            f"Deployment '{ctx.deployment}' returned neither text nor tool calls.",
            debug_info=error_info(ctx, attempts, headers),
        )
    common = {
        "tool_calls": tool_calls,
        "usage": usage,
        "deployment": ctx.deployment,
        "model": model or None,
        "request_id": request_id_of(headers) or answer_id or None,
        "finish_reason": finish_reason,
        "attempts": attempts,
        "reasoning_summary": reasoning_summary,
    }
    return shape_answer(content, mode=mode, response_model=response_model, common=common, parsed=parsed)


def _extra(obj: BaseModel, name: str) -> Any:
    extra = obj.model_extra or {}
    return extra.get(name)


def first_content(body: Mapping[str, Any]) -> str | None:
    """The first choice's text in a completion body (what a re-ask shows the model), if any."""
    choices = body.get("choices")
    if not choices:
        return None
    content: str | None = (choices[0].get("message") or {}).get("content")
    return content


def request_id_of(headers: Mapping[str, str] | None) -> str | None:
    if headers is None:
        return None
    return headers.get("apim-request-id") or headers.get("x-request-id")


def validation_text(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        lines = []
        for err in exc.errors(include_url=False)[:20]:
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            lines.append(f"- {where}: {err['msg']}")
        return "\n".join(lines)
    return str(exc)


def interpret_completion(
    body: Mapping[str, Any],
    *,
    usage: Usage | None = None,
    parsed: Any = None,
    mode: OutputMode,
    response_model: type[T] | None,
    ctx: RequestContext,
    headers: Mapping[str, str] | None,
    max_tokens: int | None,
    attempts: int,
) -> LLMResult[T] | ValidationFailure:
    """Turn a completion body into a result, an exception, or a validation failure to re-ask.

    ``parsed`` is the response model instance ``chat.completions.parse`` already validated
    (json_schema mode), if any; everything else is read from the body.
    """

    def info() -> dict[str, Any]:
        return error_info(ctx, attempts, headers)

    choices = body.get("choices")
    if not choices:
        raise EmptyResponseError(f"Deployment '{ctx.deployment}' returned no choices.", debug_info=info())
    choice = choices[0]
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    if finish == "content_filter":
        raise ContentFilterError.from_results(
            choice.get("content_filter_results"), source="output", ctx=ctx, debug_info=info()
        )
    if finish == "length":
        limit = f"max_tokens={max_tokens}" if max_tokens is not None else "the deployment's default limit"
        reported = body.get("usage")
        raise OutputTruncatedError(
            f"The answer from '{ctx.deployment}' was cut off at {limit} (finish_reason 'length').",
            error_code="length",
            debug_info=info(),
            details={"output_tokens": reported.get("completion_tokens") if reported is not None else None},
            suggestion="Raise max_tokens for this call (reasoning models spend part of it on reasoning).",
        )
    refusal = message.get("refusal")
    if refusal:
        raise RefusalError(f"The model refused to answer: {refusal}", refusal=refusal, debug_info=info())
    calls = message.get("tool_calls")
    tool_calls = (
        tuple(
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"].get("arguments") or "{}")
            for c in calls
            if c.get("type") == "function"
        )
        if calls
        else ()
    )
    return answer_result(
        message.get("content"),
        mode=mode,
        response_model=response_model,
        parsed=parsed,
        ctx=ctx,
        headers=headers,
        answer_id=body.get("id"),
        tool_calls=tool_calls,
        usage=usage if usage is not None else usage_of(body),
        model=body.get("model"),
        finish_reason=finish,
        attempts=attempts,
    )


def shape_answer(
    content: str | None,
    *,
    mode: OutputMode,
    response_model: type[T] | None,
    common: dict[str, Any],
    parsed: Any = None,
) -> LLMResult[T] | ValidationFailure:
    """The answer's text as the result the output mode asks for, or a failure to re-ask with.

    Shared by chat completions and the Responses API: both end in text that is plain, JSON
    or a model's JSON; ``parsed`` is what the SDK already validated (``parse``), if anything.
    """
    tool_calls = common.get("tool_calls") or ()
    if mode == "text" or (content is None and tool_calls):
        return LLMResult(text=content, **common)
    assert content is not None
    if mode == "json_schema" and parsed is not None:
        return LLMResult(text=content, data=parsed.model_dump(mode="json"), parsed=parsed, **common)
    try:
        data = json.loads(content)
    except ValueError as exc:
        return ValidationFailure(content, f"The reply is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return ValidationFailure(content, f"Expected a JSON object, got {type(data).__name__}.")
    if response_model is None:
        return LLMResult(text=content, data=data, **common)
    try:
        parsed = response_model.model_validate(data)
    except ValidationError as exc:
        return ValidationFailure(content, validation_text(exc))
    return LLMResult(text=content, data=data, parsed=parsed, **common)


def validation_failure_from(exc: ValidationError | ValueError, content: str | None) -> ValidationFailure:
    return ValidationFailure(content, validation_text(exc))


class StreamStateBase:
    """What a streamed answer accumulates on either API: text pieces, and how it ended."""

    __slots__ = ("ctx", "finish_reason", "max_tokens", "model", "parts", "request_id", "usage")

    def __init__(self, ctx: RequestContext, *, max_tokens: int | None) -> None:
        self.ctx = ctx
        self.max_tokens = max_tokens
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.request_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class StreamState(StreamStateBase):
    """Accumulates a streamed answer chunk by chunk; the drivers only move bytes.

    Azure's first chunk has no choices (only prompt_filter_results) and, with
    ``include_usage``, so does the last (it carries the usage): both are expected.
    """

    __slots__ = ()

    @property
    def reasoning_summary(self) -> str | None:
        """Chat completions never carry one."""
        return None

    def feed(self, chunk: ChatCompletionChunk) -> str | None:
        """The text delta in ``chunk`` (None if none); raises on an output filter or refusal."""
        if chunk.usage is not None:
            self.usage = Usage.from_sdk(chunk.usage)
        if chunk.model:
            self.model = chunk.model
        if chunk.id and self.request_id is None:
            self.request_id = chunk.id
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
            if choice.finish_reason == "content_filter":
                raise ContentFilterError.from_results(
                    _extra(choice, "content_filter_results"), source="output", ctx=self.ctx
                )
        delta = choice.delta
        if delta is not None and delta.refusal:
            raise RefusalError(
                f"The model refused to answer: {delta.refusal}",
                refusal=delta.refusal,
                debug_info=self.ctx.debug_info(),
            )
        text = delta.content if delta is not None else None
        if text:
            self.parts.append(text)
            return text
        return None

    def check_finish(self) -> None:
        """Truncation is only known at the end of a stream; say so instead of returning half an answer."""
        if self.finish_reason == "length":
            raise OutputTruncatedError(
                f"The streamed answer from '{self.ctx.deployment}' was cut off (finish_reason 'length').",
                error_code="length",
                debug_info=self.ctx.debug_info(),
                suggestion="Raise max_tokens for this call.",
            )
