"""The same engine on both backends, through the URL a user sets: AZMEM_STORE, Memory and AsyncMemory."""

from __future__ import annotations

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.memory import AsyncMemory, Memory


def test_azmem_store_selects_the_backend(
    local_embedder: LocalEmbedder, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZMEM_STORE", store_url)
    with Memory(embedder=local_embedder) as m:
        assert m.settings.store_url == store_url
        added = m.add("I keep bees in the garden", user_id="alex", infer=False)
        assert m.search("beekeeping", user_id="alex").results[0].id == added.results[0].id
    with Memory(embedder=local_embedder) as again:  # a second process would see the same
        assert [i.memory for i in again.get_all(user_id="alex").results] == ["I keep bees in the garden"]
        assert "password" not in repr(again)


async def test_async_memory_on_each_backend(local_embedder: LocalEmbedder, store_url: str) -> None:
    async with AsyncMemory(embedder=local_embedder, store_url=store_url) as m:
        first = await m.add("Lisbon is where I live", user_id="alex", infer=False)
        await m.add("I work as a nurse", user_id="alex", infer=False)
        await m.add("Sam lives in Oslo", user_id="sam", infer=False)
        hits = await m.search("where does alex live", user_id="alex")
        assert hits.results[0].memory == "Lisbon is where I live"
        assert all(h.user_id == "alex" for h in hits.results)
        mid = first.results[0].id
        await m.update(mid, "Porto is where I live now")
        history = await m.history(mid)
        assert [h.event for h in history] == ["ADD", "UPDATE"]
        assert await m.delete_all(user_id="alex") == 2
        assert (await m.get_all(user_id="sam")).results[0].memory == "Sam lives in Oslo"
