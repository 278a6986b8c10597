"""The temporal knowledge graph as MCP tools, with Graphiti's MCP tool names where they fit.

``add_episode``, ``search_facts``, ``search_entities``, ``get_episodes``,
``delete_episode``, ``get_fact``, ``delete_fact``, ``add_triplet``, ``clear_graph``: so
agent prompts written for Graphiti's MCP server find the same verbs. Arguments use
azmem's names (``content``, ``group_id`` / ``group_ids``, ``limit``), the same as the
REST routes and the Python API.

Each tool runs `graph_ops` as the calling principal (the key over HTTP, the server's
own binding over stdio): group_id = user id, so ``azmem mcp --user alex`` reaches the
graph group ``alex`` and no other, and it is the default group of every call. Errors
come back as tool errors with their code and suggestion; without a chat deployment
``add_episode`` says so (``no_chat_deployment``) while every other tool works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import AwareDatetime, Field

from azmem.graph import (
    AddEpisodeResult,
    DeleteEpisodeResult,
    EpisodeSource,
    Fact,
    GraphCounts,
    SearchFilters,
)
from azmem.server import graph_ops as ops
from azmem.server.graph_schemas import EntityHitList, EpisodeList, FactDeleted, FactHitList, Reranker
from azmem.server.principal import Principal
from azmem.server.problems import tool_errors
from azmem.server.runtime import Services

__all__ = ["GRAPH_INSTRUCTIONS", "GRAPH_TOOLS", "add_graph_tools"]

GRAPH_TOOLS = (
    "add_episode",
    "search_facts",
    "search_entities",
    "get_episodes",
    "delete_episode",
    "get_fact",
    "delete_fact",
    "add_triplet",
    "clear_graph",
)

GRAPH_INSTRUCTIONS = """\
The knowledge graph tools keep who/what/when as entities and dated facts:
- add_episode with a message or text when something happens (a job change, a move, a \
new relationship); facts it contradicts are ended, never deleted.
- search_facts answers "where does X work", and with as_of "where did X work in March".
- group_id is the user's id and defaults to your user: leave it empty."""

