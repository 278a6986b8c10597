"""From extracted facts and the model's decisions to store operations (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from azmem.errors import StructuredOutputError
from azmem.memory.schemas import Decision, ExtractedFact
from azmem.memory.steps import MAX_EXISTING, MAX_FACTS, MAX_MESSAGE_BYTES
from azmem.stores.models import (
    MemoryRecord,
    SearchHit,
)


@dataclass(frozen=True)
class Change:
    """One resolved decision, with real ids (the small integers are gone)."""

    event: str  # ADD | UPDATE | DELETE | NONE
    fact: int
    text: str
    target: MemoryRecord | None = None


def storable(text: str) -> str | None:
    """Model output normalised to one line of storable text, or None.

    The model's text is not the user's input: a NUL, a lone surrogate (JSON can escape
    one) or a runaway length must not turn into an InvalidInputError blaming the caller.
    """
    text = " ".join(text.split())
    if not text or "\x00" in text:
        return None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    return text if size <= MAX_MESSAGE_BYTES else None


def clean_facts(facts: Sequence[ExtractedFact]) -> list[ExtractedFact]:
    """Drop blank, repeated and unstorable facts; keep at most MAX_FACTS."""
    seen: set[str] = set()
    out: list[ExtractedFact] = []
    for fact in facts:
        text = storable(fact.text)
        if text is None or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        out.append(ExtractedFact(text=text, subject=fact.subject))
    return out[:MAX_FACTS]


def gather_existing(results: Sequence[Sequence[SearchHit]]) -> list[MemoryRecord]:
    """Union of the per-fact neighbours, best-ranked first, each once; these get ids 0..n-1."""
    seen: set[str] = set()
    out: list[MemoryRecord] = []
    for rank in range(max((len(r) for r in results), default=0)):
        for hits in results:
            if rank < len(hits) and hits[rank].record.id not in seen:
                seen.add(hits[rank].record.id)
                out.append(hits[rank].record)
    return out[:MAX_EXISTING]


def plan_changes(
    facts: Sequence[ExtractedFact], existing: Sequence[MemoryRecord], decisions: Sequence[Decision]
) -> list[Change]:
    """Map the model's decisions back to real memories and make them consistent.

    * A fact index or target outside what was shown is already impossible (the response
      model is an enum of the ids shown, so the client re-asks and finally raises);
      checked again here so that no code path can ever touch an id it did not show.
    * One decision per fact: the first wins; a fact with no decision is added (losing
      information silently is worse than a near-duplicate).
    * One change per existing memory: a second UPDATE of the same memory becomes an ADD
      of its text, a second DELETE/NONE is dropped.
    """
    by_fact: dict[int, Decision] = {}
    for d in decisions:
        if not 0 <= d.fact < len(facts):
            raise StructuredOutputError(
                f"reconciliation named fact {d.fact}, but only {len(facts)} were given"
            )
        if d.target is not None and not 0 <= d.target < len(existing):
            raise StructuredOutputError(
                f"reconciliation named memory {d.target}, but only ids 0..{len(existing) - 1} were shown"
            )
        by_fact.setdefault(d.fact, d)
    touched: set[str] = set()
    changes: list[Change] = []
    for i, fact in enumerate(facts):
        found = by_fact.get(i)
        if found is None:
            changes.append(Change("ADD", i, fact.text))
            continue
        d = found
        text = (storable(d.text) or fact.text) if d.event in ("ADD", "UPDATE") else ""
        target = existing[d.target] if d.target is not None else None
        if target is not None and target.id in touched:
            if d.event == "UPDATE":
                changes.append(Change("ADD", i, text))
            continue
        if target is not None:
            touched.add(target.id)
        changes.append(Change(d.event, i, text, target))
    return changes
