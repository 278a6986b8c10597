"""Construction shared by `Memory` and `AsyncMemory`: settings, embedder, store, prompts.

Nothing here performs network I/O: the LLM client is built on first use, so the
zero-configuration path (local embedder + SQLite) never imports or touches Azure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from azmem.azure.settings import AzmemSettings
from azmem.embeddings.protocol import AsyncEmbedder, Embedder
from azmem.errors import ConfigurationError
from azmem.memory.audit import AuditSink, audit_settings
from azmem.memory.prompts import Prompt, Prompts
from azmem.memory.steps import EngineState
from azmem.stores.factory import backend_of
from azmem.stores.protocol import MemoryStore

if TYPE_CHECKING:
    from azmem.azure.routing.router import Router

__all__ = ["EMBEDDING_POOL", "ConfigInput", "MemoryBase", "split_config"]

#: How often (seconds) a Memory applies the audit retention after its writes.
PRUNE_EVERY = 3600.0

EMBEDDING_POOL = "embedding"
"""The routing pool Memory's embeddings go through when the settings' routing config has it."""

ConfigInput = Mapping[str, Any] | str | os.PathLike[str] | None

#: mem0's config keys for its two prompts, mapped to ours.
_MEM0_PROMPT_KEYS = {"custom_fact_extraction_prompt": "extract", "custom_update_memory_prompt": "reconcile"}


def split_config(
    config: ConfigInput, overrides: Mapping[str, Any]
) -> tuple[Mapping[str, Any] | str | Path | None, dict[str, Any], dict[str, str]]:
    """Take out what belongs to the memory engine rather than to `AzmemSettings`.

    That is mem0's prompt keys (so a mem0 config dict works unchanged) and the
    ``store_path=`` shorthand; everything else goes to `AzmemSettings.load`, which
    rejects unknown keys with a did-you-mean.
    """
    prompts: dict[str, str] = {}
    cfg: Mapping[str, Any] | str | Path | None
    if isinstance(config, Mapping):
        plain = dict(config)
        for key, name in _MEM0_PROMPT_KEYS.items():
            value = plain.pop(key, None)
            if value is not None:
                prompts[name] = str(value)
        cfg = plain
    elif isinstance(config, os.PathLike):
        cfg = Path(config)
    else:
        cfg = config
    extra = dict(overrides)
    for key, name in _MEM0_PROMPT_KEYS.items():
        value = extra.pop(key, None)
        if value is not None:
            prompts[name] = str(value)
    store_path = extra.pop("store_path", None)
    if store_path is not None:
        extra["store"] = {**dict(extra.get("store") or {}), "path": Path(store_path)}
    store_url = extra.pop("store_url", None)
    if store_url is not None:
        extra["store"] = {**dict(extra.get("store") or {}), "url": str(store_url)}
    return cfg, extra, prompts


def _build_prompts(prompts: Prompts | Mapping[str, str | Prompt] | None, extra: Mapping[str, str]) -> Prompts:
    if isinstance(prompts, Prompts):
        return prompts if not extra else Prompts.from_overrides({**_as_dict(prompts), **extra})
    try:
        return Prompts.from_overrides({**dict(prompts or {}), **extra})
    except ValueError as exc:
        raise ConfigurationError(str(exc), error_code="bad_prompt_override") from None


def _as_dict(prompts: Prompts) -> dict[str, str | Prompt]:
    return {"extract": prompts.extract, "reconcile": prompts.reconcile, "answer": prompts.answer}


class MemoryBase:
    """Holds the configured parts; the faces add the drivers."""

    settings: AzmemSettings
    embedder: Embedder | AsyncEmbedder

    def __init__(
        self,
        settings: AzmemSettings | None = None,
        *,
        config: ConfigInput = None,
        embedder: Embedder | AsyncEmbedder | None = None,
        store: MemoryStore | None = None,
        prompts: Prompts | Mapping[str, str | Prompt] | None = None,
        llm: Any | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and (config is not None or overrides):
            raise ConfigurationError("pass either settings= or config=/overrides, not both")
        cfg, extra, mem0_prompts = split_config(config, overrides)
        self.settings = settings if settings is not None else AzmemSettings.load(cfg, **extra)
        self._state = EngineState(
            prompts=_build_prompts(prompts, mem0_prompts),
            can_chat=llm is not None
            or (self.settings.chat is not None and bool(self.settings.chat.deployment)),
        )
        self._llm: Any | None = llm
        self._own_llm = llm is None
        self._audit = audit_settings(self)
        # The usage tracker of the clients this Memory makes: it prices each call (what
        # azmem.client.cost reports) and hands each record to the audit trail; its embedder's
        # only hands them over (its calls were never in those figures).
        self._usage_sink = AuditSink()
        self._embed_sink = AuditSink(report=False)
        self._last_prune: float | None = None
        self._own_embedder = embedder is None
        self.embedder = embedder if embedder is not None else self._default_embedder()
        # The SQLite store is thread-safe (one connection behind a lock), so both faces
        # create it here and a bad path fails at construction, not at first use.
        self._store: MemoryStore = store if store is not None else self._new_store()
        self._own_store = store is None
        self._opened = False
        self._closed = False

    # -- parts -------------------------------------------------------------------------

    def _default_embedder(self) -> Embedder | AsyncEmbedder:
        """The local MiniLM unless an Azure embedding deployment is configured."""
        if self.settings.embedder == "azure":
            return self._azure_embedder()
        from azmem.embeddings.local import LocalEmbedder

        return LocalEmbedder()

    def _embedding_router(self) -> Router | None:
        """The settings' shared router when its config has an ``embedding`` pool."""
        from azmem.azure.routing.router import Router

        router = Router.from_settings(self.settings)
        return router if router is not None and EMBEDDING_POOL in router.models else None

    def _azure_embedder(self) -> Embedder | AsyncEmbedder:  # the async face returns the awaitable one
        router = self._embedding_router()
        if router is not None:
            from azmem.azure.routing.embeddings import RoutedEmbedder

            # The embedding role settings are the pool entries' shared base (key, auth, ...).
            return cast(
                Embedder,
                RoutedEmbedder(
                    router, pool=EMBEDDING_POOL, base=self.settings.embedding, usage=self._audit_usage()
                ),
            )
        from azmem.azure.embedder import AzureEmbedder

        # `dimension` is a read-only property there, an attribute in the protocol.
        return cast(Embedder, AzureEmbedder(self.settings, usage=self._audit_usage()))

    def _audit_usage(self) -> AuditSink | None:
        """The tracker for an Azure embedder: None when the operator left embeddings out of the audit."""
        return self._embed_sink if self._audit.embeddings else None

    def _prune_due(self) -> bool:
        """Whether to apply the audit retention now (at most once per PRUNE_EVERY per Memory)."""
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return False
        self._last_prune = now
        return True

    def _new_store(self) -> MemoryStore:
        from azmem.stores.factory import open_store

        store = self.settings.store
        url = self.settings.store_url
        if backend_of(url) == "sqlite":
            return open_store(url, read_only=store.read_only)
        return open_store(
            url, read_only=store.read_only, pool_size=store.pool_size, password=self._store_password(url)
        )

    def _store_password(self, url: str) -> Callable[[], str] | None:
        """A Microsoft Entra ID token provider for Azure Database for PostgreSQL, when asked for."""
        from azmem.azure.auth import postgres_password

        return postgres_password(self.settings, url)

    @property
    def prompts(self) -> Prompts:
        return self._state.prompts

    @property
    def can_infer(self) -> bool:
        """Whether a chat deployment is configured, i.e. whether ``add`` infers by default."""
        return self._state.can_chat

    @property
    def store_path(self) -> Path:
        """The SQLite file of the default store (ConfigurationError for a PostgreSQL store)."""
        return self.settings.store_path

    @property
    def store_url(self) -> str:
        """The store's URL, without its password."""
        from azmem.stores.factory import redact_url

        return redact_url(self.settings.store_url)

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                "This Memory is closed.", suggestion="Create a new Memory (or use it as a context manager)."
            )

    def __repr__(self) -> str:
        name = getattr(self.embedder, "name", type(self.embedder).__name__)
        return f"{type(self).__name__}(store={self.store_url!r}, embedder={name!r}, infer={self.can_infer})"
