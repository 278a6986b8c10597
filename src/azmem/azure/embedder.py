"""``AzureEmbedder`` / ``AsyncAzureEmbedder``: the :mod:`azmem.embeddings` protocol over Azure OpenAI.

The logic is pure planning (:mod:`azmem.azure.embedding_plan`), one sans-IO flow per
request and pure assembly (:mod:`azmem.azure.embedder_base`, shared by both classes); what
differs, and lives here, is how batches run: the sync class one after the other, the async
class a few concurrently. Peers sent everything in one request
(which fails past 2,048 inputs) or in fixed batches of 100 (slow), and never sent
``dimensions``; here batches are as large as the service allows, bounded by both the
input count and an estimated token budget, and ``dimensions`` is always passed through.

Vectors come back float32 and L2-normalised. Azure's vectors are unit length already
(also when ``dimensions`` shortens them), so the normalisation is a cheap guarantee of
the protocol's contract rather than a change.

An input over the model's per-input token limit follows the role's ``long_input`` policy;
that policy, the limits and the splitting live in :mod:`azmem.azure.embedding_plan` (their
public names are importable from here as before). Should the service refuse a piece cut by
the estimate, the call is planned once more with the strict one-byte-per-token bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import openai
from typing_extensions import Unpack

from azmem.azure.embedder_base import BaseEmbedder, EmbedderOptions
from azmem.azure.embedding_plan import (
    MAX_BATCH_INPUTS,
    MAX_BATCH_TOKENS,
    MAX_INPUT_TOKENS,
    LongInputPolicy,
    estimate_tokens,
    plan_batches,
    split_input,
)
from azmem.azure.flow import drive, drive_async, performer
from azmem.azure.provider import AzureProvider
from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.azure.usage import Usage
from azmem.errors import ContextLengthError

__all__ = [
    "MAX_BATCH_INPUTS",
    "MAX_BATCH_TOKENS",
    "MAX_INPUT_TOKENS",
    "AsyncAzureEmbedder",
    "AzureEmbedder",
    "LongInputPolicy",
    "estimate_tokens",
    "plan_batches",
    "split_input",
]


class AzureEmbedder(BaseEmbedder[openai.OpenAI]):
    """Blocking embedder; satisfies :class:`azmem.embeddings.Embedder`."""

    def embed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """float32 ``[len(texts), dimension]``, unit rows, in input order.

        ``group_id`` and ``prompt_name`` (default ``"embeddings"``) label the call in the
        usage tracker, like ``generate``'s arguments of the same names.
        """
        try:
            return self._embed(texts, strict=False, group_id=group_id, prompt_name=prompt_name)
        except ContextLengthError:
            if not self._retry_strictly():
                raise
        return self._embed(texts, strict=True, group_id=group_id, prompt_name=prompt_name)

    def _embed(
        self, texts: Sequence[str], *, strict: bool, group_id: str | None, prompt_name: str | None
    ) -> npt.NDArray[np.float32]:
        plan = self._plan(texts, strict=strict)
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


class AsyncAzureEmbedder(BaseEmbedder[openai.AsyncOpenAI]):
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
        **options: Unpack[EmbedderOptions],
    ) -> None:
        super().__init__(settings, client=client, **options)
        self._max_concurrency = max(1, max_concurrency)

    async def aembed(
        self, texts: Sequence[str], *, group_id: str | None = None, prompt_name: str | None = None
    ) -> npt.NDArray[np.float32]:
        """Same contract as :meth:`AzureEmbedder.embed`."""
        try:
            return await self._aembed(texts, strict=False, group_id=group_id, prompt_name=prompt_name)
        except ContextLengthError:
            if not self._retry_strictly():
                raise
        return await self._aembed(texts, strict=True, group_id=group_id, prompt_name=prompt_name)

    async def _aembed(
        self, texts: Sequence[str], *, strict: bool, group_id: str | None, prompt_name: str | None
    ) -> npt.NDArray[np.float32]:
        plan = self._plan(texts, strict=strict)
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
