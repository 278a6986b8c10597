"""The REST API under /v1: memories, search, query, erasure, import jobs.

Each handler is the same three steps: check the principal (write? which scope?), call
one `AsyncMemory` method, return its result. Calls by memory id look the memory up
in the principal's scope first, then act in the memory's own scope, so no call can
touch a memory outside the key's binding: the ``*_in_scope`` helpers hold that rule,
for the mem0-compatible routes and the MCP tools too.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import JSONResponse

from azmem.graph.erasure import Erasure
from azmem.memory.imports import DEFAULT_CHUNK_MESSAGES
from azmem.memory.results import (
    AddResult,
    HistoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryList,
    QueryResult,
    SearchResult,
)
from azmem.server.deps import Svc, Who, bearer, json_query
from azmem.server.erasure import forget_scope
from azmem.server.imports import ImportReport, Job, parse_jsonl, run_import
from azmem.server.principal import Principal, ScopeArgs
from azmem.server.problems import COMMON, error_responses
from azmem.server.runtime import Services
from azmem.server.schemas import (
    AddRequest,
    DeleteAllResult,
    ForgetRequest,
    HistoryList,
    QueryRequest,
    SearchRequest,
    UpdateRequest,
)

__all__ = [
    "delete_in_scope",
    "find_in_scope",
    "history_in_scope",
    "item_scope",
    "update_in_scope",
    "v1_router",
]

UserQ = Annotated[str | None, Query(description="User id (defaults to the key's, when it is bound to one).")]
AgentQ = Annotated[
    str | None, Query(description="Agent id (defaults to the key's, when it is bound to one).")
]
RunQ = Annotated[str | None, Query(description="Run id (defaults to the key's, when it is bound to one).")]
MemoryId = Annotated[str, Path(description="The memory's id.")]

_BY_ID = error_responses(*COMMON, 404)
_WRITE = error_responses(*COMMON, 409)
_WRITE_BY_ID = error_responses(*COMMON, 404, 409)
_READ = error_responses(*COMMON)


def item_scope(item: MemoryItem) -> ScopeArgs:
    """A memory's own scope, to act on it exactly where it is."""
    out = ScopeArgs()
    if item.user_id is not None:
        out["user_id"] = item.user_id
    if item.agent_id is not None:
        out["agent_id"] = item.agent_id
    if item.run_id is not None:
        out["run_id"] = item.run_id
    return out


