"""The server embeds locally through one `AsyncBatchingEmbedder`: right answers, reported, switchable."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from azmem.embeddings import AsyncBatchingEmbedder, LocalEmbedder
from azmem.errors import ConfigurationError
from azmem.server import ServerConfig
from azmem.server.config import EmbeddingPlan

from .conftest import Harness, harness_for

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2


async def test_concurrent_requests_embed_through_the_batcher(harness: Harness) -> None:
    services = harness.app.state.services
    assert isinstance(services.memory.embedder, AsyncBatchingEmbedder)
    c, h = harness.client, harness.auth("alice")
    topics = ["the cello", "peanut allergy", "Lisbon flat", "sailing trips", "chess club", "green tea"]
    await asyncio.gather(*(harness.add(f"Alice and {t}", key="alice") for t in topics))
    found = await asyncio.gather(
        *(c.post("/v1/search", json={"query": t, "limit": 1}, headers=h) for t in topics * 3)
    )
    # Whoever shared a batch, each search got its own query's vector.
    assert [r.json()["results"][0]["memory"] for r in found] == [f"Alice and {t}" for t in topics * 3]
    status = (await c.get("/v1/status", headers=h)).json()["embedding_batching"]
    assert status["calls"] == len(topics) * 4
    assert status["texts"] == len(topics) * 4
    assert 1 <= status["batches"] <= status["calls"]
    assert status["pending"] == 0
    assert status["retries"] == 0


async def test_batching_can_be_turned_off_and_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZMEM_EMBEDDING_BATCH", "0")
    async with harness_for(tmp_path / "m.db") as hs:
        assert isinstance(hs.app.state.services.memory.embedder, LocalEmbedder)
        await hs.add("alice keeps bees", key="alice")
        status = (await hs.client.get("/v1/status", headers=hs.auth("alice"))).json()
        assert status["embedding_batching"] is None
    assert ServerConfig().embedding_plan() == EmbeddingPlan(0, 0.002, 1 if CORES < 4 else CORES // 2, None)
    plan = ServerConfig(
        embedding_batch_size=8, embedding_batch_wait_ms=0, embedding_workers=1
    ).embedding_plan()
    assert plan == EmbeddingPlan(8, 0.0, 1, 1)  # batching: one onnxruntime thread per batch by default
    monkeypatch.setenv("AZMEM_EMBEDDING_BATCH", "lots")
    with pytest.raises(ConfigurationError, match="AZMEM_EMBEDDING_BATCH"):
        ServerConfig().embedding_plan()
    monkeypatch.setenv("AZMEM_EMBEDDING_BATCH", "16")
    monkeypatch.setenv("AZMEM_EMBEDDING_WORKERS", "2")
    monkeypatch.setenv("AZMEM_EMBEDDING_THREADS", "3")
    assert ServerConfig().embedding_plan() == EmbeddingPlan(16, 0.002, 2, None)  # the embedder reads it
    with pytest.raises(ConfigurationError, match="embedding_workers"):
        ServerConfig(embedding_workers=0)
