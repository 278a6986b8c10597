"""The I/O steps a flow yields and its drivers perform, the engine state, and the engine's limits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from pydantic import BaseModel

from azmem.errors import InvalidInputError
from azmem.memory.prompts import Prompt, Prompts
from azmem.stores.models import Scope
from azmem.stores.protocol import MemoryStore
from azmem.stores.validate import MAX_MEMORY_BYTES

log = logging.getLogger("azmem.memory")

T = TypeVar("T")
R = TypeVar("R")

#: One message is stored verbatim by infer=False, so it shares the store's per-memory limit.
MAX_MESSAGE_BYTES = MAX_MEMORY_BYTES
#: All messages of one ``add`` together: bounds the extraction prompt (~128k tokens).
MAX_ADD_BYTES = 512 * 1024
MAX_LIMIT = 1000
#: Existing memories retrieved per new fact for reconciliation, and in total.
SIMILAR_PER_FACT = 5
MAX_EXISTING = 50
#: Facts kept from one extraction (a runaway model must not produce a huge reconcile call).
MAX_FACTS = 100

ROLES = frozenset({"user", "assistant", "system", "tool", "developer"})
CONVERSATION_ROLES = frozenset({"user", "assistant", "tool"})

NO_CHAT_NOTICE = (
    "No Azure OpenAI chat deployment is configured: memories are stored verbatim (infer=False). "
    "Configure a chat deployment to extract and reconcile facts with the LLM."
)
NO_CHAT_QUERY_NOTE = (
    "No chat deployment is configured, so no answer was generated: these are the retrieved memories."
)
NO_MEMORIES_NOTE = "No relevant memories were found in this scope; nothing to answer from."


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Embed:
    """Embed texts with the configured embedder; the driver sends back ``float32 [n, dim]``."""

    texts: list[str]


@dataclass(frozen=True)
class Chat:
    """One structured LLM call; the driver sends back the parsed ``response_model`` instance."""

    prompt: Prompt
    messages: list[dict[str, str]]
    response_model: type[BaseModel]
    group_id: str | None = None
    """The scope, so usage and spans can be attributed per user / agent / run."""


@dataclass(frozen=True)
class StoreCall(Generic[T]):
    """Run ``fn(store)``; the driver sends back its result.

    A closure rather than a method name so flows stay type-checked; the async driver
    runs it on the store's own worker thread.
    """

    fn: Callable[[MemoryStore], T]


@dataclass(frozen=True)
class OpenStore:
    """Bind the store to the embedder before the first vector read or write (once per instance)."""


@dataclass(frozen=True)
class ScrubCaches:
    """Remove a scope's entries (and any quoting ``texts``) from the response / embedding caches;
    the driver sends back how many went. Part of `forget`: caches live outside the store."""

    scope: Scope
    texts: tuple[str, ...]


Step: TypeAlias = Embed | Chat | StoreCall[Any] | OpenStore | ScrubCaches
Flow: TypeAlias = Generator[Step, Any, R]


@dataclass
class EngineState:
    """What the flows need to know about the configured engine; owned by one Memory."""

    prompts: Prompts = field(default_factory=Prompts)
    can_chat: bool = False
    infer_notice_given: bool = False

    def resolve_infer(self, infer: object) -> bool:
        """``infer=None`` means "if a chat deployment exists"; the fallback is announced once."""
        if infer is None:
            if not self.can_chat and not self.infer_notice_given:
                self.infer_notice_given = True
                log.warning(NO_CHAT_NOTICE)
            return self.can_chat
        if not isinstance(infer, bool):
            raise InvalidInputError(f"infer must be True, False or None, got {type(infer).__name__}")
        if infer and not self.can_chat:
            raise InvalidInputError(
                "infer=True needs an Azure OpenAI chat deployment, and none is configured.",
                error_code="no_chat_deployment",
                suggestion="Configure chat (e.g. AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT), "
                "or pass infer=False to store the messages verbatim.",
            )
        return infer
