"""`Graph`: the blocking face of the temporal knowledge graph.

Each method builds a flow (`azmem.graph.ingest`, `azmem.graph.flows`) and drives it
with blocking calls; `AsyncGraph` drives the same flows with awaits, so the two cannot
drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt

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

__all__ = ["Graph"]


class Graph(GraphBase):
    """A temporal knowledge graph of episodes, entities and bi-temporal facts; SQLite by default.

    Build it like `Memory`: no arguments (settings from the environment), ``settings=``,
    ``config=`` or overrides (``store_url=``); inject ``embedder=``, ``store=`` (a
    `GraphStore` or a URL) and ``llm=`` (an `LLMClient`). ``entity_types`` /
    ``relation_types`` are pydantic models whose fields become attributes;
    ``model_sizes`` picks the deployment per LLM step (``{"extract": "medium",
    "resolve": "small"}`` by default); ``clock`` is the system time (tests, replays).

    Thread-safe; episodes of one group are applied one at a time, in call order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- driver ----------------------------------------------------------------------
    def _run(self, flow: Flow[R]) -> R:
        self._check_open()
        try:
            step = next(flow)
            while True:
                try:
                    value = self._perform(step)
                except Exception as exc:  # the flow decides (a conflict is re-planned)
                    step = flow.throw(exc)
                    continue
                step = flow.send(value)
        except StopIteration as stop:
            result: R = stop.value
            return result
        finally:
            flow.close()

    def _perform(self, step: Step) -> Any:
        if isinstance(step, StoreCall):
            return step.fn(self._store)
        if isinstance(step, Embed):
            return self._embed(step.texts)
        if isinstance(step, Chat):
            result = self._client().generate(
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
            self._bind()
            return None
        raise AssertionError(f"unknown step {step!r}")

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        embed = getattr(self.embedder, "embed", None)
        if embed is None:
            raise TypeError(f"{type(self.embedder).__name__} has no blocking embed(): use AsyncGraph with it")
        vectors: npt.NDArray[np.float32] = embed(texts)
        return vectors

    def _client(self) -> Any:
        if self._llm is None:
            from azmem.azure.llm import LLMClient

            self._llm = LLMClient(self.settings)
        return self._llm

    def _lock(self, group_id: object) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(str(group_id), threading.Lock())

    # -- writes ----------------------------------------------------------------------
    def add_episode(
        self,
        content: str,
        *,
        group_id: str,
        reference_time: datetime | None = None,
        source: EpisodeSource = "message",
        name: str | None = None,
        source_description: str = "",
    ) -> AddEpisodeResult:
        """Add one episode: extract its entities and facts, resolve them against the group, apply atomically.

        At most two LLM calls whatever the number of entities (one when nothing is
        ambiguous). ``reference_time`` is when it happened (default: now); relative
        dates in the content are resolved against it. On any error the graph is left
        unchanged and the call can be repeated.
        """
        with self._lock(group_id):
            return self._run(
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

    def add_episodes(
        self,
        episodes: Iterable[EpisodeInput | Mapping[str, Any]],
        *,
        progress: Progress | None = None,
        max_concurrency: int = 4,
    ) -> list[AddEpisodeResult]:
        """Add many episodes: in order within each group, up to ``max_concurrency`` groups at once.

        Returns the results in input order. If some fail, raises `BulkIngestError`
        once every group has stopped; its ``results`` say which were added.
        """
        batches = group_batches(episodes)
        total = len(batches.items)
        results: list[AddEpisodeResult | None] = [None] * total
        errors: dict[int, BaseException] = {}
        done = [0]
        guard = threading.Lock()

        def run_group(indexes: list[int]) -> None:
            for i in indexes:
                item = batches.items[i]
                try:
                    result = self.add_episode(**item.model_dump())
                except Exception as exc:
                    errors[i] = exc
                    return
                results[i] = result
                with guard:
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], total, result)

        groups = list(batches.by_group.values())
        if len(groups) <= 1 or max_concurrency <= 1:
            for indexes in groups:
                run_group(indexes)
        else:
            with ThreadPoolExecutor(
                max_workers=min(max_concurrency, len(groups)), thread_name_prefix="azmem-graph"
            ) as pool:
                list(pool.map(run_group, groups))
        if errors:
            raise BulkIngestError(results, errors) from errors[min(errors)]
        return [r for r in results if r is not None]

    def add_fact(
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
        """Add a known triplet without the LLM (Graphiti's ``add_triplet``).

        ``source`` and ``target`` are entity names, matched by exact name or alias
        (else created). ``invalidates`` lists fact ids this one ends. An exact
        restatement of a current fact returns that fact.
        """
        with self._lock(group_id):
            return self._run(
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

    def delete_episode(self, episode_id: str) -> DeleteEpisodeResult:
        """Remove an episode, the facts and entities only it supported, and undo the endings it caused."""
        return self._run(flows.delete_episode_flow(episode_id))

    def delete_fact(self, fact_id: str) -> None:
        self._run(flows.delete_fact_flow(fact_id))

    def clear(self, group_id: str) -> GraphCounts:
        """Remove every episode, entity and fact of a group; returns how many there were."""
        with self._lock(group_id):
            return self._run(flows.clear_flow(group_id))

    # -- reads -----------------------------------------------------------------------
    def search(
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
        """Facts relevant to ``query``: BM25 + cosine + graph distance, fused by RRF (or MMR / distance).

        ``as_of``: true in the world at that time. ``known_at``: as the system
        believed at that time. Neither: facts not ended now. ``filters``: relation
        names, entity labels, date conditions, ``include_invalid`` (history).
        """
        return self._run(
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

    def search_entities(
        self,
        query: str,
        *,
        group_ids: Sequence[str],
        known_at: datetime | None = None,
        labels: Sequence[str] | None = None,
        limit: int = 10,
    ) -> list[EntityHit]:
        """Entities by name, alias and summary (BM25, prefix words) and name meaning, fused by RRF."""
        return self._run(
            flows.search_entities_flow(
                self._state, query, group_ids=group_ids, known_at=known_at, labels=labels, limit=limit
            )
        )

    def get_episodes(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> list[Episode]:
        """The ``limit`` latest episodes (by reference time, before ``before``), oldest first."""
        return self._run(flows.get_episodes_flow(group_ids, before=before, limit=limit))

    def get_entity(self, entity_id: str) -> Entity:
        return self._run(flows.get_entity_flow(entity_id))

    def get_fact(self, fact_id: str) -> Fact:
        return self._run(flows.get_fact_flow(fact_id))

    def find_entity(self, name: str, *, group_id: str) -> Entity:
        """The entity called ``name`` (or with it as an alias) in a group; not-found or ambiguous raise."""
        return self._run(flows.find_entity_flow(name, group_id=group_id))

    def list_facts(
        self,
        group_ids: Sequence[str],
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        include_invalid: bool = False,
        limit: int = 100,
    ) -> list[Fact]:
        """The facts a time view sees (as :meth:`search` would), unranked, in world-time order."""
        return self._run(
            flows.list_facts_flow(
                self._state,
                group_ids,
                as_of=as_of,
                known_at=known_at,
                include_invalid=include_invalid,
                limit=limit,
            )
        )

    def timeline(self, entity_id: str, *, known_at: datetime | None = None) -> list[Fact]:
        """Every fact about an entity, ended ones included, in world-time order (as known at ``known_at``)."""
        return self._run(flows.timeline_flow(entity_id, known_at=known_at))

    def counts(self, group_ids: Sequence[str]) -> GraphCounts:
        return self._run(flows.counts_flow(group_ids))

    def export(
        self,
        group_ids: Sequence[str],
        *,
        format: Literal["json", "graphml"] = "json",
        include_embeddings: bool = False,
    ) -> str:
        """The groups' graph as JSON (every record) or GraphML (entities, episodes, facts, mentions)."""
        return self._run(flows.export_flow(group_ids, format=format, include_embeddings=include_embeddings))

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Close the store and the LLM client if this Graph created them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._own_store:
            self._store.close()
        if self._own_llm and self._llm is not None:
            self._llm.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
