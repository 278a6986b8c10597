"""The messages of the two ingestion calls, and the numbering that ties call 2's answer to records.

Call 2 shows new entities as N0.., existing ones as E0.., new facts as F0.. and
existing facts as X0..; the answer may only use those numbers (the schema's enums),
and `Numbering` maps them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from azmem.graph.extraction import CleanEntity, CleanFact
from azmem.graph.model import DEFAULT_LABEL, Entity, Episode, Fact
from azmem.graph.resolution import EntityMatch, FactCheck
from azmem.graph.types import TypeRegistry
from azmem.memory.prompts import Prompt

__all__ = ["Numbering", "extraction_messages", "number", "resolution_messages"]


def _day(value: datetime | None) -> str:
    if value is None:
        return "?"
    return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()


def _episode(ep: Episode) -> str:
    described = f": {ep.source_description}" if ep.source_description else ""
    head = f"[{ep.reference_time.isoformat()}] ({ep.source}{described})"
    return f"{head}\n{ep.content}"


def extraction_messages(
    prompt: Prompt, episode: Episode, context: list[Episode], types: TypeRegistry
) -> list[dict[str, str]]:
    described = types.describe()
    system = prompt.render(
        reference_time=episode.reference_time.isoformat(), types=("\n" + described) if described else ""
    )
    parts = []
    if context:
        parts.append("Previous episodes (context only):\n" + "\n\n".join(_episode(e) for e in context))
    parts.append("Current episode:\n" + _episode(episode))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


@dataclass
class Numbering:
    new_entities: list[int] = field(default_factory=list)
    """N<k> -> index of the extracted entity."""
    existing_entities: list[Entity] = field(default_factory=list)
    """E<k>."""
    entity_options: dict[int, list[int]] = field(default_factory=dict)
    """N<k> -> the E numbers it may be."""
    new_facts: list[int] = field(default_factory=list)
    """F<k> -> index of the clean fact."""
    existing_facts: list[Fact] = field(default_factory=list)
    """X<k>."""
    fact_options: dict[int, list[int]] = field(default_factory=dict)
    """F<k> -> the X numbers it may duplicate or contradict."""

    @property
    def empty(self) -> bool:
        return not self.entity_options and not self.fact_options


def number(matches: list[EntityMatch], checks: list[FactCheck]) -> Numbering:
    """Number what call 2 must decide: ambiguous entities and facts with candidates."""
    n = Numbering()
    e_index: dict[str, int] = {}
    x_index: dict[str, int] = {}
    for i, match in enumerate(matches):
        if match.status != "ambiguous":
            continue
        k = len(n.new_entities)
        n.new_entities.append(i)
        options = []
        for cand in match.candidates:
            if cand.id not in e_index:
                e_index[cand.id] = len(n.existing_entities)
                n.existing_entities.append(cand)
            options.append(e_index[cand.id])
        n.entity_options[k] = options
    for j, check in enumerate(checks):
        if not check.candidates:
            continue
        k = len(n.new_facts)
        n.new_facts.append(j)
        options = []
        for old in check.candidates:
            if old.id not in x_index:
                x_index[old.id] = len(n.existing_facts)
                n.existing_facts.append(old)
            options.append(x_index[old.id])
        n.fact_options[k] = options
    return n


def _entity_line(name: str, label: str, aliases: list[str], summary: str) -> str:
    kind = f" ({label})" if label != DEFAULT_LABEL else ""
    also = f"; also called {', '.join(aliases)}" if aliases else ""
    return f'"{name}"{kind}{": " + summary if summary else ""}{also}'


def _when(valid_at: datetime | None, invalid_at: datetime | None) -> str:
    return f"[{_day(valid_at)} → {_day(invalid_at) if invalid_at else 'now'}]"


def resolution_messages(
    prompt: Prompt,
    episode: Episode,
    entities: list[CleanEntity],
    facts: list[CleanFact],
    numbering: Numbering,
    matches: list[EntityMatch],
) -> list[dict[str, str]]:
    """Settled entities appear under their graph name, so facts compare like with like."""

    def named(i: int) -> str:
        match = matches[i]
        return match.entity.name if match.status == "existing" and match.entity else entities[i].name

    lines = [f"Episode (reference time {episode.reference_time.isoformat()}):", episode.content, ""]
    if numbering.new_entities:
        lines.append("New entities:")
        for k, i in enumerate(numbering.new_entities):
            e = entities[i]
            options = ", ".join(f"E{x}" for x in numbering.entity_options[k])
            lines.append(f"N{k}: {_entity_line(e.name, e.label, e.aliases, e.summary)} — maybe {options}")
        lines.append("Existing entities:")
        for k, ent in enumerate(numbering.existing_entities):
            label = next((lb for lb in ent.labels if lb != DEFAULT_LABEL), DEFAULT_LABEL)
            lines.append(f"E{k}: {_entity_line(ent.name, label, ent.aliases, ent.summary)}")
        lines.append("")
    if numbering.new_facts:
        lines.append("New facts:")
        for k, j in enumerate(numbering.new_facts):
            f = facts[j]
            options = ", ".join(f"X{x}" for x in numbering.fact_options[k])
            lines.append(
                f"F{k}: {named(f.source)} -{f.relation}-> {named(f.target)}: "
                f'"{f.fact}" {_when(f.valid_at, f.invalid_at)} — compare {options}'
            )
        lines.append("Existing facts:")
        for k, old in enumerate(numbering.existing_facts):
            lines.append(
                f"X{k}: {old.source_name} -{old.name}-> {old.target_name}: "
                f'"{old.fact}" {_when(old.valid_at, old.invalid_at)}'
            )
    return [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": "\n".join(lines).strip()},
    ]
