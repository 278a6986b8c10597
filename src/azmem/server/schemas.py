"""Request bodies of the REST API, and the few response shapes the library has no type for.

Responses are the library's own results (`AddResult`, `SearchResult`, `MemoryItem`,
...). Request models describe shapes for the OpenAPI document and reject what is not
even the right type; the rules about values (scope present, limits, filter syntax,
sizes) stay in the library, so REST, MCP and Python refuse the same things the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from azmem.memory.results import HistoryEntry
from azmem.stores.models import SearchMode

__all__ = [
    "AddRequest",
    "ChatMessage",
    "DeleteAllResult",
    "ForgetRequest",
    "HistoryList",
    "QueryRequest",
    "ScopeFields",
    "SearchRequest",
    "TextPart",
    "UpdateRequest",
]

_USER = "The user the memories belong to. Defaults to the API key's user when it is bound to one."
_AGENT = "The agent the memories belong to. Defaults to the API key's agent when it is bound to one."
_RUN = "The run (session) the memories belong to. Defaults to the API key's run when it is bound to one."
_FILTERS = (
    'Metadata filter (azmem.stores.filters, mem0\'s language): {"topic": "food"}, '
    '{"n": {"gte": 2}}, {"AND": [...]}, {"OR": [...]}, {"NOT": ...}.'
)


class ScopeFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, description=_USER, examples=["alice"])
    agent_id: str | None = Field(None, description=_AGENT)
    run_id: str | None = Field(None, description=_RUN)


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ChatMessage(BaseModel):
    """A chat message as OpenAI and mem0 spell it; other keys (tool_calls, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant", "system", "tool", "developer"] = "user"
    content: str | list[TextPart]
    name: str | None = None
    timestamp: datetime | None = Field(
        None, description="When it was said (ISO 8601 or Unix seconds): relative dates resolve against it."
    )

    def as_input(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AddRequest(ScopeFields):
    """Remember a conversation (``messages``) or one text (``text``), for a scope."""

    messages: str | list[ChatMessage] | None = Field(None, description="The conversation (or one string).")
    text: str | None = Field(None, description="One text to remember (instead of messages).")
    metadata: dict[str, Any] | None = Field(None, description="Stored with every memory this adds.")
    infer: bool | None = Field(
        None,
        description="True: extract facts with the chat deployment and reconcile them with what is stored; "
        "False: store each message verbatim. Default: infer when a chat deployment is configured.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> AddRequest:
        if (self.messages is None) == (self.text is None):
            raise ValueError("give either messages or text (exactly one)")
        return self

    def as_messages(self) -> str | list[dict[str, Any]]:
        if self.text is not None:
            return self.text
        assert self.messages is not None
        return self.messages if isinstance(self.messages, str) else [m.as_input() for m in self.messages]


class SearchRequest(ScopeFields):
    query: str = Field(description="What to look for, in plain words.")
    filters: dict[str, Any] | None = Field(None, description=_FILTERS)
    limit: int = Field(10, description="At most this many results (1..1000).")
    threshold: float | None = Field(None, description="Minimum cosine similarity (-1..1).")
    mode: SearchMode = Field("hybrid", description="hybrid (meaning + keywords), dense or bm25.")


class QueryRequest(ScopeFields):
    question: str = Field(description="A question answered from the scope's memories.")
    filters: dict[str, Any] | None = Field(None, description=_FILTERS)
    limit: int = Field(10, description="Memories retrieved to answer from (1..1000).")


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="The memory's new text (re-embedded).")
    metadata: dict[str, Any] | None = Field(None, description="The memory's new metadata (replaces it).")


class ForgetRequest(BaseModel):
    """Whose data to erase: at least one id, named explicitly (no default applies)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(
        None, description="Erase this user's data; alone, also their graph group.", examples=["alice"]
    )
    agent_id: str | None = Field(None, description="Erase this agent's data (with user_id: that user's).")
    run_id: str | None = Field(None, description="Erase this run's data (narrows the scope like agent_id).")


class DeleteAllResult(BaseModel):
    deleted: int = Field(description="How many memories were deleted.")


class HistoryList(BaseModel):
    """A memory's changes, oldest first."""

    results: list[HistoryEntry] = Field(default_factory=list)
