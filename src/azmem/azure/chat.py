"""The chat call flows (generate, stream opening), written once as sans-IO generators.

``generate_flow`` owns the whole policy of a call: cache lookup, the output mode and
its fallback when a deployment rejects json_schema (remembered per deployment), the
validation re-ask budget, usage and the span. The clients in :mod:`azmem.azure.llm`
only perform the steps it yields.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from azmem.azure.cache import ResponseCache
from azmem.azure.errors import RequestContext
from azmem.azure.flow import Flow, Offload, Outcome, Send, call_span, send_with_retries
from azmem.azure.headers import debug_headers
from azmem.azure.messages import ImageDetail, Message, ToolCall, has_images, with_default_detail
from azmem.azure.request import (
    ChatOptions,
    OutputMode,
    build_chat_kwargs,
    cache_request,
    choose_mode,
    reask_messages,
)
from azmem.azure.response import (
    LLMResult,
    ValidationFailure,
    first_content,
    interpret_completion,
    usage_of,
    validation_failure_from,
)
from azmem.azure.responses import build_responses_kwargs, interpret_response, response_usage
from azmem.azure.retry import RetryPolicy
from azmem.azure.tracing import server_attributes
from azmem.azure.usage import Usage, UsageTracker
from azmem.errors import (
    ContentFilterError,
    InvalidInputError,
    JsonSchemaUnsupportedError,
    StructuredOutputError,
)

__all__ = [
    "ChatEnv",
    "Target",
    "generate_flow",
    "is_sampled",
    "open_stream_flow",
    "record_usage",
    "span_attributes",
]

if TYPE_CHECKING:
    from azmem.azure.capabilities import Capabilities
    from azmem.azure.provider import AzureProvider

T = TypeVar("T", bound=BaseModel)
logger = logging.getLogger("azmem.azure.llm")


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment as the flows see it: where to send, and what it can do."""

    deployment: str
    endpoint: str
    api_version: str | None
    model_arg: str
    model_name: str
    reasoning: bool
    json_schema: bool
    auth: str | None = None
    vision: bool = True
    vision_detail: ImageDetail | None = None
    """The role's ``vision_detail``: the detail of image parts that did not set one."""
    retry: RetryPolicy | None = None
    """The role's own retry policy; None: the client's."""
    responses_api: bool = False
    """Send through the Responses API instead of chat completions (the ``responses_api`` capability)."""
    _chat_context: RequestContext | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_chat_context", _context(self, "chat"))

    @classmethod
    def of(cls, provider: AzureProvider, caps: Capabilities, *, retry: RetryPolicy | None = None) -> Target:
        """The target of ``provider``'s deployment, with ``caps`` (its own, or a pool entry's overrides)."""
        cfg = provider.settings
        return cls(
            deployment=provider.deployment,
            endpoint=provider.endpoint,
            api_version=provider.api_version,
            model_arg=provider.model_arg(),
            model_name=cfg.model_name,
            reasoning=caps.reasoning,
            json_schema=caps.json_schema,
            auth=provider.auth_kind,
            vision=caps.vision,
            vision_detail=cfg.vision_detail,
            retry=retry,
            responses_api=caps.responses_api,
        )

    def context(self, operation: str) -> RequestContext:
        """The first attempt's context: made once, because every call needs it and it never changes."""
        if operation == "chat" and self._chat_context is not None:
            return self._chat_context
        return _context(self, operation)


def _context(target: Target, operation: str) -> RequestContext:
    return RequestContext(
        operation=operation,
        deployment=target.deployment,
        endpoint=target.endpoint,
        api_version=target.api_version,
        auth=target.auth,
    )


def _vision_ready(target: Target, messages: Sequence[Message]) -> list[Message]:
    """Refuse images for a deployment without vision (before sending); fill in the default detail."""
    if not has_images(messages):
        return list(messages)
    if not target.vision:
        raise InvalidInputError(
            f"the request carries images but deployment '{target.deployment}' "
            f"({target.model_name or 'unknown model'}) does not accept image input",
            suggestion="Use a vision deployment (gpt-4o, gpt-4.1, ...), or set capabilities.vision: true "
            "in its settings if the model does accept images.",
        )
    if target.vision_detail is None:
        return list(messages)
    return with_default_detail(messages, target.vision_detail)


