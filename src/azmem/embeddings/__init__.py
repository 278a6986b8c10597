"""Embedders: turn texts into unit float32 vectors.

The local MiniLM model is the zero-setup default; it is imported lazily by
:class:`LocalEmbedder` so that importing this package costs nothing.
:class:`AsyncBatchingEmbedder` lets concurrent async callers (a server's requests)
share one call of a blocking embedder.
"""

from azmem.embeddings.batching import AsyncBatchingEmbedder, BatchingStats
from azmem.embeddings.local import LOCAL_EMBEDDER_NAME, EmbeddingModelError, LocalEmbedder
from azmem.embeddings.protocol import AsyncEmbedder, Embedder, aembed

__all__ = [
    "LOCAL_EMBEDDER_NAME",
    "AsyncBatchingEmbedder",
    "AsyncEmbedder",
    "BatchingStats",
    "Embedder",
    "EmbeddingModelError",
    "LocalEmbedder",
    "aembed",
]
