"""The sans-IO core shared by the sync and async clients.

A call is a generator that yields *steps* ("send this SDK request", "sleep this long")
and receives their outcomes; it never touches the network or the clock itself. The
sync and async clients are drivers that perform the steps (httpx's auth flows work
the same way), so retries, error mapping, spans, usage, cache and the structured-output
fallback exist exactly once. So does the driver loop: the blocking face runs the async
one with awaits that wrap blocking calls, which never suspend (:func:`run_blocking`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal, ParamSpec, TypeVar

import openai
from opentelemetry import trace
from opentelemetry.trace import Tracer

from azmem.azure import tracing
from azmem.azure.errors import RequestContext, is_sdk_auth_setup_error, map_sdk_error
from azmem.azure.headers import debug_headers
from azmem.azure.metrics import enabled as metrics_enabled
from azmem.azure.retry import RetryPolicy, log_attempt
from azmem.azure.tracing import get_tracer, llm_span
from azmem.errors import AzmemError, QuotaExceededError, ServiceError

_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)

__all__ = [
    "Flow",
    "Offload",
    "Outcome",
    "Send",
    "Sleep",
    "Step",
    "awaiting",
    "call_span",
    "drive",
    "drive_async",
    "iterate_blocking",
    "performer",
    "run_blocking",
    "send_with_retries",
]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


@dataclass(slots=True)
class Send:
    """Perform ``client.<resource>.with_raw_response.<method>(**kwargs)``; the outcome is the raw response.

    Treated as immutable; not ``frozen`` because a frozen dataclass's ``__init__`` costs twice
    as much, and a step and its :class:`Outcome` are built on every call.
    """

    resource: Literal["chat", "embeddings", "responses"]
    method: Literal["create", "parse"]
    kwargs: dict[str, Any]


def performer(sdk: Any) -> Callable[[Send], Any]:
    """How a driver performs :class:`Send` steps on one SDK client (sync or async).

    The same for both faces: the async SDK answers with an awaitable, which the async
    driver awaits. The resources are looked up once, not per step.
    """
    resources = {
        "chat": sdk.chat.completions.with_raw_response,
        "embeddings": sdk.embeddings.with_raw_response,
        "responses": sdk.responses.with_raw_response,
    }

    def perform(step: Send) -> Any:
        return getattr(resources[step.resource], step.method)(**step.kwargs)

    return perform


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Offload:
    """Run a blocking call (a cache lookup on SQLite or PostgreSQL) where it cannot stall an event loop.

    The async driver runs it in a worker thread (``asyncio.to_thread``); the blocking driver
    simply calls it. The outcome is its return value, or the exception it raised.
    """

    call: Callable[[], Any]


@dataclass(slots=True)
class Outcome:
    """What a driver hands back for a :class:`Send`: the value, or the exception it raised (immutable
    by convention, like :class:`Send`)."""

    value: Any = None
    error: Exception | None = None


Step = Send | Sleep | Offload
Flow = Generator[Step, Outcome | None, R]


class _NullSpan:
    """Stands in for a span nobody records: every method is free."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Any) -> None:
        return None

    def add_event(self, name: str, attributes: Any = None) -> None:
        return None

    def is_recording(self) -> bool:
        return False


_NULL_SPAN = _NullSpan()
_NULL_CONTEXT = nullcontext(_NULL_SPAN)  # stateless, so one serves every call


