"""Embedding pools: the Azure embedder, one per deployment, behind the router.

An ``embed`` call is routed as a whole: the router picks a deployment, that deployment's
own :class:`~azmem.azure.embedder.AzureEmbedder` (batching, cache, usage, spans, error
mapping) runs the call with its retries reduced to one attempt, and a throttled or failing
deployment hands the call to the next one at once. Every deployment of an embedding pool
must serve the same model and dimensions: vectors from different models are incomparable,
and the store refuses to mix them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder, estimate_tokens
from azmem.azure.retry import RetryPolicy
from azmem.azure.routing.pool import DeploymentSpec
from azmem.azure.routing.providers import DeploymentProviders
from azmem.azure.routing.router import Attempt, Call, GiveUp, Requirements, Router, Wait
from azmem.azure.settings import AzureOpenAISettings
from azmem.errors import AzmemError

__all__ = ["AsyncRoutedEmbedder", "RoutedEmbedder"]

E = TypeVar("E", AzureEmbedder, AsyncAzureEmbedder)
Vectors = npt.NDArray[np.float32]

_ONE_ATTEMPT = RetryPolicy(max_attempts=1, retry_after_ceiling=float("inf"))


def _requirements(texts: Sequence[str]) -> Requirements:
    sizes = [estimate_tokens(t) for t in texts]
    return Requirements(prompt_tokens=sum(sizes), max_output_tokens=0, context_tokens=max(sizes, default=0))


class _Base:
    def __init__(
        self,
        factory: type[E],
        router: Router,
        *,
        pool: str = "embedding",
        base: AzureOpenAISettings | None = None,
        **embedder_kwargs: Any,
    ) -> None:
        self.router = router
        self.pool = pool
        self._providers = DeploymentProviders(base)
        self._embedders: dict[str, Any] = {}
        for spec in router.deployments(pool):
            self._embedders[spec.limiter_key] = factory(
                self._providers.provider(spec), retry=_ONE_ATTEMPT, **embedder_kwargs
            )
        first = self._embedders[router.deployments(pool)[0].limiter_key]
        # The store records this name: it follows the pool's first entry, like a single deployment.
        self.name: str = first.name
        self._first = first

    @property
    def dimension(self) -> int:
        """The first known one: a deployment that has answered, or one whose model says."""
        for embedder in self._embedders.values():
            try:
                return int(embedder.dimension)
            except AzmemError:
                continue
        return int(self._first.dimension)  # raises the error that says how to set it

    def embedder(self, spec: DeploymentSpec) -> Any:
        return self._embedders[spec.limiter_key]

    def _decide(self, call: Call) -> Attempt | Wait:
        decision = call.next()
        if isinstance(decision, GiveUp):
            raise decision.error
        return decision

    @staticmethod
    def _settle(call: Call, attempt: Attempt, started: float, result: Vectors) -> Vectors:
        call.succeeded(attempt, latency=time.monotonic() - started)
        return result


class RoutedEmbedder(_Base):
    """Blocking; satisfies :class:`azmem.embeddings.Embedder`."""

    def __init__(
        self,
        router: Router,
        *,
        pool: str = "embedding",
        base: AzureOpenAISettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(AzureEmbedder, router, pool=pool, base=base, **kwargs)

    def embed(self, texts: Sequence[str]) -> Vectors:
        call = self.router.begin(self.pool, _requirements(texts))
        try:
            while True:
                decision = self._decide(call)
                if isinstance(decision, Wait):
                    self.router.clock.sleep(decision.seconds)
                    continue
                started = time.monotonic()
                try:
                    result: Vectors = self.embedder(decision.deployment).embed(texts)
                except AzmemError as error:
                    call.failed(decision, error)
                    continue
                except BaseException:
                    call.abandoned(decision)
                    raise
                return self._settle(call, decision, started, result)
        finally:
            call.close()

    def close(self) -> None:
        for embedder in self._embedders.values():
            embedder.close()
        self._providers.close()


class AsyncRoutedEmbedder(_Base):
    """Awaitable; satisfies :class:`azmem.embeddings.AsyncEmbedder`."""

    def __init__(
        self,
        router: Router,
        *,
        pool: str = "embedding",
        base: AzureOpenAISettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(AsyncAzureEmbedder, router, pool=pool, base=base, **kwargs)

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        call = self.router.begin(self.pool, _requirements(texts))
        try:
            while True:
                decision = self._decide(call)
                if isinstance(decision, Wait):
                    await self.router.clock.asleep(decision.seconds)
                    continue
                started = time.monotonic()
                run: Callable[[Sequence[str]], Awaitable[Vectors]] = self.embedder(decision.deployment).aembed
                try:
                    result = await run(texts)
                except AzmemError as error:
                    call.failed(decision, error)
                    continue
                except BaseException:
                    call.abandoned(decision)
                    raise
                return self._settle(call, decision, started, result)
        finally:
            call.close()

    async def aclose(self) -> None:
        for embedder in self._embedders.values():
            await embedder.aclose()
        await self._providers.aclose()