async def find_in_scope(
    svc: Services,
    who: Principal,
    memory_id: str,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> MemoryItem:
    """The memory, when it is in the requested scope and the principal's binding (else 403 / 404)."""
    item = await svc.memory.get(memory_id, **who.scope(user_id, agent_id, run_id, required=False))
    return who.check_item(item)


async def update_in_scope(
    svc: Services,
    who: Principal,
    memory_id: str,
    text: str | None,
    metadata: dict[str, Any] | None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> MemoryItem:
    """Change a memory `find_in_scope` finds, in its own scope; needs a writable principal."""
    who.require_write()
    item = await find_in_scope(svc, who, memory_id, user_id, agent_id, run_id)
    return await svc.memory.update(memory_id, text, metadata, **item_scope(item))


async def delete_in_scope(
    svc: Services,
    who: Principal,
    memory_id: str,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> MemoryEvent:
    """Delete a memory `find_in_scope` finds, in its own scope; needs a writable principal."""
    who.require_write()
    item = await find_in_scope(svc, who, memory_id, user_id, agent_id, run_id)
    return await svc.memory.delete(memory_id, **item_scope(item))


async def history_in_scope(
    svc: Services,
    who: Principal,
    memory_id: str,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> list[HistoryEntry]:
    """A memory's history: of a memory `find_in_scope` finds, or of any id for an unbound principal.

    An unbound principal naming no scope also sees the history of deleted memories.
    """
    if not who.unbound or any(v is not None for v in (user_id, agent_id, run_id)):
        await find_in_scope(svc, who, memory_id, user_id, agent_id, run_id)
    return await svc.memory.history(memory_id)


def v1_router(*, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Security(bearer)] if auth else [])

    @router.post("/memories", tags=["memories"], responses=_WRITE, summary="Remember messages or a text")
    async def add_memories(body: AddRequest, svc: Svc, who: Who) -> AddResult:
        """Extract facts (``infer``) or store messages verbatim, for the scope; returns the changes made."""
        who.require_write()
        scope = who.scope(body.user_id, body.agent_id, body.run_id)
        return await svc.memory.add(body.as_messages(), metadata=body.metadata, infer=body.infer, **scope)

    @router.get("/memories", tags=["memories"], responses=_READ, summary="List a scope's memories")
    async def list_memories(
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
        filters: Annotated[str | None, Query(description="Metadata filter, a JSON object.")] = None,
        limit: Annotated[int, Query(description="Page size (1..1000).")] = 100,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    ) -> MemoryList:
        """Newest first, one page at a time: pass ``next_cursor`` back for the next page."""
        return await svc.memory.get_all(
            filters=json_query(filters, "filters"),
            limit=limit,
            cursor=cursor,
            **who.scope(user_id, agent_id, run_id),
        )

    @router.get("/memories/{memory_id}", tags=["memories"], responses=_BY_ID, summary="Get one memory")
    async def get_memory(
        memory_id: MemoryId,
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
    ) -> MemoryItem:
        return await find_in_scope(svc, who, memory_id, user_id, agent_id, run_id)

    @router.patch(
        "/memories/{memory_id}", tags=["memories"], responses=_WRITE_BY_ID, summary="Change a memory"
    )
    async def update_memory(
        memory_id: MemoryId,
        body: UpdateRequest,
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
    ) -> MemoryItem:
        """New text (re-embedded) and/or new metadata; history keeps the old text."""
        return await update_in_scope(svc, who, memory_id, body.text, body.metadata, user_id, agent_id, run_id)

    @router.delete(
        "/memories/{memory_id}", tags=["memories"], responses=_WRITE_BY_ID, summary="Delete a memory"
    )
    async def delete_memory(
        memory_id: MemoryId,
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
    ) -> MemoryEvent:
        return await delete_in_scope(svc, who, memory_id, user_id, agent_id, run_id)

    @router.delete("/memories", tags=["memories"], responses=_WRITE, summary="Delete every memory of a scope")
    async def delete_all_memories(
        svc: Svc, who: Who, user_id: UserQ = None, agent_id: AgentQ = None, run_id: RunQ = None
    ) -> DeleteAllResult:
        """The scope must be named explicitly (no default applies): whose memories go?"""
        who.require_write()
        return DeleteAllResult(
            deleted=await svc.memory.delete_all(**who.explicit_scope(user_id, agent_id, run_id))
        )

    @router.post("/forget", tags=["memories"], responses=_WRITE, summary="Erase a scope's data for good")
    async def forget(body: ForgetRequest, svc: Svc, who: Who) -> Erasure:
        """What ``azmem forget`` does: memories, history text, cached answers, kept audit content.

        A user alone also loses their graph group (group_id = user id). Unlike
        ``DELETE /v1/memories`` nothing is kept, and the store is compacted so no byte of
        the text remains. The audit trail records the erasure (who, when, how many), never
        the text. The scope must be named and inside the key's binding; read-only keys get 403.
        """
        return await forget_scope(svc, who, body.user_id, body.agent_id, body.run_id)

    @router.get(
        "/memories/{memory_id}/history", tags=["memories"], responses=_BY_ID, summary="A memory's changes"
    )
    async def memory_history(
        memory_id: MemoryId,
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
    ) -> HistoryList:
        """ADD / UPDATE / DELETE events, oldest first, with the text before and after.

        A key bound to a scope sees the history of the memories it can read; an unbound
        key also that of deleted memories.
        """
        return HistoryList(results=await history_in_scope(svc, who, memory_id, user_id, agent_id, run_id))

    @router.post("/search", tags=["search"], responses=_READ, summary="Search a scope's memories")
    async def search(body: SearchRequest, svc: Svc, who: Who) -> SearchResult:
        """Best first; hybrid ranking fuses meaning (vectors) and keywords (BM25)."""
        return await svc.memory.search(
            body.query,
            filters=body.filters,
            limit=body.limit,
            threshold=body.threshold,
            mode=body.mode,
            **who.scope(body.user_id, body.agent_id, body.run_id),
        )

    @router.post("/query", tags=["search"], responses=_WRITE, summary="Answer a question from memories")
    async def query(body: QueryRequest, svc: Svc, who: Who) -> QueryResult:
        """An answer citing the memories it used (needs a chat deployment; otherwise ``answer`` is null)."""
        return await svc.memory.query(
            body.question,
            filters=body.filters,
            limit=body.limit,
            **who.scope(body.user_id, body.agent_id, body.run_id),
        )

    @router.post(
        "/import",
        tags=["import"],
        summary="Import conversations (JSONL)",
        responses={
            **_WRITE,
            200: {"model": ImportReport, "description": "Imported in the request."},
            202: {"model": Job, "description": "Large upload: importing as a job (see Location)."},
        },
        response_model=ImportReport,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                "description": "One JSON object per line: a conversation or a message (as `azmem import`).",
            }
        },
    )
    async def import_jsonl(
        request: Request,
        svc: Svc,
        who: Who,
        user_id: UserQ = None,
        agent_id: AgentQ = None,
        run_id: RunQ = None,
        infer: Annotated[bool | None, Query(description="As for POST /v1/memories.")] = None,
        batch_size: Annotated[
            int,
            Query(
                ge=1,
                le=1000,
                description="Messages per add (one transaction, one LLM round), as `azmem import "
                "--batch-size`; keep it the same when re-posting an inferred import.",
            ),
        ] = DEFAULT_CHUNK_MESSAGES,
    ) -> JSONResponse | ImportReport:
        """Everything is checked before the first write; large uploads run as a job.

        Safe to re-post: messages already imported (by this route or `azmem import`) are
        skipped and counted in ``skipped``, so only what is missing is added.
        """
        who.require_write()
        scope = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
        # Up to 64 MiB of JSON to parse and check: in a thread, so other requests keep being served.
        conversations = await asyncio.to_thread(parse_jsonl, await request.body(), who, scope)
        if len(conversations) <= svc.config.inline_import_conversations:
            return await run_import(svc.memory, conversations, infer=infer, batch_size=batch_size)
        job = svc.jobs.start(svc.memory, conversations, infer=infer, owner=who, batch_size=batch_size)
        return JSONResponse(
            job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
        )

    @router.get("/jobs/{job_id}", tags=["import"], responses=_BY_ID, summary="An import job's progress")
    async def get_job(job_id: Annotated[str, Path(description="The job's id.")], svc: Svc, who: Who) -> Job:
        return svc.jobs.get(job_id, who)

    return router