@dataclass(slots=True)
class ChatEnv:
    """The client-wide collaborators of every call."""

    policy: RetryPolicy
    tracer: Any
    """The caller's tracer, or None for azmem's default (resolved per call)."""
    usage: UsageTracker | None = None
    cache: ResponseCache | None = None
    cache_sampled: bool = False
    """Serve sampled calls from the cache too (see :func:`is_sampled`); off by default."""
    no_json_schema: set[tuple[str, str]] = field(default_factory=set)
    """(endpoint, deployment) pairs that answered "json_schema unsupported": remembered so
    later calls go straight to the fallback instead of paying for a 400 each time."""


def span_attributes(
    target: Target, options: ChatOptions, *, cache_enabled: bool, operation: str
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.system": "az.ai.openai",
        "gen_ai.request.model": target.deployment,
        "llm.provider": "azure",
        "model.size": options.model_size,
        "cache.enabled": cache_enabled,
        "cache.hit": False,
        "azmem.reasoning": target.reasoning,
        **server_attributes(target.endpoint),
    }
    if options.max_tokens is not None:
        attrs["max_tokens"] = options.max_tokens
        attrs["gen_ai.request.max_tokens"] = options.max_tokens
    if options.temperature is not None and not target.reasoning:
        attrs["gen_ai.request.temperature"] = options.temperature
    if target.responses_api:
        attrs["azmem.api"] = "responses"
    if options.prompt_name:
        attrs["prompt.name"] = options.prompt_name
    if options.group_id:
        attrs["azmem.group_id"] = options.group_id
    return attrs


def _record_result(span: Any, result: LLMResult[Any], mode: OutputMode) -> None:
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", result.usage.output_tokens)
    span.set_attribute("azmem.output_mode", mode)
    span.set_attribute("azmem.attempts", result.attempts)
    if result.model:
        span.set_attribute("gen_ai.response.model", result.model)
    if result.request_id:
        span.set_attribute("gen_ai.response.id", result.request_id)
    if result.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])


def record_usage(env: ChatEnv, target: Target, options: ChatOptions, usage: Usage, *, cached: bool) -> None:
    if env.usage is not None:
        env.usage.record(
            deployment=target.deployment,
            model=target.model_name,
            prompt_name=options.prompt_name,
            group_id=options.group_id,
            usage=usage,
            cached=cached,
        )


def _to_cache(result: LLMResult[Any]) -> dict[str, Any]:
    return {
        "text": result.text,
        "data": result.data,
        "tool_calls": [c.model_dump() for c in result.tool_calls],
        "usage": result.usage.model_dump(),
        "model": result.model,
        "request_id": result.request_id,
        "finish_reason": result.finish_reason,
        "reasoning_summary": result.reasoning_summary,
    }


def _from_cache(
    hit: Mapping[str, Any], target: Target, response_model: type[T] | None
) -> LLMResult[T] | None:
    """Rebuild a cached result; None when the entry no longer fits (e.g. the model class changed)."""
    try:
        parsed = None
        if response_model is not None:
            if hit.get("data") is None:
                return None
            parsed = response_model.model_validate(hit["data"])
        usage = Usage.model_validate({**hit["usage"], "cached": True})
        return LLMResult(
            text=hit.get("text"),
            data=hit.get("data"),
            parsed=parsed,
            tool_calls=tuple(ToolCall.model_validate(c) for c in hit.get("tool_calls") or ()),
            usage=usage,
            deployment=target.deployment,
            model=hit.get("model"),
            request_id=hit.get("request_id"),
            finish_reason=hit.get("finish_reason"),
            cached=True,
            attempts=0,
            reasoning_summary=hit.get("reasoning_summary"),
        )
    except (ValidationError, KeyError, TypeError):
        return None


_Read = tuple[dict[str, Any], Any, ValidationFailure | None, Mapping[str, str]]
"""What reading a raw SDK response gives: (body, the SDK's parsed model or None, a failure to re-ask
with or None, headers)."""


