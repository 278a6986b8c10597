"""Routing as a sans-IO flow around the LLM client's own flows.

Each attempt runs the client's complete single-deployment flow (parameters per capability,
json_schema fallback, re-asks, usage, the per-deployment span) against the deployment the
router picked, with the retry policy reduced to one attempt: the router, not a sleep, decides
what happens after a failure. The flow yields the same ``Send``/``Sleep`` steps as every
other flow, so the existing sync and async drivers run it; :class:`Current` tells the
driver's ``perform`` which deployment's SDK client the step is for, and carries the response
headers (``x-ratelimit-*``) back to the router.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import openai

from azmem.azure.chat import ChatEnv, Target, generate_flow, open_stream_flow
from azmem.azure.flow import Flow, Send, Sleep, call_span
from azmem.azure.messages import Message, to_wire
from azmem.azure.request import ChatOptions
from azmem.azure.response import LLMResult
from azmem.azure.retry import RetryPolicy
from azmem.azure.routing.estimate import estimate_prompt_tokens
from azmem.azure.routing.providers import DeploymentProviders
from azmem.azure.routing.router import Attempt, Call, GiveUp, Requirements, Router, Wait
from azmem.errors import AzmemError

__all__ = ["Current", "RoutedChat", "chat_requirements", "result_usage", "routed_flow"]

R = TypeVar("R")

SINGLE_ATTEMPT = RetryPolicy(max_attempts=1, retry_after_ceiling=float("inf"))
"""Inside a routed call each attempt is tried once; a long Retry-After is the router's business."""


@dataclass
class Current:
    """The attempt in progress, shared by a routed flow and its driver's ``perform``."""

    attempt: Attempt | None = None
    headers: Any = None


def result_usage(result: LLMResult[Any]) -> tuple[int | None, int | None]:
    """Tokens the service counted for a result; a cache hit sent nothing, so it counts none."""
    if result.cached:
        return None, None
    return result.usage.input_tokens, result.usage.output_tokens


def chat_requirements(messages: Sequence[Message], options: ChatOptions) -> Requirements:
    """What the request needs, estimated before sending (see :mod:`.estimate`)."""
    wire = to_wire(messages)
    extra = 0
    if options.response_model is not None:
        extra += len(str(options.response_model.model_json_schema()))
    if options.tools:
        extra += len(str(options.tools))
    vision = any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in wire
    )
    return Requirements(
        prompt_tokens=estimate_prompt_tokens(wire, extra_chars=extra),
        max_output_tokens=options.max_tokens,
        json_schema=options.response_model is not None,
        vision=vision,
    )


def routed_flow(
    call: Call,
    attempt_flow: Callable[[Attempt], Flow[R]],
    current: Current,
    *,
    tracer: Any,
    usage_of: Callable[[R], tuple[int | None, int | None]],
) -> Flow[R]:
    """Try deployments until one succeeds, waiting only when the router says all are busy."""

    def attrs() -> dict[str, Any]:
        return {
            "gen_ai.operation.name": "chat",
            "llm.provider": "azure",
            "azmem.route.model": call.requested_model,
        }

    with call_span(tracer, f"route {call.requested_model}", attrs) as span, _closing(call):
        traced = span.is_recording()
        while True:
            decision = call.next()
            if isinstance(decision, GiveUp):
                span.set_attribute("azmem.route.attempts", call.attempts)
                raise decision.error
            if isinstance(decision, Wait):
                if traced:
                    span.add_event(
                        "azmem.route.wait",
                        {
                            "seconds": decision.seconds,
                            "deployment": decision.deployment,
                            **_skips(decision.skipped),
                        },
                    )
                yield Sleep(decision.seconds)
                continue
            current.attempt, current.headers = decision, None
            if traced:
                span.add_event(
                    "azmem.route.attempt",
                    {
                        "attempt": decision.number,
                        "deployment": decision.label,
                        "probe": decision.probe,
                        **({"fallback": decision.fallback} if decision.fallback else {}),
                        **_skips(decision.skipped),
                    },
                )
            started = time.monotonic()
            try:
                result = yield from attempt_flow(decision)
            except AzmemError as error:
                call.failed(decision, error, headers=current.headers)
                span.add_event(
                    "azmem.route.failure",
                    {"attempt": decision.number, "deployment": decision.label, "error": type(error).__name__},
                )
                continue
            except BaseException:
                call.abandoned(decision)
                raise
            input_tokens, output_tokens = usage_of(result)
            call.succeeded(
                decision,
                latency=time.monotonic() - started,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                headers=current.headers,
            )
            span.set_attribute("azmem.deployment", decision.label)
            span.set_attribute("gen_ai.request.model", decision.deployment.settings.get("deployment") or "")
            span.set_attribute("azmem.route.attempts", decision.number)
            if decision.fallback:
                span.set_attribute("azmem.route.fallback", decision.fallback)
            return result


