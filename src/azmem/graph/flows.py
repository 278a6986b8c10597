"""Reading the graph: search over facts and entities, records, timelines, deletion, export; sans-IO flows.

Fact search runs three retrievers in the store (BM25, cosine, graph distance from the
origin entities) under one time view, then fuses here. The origins are the
``center_entity`` when given, else the entities the query names (an exact name or
alias among its one- to three-word phrases: "where does Lexi work" starts from Lexi).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np

from azmem.errors import InvalidInputError
from azmem.graph import inputs
from azmem.graph.errors import GraphItemNotFoundError
from azmem.graph.export import to_graphml, to_json
from azmem.graph.model import Entity, Episode, Fact, world_order
from azmem.graph.names import normalize, tokens
from azmem.graph.queries import EntityQuery, FactQuery, SearchFilters, TimeView, parse_search_filters
from azmem.graph.ranking import Reranker, mmr, rrf
from azmem.graph.results import DeleteEpisodeResult, EntityHit, FactHit, GraphCounts, GraphErasure
from azmem.graph.state import GraphState
from azmem.graph.steps import Embed, Flow, OpenStore, StoreCall
from azmem.graph.store.protocol import GraphStore
from azmem.stores.terms import query_terms

__all__ = [
    "clear_flow",
    "counts_flow",
    "delete_episode_flow",
    "delete_fact_flow",
    "export_flow",
    "find_entity_flow",
    "forget_flow",
    "get_entity_flow",
    "get_episodes_flow",
    "get_fact_flow",
    "list_facts_flow",
    "search_entities_flow",
    "search_flow",
    "timeline_flow",
]

#: Candidates each retriever contributes before fusion.
CANDIDATES = 50
#: Hops the graph walk takes from its origins.
WALK_DEPTH = 2
MAX_NGRAM = 3


def _view(state: GraphState, as_of: object, known_at: object, history: bool = False) -> TimeView:
    return TimeView(
        now=state.now(),
        as_of=inputs.check_time(as_of, "as_of"),
        known_at=inputs.check_time(known_at, "known_at"),
        history=history,
    )


def _named_entities(
    store: GraphStore, group_ids: list[str], query: str, known_at: datetime | None
) -> list[str]:
    words = tokens(query)
    phrases = sorted(
        {" ".join(words[i : i + n]) for n in range(1, MAX_NGRAM + 1) for i in range(len(words) - n + 1)}
    )
    found: dict[str, None] = {}
    for group_id in group_ids:
        for entities in store.entities_by_names(group_id, phrases).values():
            for e in entities:
                if known_at is None or e.created_at <= known_at:
                    found.setdefault(e.id, None)
    return list(found)


def search_flow(
    state: GraphState,
    query: object,
    *,
    group_ids: object,
    as_of: object = None,
    known_at: object = None,
    center_entity: object = None,
    filters: SearchFilters | dict[str, Any] | None = None,
    limit: object = 10,
    reranker: Reranker = "rrf",
    mmr_lambda: float = 0.5,
) -> Flow[list[FactHit]]:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("query must be a non-empty string")
    groups = inputs.check_group_ids(group_ids)
    n = inputs.check_limit(limit)
    view = _view(state, as_of, known_at)
    parsed = parse_search_filters(filters)
    if reranker not in ("rrf", "mmr", "distance"):
        raise InvalidInputError(f"reranker must be 'rrf', 'mmr' or 'distance', got {reranker!r}")
    center = None if center_entity is None else inputs.check_id(center_entity, "center_entity")
    if reranker == "distance" and center is None:
        raise InvalidInputError("reranker='distance' ranks by hops from center_entity: give one")
    vector = np.asarray((yield Embed([query])), dtype=np.float32)[0]
    yield OpenStore()

    def retrieve(s: GraphStore) -> Any:
        origins = [center] if center else _named_entities(s, groups, query, view.known_at)
        return s.search_facts(
            FactQuery(
                groups, query_terms(query), vector, view, parsed, origins, WALK_DEPTH, max(CANDIDATES, n)
            )
        )

    found = yield StoreCall(retrieve)
    bm25_rank = {key: r for r, key in enumerate(found.bm25, 1)}
    dense_rank = {key: r for r, (key, _) in enumerate(found.dense, 1)}
    graph_rank = {key: r for r, (key, _) in enumerate(found.graph, 1)}
    similarity = dict(found.dense)
    distance = dict(found.graph)
    fused = rrf([list(bm25_rank), list(dense_rank), list(graph_rank)])
    if reranker == "mmr":
        vectors = yield StoreCall(lambda s: s.fact_vectors(list(fused)))
        order = mmr(vector, vectors, limit=n, lambda_=mmr_lambda)
    elif reranker == "distance":
        far = WALK_DEPTH + 1
        keys = sorted(fused, key=lambda k: (distance.get(k, far), -fused[k], k))[:n]
        order = [(k, fused[k]) for k in keys]
    else:
        order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    loaded: list[Fact] = yield StoreCall(lambda s: s.get_facts([k for k, _ in order]))
    facts = {f.id: f for f in loaded}
    return [
        FactHit(
            fact=facts[k],
            score=score,
            bm25_rank=bm25_rank.get(k),
            dense_rank=dense_rank.get(k),
            graph_rank=graph_rank.get(k),
            similarity=similarity.get(k),
            distance=distance.get(k),
        )
        for k, score in order
        if k in facts
    ]


def search_entities_flow(
    state: GraphState,
    query: object,
    *,
    group_ids: object,
    known_at: object = None,
    labels: Sequence[str] | None = None,
    limit: object = 10,
) -> Flow[list[EntityHit]]:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("query must be a non-empty string")
    groups = inputs.check_group_ids(group_ids)
    n = inputs.check_limit(limit)
    when = inputs.check_time(known_at, "known_at")
    vector = np.asarray((yield Embed([query])), dtype=np.float32)[0]
    yield OpenStore()
    q = EntityQuery(
        groups, query_terms(query), vector, when, list(labels) if labels else None, True, max(CANDIDATES, n)
    )
    found = yield StoreCall(lambda s: s.search_entities(q))
    entities = {e.id: e for e in found.bm25} | {e.id: e for e, _ in found.dense}
    similarity = {e.id: s for e, s in found.dense}
    fused = rrf([[e.id for e in found.bm25], [e.id for e, _ in found.dense]])
    order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [EntityHit(entity=entities[k], score=s, similarity=similarity.get(k)) for k, s in order]


def get_episodes_flow(group_ids: object, *, before: object = None, limit: object = 10) -> Flow[list[Episode]]:
    groups = inputs.check_group_ids(group_ids)
    n = inputs.check_limit(limit)
    when = inputs.check_time(before, "before")
    result: list[Episode] = yield StoreCall(lambda s: s.get_episodes(groups, before=when, limit=n))
    return result


def get_entity_flow(entity_id: object) -> Flow[Entity]:
    key = inputs.check_id(entity_id, "entity_id")
    found: list[Entity] = yield StoreCall(lambda s: s.get_entities([key]))
    if not found:
        raise GraphItemNotFoundError(f"no entity {key!r}")
    return found[0]


def find_entity_flow(name: object, *, group_id: object) -> Flow[Entity]:
    """The entity whose name or alias is ``name`` (case, accents and punctuation aside)."""
    group = inputs.check_group_id(group_id)
    key = normalize(inputs.check_id(name, "name"))
    found: dict[str, list[Entity]] = yield StoreCall(lambda s: s.entities_by_names(group, [key]))
    matches = found.get(key, [])
    if not matches:
        raise GraphItemNotFoundError(f"no entity named {name!r} in group {group!r}")
    if len(matches) > 1:
        raise InvalidInputError(
            f"{len(matches)} entities in group {group!r} are called {name!r}",
            suggestion="use one of their ids: " + ", ".join(f"{e.id} ({e.name})" for e in matches),
        )
    return matches[0]


def list_facts_flow(
    state: GraphState,
    group_ids: object,
    *,
    as_of: object = None,
    known_at: object = None,
    include_invalid: bool = False,
    limit: object = 100,
) -> Flow[list[Fact]]:
    """The groups' facts a time view sees, in world-time order (a listing; ``search`` ranks)."""
    groups = inputs.check_group_ids(group_ids)
    n = inputs.check_limit(limit)
    view = _view(state, as_of, known_at, history=bool(include_invalid))
    dump = yield StoreCall(lambda s: s.dump(groups))
    seen = [_as_believed(f, view.known_at) for f in dump.facts if view.sees(f)]
    return sorted(seen, key=world_order)[:n]


