"""Writing to the graph: ``add_episode`` (at most two LLM calls) and ``add_fact`` (none), as sans-IO flows.

``add_episode``'s shape is its guarantees:

1. read the group's last episodes (context), then **call 1**: extract entities and
   facts, dates resolved against the reference time;
2. embed every entity name and fact sentence in one batch;
3. read what they may collide with and settle what can be settled without the model
   (`resolution`);
4. **call 2**, only if something is left: ambiguous entities and fact candidates,
   all in one prompt;
5. one store transaction writes the episode and everything it changed.

Every LLM call, embedding and read happens before the only write, so a failure
anywhere (call 2 included) leaves the graph as it was and the episode can simply be
sent again. The write carries the group version the plan was made against; if another
process wrote the group meanwhile, the flow re-reads and re-plans (call 2 may then be
asked again; call 1 never is).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import numpy as np
import numpy.typing as npt

from azmem.embeddings.rows import check_rows
from azmem.errors import InvalidInputError
from azmem.graph import inputs
from azmem.graph.changes import Changes, Invalidation, NewEntity, NewFact
from azmem.graph.errors import GraphConflictError
from azmem.graph.extraction import CleanEntity, CleanFact, clean_extraction, relation_name
from azmem.graph.model import DEFAULT_LABEL, Entity, Episode, EpisodeSource, Fact, new_id
from azmem.graph.names import normalize
from azmem.graph.planning import plan_episode
from azmem.graph.queries import EntityQuery
from azmem.graph.rendering import extraction_messages, number, resolution_messages
from azmem.graph.resolution import EntityMatch, check_facts, match_entities, possible_ids
from azmem.graph.results import AddEpisodeResult
from azmem.graph.schemas import Extraction, Resolution, extraction_model, resolution_model
from azmem.graph.state import GraphState
from azmem.graph.steps import Chat, Embed, Flow, OpenStore, StoreCall
from azmem.graph.store.protocol import GraphStore
from azmem.stores.terms import query_terms

__all__ = ["MAX_ATTEMPTS", "add_episode_flow", "add_fact_flow"]

#: Plans made and refused for a concurrent write before giving up.
MAX_ATTEMPTS = 3
#: Existing entities looked at per extracted one; existing facts per new fact.
ENTITY_LOOKUP, FACT_LOOKUP = 8, 20

Vectors = npt.NDArray[np.float32]


def _entity_context(
    store: GraphStore, group_id: str, entities: list[CleanEntity], vectors: Vectors
) -> tuple[int, dict[str, list[Entity]], list[list[tuple[Entity, float | None]]]]:
    version = store.group_version(group_id)
    norms = sorted({n for e in entities for n in e.norms()})
    exact = store.entities_by_names(group_id, norms) if norms else {}
    similar: list[list[tuple[Entity, float | None]]] = []
    for i, e in enumerate(entities):
        if len({x.id for n in e.norms() for x in exact.get(n, [])}) == 1:
            similar.append([])
            continue
        found = store.search_entities(
            EntityQuery(
                [group_id],
                query_terms(" ".join([e.name, *e.aliases])),
                vectors[i],
                prefix=True,
                limit=ENTITY_LOOKUP,
            )
        )
        cosine = {hit.id: score for hit, score in found.dense}
        hits = {hit.id: hit for hit in found.bm25} | {hit.id: hit for hit, _ in found.dense}
        similar.append([(hit, cosine.get(key)) for key, hit in hits.items()])
    return version, exact, similar


def _apply(store: GraphStore, changes: Changes) -> None:
    store.apply(changes)


def _similar(
    store: GraphStore, group_id: str, vector: Vectors, entity_ids: list[str]
) -> list[tuple[Fact, float]]:
    return store.similar_facts(group_id, vector, entity_ids, FACT_LOOKUP)


def _fact_context(
    store: GraphStore, group_id: str, facts: list[CleanFact], matches: list[EntityMatch], vectors: Vectors
) -> list[list[tuple[Fact, float]]]:
    out: list[list[tuple[Fact, float]]] = []
    for j, f in enumerate(facts):
        ids = possible_ids(matches[f.source]) | possible_ids(matches[f.target])
        out.append(store.similar_facts(group_id, vectors[j], sorted(ids), FACT_LOOKUP) if ids else [])
    return out


def _default_name(content: str) -> str:
    first = " ".join(content.strip().split("\n", 1)[0].split())
    return first if len(first) <= 60 else first[:59] + "…"


def add_episode_flow(
    state: GraphState,
    content: object,
    *,
    group_id: object,
    reference_time: object = None,
    source: object = "message",
    name: object = None,
    source_description: object = "",
) -> Flow[AddEpisodeResult]:
    group = inputs.check_group_id(group_id)
    kind: EpisodeSource = inputs.check_source(source)
    text = inputs.check_content(content, kind)
    if name is not None and not isinstance(name, str):
        raise InvalidInputError("name must be a string")
    if not isinstance(source_description, str):
        raise InvalidInputError("source_description must be a string")
    ref = inputs.check_time(reference_time, "reference_time")
    state.require_chat()
    now = state.now()
    episode = Episode(
        id=new_id(),
        group_id=group,
        name=name or _default_name(text),
        source=kind,
        source_description=source_description,
        content=text,
        reference_time=ref or now,
        created_at=now,
    )
    yield OpenStore()
    context: list[Episode] = []
    if state.context_episodes > 0:
        context = yield StoreCall(
            lambda s: s.get_episodes([group], before=episode.reference_time, limit=state.context_episodes)
        )
    types = state.types
    extraction = yield Chat(
        state.prompts.extract,
        extraction_messages(state.prompts.extract, episode, context, types),
        extraction_model(types.entity_labels),
        state.model_sizes["extract"],
        group,
    )
    assert isinstance(extraction, Extraction)
    entities, facts = clean_extraction(extraction, types=types, reference_time=episode.reference_time)
    texts = [e.name for e in entities] + [f.fact for f in facts]
    all_vectors = check_rows((yield Embed(texts)), len(texts)) if texts else np.zeros((0, 0), np.float32)
    entity_vectors, fact_vectors = all_vectors[: len(entities)], all_vectors[len(entities) :]

    calls = 1
    for attempt in range(MAX_ATTEMPTS):
        version, exact, similar = yield StoreCall(
            lambda s: _entity_context(s, group, entities, entity_vectors)
        )
        matches = match_entities(entities, exact, similar)
        fact_similar = yield StoreCall(
            partial(_fact_context, group_id=group, facts=facts, matches=matches, vectors=fact_vectors)
        )
        checks = check_facts(facts, matches, fact_similar)
        numbering = number(matches, checks)
        resolution: Resolution | None = None
        if not numbering.empty:
            resolution = yield Chat(
                state.prompts.resolve,
                resolution_messages(state.prompts.resolve, episode, entities, facts, numbering, matches),
                resolution_model(numbering.entity_options, numbering.fact_options),
                state.model_sizes["resolve"],
                group,
            )
            calls += 1
        plan = plan_episode(
            episode=episode,
            entities=entities,
            facts=facts,
            matches=matches,
            checks=checks,
            numbering=numbering,
            resolution=resolution,
            entity_vectors=entity_vectors,
            fact_vectors=fact_vectors,
            version=version,
            now=now,
            llm_calls=calls,
        )
        try:
            yield StoreCall(partial(_apply, changes=plan.changes))
        except GraphConflictError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        return plan.result
    raise AssertionError("unreachable")


def add_fact_flow(
    state: GraphState,
    source: object,
    relation: object,
    target: object,
    fact: object = None,
    *,
    group_id: object,
    valid_at: object = None,
    invalid_at: object = None,
    invalidates: Sequence[str] = (),
) -> Flow[Fact]:
    """A triplet written as given: entities matched by exact name or alias only, no LLM."""
    group = inputs.check_group_id(group_id)
    src = inputs.check_id(source, "source")
    dst = inputs.check_id(target, "target")
    if normalize(src) == normalize(dst):
        raise InvalidInputError("a fact needs two different entities")
    rel = relation_name(inputs.check_id(relation, "relation"))
    if fact is not None and (not isinstance(fact, str) or not fact.strip()):
        raise InvalidInputError("fact must be a non-empty sentence (or None to build one)")
    text = fact.strip() if isinstance(fact, str) else f"{src} {rel.lower().replace('_', ' ')} {dst}"
    start = inputs.check_time(valid_at, "valid_at")
    end = inputs.check_time(invalid_at, "invalid_at")
    ended = [inputs.check_id(i, "invalidates") for i in invalidates]
    now = state.now()
    vectors = check_rows((yield Embed([src, dst, text])), 3)
    yield OpenStore()
    for attempt in range(MAX_ATTEMPTS):

        def read(s: GraphStore) -> tuple[int, dict[str, list[Entity]], list[Fact]]:
            return (
                s.group_version(group),
                s.entities_by_names(group, [normalize(src), normalize(dst)]),
                s.get_facts(ended),
            )

        version, exact, olds = yield StoreCall(read)
        if len(olds) != len(ended) or any(o.group_id != group for o in olds):
            raise InvalidInputError(f"invalidates names facts that are not in group {group!r}")
        new_entities: list[NewEntity] = []
        ends: list[Entity] = []
        for k, name in enumerate((src, dst)):
            found = exact.get(normalize(name), [])
            if len(found) != 1:
                found = [
                    Entity(id=new_id(), group_id=group, name=name, labels=[DEFAULT_LABEL], created_at=now)
                ]
                new_entities.append(NewEntity(found[0], vectors[k]))
            ends.append(found[0])
        ids = [e.id for e in ends]
        if not new_entities:
            similar: list[tuple[Fact, float]] = yield StoreCall(
                partial(_similar, group_id=group, vector=vectors[2], entity_ids=ids)
            )
            for old, _ in similar:
                if (
                    (old.source_id, old.target_id, old.name) == (ids[0], ids[1], rel)
                    and normalize(old.fact) == normalize(text)
                    and old.invalid_at is None
                    and end is None
                ):
                    return old
        new = Fact(
            id=new_id(),
            group_id=group,
            source_id=ids[0],
            target_id=ids[1],
            name=rel,
            fact=text,
            valid_at=start,
            invalid_at=end,
            created_at=now,
            expired_at=now if end else None,
            source_name=ends[0].name,
            target_name=ends[1].name,
        )
        changes = Changes(
            group_id=group,
            expected_version=version,
            new_entities=new_entities,
            new_facts=[NewFact(new, vectors[2])],
            invalidations=[Invalidation(o.id, _end_of(o, start or now), now, None) for o in olds],
        )
        try:
            yield StoreCall(partial(_apply, changes=changes))
        except GraphConflictError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        return new
    raise AssertionError("unreachable")


def _end_of(old: Fact, at: datetime) -> datetime:
    return old.invalid_at if old.invalid_at is not None and old.invalid_at <= at else at
