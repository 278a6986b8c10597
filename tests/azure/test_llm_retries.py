"""Every retry rule end to end: the emulator injects the fault, the real SDK (max_retries=0) carries
it, our policy decides. Delays are tiny (base_delay 0.01 s, the emulator's retry-after-ms)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from llm_helpers import FAST_RETRY, Factory, chat_requests, factories

from azmem.azure.retry import RetryPolicy
from azmem.emulator import Fault
from azmem.errors import (
    AuthenticationError,
    ConflictError,
    ContextLengthError,
    DeploymentNotFoundError,
    NetworkError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceError,
    TimeoutError,
)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    out = []
    for rec in caplog.records:
        match = re.search(r"retrying in ([0-9.]+) s", rec.getMessage())
        if match:
            out.append(float(match.group(1)))
    return out


@pytest.fixture(autouse=True)
def _log_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="azmem")


def test_429_retry_after_ms_is_honoured(make_llm: Factory, caplog: pytest.LogCaptureFixture) -> None:
    make_llm.emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=15, times=2))
    result = make_llm().generate("hi")
    assert result.text
    assert result.attempts == 3
    assert [r.status for r in chat_requests(make_llm.emu)] == [429, 429, 200]
    assert _delays(caplog) == [0.015, 0.015]


def test_429_retry_after_seconds_is_honoured(make_llm: Factory, caplog: pytest.LogCaptureFixture) -> None:
    make_llm.emu.fault("gpt-4o", Fault.rate_limit(retry_after=1, times=1))
    started = time.monotonic()
    assert make_llm().generate("hi").text
    assert time.monotonic() - started >= 0.95
    assert _delays(caplog) == [1.0]


def test_429_with_both_headers_prefers_milliseconds(
    make_llm: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    # retry-after alone (30 s) would exceed the ceiling and raise QuotaExceededError.
    make_llm.emu.fault("gpt-4o", Fault.rate_limit(retry_after=30, retry_after_ms=20, times=1))
    assert make_llm().generate("hi").text
    assert _delays(caplog) == [0.02]


def test_429_without_headers_backs_off_with_jitter(
    make_llm: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    make_llm.emu.fault("gpt-4o", Fault(status=429, code="429", message="token rate limit", times=2))
    assert make_llm().generate("hi").text
    delays = _delays(caplog)
    assert len(delays) == 2
    assert all(0 <= d <= FAST_RETRY.max_delay for d in delays)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(make_llm: Factory, status: int) -> None:
    make_llm.emu.fault("gpt-4o", Fault.server_error(status, times=1))
    assert make_llm().generate("hi").attempts == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(status=408, code="Timeout", message="The operation was timeout.", times=1), TimeoutError),
        (Fault(status=409, code="conflict", message="busy", times=1), ConflictError),
        (Fault.drop(times=1), NetworkError),
        (Fault.malformed(times=1), ServiceError),
    ],
    ids=["408", "409", "dropped-connection", "malformed-body"],
)
def test_transient_failures_are_retried(
    make_llm: Factory, caplog: pytest.LogCaptureFixture, fault: Fault, error: type[Exception]
) -> None:
    make_llm.emu.fault("gpt-4o", fault)
    assert make_llm().generate("hi").attempts == 2
    (warning,) = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert error.__name__ in warning.getMessage()


def test_client_timeout_is_retried(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.timeout(1.0, times=1))
    llm = make_llm(chat_kw={"timeout": 0.3})
    started = time.monotonic()
    assert llm.generate("hi").attempts == 2
    assert time.monotonic() - started >= 0.3


def test_persistent_timeout_surfaces_as_timeout_error(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.timeout(1.0))
    llm = make_llm(chat_kw={"timeout": 0.2}, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    with pytest.raises(TimeoutError) as info:
        llm.generate("hi")
    assert isinstance(info.value.__cause__, openai.APITimeoutError)
    assert info.value.debug_info["attempt"] == 2


def test_long_retry_after_is_a_quota_error_at_once(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.quota_wall())
    started = time.monotonic()
    with pytest.raises(QuotaExceededError) as info:
        make_llm().generate("hi")
    assert time.monotonic() - started < 2
    assert info.value.retry_after == 86400
    assert len(chat_requests(make_llm.emu)) == 1


def test_rate_limit_budget_spent_raises_rate_limit_error(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault.rate_limit(retry_after_ms=5))
    with pytest.raises(RateLimitError) as info:
        make_llm().generate("hi")
    assert len(chat_requests(make_llm.emu)) == FAST_RETRY.max_attempts
    assert isinstance(info.value.__cause__, openai.RateLimitError)
    assert info.value.debug_info["attempt"] == FAST_RETRY.max_attempts
    assert info.value.debug_info["apim-request-id"]


def test_wrong_key_is_not_retried(make_llm: Factory) -> None:
    llm = make_llm(chat_kw={"api_key": "wrong-key-123"})
    with pytest.raises(AuthenticationError):
        llm.generate("hi")
    assert len(chat_requests(make_llm.emu)) == 1


def test_unknown_deployment_is_not_retried_and_named(make_llm: Factory) -> None:
    with pytest.raises(DeploymentNotFoundError) as info:
        make_llm("no-such-deployment").generate("hi")
    assert "no-such-deployment" in str(info.value)
    assert make_llm.emu.endpoint in (info.value.suggestion or "")
    assert len(chat_requests(make_llm.emu)) == 1


def test_forbidden_is_not_retried(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault(status=403, code="403", message="Public access is disabled."))
    with pytest.raises(PermissionDeniedError):
        make_llm().generate("hi")
    assert len(chat_requests(make_llm.emu)) == 1


def test_context_length_is_not_retried(make_llm: Factory) -> None:
    with pytest.raises(ContextLengthError):
        make_llm("gpt-4o-mini").generate("lorem ipsum " * 200_000)
    assert len(chat_requests(make_llm.emu)) == 1