def _read_body(raw: Any) -> _Read:
    """The JSON body of a raw SDK response (chat ``create`` and the Responses API).

    The body is all azmem reads: ``raw.parse()`` would first build the SDK's object tree,
    which costs twenty times the JSON decoding (see :mod:`azmem.azure.response`). A body
    that is valid JSON but not an object is as malformed as one that is not JSON at all.
    """
    body = raw.http_response.json()
    if not isinstance(body, dict):
        raise json.JSONDecodeError(f"expected a JSON object, got {type(body).__name__}", "", 0)
    return body, None, None, raw.headers


def _read_parsed(raw: Any) -> _Read:
    """The body of a ``chat.completions.parse`` answer, with the model instance the SDK validated.

    ``parse`` raises on finish_reason length / content_filter and on a model validation
    error; we want our own exceptions (with usage recorded) and a re-ask for validation
    errors, so those become a plain body (read into our exception) or a failure.
    """
    body, _, _, headers = _read_body(raw)
    try:
        completion = raw.parse()
    except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError):
        return body, None, None, headers
    except (ValidationError, ValueError) as exc:
        return body, None, validation_failure_from(exc, first_content(body)), headers
    parsed = completion.choices[0].message.parsed if completion.choices else None
    return body, parsed, None, headers


@dataclass(frozen=True, slots=True)
class _Wire:
    """What differs between chat completions and the Responses API; the call's flow is the same for both."""

    resource: Literal["chat", "responses"]
    build: Callable[..., dict[str, Any]]
    usage: Callable[[Mapping[str, Any]], Usage]
    interpret: Callable[..., LLMResult[Any] | ValidationFailure]

    def step(self, mode: OutputMode, kwargs: dict[str, Any]) -> tuple[Send, Callable[[Any], _Read]]:
        """The request to send, and how to read its answer."""
        # chat.completions.parse turns a pydantic response_format into a strict json_schema;
        # the Responses request already carries the schema (text.format), so create suffices.
        if self.resource == "chat" and mode == "json_schema":
            return Send(self.resource, "parse", kwargs), _read_parsed
        return Send(self.resource, "create", kwargs), _read_body


_CHAT = _Wire("chat", build_chat_kwargs, usage_of, interpret_completion)
_RESPONSES = _Wire("responses", build_responses_kwargs, response_usage, interpret_response)


def _wire(target: Target) -> _Wire:
    return _RESPONSES if target.responses_api else _CHAT


def is_sampled(target: Target, options: ChatOptions) -> bool:
    """Whether a call draws a sample, so that asking again may well give another answer.

    Only an explicit temperature of 0 asks for the most likely answer; an unset temperature
    is the service's default of 1, and reasoning models always sample. The response cache
    passes sampled calls by unless ``cache.cache_sampled`` is set.
    """
    return target.reasoning or options.temperature is None or options.temperature > 0


def _outcome(outcome: Outcome | None) -> Any:
    assert outcome is not None
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


_warned_sampled: set[str] = set()


def _note_bypass(span: Any, target: Target) -> None:
    span.set_attribute("azmem.cache.bypass", "sampled")
    if target.deployment not in _warned_sampled:
        _warned_sampled.add(target.deployment)
        logger.info(
            "response cache not used for sampled calls to '%s' (temperature unset or > 0, or a "
            "reasoning model): pass temperature=0, or set cache.cache_sampled: true to cache them anyway",
            target.deployment,
        )


