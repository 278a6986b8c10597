"""Issue 11 §3: one embedding input over the model's per-input token limit.

Before: the whole batch failed with the chat-worded advice ("shorten the messages ... a shorter
history"). Now the embedder has an explicit policy, ``long_input`` on the embedding role:

* ``error`` (default): the call fails with a ``ContextLengthError`` naming the input
  (``texts[i]``) and embedding-worded advice;
* ``truncate``: the long input is cut to fit and its prefix is embedded;
* ``chunk``: it is split into pieces that fit, embedded, and the vectors averaged (weighted by
  their size), renormalised.

All over real HTTP against the emulator, which refuses an input over its deployment's
context window (8,192 for embedding models, one token per four characters) with the service's
400. Vectors from the emulator are deterministic per text, so the tests can check what was
embedded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from azmem import errors as E
from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder, estimate_tokens
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.emulator import Deployment, Emulator

MODEL = "text-embedding-3-small"
# 48,000 characters: 12,000 tokens by the emulator's count, over the 8,192 it accepts per input.
LONG = " ".join(f"word{i % 97}" for i in range(8_000))
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def _settings(emu: Emulator, deployment: str = MODEL, **kw: Any) -> AzureOpenAISettings:
    return AzureOpenAISettings(
        role="embedding", endpoint=emu.endpoint, deployment=deployment, api_key=emu.api_key, **kw
    )


def _sent(emu: Emulator, deployment: str = MODEL) -> list[list[str]]:
    return [list(r.json["input"]) for r in emu.requests_for(deployment) if r.status == 200]


def test_default_policy_names_the_long_input_with_embedding_advice(emulator: Emulator) -> None:
    with (
        AzureEmbedder(_settings(emulator), retry=FAST) as embedder,
        pytest.raises(E.ContextLengthError) as info,
    ):
        embedder.embed(["a short one", LONG, "another short one"])
    err = info.value
    assert "texts[1]" in err.message
    assert "texts[0]" not in err.message
    assert "texts[2]" not in err.message
    suggestion = err.suggestion or ""
    assert "long_input" in suggestion
    assert "truncate" in suggestion
    assert "chunk" in suggestion
    assert "messages" not in suggestion
    assert "history" not in suggestion
    assert err.details.get("inputs") == [1]
    assert len(emulator.requests_for(MODEL)) == 1, "a too-long input is not retried"


def test_the_sdk_error_of_an_embeddings_call_is_embedding_worded(emulator: Emulator) -> None:
    """Even without the embedder (a raw SDK call mapped by azmem), the advice is about inputs."""
    import openai

    from azmem.azure.errors import map_sdk_error
    from azmem.azure.provider import AzureProvider

    provider = AzureProvider(_settings(emulator))
    try:
        with pytest.raises(openai.BadRequestError) as info:
            provider.sync_client().embeddings.create(model=MODEL, input=[LONG])
        err = map_sdk_error(info.value, provider.context("embeddings"))
    finally:
        provider.close()
    assert isinstance(err, E.ContextLengthError)
    assert "long_input" in (err.suggestion or "")
    assert "history" not in (err.suggestion or "")


def test_truncate_embeds_the_prefix_that_fits(emulator: Emulator) -> None:
    with AzureEmbedder(_settings(emulator, long_input="truncate"), retry=FAST) as embedder:
        vectors = embedder.embed(["a short one", LONG])
        (sent,) = _sent(emulator)
        assert sent[0] == "a short one"
        assert LONG.startswith(sent[1])
        assert len(sent[1]) < len(LONG)
        assert estimate_tokens(sent[1]) <= 8_191
        alone = embedder.embed([sent[1]])
    assert vectors.shape == (2, 1536)
    np.testing.assert_allclose(vectors[1], alone[0], atol=1e-6)


def test_chunk_averages_the_pieces(emulator: Emulator) -> None:
    with AzureEmbedder(_settings(emulator, long_input="chunk"), retry=FAST) as embedder:
        vectors = embedder.embed(["a short one", LONG, "the last one"])
        (sent,) = _sent(emulator)
        pieces = sent[1:-1]
        assert sent[0] == "a short one"
        assert sent[-1] == "the last one"
        assert len(pieces) >= 2
        assert " ".join(pieces) == LONG, "the pieces cover the whole text, split on whitespace"
        assert all(estimate_tokens(p) <= 8_191 for p in pieces)
        each = embedder.embed(pieces)
    weights = np.array([estimate_tokens(p) for p in pieces], dtype=np.float64)
    mean = (each.astype(np.float64) * weights[:, None]).sum(axis=0)
    expected = mean / np.linalg.norm(mean)
    assert vectors.shape == (3, 1536)
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5)
    assert abs(float(np.linalg.norm(vectors[1])) - 1.0) < 1e-5


def test_the_policy_is_set_per_embedding_role_in_the_settings(emulator: Emulator) -> None:
    settings = AzmemSettings.load(
        {
            "endpoint": emulator.endpoint,
            "api_key": emulator.api_key,
            "embedding": {"deployment": MODEL, "long_input": "chunk"},
        }
    )
    assert settings.embedding is not None
    assert settings.embedding.long_input == "chunk"
    with AzureEmbedder(settings, retry=FAST) as embedder:
        assert embedder.embed([LONG]).shape == (1, 1536)


def test_an_unknown_policy_is_a_configuration_error(emulator: Emulator) -> None:
    with pytest.raises(E.ConfigurationError):
        AzureEmbedder(_settings(emulator), long_input="shorten")  # type: ignore[typeddict-item]


def test_when_the_estimate_undercounts_the_strict_bound_is_used(emulator: Emulator) -> None:
    """azmem's estimate (UTF-8 bytes / 3) can under-count some text; a token is never shorter than
    one byte, so cutting to max_input_tokens bytes always fits. Here the deployment really takes
    50 tokens while azmem is told 100: the first cut is refused, the strict one accepted."""
    emulator.add_deployment(Deployment("tiny-embed", model=MODEL, context_window=50))
    cfg = _settings(emulator, "tiny-embed", long_input="truncate", capabilities={"context_window": 100})
    with AzureEmbedder(cfg, retry=FAST) as embedder:
        vectors = embedder.embed([LONG])
    assert vectors.shape == (1, 1536)
    statuses = [r.status for r in emulator.requests_for("tiny-embed")]
    assert statuses == [400, 200]
    (sent,) = _sent(emulator, "tiny-embed")
    assert len(sent[0].encode("utf-8")) <= 100


def test_async_embedder_has_the_same_policies(emulator: Emulator) -> None:
    async def run() -> tuple[Any, E.ContextLengthError]:
        async with AsyncAzureEmbedder(_settings(emulator, long_input="chunk"), retry=FAST) as chunker:
            vectors = await chunker.aembed([LONG, "short"])
        async with AsyncAzureEmbedder(_settings(emulator), retry=FAST) as strict:
            try:
                await strict.aembed(["short", "short two", LONG])
            except E.ContextLengthError as exc:
                return vectors, exc
        raise AssertionError("the default policy did not raise")

    vectors, err = asyncio.run(run())
    assert vectors.shape == (2, 1536)
    assert "texts[2]" in err.message


def _routed(emu: Emulator, **entry: Any) -> Any:
    from azmem.azure.routing import Router
    from azmem.azure.routing.pool import RoutingConfig

    emu.add_deployment(Deployment("pool-embed", model=MODEL))
    pool = [
        {"name": "p", "endpoint": emu.endpoint, "deployment": "pool-embed", "api_key": emu.api_key, **entry}
    ]
    return Router(RoutingConfig.load({"pools": {"embedding": pool}, "limiter": {"backend": "memory"}}))


def test_a_routed_embedder_applies_the_policy_of_its_pool_entries(emulator: Emulator) -> None:
    """The router must not refuse a long input before the embedder applies its policy."""
    from azmem.azure.routing.embeddings import RoutedEmbedder

    embedder = RoutedEmbedder(_routed(emulator, model=MODEL, long_input="chunk"))
    try:
        assert embedder.embed(["short", LONG]).shape == (2, 1536)
    finally:
        embedder.close()


def test_a_routed_embedder_names_the_long_input_by_default(emulator: Emulator) -> None:
    from azmem.azure.routing.embeddings import RoutedEmbedder

    embedder = RoutedEmbedder(_routed(emulator, model=MODEL))
    try:
        with pytest.raises(E.ContextLengthError) as info:
            embedder.embed(["short", LONG])
    finally:
        embedder.close()
    assert "texts[1]" in info.value.message
    assert "long_input" in (info.value.suggestion or "")
    assert len(emulator.requests_for("pool-embed")) == 1
