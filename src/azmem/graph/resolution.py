"""Deterministic resolution: which extracted entities are known ones, and what each new fact may collide with.

Only what this module cannot settle goes to the LLM (the second call):

* an entity is **existing** when its normalised name or an alias equals exactly one
  entity's name or alias, or when one candidate is near-identical in spelling and in
  meaning; **new** when no candidate is even related; **ambiguous** otherwise
  ("Alex" against "Alexandra Chen", or two entities sharing an alias);
* a fact's **candidates** are existing facts touching its possible endpoints that share
  both endpoints, or its subject and relation, or most of its meaning; an exact
  restatement of a current fact is a **duplicate** decided here.

An episode whose entities are all settled and whose facts have no candidates costs
one LLM call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from azmem.graph.extraction import CleanEntity, CleanFact
from azmem.graph.model import DEFAULT_LABEL, Entity, Fact
from azmem.graph.names import normalize, related, spelling_similarity
from azmem.graph.results import MergeReason

__all__ = [
    "FACT_SIMILARITY",
    "EntityMatch",
    "FactCheck",
    "check_facts",
    "match_entities",
    "possible_ids",
]

#: Cosine between names at or above which a related name is worth asking about anyway.
NAME_SIMILARITY = 0.75
#: Cosine and spelling similarity at or above which a candidate is merged without asking.
SAME_MEANING, SAME_SPELLING = 0.95, 0.9
#: Cosine between fact sentences (sharing an endpoint) that makes an existing fact a candidate.
FACT_SIMILARITY = 0.6
MAX_ENTITY_CANDIDATES = 3
MAX_FACT_CANDIDATES = 5


@dataclass
class EntityMatch:
    status: Literal["existing", "new", "ambiguous"]
    entity: Entity | None = None
    reason: MergeReason | None = None
    candidates: list[Entity] = field(default_factory=list)


def _compatible(label: str, entity: Entity) -> bool:
    """Different custom types are different things; the generic label fits anything."""
    custom = [lb for lb in entity.labels if lb != DEFAULT_LABEL]
    return label == DEFAULT_LABEL or not custom or label in custom


def match_entities(
    extracted: list[CleanEntity],
    exact: dict[str, list[Entity]],
    similar: list[list[tuple[Entity, float | None]]],
) -> list[EntityMatch]:
    """``exact``: normalised name -> entities bearing it; ``similar[i]``: search hits for entity i."""
    out: list[EntityMatch] = []
    for i, entity in enumerate(extracted):
        norms = entity.norms()
        named = {e.id: e for n in norms for e in exact.get(n, []) if _compatible(entity.label, e)}
        if len(named) == 1:
            (only,) = named.values()
            out.append(EntityMatch("existing", only, "name" if normalize(only.name) in norms else "alias"))
            continue
        if len(named) > 1:
            out.append(EntityMatch("ambiguous", candidates=list(named.values())[:MAX_ENTITY_CANDIDATES]))
            continue
        candidates: list[Entity] = []
        strong: list[Entity] = []
        for hit, cosine in similar[i] if i < len(similar) else []:
            if not _compatible(entity.label, hit) or hit in candidates:
                continue
            names = [hit.name, *hit.aliases]
            if any(related(entity.name, n) for n in names) or (cosine or 0.0) >= NAME_SIMILARITY:
                candidates.append(hit)
                if (cosine or 0.0) >= SAME_MEANING and spelling_similarity(
                    entity.name, hit.name
                ) >= SAME_SPELLING:
                    strong.append(hit)
        if len(strong) == 1:
            out.append(EntityMatch("existing", strong[0], "similar"))
        elif candidates:
            out.append(EntityMatch("ambiguous", candidates=candidates[:MAX_ENTITY_CANDIDATES]))
        else:
            out.append(EntityMatch("new"))
    return out


def possible_ids(match: EntityMatch) -> set[str]:
    """The existing entities an extracted one may turn out to be."""
    if match.status == "existing" and match.entity is not None:
        return {match.entity.id}
    return {c.id for c in match.candidates}


@dataclass
class FactCheck:
    candidates: list[Fact] = field(default_factory=list)
    """Existing facts the LLM is asked about."""
    duplicate: Fact | None = None
    """An exact restatement of a current fact, settled here."""


def check_facts(
    facts: list[CleanFact],
    matches: list[EntityMatch],
    similar: list[list[tuple[Fact, float]]],
) -> list[FactCheck]:
    """``similar[j]``: existing facts touching fact j's possible endpoints, most similar first."""
    out: list[FactCheck] = []
    for j, fact in enumerate(facts):
        sources, targets = possible_ids(matches[fact.source]), possible_ids(matches[fact.target])
        check = FactCheck()
        pair: list[Fact] = []
        other: list[Fact] = []
        for old, cosine in similar[j] if j < len(similar) else []:
            same_pair = (old.source_id in sources and old.target_id in targets) or (
                old.source_id in targets and old.target_id in sources
            )
            if same_pair and _restates(fact, old, matches):
                check.duplicate = old
                break
            if same_pair:
                pair.append(old)
            elif (old.source_id in sources and old.name == fact.relation) or cosine >= FACT_SIMILARITY:
                other.append(old)
        if check.duplicate is None:
            check.candidates = (pair + other)[:MAX_FACT_CANDIDATES]
        out.append(check)
    return out


def _restates(fact: CleanFact, old: Fact, matches: list[EntityMatch]) -> bool:
    """The same current fact, word for word, between settled entities: no question to ask."""
    source, target = matches[fact.source], matches[fact.target]
    return (
        source.status == "existing"
        and target.status == "existing"
        and source.entity is not None
        and target.entity is not None
        and old.source_id == source.entity.id
        and old.target_id == target.entity.id
        and old.name == fact.relation
        and normalize(old.fact) == normalize(fact.fact)
        and old.invalid_at is None
        and fact.invalid_at is None
    )