def _as_believed(fact: Fact, known_at: datetime | None) -> Fact:
    if known_at is None or fact.expired_at is None or fact.expired_at <= known_at:
        return fact
    return fact.model_copy(update={"invalid_at": None, "expired_at": None})


def get_fact_flow(fact_id: object) -> Flow[Fact]:
    key = inputs.check_id(fact_id, "fact_id")
    found: list[Fact] = yield StoreCall(lambda s: s.get_facts([key]))
    if not found:
        raise GraphItemNotFoundError(f"no fact {key!r}")
    return found[0]


def timeline_flow(entity_id: object, *, known_at: object = None) -> Flow[list[Fact]]:
    """Every fact about an entity, ended ones included, in world-time order (as known at ``known_at``)."""
    key = inputs.check_id(entity_id, "entity_id")
    when = inputs.check_time(known_at, "known_at")
    yield from get_entity_flow(key)
    facts: list[Fact] = yield StoreCall(lambda s: s.entity_facts(key))
    return facts if when is None else [_as_believed(f, when) for f in facts if f.created_at <= when]


def delete_episode_flow(episode_id: object) -> Flow[DeleteEpisodeResult]:
    key = inputs.check_id(episode_id, "episode_id")
    yield OpenStore()
    result: DeleteEpisodeResult | None = yield StoreCall(lambda s: s.delete_episode(key))
    if result is None:
        raise GraphItemNotFoundError(f"no episode {key!r}")
    return result


