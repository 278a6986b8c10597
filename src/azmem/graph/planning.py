"""From resolved entities and decided facts to one `Changes` and the result the caller sees.

The time rules live here, deterministic, whatever the model said:

* a fact that contradicts an older one ends it: the old fact's ``invalid_at`` becomes
  the new fact's ``valid_at`` (when it began), its ``expired_at`` now (when we learned);
* news about the past (the new fact began before the old one) does not end the
  present: the new fact itself ends where the old one began;
* a restatement adds provenance; a restatement with an end date ends the fact.

Answers that do not fit the graph are ignored rather than trusted: an LLM-chosen
duplicate must join the same two entities, a contradicted fact must share one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from azmem.graph.changes import Changes, EntityUpdate, Invalidation, NewEntity, NewFact
from azmem.graph.extraction import CleanEntity, CleanFact
from azmem.graph.model import DEFAULT_LABEL, Entity, Episode, Fact, new_id
from azmem.graph.names import normalize, tokens
from azmem.graph.rendering import Numbering
from azmem.graph.resolution import EntityMatch, FactCheck
from azmem.graph.results import AddEpisodeResult, EntityMerge, MergeReason
from azmem.graph.schemas import Resolution

__all__ = ["MAX_SUMMARY_CHARS", "Plan", "plan_episode"]

#: Summaries grow by one sentence per episode that describes the entity; the oldest go first.
MAX_SUMMARY_CHARS = 600

Vectors = npt.NDArray[np.float32]


@dataclass
class Plan:
    changes: Changes
    result: AddEpisodeResult


@dataclass
class _Working:
    """An existing entity being updated by this episode."""

    original: Entity
    current: Entity
    reason: MergeReason
    extracted: list[str] = field(default_factory=list)
    vector: npt.NDArray[np.float32] | None = None


def _summary(old: str, new: str) -> str:
    if not new or normalize(new) in normalize(old):
        return old
    text = f"{old} {new}".strip() if old else new
    while len(text) > MAX_SUMMARY_CHARS and ". " in text:
        text = text.split(". ", 1)[1]
    return text[-MAX_SUMMARY_CHARS:]


def _merge_into(work: _Working, extracted: CleanEntity, vector: npt.NDArray[np.float32]) -> None:
    e = work.current
    name = e.name
    if len(tokens(extracted.name)) > len(tokens(name)) and set(tokens(name)) <= set(tokens(extracted.name)):
        name = extracted.name  # "Alex" -> "Alex Morgan": the fuller name wins, the old one stays an alias
        work.vector = vector
    known = {normalize(name)}
    aliases: list[str] = []
    for alias in (*e.aliases, e.name, extracted.name, *extracted.aliases):
        if normalize(alias) and normalize(alias) not in known:
            known.add(normalize(alias))
            aliases.append(alias)
    labels = list(
        dict.fromkeys([*e.labels, *([extracted.label] if extracted.label != DEFAULT_LABEL else [])])
    )
    work.current = e.model_copy(
        update={
            "name": name,
            "aliases": aliases,
            "labels": labels,
            "summary": _summary(e.summary, extracted.summary),
            "attributes": {**e.attributes, **extracted.attributes},
        }
    )
    work.extracted.append(extracted.name)


def _decisions(
    resolution: Resolution | None, numbering: Numbering
) -> tuple[dict[int, Entity], dict[int, tuple[Fact | None, list[Fact]]]]:
    """Call 2's answer, mapped back to records; numbers it did not offer are dropped."""
    same: dict[int, Entity] = {}
    facts: dict[int, tuple[Fact | None, list[Fact]]] = {}
    if resolution is None:
        return same, facts
    for ed in resolution.entities:
        options = numbering.entity_options.get(ed.entity, [])
        if ed.same_as is not None and ed.same_as in options:
            same[numbering.new_entities[ed.entity]] = numbering.existing_entities[ed.same_as]
    for fd in resolution.facts:
        options = numbering.fact_options.get(fd.fact, [])
        dup = numbering.existing_facts[fd.duplicate_of] if fd.duplicate_of in options else None
        contradicted = [numbering.existing_facts[x] for x in dict.fromkeys(fd.contradicts) if x in options]
        facts[numbering.new_facts[fd.fact]] = (dup, contradicted)
    return same, facts


