"""``AzureEmbedder`` / ``AsyncAzureEmbedder``: the :mod:`azmem.embeddings` protocol over Azure OpenAI.

The logic is pure planning (:func:`plan_batches`), one sans-IO flow per request
(:func:`batch_flow`) and pure assembly; the sync class runs the batches one after the
other, the async class runs a few concurrently. Peers sent everything in one request
(which fails past 2,048 inputs) or in fixed batches of 100 (slow), and never sent
``dimensions``; here batches are as large as the service allows, bounded by both the
input count and an estimated token budget, and ``dimensions`` is always passed through.

Vectors come back float32 and L2-normalised. Azure's vectors are unit length already
(also when ``dimensions`` shortens them), so the normalisation is a cheap guarantee of
the protocol's contract rather than a change.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar

import numpy as np
import numpy.typing as npt
import openai
from openai.types import CreateEmbeddingResponse
from typing_extensions import Unpack

from azmem.azure.cache import ResponseCache
from azmem.azure.flow import Flow, Send, call_span, drive, drive_async, performer, send_with_retries
from azmem.azure.messages import clean_text
from azmem.azure.provider import AzureProvider
from azmem.azure.retry import RetryPolicy
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.tracing import server_attributes
from azmem.azure.usage import Usage, UsageTracker
from azmem.errors import ConfigurationError, EmbedderMismatchError, EmptyResponseError

__all__ = [
    "MAX_BATCH_INPUTS",
    "MAX_BATCH_TOKENS",
    "AsyncAzureEmbedder",
    "AzureEmbedder",
    "estimate_tokens",
    "plan_batches",
]

MAX_BATCH_INPUTS = 2048
"""The service's limit on inputs per embeddings request."""
MAX_BATCH_TOKENS = 250_000
"""Our per-request budget of *estimated* tokens (the service caps a request's total tokens)."""

_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def estimate_tokens(text: str) -> int:
    """An upper-leaning token estimate without a tokenizer (tiktoken needs a download).

    UTF-8 bytes / 3: English averages about 4 characters (bytes) per token, so this
    over-counts it by a third, while CJK text (3 bytes per character, about one token
    per character) comes out near exact. Over-counting only makes batches a little
    smaller; under-counting would make requests fail.
    """
    return len(text.encode("utf-8")) // 3 + 1