def delete_fact_flow(fact_id: object) -> Flow[None]:
    key = inputs.check_id(fact_id, "fact_id")
    if not (yield StoreCall(lambda s: s.delete_fact(key))):
        raise GraphItemNotFoundError(f"no fact {key!r}")


def clear_flow(group_id: object) -> Flow[GraphCounts]:
    group = inputs.check_group_id(group_id)
    counts: GraphCounts = yield StoreCall(lambda s: s.clear(group))
    return counts


def forget_flow(group_id: object, *, compact: object = True) -> Flow[GraphErasure]:
    group = inputs.check_group_id(group_id)
    if not isinstance(compact, bool):
        raise InvalidInputError(f"compact must be True or False, got {type(compact).__name__}")
    erased: GraphErasure = yield StoreCall(lambda s: s.forget(group, compact=compact))
    return erased


def export_flow(
    group_ids: object, *, format: Literal["json", "graphml"] = "json", include_embeddings: bool = False
) -> Flow[str]:
    groups = inputs.check_group_ids(group_ids)
    if format not in ("json", "graphml"):
        raise InvalidInputError(f"format must be 'json' or 'graphml', got {format!r}")
    dump = yield StoreCall(lambda s: s.dump(groups))
    if include_embeddings:
        facts = yield StoreCall(lambda s: s.fact_vectors([f.id for f in dump.facts]))
        names = yield StoreCall(lambda s: s.entity_vectors([e.id for e in dump.entities]))
        dump.facts[:] = [f.model_copy(update={"embedding": facts[f.id].tolist()}) for f in dump.facts]
        dump.entities[:] = [
            e.model_copy(update={"name_embedding": names[e.id].tolist()}) for e in dump.entities
        ]
    return to_json(dump) if format == "json" else to_graphml(dump)


def counts_flow(group_ids: object) -> Flow[GraphCounts]:
    groups = inputs.check_group_ids(group_ids)
    counts: GraphCounts = yield StoreCall(lambda s: s.counts(groups))
    return counts
