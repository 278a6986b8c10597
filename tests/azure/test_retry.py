"""Retry rules: pure decisions first, then the sync and async drivers against a real HTTP server."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure_stub_server import Reply, StubServer, completion, error_body, stub_server
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azmem import errors as E
from azmem.azure.errors import RequestContext
from azmem.azure.provider import AzureProvider
from azmem.azure.retry import RetryPolicy, acall_with_retry, call_with_retry
from azmem.azure.settings import AzureOpenAISettings
from azmem.azure.tracing import llm_span

RETRYABLE = [
    E.RateLimitError("429"),
    E.ServiceError("500"),
    E.NetworkError("reset"),
    E.TimeoutError("slow"),
    E.ConflictError("409"),
]
NEVER = [
    E.AuthenticationError("401"),
    E.PermissionDeniedError("403"),
    E.DeploymentNotFoundError("404"),
    E.ContentFilterError("filtered"),
    E.ContextLengthError("long"),
    E.InvalidRequestError("bad"),
    E.JsonSchemaUnsupportedError("old"),
    E.ConfigurationError("cfg"),
    E.QuotaExceededError("quota"),
    E.RefusalError("no"),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: type(e).__name__)
def test_retryable_errors_get_a_delay_within_the_jitter_cap(error: E.AzmemError) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=20)
    rng = random.Random(1)
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0)):
        delays = [policy.next_delay(error, attempt, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= cap for d in delays)
        assert max(d for d in delays if d is not None) > cap * 0.8, "full jitter spans the whole range"


@pytest.mark.parametrize("error", NEVER, ids=lambda e: type(e).__name__)
def test_never_retried(error: E.AzmemError) -> None:
    assert RetryPolicy().next_delay(error, 1) is None


def test_budget_is_total_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    err = E.ServiceError("x")
    assert policy.next_delay(err, 1) is not None
    assert policy.next_delay(err, 2) is not None
    assert policy.next_delay(err, 3) is None
    assert RetryPolicy(max_attempts=1).next_delay(err, 1) is None


def test_backoff_is_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=3, max_attempts=50)
    rng = random.Random(0)
    assert all((policy.next_delay(E.ServiceError("x"), 20, rng) or 0) <= 3 for _ in range(100))


def test_retry_after_is_honoured_exactly_even_above_max_delay() -> None:
    policy = RetryPolicy(max_delay=1, retry_after_ceiling=60)
    assert policy.next_delay(E.RateLimitError("x", retry_after=6.0), 1) == 6.0
    assert policy.next_delay(E.ServiceError("x", retry_after=0.25), 1) == 0.25


def test_retry_after_beyond_ceiling_raises_quota_at_once() -> None:
    policy = RetryPolicy(retry_after_ceiling=60)
    err = E.RateLimitError(
        "exceeded", retry_after=86400.0, status_code=429, debug_info={"x-request-id": "r1"}
    )
    with pytest.raises(E.QuotaExceededError) as info:
        policy.next_delay(err, 1)
    assert info.value.retry_after == 86400.0
    assert info.value.__cause__ is err
    assert info.value.debug_info["x-request-id"] == "r1"
    assert info.value.status_code == 429


def test_policy_rejects_unknown_and_invalid_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        RetryPolicy(max_atempts=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="greater than or equal"):
        RetryPolicy(max_attempts=0)


# --------------------------------------------------------------------------- drivers over HTTP


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with stub_server() as server:
        yield server


def _provider(stub: StubServer, timeout: float = 5.0) -> AzureProvider:
    return AzureProvider(
        AzureOpenAISettings(
            endpoint=stub.endpoint, deployment="gpt-4o", api_key="k-123456789", timeout=timeout
        )
    )


def _rate_limited(ms: str | None = None, seconds: str | None = None) -> Reply:
    headers = {}
    if ms is not None:
        headers["retry-after-ms"] = ms
    if seconds is not None:
        headers["retry-after"] = seconds
    return Reply(status=429, body=error_body("429", "Please retry after 1 second."), headers=headers)


def _run(provider: AzureProvider, policy: RetryPolicy, sleeps: list[float], span: Any = None) -> Any:
    """One retried call; the provider is closed after it (a leaked socket would warn in a later test)."""
    try:
        return call_with_retry(
            lambda attempt: provider.sync_client().chat.completions.create(
                model=provider.model_arg(), messages=[{"role": "user", "content": f"try {attempt}"}]
            ),
            policy=policy,
            ctx=provider.context("chat"),
            sleep=sleeps.append,
            span=span,
        )
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("reply", "expected_delay"),
    [
        (_rate_limited(ms="20"), 0.02),
        (_rate_limited(seconds="2"), 2.0),
        (_rate_limited(ms="30", seconds="5"), 0.03),
        (_rate_limited(ms="-1", seconds="0"), None),  # no usable hint: own backoff
        (_rate_limited(), None),
    ],
    ids=["ms", "seconds", "both", "garbage", "neither"],
)
def test_429_is_retried_honouring_the_headers(
    stub: StubServer, reply: Reply, expected_delay: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="azmem.azure.retry")
    stub.queue(reply, reply, Reply(body=completion("done")))
    sleeps: list[float] = []
    result = _run(_provider(stub), RetryPolicy(base_delay=0.5), sleeps)
    assert result.choices[0].message.content == "done"
    assert len(stub.seen) == 3
    assert len(sleeps) == 2
    if expected_delay is None:
        assert 0 <= sleeps[0] <= 0.5
        assert 0 <= sleeps[1] <= 1.0
    else:
        assert sleeps == [pytest.approx(expected_delay)] * 2
    warnings = [r for r in caplog.records if r.name == "azmem.azure.retry" and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1" in warnings[0].getMessage()
    assert "retrying in" in warnings[1].getMessage()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=408, body=error_body("Timeout", "The operation was timeout.")),
        Reply(status=409, body=error_body("409", "conflict")),
        Reply(status=500, body=error_body("500", "boom")),
        Reply(status=503, body=error_body("503", "unavailable")),
        Reply(drop=True),
    ],
    ids=["408", "409", "500", "503", "dropped"],
)
def test_transient_failures_are_retried(stub: StubServer, reply: Reply) -> None:
    stub.queue(reply, Reply(body=completion("ok")))
    sleeps: list[float] = []
    assert _run(_provider(stub), RetryPolicy(), sleeps).choices[0].message.content == "ok"
    assert len(stub.seen) == 2
    assert len(sleeps) == 1


def test_client_timeouts_are_retried(stub: StubServer) -> None:
    stub.queue(Reply(body=completion(), delay=0.6), Reply(body=completion("fast")))
    sleeps: list[float] = []
    assert _run(_provider(stub, timeout=0.2), RetryPolicy(), sleeps).choices[0].message.content == "fast"
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "content_filter", E.ContentFilterError),
        (400, "context_length_exceeded", E.ContextLengthError),
        (400, "BadRequest", E.InvalidRequestError),
        (401, "401", E.AuthenticationError),
        (403, "403", E.PermissionDeniedError),
        (404, "DeploymentNotFound", E.DeploymentNotFoundError),
    ],
)
def test_permanent_failures_are_not_retried(
    stub: StubServer, status: int, code: str, cls: type[E.AzmemError]
) -> None:
    stub.queue(Reply(status=status, body=error_body(code, "nope")), Reply(body=completion()))
    sleeps: list[float] = []
    with pytest.raises(cls) as info:
        _run(_provider(stub), RetryPolicy(), sleeps)
    assert len(stub.seen) == 1
    assert sleeps == []
    assert isinstance(info.value.__cause__, openai.APIStatusError)


def test_gives_up_after_the_budget_with_the_last_error(stub: StubServer) -> None:
    stub.queue(*[Reply(status=500, body=error_body("500", f"boom {i}")) for i in range(5)])
    sleeps: list[float] = []
    with pytest.raises(E.ServiceError) as info:
        _run(_provider(stub), RetryPolicy(max_attempts=3), sleeps)
    assert len(stub.seen) == 3
    assert len(sleeps) == 2
    assert "boom 2" in info.value.message
    assert info.value.debug_info["attempt"] == 3


def test_long_retry_after_raises_quota_without_retrying(stub: StubServer) -> None:
    stub.queue(_rate_limited(seconds="86400"), Reply(body=completion()))
    sleeps: list[float] = []
    with pytest.raises(E.QuotaExceededError):
        _run(_provider(stub), RetryPolicy(retry_after_ceiling=60), sleeps)
    assert len(stub.seen) == 1
    assert sleeps == []


def test_a_bug_in_the_callers_code_is_not_retried_or_wrapped() -> None:
    calls: list[int] = []

    def broken(attempt: int) -> None:
        calls.append(attempt)
        raise KeyError("mine")

    ctx = RequestContext("chat", "d", "https://x.openai.azure.com", None)
    with pytest.raises(KeyError):
        call_with_retry(broken, policy=RetryPolicy(), ctx=ctx, sleep=lambda _d: None)
    assert calls == [1]


def test_attempts_and_delays_are_recorded_on_the_span(stub: StubServer) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    stub.queue(_rate_limited(ms="10"), Reply(body=completion()))
    provider = _provider(stub)
    with llm_span(tp.get_tracer("t"), "chat gpt-4o", {}) as span:
        _run(provider, RetryPolicy(), [], span=span)
    (finished,) = exporter.get_finished_spans()
    events = [e for e in finished.events if e.name == "azmem.retry"]
    assert len(events) == 1
    attrs = dict(events[0].attributes or {})
    assert attrs["attempt"] == 1
    assert attrs["retry_in"] == pytest.approx(0.01)
    assert attrs["error"] == "RateLimitError"


async def test_async_driver_makes_the_same_decisions(stub: StubServer) -> None:
    stub.queue(
        _rate_limited(ms="15"), Reply(status=503, body=error_body("503", "x")), Reply(body=completion("a"))
    )
    provider = _provider(stub)
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    async def attempt(n: int) -> Any:
        return await provider.async_client().chat.completions.create(
            model=provider.model_arg(), messages=[{"role": "user", "content": str(n)}]
        )

    result = await acall_with_retry(
        attempt, policy=RetryPolicy(), ctx=provider.context("chat"), sleep=fake_sleep
    )
    assert result.choices[0].message.content == "a"
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(0.015)
    stub.queue(Reply(status=401, body=error_body("401", "denied")))
    with pytest.raises(E.AuthenticationError):
        await acall_with_retry(attempt, policy=RetryPolicy(), ctx=provider.context("chat"), sleep=fake_sleep)
    assert len(sleeps) == 2
    await provider.aclose()