def plan_batches(
    texts: Sequence[str], *, max_inputs: int = MAX_BATCH_INPUTS, max_tokens: int = MAX_BATCH_TOKENS
) -> list[list[int]]:
    """Split positions into consecutive batches within both limits, keeping order.

    A single text above the token budget still gets a batch of its own: the service,
    not a guess, should say whether it is too long.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    budget = 0
    for index, text in enumerate(texts):
        cost = estimate_tokens(text)
        if current and (len(current) >= max_inputs or budget + cost > max_tokens):
            batches.append(current)
            current, budget = [], 0
        current.append(index)
        budget += cost
    if current:
        batches.append(current)
    return batches


def _decode(value: Any) -> npt.NDArray[np.float32]:
    if isinstance(value, str):  # base64 of little-endian float32, what we ask for
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32, copy=False)
    return np.asarray(value, dtype=np.float32)


def _parse(raw: Any) -> CreateEmbeddingResponse:
    parsed: CreateEmbeddingResponse = raw.parse()
    return parsed


def _normalise(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32, copy=False)
    return out


class _EmbedderOptions(TypedDict, total=False):
    """The keyword arguments both embedders take, declared once (the async one adds ``max_concurrency``).

    Unset or ``None``: ``dimensions`` and ``retry`` come from the role's settings (``retry``
    then from the top-level policy), ``cache`` from the settings' cache when it is enabled,
    ``tracer`` is azmem's default and ``usage`` is not tracked; the batch limits are the service's.
    """

    dimensions: int | None
    tracer: Any | None
    usage: UsageTracker | None
    cache: ResponseCache | None
    retry: RetryPolicy | None
    max_batch_inputs: int
    max_batch_tokens: int


_OPTION_NAMES = frozenset(_EmbedderOptions.__annotations__)
ClientT = TypeVar("ClientT", openai.OpenAI, openai.AsyncOpenAI)


@dataclass(frozen=True, slots=True)
class _EmbedTarget:
    deployment: str
    endpoint: str
    model_arg: str
    model_name: str
    dimensions: int | None
    api_version: str | None
    auth: str | None


@dataclass(slots=True)
class _Plan:
    """One ``embed`` call: cleaned inputs, what the cache already had, and what to send."""

    texts: list[str]
    vectors: list[npt.NDArray[np.float32] | None]
    keys: list[str | None]
    batches: list[list[int]] = field(default_factory=list)
    hits: int = 0


class _BaseEmbedder(Generic[ClientT]):
    """Configuration, planning and assembly shared by both embedders (no I/O)."""

    def __init__(
        self,
        settings: AzmemSettings | AzureOpenAISettings | AzureProvider | None = None,
        *,
        client: ClientT | None = None,
        **options: Unpack[_EmbedderOptions],
    ) -> None:
        unknown = options.keys() - _OPTION_NAMES
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(sorted(unknown))}"
            )
        top_level: RetryPolicy | None = None
        self._owned_cache: ResponseCache | None = None
        cache = options.get("cache")
        if settings is None:
            settings = AzmemSettings.load()
        if isinstance(settings, AzmemSettings):
            top_level = settings.retry
            if cache is None and settings.cache.enabled:
                cache = self._owned_cache = ResponseCache(
                    settings.cache_path, ttl_seconds=settings.cache.ttl_seconds
                )
            settings = settings.role("embedding")
        if isinstance(settings, AzureProvider):
            if client is not None:
                raise ConfigurationError("pass either client= or an AzureProvider, not both")
            self._provider, self._owns_provider = settings, False
        elif isinstance(client, openai.AsyncOpenAI):
            self._provider, self._owns_provider = AzureProvider(settings, async_client=client), True
        else:
            self._provider, self._owns_provider = AzureProvider(settings, client=client), True
        cfg = self._provider.settings
        # An explicit retry= wins, then the role's own policy, then the top-level one.
        self._policy = options.get("retry") or cfg.retry or top_level or RetryPolicy()
        self._tracer = options.get("tracer")
        self._usage = options.get("usage")
        self._cache = cache
        self._max_inputs = options.get("max_batch_inputs", MAX_BATCH_INPUTS)
        if not 1 <= self._max_inputs <= MAX_BATCH_INPUTS:
            raise ConfigurationError(f"max_batch_inputs must be between 1 and {MAX_BATCH_INPUTS}")
        self._max_tokens = options.get("max_batch_tokens", MAX_BATCH_TOKENS)
        dims = options.get("dimensions")
        if dims is None:
            dims = cfg.dimensions
        self._target = _EmbedTarget(
            deployment=self._provider.deployment,
            endpoint=self._provider.endpoint,
            model_arg=self._provider.model_arg(),
            model_name=cfg.model_name,
            dimensions=dims,
            api_version=self._provider.api_version,
            auth=self._provider.auth_kind,
        )
        self._dimension: int | None = dims or _KNOWN_DIMENSIONS.get(cfg.model_name)
        self.name = f"azure:{self._provider.deployment}"

    @property
    def dimension(self) -> int:
        """``dimensions`` if set, else the model's known size, else what the service returned."""
        if self._dimension is None:
            raise ConfigurationError(
                f"The dimension of embedding deployment '{self._target.deployment}' is not known yet.",
                suggestion="Set dimensions=<n> or model='text-embedding-3-small' (the underlying model) "
                "in the embedding settings, or embed once before asking.",
            )
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        # Settable so the class satisfies the Embedder protocol's plain ``dimension: int``
        # attribute for type checkers; also how a caller pins an unknown model's size.
        if value < 1:
            raise ConfigurationError(f"dimension must be positive, not {value}")
        self._dimension = value

    def _plan(self, texts: Sequence[str]) -> _Plan:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        # The service rejects empty inputs; one space embeds as "nothing" and keeps positions.
        cleaned = [clean_text(t) or " " for t in texts]
        plan = _Plan(texts=cleaned, vectors=[None] * len(cleaned), keys=[None] * len(cleaned))
        misses: list[int] = []
        for i, text in enumerate(cleaned):
            if self._cache is not None:
                key = ResponseCache.key(
                    "embeddings",
                    self._target.deployment,
                    {
                        "input": text,
                        "dimensions": self._target.dimensions,
                        "endpoint": self._target.endpoint,
                        "model": self._target.model_arg,
                    },
                )
                plan.keys[i] = key
                hit = self._cache.get(key)
                if isinstance(hit, str):
                    plan.vectors[i] = _decode(hit)
                    plan.hits += 1
                    continue
            misses.append(i)
        sub = [cleaned[i] for i in misses]
        plan.batches = [
            [misses[j] for j in batch]
            for batch in plan_batches(sub, max_inputs=self._max_inputs, max_tokens=self._max_tokens)
        ]
        return plan

    def _span(self, plan: _Plan) -> Any:
        return call_span(
            self._tracer, f"embeddings {self._target.deployment}", lambda: self._span_attributes(plan)
        )

    def _span_attributes(self, plan: _Plan) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.system": "az.ai.openai",
            "gen_ai.request.model": self._target.deployment,
            "llm.provider": "azure",
            "cache.enabled": self._cache is not None,
            "cache.hit": bool(plan.texts) and plan.hits == len(plan.texts),
            "azmem.inputs": len(plan.texts),
            "azmem.cache_hits": plan.hits,
            "azmem.batches": len(plan.batches),
            **server_attributes(self._target.endpoint),
        }
        if self._target.dimensions is not None:
            attrs["gen_ai.embeddings.dimension.count"] = self._target.dimensions
        return attrs

    def _batch_flow(self, plan: _Plan, batch: list[int], span: Any) -> Flow[Usage]:
        """One request under the retry policy; fills ``plan.vectors`` for its positions."""
        t = self._target
        kwargs: dict[str, Any] = {
            "model": t.model_arg,
            "input": [plan.texts[i] for i in batch],
            "encoding_format": "base64",
        }
        if t.dimensions is not None:
            kwargs["dimensions"] = t.dimensions
        ctx = self._provider.context("embeddings")
        response, _attempts = yield from send_with_retries(
            Send("embeddings", "create", kwargs), ctx=ctx, policy=self._policy, span=span, read=_parse
        )
        if len(response.data) != len(batch):
            raise EmptyResponseError(
                f"Embedding deployment '{t.deployment}' returned {len(response.data)} vectors "
                f"for {len(batch)} inputs.",
                debug_info=ctx.debug_info(),
            )
        for item in response.data:
            plan.vectors[batch[item.index]] = _decode(item.embedding)
        u = response.usage
        return Usage(input_tokens=u.prompt_tokens, output_tokens=0, total_tokens=u.total_tokens)

    def _assemble(
        self,
        plan: _Plan,
        usages: Sequence[Usage],
        span: Any,
        *,
        prompt_name: str | None = None,
        group_id: str | None = None,
    ) -> npt.NDArray[np.float32]:
        if not plan.texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        rows = [v for v in plan.vectors if v is not None]
        width = {len(v) for v in rows}
        if len(width) != 1 or len(rows) != len(plan.texts):
            raise EmbedderMismatchError(
                f"Deployment '{self._target.deployment}' returned vectors of mixed sizes {sorted(width)}.",
                suggestion="Clear the embedding cache if the deployment's model or dimensions changed.",
            )
        dim = width.pop()
        if self._dimension is None:
            self._dimension = dim
        elif dim != self._dimension:
            raise EmbedderMismatchError(
                f"Deployment '{self._target.deployment}' returned {dim}-dimensional vectors, "
                f"expected {self._dimension}.",
                suggestion="Set dimensions (or model) in the embedding settings to match the deployment.",
            )
        matrix = _normalise(np.vstack(rows))
        if self._cache is not None:
            sent = {i for batch in plan.batches for i in batch}
            for i in sorted(sent):
                key = plan.keys[i]
                if key is not None:
                    self._cache.set(
                        key,
                        base64.b64encode(matrix[i].astype("<f4").tobytes()).decode("ascii"),
                        namespace="embeddings",
                    )
        fresh = Usage(
            input_tokens=sum(u.input_tokens for u in usages),
            output_tokens=0,
            total_tokens=sum(u.total_tokens for u in usages),
        )
        span.set_attribute("gen_ai.usage.input_tokens", fresh.input_tokens)
        if self._usage is not None:
            if usages:
                self._usage.record(
                    deployment=self._target.deployment,
                    model=self._target.model_name,
                    prompt_name=prompt_name or "embeddings",
                    group_id=group_id,
                    usage=fresh,
                    cached=False,
                )
            if plan.hits:
                self._usage.record(
                    deployment=self._target.deployment,
                    model=self._target.model_name,
                    prompt_name=prompt_name or "embeddings",
                    group_id=group_id,
                    usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0, cached=True),
                    cached=True,
                )
        return matrix


