"""Issue 11 §3: a completion budget over a *non-reasoning* model's output limit must not be
answered with "this looks like a reasoning model" — the advice names the limit instead.

Driven through the real SDK over HTTP against the emulator, whose 400 is the service's own
(``invalid_value``, "max_tokens is too large: N. This model supports at most M completion
tokens, whereas you provided N."). The reasoning advice stays where it is true: ``max_tokens``
refused by a reasoning model (``unsupported_parameter``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_helpers import Factory, chat_requests, factories, settings

from azmem import errors as E


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


def test_max_tokens_over_the_output_limit_names_the_limit_not_reasoning(make_llm: Factory) -> None:
    llm = make_llm("gpt-4o")
    with pytest.raises(E.InvalidRequestError) as info:
        llm.generate("hi", max_tokens=20_000)
    err = info.value
    suggestion = err.suggestion or ""
    assert "reasoning" not in suggestion.lower()
    assert "16,384" in suggestion or "16384" in suggestion
    assert "max_tokens" in suggestion
    assert err.error_code == "invalid_value"
    assert err.details.get("output_token_limit") == 16_384
    assert len(chat_requests(make_llm.emu)) == 1, "a 400 is not retried"


def test_max_tokens_refused_by_a_reasoning_model_still_says_reasoning(make_llm: Factory) -> None:
    # o3-mini declared as not reasoning: azmem sends max_tokens, which the service refuses.
    llm = make_llm(chat=settings(make_llm.emu, "o3-mini", capabilities={"reasoning": False}))
    with pytest.raises(E.InvalidRequestError) as info:
        llm.generate("hi", max_tokens=100)
    assert "capabilities.reasoning=true" in (info.value.suggestion or "")


def test_reasoning_effort_refused_by_a_chat_model_says_it_is_not_a_reasoning_model(
    make_llm: Factory,
) -> None:
    # gpt-4o declared as reasoning: azmem sends reasoning_effort, which the service refuses.
    llm = make_llm(chat=settings(make_llm.emu, "gpt-4o", capabilities={"reasoning": True}))
    with pytest.raises(E.InvalidRequestError) as info:
        llm.generate("hi", reasoning_effort="low")
    suggestion = info.value.suggestion or ""
    assert "capabilities.reasoning=true" not in suggestion
    assert "capabilities.reasoning=false" in suggestion
