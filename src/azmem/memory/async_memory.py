"""`AsyncMemory`: the awaitable face, driving the same flows as `Memory`.

What is really asynchronous and what is not:

* LLM calls go through `AsyncLLMClient` (awaited HTTP, no threads).
* An Azure embedder is awaited natively when it offers ``aembed``.
* The local embedder is CPU-bound: it runs in a worker thread (onnxruntime releases
  the GIL, so the event loop keeps serving).
* Store calls are blocking: they run on worker threads owned by this instance, which
  keeps the event loop free. How many at once follows the store (`store_threads`):
  SQLite gets one thread (one connection behind a lock: more threads would only queue
  on the lock, and one thread keeps this instance's calls in order); PostgreSQL gets
  one per pooled connection, so concurrent requests' round trips overlap instead of
  queueing behind each other (a server on one `AsyncMemory` measured 114 req/s, store
  bound, with a single thread: docs/benchmarks.md, "Server under load"). One
  operation's own store calls still run one after the other (its flow awaits each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np
import numpy.typing as npt

from azmem.embeddings.protocol import aembed
from azmem.errors import EmbedderMismatchError, StructuredOutputError
from azmem.memory import audit
from azmem.memory import flows as core
from azmem.memory.audit import AuditedStore, AuditSession
from azmem.memory.base import EMBEDDING_POOL, ConfigInput, MemoryBase
from azmem.memory.erasure import ForgetResult, forget_result, scrub_caches
from azmem.memory.memory import Messages
from azmem.memory.metering import measure
from azmem.memory.results import (
    AddResult,
    HistoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryList,
    QueryResult,
    ReindexResult,
    SearchResult,
)
from azmem.memory.steps import Chat, Embed, Flow, OpenStore, R, ScrubCaches, Step, StoreCall
from azmem.stores.models import Scope, SearchMode
from azmem.stores.protocol import MemoryStore

if TYPE_CHECKING:
    from azmem.azure.llm import AsyncLLMClient
    from azmem.azure.settings import AzmemSettings
    from azmem.embeddings.protocol import AsyncEmbedder, Embedder
    from azmem.memory.prompts import Prompt, Prompts

__all__ = ["MAX_STORE_THREADS", "AsyncMemory", "store_threads"]

#: The most store threads one `AsyncMemory` runs, whatever the pool (threads cost memory,
#: and beyond a few dozen concurrent round trips the database is the limit).
MAX_STORE_THREADS = 32


def store_threads(store: MemoryStore) -> int:
    """How many store calls one `AsyncMemory` runs at once: 1, or a PostgreSQL store's pool size.

    Only a store that holds a pool of connections and is safe to share between threads
    gains from more: the PostgreSQL store (its ``pool_size``; no thread then waits
    for a connection, which would fail with ``store_busy`` after the pool's timeout).
    Anything else, SQLite and stores of other packages included, keeps one thread.
    """
    if not type(store).__module__.startswith("azmem.stores.postgres"):
        return 1
    size = getattr(store, "pool_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 1:
        return min(size, MAX_STORE_THREADS)
    return 1


class AsyncMemory(MemoryBase):
    """The same API as :class:`azmem.memory.Memory`, every method awaitable.

    Use ``async with AsyncMemory() as memory:`` or ``await memory.aclose()``.
    """

    def __init__(
        self,
        settings: AzmemSettings | None = None,
        *,
        config: ConfigInput = None,
        embedder: Embedder | AsyncEmbedder | None = None,
        store: MemoryStore | None = None,
        prompts: Prompts | Mapping[str, str | Prompt] | None = None,
        llm: AsyncLLMClient | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(
            settings, config=config, embedder=embedder, store=store, prompts=prompts, llm=llm, **overrides
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=store_threads(self._store), thread_name_prefix="azmem-store"
        )
        self._open_lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: ConfigInput = None, **overrides: Any) -> Self:
        """Same as :meth:`Memory.from_config`."""
        return cls(config=config, **overrides)

    def _azure_embedder(self) -> Any:
        router = self._embedding_router()
        if router is not None:
            from azmem.azure.routing.embeddings import AsyncRoutedEmbedder

            return AsyncRoutedEmbedder(
                router, pool=EMBEDDING_POOL, base=self.settings.embedding, usage=self._audit_usage()
            )
        from azmem.azure.embedder import AsyncAzureEmbedder

        return AsyncAzureEmbedder(self.settings, usage=self._audit_usage())

    # -- driver ------------------------------------------------------------------------

    async def _run(self, flow: Flow[R], scope: Scope | None = None) -> R:
        session = audit.start(self, flow, scope)
        with measure(self, flow) as op:
            try:
                result = await self._drive(flow, session)
            except Exception as exc:
                if audit.has_work(self, session, exc):
                    await self._on_store_thread(audit.finish, self, session, exc)
                raise
            if audit.has_work(self, session, None):
                await self._on_store_thread(audit.finish, self, session, None)
            return op.done(result)

    async def _drive(self, flow: Flow[R], session: AuditSession) -> R:
        self._check_open()
        try:
            step = next(flow)
            while True:
                step = flow.send(await self._perform(step, session))
        except StopIteration as stop:
            result: R = stop.value
            return result
        except EmbedderMismatchError as exc:
            core.explain_mismatch(exc)
            raise
        finally:
            flow.close()

    async def _on_store_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _perform(self, step: Step, session: AuditSession) -> Any:
        if isinstance(step, StoreCall):
            fn = step.fn
            return await self._on_store_thread(fn, cast(MemoryStore, AuditedStore(self._store, session)))
        if isinstance(step, Embed):
            with session.call("llm.embed", {"inputs": len(step.texts)}):
                return await self._embed(step.texts)
        if isinstance(step, ScrubCaches):
            removed = await self._on_store_thread(scrub_caches, self, step.scope, step.texts)
            session.note("forget.cache", {"cache_entries": removed})
            return removed
        if isinstance(step, Chat):
            with session.call("llm.chat", {"prompt": step.prompt.name}) as call:
                result = await self._client().generate(
                    step.messages,
                    response_model=step.response_model,
                    prompt_name=step.prompt.name,
                    group_id=step.group_id,
                )
                call.append(result)
            if result.parsed is None:
                raise StructuredOutputError(f"{step.prompt.name}: the model returned no structured output")
            return result.parsed
        if isinstance(step, OpenStore):
            if not self._opened:
                async with self._open_lock:  # with several store threads, concurrent first writes open once
                    if not self._opened:
                        name, dim = self.embedder.name, self.embedder.dimension
                        await self._on_store_thread(self._store.open, name, dim)
                        self._opened = True
            return None
        raise AssertionError(f"unknown step {step!r}")

    async def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await aembed(self.embedder, texts)

    def _client(self) -> Any:
        if self._llm is None:
            from azmem.azure.llm import AsyncLLMClient

            # A tracker of its own: it prices each call (what azmem.client.cost reports) and
            # hands each record to the audit trail.
            self._llm = AsyncLLMClient(self.settings, usage=self._usage_sink)
        return self._llm

    # -- API (documented on Memory) -------------------------------------------------------

    async def add(
        self,
        messages: Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool | None = None,
    ) -> AddResult:
        """See :meth:`Memory.add`."""
        return await self._run(
            core.add_flow(
                self._state,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                metadata=metadata,
                infer=infer,
            ),
            Scope(user_id, agent_id, run_id),
        )

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
        threshold: float | None = None,
        mode: SearchMode = "hybrid",
    ) -> SearchResult:
        """See :meth:`Memory.search`."""
        return await self._run(
            core.search_flow(
                query,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filters=filters,
                limit=limit,
                threshold=threshold,
                mode=mode,
            ),
            Scope(user_id, agent_id, run_id),
        )

    async def query(
        self,
        question: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> QueryResult:
        """See :meth:`Memory.query`."""
        return await self._run(
            core.query_flow(
                self._state,
                question,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filters=filters,
                limit=limit,
            ),
            Scope(user_id, agent_id, run_id),
        )

    async def get(
        self,
        memory_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryItem:
        """See :meth:`Memory.get`."""
        return await self._run(
            core.get_flow(memory_id, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    async def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryList:
        """See :meth:`Memory.get_all`."""
        return await self._run(
            core.get_all_flow(
                user_id=user_id, agent_id=agent_id, run_id=run_id, filters=filters, limit=limit, cursor=cursor
            ),
            Scope(user_id, agent_id, run_id),
        )

    async def update(
        self,
        memory_id: str,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryItem:
        """See :meth:`Memory.update`."""
        return await self._run(
            core.update_flow(memory_id, text, metadata, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    async def delete(
        self,
        memory_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> MemoryEvent:
        """See :meth:`Memory.delete`."""
        return await self._run(
            core.delete_flow(memory_id, user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    async def delete_all(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> int:
        """See :meth:`Memory.delete_all`."""
        return await self._run(
            core.delete_all_flow(user_id=user_id, agent_id=agent_id, run_id=run_id),
            Scope(user_id, agent_id, run_id),
        )

    async def forget(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        compact: bool = True,
    ) -> ForgetResult:
        """See :meth:`Memory.forget`."""
        report, cached = await self._run(
            core.forget_flow(user_id=user_id, agent_id=agent_id, run_id=run_id, compact=compact),
            Scope(user_id, agent_id, run_id),
        )
        return forget_result(report, cached)

    async def history(self, memory_id: str) -> list[HistoryEntry]:
        """See :meth:`Memory.history`."""
        return await self._run(core.history_flow(memory_id))

    async def reset(self) -> None:
        """See :meth:`Memory.reset`."""
        await self._run(core.reset_flow())

    async def reindex(self) -> ReindexResult:
        """See :meth:`Memory.reindex`."""
        result = await self._run(core.reindex_flow(self.embedder.name, lambda: self.embedder.dimension))
        self._opened = False
        return result

    # -- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the store (on its thread) and the LLM client if this instance created them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._own_store:
                await self._on_store_thread(self._store.close)
            if self._own_llm and self._llm is not None:
                await self._llm.aclose()
            aclose = getattr(self.embedder, "aclose", None)
            if self._own_embedder and aclose is not None:
                await aclose()
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
