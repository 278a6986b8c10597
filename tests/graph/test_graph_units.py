"""The deterministic parts alone: names, cleaning, schemas, resolution rules, time rules, fusion."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, ValidationError

from azmem.graph.extraction import clean_extraction, relation_name
from azmem.graph.model import Entity, Fact
from azmem.graph.names import normalize, related
from azmem.graph.ranking import mmr, rrf
from azmem.graph.resolution import EntityMatch, check_facts, match_entities
from azmem.graph.schemas import extraction_model, resolution_model
from azmem.graph.types import TypeRegistry

from .graph_script import entity, fact

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)


def _entity(name: str, *aliases: str, labels: tuple[str, ...] = ("Entity",)) -> Entity:
    return Entity(
        id=f"id-{name}", group_id="g", name=name, aliases=list(aliases), labels=list(labels), created_at=T0
    )


def test_names() -> None:
    assert normalize("  Ácme   Corp. ") == "acme corp"
    assert normalize("O'Brien_Ltd") == "o brien ltd"
    assert related("Alex", "Alexandra Chen")
    assert related("Chen", "Alexandra Chen")
    assert related("Acme", "Acme Corp")
    assert related("Jon Smith", "John Smith")
    assert not related("Sam Chen", "Alex Chen")
    assert not related("Berlin", "Lisbon")
    assert relation_name("works at") == "WORKS_AT" == relation_name("worksAt") == relation_name("-works-at-")
    assert relation_name("!!") == "RELATES_TO"


def test_cleaning_merges_restores_and_bounds() -> None:
    model = extraction_model(["Entity"])
    raw = model.model_validate(
        {
            "entities": [entity("Alexandra Chen", aliases=["Lexi"]), entity("lexi"), entity("  ")],
            "facts": [
                fact("Lexi", "works at", "Acme", "Lexi works at Acme."),  # Acme was never listed
                fact("Alexandra Chen", "IS", "lexi", "Alexandra is Lexi."),  # a loop: dropped
                fact("Alexandra Chen", "WORKS_AT", "Acme", "Lexi   works at Acme."),  # a repeat
                fact("Lexi", "LIVED_IN", "Oslo", "x", "2024-05-01", "2024-02-01"),  # end before start
                fact("Lexi", "LEFT", "Oslo", "y", None, "2023-12-01"),  # ended before the reference time
            ],
        }
    )
    entities, facts = clean_extraction(raw, types=TypeRegistry(), reference_time=T1)
    assert [(e.name, e.aliases) for e in entities] == [
        ("Alexandra Chen", ["Lexi"]),
        ("Acme", []),
        ("Oslo", []),
    ]
    assert [(f.source, f.target, f.relation) for f in facts] == [
        (0, 1, "WORKS_AT"),
        (0, 2, "LIVED_IN"),
        (0, 2, "LEFT"),
    ]
    assert facts[0].valid_at == T1  # unstated start: when it was said
    assert (facts[1].valid_at, facts[1].invalid_at) == (
        None,
        datetime(2024, 2, 1, tzinfo=UTC),
    )  # start doubted
    assert facts[2].valid_at is None  # an end already past: the start is unknown, not "when said"


def test_schemas_are_strict_and_validate_numbers() -> None:
    for model in (
        extraction_model(["Entity", "Person"]),
        resolution_model({0: [0, 1]}, {0: [2]}),
        resolution_model({}, {}),
    ):
        text = json.dumps(to_strict_json_schema(model))
        assert '"additionalProperties": false' in text
    with pytest.raises(ValidationError):
        extraction_model(["Entity"]).model_validate(
            {"entities": [], "facts": [fact("a", "R", "b", "s", "last tuesday")]}
        )
    typed = extraction_model(["Entity", "Person"]).model_validate(
        {"entities": [entity("A", "Robot")], "facts": []}
    )
    assert typed.entities[0].type == "Entity"  # an unknown type is read as the generic one, not re-asked
    decided = resolution_model({0: [0, 1]}, {0: [2]})
    decided.model_validate({"entities": [{"entity": 0, "same_as": 1}], "facts": []})
    with pytest.raises(ValidationError):
        decided.model_validate({"entities": [{"entity": 0, "same_as": 5}], "facts": []})
    with pytest.raises(ValidationError):
        decided.model_validate(
            {"entities": [], "facts": [{"fact": 0, "duplicate_of": None, "contradicts": [7]}]}
        )


class Kind(BaseModel):
    """Some kind of thing."""


def test_entity_matching_rules() -> None:
    model = extraction_model(["Entity", "Person", "Place"])
    raw = model.model_validate(
        {
            "entities": [
                entity("Lexi"),
                entity("Alex"),
                entity("Berlin"),
                entity("Acme Corporation"),
                entity("Paris", "Place"),
            ],
            "facts": [],
        }
    )
    types = TypeRegistry.build({"Person": Kind, "Place": Kind})
    extracted, _ = clean_extraction(raw, types=types, reference_time=T0)
    alexandra = _entity("Alexandra Chen", "Lexi")
    acme = _entity("Acme Corp")
    paris = _entity("Paris", labels=("Entity", "Person"))  # Paris Hilton: another type
    exact = {"lexi": [alexandra], "paris": [paris]}
    similar = [[], [(alexandra, 0.5)], [(_entity("Bern"), 0.6)], [(acme, 0.98)], []]
    matches = match_entities(extracted, exact, similar)
    assert [(m.status, m.reason) for m in matches] == [
        ("existing", "alias"),
        ("ambiguous", None),
        ("new", None),
        ("ambiguous", None),
        ("new", None),
    ]
    assert matches[1].candidates == [alexandra]
    twins = match_entities(extracted[:1], {"lexi": [alexandra, _entity("Lexi Moore")]}, [[]])
    assert twins[0].status == "ambiguous"
    assert len(twins[0].candidates) == 2
    strong = match_entities(extracted[3:4], {}, [[(_entity("Acme Corporatoin"), 0.97)]])
    assert strong[0].status == "existing"
    assert strong[0].reason == "similar"


def _fact(source: str, name: str, target: str, text: str, invalid: datetime | None = None) -> Fact:
    return Fact(
        id=f"{source}-{name}-{target}",
        group_id="g",
        source_id=source,
        target_id=target,
        name=name,
        fact=text,
        created_at=T0,
        invalid_at=invalid,
        expired_at=invalid,
    )


def test_fact_candidates_and_settled_duplicates() -> None:
    model = extraction_model(["Entity"])
    raw = model.model_validate(
        {
            "entities": [entity("A"), entity("B"), entity("C")],
            "facts": [
                fact("A", "WORKS_AT", "B", "A works at B."),
                fact("A", "WORKS_AT", "C", "A works at C."),
            ],
        }
    )
    _extracted, facts = clean_extraction(raw, types=TypeRegistry(), reference_time=T0)
    matches = [EntityMatch("existing", _entity(n)) for n in ("A", "B")] + [EntityMatch("new")]
    restated = _fact("id-A", "WORKS_AT", "id-B", "A works at  B.")
    hobby = _fact("id-A", "LIKES", "id-D", "A likes tea.")
    checks = check_facts(facts, matches, [[(restated, 0.99), (hobby, 0.3)], [(restated, 0.7), (hobby, 0.61)]])
    assert checks[0].duplicate == restated
    assert checks[0].candidates == []
    assert checks[1].duplicate is None
    assert checks[1].candidates == [restated, hobby]
    ended = _fact("id-A", "WORKS_AT", "id-B", "A works at B.", invalid=T1)
    assert check_facts(facts[:1], matches, [[(ended, 0.99)]])[0].candidates == [
        ended
    ]  # ended: ask, not assume


def test_fusion() -> None:
    scores = rrf([["a", "b"], ["b", "c"]])
    assert max(scores, key=scores.__getitem__) == "b"
    q = np.array([1.0, 0.0], dtype=np.float32)
    vectors = {
        k: np.array(v, dtype=np.float32)
        for k, v in {"x": [1.0, 0.0], "x2": [0.999, 0.0447], "y": [0.6, 0.8]}.items()
    }
    assert [k for k, _ in mmr(q, vectors, limit=2, lambda_=0.3)] == ["x", "y"]  # the near-copy waits
    assert [k for k, _ in mmr(q, vectors, limit=2, lambda_=1.0)] == ["x", "x2"]


def test_fact_views() -> None:
    ended = Fact(
        id="f",
        group_id="g",
        source_id="a",
        target_id="b",
        name="R",
        fact="s",
        valid_at=T0,
        invalid_at=T1,
        created_at=T0,
        expired_at=datetime(2024, 7, 1, tzinfo=UTC),
    )
    assert ended.is_valid_at(datetime(2024, 3, 1, tzinfo=UTC))
    assert not ended.is_valid_at(datetime(2024, 6, 15, tzinfo=UTC))
    assert ended.is_valid_at(datetime(2024, 6, 15, tzinfo=UTC), known_at=datetime(2024, 6, 20, tzinfo=UTC))
    assert not ended.is_valid_at(T1, known_at=datetime(2023, 1, 1, tzinfo=UTC))
