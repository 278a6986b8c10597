"""The routes and shapes of mem0's open-source REST server, so a mem0 client only changes its base URL.

mem0's ``server/main.py``: ``POST /memories``, ``GET /memories``, ``GET/PUT/DELETE
/memories/{id}``, ``GET /memories/{id}/history``, ``POST /search``, ``DELETE /memories``,
``POST /reset``, with the same bodies and the same answers (``{"results": [...]}``,
``{"message": ...}``, a bare list for history). What differs, on purpose:

* keys and scopes apply exactly as on /v1 (mem0's server has no auth);
* errors are problem details (they keep mem0's ``detail`` member);
* ``POST /configure`` (re-configure the server's LLM and stores from a request) is not
  offered: a client must not be able to repoint a shared server.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Security
from pydantic import BaseModel, ConfigDict, Field, model_validator

from azmem.memory.results import AddResult, HistoryEntry, MemoryItem, MemoryList, SearchResult
from azmem.server.deps import Svc, Who, bearer
from azmem.server.problems import COMMON, error_responses
from azmem.server.routes import delete_in_scope, find_in_scope, history_in_scope, update_in_scope
from azmem.server.schemas import ChatMessage

__all__ = ["Mem0Message", "mem0_router"]


MemoryId = Annotated[str, Path(description="The memory's id.")]


class Mem0Message(BaseModel):
    """mem0's ``{"message": ...}`` acknowledgement."""

    message: str


class MemoryCreate(BaseModel):
    """mem0's ``MemoryCreate``."""

    messages: list[ChatMessage] = Field(description="List of messages to store.")
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] | None = None
    infer: bool | None = None


class Mem0Search(BaseModel):
    """mem0's ``SearchRequest`` (plus ``limit``, which mem0's Memory.search takes)."""

    query: str
    user_id: str | None = None
    run_id: str | None = None
    agent_id: str | None = None
    filters: dict[str, Any] | None = None
    limit: int = 10


class Mem0Update(BaseModel):
    """The new text as mem0 clients send it (``text``, ``data`` or ``memory``), and optionally metadata."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = None
    data: str | None = None
    memory: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> Mem0Update:
        if self.new_text is None and self.metadata is None:
            raise ValueError("give the new text (text, data or memory) and/or metadata")
        return self

    @property
    def new_text(self) -> str | None:
        return self.text if self.text is not None else self.data if self.data is not None else self.memory


def mem0_router(*, auth: bool) -> APIRouter:
    router = APIRouter(tags=["mem0-compatible"], dependencies=[Security(bearer)] if auth else [])
    by_id = error_responses(*COMMON, 404)
    write = error_responses(*COMMON, 409)
    write_by_id = error_responses(*COMMON, 404, 409)

    @router.post("/memories", responses=write, summary="Create memories (mem0)")
    async def add(body: MemoryCreate, svc: Svc, who: Who) -> AddResult:
        who.require_write()
        return await svc.memory.add(
            [m.as_input() for m in body.messages],
            metadata=body.metadata,
            infer=body.infer,
            **who.scope(body.user_id, body.agent_id, body.run_id),
        )

    @router.get("/memories", responses=error_responses(*COMMON), summary="Get all memories (mem0)")
    async def get_all(
        svc: Svc,
        who: Who,
        user_id: str | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        limit: Annotated[int, Query(description="At most this many (1..1000).")] = 100,
    ) -> MemoryList:
        return await svc.memory.get_all(limit=limit, **who.scope(user_id, agent_id, run_id))

    @router.get("/memories/{memory_id}", responses=by_id, summary="Get a memory (mem0)")
    async def get(memory_id: MemoryId, svc: Svc, who: Who) -> MemoryItem:
        return await find_in_scope(svc, who, memory_id)

    @router.post("/search", responses=error_responses(*COMMON), summary="Search memories (mem0)")
    async def search(body: Mem0Search, svc: Svc, who: Who) -> SearchResult:
        return await svc.memory.search(
            body.query,
            filters=body.filters,
            limit=body.limit,
            **who.scope(body.user_id, body.agent_id, body.run_id),
        )

    @router.put("/memories/{memory_id}", responses=write_by_id, summary="Update a memory (mem0)")
    async def update(memory_id: MemoryId, body: Mem0Update, svc: Svc, who: Who) -> Mem0Message:
        await update_in_scope(svc, who, memory_id, body.new_text, body.metadata)
        return Mem0Message(message="Memory updated successfully!")

    @router.get("/memories/{memory_id}/history", responses=by_id, summary="Memory history (mem0)")
    async def history(memory_id: MemoryId, svc: Svc, who: Who) -> list[HistoryEntry]:
        return await history_in_scope(svc, who, memory_id)

    @router.delete("/memories/{memory_id}", responses=write_by_id, summary="Delete a memory (mem0)")
    async def delete(memory_id: MemoryId, svc: Svc, who: Who) -> Mem0Message:
        await delete_in_scope(svc, who, memory_id)
        return Mem0Message(message="Memory deleted successfully")

    @router.delete("/memories", responses=write, summary="Delete all memories of a scope (mem0)")
    async def delete_all(
        svc: Svc, who: Who, user_id: str | None = None, run_id: str | None = None, agent_id: str | None = None
    ) -> Mem0Message:
        who.require_write()
        await svc.memory.delete_all(**who.explicit_scope(user_id, agent_id, run_id))
        return Mem0Message(message="All relevant memories deleted")

    @router.post("/reset", responses=write, summary="Delete every memory of every scope (mem0)")
    async def reset(svc: Svc, who: Who) -> Mem0Message:
        """Needs a writable key bound to no scope (``--all-scopes``): it erases everyone's memories."""
        who.require_write()
        who.require_unbound("reset")
        await svc.memory.reset()
        return Mem0Message(message="All memories reset")

    return router