_MISSING = object()
_TRACER_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""The variable names a provider for the API to load at its first use; read once, at import."""


def _no_tracer_provider() -> bool:
    """Whether no tracer provider is installed, without ``os.environ`` in the common case.

    ``trace.get_tracer_provider()`` looks its environment variable up on every call while
    none is set (a caught KeyError each time); the API's global, set by whatever installs
    a provider, answers first (see :func:`azmem.azure.metrics.enabled`).
    """
    if getattr(trace, "_TRACER_PROVIDER", _MISSING) is None and not _TRACER_PROVIDER_FROM_ENV:
        return True
    return isinstance(trace.get_tracer_provider(), _NO_PROVIDER)


def call_span(
    tracer: Tracer | None, name: str, attributes: Callable[[], dict[str, Any]], *, current: bool = True
) -> AbstractContextManager[Any]:
    """The span of one call: :func:`llm_span`, unless no tracer provider is installed at all.

    Without an OpenTelemetry SDK every span is a no-op, yet building and sanitising the
    attributes (hence ``attributes`` is a function) costs more than the rest of our
    per-call work; skipping it keeps the client within a few percent of the raw SDK.
    The provider is checked per call, so an application that installs one later is
    traced from then on. With a MeterProvider the span is made (non-recording) all the
    same: it carries the call's GenAI metrics. ``current=False`` is for generators
    (streams): see :func:`llm_span`.
    """
    if tracer is None and tracing._tracer is None and _no_tracer_provider() and not metrics_enabled():
        # The common case first, without making a (proxy) tracer per call to find it out.
        return _NULL_CONTEXT
    resolved = get_tracer(tracer)
    if (
        isinstance(resolved, trace.NoOpTracer)
        or (isinstance(resolved, trace.ProxyTracer) and isinstance(trace.get_tracer_provider(), _NO_PROVIDER))
    ) and not metrics_enabled():  # the span also feeds the call's metrics
        return _NULL_CONTEXT
    return llm_span(resolved, name, attributes(), current=current)


def _ours_to_map(exc: BaseException) -> bool:
    """SDK and credential failures are mapped and maybe retried; a bug elsewhere propagates untouched."""
    if isinstance(exc, AzmemError | openai.OpenAIError) or is_sdk_auth_setup_error(exc):
        return True
    return any(c.__module__.startswith("azure.") for c in type(exc).__mro__ if c is not Exception)


def _malformed(exc: ValueError, raw: Any, ctx: RequestContext) -> ServiceError:
    headers = getattr(raw, "headers", None)
    return ServiceError(
        f"Deployment '{ctx.deployment}' answered with a body that is not valid JSON ({exc}).",
        error_code="malformed_response",
        debug_info={**ctx.debug_info(), **debug_headers(headers)},
    )


def send_with_retries(
    step: Send,
    *,
    ctx: RequestContext,
    policy: RetryPolicy,
    span: Any | None,
    read: Callable[[Any], R] | None = None,
) -> Generator[Step, Outcome | None, tuple[R, int]]:
    """Send ``step`` until it succeeds or the policy gives up; returns (response, attempts).

    ``read`` turns the raw response into what the caller wants inside the loop, so a
    body that is not JSON (a proxy's error page, a cut-off answer) is a retryable
    :class:`ServiceError` like a 5xx. Each failure is mapped to our tree exactly once,
    logged and recorded on the span before the policy decides; the raised error keeps
    the SDK exception as ``__cause__``.
    """
    attempt = 1
    while True:
        outcome = yield step
        assert outcome is not None
        exc: Exception
        if outcome.error is None:
            if read is None:
                return outcome.value, attempt
            try:
                return read(outcome.value), attempt
            except (json.JSONDecodeError, UnicodeDecodeError) as bad:
                exc = _malformed(bad, outcome.value, ctx)
        else:
            exc = outcome.error
        if not _ours_to_map(exc):
            raise exc
        at = replace(ctx, attempt=attempt)
        error = map_sdk_error(exc, at)
        try:
            delay = policy.next_delay(error, attempt)
        except QuotaExceededError as quota:
            log_attempt(at, quota, None, span=span)
            raise quota from exc
        log_attempt(at, error, delay, span=span)
        if delay is None:
            if error is exc:
                raise error
            raise error from exc
        yield Sleep(delay)
        attempt += 1


def _call(step: Offload) -> Any:
    return step.call()


async def _to_thread(step: Offload) -> Any:
    return await asyncio.to_thread(step.call)


async def _run(
    flow: Generator[S | Sleep | Offload, Outcome | None, R],
    perform: Callable[[S], Awaitable[Any]],
    sleep: Callable[[float], Awaitable[object]],
    offload: Callable[[Offload], Awaitable[Any]],
) -> R:
    """The one driver loop: both faces run it, and differ only in what their awaits wrap."""
    try:
        step = next(flow)
        while True:
            outcome: Outcome | None = None
            if isinstance(step, Sleep):
                await sleep(step.seconds)
            else:
                try:
                    done = offload(step) if isinstance(step, Offload) else perform(step)
                    outcome = Outcome(value=await done)
                except Exception as exc:
                    outcome = Outcome(error=exc)
            step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


def drive(
    flow: Generator[S | Sleep | Offload, Outcome | None, R],
    perform: Callable[[S], Any],
    *,
    sleep: Callable[[float], object] | None = None,
) -> R:
    """Run a flow with blocking I/O: ``perform`` blocks, and so do ``sleep`` (``time.sleep``) and
    :class:`Offload` calls."""
    blocking_sleep = _blocking_sleep if sleep is None else awaiting(sleep)
    return run_blocking(_run(flow, awaiting(perform), blocking_sleep, _blocking_call))


async def drive_async(
    flow: Generator[S | Sleep | Offload, Outcome | None, R],
    perform: Callable[[S], Awaitable[Any]],
    *,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> R:
    """Run a flow on the event loop (``sleep``: ``asyncio.sleep``; :class:`Offload` calls in a worker
    thread); cancellation closes the flow (its span ends, nothing leaks)."""
    return await _run(flow, perform, sleep or asyncio.sleep, _to_thread)


def awaiting(call: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A blocking ``call`` as a coroutine function, so blocking code can run code written for awaits.

    The coroutine never suspends: it finishes the call before it returns (see :func:`run_blocking`).
    """

    async def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return call(*args, **kwargs)

    return blocking


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run, without an event loop, a coroutine whose awaits all wrap blocking calls (:func:`awaiting`).

    This is how the blocking face shares the async face's code instead of copying it:
    such a coroutine never suspends, so one ``send`` runs it to the end. One that does
    suspend was handed real asynchronous I/O, which only an event loop can run.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a coroutine run by blocking code suspended: it was given asynchronous I/O")


def iterate_blocking(items: AsyncGenerator[T, None]) -> Generator[T, None, None]:
    """An async generator that never suspends (see :func:`run_blocking`), as a blocking iterator.

    Closing the iterator early (``break``, garbage collection) closes the generator, so its
    ``finally`` blocks run as they would under ``async for``.
    """
    try:
        while True:
            try:
                item = run_blocking(items.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        run_blocking(items.aclose())


_blocking_call = awaiting(_call)
_blocking_sleep = awaiting(time.sleep)