GroupArg = Annotated[
    str | None,
    Field(description="The graph group (= the user id). Leave empty for the user you are configured for."),
]
GroupsArg = Annotated[
    list[str] | None,
    Field(description="Graph groups (= user ids). Leave empty for the user(s) you are configured for."),
]
Limit = Annotated[int, Field(description="At most this many results (1-1000).")]
When = Annotated[AwareDatetime | None, Field(description="ISO 8601 date-time with a time zone.")]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_DESTRUCTIVE = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def add_graph_tools(server: MCPServer, services: Services, who: Callable[[Context], Principal]) -> None:
    """Register the graph tools; ``who`` resolves a call's principal, as for the memory tools."""

    @server.tool(
        annotations=ToolAnnotations(title="Add an episode", destructive_hint=False, open_world_hint=False)
    )
    @tool_errors
    async def add_episode(
        ctx: Context,
        content: Annotated[str, Field(description="What happened: a message ('speaker: text') or a text.")],
        group_id: GroupArg = None,
        name: Annotated[str | None, Field(description="A short name for the episode.")] = None,
        source: Annotated[EpisodeSource, Field(description="message (default), text or json.")] = "message",
        source_description: Annotated[str, Field(description="Where it came from.")] = "",
        reference_time: Annotated[
            AwareDatetime | None,
            Field(description="When it happened (default: now); 'last week' in it resolves against this."),
        ] = None,
    ) -> AddEpisodeResult:
        """Add an episode to the knowledge graph: its entities and dated facts are extracted and merged.

        Facts it contradicts are ended (given an invalid_at), never deleted. Returns the
        entities and facts added, merged and invalidated. Needs a chat model on the server.
        """
        return await ops.add_episode(
            services,
            who(ctx),
            content,
            group_id=group_id,
            reference_time=reference_time,
            source=source,
            name=name,
            source_description=source_description,
        )

    @server.tool(annotations=_READ.model_copy(update={"title": "Search facts"}))
    @tool_errors
    async def search_facts(
        ctx: Context,
        query: Annotated[str, Field(description="What to look for, in plain words.")],
        group_ids: GroupsArg = None,
        limit: Limit = 10,
        as_of: Annotated[
            AwareDatetime | None, Field(description="Facts true in the world at this time (default: now).")
        ] = None,
        known_at: Annotated[
            AwareDatetime | None, Field(description="As the graph believed at this time (default: now).")
        ] = None,
        center_entity: Annotated[
            str | None, Field(description="An entity id (from search_entities): facts near it rank higher.")
        ] = None,
        filters: Annotated[
            SearchFilters | None,
            Field(description="Only some relations, entity labels or dates, or include_invalid for history."),
        ] = None,
        reranker: Annotated[Reranker, Field(description="rrf (default), mmr (diverse) or distance.")] = "rrf",
    ) -> FactHitList:
        """Find facts (relations between entities, with when they were true), best first.

        Use as_of for questions about the past ("where did Alex live in 2022?").
        """
        return await ops.search_facts(
            services,
            who(ctx),
            query,
            group_ids=group_ids,
            as_of=as_of,
            known_at=known_at,
            center_entity=center_entity,
            filters=filters,
            limit=limit,
            reranker=reranker,
        )

    @server.tool(annotations=_READ.model_copy(update={"title": "Search entities"}))
    @tool_errors
    async def search_entities(
        ctx: Context,
        query: Annotated[str, Field(description="A name, nickname or description.")],
        group_ids: GroupsArg = None,
        limit: Limit = 10,
        labels: Annotated[
            list[str] | None, Field(description="Only entities with one of these labels.")
        ] = None,
        known_at: When = None,
    ) -> EntityHitList:
        """Find people, places, organisations and things in the graph by name, alias or summary."""
        return await ops.search_entities(
            services, who(ctx), query, group_ids=group_ids, known_at=known_at, labels=labels, limit=limit
        )

    @server.tool(annotations=_READ.model_copy(update={"title": "Latest episodes"}))
    @tool_errors
    async def get_episodes(
        ctx: Context,
        group_ids: GroupsArg = None,
        limit: Annotated[int, Field(description="How many of the latest episodes (1-1000).")] = 10,
        before: Annotated[AwareDatetime | None, Field(description="Only episodes before this time.")] = None,
    ) -> EpisodeList:
        """The latest episodes added to the graph (by when they happened), oldest first."""
        return await ops.get_episodes(services, who(ctx), group_ids, before=before, limit=limit)

    @server.tool(annotations=_DESTRUCTIVE.model_copy(update={"title": "Delete an episode"}))
    @tool_errors
    async def delete_episode(
        ctx: Context, episode_id: Annotated[str, Field(description="The episode's id.")]
    ) -> DeleteEpisodeResult:
        """Remove an episode and what only it supported; facts it had ended become current again."""
        return await ops.delete_episode(services, who(ctx), episode_id)

    @server.tool(annotations=_READ.model_copy(update={"title": "Get a fact"}))
    @tool_errors
    async def get_fact(ctx: Context, fact_id: Annotated[str, Field(description="The fact's id.")]) -> Fact:
        """One fact by id: its entities, sentence, the four times and the episodes that stated it."""
        return await ops.get_fact(services, who(ctx), fact_id)

    @server.tool(annotations=_DESTRUCTIVE.model_copy(update={"title": "Delete a fact"}))
    @tool_errors
    async def delete_fact(
        ctx: Context, fact_id: Annotated[str, Field(description="The fact's id.")]
    ) -> FactDeleted:
        """Delete a wrong fact outright (a fact that merely stopped being true is ended by an episode)."""
        return await ops.delete_fact(services, who(ctx), fact_id)

    @server.tool(
        annotations=ToolAnnotations(title="Add a fact", destructive_hint=False, open_world_hint=False)
    )
    @tool_errors
    async def add_triplet(
        ctx: Context,
        source: Annotated[str, Field(description="The subject entity's name, e.g. 'Alex'.")],
        relation: Annotated[str, Field(description="The relation, e.g. WORKS_AT.")],
        target: Annotated[str, Field(description="The object entity's name, e.g. 'Acme'.")],
        fact: Annotated[str | None, Field(description="The fact as one sentence.")] = None,
        group_id: GroupArg = None,
        valid_at: Annotated[AwareDatetime | None, Field(description="Since when it is true.")] = None,
        invalid_at: Annotated[AwareDatetime | None, Field(description="When it stopped being true.")] = None,
        invalidates: Annotated[
            list[str] | None, Field(description="Ids of facts of the same group this one ends.")
        ] = None,
    ) -> Fact:
        """Add a known fact (subject, relation, object) directly, without the language model."""
        return await ops.add_triplet(
            services,
            who(ctx),
            source,
            relation,
            target,
            fact,
            group_id=group_id,
            valid_at=valid_at,
            invalid_at=invalid_at,
            invalidates=invalidates or (),
        )

    @server.tool(annotations=_DESTRUCTIVE.model_copy(update={"title": "Clear a graph"}))
    @tool_errors
    async def clear_graph(
        ctx: Context,
        group_id: Annotated[
            str | None, Field(description="The group (user id) whose graph to erase.")
        ] = None,
    ) -> GraphCounts:
        """Erase one group's whole graph (episodes, entities, facts). Name the group; only on request."""
        return await ops.clear_graph(services, who(ctx), group_id)
