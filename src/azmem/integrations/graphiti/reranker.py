"""Graphiti's ``CrossEncoderClient`` as a structured relevance judgement per passage.

Graphiti's ``OpenAIRerankerClient`` scores passages from the log-probabilities of a one-token
"True"/"False" answer with a ``logit_bias``; reasoning deployments reject both, and
``Graphiti(...)`` builds it with a bare ``AsyncOpenAI()`` when no cross-encoder is passed, which
fails without ``OPENAI_API_KEY`` even for Azure users. Here each passage gets one strict
structured answer (relevant or not, and how sure) from the small deployment; the score is the
probability of "relevant", the quantity Graphiti's reranker estimates from the log-probabilities.
"""

from __future__ import annotations

from graphiti_core.cross_encoder.client import CrossEncoderClient
from graphiti_core.helpers import semaphore_gather
from pydantic import BaseModel, Field

from azmem.azure.llm import AsyncLLMClient
from azmem.azure.request import ModelSize
from azmem.azure.settings import AzmemSettings

from .llm import AzmemLLMClient

__all__ = ["AzmemReranker", "RelevanceJudgement"]

_SYSTEM = "You are an expert tasked with determining whether the passage is relevant to the query."


class RelevanceJudgement(BaseModel):
    """Whether a passage is relevant to a query, and how sure the model is."""

    relevant: bool = Field(description="True if the PASSAGE is relevant to the QUERY.")
    confidence: float = Field(description="How sure you are of that answer, from 0.0 to 1.0.")


class AzmemReranker(CrossEncoderClient):
    """Ranks passages by the model's judged probability that each is relevant to the query.

    ``llm`` shares an :class:`AzmemLLMClient`'s (or an ``AsyncLLMClient``'s) connections,
    retries and usage tracking; without it one is built from azmem's settings.
    """

    def __init__(
        self,
        llm: AzmemLLMClient | AsyncLLMClient | None = None,
        *,
        settings: AzmemSettings | None = None,
        model_size: ModelSize = "small",
        max_coroutines: int | None = None,
    ) -> None:
        self._owned = llm is None
        if isinstance(llm, AzmemLLMClient):
            self.client = llm.client
        else:
            self.client = llm if llm is not None else AsyncLLMClient(settings or AzmemSettings.load())
        self.model_size: ModelSize = model_size
        self.max_coroutines = max_coroutines

    async def rank(self, query: str, passages: list[str]) -> list[tuple[str, float]]:
        """``(passage, score)`` pairs, most relevant first; scores in [0, 1]."""
        scores = await semaphore_gather(
            *(self._score(query, passage) for passage in passages), max_coroutines=self.max_coroutines
        )
        ranked = list(zip(passages, scores, strict=True))
        ranked.sort(key=lambda pair: pair[1], reverse=True)
        return ranked

    async def _score(self, query: str, passage: str) -> float:
        user = (
            'Respond with "relevant": true if PASSAGE is relevant to QUERY and false otherwise, '
            "and with your confidence in that answer.\n"
            f"<PASSAGE>\n{passage}\n</PASSAGE>\n<QUERY>\n{query}\n</QUERY>"
        )
        result = await self.client.generate(
            [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}],
            response_model=RelevanceJudgement,
            model_size=self.model_size,
            temperature=0.0,
            prompt_name="rerank",
        )
        judgement = result.parsed
        assert judgement is not None  # a response_model call returns it or raises
        confidence = min(1.0, max(0.0, judgement.confidence))
        return confidence if judgement.relevant else 1.0 - confidence

    async def aclose(self) -> None:
        """Close the azmem client this object built (never one the caller passed)."""
        if self._owned:
            await self.client.aclose()
