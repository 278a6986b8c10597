"""mem0's embedder provider on azmem's :class:`~azmem.azure.AzureEmbedder` (``"provider": "azmem"``).

mem0ai 2.2.1's ``AzureOpenAIEmbedding`` has the LLM's auth faults (a placeholder key is sent as a
key), batches 100 texts per request and has no retries of its own; azmem batches as large as the
service allows, retries, and maps failures onto typed errors.

Two choices keep vectors interchangeable with what mem0's own Azure embedder stored, so an
existing vector store stays searchable after the switch: newlines become spaces, as mem0 sends
them, and ``embedding_dims`` is sent as ``dimensions`` only to text-embedding-3 models (mem0 never
sent it; ada-002 rejects it). For other models it is checked against what the service returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mem0.configs.embeddings.base import BaseEmbedderConfig
from mem0.embeddings.base import EmbeddingBase

from azmem.azure.embedder import AzureEmbedder

from .config import check_config, load_settings

__all__ = ["AzmemEmbedding"]

MemoryAction = Literal["add", "search", "update"]


class AzmemEmbedding(EmbeddingBase):  # type: ignore[misc]  # mem0 ships no type information
    """mem0's embedder interface over azmem.

    Built by mem0's ``EmbedderFactory``: :func:`azmem.integrations.mem0.register` has the factory
    hand over the config dict as written (mem0's ``BaseEmbedderConfig`` would drop unknown and
    extra ``azure_kwargs``); a ``BaseEmbedderConfig`` is accepted too.
    """

    def __init__(self, config: BaseEmbedderConfig | Mapping[str, Any] | None = None) -> None:
        raw = _raw_config(config)
        check_config(raw, "embedding")
        dims = raw.get("embedding_dims")
        super().__init__(BaseEmbedderConfig(model=raw.get("model"), embedding_dims=dims))
        settings = load_settings(raw, "embedding")
        role = settings.role("embedding")
        shortenable = "text-embedding-3" in role.model_name
        explicit = role.dimensions  # azmem's own `dimensions` (the `azmem` key) always wins
        self.embedder = AzureEmbedder(settings, dimensions=explicit or (dims if shortenable else None))
        if dims and not shortenable and explicit is None:
            self.embedder.dimension = dims  # checked against what the service returns

    def embed(self, text: str, memory_action: MemoryAction | None = None) -> list[float]:
        """One text's vector; ``memory_action`` is accepted for mem0's interface (Azure has no task types)."""
        return self.embed_batch([text], memory_action or "add")[0]

    def embed_batch(self, texts: Sequence[str], memory_action: MemoryAction = "add") -> list[list[float]]:
        """One vector per text, in order, batched within the service's limits."""
        matrix = self.embedder.embed([text.replace("\n", " ") for text in texts], prompt_name="mem0")
        return [[float(x) for x in row] for row in matrix]

    def close(self) -> None:
        """Close azmem's embedder (its HTTP connections and the settings' cache)."""
        self.embedder.close()


def _raw_config(config: BaseEmbedderConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    raw: dict[str, Any] = {}
    for name in ("model", "api_key", "embedding_dims", "http_client_proxies"):
        value = getattr(config, name, None)
        if value is not None:
            raw[name] = value
    azure = getattr(config, "azure_kwargs", None)
    if azure is not None and hasattr(azure, "model_dump"):
        raw["azure_kwargs"] = {k: v for k, v in azure.model_dump().items() if v is not None}
    return raw
