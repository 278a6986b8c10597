"""azmem providers for graphiti-core (``pip install 'azmem[graphiti]'``).

Swap Graphiti's Azure clients for these and keep everything else::

    from azmem.integrations.graphiti import AzmemEmbedder, AzmemLLMClient, AzmemReranker

    llm = AzmemLLMClient()  # or AzmemLLMClient(azure_client, LLMConfig(model=..., small_model=...))
    graphiti = Graphiti(graph_driver=driver, llm_client=llm, embedder=AzmemEmbedder(),
                        cross_encoder=AzmemReranker(llm))

See docs/integrations.md for what each one fixes.
"""

from __future__ import annotations

try:
    import graphiti_core  # noqa: F401  (the peer is an optional extra)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "azmem.integrations.graphiti needs graphiti-core: pip install 'azmem[graphiti]'"
    ) from exc

from .embedder import AzmemEmbedder
from .llm import AzmemLLMClient
from .reranker import AzmemReranker, RelevanceJudgement

__all__ = ["AzmemEmbedder", "AzmemLLMClient", "AzmemReranker", "RelevanceJudgement"]
