"""The I/O-free planning logic shared by both faces: id mapping and conflict rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from azmem.errors import StructuredOutputError
from azmem.memory.planning import clean_facts, gather_existing, plan_changes
from azmem.memory.schemas import Decision, ExtractedFact, reconcile_model
from azmem.stores.models import MemoryRecord, Scope, SearchHit

SCOPE = Scope(user_id="u")


def rec(text: str) -> MemoryRecord:
    return MemoryRecord.new(text, SCOPE)


def fact(text: str) -> ExtractedFact:
    return ExtractedFact(text=text, subject="user")


def test_small_ids_map_back_and_one_change_per_memory() -> None:
    existing = [rec("likes pizza"), rec("works as a nurse")]
    facts = [
        fact("works as a surgeon"),
        fact("works in a hospital"),
        fact("hates pizza"),
        fact("plays chess"),
    ]
    changes = plan_changes(
        facts,
        existing,
        [
            Decision(fact=0, event="UPDATE", target=1, text="works as a surgeon"),
            Decision(fact=1, event="UPDATE", target=1, text="works in a hospital"),  # same memory again
            Decision(fact=2, event="DELETE", target=0, text=""),
            Decision(fact=2, event="ADD", target=None, text="ignored: fact 2 already decided"),
        ],
    )
    assert [(c.event, c.text, c.target.id if c.target else None) for c in changes] == [
        ("UPDATE", "works as a surgeon", existing[1].id),
        ("ADD", "works in a hospital", None),  # a second UPDATE of one memory keeps the information
        ("DELETE", "", existing[0].id),
        ("ADD", "plays chess", None),  # no decision for a fact: kept
    ]


def test_out_of_range_ids_never_reach_the_store() -> None:
    with pytest.raises(StructuredOutputError, match="memory 5"):
        plan_changes([fact("a")], [rec("b")], [Decision(fact=0, event="UPDATE", target=5, text="a")])
    with pytest.raises(StructuredOutputError, match="fact 3"):
        plan_changes([fact("a")], [rec("b")], [Decision(fact=3, event="ADD", target=None, text="a")])


def test_response_model_only_accepts_ids_shown() -> None:
    model = reconcile_model(n_facts=2, n_existing=3)
    ok = model.model_validate({"decisions": [{"fact": 1, "event": "NONE", "target": 2, "text": ""}]})
    assert ok.decisions[0].target == 2
    for bad in (
        {"fact": 0, "event": "UPDATE", "target": 3, "text": "x"},  # invented id
        {"fact": 2, "event": "ADD", "target": None, "text": "x"},  # invented fact
        # (an event contradicting its target is repaired, not rejected: test_decision_repair.py)
        {"fact": 0, "event": "MERGE", "target": 1, "text": "x"},
    ):
        with pytest.raises(ValidationError):
            model.model_validate({"decisions": [bad]})
    schema = reconcile_model(1, 0).model_json_schema()
    assert schema["$defs"]["Decision"]["properties"]["target"] == {
        "description": schema["$defs"]["Decision"]["properties"]["target"]["description"],
        "title": "Target",
        "type": "null",
    }


def test_model_text_that_cannot_be_stored_is_dropped_not_blamed_on_the_user() -> None:
    cleaned = clean_facts(
        [fact("  likes   tea "), fact("likes tea"), fact("bad\x00"), fact("\ud800"), fact("")]
    )
    assert [f.text for f in cleaned] == ["likes tea"]
    changes = plan_changes(
        [fact("likes tea")], [rec("x")], [Decision(fact=0, event="UPDATE", target=0, text="a\x00")]
    )
    assert changes[0].text == "likes tea"


def test_existing_memories_are_interleaved_by_rank_and_deduplicated() -> None:
    a, b, c = rec("a"), rec("b"), rec("c")

    def hits(*records: MemoryRecord) -> list[SearchHit]:
        return [SearchHit(record=r, score=1.0) for r in records]

    assert [r.memory for r in gather_existing([hits(a, b), hits(c, a)])] == ["a", "c", "b"]
