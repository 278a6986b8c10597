"""Our retry policy: pure decisions, no sleeping, so every driver shares it.

The SDK's own retries are always off (``max_retries=0``): its rules differ from ours (it
gives up silently on a Retry-After over 120 s and never tells us about attempts). The
policy answers one question, "how long until the next attempt, or give up?", which a
sync driver turns into ``time.sleep``, an async one into ``asyncio.sleep`` and a future
router into "send it to another deployment now".
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from azmem.errors import AzmemError, QuotaExceededError, redact

from .errors import RequestContext, map_sdk_error
from .metrics import record_failed_attempt

__all__ = ["RetryPolicy", "acall_with_retry", "call_with_retry", "log_attempt"]

logger = logging.getLogger("azmem.azure.retry")

T = TypeVar("T")

_rng = random.Random()


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter, bounded by attempts and by the service's own hints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=4, ge=1, description="Total attempts, the first included.")
    base_delay: float = Field(default=0.5, ge=0, description="Backoff cap of the first retry, seconds.")
    max_delay: float = Field(default=20.0, ge=0, description="Backoff cap of any retry, seconds.")
    retry_after_ceiling: float = Field(
        default=60.0,
        ge=0,
        description="A Retry-After longer than this means a quota wall: raise QuotaExceededError at once.",
    )

    def next_delay(self, error: AzmemError, attempt: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        ``attempt`` is the number of the attempt that just failed (1-based). A service hint
        (``retry_after``) is honoured exactly, even above ``max_delay``, because retrying
        earlier only earns another 429; a hint above ``retry_after_ceiling`` raises
        :class:`QuotaExceededError` immediately instead of waiting out the budget.
        """
        if not error.retryable:
            return None
        hint = error.retry_after
        # Without a Retry-After header, the wait Azure states in its message ("Please retry
        # after 86400 seconds") still reveals a quota wall; it is not used as a delay.
        stated = error.details.get("stated_retry_after") if hint is None else None
        wall = hint if hint is not None else stated if isinstance(stated, int | float) else None
        if wall is not None and wall > self.retry_after_ceiling:
            raise QuotaExceededError(
                f"The service asked to wait {wall:.0f} s, beyond the retry ceiling of "
                f"{self.retry_after_ceiling:.0f} s: {error.message}",
                error_code=error.error_code,
                details=error.details,
                debug_info=error.debug_info,
                status_code=error.status_code,
                retry_after=wall,
            ) from error
        if attempt >= self.max_attempts:
            return None
        if hint is not None:
            return hint
        cap = min(self.max_delay, self.base_delay * (2 ** max(attempt - 1, 0)))
        return (rng or _rng).uniform(0.0, cap)


def log_attempt(
    ctx: RequestContext,
    error: AzmemError,
    delay: float | None,
    *,
    span: Any | None = None,
) -> None:
    """Log one failed attempt and what happens next, and record it on the span if given.

    Logged at WARNING when we will retry (the user should know about throttling) and at
    INFO when giving up (the raised error speaks for itself). Counted in the metrics: every
    attempt passes here, routed or not, so a 429 and a retry are counted exactly once.
    """
    fields = {
        "deployment": ctx.deployment,
        "operation": ctx.operation,
        "attempt": ctx.attempt,
        "error": type(error).__name__,
        "status": error.status_code,
        "retry_in": None if delay is None else round(delay, 3),
    }
    request_id = error.debug_info.get("apim-request-id") or error.debug_info.get("x-request-id")
    line = "%s %s attempt %d failed with %s (status %s, request %s)" % (  # noqa: UP031
        ctx.operation,
        ctx.deployment,
        ctx.attempt,
        type(error).__name__,
        error.status_code,
        request_id,
    )
    # Log lines reach files and collectors: pass them through the same redaction as errors.
    line, fields = redact(line), {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
    if delay is None:
        logger.info("%s; not retrying", line, extra={"azmem": fields})
    else:
        logger.warning("%s; retrying in %.3f s", line, delay, extra={"azmem": fields})
    record_failed_attempt(
        deployment=ctx.deployment,
        operation=ctx.operation,
        error=error,
        status=error.status_code,
        will_retry=delay is not None,
    )
    if span is not None:
        try:
            span.add_event(
                "azmem.retry",
                {k: v for k, v in fields.items() if v is not None},
            )
        except Exception:  # a broken exporter must not turn a retry into a crash
            logger.debug("could not record retry event on span", exc_info=True)


def _mappable(exc: BaseException) -> bool:
    """Only service and transport failures are ours; a bug in the caller's code propagates untouched."""
    import openai

    from .errors import is_credential_error, is_sdk_auth_setup_error

    return (
        isinstance(exc, AzmemError | openai.OpenAIError)
        or is_credential_error(exc)
        or is_sdk_auth_setup_error(exc)
    )


def _decide(
    policy: RetryPolicy, exc: BaseException, ctx: RequestContext, span: Any | None
) -> tuple[AzmemError, float | None]:
    error = map_sdk_error(exc, ctx)
    try:
        delay = policy.next_delay(error, ctx.attempt)
    except QuotaExceededError as quota:
        log_attempt(ctx, quota, None, span=span)
        raise
    log_attempt(ctx, error, delay, span=span)
    return error, delay


def _delay_or_raise(
    policy: RetryPolicy, exc: Exception, ctx: RequestContext, attempt: int, span: Any | None
) -> float:
    """The wait before retrying after ``exc``; raises when the call gives up.

    Call it only inside the ``except`` block that caught ``exc``: a bare ``raise`` re-raises it.
    """
    if not _mappable(exc):
        raise
    step = replace(ctx, attempt=attempt)
    error, delay = _decide(policy, exc, step, span)
    if delay is None:
        if error is exc:
            raise
        raise error from exc
    return delay


def call_with_retry(
    fn: Callable[[int], T],
    *,
    policy: RetryPolicy,
    ctx: RequestContext,
    span: Any | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn(attempt)`` under the policy; raise the mapped AzmemError when it gives up.

    Only exceptions are retried; ``fn`` receives the attempt number so a caller can vary
    the request per attempt (a router picks another deployment).
    """
    attempt = 1
    while True:
        try:
            return fn(attempt)
        except Exception as exc:
            delay = _delay_or_raise(policy, exc, ctx, attempt, span)
        sleep(delay)
        attempt += 1


async def acall_with_retry(
    fn: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    ctx: RequestContext,
    span: Any | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """The async mirror of :func:`call_with_retry`; same decisions, ``asyncio.sleep``."""
    attempt = 1
    while True:
        try:
            return await fn(attempt)
        except Exception as exc:
            delay = _delay_or_raise(policy, exc, ctx, attempt, span)
        await sleep(delay)
        attempt += 1
