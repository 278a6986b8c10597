"""What one server holds: the memory, the graph, the key checker, usage, jobs; built once, closed once.

Built in `create_app` (not in the lifespan) so that an app driven in-process without
lifespan events still works; the lifespan warms the embedder up and closes what was
built here, and only that: a memory, graph or key ring passed in by the caller is the
caller's to close.

The server's own memory embeds through an `AsyncBatchingEmbedder` around the local
model: concurrent requests each embed one short text, and shared ONNX batches cost far
less CPU than as many single runs (docs/benchmarks.md, "Server under load"). The graph
is opened on first use (a server whose clients never touch it never opens its tables)
and embeds with the memory's embedder, so it shares those batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from azmem.azure.settings import AzmemSettings
from azmem.azure.usage import UsageTracker
from azmem.embeddings.batching import AsyncBatchingEmbedder
from azmem.embeddings.protocol import AsyncEmbedder, Embedder
from azmem.errors import DeploymentNotFoundError
from azmem.graph import AsyncGraph
from azmem.memory import AsyncMemory
from azmem.server.config import ServerConfig
from azmem.server.imports import JobBoard
from azmem.server.keyring import KeyVerifier, RateLimiter, key_ring_for
from azmem.server.principal import Principal
from azmem.stores.keys import KeyRing

__all__ = ["Services", "build_services"]

log = logging.getLogger("azmem.server")


@dataclass
class Services:
    memory: AsyncMemory
    settings: AzmemSettings
    config: ServerConfig
    local: Principal
    """The principal of keyless requests (``--no-auth``, stdio MCP)."""
    keys: KeyVerifier | None = None
    usage: UsageTracker | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    jobs: JobBoard = field(default_factory=JobBoard)
    closers: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    embedder_ready: bool = False
    llm: Any | None = None
    """The chat client the server built (shared by its memory and graph); None without chat."""
    graph_: AsyncGraph | None = None
    _azure_checked: tuple[float, dict[str, Any]] | None = None
    _graph_lock: asyncio.Lock | None = None

    @property
    def can_extract(self) -> bool:
        """Whether a chat deployment is configured: the graph's ``add_episode`` needs one."""
        if self.graph_ is not None:
            return self.graph_.can_extract
        chat = self.settings.chat
        return self.llm is not None or (chat is not None and bool(chat.deployment))

    def require_extraction(self) -> None:
        """503 ``no_chat_deployment`` for a graph write that needs the LLM, before anything is read."""
        if not self.can_extract:
            raise DeploymentNotFoundError(
                "Adding an episode to the graph needs an Azure OpenAI chat deployment to extract its "
                "entities and facts, and this server has none configured.",
                error_code="no_chat_deployment",
                suggestion="Configure chat (AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT) and restart "
                "the server, or add known facts without the LLM (POST /v1/graph/facts, add_triplet). "
                "Graph reads and searches work without it.",
            )

    async def graph(self) -> AsyncGraph:
        """The graph over the memory's store, opened on first use (its tables beside the memories)."""
        if self.graph_ is not None:
            return self.graph_
        if self._graph_lock is None:
            self._graph_lock = asyncio.Lock()
        async with self._graph_lock:
            if self.graph_ is None:
                # Opening the store reads (and may migrate) the file: not on the event loop.
                graph = await asyncio.to_thread(
                    AsyncGraph, self.settings, embedder=self.memory.embedder, llm=self.llm
                )
                self.closers.append(graph.aclose)
                self.graph_ = graph
            return self.graph_

    async def warm_up(self) -> None:
        """Load the local embedding model now, so the first request does not pay for it."""
        load = getattr(self.memory.embedder, "load", None)
        if callable(load):
            await asyncio.to_thread(load)
        self.embedder_ready = True

    async def aclose(self) -> None:
        """Stop jobs, then close what this server opened, last opened first; idempotent."""
        await self.jobs.cancel_all()
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            try:
                result = close()
                if result is not None:
                    await result
            except Exception:
                log.exception("closing the server's resources")

    def azure_cache(self, ttl: float) -> dict[str, Any] | None:
        if self._azure_checked is not None and time.monotonic() - self._azure_checked[0] < ttl:
            return self._azure_checked[1]
        return None

    def remember_azure(self, verdict: dict[str, Any]) -> None:
        self._azure_checked = (time.monotonic(), verdict)


def _own_embedder(
    settings: AzmemSettings, config: ServerConfig, closers: list[Callable[[], Awaitable[None] | None]]
) -> Embedder | AsyncEmbedder | None:
    """The local model behind a batching wrapper; None to let the memory build its Azure embedder.

    An Azure embedder is left alone: its calls are HTTP requests, awaited without threads.
    """
    if settings.embedder == "azure":
        return None
    plan = config.embedding_plan()
    from azmem.embeddings.local import LocalEmbedder

    local = LocalEmbedder(threads=plan.threads)
    log.info("local embeddings: %s", plan.describe())
    if plan.batch_size == 0:
        return local
    batching = AsyncBatchingEmbedder(
        local, max_batch=plan.batch_size, max_wait=plan.wait, workers=plan.workers
    )
    closers.append(batching.aclose)
    return batching


def _own_memory(
    settings: AzmemSettings,
    config: ServerConfig,
    usage: UsageTracker | None,
    closers: list[Callable[[], Awaitable[None] | None]],
) -> tuple[AsyncMemory, UsageTracker, Any | None]:
    """The server's own memory, with a usage tracker on its chat client for ``/v1/status``."""
    usage = usage if usage is not None else UsageTracker()
    llm = None
    if settings.chat is not None and settings.chat.deployment:
        from azmem.azure.llm import AsyncLLMClient

        llm = AsyncLLMClient(settings, usage=usage)
        closers.append(llm.aclose)
    embedder = _own_embedder(settings, config, closers)
    memory = AsyncMemory(settings, llm=llm, embedder=embedder)
    closers.append(memory.aclose)
    return memory, usage, llm


def build_services(
    memory: AsyncMemory | None,
    *,
    settings: AzmemSettings | None,
    config: ServerConfig,
    keys: KeyRing | None,
    usage: UsageTracker | None,
    graph: AsyncGraph | None = None,
) -> Services:
    closers: list[Callable[[], Awaitable[None] | None]] = []
    llm: Any | None = None
    settings = memory.settings if memory is not None else settings or AzmemSettings.load()
    if config.auth and keys is None:
        keys = key_ring_for(settings)
        closers.append(keys.close)
    if memory is None:
        try:
            memory, usage, llm = _own_memory(settings, config, usage, closers)
        except BaseException:
            for close in closers:
                result = close()
                if asyncio.iscoroutine(result):  # an async close cannot run here: drop it unawaited
                    result.close()
            raise
    verifier = KeyVerifier(keys, ttl=config.key_cache_seconds) if config.auth and keys is not None else None
    local = Principal(
        name="local",
        user_ids=config.user_ids,
        agent_ids=config.agent_ids,
        run_ids=config.run_ids,
        read_only=config.read_only,
    )
    return Services(
        memory=memory,
        settings=memory.settings,
        config=config,
        local=local,
        keys=verifier,
        usage=usage,
        closers=closers,
        llm=llm,
        graph_=graph,
    )
