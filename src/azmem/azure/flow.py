"""The sans-IO core shared by the sync and async clients.

A call is a generator that yields *steps* ("send this SDK request", "sleep this long")
and receives their outcomes; it never touches the network or the clock itself. The
sync and async clients are drivers that perform the steps (httpx's auth flows work
the same way), so retries, error mapping, spans, usage, cache and the structured-output
fallback exist exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import openai
from opentelemetry import trace
from opentelemetry.trace import Tracer

from azmem.azure.errors import RequestContext, is_sdk_auth_setup_error, map_sdk_error
from azmem.azure.headers import debug_headers
from azmem.azure.retry import RetryPolicy, log_attempt
from azmem.azure.tracing import get_tracer, llm_span
from azmem.errors import AzmemError, QuotaExceededError, ServiceError

_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)

__all__ = [
    "Flow",
    "Outcome",
    "Send",
    "Sleep",
    "Step",
    "call_span",
    "drive",
    "drive_async",
    "send_with_retries",
]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Send:
    """Perform ``client.<resource>.with_raw_response.<method>(**kwargs)``; the outcome is the raw response."""

    resource: Literal["chat", "embeddings"]
    method: Literal["create", "parse"]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a driver hands back for a :class:`Send`: the value, or the exception it raised."""

    value: Any = None
    error: Exception | None = None


Step = Send | Sleep
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


def call_span(
    tracer: Tracer | None, name: str, attributes: Callable[[], dict[str, Any]], *, current: bool = True
) -> AbstractContextManager[Any]:
    """The span of one call: :func:`llm_span`, unless no tracer provider is installed at all.

    Without an OpenTelemetry SDK every span is a no-op, yet building and sanitising the
    attributes (hence ``attributes`` is a function) costs more than the rest of our
    per-call work; skipping it keeps the client within a few percent of the raw SDK.
    The provider is checked per call, so an application that installs one later is
    traced from then on. ``current=False`` is for generators (streams): see :func:`llm_span`.
    """
    resolved = get_tracer(tracer)
    if isinstance(resolved, trace.NoOpTracer) or (
        isinstance(resolved, trace.ProxyTracer) and isinstance(trace.get_tracer_provider(), _NO_PROVIDER)
    ):
        return nullcontext(_NULL_SPAN)
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


def drive(flow: Flow[R], perform: Callable[[Send], Any]) -> R:
    """Run a flow with blocking I/O."""
    try:
        step = next(flow)
        while True:
            outcome: Outcome | None
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                try:
                    outcome = Outcome(value=perform(step))
                except Exception as exc:
                    outcome = Outcome(error=exc)
            step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def drive_async(flow: Flow[R], perform: Callable[[Send], Awaitable[Any]]) -> R:
    """Run a flow on the event loop; cancellation closes the flow (its span ends, nothing leaks)."""
    try:
        step = next(flow)
        while True:
            outcome: Outcome | None
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                try:
                    outcome = Outcome(value=await perform(step))
                except Exception as exc:
                    outcome = Outcome(error=exc)
            step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()
