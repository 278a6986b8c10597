"""Audit of issue 2 §7: a quota wall is recognised even when Azure sends no Retry-After header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories

from azmem.azure.retry import RetryPolicy
from azmem.emulator import Fault
from azmem.errors import QuotaExceededError, RateLimitError

WALL = (
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
    "exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds."
)


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def test_a_quota_wall_without_retry_after_headers_fails_at_once(make_llm: Factory) -> None:
    make_llm.emu.fault("gpt-4o", Fault(status=429, code="429", message=WALL))
    with pytest.raises(QuotaExceededError) as info:
        make_llm().generate("hi")
    assert info.value.retry_after == 86400
    assert [r.status for r in chat_requests(make_llm.emu)] == [429], "no retry into a quota wall"


def test_a_short_stated_wait_is_not_a_quota_wall_and_not_a_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, retry_after_ceiling=60)
    short = RateLimitError("429", details={"stated_retry_after": 6.0})
    delay = policy.next_delay(short, 1)
    assert delay is not None
    assert 0 <= delay <= 0.5, "the policy's own backoff, not the message's figure"
    wall = RateLimitError("429", details={"stated_retry_after": 86400.0})
    with pytest.raises(QuotaExceededError):
        policy.next_delay(wall, 1)
    header = RateLimitError("429", retry_after=2.0, details={"stated_retry_after": 86400.0})
    assert policy.next_delay(header, 1) == 2.0, "a Retry-After header wins over the message"