def plan_episode(
    *,
    episode: Episode,
    entities: list[CleanEntity],
    facts: list[CleanFact],
    matches: list[EntityMatch],
    checks: list[FactCheck],
    numbering: Numbering,
    resolution: Resolution | None,
    entity_vectors: Vectors,
    fact_vectors: Vectors,
    version: int,
    now: datetime,
    llm_calls: int,
) -> Plan:
    same, fact_decisions = _decisions(resolution, numbering)
    ids: list[str] = []
    new_entities: list[NewEntity] = []
    working: dict[str, _Working] = {}
    for i, (extracted, match) in enumerate(zip(entities, matches, strict=True)):
        existing: Entity | None = match.entity if match.status == "existing" else same.get(i)
        if existing is None:
            entity = Entity(
                id=new_id(),
                group_id=episode.group_id,
                name=extracted.name,
                summary=extracted.summary,
                labels=list(dict.fromkeys([DEFAULT_LABEL, extracted.label])),
                attributes=extracted.attributes,
                aliases=[a for a in extracted.aliases if normalize(a) != normalize(extracted.name)],
                created_at=now,
            )
            new_entities.append(NewEntity(entity, entity_vectors[i]))
            ids.append(entity.id)
            continue
        reason: MergeReason = match.reason or "llm" if match.status == "existing" else "llm"
        work = working.setdefault(existing.id, _Working(existing, existing, reason))
        _merge_into(work, extracted, entity_vectors[i])
        ids.append(existing.id)

    new_facts: list[NewFact] = []
    confirmations: list[tuple[str, str]] = []
    ends: dict[str, Invalidation] = {}
    changed: dict[str, Fact] = {}

    def end(old: Fact, at: datetime) -> None:
        believed = ends[old.id].invalid_at if old.id in ends else old.invalid_at
        if believed is not None and believed <= at:
            return
        ends[old.id] = Invalidation(old.id, at, now, episode.id)

    for j, fact in enumerate(facts):
        source, target = ids[fact.source], ids[fact.target]
        if source == target:
            continue
        dup, contradicted = fact_decisions.get(j, (checks[j].duplicate, []))
        if dup is not None and {dup.source_id, dup.target_id} != {source, target}:
            dup = None
        if dup is not None:
            confirmations.append((dup.id, episode.id))
            changed.setdefault(dup.id, dup)
            if fact.invalid_at is not None:
                end(dup, fact.invalid_at)
        valid_at, invalid_at, expired_at = fact.valid_at, fact.invalid_at, now if fact.invalid_at else None
        for old in contradicted:
            if old is dup or not {old.source_id, old.target_id} & {source, target}:
                continue
            if old.valid_at is not None and valid_at is not None and valid_at < old.valid_at:
                # News about the past: the new fact held until the old one began.
                if invalid_at is None or invalid_at > old.valid_at:
                    invalid_at, expired_at = old.valid_at, now
            else:
                end(old, valid_at or episode.reference_time)
                changed.setdefault(old.id, old)
        if dup is not None:
            continue
        new = Fact(
            id=new_id(),
            group_id=episode.group_id,
            source_id=source,
            target_id=target,
            name=fact.relation,
            fact=fact.fact,
            attributes=fact.attributes,
            episodes=[episode.id],
            valid_at=valid_at,
            invalid_at=invalid_at,
            created_at=now,
            expired_at=expired_at,
        )
        new_facts.append(NewFact(new, fact_vectors[j]))

    updates = [_update(w) for w in working.values()]
    names = {e.entity.id: e.entity.name for e in new_entities} | {
        w.current.id: w.current.name for w in working.values()
    }
    confirmed = dict.fromkeys(f for f, _ in confirmations)
    result = AddEpisodeResult(
        episode=episode.model_copy(update={"entity_ids": list(dict.fromkeys(ids))}),
        entities_added=[e.entity for e in new_entities],
        entities_merged=[
            EntityMerge(extracted_name=name, entity=w.current, reason=w.reason)
            for w in working.values()
            for name in w.extracted
        ],
        facts_added=[_named(n.fact, names) for n in new_facts],
        facts_confirmed=[_after(changed[fid], episode.id, ends.get(fid)) for fid in confirmed],
        facts_invalidated=[
            _after(changed[fid], None, inv)
            for fid, inv in ends.items()
            if fid in changed and fid not in confirmed
        ],
        llm_calls=llm_calls,
    )
    changes = Changes(
        group_id=episode.group_id,
        expected_version=version,
        episode=result.episode,
        new_entities=new_entities,
        entity_updates=[u for u in updates if u is not None],
        new_facts=new_facts,
        confirmations=confirmations,
        invalidations=list(ends.values()),
    )
    return Plan(changes, result)


def _update(work: _Working) -> EntityUpdate | None:
    before, after = work.original, work.current
    fields = {
        key: getattr(after, key)
        for key in ("name", "summary", "labels", "attributes", "aliases")
        if getattr(after, key) != getattr(before, key)
    }
    if not fields:
        return None
    vector = work.vector if "name" in fields else None
    return EntityUpdate(id=before.id, vector=vector, **fields)


def _named(fact: Fact, names: dict[str, str]) -> Fact:
    return fact.model_copy(
        update={"source_name": names.get(fact.source_id, ""), "target_name": names.get(fact.target_id, "")}
    )


def _after(fact: Fact, episode_id: str | None, ended: Invalidation | None) -> Fact:
    update: dict[str, object] = {}
    if episode_id is not None and episode_id not in fact.episodes:
        update["episodes"] = [*fact.episodes, episode_id]
    if ended is not None:
        update |= {
            "invalid_at": ended.invalid_at,
            "expired_at": ended.expired_at,
            "invalidated_by": ended.invalidated_by,
        }
    return fact.model_copy(update=update)
