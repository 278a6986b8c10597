"""What the flows need to know about one configured graph (owned by a `Graph` / `AsyncGraph`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from azmem.azure.request import ModelSize
from azmem.errors import ConfigurationError
from azmem.graph.model import utcnow
from azmem.graph.prompts import GraphPrompts
from azmem.graph.types import TypeRegistry

__all__ = ["DEFAULT_MODEL_SIZES", "GraphState", "LLMStep"]

LLMStep = Literal["extract", "resolve"]

DEFAULT_MODEL_SIZES: dict[LLMStep, ModelSize] = {"extract": "medium", "resolve": "small"}
"""Extraction reads free text and resolves dates: the chat deployment. Resolution picks among
a few numbered options: the small deployment suffices (the chat one when none is configured)."""


@dataclass
class GraphState:
    prompts: GraphPrompts = field(default_factory=GraphPrompts)
    types: TypeRegistry = field(default_factory=TypeRegistry)
    model_sizes: dict[LLMStep, ModelSize] = field(default_factory=lambda: dict(DEFAULT_MODEL_SIZES))
    clock: Callable[[], datetime] = utcnow
    """System time: ``created_at`` / ``expired_at`` and the default view's "now"."""
    context_episodes: int = 2
    """Previous episodes shown to extraction, so "she" and "the new job" resolve."""
    can_chat: bool = False

    def now(self) -> datetime:
        value = self.clock()
        if value.tzinfo is None:
            raise ConfigurationError("the graph's clock must return timezone-aware datetimes")
        return value

    def require_chat(self) -> None:
        if not self.can_chat:
            raise ConfigurationError(
                "add_episode needs an Azure OpenAI chat deployment to extract entities and facts, "
                "and none is configured.",
                error_code="no_chat_deployment",
                suggestion="Configure chat (AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT), or add "
                "known facts without the LLM with add_fact().",
            )
