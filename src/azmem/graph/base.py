"""Construction shared by `Graph` and `AsyncGraph`: settings, embedder, store, LLM, types, clock.

The same defaults as `Memory`: settings from the environment and ``AZMEM_CONFIG``, the
local embedder unless an Azure embedding deployment is configured, the store at the
settings' URL (the graph's tables beside the memories), and an LLM client built on
first use, so a graph that only reads or takes triplets never touches Azure.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from azmem.azure.cache import scope_tags
from azmem.azure.request import ModelSize
from azmem.azure.settings import AzmemSettings
from azmem.embeddings.protocol import AsyncEmbedder, Embedder
from azmem.errors import ConfigurationError, InvalidInputError, StructuredOutputError
from azmem.graph import flows
from azmem.graph.bulk import BulkIngestError, EpisodeInput, Progress, group_batches
from azmem.graph.ingest import add_episode_flow, add_fact_flow
from azmem.graph.model import Entity, Episode, EpisodeSource, Fact, utcnow
from azmem.graph.prompts import GraphPrompts
from azmem.graph.queries import SearchFilters
from azmem.graph.ranking import Reranker
from azmem.graph.results import (
    AddEpisodeResult,
    DeleteEpisodeResult,
    EntityHit,
    FactHit,
    GraphCounts,
    GraphErasure,
)
from azmem.graph.state import DEFAULT_MODEL_SIZES, GraphState, LLMStep
from azmem.graph.steps import Chat, Flow
from azmem.graph.store import GraphStore, open_graph_store
from azmem.graph.types import TypeRegistry
from azmem.memory.base import EMBEDDING_POOL, ConfigInput, split_config
from azmem.stores.factory import backend_of, redact_url

__all__ = ["BulkRun", "GraphBase", "chat_kwargs", "face_method", "group_of", "parsed_reply"]

F = TypeVar("F", bound=Callable[..., Any])


def face_method(method: F, build: Callable[..., Any]) -> F:
    """Name a face's driver of ``build`` (``_search_flow`` -> ``search``); its doc and signature."""
    functools.update_wrapper(method, build)
    name = build.__name__.removeprefix("_").removesuffix("_flow")
    method.__name__ = name
    method.__qualname__ = name
    signature = inspect.signature(build)
    returns = signature.return_annotation  # a string: "Flow[X]" -> "X", what the face returns
    if isinstance(returns, str) and returns.startswith("Flow[") and returns.endswith("]"):
        method.__signature__ = signature.replace(return_annotation=returns[5:-1])  # type: ignore[attr-defined]
    return method


def group_of(build: Callable[..., Any]) -> Callable[..., str]:
    """How a face finds the ``group_id`` a call of ``build`` is about (its per-group lock's key)."""
    signature = inspect.signature(build)

    def key(*args: Any, **kwargs: Any) -> str:
        return str(signature.bind(*args, **kwargs).arguments["group_id"])

    return key


def chat_kwargs(step: Chat) -> dict[str, Any]:
    """The keyword arguments of a `Chat` step's ``generate`` call (the same for both LLM clients)."""
    return {
        "response_model": step.response_model,
        "model_size": step.model_size,
        "prompt_name": step.prompt.name,
        "group_id": step.group_id,
    }


def chat_tags(step: Chat) -> tuple[str, ...]:
    """The response cache's tags for a `Chat` step's answer: ``user_id=<group>`` (a group is
    its user's graph), so `Memory.forget(user_id=...)` / `azmem forget` scrub it too."""
    return scope_tags({"user_id": step.group_id}) if step.group_id else ()


def parsed_reply(step: Chat, result: Any) -> Any:
    """The structured output of a `Chat` step's reply; none raises `StructuredOutputError`."""
    if result.parsed is None:
        raise StructuredOutputError(f"{step.prompt.name}: the model returned no structured output")
    return result.parsed


class BulkRun:
    """The bookkeeping of one ``add_episodes`` call, the same for both faces.

    Results in input order, the failure that stopped each group, progress after each
    added episode; the faces only decide how the groups run (threads or tasks).
    """

    def __init__(
        self, episodes: Iterable[EpisodeInput | Mapping[str, Any]], progress: Progress | None
    ) -> None:
        self._batches = group_batches(episodes)
        self._total = len(self._batches.items)
        self._results: list[AddEpisodeResult | None] = [None] * self._total
        self._errors: dict[int, BaseException] = {}
        self._progress = progress
        self._done = 0
        self._guard = threading.Lock()

    @property
    def groups(self) -> list[list[int]]:
        """The indexes of each group's episodes, in input order."""
        return list(self._batches.by_group.values())

    def episode(self, index: int) -> dict[str, Any]:
        """The keyword arguments of ``add_episode`` for episode ``index``."""
        return self._batches.items[index].model_dump()

    def failed(self, index: int, error: BaseException) -> None:
        self._errors[index] = error

    def added(self, index: int, result: AddEpisodeResult) -> None:
        self._results[index] = result
        with self._guard:
            self._done += 1
            if self._progress is not None:
                self._progress(self._done, self._total, result)

    def outcome(self) -> list[AddEpisodeResult]:
        """The results in input order; if any episode failed, `BulkIngestError` (from the first)."""
        if self._errors:
            raise BulkIngestError(self._results, self._errors) from self._errors[min(self._errors)]
        return [r for r in self._results if r is not None]


