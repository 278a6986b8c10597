"""The temporal knowledge graph's REST routes, under /v1/graph.

Thin: each handler hands its arguments to `graph_ops`, which holds the rules shared
with the MCP tools (the key's groups, group_id = user id; a writable key for writes; a
chat deployment for ``POST /v1/graph/episodes`` only; 404 for an item outside the key's
groups). Answers are the graph's own models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Security
from fastapi.responses import Response
from pydantic import AwareDatetime

from azmem.graph import AddEpisodeResult, DeleteEpisodeResult, Entity, Fact, GraphCounts
from azmem.server import graph_ops as ops
from azmem.server.deps import Svc, Who, bearer
from azmem.server.graph_schemas import (
    EntityHitList,
    EntitySearchRequest,
    EpisodeList,
    EpisodeRequest,
    FactDeleted,
    FactHitList,
    FactList,
    FactSearchRequest,
    TripletRequest,
)
from azmem.server.problems import COMMON, error_responses

__all__ = ["graph_router"]

GroupsQ = Annotated[
    list[str] | None,
    Query(
        alias="group_id",
        description="Graph group(s) to read, repeatable (group_id = user id). "
        "Default: every user the key is bound to.",
    ),
]
LimitQ = Annotated[int, Query(description="At most this many (1..1000).")]
TimeQ = Annotated[AwareDatetime | None, Query()]

_READ = error_responses(*COMMON)
_BY_ID = error_responses(*COMMON, 404)
_WRITE = error_responses(*COMMON, 409)
_WRITE_BY_ID = error_responses(*COMMON, 404, 409)


def graph_router(*, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/v1/graph", tags=["graph"], dependencies=[Security(bearer)] if auth else [])

    @router.post("/episodes", responses=_WRITE, summary="Add an episode (extracts entities and facts)")
    async def add_episode(body: EpisodeRequest, svc: Svc, who: Who) -> AddEpisodeResult:
        """At most two chat calls; returns what was added, merged and invalidated.

        Needs a chat deployment: without one the answer is 503 ``no_chat_deployment``.
        """
        return await ops.add_episode(
            svc,
            who,
            body.content,
            group_id=body.group_id,
            reference_time=body.reference_time,
            source=body.source,
            name=body.name,
            source_description=body.source_description,
        )

    @router.get("/episodes", responses=_READ, summary="The latest episodes")
    async def get_episodes(
        svc: Svc,
        who: Who,
        group_ids: GroupsQ = None,
        before: Annotated[AwareDatetime | None, Query(description="Only episodes before this time.")] = None,
        limit: LimitQ = 10,
    ) -> EpisodeList:
        """The ``limit`` latest episodes (by reference time), oldest first."""
        return await ops.get_episodes(svc, who, group_ids, before=before, limit=limit)

    @router.delete("/episodes/{episode_id}", responses=_WRITE_BY_ID, summary="Delete an episode")
    async def delete_episode(
        episode_id: Annotated[str, Path(description="The episode's id.")], svc: Svc, who: Who
    ) -> DeleteEpisodeResult:
        """Removes what only this episode supported, and restores the facts it had ended."""
        return await ops.delete_episode(svc, who, episode_id)

    @router.post("/search", responses=_BY_ID, summary="Search facts")
    async def search_facts(body: FactSearchRequest, svc: Svc, who: Who) -> FactHitList:
        """BM25 + meaning + graph distance, fused; ``as_of`` / ``known_at`` pick the time view."""
        return await ops.search_facts(
            svc,
            who,
            body.query,
            group_ids=body.group_ids,
            as_of=body.as_of,
            known_at=body.known_at,
            center_entity=body.center_entity,
            filters=body.filters,
            limit=body.limit,
            reranker=body.reranker,
        )

    @router.post("/entities/search", responses=_READ, summary="Search entities")
    async def search_entities(body: EntitySearchRequest, svc: Svc, who: Who) -> EntityHitList:
        return await ops.search_entities(
            svc,
            who,
            body.query,
            group_ids=body.group_ids,
            known_at=body.known_at,
            labels=body.labels,
            limit=body.limit,
        )

    @router.get("/entities/{entity_id}", responses=_BY_ID, summary="One entity")
    async def get_entity(
        entity_id: Annotated[str, Path(description="The entity's id.")], svc: Svc, who: Who
    ) -> Entity:
        return await ops.get_entity(svc, who, entity_id)

    @router.get("/entities/{entity_id}/timeline", responses=_BY_ID, summary="An entity's facts over time")
    async def entity_timeline(
        entity_id: Annotated[str, Path(description="The entity's id.")],
        svc: Svc,
        who: Who,
        known_at: Annotated[AwareDatetime | None, Query(description="As the graph knew it then.")] = None,
    ) -> FactList:
        """Every fact about the entity, ended ones included, in world-time order."""
        return await ops.entity_timeline(svc, who, entity_id, known_at=known_at)

    @router.post("/facts", responses=_WRITE, summary="Add a known fact (a triplet, no LLM)")
    async def add_triplet(body: TripletRequest, svc: Svc, who: Who) -> Fact:
        """Entities are matched by name or alias (else created); an exact restatement returns the fact."""
        return await ops.add_triplet(
            svc,
            who,
            body.source,
            body.relation,
            body.target,
            body.fact,
            group_id=body.group_id,
            valid_at=body.valid_at,
            invalid_at=body.invalid_at,
            invalidates=body.invalidates,
        )

    @router.get("/facts", responses=_READ, summary="List facts")
    async def list_facts(
        svc: Svc,
        who: Who,
        group_ids: GroupsQ = None,
        as_of: Annotated[AwareDatetime | None, Query(description="True in the world then.")] = None,
        known_at: Annotated[AwareDatetime | None, Query(description="Believed by the graph then.")] = None,
        include_invalid: Annotated[bool, Query(description="Ended facts too (the history).")] = False,
        limit: LimitQ = 100,
    ) -> FactList:
        """The groups' facts the time view sees, in world-time order (a listing; search ranks)."""
        return await ops.list_facts(
            svc, who, group_ids, as_of=as_of, known_at=known_at, include_invalid=include_invalid, limit=limit
        )

    @router.get("/facts/{fact_id}", responses=_BY_ID, summary="One fact")
    async def get_fact(
        fact_id: Annotated[str, Path(description="The fact's id.")], svc: Svc, who: Who
    ) -> Fact:
        return await ops.get_fact(svc, who, fact_id)

    @router.delete("/facts/{fact_id}", responses=_WRITE_BY_ID, summary="Delete a fact")
    async def delete_fact(
        fact_id: Annotated[str, Path(description="The fact's id.")], svc: Svc, who: Who
    ) -> FactDeleted:
        """Removes the fact itself (to record that it ended, add the episode that says so instead)."""
        return await ops.delete_fact(svc, who, fact_id)

    @router.delete("", responses=_WRITE, summary="Clear a group's graph")
    async def clear_graph(
        svc: Svc,
        who: Who,
        group_id: Annotated[str | None, Query(description="The group to clear, named explicitly.")] = None,
    ) -> GraphCounts:
        """Every episode, entity and fact of one group; the group must be named (no default applies)."""
        return await ops.clear_graph(svc, who, group_id)

    @router.get(
        "/export",
        summary="Export groups as JSON or GraphML",
        responses={
            **_READ,
            200: {
                "description": "The export document.",
                "content": {"application/json": {}, "application/graphml+xml": {}},
            },
        },
        response_class=Response,
    )
    async def export_graph(
        svc: Svc,
        who: Who,
        group_ids: GroupsQ = None,
        format: Annotated[Literal["json", "graphml"], Query(description="json or graphml.")] = "json",
    ) -> Response:
        text = await ops.export_graph(svc, who, group_ids, format=format)
        media = "application/json" if format == "json" else "application/graphml+xml"
        return Response(text, media_type=media)

    return router
