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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self

from azmem.embeddings.protocol import aembed
from azmem.errors import StructuredOutputError
from azmem.graph import flows
from azmem.graph.base import GraphBase
from azmem.graph.bulk import BulkIngestError, EpisodeInput, Progress, group_batches
from azmem.graph.ingest import add_episode_flow, add_fact_flow
from azmem.graph.model import Entity, Episode, EpisodeSource, Fact
from azmem.graph.queries import SearchFilters
from azmem.graph.ranking import Reranker
from azmem.graph.results import AddEpisodeResult, DeleteEpisodeResult, EntityHit, FactHit, GraphCounts
from azmem.graph.steps import Chat, Embed, Flow, OpenStore, R, Step, StoreCall

__all__ = ["AsyncGraph"]


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
            result = await self._client().generate(
                step.messages,
                response_model=step.response_model,
                model_size=step.model_size,
                prompt_name=step.prompt.name,
                group_id=step.group_id,
            )
            if result.parsed is None:
                raise StructuredOutputError(f"{step.prompt.name}: the model returned no structured output")
            return result.parsed
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
    async def add_episode(
        self,
        content: str,
        *,
        group_id: str,
        reference_time: datetime | None = None,
        source: EpisodeSource = "message",
        name: str | None = None,
        source_description: str = "",
    ) -> AddEpisodeResult:
        """Same contract as :meth:`Graph.add_episode`."""
        async with self._lock(group_id):
            return await self._run(
                add_episode_flow(
                    self._state,
                    content,
                    group_id=group_id,
                    reference_time=reference_time,
                    source=source,
                    name=name,
                    source_description=source_description,
                )
            )

    async def add_episodes(
        self,
        episodes: Iterable[EpisodeInput | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
        max_concurrency: int = 4,
    ) -> list[AddEpisodeResult]:
        """Same contract as :meth:`Graph.add_episodes`: in order per group, groups concurrently."""
        batches = group_batches(episodes)
        total = len(batches.items)
        results: list[AddEpisodeResult | None] = [None] * total
        errors: dict[int, BaseException] = {}
        gate = asyncio.Semaphore(max(1, max_concurrency))
        done = 0

        async def run_group(indexes: list[int]) -> None:
            nonlocal done
            async with gate:
                for i in indexes:
                    try:
                        result = await self.add_episode(**batches.items[i].model_dump())
                    except Exception as exc:
                        errors[i] = exc
                        return
                    results[i] = result
                    done += 1
                    if progress is not None:
                        progress(done, total, result)

        await asyncio.gather(*(run_group(ix) for ix in batches.by_group.values()))
        if errors:
            raise BulkIngestError(results, errors) from errors[min(errors)]
        return [r for r in results if r is not None]

    async def add_fact(
        self,
        source: str,
        relation: str,
        target: str,
        fact: str | None = None,
        *,
        group_id: str,
        valid_at: datetime | None = None,
        invalid_at: datetime | None = None,
        invalidates: Sequence[str] = (),
    ) -> Fact:
        """Same contract as :meth:`Graph.add_fact`."""
        async with self._lock(group_id):
            return await self._run(
                add_fact_flow(
                    self._state,
                    source,
                    relation,
                    target,
                    fact,
                    group_id=group_id,
                    valid_at=valid_at,
                    invalid_at=invalid_at,
                    invalidates=invalidates,
                )
            )

    async def delete_episode(self, episode_id: str) -> DeleteEpisodeResult:
        return await self._run(flows.delete_episode_flow(episode_id))

    async def delete_fact(self, fact_id: str) -> None:
        await self._run(flows.delete_fact_flow(fact_id))

    async def clear(self, group_id: str) -> GraphCounts:
        async with self._lock(group_id):
            return await self._run(flows.clear_flow(group_id))

    # -- reads -----------------------------------------------------------------------
    async def search(
        self,
        query: str,
        *,
        group_ids: Sequence[str],
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        center_entity: str | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        limit: int = 10,
        reranker: Reranker = "rrf",
        mmr_lambda: float = 0.5,
    ) -> list[FactHit]:
        """Same contract as :meth:`Graph.search`."""
        return await self._run(
            flows.search_flow(
                self._state,
                query,
                group_ids=group_ids,
                as_of=as_of,
                known_at=known_at,
                center_entity=center_entity,
                filters=dict(filters) if isinstance(filters, Mapping) else filters,
                limit=limit,
                reranker=reranker,
                mmr_lambda=mmr_lambda,
            )
        )

    async def search_entities(
        self,
        query: str,
        *,
        group_ids: Sequence[str],
        known_at: datetime | None = None,
        labels: Sequence[str] | None = None,
        limit: int = 10,
    ) -> list[EntityHit]:
        return await self._run(
            flows.search_entities_flow(
                self._state, query, group_ids=group_ids, known_at=known_at, labels=labels, limit=limit
            )
        )

    async def get_episodes(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> list[Episode]:
        return await self._run(flows.get_episodes_flow(group_ids, before=before, limit=limit))

    async def get_entity(self, entity_id: str) -> Entity:
        return await self._run(flows.get_entity_flow(entity_id))

    async def get_fact(self, fact_id: str) -> Fact:
        return await self._run(flows.get_fact_flow(fact_id))

    async def find_entity(self, name: str, *, group_id: str) -> Entity:
        return await self._run(flows.find_entity_flow(name, group_id=group_id))

    async def list_facts(
        self,
        group_ids: Sequence[str],
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        include_invalid: bool = False,
        limit: int = 100,
    ) -> list[Fact]:
        return await self._run(
            flows.list_facts_flow(
                self._state,
                group_ids,
                as_of=as_of,
                known_at=known_at,
                include_invalid=include_invalid,
                limit=limit,
            )
        )

    async def timeline(self, entity_id: str, *, known_at: datetime | None = None) -> list[Fact]:
        return await self._run(flows.timeline_flow(entity_id, known_at=known_at))

    async def counts(self, group_ids: Sequence[str]) -> GraphCounts:
        return await self._run(flows.counts_flow(group_ids))

    async def export(
        self,
        group_ids: Sequence[str],
        *,
        format: Literal["json", "graphml"] = "json",
        include_embeddings: bool = False,
    ) -> str:
        return await self._run(
            flows.export_flow(group_ids, format=format, include_embeddings=include_embeddings)
        )

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
