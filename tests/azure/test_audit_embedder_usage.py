"""Audit: ``embed`` / ``aembed`` label their usage with ``group_id`` and ``prompt_name`` like ``generate``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llm_helpers import FAST_RETRY, settings

from azmem.azure.cache import ResponseCache
from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder
from azmem.azure.usage import UsageTracker

EMBED = "text-embedding-3-small"


def _embed(mode: str, emulator: Any, usage: UsageTracker, texts: list[str], **kw: Any) -> None:
    cfg = settings(emulator, EMBED)
    if mode == "sync":
        with AzureEmbedder(cfg, usage=usage, retry=FAST_RETRY, **kw.pop("ctor", {})) as emb:
            emb.embed(texts, **kw)
        return

    async def run() -> None:
        async with AsyncAzureEmbedder(cfg, usage=usage, retry=FAST_RETRY, **kw.pop("ctor", {})) as emb:
            await emb.aembed(texts, **kw)

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_group_id_and_prompt_name_are_recorded(emulator: Any, mode: str) -> None:
    usage = UsageTracker()
    _embed(mode, emulator, usage, ["a", "b"], group_id="team-7", prompt_name="index docs")
    (rec,) = usage.records
    assert (rec.group_id, rec.prompt_name) == ("team-7", "index docs")
    assert rec.deployment == EMBED
    summary = usage.summary()
    assert summary["by_group_id"]["team-7"]["calls"] == 1
    assert summary["by_prompt_name"]["index docs"]["calls"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_default_prompt_name_is_embeddings(emulator: Any, mode: str) -> None:
    usage = UsageTracker()
    _embed(mode, emulator, usage, ["a"])
    (rec,) = usage.records
    assert (rec.group_id, rec.prompt_name) == (None, "embeddings")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cache_hits_carry_the_labels_too(emulator: Any, mode: str, tmp_path: Path) -> None:
    usage = UsageTracker()
    with ResponseCache(tmp_path / "c.db") as cache:
        _embed(mode, emulator, usage, ["a"], ctor={"cache": cache})
        _embed(mode, emulator, usage, ["a"], ctor={"cache": cache}, group_id="g", prompt_name="p")
    first, hit = usage.records
    assert (first.group_id, first.prompt_name, first.cached) == (None, "embeddings", False)
    assert (hit.group_id, hit.prompt_name, hit.cached) == ("g", "p", True)
