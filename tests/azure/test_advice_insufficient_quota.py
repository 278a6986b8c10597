"""Issue 11 §3: an ``insufficient_quota`` 429 is a spent quota or credit, not throttling and not
a Retry-After over the ceiling: its advice says so (billing / quota, not retryable).

The body is the one the service sends for it (OpenAI's wording, which Azure passes through),
served by the emulator over real HTTP and read back by the real SDK; with and without a
Retry-After header, since the advice must not depend on one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories

from azmem import errors as E
from azmem.emulator import Fault

INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/"
        "api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


@pytest.mark.parametrize("retry_after", [None, 2.0], ids=["no-retry-after", "retry-after-2s"])
def test_insufficient_quota_advises_billing_and_is_not_retried(
    make_llm: Factory, retry_after: float | None
) -> None:
    emu = make_llm.emu
    emu.fault("gpt-4o", Fault(status=429, body=INSUFFICIENT_QUOTA, retry_after=retry_after))
    llm = make_llm("gpt-4o")
    with pytest.raises(E.QuotaExceededError) as info:
        llm.generate("hi")
    err = info.value
    suggestion = err.suggestion or ""
    assert "ceiling" not in suggestion.lower()
    assert "retry_after" not in suggestion
    assert "billing" in suggestion.lower()
    assert "not" in suggestion
    assert "retry" in suggestion.lower()
    assert err.error_code == "insufficient_quota"
    assert not err.retryable
    assert len(chat_requests(emu)) == 1, "a spent quota is not retried"


def test_a_quota_wall_keeps_the_retry_ceiling_advice(make_llm: Factory) -> None:
    """The other QuotaExceededError (a Retry-After over the ceiling) is about the ceiling, truly."""
    make_llm.emu.fault("gpt-4o", Fault.quota_wall())
    with pytest.raises(E.QuotaExceededError) as info:
        make_llm("gpt-4o").generate("hi")
    assert "retry_after_ceiling" in (info.value.suggestion or "")
