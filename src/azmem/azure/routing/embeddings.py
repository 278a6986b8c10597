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
from collections.abc import Generator, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder, estimate_tokens
from azmem.azure.flow import Outcome, Sleep, drive, drive_async
from azmem.azure.retry import RetryPolicy
from azmem.azure.routing.pool import DeploymentSpec
from azmem.azure.routing.providers import DeploymentProviders
from azmem.azure.routing.router import GiveUp, Requirements, Router, Wait
from azmem.azure.settings import AzureOpenAISettings
from azmem.errors import AzmemError

__all__ = ["AsyncRoutedEmbedder", "RoutedEmbedder"]

Vectors = npt.NDArray[np.float32]

_ONE_ATTEMPT = RetryPolicy(max_attempts=1, retry_after_ceiling=float("inf"))


def _requirements(texts: Sequence[str], max_input_tokens: int) -> Requirements:
    """What one embed call needs; its largest input counts at most ``max_input_tokens``.

    An input over the limit is the embedder's to handle, by its ``long_input`` policy
    (truncate, chunk, or an error naming it once the service has refused it): the router
    must not turn it away first on an estimate that over-counts most text.
    """
    sizes = [estimate_tokens(t) for t in texts]
    largest = min(max(sizes, default=0), max_input_tokens)
    return Requirements(prompt_tokens=sum(sizes), max_output_tokens=0, context_tokens=largest)


class _Base:
    """Both routed embedders, written once: they differ only in which embedder they route to
    and how they wait and embed (see :func:`azmem.azure.flow.drive`)."""

    _factory: ClassVar[type[AzureEmbedder] | type[AsyncAzureEmbedder]]

    def __init__(
        self,
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
            self._embedders[spec.limiter_key] = self._factory(
                self._providers.provider(spec), retry=_ONE_ATTEMPT, **embedder_kwargs
            )
        first = self._embedders[router.deployments(pool)[0].limiter_key]
        self._max_input_tokens = min(int(e.max_input_tokens) for e in self._embedders.values())
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

    def _routed(self, texts: Sequence[str]) -> Generator[Any, Outcome | None, Vectors]:
        """One routed call as a sans-IO flow: it yields a :class:`Sleep` while the router says
        wait, else the embedder of the deployment to try, whose outcome it gets back."""
        call = self.router.begin(self.pool, _requirements(texts, self._max_input_tokens))
        try:
            while True:
                decision = call.next()
                if isinstance(decision, GiveUp):
                    raise decision.error
                if isinstance(decision, Wait):
                    yield Sleep(decision.seconds)
                    continue
                started = time.monotonic()
                try:
                    outcome = yield self.embedder(decision.deployment)
                except BaseException:  # the driver stopped while it embedded (cancelled, interrupted)
                    call.abandoned(decision)
                    raise
                assert outcome is not None
                if isinstance(outcome.error, AzmemError):
                    call.failed(decision, outcome.error)
                    continue
                if outcome.error is not None:
                    call.abandoned(decision)
                    raise outcome.error
                call.succeeded(decision, latency=time.monotonic() - started)
                result: Vectors = outcome.value
                return result
        finally:
            call.close()


class RoutedEmbedder(_Base):
    """Blocking; satisfies :class:`azmem.embeddings.Embedder`."""

    _factory = AzureEmbedder

    def embed(self, texts: Sequence[str]) -> Vectors:
        return drive(
            self._routed(texts), lambda embedder: embedder.embed(texts), sleep=self.router.clock.sleep
        )

    def close(self) -> None:
        for embedder in self._embedders.values():
            embedder.close()
        self._providers.close()


class AsyncRoutedEmbedder(_Base):
    """Awaitable; satisfies :class:`azmem.embeddings.AsyncEmbedder`."""

    _factory = AsyncAzureEmbedder

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        return await drive_async(
            self._routed(texts), lambda embedder: embedder.aembed(texts), sleep=self.router.clock.asleep
        )

    async def aclose(self) -> None:
        for embedder in self._embedders.values():
            await embedder.aclose()
        await self._providers.aclose()