class GraphBase:
    """Holds the configured parts; the faces add the drivers."""

    settings: AzmemSettings
    embedder: Embedder | AsyncEmbedder
    _async_face = False

    def __init__(
        self,
        settings: AzmemSettings | None = None,
        *,
        config: ConfigInput = None,
        embedder: Embedder | AsyncEmbedder | None = None,
        store: GraphStore | str | os.PathLike[str] | None = None,
        llm: Any | None = None,
        entity_types: Mapping[str, type[BaseModel]] | None = None,
        relation_types: Mapping[str, type[BaseModel]] | None = None,
        prompts: GraphPrompts | None = None,
        model_sizes: Mapping[LLMStep, ModelSize] | None = None,
        context_episodes: int = 2,
        clock: Callable[[], datetime] | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and (config is not None or overrides):
            raise ConfigurationError("pass either settings= or config=/overrides, not both")
        cfg, extra, _ = split_config(config, overrides)
        self.settings = settings if settings is not None else AzmemSettings.load(cfg, **extra)
        sizes = dict(DEFAULT_MODEL_SIZES)
        for step, size in (model_sizes or {}).items():
            if step not in sizes or size not in ("small", "medium"):
                raise InvalidInputError(
                    f"model_sizes takes extract/resolve -> small/medium, got {step!r}: {size!r}"
                )
            sizes[step] = size
        if (
            isinstance(context_episodes, bool)
            or not isinstance(context_episodes, int)
            or not 0 <= context_episodes <= 20
        ):
            raise InvalidInputError("context_episodes must be an integer from 0 to 20")
        self._state = GraphState(
            prompts=prompts or GraphPrompts(),
            types=TypeRegistry.build(entity_types, relation_types),
            model_sizes=sizes,
            clock=clock or utcnow,
            context_episodes=context_episodes,
            can_chat=llm is not None
            or (self.settings.chat is not None and bool(self.settings.chat.deployment)),
        )
        self._llm: Any | None = llm
        self._own_llm = llm is None
        self._own_embedder = embedder is None
        self.embedder = embedder if embedder is not None else self._default_embedder()
        self._own_store = store is None or not isinstance(store, GraphStore)
        self._store: GraphStore = store if isinstance(store, GraphStore) else self._new_store(store)
        self._opened = False
        self._closed = False

    def _default_embedder(self) -> Embedder | AsyncEmbedder:
        if self.settings.embedder != "azure":
            from azmem.embeddings.local import LocalEmbedder

            return LocalEmbedder()
        from azmem.azure.routing.router import Router

        router = Router.from_settings(self.settings)
        if router is not None and EMBEDDING_POOL in router.models:
            from azmem.azure.routing import embeddings as routed

            cls: Any = routed.AsyncRoutedEmbedder if self._async_face else routed.RoutedEmbedder
            made: Embedder | AsyncEmbedder = cls(router, pool=EMBEDDING_POOL, base=self.settings.embedding)
            return made
        from azmem.azure import embedder as azure

        direct: Any = azure.AsyncAzureEmbedder if self._async_face else azure.AzureEmbedder
        built: Embedder | AsyncEmbedder = direct(self.settings)
        return built

    def _new_store(self, url: str | os.PathLike[str] | None) -> GraphStore:
        target = os.fspath(url) if url is not None else self.settings.store_url
        read_only = self.settings.store.read_only
        if backend_of(target) == "sqlite":
            return open_graph_store(target, read_only=read_only)
        from azmem.azure.auth import postgres_password

        return open_graph_store(
            target,
            read_only=read_only,
            pool_size=self.settings.store.pool_size,
            password=postgres_password(self.settings, target),
        )

    @property
    def store(self) -> GraphStore:
        return self._store

    @property
    def store_url(self) -> str:
        return redact_url(self._store.url)

    @property
    def can_extract(self) -> bool:
        """Whether a chat deployment is configured, i.e. whether ``add_episode`` can work."""
        return self._state.can_chat

    def _bind(self) -> None:
        if not self._opened:
            self._store.open(self.embedder.name, self.embedder.dimension)
            self._opened = True

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                f"This {type(self).__name__} is closed.",
                suggestion="Create a new one (or use it as a context manager).",
            )

    def __repr__(self) -> str:
        name = getattr(self.embedder, "name", type(self.embedder).__name__)
        return (
            f"{type(self).__name__}(store={self.store_url!r}, embedder={name!r}, extract={self.can_extract})"
        )

    # -- flows: one per public method, with its contract; `Graph` and `AsyncGraph` drive them
    def _add_episode_flow(
        self,
        content: str,
        *,
        group_id: str,
        reference_time: datetime | None = None,
        source: EpisodeSource = "message",
        name: str | None = None,
        source_description: str = "",
    ) -> Flow[AddEpisodeResult]:
        """Add one episode: extract its entities and facts, resolve them against the group, apply atomically.

        At most two LLM calls whatever the number of entities (one when nothing is
        ambiguous). ``reference_time`` is when it happened (default: now); relative
        dates in the content are resolved against it. On any error the graph is left
        unchanged and the call can be repeated.
        """
        return add_episode_flow(
            self._state,
            content,
            group_id=group_id,
            reference_time=reference_time,
            source=source,
            name=name,
            source_description=source_description,
        )

    def _add_fact_flow(
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
    ) -> Flow[Fact]:
        """Add a known triplet without the LLM (Graphiti's ``add_triplet``).

        ``source`` and ``target`` are entity names, matched by exact name or alias
        (else created). ``invalidates`` lists fact ids this one ends. An exact
        restatement of a current fact returns that fact.
        """
        return add_fact_flow(
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

    def _delete_episode_flow(self, episode_id: str) -> Flow[DeleteEpisodeResult]:
        """Remove an episode, the facts and entities only it supported, and undo the endings it caused."""
        return flows.delete_episode_flow(episode_id)

    def _delete_fact_flow(self, fact_id: str) -> Flow[None]:
        return flows.delete_fact_flow(fact_id)

    def _clear_flow(self, group_id: str) -> Flow[GraphCounts]:
        """Remove every episode, entity and fact of a group; returns how many there were."""
        return flows.clear_flow(group_id)

    def _forget_flow(self, group_id: str, *, compact: bool = True) -> Flow[GraphErasure]:
        """Erase a group for good, e.g. on a GDPR erasure request for the user it belongs to
        (``group_id`` = user id, as the server binds keys to groups): like `clear`, and the
        group's word-index entries and version row go too; ``compact`` rewrites the store's
        freed space (SQLite: checkpoint + VACUUM) so the erased bytes are gone from the file.
        `azmem forget --user U` calls it for group ``U``; `Memory.forget` does not reach the
        graph (the memory layer sits below it): call both."""
        return flows.forget_flow(group_id, compact=compact)

    def _search_flow(
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
    ) -> Flow[list[FactHit]]:
        """Facts relevant to ``query``: BM25 + cosine + graph distance, fused by RRF (or MMR / distance).

        ``as_of``: true in the world at that time. ``known_at``: as the system
        believed at that time. Neither: facts not ended now. ``filters``: relation
        names, entity labels, date conditions, ``include_invalid`` (history).
        """
        return flows.search_flow(
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

    def _search_entities_flow(
        self,
        query: str,
        *,
        group_ids: Sequence[str],
        known_at: datetime | None = None,
        labels: Sequence[str] | None = None,
        limit: int = 10,
    ) -> Flow[list[EntityHit]]:
        """Entities by name, alias and summary (BM25, prefix words) and name meaning, fused by RRF."""
        return flows.search_entities_flow(
            self._state, query, group_ids=group_ids, known_at=known_at, labels=labels, limit=limit
        )

    def _get_episodes_flow(
        self, group_ids: Sequence[str], *, before: datetime | None = None, limit: int = 10
    ) -> Flow[list[Episode]]:
        """The ``limit`` latest episodes (by reference time, before ``before``), oldest first."""
        return flows.get_episodes_flow(group_ids, before=before, limit=limit)

    def _get_entity_flow(self, entity_id: str) -> Flow[Entity]:
        return flows.get_entity_flow(entity_id)

    def _get_fact_flow(self, fact_id: str) -> Flow[Fact]:
        return flows.get_fact_flow(fact_id)

    def _find_entity_flow(self, name: str, *, group_id: str) -> Flow[Entity]:
        """The entity called ``name`` (or with it as an alias) in a group; not-found or ambiguous raise."""
        return flows.find_entity_flow(name, group_id=group_id)

    def _list_facts_flow(
        self,
        group_ids: Sequence[str],
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        include_invalid: bool = False,
        limit: int = 100,
    ) -> Flow[list[Fact]]:
        """The facts a time view sees (as :meth:`search` would), unranked, in world-time order."""
        return flows.list_facts_flow(
            self._state,
            group_ids,
            as_of=as_of,
            known_at=known_at,
            include_invalid=include_invalid,
            limit=limit,
        )

    def _timeline_flow(self, entity_id: str, *, known_at: datetime | None = None) -> Flow[list[Fact]]:
        """Every fact about an entity, ended ones included, in world-time order (as known at ``known_at``)."""
        return flows.timeline_flow(entity_id, known_at=known_at)

    def _counts_flow(self, group_ids: Sequence[str]) -> Flow[GraphCounts]:
        return flows.counts_flow(group_ids)

    def _export_flow(
        self,
        group_ids: Sequence[str],
        *,
        format: Literal["json", "graphml"] = "json",
        include_embeddings: bool = False,
    ) -> Flow[str]:
        """The groups' graph as JSON (every record) or GraphML (entities, episodes, facts, mentions)."""
        return flows.export_flow(group_ids, format=format, include_embeddings=include_embeddings)