def generate_flow(
    target: Target,
    env: ChatEnv,
    messages: Sequence[Message],
    options: ChatOptions,
) -> Flow[LLMResult[Any]]:
    """One ``generate`` call from cache lookup to a validated result, on either wire protocol."""
    response_model = options.response_model
    wire = _wire(target)
    with call_span(
        env.tracer,
        f"chat {target.deployment}",
        lambda: span_attributes(target, options, cache_enabled=env.cache is not None, operation="chat"),
    ) as span:
        convo = _vision_ready(target, messages)  # a new list, never the caller's
        memory_key = (target.endpoint, target.deployment)
        mode = choose_mode(
            options, json_schema_supported=target.json_schema and memory_key not in env.no_json_schema
        )
        ctx = target.context("chat")
        reasks = 0
        attempts = 0
        cache = env.cache
        if cache is not None and not env.cache_sampled and is_sampled(target, options):
            _note_bypass(span, target)
            cache = None
        cache_key: str | None = None
        while True:
            kwargs = wire.build(
                model=target.model_arg, messages=convo, options=options, mode=mode, reasoning=target.reasoning
            )
            if cache is not None and reasks == 0:
                cache_key = ResponseCache.key(
                    wire.resource,
                    target.deployment,
                    cache_request(kwargs, endpoint=target.endpoint, mode=mode),
                )
                # Off the event loop in the async client: SQLite and PostgreSQL block.
                hit = _outcome((yield Offload(functools.partial(cache.get, cache_key))))
                if isinstance(hit, Mapping):
                    cached = _from_cache(hit, target, response_model)
                    if cached is not None:
                        span.set_attribute("cache.hit", True)
                        _record_result(span, cached, mode)
                        record_usage(env, target, options, cached.usage, cached=True)
                        return cached
            step, read = wire.step(mode, kwargs)
            try:
                (body, parsed, failure, headers), used = yield from send_with_retries(
                    step, ctx=ctx, policy=target.retry or env.policy, span=span, read=read
                )
            except JsonSchemaUnsupportedError:
                if mode != "json_schema":
                    raise
                env.no_json_schema.add(memory_key)
                span.add_event("azmem.json_schema_fallback", {"deployment": target.deployment})
                mode = "schema_in_prompt"
                attempts += 1
                continue
            attempts += used
            usage = wire.usage(body)
            record_usage(env, target, options, usage, cached=False)
            outcome: LLMResult[Any] | ValidationFailure
            if failure is not None:
                outcome = failure
            else:
                try:
                    outcome = wire.interpret(
                        body,
                        usage=usage,
                        parsed=parsed,
                        mode=mode,
                        response_model=response_model,
                        ctx=ctx,
                        headers=headers,
                        max_tokens=options.max_tokens,
                        attempts=attempts,
                    )
                except ContentFilterError as exc:
                    span.set_attribute("azmem.content_filter", ",".join(exc.filtered_categories))
                    raise
            if isinstance(outcome, ValidationFailure):
                if reasks >= options.max_reasks:
                    raise StructuredOutputError(
                        f"The answer from '{target.deployment}' still failed validation after "
                        f"{reasks} re-ask(s): {outcome.error}",
                        error_code="validation_failed",
                        details={"reasks": reasks, "last_error": outcome.error},
                        debug_info={**ctx.debug_info(), "attempt": attempts, **debug_headers(headers)},
                        suggestion="Simplify the response model, raise max_reasks, or use a deployment "
                        "that supports json_schema (api_version 2024-08-01-preview or later).",
                    )
                reasks += 1
                span.add_event("azmem.reask", {"reask": reasks, "error": outcome.error[:500]})
                convo = reask_messages(convo, bad_output=outcome.content, error=outcome.error)
                continue
            _record_result(span, outcome, mode)
            if cache is not None and cache_key is not None:
                _outcome(
                    (
                        yield Offload(
                            functools.partial(cache.set, cache_key, _to_cache(outcome), namespace="chat")
                        )
                    )
                )
            return outcome


def open_stream_flow(
    target: Target, env: ChatEnv, messages: Sequence[Message], options: ChatOptions, span: Any
) -> Flow[tuple[Any, Mapping[str, str]]]:
    """Open a streaming completion under the retry policy; returns (SDK stream, headers).

    Only the opening is retried: once text has reached the caller a retry would repeat it.
    On the Responses API the stream is one of events rather than chunks (see
    :class:`~azmem.azure.responses.ResponsesStreamState`).
    """
    wire = _wire(target)
    kwargs = wire.build(
        model=target.model_arg,
        messages=_vision_ready(target, messages),
        options=options,
        mode="text",
        reasoning=target.reasoning,
        stream=True,
    )
    opened, attempts = yield from send_with_retries(
        Send(wire.resource, "create", kwargs),
        ctx=target.context("chat"),
        policy=target.retry or env.policy,
        span=span,
        read=lambda raw: (raw.parse(), raw.headers),
    )
    span.set_attribute("azmem.attempts", attempts)
    return opened
