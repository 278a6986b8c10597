"""Embedding pools through the real SDK against the emulator: failover keeps vectors comparable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from routing_helpers import emu_pool, emu_router, statuses

from azmem.azure.routing.embeddings import AsyncRoutedEmbedder, RoutedEmbedder
from azmem.embeddings.protocol import AsyncEmbedder, Embedder
from azmem.emulator import Fault
from azmem.errors import ServiceError


def test_embed_fails_over_and_returns_the_same_vectors(emulator: Any) -> None:
    pool = emu_pool(
        emulator,
        "emb-east",
        "emb-west",
        model="text-embedding-3-small",
        **{"emb-east": {"weight": 1000}, "emb-west": {"weight": 0.001}},
    )
    router = emu_router({"embedding": pool})
    embedder = RoutedEmbedder(router)
    assert isinstance(embedder, Embedder)
    try:
        first = embedder.embed(["apples", "pears"])
        emulator.fault("emb-east", Fault.rate_limit(retry_after=30, times=1))
        second = embedder.embed(["apples", "pears"])
    finally:
        embedder.close()
    assert first.shape == (2, 1536)
    assert np.allclose(first, second)  # same model on both: vectors stay comparable
    assert statuses(emulator, "emb-east") == [200, 429]
    assert statuses(emulator, "emb-west") == [200]
    assert embedder.name == "azure:emb-east"
    assert embedder.dimension == 1536


def test_embedding_pool_final_error_lists_each_deployment(emulator: Any) -> None:
    pool = emu_pool(emulator, "e1", "e2", model="text-embedding-3-small")
    router = emu_router({"embedding": pool}, max_attempts=2)
    emulator.set_outage("e1")
    emulator.set_outage("e2")
    embedder = RoutedEmbedder(router)
    with pytest.raises(ServiceError) as info:
        embedder.embed(["x"])
    embedder.close()
    assert set(info.value.details["routing"]["deployments"]) >= {"embedding/e1", "embedding/e2"}


async def test_async_embedder_routes_too(emulator: Any) -> None:
    pool = emu_pool(emulator, "ae1", "ae2", model="text-embedding-3-small")
    router = emu_router({"embedding": pool}, breaker={"failure_threshold": 1})
    emulator.set_outage("ae1", mode="drop")
    embedder = AsyncRoutedEmbedder(router)
    assert isinstance(embedder, AsyncEmbedder)
    try:
        for _ in range(4):
            vectors = await embedder.aembed(["a", "b", "c"])
            assert vectors.shape == (3, 1536)
    finally:
        await embedder.aclose()
    assert len(emulator.requests_for("ae1")) <= 1
