"""From the model's extraction to clean, bounded, internally consistent entities and facts.

The model's answer is schema-valid but not necessarily coherent: the same person twice
under two spellings, a fact naming an entity it did not list, a relation in prose
case, an end date before the start. This module fixes what has one right fix and
drops what has none, before anything is resolved against the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azmem.graph.model import DEFAULT_LABEL
from azmem.graph.names import normalize
from azmem.graph.schemas import Extraction
from azmem.graph.types import TypeRegistry

__all__ = ["MAX_ENTITIES", "MAX_FACTS", "CleanEntity", "CleanFact", "clean_extraction"]

#: Bounds on one episode, so a runaway model cannot make a huge resolution call or write.
MAX_ENTITIES = 50
MAX_FACTS = 100
MAX_NAME_CHARS = 200
DEFAULT_RELATION = "RELATES_TO"

_NOT_WORD = re.compile(r"[^0-9A-Za-z]+")


@dataclass
class CleanEntity:
    name: str
    label: str
    aliases: list[str] = field(default_factory=list)
    summary: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def norms(self) -> list[str]:
        """Its name and aliases, normalised (name first)."""
        seen: dict[str, None] = {}
        for n in (self.name, *self.aliases):
            if key := normalize(n):
                seen.setdefault(key, None)
        return list(seen)


@dataclass
class CleanFact:
    source: int
    target: int
    relation: str
    fact: str
    valid_at: datetime | None
    invalid_at: datetime | None
    attributes: dict[str, Any] = field(default_factory=dict)


def relation_name(text: str) -> str:
    """``works at`` / ``worksAt`` / ``WORKS-AT`` -> ``WORKS_AT``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    name = _NOT_WORD.sub("_", spaced).strip("_").upper()
    return name or DEFAULT_RELATION


def _date(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def clean_extraction(
    extraction: Extraction, *, types: TypeRegistry, reference_time: datetime
) -> tuple[list[CleanEntity], list[CleanFact]]:
    entities: list[CleanEntity] = []
    index: dict[str, int] = {}

    def add_entity(
        name: str, label: str, aliases: list[str], summary: str, attributes: dict[str, Any]
    ) -> int | None:
        name = " ".join(name.split())[:MAX_NAME_CHARS]
        if not normalize(name):
            return None
        norms = [normalize(n) for n in (name, *aliases) if normalize(n)]
        found = next((index[n] for n in norms if n in index), None)
        if found is None:
            if len(entities) >= MAX_ENTITIES:
                return None
            found = len(entities)
            entities.append(CleanEntity(name=name, label=label))
        entity = entities[found]
        if entity.label == DEFAULT_LABEL and label != DEFAULT_LABEL:
            entity.label = label
        for alias in (name, *aliases):
            alias = " ".join(alias.split())[:MAX_NAME_CHARS]
            if normalize(alias) and normalize(alias) not in entity.norms():
                entity.aliases.append(alias)
        if summary.strip() and not entity.summary:
            entity.summary = summary.strip()
        entity.attributes.update(attributes)
        for n in entity.norms():
            index.setdefault(n, found)
        return found

    for e in extraction.entities:
        label = e.type if e.type in types.entity_labels else DEFAULT_LABEL
        pairs = {a.key: a.value for a in e.attributes}
        add_entity(e.name, label, list(e.aliases), e.summary, types.entity_attributes(label, pairs))

    facts: list[CleanFact] = []
    seen: set[tuple[int, int, str, str]] = set()
    for f in extraction.facts:
        source = index.get(normalize(f.source))
        if source is None:
            source = add_entity(f.source, DEFAULT_LABEL, [], "", {})
        target = index.get(normalize(f.target))
        if target is None:
            target = add_entity(f.target, DEFAULT_LABEL, [], "", {})
        if source is None or target is None or source == target:
            continue
        relation = relation_name(f.relation)
        text = " ".join(f.fact.split()) or f"{entities[source].name} {relation} {entities[target].name}"
        key = (source, target, relation, normalize(text))
        if key in seen or len(facts) >= MAX_FACTS:
            continue
        seen.add(key)
        valid_at, invalid_at = _date(f.valid_at), _date(f.invalid_at)
        if valid_at is not None and invalid_at is not None and invalid_at < valid_at:
            valid_at = None  # an end before the start: the start is the doubtful one
        if valid_at is None and (invalid_at is None or invalid_at > reference_time):
            # Unstated start: it held when the episode said so.
            valid_at = reference_time
        pairs = {a.key: a.value for a in f.attributes}
        facts.append(
            CleanFact(
                source,
                target,
                relation,
                text,
                valid_at,
                invalid_at,
                types.relation_attributes(relation, pairs),
            )
        )
    return entities, facts
