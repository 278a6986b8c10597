"""AzureEmbedder / AsyncAzureEmbedder through the real SDK against the emulator: batching by count
and by token budget, order, dimensions, base64, retries and errors, cache, usage, spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from llm_helpers import FAST_RETRY, Spans, settings

from azmem.azure.cache import ResponseCache
from azmem.azure.embedder import (
    MAX_BATCH_INPUTS,
    AsyncAzureEmbedder,
    AzureEmbedder,
    estimate_tokens,
    plan_batches,
)
from azmem.azure.usage import UsageTracker
from azmem.embeddings import AsyncEmbedder, Embedder
from azmem.emulator import Deployment, Emulator, Fault
from azmem.emulator.embeddings import vector
from azmem.errors import (
    ConfigurationError,
    DeploymentNotFoundError,
    EmbedderMismatchError,
    InvalidRequestError,
    QuotaExceededError,
)

DEP = "text-embedding-3-small"


class EmbedDriver:
    def __init__(self, embedder: AzureEmbedder | AsyncAzureEmbedder, runner: asyncio.Runner | None) -> None:
        self.embedder = embedder
        self.runner = runner

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if isinstance(self.embedder, AzureEmbedder):
            return self.embedder.embed(texts)
        assert self.runner is not None
        return self.runner.run(self.embedder.aembed(texts))


class EmbedFactory:
    def __init__(self, emu: Emulator, mode: str) -> None:
        self.emu = emu
        self.mode = mode
        self.runner = asyncio.Runner() if mode == "async" else None
        self.made: list[EmbedDriver] = []

    def __call__(self, deployment: str = DEP, *, cfg: dict[str, Any] | None = None, **kw: Any) -> EmbedDriver:
        kw.setdefault("retry", FAST_RETRY)
        cls = AzureEmbedder if self.mode == "sync" else AsyncAzureEmbedder
        driver = EmbedDriver(cls(settings(self.emu, deployment, **(cfg or {})), **kw), self.runner)
        self.made.append(driver)
        return driver

    def close(self) -> None:
        for d in self.made:
            if isinstance(d.embedder, AzureEmbedder):
                d.embedder.close()
            else:
                assert self.runner is not None
                self.runner.run(d.embedder.aclose())
        if self.runner is not None:
            self.runner.close()


@pytest.fixture(params=["sync", "async"])
def make_emb(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[EmbedFactory]:
    factory = EmbedFactory(emulator, request.param)
    yield factory
    factory.close()


def _embedding_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith("/embeddings")]


def test_planning_respects_count_and_token_budget() -> None:
    texts = ["a" * 30] * 10  # 11 estimated tokens each
    assert plan_batches(texts, max_inputs=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plan_batches(texts, max_tokens=25) == [[i, i + 1] for i in range(0, 10, 2)]
    assert plan_batches(["x" * 3000], max_tokens=10) == [[0]]  # alone, the service decides
    assert plan_batches([]) == []
    assert len(plan_batches(["t"] * (MAX_BATCH_INPUTS + 1))) == 2


def test_token_estimate_is_an_upper_leaning_bound() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("hello world, this is english") >= 28 // 4
    assert estimate_tokens("日本語のテキスト") >= 8  # about one token per CJK character


def test_vectors_are_float32_unit_rows_in_input_order(make_emb: EmbedFactory) -> None:
    texts = ["alpha", "beta", "gamma", "alpha"]
    out = make_emb().embed(texts)
    assert out.dtype == np.float32
    assert out.shape == (4, 1536)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    for row, text in zip(out, texts, strict=True):
        np.testing.assert_allclose(row, vector(text, 1536), atol=1e-6)
    (sent,) = _embedding_requests(make_emb.emu)
    assert sent.json["encoding_format"] == "base64"
    assert sent.json["input"] == texts
    assert "dimensions" not in sent.json


def test_batches_by_count_keep_order(make_emb: EmbedFactory) -> None:
    texts = [f"text {i}" for i in range(7)]
    out = make_emb(max_batch_inputs=3).embed(texts)
    # Async batches are concurrent, so only the multiset of batch sizes is fixed.
    assert sorted(len(r.json["input"]) for r in _embedding_requests(make_emb.emu)) == [1, 3, 3]
    for row, text in zip(out, texts, strict=True):
        np.testing.assert_allclose(row, vector(text, 1536), atol=1e-6)


def test_batches_by_token_budget(make_emb: EmbedFactory) -> None:
    texts = ["word " * 60] * 5  # 101 estimated tokens each
    make_emb(max_batch_tokens=250).embed(texts)
    assert sorted(len(r.json["input"]) for r in _embedding_requests(make_emb.emu)) == [1, 2, 2]


def test_more_than_2048_inputs_are_split(make_emb: EmbedFactory) -> None:
    out = make_emb().embed([f"n{i}" for i in range(2050)])
    assert out.shape == (2050, 1536)
    assert sorted(len(r.json["input"]) for r in _embedding_requests(make_emb.emu)) == [2, 2048]


def test_dimensions_are_passed_through(make_emb: EmbedFactory) -> None:
    emb = make_emb(cfg={"dimensions": 256})
    assert emb.embedder.dimension == 256
    out = emb.embed(["short"])
    assert out.shape == (1, 256)
    assert _embedding_requests(make_emb.emu)[0].json["dimensions"] == 256
    np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, rtol=1e-5)


def test_protocol_name_dimension_and_empty_input(make_emb: EmbedFactory) -> None:
    emb = make_emb("text-embedding-3-large")
    e = emb.embedder
    assert e.name == "azure:text-embedding-3-large"
    assert e.dimension == 3072
    assert isinstance(e, Embedder if make_emb.mode == "sync" else AsyncEmbedder)
    assert emb.embed([]).shape == (0, 3072)
    assert _embedding_requests(make_emb.emu) == []


def test_unknown_model_dimension_is_learned_or_explained(make_emb: EmbedFactory) -> None:
    make_emb.emu.add_deployment(Deployment("vectors", kind="embeddings", model="text-embedding-3-small"))
    emb = make_emb("vectors")
    with pytest.raises(ConfigurationError, match="dimensions"):
        _ = emb.embedder.dimension
    emb.embed(["x"])
    assert emb.embedder.dimension == 1536
    pinned = make_emb("vectors")
    pinned.embedder.dimension = 1536  # pinned up front, e.g. before opening a store
    assert pinned.embedder.dimension == 1536
    with pytest.raises(ConfigurationError):
        pinned.embedder.dimension = 0
    pinned.embedder.dimension = 768
    with pytest.raises(EmbedderMismatchError, match="expected 768"):
        pinned.embed(["x"])


def test_empty_strings_and_dirty_text_are_cleaned(make_emb: EmbedFactory) -> None:
    out = make_emb().embed(["", "a\u200bb\x00"])
    assert out.shape == (2, 1536)
    assert _embedding_requests(make_emb.emu)[0].json["input"] == [" ", "ab"]


def test_rate_limit_is_retried_and_errors_are_typed(make_emb: EmbedFactory) -> None:
    make_emb.emu.fault(DEP, Fault.rate_limit(retry_after_ms=5, times=1))
    assert make_emb().embed(["x"]).shape == (1, 1536)
    assert [r.status for r in _embedding_requests(make_emb.emu)] == [429, 200]
    with pytest.raises(DeploymentNotFoundError):
        make_emb("missing-embeddings").embed(["x"])
    make_emb.emu.fault(DEP, Fault.quota_wall())
    with pytest.raises(QuotaExceededError):
        make_emb().embed(["y"])


def test_a_failing_batch_fails_the_call_with_its_own_type(make_emb: EmbedFactory) -> None:
    make_emb.emu.fault(DEP, Fault(status=400, code="invalid", message="bad input", times=1))
    with pytest.raises(InvalidRequestError):
        make_emb(max_batch_inputs=1).embed(["a", "b", "c"])


def test_cache_per_text_sends_only_misses(make_emb: EmbedFactory, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "emb.db")
    usage = UsageTracker()
    spans = Spans()
    emb = make_emb(cache=cache, usage=usage, tracer=spans.tracer)
    first = emb.embed(["a", "b"])
    second = emb.embed(["b", "c", "a"])
    sent = _embedding_requests(make_emb.emu)
    assert [r.json["input"] for r in sent] == [["a", "b"], ["c"]]
    np.testing.assert_allclose(second[0], first[1], atol=1e-7)
    np.testing.assert_allclose(second[2], first[0], atol=1e-7)
    emb.embed(["a", "b", "c"])
    assert len(_embedding_requests(make_emb.emu)) == 2
    other_dims = make_emb(cfg={"dimensions": 64}, cache=cache)
    assert other_dims.embed(["a"]).shape == (1, 64)  # dimensions are part of the key
    assert len(_embedding_requests(make_emb.emu)) == 3
    summary = usage.summary()
    assert summary["total"]["cached_calls"] == 2
    assert summary["total"]["input_tokens"] > 0
    hits = [dict(s.attributes or {})["cache.hit"] for s in spans.finished]
    assert hits == [False, False, True]
    cache.close()


def test_async_batches_run_concurrently(emulator: Emulator) -> None:
    emulator.deployment(DEP).latency = 0.2
    emb = AsyncAzureEmbedder(settings(emulator, DEP), max_batch_inputs=1, max_concurrency=4, retry=FAST_RETRY)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        out = await emb.aembed(["a", "b", "c", "d"])
        assert out.shape == (4, 1536)
        await emb.aclose()
        return loop.time() - started

    assert asyncio.run(run()) < 0.6  # sequential would take 0.8 s
