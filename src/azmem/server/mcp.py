"""The MCP face: azmem's memory as tools for agent hosts, over stdio or streamable HTTP.

Tool names and arguments follow mem0's hosted MCP server (``add_memory`` takes
``text`` or ``messages``, ``user_id`` / ``agent_id`` / ``run_id``, ``metadata``,
``infer``; ``search_memories`` takes ``query``, the scope, ``limit``, ``filters``), so
prompts and agent configs written for it keep working; ``forget`` (erasure, as
``POST /v1/forget``) is azmem's own. Results are the library's own models, returned as
structured content with an output schema.

Who is calling decides what a call may reach, exactly as on REST: over HTTP the key
the gate admitted (read from the HTTP request that carried the call), over stdio the
server's own principal (``azmem mcp --user alex``). Its binding is the default scope,
and every id a model names is checked against it.

Library errors reach the model as tool errors carrying their code and suggestion,
which is what a model needs to correct its next call.

The temporal knowledge graph's tools (Graphiti's MCP names: ``add_episode``,
``search_facts``, ...) are added by `graph_tools`, under the same principal.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from azmem import __version__
from azmem.graph.erasure import Erasure
from azmem.memory.audit import set_principal
from azmem.memory.results import AddResult, MemoryEvent, MemoryItem, MemoryList, SearchResult
from azmem.server.erasure import forget_scope
from azmem.server.gate import principal_of
from azmem.server.graph_tools import GRAPH_INSTRUCTIONS, add_graph_tools
from azmem.server.health import StatusReport, build_status
from azmem.server.logs import request_id_var
from azmem.server.principal import Principal
from azmem.server.problems import tool_errors
from azmem.server.routes import delete_in_scope, find_in_scope, history_in_scope, update_in_scope
from azmem.server.runtime import Services
from azmem.server.schemas import ChatMessage, DeleteAllResult, HistoryList
from azmem.stores.models import SearchMode

__all__ = ["INSTRUCTIONS", "build_mcp"]

INSTRUCTIONS = """\
azmem is long-term memory for this conversation's user (and agent). Use it to remember \
durable facts and preferences across sessions, and to look them up before answering.
- Before answering anything personal or about earlier work, call search_memories with \
the topic in plain words.
- When the user states a lasting fact, preference, decision or plan, call add_memory \
with the conversation turn (text or messages). It extracts and de-duplicates facts \
itself: do not pre-summarise.
- user_id / agent_id / run_id default to the identity this server was configured or \
keyed for; pass them only to pick among several you were given.
- Prefer update_memory over delete+add to correct a fact; delete_all_memories erases a \
whole scope and needs it named explicitly.
- forget erases a scope for good (history and, for a user, their graph too): only when \
the user asks to be forgotten."""

User = Annotated[
    str | None,
    Field(description="Whose memories. Leave empty to use the user this server is configured for."),
]
Agent = Annotated[str | None, Field(description="The agent's own memories. Leave empty for the default.")]
Run = Annotated[str | None, Field(description="One session/run. Leave empty for the default.")]
Filters = Annotated[
    dict[str, Any] | None,
    Field(description='Metadata filter, e.g. {"topic": "food"} or {"AND": [{"n": {"gte": 2}}]}.'),
]
MemoryIdArg = Annotated[str, Field(description="The memory's id, as returned by search or list.")]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def build_mcp(services: Services) -> MCPServer:
    """The MCP server over ``services``' memory; mount it over HTTP or run it on stdio."""
    server: MCPServer = MCPServer(
        name="azmem",
        title="azmem memory",
        instructions=INSTRUCTIONS + "\n" + GRAPH_INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    memory = services.memory

    def who(ctx: Context) -> Principal:
        request = ctx.request_context.request
        if request is None:  # stdio (or in-process): the server's own principal
            return services.local
        rid = request.scope.get("state", {}).get("azmem_request_id")
        if isinstance(rid, str):
            request_id_var.set(rid)  # this task's log lines carry the HTTP request's id
        found = principal_of(request.scope)
        if found is None:
            raise ToolError("This request was not admitted by the server's gate.")
        if found.key_id is not None:  # a tool call runs in a task of its own: name the key for the audit
            set_principal(f"key:{found.name}")
        return found

    @server.tool(annotations=ToolAnnotations(title="Remember", destructive_hint=False, open_world_hint=False))
    @tool_errors
    async def add_memory(
        ctx: Context,
        text: Annotated[str | None, Field(description="One thing to remember, in plain words.")] = None,
        messages: Annotated[
            list[ChatMessage] | None, Field(description="Conversation turns to learn from (instead of text).")
        ] = None,
        user_id: User = None,
        agent_id: Agent = None,
        run_id: Run = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Stored with each memory.")] = None,
        infer: Annotated[
            bool | None,
            Field(
                description="Extract and reconcile facts (default when the server has a chat model); "
                "false stores the text verbatim."
            ),
        ] = None,
    ) -> AddResult:
        """Remember something about the user for later sessions.

        Give `text` (one statement) or `messages` (conversation turns). With inference on,
        facts are extracted and reconciled with what is stored: a contradicted fact is
        updated or deleted (its history is kept). Returns the memories added or changed.
        """
        p = who(ctx)
        p.require_write()
        if (text is None) == (messages is None):
            raise ToolError("Give either text or messages (exactly one).")
        content: str | list[dict[str, Any]] = (
            text if text is not None else [m.as_input() for m in messages or []]
        )
        return await memory.add(content, metadata=metadata, infer=infer, **p.scope(user_id, agent_id, run_id))

    @server.tool(annotations=_READ.model_copy(update={"title": "Search memories"}))
    @tool_errors
    async def search_memories(
        ctx: Context,
        query: Annotated[str, Field(description="What to look for, in plain words (a topic or a question).")],
        user_id: User = None,
        agent_id: Agent = None,
        run_id: Run = None,
        limit: Annotated[int, Field(description="At most this many results (1-1000).")] = 10,
        filters: Filters = None,
        mode: Annotated[
            SearchMode, Field(description="hybrid (default), dense (meaning) or bm25 (words).")
        ] = ("hybrid"),
    ) -> SearchResult:
        """Find the stored memories most relevant to a query, best first (with a score 0-1).

        Call this before answering questions about the user, their preferences or past work.
        """
        p = who(ctx)
        return await memory.search(
            query, filters=filters, limit=limit, mode=mode, **p.scope(user_id, agent_id, run_id)
        )

    @server.tool(annotations=_READ.model_copy(update={"title": "List memories"}))
    @tool_errors
    async def list_memories(
        ctx: Context,
        user_id: User = None,
        agent_id: Agent = None,
        run_id: Run = None,
        filters: Filters = None,
        limit: Annotated[int, Field(description="Page size (1-1000).")] = 100,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
    ) -> MemoryList:
        """List the memories of a scope, newest first, a page at a time (pass next_cursor back for more)."""
        p = who(ctx)
        return await memory.get_all(
            filters=filters, limit=limit, cursor=cursor, **p.scope(user_id, agent_id, run_id)
        )

    @server.tool(annotations=_READ.model_copy(update={"title": "Get a memory"}))
    @tool_errors
    async def get_memory(ctx: Context, memory_id: MemoryIdArg) -> MemoryItem:
        """One memory by id, with its scope, metadata and times."""
        return await find_in_scope(services, who(ctx), memory_id)

    @server.tool(
        annotations=ToolAnnotations(
            title="Update a memory", destructive_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    @tool_errors
    async def update_memory(
        ctx: Context,
        memory_id: MemoryIdArg,
        text: Annotated[str | None, Field(description="The corrected text.")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="New metadata (replaces the old).")
        ] = None,
    ) -> MemoryItem:
        """Correct a memory's text and/or metadata (the old text stays in its history)."""
        return await update_in_scope(services, who(ctx), memory_id, text, metadata)

    @server.tool(
        annotations=ToolAnnotations(
            title="Delete a memory", destructive_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    @tool_errors
    async def delete_memory(ctx: Context, memory_id: MemoryIdArg) -> MemoryEvent:
        """Forget one memory (when the user asks to, or it is wrong and cannot be corrected)."""
        return await delete_in_scope(services, who(ctx), memory_id)

    @server.tool(
        annotations=ToolAnnotations(
            title="Delete all memories of a scope",
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        )
    )
    @tool_errors
    async def delete_all_memories(
        ctx: Context,
        user_id: Annotated[str | None, Field(description="Delete this user's memories.")] = None,
        agent_id: Annotated[str | None, Field(description="Delete this agent's memories.")] = None,
        run_id: Annotated[str | None, Field(description="Delete this run's memories.")] = None,
    ) -> DeleteAllResult:
        """Erase every memory of a scope. Name the scope explicitly (no default applies); only on request."""
        p = who(ctx)
        p.require_write()
        return DeleteAllResult(deleted=await memory.delete_all(**p.explicit_scope(user_id, agent_id, run_id)))

    @server.tool(
        annotations=ToolAnnotations(
            title="Erase a scope for good", destructive_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    @tool_errors
    async def forget(
        ctx: Context,
        user_id: Annotated[str | None, Field(description="Erase this user (alone: their graph too).")] = None,
        agent_id: Annotated[str | None, Field(description="Erase this agent's data.")] = None,
        run_id: Annotated[str | None, Field(description="Erase this run's data.")] = None,
    ) -> Erasure:
        """Erase every trace of a scope: memories, history text, cached answers; a user alone, their graph.

        Irreversible, unlike delete_all_memories (which keeps history). Name the scope
        explicitly (no default applies); only when the user asks to be forgotten.
        """
        return await forget_scope(services, who(ctx), user_id, agent_id, run_id)

    @server.tool(annotations=_READ.model_copy(update={"title": "Memory history"}))
    @tool_errors
    async def memory_history(ctx: Context, memory_id: MemoryIdArg) -> HistoryList:
        """How a memory changed over time: ADD / UPDATE / DELETE events with the text before and after."""
        return HistoryList(results=await history_in_scope(services, who(ctx), memory_id))

    @server.tool(annotations=_READ.model_copy(update={"title": "Memory server status"}))
    @tool_errors
    async def get_status(ctx: Context) -> StatusReport:
        """The memory server's store, embedder, model deployments and usage; and who you are to it."""
        return await asyncio.to_thread(build_status, services, who(ctx))

    add_graph_tools(server, services, who)
    return server
