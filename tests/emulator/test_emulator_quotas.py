"""Per-deployment TPM/RPM in a sliding one-minute window, on a clock the tests move."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from emulator_helpers import MESSAGES, azure

from azmem.emulator import Deployment, Emulator


def _chat(client: openai.AzureOpenAI, **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model="limited", messages=MESSAGES, **kw)


def test_rpm_limit_with_computed_retry_after(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited", model="gpt-4o", rpm=2))
    with azure(emulator) as client:
        first = _chat(client)
        clock.advance(20)
        second = _chat(client)
        clock.advance(5)
        with pytest.raises(openai.RateLimitError) as info:
            _chat(client)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        headers = info.value.response.headers
        # The first request leaves the window 60 s after it came: 35 s from now.
        assert headers["retry-after"] == "35"
        assert headers["retry-after-ms"] == "35000"
        assert "exceeded call rate limit" in str(info.value.body)
        assert "Please retry after 35 seconds." in str(info.value.body)
        clock.advance(35)
        assert _chat(client).headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_limit_counts_prompt_and_max_tokens(emulator: Emulator) -> None:
    clock = emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited", model="gpt-4o", tpm=1000))
    with azure(emulator) as client:
        first = _chat(client, max_tokens=600)
        used = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
        assert used > 600
        assert emulator.window_usage("limited") == (1, used)
        clock.advance(10)
        with pytest.raises(openai.RateLimitError) as info:
            _chat(client, max_tokens=600)
        assert info.value.response.headers["retry-after"] == "50"
        assert "exceeded token rate limit" in str(info.value.body)
        small = _chat(client, max_tokens=10)
        assert int(small.headers["x-ratelimit-remaining-tokens"]) < 1000 - used
        clock.advance(50)
        assert _chat(client, max_tokens=600).status_code == 200


def test_rejected_requests_do_not_count(emulator: Emulator) -> None:
    emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited", model="gpt-4o", rpm=1))
    with azure(emulator) as client:
        _chat(client)
        for _ in range(3):
            with pytest.raises(openai.RateLimitError):
                _chat(client)
    assert emulator.window_usage("limited")[0] == 1


def test_quotas_are_per_deployment_and_reset_clears_them(emulator: Emulator) -> None:
    emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited", model="gpt-4o", rpm=1))
    with azure(emulator) as client:
        _chat(client)
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        with pytest.raises(openai.RateLimitError):
            _chat(client)
        emulator.reset()
        with pytest.raises(openai.NotFoundError):
            _chat(client)  # added deployments go too


def test_unlimited_deployment_advertises_nominal_limits(emulator: Emulator) -> None:
    with azure(emulator) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert int(raw.headers["x-ratelimit-limit-tokens"]) > int(raw.headers["x-ratelimit-remaining-tokens"])


def test_embeddings_count_input_tokens(emulator: Emulator) -> None:
    emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited-emb", model="text-embedding-3-small", tpm=100))
    with azure(emulator) as client:
        client.embeddings.create(model="limited-emb", input=["x" * 200])  # ~50 tokens
        with pytest.raises(openai.RateLimitError) as info:
            client.embeddings.create(model="limited-emb", input=["y" * 240])  # ~60 tokens
    assert "Embeddings_Create" in str(info.value.body)
    assert emulator.window_usage("limited-emb") == (1, 50)


def test_concurrent_burst_admits_exactly_the_rpm(emulator: Emulator) -> None:
    import asyncio

    emulator.use_manual_clock()
    emulator.add_deployment(Deployment("limited", model="gpt-4o", rpm=20))

    async def burst() -> list[int]:
        async with openai.AsyncAzureOpenAI(**emulator.client_kwargs()) as client:

            async def one() -> int:
                try:
                    await client.chat.completions.create(model="limited", messages=MESSAGES)
                    return 200
                except openai.RateLimitError:
                    return 429

            return await asyncio.gather(*(one() for _ in range(50)))

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 20
    assert statuses.count(429) == 30
