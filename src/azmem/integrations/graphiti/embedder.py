"""Graphiti's ``EmbedderClient`` on azmem's :class:`~azmem.azure.AsyncAzureEmbedder`.

Graphiti's ``AzureOpenAIEmbedderClient`` sends a whole list in one request (which fails past
2,048 inputs), never sends ``dimensions`` and has no retry policy of its own. azmem's
embedder batches within the service's limits, sends ``dimensions`` when asked, retries,
and maps failures onto azmem's typed errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import openai
from graphiti_core.embedder.client import EmbedderClient

from azmem.azure.embedder import AsyncAzureEmbedder
from azmem.azure.settings import AzmemSettings
from azmem.errors import ConfigurationError, InvalidInputError

from ._clients import settings_for_client

__all__ = ["AzmemEmbedder"]


class AzmemEmbedder(EmbedderClient):
    """A drop-in for ``AzureOpenAIEmbedderClient``: same two first arguments, azmem underneath.

    * ``AzmemEmbedder(azure_client, model="text-embedding-3-small")``: Graphiti's arguments;
      ``model`` is the embedding deployment's name, sent through the caller's SDK client.
    * ``AzmemEmbedder()`` / ``AzmemEmbedder(settings=...)``: azmem's embedding settings
      (``AZURE_OPENAI_EMBEDDING_DEPLOYMENT``, ``EMBEDDING_AZURE_*``, ``AZMEM_*``, config file).
    * ``AzmemEmbedder(embedder=AsyncAzureEmbedder(...))``: one the caller built; never closed here.

    ``dimensions`` shortens text-embedding-3 vectors on the service side (renormalised), e.g.
    ``dimensions=1024`` to match a graph built with Graphiti's ``OpenAIEmbedder``, whose
    ``EMBEDDING_DIM`` default truncates to 1024.
    """

    def __init__(
        self,
        azure_client: openai.AsyncOpenAI | None = None,
        model: str | None = None,
        *,
        embedder: AsyncAzureEmbedder | None = None,
        settings: AzmemSettings | None = None,
        dimensions: int | None = None,
    ) -> None:
        if sum(x is not None for x in (azure_client, embedder, settings)) > 1:
            raise InvalidInputError(
                "pass one of azure_client=, embedder= or settings=",
                suggestion="azure_client wraps your SDK client; embedder is an azmem AsyncAzureEmbedder; "
                "settings builds one from azmem's settings.",
            )
        self._owned = embedder is None
        if embedder is not None:
            self.embedder = embedder
        elif azure_client is not None:
            if not model and not getattr(azure_client, "_azure_deployment", None):
                raise ConfigurationError(
                    "AzmemEmbedder(azure_client, model) needs the embedding deployment's name.",
                    error_code="missing_deployment",
                    suggestion="Pass model='<embedding deployment>'.",
                )
            role = settings_for_client(azure_client, role="embedding", deployment=model)
            self.embedder = AsyncAzureEmbedder(role, client=azure_client, dimensions=dimensions)
        else:
            if settings is None:
                settings = AzmemSettings.load(embedding=model) if model else AzmemSettings.load()
            self.embedder = AsyncAzureEmbedder(settings, dimensions=dimensions)

    async def create(
        self, input_data: str | list[str] | Iterable[int] | Iterable[Iterable[int]]
    ) -> list[float]:
        """The vector of the first input (Graphiti passes ``[text]``)."""
        texts = _texts(input_data)
        if not texts:
            raise InvalidInputError("create() needs at least one text to embed")
        vectors = await self.embedder.aembed(texts[:1])
        return [float(x) for x in vectors[0]]

    async def create_batch(self, input_data_list: list[str]) -> list[list[float]]:
        """One vector per text, in order; batched within the service's limits."""
        vectors = await self.embedder.aembed(list(input_data_list))
        return [[float(x) for x in row] for row in vectors]

    async def aclose(self) -> None:
        """Close the azmem embedder this object built (never one the caller passed)."""
        if self._owned:
            await self.embedder.aclose()


def _texts(input_data: Any) -> list[str]:
    if isinstance(input_data, str):
        return [input_data]
    items = list(input_data)
    if all(isinstance(item, str) for item in items):
        return items
    raise InvalidInputError(
        "AzmemEmbedder embeds text; token-id inputs are not supported",
        suggestion="Pass the text itself (a str or a list of str).",
    )
