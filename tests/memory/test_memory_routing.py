"""Memory's embeddings go through the settings' `embedding` routing pool when one is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azmem.azure.embedder import AzureEmbedder
from azmem.azure.routing.embeddings import AsyncRoutedEmbedder, RoutedEmbedder
from azmem.emulator import Deployment, Emulator
from azmem.memory import AsyncMemory, Memory

from .conftest import azure_config

EMBED = "text-embedding-3-small"


def _pool_config(emulator: Emulator, tmp_path: Path, down: str, up: str) -> dict[str, Any]:
    """The embedding role on the emulator plus an `embedding` pool of `down` (tried first) and `up`."""
    pool = []
    for name, weight in ((down, 1000), (up, 1)):
        emulator.add_deployment(Deployment(name, model=EMBED))
        pool.append(
            {
                "name": name,
                "endpoint": emulator.endpoint,
                "deployment": name,
                "model": EMBED,
                "weight": weight,
            }
        )
    emulator.set_outage(down, True)
    return {
        **azure_config(emulator, tmp_path),
        "embedding": EMBED,
        "routing": {"pools": {"embedding": pool}, "limiter": {"backend": "memory"}},
    }


def _embedding_requests(emulator: Emulator, deployment: str) -> list[Any]:
    return [r for r in emulator.requests_for(deployment) if r.path.endswith("/embeddings")]


def _assert_routed_around(emulator: Emulator, down: str, up: str) -> None:
    healthy = _embedding_requests(emulator, up)
    assert healthy
    assert all(r.status == 200 for r in healthy)
    # the outage was met (the heavy-weight deployment goes first) and nothing it answered succeeded
    assert _embedding_requests(emulator, down)
    assert all(r.status != 200 for r in _embedding_requests(emulator, down))
    # the plain single-deployment embedder was not used
    assert not _embedding_requests(emulator, EMBED)


def test_memory_embeds_through_the_embedding_pool(emulator: Emulator, tmp_path: Path) -> None:
    config = _pool_config(emulator, tmp_path, "mr-down", "mr-up")
    with Memory(config=config) as m:
        assert isinstance(m.embedder, RoutedEmbedder)
        added = m.add([{"content": "I like tea"}, {"content": "I live in Oslo"}], user_id="z", infer=False)
        assert len(added.results) == 2
        assert {r.memory for r in m.search("tea", user_id="z").results} == {"I like tea", "I live in Oslo"}
    _assert_routed_around(emulator, "mr-down", "mr-up")
    # both the add's batch and the search's query reached the healthy deployment
    inputs = [r.json["input"] for r in _embedding_requests(emulator, "mr-up")]
    assert ["I like tea", "I live in Oslo"] in inputs
    assert any(i in (["tea"], "tea") for i in inputs)


async def test_async_memory_embeds_through_the_embedding_pool(emulator: Emulator, tmp_path: Path) -> None:
    config = _pool_config(emulator, tmp_path, "amr-down", "amr-up")
    async with AsyncMemory(config=config) as m:
        assert isinstance(m.embedder, AsyncRoutedEmbedder)
        await m.add("I like tea", user_id="z", infer=False)
        assert [r.memory for r in (await m.search("tea", user_id="z")).results] == ["I like tea"]
    _assert_routed_around(emulator, "amr-down", "amr-up")


def test_routing_without_an_embedding_pool_keeps_the_plain_embedder(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_deployment(Deployment("mr-chat", model="gpt-4o"))
    chat_pool = [{"name": "c", "endpoint": emulator.endpoint, "deployment": "mr-chat", "model": "gpt-4o"}]
    config = {
        **azure_config(emulator, tmp_path),
        "embedding": EMBED,
        "routing": {"pools": {"chat": chat_pool}, "limiter": {"backend": "memory"}},
    }
    with Memory(config=config) as m:
        assert type(m.embedder) is AzureEmbedder