@contextmanager
def _closing(call: Call) -> Iterator[None]:
    try:
        yield
    finally:
        call.close()


def _skips(skipped: Any) -> dict[str, str]:
    return {f"skipped.{label}": why for label, why in dict(skipped).items()}


_SIZE_POOLS = {"medium": ("chat",), "small": ("chat-small", "small_chat", "chat")}


class RoutedChat:
    """What an LLM client needs to route its calls: a pool per model size and a provider per deployment."""

    def __init__(self, router: Router, base: Any = None, *, pools: dict[str, str] | None = None) -> None:
        self.router = router
        self.providers = DeploymentProviders(base)
        self.pools: dict[str, str] = {}
        for size, names in _SIZE_POOLS.items():
            chosen = (pools or {}).get(size) or next((n for n in names if n in router.models), None)
            if chosen is None and router.models:
                chosen = router.models[0]
            if chosen is not None:
                self.pools[size] = chosen

    def pool_for(self, size: str) -> str:
        return self.pools.get(size) or self.pools["medium"]

    def first_provider(self, size: str) -> Any:
        return self.providers.provider(self.router.deployments(self.pool_for(size))[0])

    def target(self, attempt: Attempt) -> Target:
        return self.providers.target(attempt.deployment)

    def generate(
        self, env: ChatEnv, messages: Sequence[Message], options: ChatOptions
    ) -> tuple[Flow[LLMResult[Any]], Current]:
        """A routed ``generate`` flow, and the :class:`Current` its driver's perform reads."""
        return self._route(
            env,
            messages,
            options,
            lambda target, single: generate_flow(target, single, messages, options),
            result_usage,
        )

    def open_stream(
        self, env: ChatEnv, messages: Sequence[Message], options: ChatOptions, span: Any
    ) -> tuple[Flow[tuple[Any, Mapping[str, str]]], Current]:
        """Route only the opening of a stream: once text reached the caller, no retry can repeat it.

        After the flow ran, ``current.attempt`` names the deployment that is streaming.
        """
        return self._route(
            env,
            messages,
            options,
            lambda target, single: open_stream_flow(target, single, messages, options, span),
            lambda _opened: (None, None),
        )

    def streaming_target(self, current: Current, span: Any) -> Target:
        """After an opened stream's flow: the deployment now streaming, recorded on the span."""
        assert current.attempt is not None, "the opening flow has not run"
        span.set_attribute("azmem.deployment", current.attempt.label)
        span.set_attribute("azmem.route.attempts", current.attempt.number)
        return self.target(current.attempt)

    def _route(
        self,
        env: ChatEnv,
        messages: Sequence[Message],
        options: ChatOptions,
        make_flow: Callable[[Target, ChatEnv], Flow[R]],
        usage_of: Callable[[R], tuple[int | None, int | None]],
    ) -> tuple[Flow[R], Current]:
        call = self.router.begin(self.pool_for(options.model_size), chat_requirements(messages, options))
        single = replace(env, policy=SINGLE_ATTEMPT)
        current = Current()
        flow = routed_flow(
            call,
            lambda attempt: make_flow(self.target(attempt), single),
            current,
            tracer=env.tracer,
            usage_of=usage_of,
        )
        return flow, current

    def perform_sync(self, current: Current) -> Callable[[Send], Any]:
        """Perform each step on the SDK client of the deployment the attempt went to.

        Any resource a flow sends (chat completions, the Responses API, embeddings) goes
        through the same performer as an unrouted client, so a routed deployment speaks
        whichever wire protocol its target says.
        """

        def perform(step: Send) -> Any:
            assert current.attempt is not None
            send = self.providers.performer(current.attempt.deployment, asynchronous=False)
            try:
                raw = send(step)
            except openai.APIStatusError as exc:
                current.headers = exc.response.headers
                raise
            current.headers = raw.headers
            return raw

        return perform

    def perform_async(self, current: Current) -> Callable[[Send], Awaitable[Any]]:
        async def perform(step: Send) -> Any:
            assert current.attempt is not None
            send = self.providers.performer(current.attempt.deployment, asynchronous=True)
            try:
                raw = await send(step)
            except openai.APIStatusError as exc:
                current.headers = exc.response.headers
                raise
            current.headers = raw.headers
            return raw

        return perform

    def close(self) -> None:
        self.providers.close()

    async def aclose(self) -> None:
        await self.providers.aclose()
