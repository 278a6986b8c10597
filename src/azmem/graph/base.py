"""Construction shared by `Graph` and `AsyncGraph`: settings, embedder, store, LLM, types, clock.

The same defaults as `Memory`: settings from the environment and ``AZMEM_CONFIG``, the
local embedder unless an Azure embedding deployment is configured, the store at the
settings' URL (the graph's tables beside the memories), and an LLM client built on
first use, so a graph that only reads or takes triplets never touches Azure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from azmem.azure.request import ModelSize
from azmem.azure.settings import AzmemSettings
from azmem.embeddings.protocol import AsyncEmbedder, Embedder
from azmem.errors import ConfigurationError, InvalidInputError
from azmem.graph.model import utcnow
from azmem.graph.prompts import GraphPrompts
from azmem.graph.state import DEFAULT_MODEL_SIZES, GraphState, LLMStep
from azmem.graph.store import GraphStore, open_graph_store
from azmem.graph.types import TypeRegistry
from azmem.memory.base import EMBEDDING_POOL, ConfigInput, split_config
from azmem.stores.factory import backend_of, redact_url

__all__ = ["GraphBase"]


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
        from azmem.azure.auth import postgres_token_provider, wants_entra_for_postgres

        password = (
            postgres_token_provider(self.settings)
            if wants_entra_for_postgres(target, self.settings.store.auth)
            else None
        )
        return open_graph_store(
            target, read_only=read_only, pool_size=self.settings.store.pool_size, password=password
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