class AzureEmbedder(_BaseEmbedder[openai.OpenAI]):
    """Blocking embedder; satisfies :class:`azmem.embeddings.Embedder`."""

    def embed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """float32 ``[len(texts), dimension]``, unit rows, in input order.

        ``group_id`` and ``prompt_name`` (default ``"embeddings"``) label the call in the
        usage tracker, like ``generate``'s arguments of the same names.
        """
        plan = self._plan(texts)
        perform = performer(self._provider.sync_client())
        with self._span(plan) as span:
            usages = [drive(self._batch_flow(plan, batch, span), perform) for batch in plan.batches]
            return self._assemble(plan, usages, span, prompt_name=prompt_name, group_id=group_id)

    def close(self) -> None:
        """Close what this embedder created (SDK clients, the settings' cache), never a caller's."""
        if self._owns_provider:
            self._provider.close()
        if self._owned_cache is not None:
            self._owned_cache.close()

    def __enter__(self) -> AzureEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAzureEmbedder(_BaseEmbedder[openai.AsyncOpenAI]):
    """Awaitable embedder; satisfies :class:`azmem.embeddings.AsyncEmbedder`.

    Up to ``max_concurrency`` batches are in flight at once: large imports are bound by
    round trips, and the retry policy already backs off when the service throttles.
    """

    def __init__(
        self,
        settings: AzmemSettings | AzureOpenAISettings | AzureProvider | None = None,
        *,
        client: openai.AsyncOpenAI | None = None,
        max_concurrency: int = 4,
        **options: Unpack[_EmbedderOptions],
    ) -> None:
        super().__init__(settings, client=client, **options)
        self._max_concurrency = max(1, max_concurrency)

    async def aembed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """Same contract as :meth:`AzureEmbedder.embed`."""
        plan = self._plan(texts)
        perform = performer(self._provider.async_client())
        gate = asyncio.Semaphore(self._max_concurrency)

        async def one(batch: list[int], span: Any) -> Usage:
            async with gate:
                return await drive_async(self._batch_flow(plan, batch, span), perform)

        with self._span(plan) as span:
            tasks = [asyncio.ensure_future(one(b, span)) for b in plan.batches]
            try:
                usages = list(await asyncio.gather(*tasks))
            except BaseException:
                # The first failure is the caller's answer (its type unchanged, unlike a
                # TaskGroup's ExceptionGroup); the other batches are abandoned, not leaked.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            return self._assemble(plan, usages, span, prompt_name=prompt_name, group_id=group_id)

    async def aclose(self) -> None:
        """Close what this embedder created (SDK clients, the settings' cache), never a caller's."""
        if self._owns_provider:
            await self._provider.aclose()
        if self._owned_cache is not None:
            self._owned_cache.close()

    async def __aenter__(self) -> AsyncAzureEmbedder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
