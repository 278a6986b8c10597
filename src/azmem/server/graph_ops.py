"""The graph operations both faces serve: check the principal, open the graph, make one call.

REST (`graph_routes`) and MCP (`graph_tools`) call these, so a key meets the same rules
through either. Each operation, in order:

1. checks what needs no data: a write needs a writable key; the group(s) named must
   be the key's (`Principal.graph_group` / `graph_groups`: group_id = user id);
2. for ``add_episode`` only, that a chat deployment exists (503 ``no_chat_deployment``
   otherwise; reads, searches and triplets need none);
3. for a call by id, reads the episode, entity or fact and answers 404 when it lies
   outside the key's groups, exactly as for an id that does not exist;
4. makes the one `AsyncGraph` call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from azmem.graph import (
    AddEpisodeResult,
    DeleteEpisodeResult,
    Entity,
    EpisodeSource,
    Fact,
    GraphCounts,
    GraphItemNotFoundError,
    SearchFilters,
)
from azmem.server.graph_schemas import (
    EntityHitList,
    EpisodeList,
    FactDeleted,
    FactHitList,
    FactList,
    Reranker,
)
from azmem.server.principal import Principal
from azmem.server.runtime import Services

__all__ = [
    "add_episode",
    "add_triplet",
    "clear_graph",
    "delete_episode",
    "delete_fact",
    "entity_timeline",
    "export_graph",
    "get_entity",
    "get_episodes",
    "get_fact",
    "list_facts",
    "search_entities",
    "search_facts",
]


async def add_episode(
    svc: Services,
    who: Principal,
    content: str,
    *,
    group_id: str | None = None,
    reference_time: datetime | None = None,
    source: EpisodeSource = "message",
    name: str | None = None,
    source_description: str = "",
) -> AddEpisodeResult:
    who.require_write()
    group = who.graph_group(group_id)
    svc.require_extraction()
    graph = await svc.graph()
    return await graph.add_episode(
        content,
        group_id=group,
        reference_time=reference_time,
        source=source,
        name=name,
        source_description=source_description,
    )


async def get_episodes(
    svc: Services,
    who: Principal,
    group_ids: Sequence[str] | None = None,
    *,
    before: datetime | None = None,
    limit: int = 10,
) -> EpisodeList:
    groups = who.graph_groups(group_ids)
    graph = await svc.graph()
    return EpisodeList(results=await graph.get_episodes(groups, before=before, limit=limit))


async def delete_episode(svc: Services, who: Principal, episode_id: str) -> DeleteEpisodeResult:
    who.require_write()
    who.graph_binding()
    graph = await svc.graph()
    episode = await asyncio.to_thread(graph.store.get_episode, episode_id)  # the stores are thread-safe
    if episode is None:
        raise GraphItemNotFoundError(f"no episode {episode_id!r}")
    who.check_graph_item(episode.group_id, "episode", episode_id)
    return await graph.delete_episode(episode_id)


async def search_facts(
    svc: Services,
    who: Principal,
    query: str,
    *,
    group_ids: Sequence[str] | None = None,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    center_entity: str | None = None,
    filters: SearchFilters | None = None,
    limit: int = 10,
    reranker: Reranker = "rrf",
) -> FactHitList:
    groups = who.graph_groups(group_ids)
    graph = await svc.graph()
    if center_entity is not None:
        center = await graph.get_entity(center_entity)
        if center.group_id not in groups:  # a walk must not start from another group's entity
            raise GraphItemNotFoundError(f"no entity {center_entity!r} in the groups searched")
    hits = await graph.search(
        query,
        group_ids=groups,
        as_of=as_of,
        known_at=known_at,
        center_entity=center_entity,
        filters=filters,
        limit=limit,
        reranker=reranker,
    )
    return FactHitList(results=hits)


async def search_entities(
    svc: Services,
    who: Principal,
    query: str,
    *,
    group_ids: Sequence[str] | None = None,
    known_at: datetime | None = None,
    labels: Sequence[str] | None = None,
    limit: int = 10,
) -> EntityHitList:
    groups = who.graph_groups(group_ids)
    graph = await svc.graph()
    hits = await graph.search_entities(query, group_ids=groups, known_at=known_at, labels=labels, limit=limit)
    return EntityHitList(results=hits)


async def get_entity(svc: Services, who: Principal, entity_id: str) -> Entity:
    who.graph_binding()
    entity = await (await svc.graph()).get_entity(entity_id)
    who.check_graph_item(entity.group_id, "entity", entity_id)
    return entity


async def entity_timeline(
    svc: Services, who: Principal, entity_id: str, *, known_at: datetime | None = None
) -> FactList:
    await get_entity(svc, who, entity_id)
    return FactList(results=await (await svc.graph()).timeline(entity_id, known_at=known_at))


async def list_facts(
    svc: Services,
    who: Principal,
    group_ids: Sequence[str] | None = None,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    include_invalid: bool = False,
    limit: int = 100,
) -> FactList:
    groups = who.graph_groups(group_ids)
    graph = await svc.graph()
    facts = await graph.list_facts(
        groups, as_of=as_of, known_at=known_at, include_invalid=include_invalid, limit=limit
    )
    return FactList(results=facts)


async def get_fact(svc: Services, who: Principal, fact_id: str) -> Fact:
    who.graph_binding()
    fact = await (await svc.graph()).get_fact(fact_id)
    who.check_graph_item(fact.group_id, "fact", fact_id)
    return fact


async def delete_fact(svc: Services, who: Principal, fact_id: str) -> FactDeleted:
    who.require_write()
    await get_fact(svc, who, fact_id)
    await (await svc.graph()).delete_fact(fact_id)
    return FactDeleted(id=fact_id)


async def add_triplet(
    svc: Services,
    who: Principal,
    source: str,
    relation: str,
    target: str,
    fact: str | None = None,
    *,
    group_id: str | None = None,
    valid_at: datetime | None = None,
    invalid_at: datetime | None = None,
    invalidates: Sequence[str] = (),
) -> Fact:
    who.require_write()
    group = who.graph_group(group_id)
    graph = await svc.graph()
    return await graph.add_fact(
        source,
        relation,
        target,
        fact,
        group_id=group,
        valid_at=valid_at,
        invalid_at=invalid_at,
        invalidates=invalidates,
    )


async def clear_graph(svc: Services, who: Principal, group_id: str | None) -> GraphCounts:
    who.require_write()
    group = who.explicit_graph_group(group_id)
    return await (await svc.graph()).clear(group)


async def export_graph(
    svc: Services,
    who: Principal,
    group_ids: Sequence[str] | None = None,
    *,
    format: Literal["json", "graphml"] = "json",
) -> str:
    groups = who.graph_groups(group_ids)
    return await (await svc.graph()).export(groups, format=format)
