"""Each role may carry its own retry policy (issue 2 §2: "max retries" per role).

A small model used for cheap steps often wants to give up sooner than the main one;
the role's policy wins over the top-level one, and an explicit ``retry=`` over both.
"""

from __future__ import annotations

from typing import Any

import pytest

from azmem.azure import AzmemSettings, AzureEmbedder, LLMClient
from azmem.emulator import Fault
from azmem.errors import ServiceError

FAST = {"base_delay": 0.001, "max_delay": 0.01}


def _settings(emulator: Any, **roles: Any) -> AzmemSettings:
    return AzmemSettings.load(
        endpoint=emulator.endpoint,
        api_key="test-key",
        retry={"max_attempts": 4, **FAST},
        **roles,
    )


def _statuses(emulator: Any, deployment: str) -> list[int]:
    return [r.status for r in emulator.requests_for(deployment)]


def test_a_roles_policy_wins_over_the_top_level_one(emulator: Any) -> None:
    settings = _settings(
        emulator,
        chat="gpt-4o",
        small_chat={"deployment": "gpt-4o-mini", "retry": {"max_attempts": 1, **FAST}},
    )
    emulator.fault("gpt-4o", Fault.server_error(times=2))
    emulator.fault("gpt-4o-mini", Fault.server_error(times=2))
    with LLMClient(settings) as llm:
        assert llm.generate("hi").attempts == 3  # top-level policy: 4 attempts
        with pytest.raises(ServiceError):
            llm.generate("hi", model_size="small")  # its own policy: 1 attempt
    assert _statuses(emulator, "gpt-4o-mini") == [500]


def test_the_embedding_roles_policy_is_used(emulator: Any) -> None:
    settings = _settings(
        emulator,
        embedding={"deployment": "text-embedding-3-small", "retry": {"max_attempts": 2, **FAST}},
    )
    emulator.fault("text-embedding-3-small", Fault.server_error(times=2))
    with AzureEmbedder(settings) as embedder, pytest.raises(ServiceError):
        embedder.embed(["a"])
    assert _statuses(emulator, "text-embedding-3-small") == [500, 500]


def test_an_explicit_retry_argument_wins_over_the_roles_policy(emulator: Any) -> None:
    from azmem.azure.retry import RetryPolicy

    settings = _settings(
        emulator,
        chat="gpt-4o",
        small_chat={"deployment": "gpt-4o-mini", "retry": {"max_attempts": 1, **FAST}},
    )
    emulator.fault("gpt-4o-mini", Fault.server_error(times=2))
    with LLMClient(settings, retry=RetryPolicy(max_attempts=3, **FAST)) as llm:
        assert llm.generate("hi", model_size="small").attempts == 3
    assert _statuses(emulator, "gpt-4o-mini") == [500, 500, 200]
