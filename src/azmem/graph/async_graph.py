"""`AsyncGraph`: the awaitable face, driving the same flows as `Graph`.

LLM calls are awaited (`AsyncLLMClient`); an Azure embedder is awaited natively, the
local one runs in a worker thread; store calls run on one thread owned by this
instance (SQLite and psycopg's pool are blocking), which keeps them in order and the
event loop free. Episodes of one group are applied one at a time (an `asyncio.Lock`
per group); different groups proceed concurrently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Concatenate, ParamSpec, Self

from azmem.azure.cache import tagged
from azmem.embeddings.protocol import aembed
from azmem.graph.base import BulkRun, GraphBase, chat_kwargs, chat_tags, face_method, group_of, parsed_reply
from azmem.graph.bulk import EpisodeInput, Progress
from azmem.graph.results import AddEpisodeResult
from azmem.graph.steps import Chat, Embed, Flow, OpenStore, R, Step, StoreCall

__all__ = ["AsyncGraph"]

P = ParamSpec("P")


def _awaitable(
    build: Callable[Concatenate[GraphBase, P], Flow[R]], *, per_group: bool = False
) -> Callable[Concatenate[AsyncGraph, P], Coroutine[Any, Any, R]]:
    """`AsyncGraph`'s method for a flow of `GraphBase`: await it, under the group's lock if ``per_group``."""
    group = group_of(build) if per_group else None

    async def method(self: AsyncGraph, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if group is None:
            return await self._run(build(self, *args, **kwargs))
        async with self._lock(group(self, *args, **kwargs)):
            return await self._run(build(self, *args, **kwargs))

    return face_method(method, build)


class AsyncGraph(GraphBase):
    """The same API as :class:`azmem.graph.Graph`, every method awaitable.

    Use ``async with AsyncGraph() as graph:`` or ``await graph.aclose()``.
    """

    _async_face = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="azmem-graph-store"
        )
        self._locks: dict[str, asyncio.Lock] = {}

    # -- driver ----------------------------------------------------------------------
    async def _run(self, flow: Flow[R]) -> R:
        self._check_open()
        try:
            step = next(flow)
            while True:
                try:
                    value = await self._perform(step)
                except Exception as exc:
                    step = flow.throw(exc)
                    continue
                step = flow.send(value)
        except StopIteration as stop:
            result: R = stop.value
            return result
        finally:
            flow.close()

    async def _on_store_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, StoreCall):
            return await self._on_store_thread(step.fn, self._store)
        if isinstance(step, Embed):
            return await aembed(self.embedder, step.texts)
        if isinstance(step, Chat):
            with tagged(chat_tags(step)):
                return parsed_reply(step, await self._client().generate(step.messages, **chat_kwargs(step)))
        if isinstance(step, OpenStore):
            if not self._opened:
                await self._on_store_thread(self._bind)
            return None
        raise AssertionError(f"unknown step {step!r}")

    def _client(self) -> Any:
        if self._llm is None:
            from azmem.azure.llm import AsyncLLMClient

            self._llm = AsyncLLMClient(self.settings)
        return self._llm

    def _lock(self, group_id: object) -> asyncio.Lock:
        return self._locks.setdefault(str(group_id), asyncio.Lock())

    # -- writes ----------------------------------------------------------------------
    add_episode = _awaitable(GraphBase._add_episode_flow, per_group=True)

    async def add_episodes(
        self,
        episodes: Iterable[EpisodeInput | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
        max_concurrency: int = 4,
    ) -> list[AddEpisodeResult]:
        """Same contract as :meth:`Graph.add_episodes`: in order per group, groups concurrently."""
        bulk = BulkRun(episodes, progress)
        gate = asyncio.Semaphore(max(1, max_concurrency))

        async def run_group(indexes: list[int]) -> None:
            async with gate:
                for i in indexes:
                    try:
                        result = await self.add_episode(**bulk.episode(i))
                    except Exception as exc:
                        bulk.failed(i, exc)
                        return
                    bulk.added(i, result)

        await asyncio.gather(*(run_group(ix) for ix in bulk.groups))
        return bulk.outcome()

    add_fact = _awaitable(GraphBase._add_fact_flow, per_group=True)
    delete_episode = _awaitable(GraphBase._delete_episode_flow)
    delete_fact = _awaitable(GraphBase._delete_fact_flow)
    clear = _awaitable(GraphBase._clear_flow, per_group=True)
    forget = _awaitable(GraphBase._forget_flow, per_group=True)

    # -- reads -----------------------------------------------------------------------
    search = _awaitable(GraphBase._search_flow)
    search_entities = _awaitable(GraphBase._search_entities_flow)
    get_episodes = _awaitable(GraphBase._get_episodes_flow)
    get_entity = _awaitable(GraphBase._get_entity_flow)
    get_fact = _awaitable(GraphBase._get_fact_flow)
    find_entity = _awaitable(GraphBase._find_entity_flow)
    list_facts = _awaitable(GraphBase._list_facts_flow)
    timeline = _awaitable(GraphBase._timeline_flow)
    counts = _awaitable(GraphBase._counts_flow)
    export = _awaitable(GraphBase._export_flow)

    # -- lifecycle -------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the store and the LLM client if this AsyncGraph created them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._own_store:
            await self._on_store_thread(self._store.close)
        self._executor.shutdown(wait=False)
        if self._own_llm and self._llm is not None:
            await self._llm.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
