"""What one server holds: the memory, the key checker, usage, jobs; built once, closed once.

Built in `create_app` (not in the lifespan) so that an app driven in-process without
lifespan events still works; the lifespan warms the embedder up and closes what was
built here, and only that: a memory or key ring passed in by the caller is the
caller's to close.
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
    _azure_checked: tuple[float, dict[str, Any]] | None = None

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


def _own_memory(
    settings: AzmemSettings, usage: UsageTracker | None, closers: list[Callable[[], Awaitable[None] | None]]
) -> tuple[AsyncMemory, UsageTracker]:
    """The server's own memory, with a usage tracker on its chat client for ``/v1/status``."""
    usage = usage if usage is not None else UsageTracker()
    llm = None
    if settings.chat is not None and settings.chat.deployment:
        from azmem.azure.llm import AsyncLLMClient

        llm = AsyncLLMClient(settings, usage=usage)
        closers.append(llm.aclose)
    memory = AsyncMemory(settings, llm=llm)
    closers.append(memory.aclose)
    return memory, usage


def build_services(
    memory: AsyncMemory | None,
    *,
    settings: AzmemSettings | None,
    config: ServerConfig,
    keys: KeyRing | None,
    usage: UsageTracker | None,
) -> Services:
    closers: list[Callable[[], Awaitable[None] | None]] = []
    settings = memory.settings if memory is not None else settings or AzmemSettings.load()
    if config.auth and keys is None:
        keys = key_ring_for(settings)
        closers.append(keys.close)
    if memory is None:
        try:
            memory, usage = _own_memory(settings, usage, closers)
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
    )
