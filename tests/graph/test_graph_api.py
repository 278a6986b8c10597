"""The graph's API on both backends: what each operation returns, reads, deletes and exports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest
from pydantic import BaseModel, Field

from azmem.emulator import Emulator
from azmem.errors import ConfigurationError, InvalidInputError
from azmem.graph import Graph, GraphItemNotFoundError
from azmem.graph.queries import DateCondition

from .conftest import Clock, azure_config
from .graph_script import ScriptedModel, entity, fact

JAN, MAR, JUN = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 3, 6))


def _jobs(model: ScriptedModel) -> None:
    model.on(
        "joined Acme",
        [entity("Dana Kim"), entity("Acme")],
        [fact("Dana Kim", "WORKS_AT", "Acme", "Dana Kim works at Acme.")],
    )
    model.on(
        "moved to Globex",
        [entity("Dana Kim"), entity("Globex")],
        [fact("Dana Kim", "WORKS_AT", "Globex", "Dana Kim works at Globex.")],
    )
    model.on(
        "Acme again",
        [entity("Dana Kim"), entity("Acme")],
        [fact("Dana Kim", "WORKS_AT", "Acme", "Dana Kim works at Acme.")],
    )


def test_an_episode_returns_what_it_added(graph: Graph, model: ScriptedModel, clock: Clock) -> None:
    _jobs(model)
    clock.set(JAN)
    result = graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN, name="hired")
    assert result.llm_calls == 1  # an empty graph: nothing to resolve
    assert [e.name for e in result.entities_added] == ["Dana Kim", "Acme"]
    (added,) = result.facts_added
    assert (added.source_name, added.name, added.target_name) == ("Dana Kim", "WORKS_AT", "Acme")
    assert (added.valid_at, added.created_at, added.episodes) == (JAN, clock.now, [result.episode.id])
    (episode,) = graph.get_episodes(["g"])
    assert episode == result.episode
    assert episode.name == "hired"
    assert set(episode.entity_ids) == {e.id for e in result.entities_added}
    assert graph.get_fact(added.id) == added
    assert graph.get_entity(added.source_id).name == "Dana Kim"


def test_a_restatement_is_one_fact_with_two_sources(graph: Graph, model: ScriptedModel, clock: Clock) -> None:
    _jobs(model)
    first = graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN)
    again = graph.add_episode("Dana Kim: Acme again, still there.", group_id="g", reference_time=MAR)
    assert (
        again.llm_calls == 1
    )  # a word-for-word restatement between known entities is settled without asking
    (confirmed,) = again.facts_confirmed
    assert confirmed.id == first.facts_added[0].id
    assert confirmed.episodes == [first.episode.id, again.episode.id]
    assert [m.reason for m in again.entities_merged] == ["name", "name"]
    assert graph.store.counts(["g"]).facts == 1


def test_delete_episode_removes_what_only_it_supported_and_undoes_its_endings(
    graph: Graph, model: ScriptedModel, clock: Clock
) -> None:
    _jobs(model)
    clock.set(JAN)
    acme = graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN).facts_added[0]
    clock.set(MAR)
    moved = graph.add_episode("Dana Kim moved to Globex.", group_id="g", reference_time=MAR)
    assert moved.llm_calls == 2
    (ended,) = moved.facts_invalidated
    assert (ended.id, ended.invalid_at, ended.expired_at, ended.invalidated_by) == (
        acme.id,
        MAR,
        clock.now,
        moved.episode.id,
    )
    assert graph.get_fact(acme.id).invalid_at == MAR  # ended, not deleted

    removed = graph.delete_episode(moved.episode.id)
    assert removed.facts_deleted == [moved.facts_added[0].id]
    assert removed.facts_restored == [acme.id]
    globex = next(e for e in moved.entities_added if e.name == "Globex")
    assert removed.entities_deleted == [globex.id]  # Dana is still mentioned by the first episode
    restored = graph.get_fact(acme.id)
    assert (restored.invalid_at, restored.expired_at, restored.invalidated_by) == (None, None, None)
    with pytest.raises(GraphItemNotFoundError):
        graph.get_entity(globex.id)
    with pytest.raises(GraphItemNotFoundError):
        graph.delete_episode(moved.episode.id)
    assert graph.store.counts(["g"]).model_dump() == {"episodes": 1, "entities": 2, "facts": 1}


def test_a_fact_two_episodes_support_survives_deleting_one(graph: Graph, model: ScriptedModel) -> None:
    _jobs(model)
    first = graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN)
    again = graph.add_episode("Dana Kim: Acme again.", group_id="g", reference_time=MAR)
    removed = graph.delete_episode(first.episode.id)
    assert removed.facts_deleted == []
    assert removed.entities_deleted == []
    assert graph.get_fact(first.facts_added[0].id).episodes == [again.episode.id]


def test_add_fact_needs_no_llm(graph: Graph, emulator: Emulator, clock: Clock) -> None:
    clock.set(JAN)
    made = graph.add_fact("Dana Kim", "works at", "Acme", group_id="g", valid_at=JAN)
    assert (made.name, made.fact, made.valid_at, made.episodes) == (
        "WORKS_AT",
        "Dana Kim works at Acme",
        JAN,
        [],
    )
    assert graph.add_fact("dana kim", "WORKS_AT", "ACME", group_id="g", valid_at=JAN).id == made.id
    clock.set(MAR)
    moved = graph.add_fact(
        "Dana Kim",
        "WORKS_AT",
        "Globex",
        "Dana Kim moved to Globex.",
        group_id="g",
        valid_at=MAR,
        invalidates=[made.id],
    )
    old = graph.get_fact(made.id)
    assert (old.invalid_at, old.expired_at) == (MAR, clock.now)
    assert moved.source_id == made.source_id  # the same Dana, matched by name
    assert not [r for r in emulator.requests if r.path.endswith("/chat/completions")]
    hits = graph.search("where does Dana work", group_ids=["g"])
    assert [h.fact.id for h in hits] == [moved.id]
    with pytest.raises(InvalidInputError):
        graph.add_fact("A", "KNOWS", "a", group_id="g")
    with pytest.raises(InvalidInputError):
        graph.add_fact("A", "KNOWS", "B", group_id="other", invalidates=[made.id])


def test_clear_removes_one_group(graph: Graph, model: ScriptedModel) -> None:
    _jobs(model)
    graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN)
    graph.add_fact("Ann", "KNOWS", "Bob", group_id="h")
    assert graph.clear("g").model_dump() == {"episodes": 1, "entities": 2, "facts": 1}
    assert graph.store.counts(["g"]).model_dump() == {"episodes": 0, "entities": 0, "facts": 0}
    assert graph.store.counts(["h"]).facts == 1


def test_export_json_and_graphml(graph: Graph, model: ScriptedModel) -> None:
    _jobs(model)
    graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN)
    graph.add_episode("Dana Kim moved to Globex.", group_id="g", reference_time=MAR)
    body = json.loads(graph.export(["g"]))
    assert body["format"] == "azmem-graph/1"
    assert (len(body["episodes"]), len(body["entities"]), len(body["facts"])) == (2, 3, 2)
    assert all("embedding" not in f for f in body["facts"])
    ended = next(f for f in body["facts"] if f["target_name"] == "Acme")
    assert ended["invalid_at"] == "2024-03-01T00:00:00Z"
    with_vectors = json.loads(graph.export(["g"], include_embeddings=True))
    assert len(with_vectors["facts"][0]["embedding"]) == graph.embedder.dimension
    assert len(with_vectors["entities"][0]["name_embedding"]) == graph.embedder.dimension

    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.fromstring(graph.export(["g"], format="graphml"))
    nodes = root.findall("g:graph/g:node", ns)
    edges = root.findall("g:graph/g:edge", ns)
    assert len(nodes) == 3 + 2  # entities and episodes
    relations = sorted(e.findtext("g:data[@key='edge_relation']", namespaces=ns) or "" for e in edges)
    assert relations == ["MENTIONS"] * 4 + ["WORKS_AT"] * 2
    with pytest.raises(InvalidInputError):
        graph.export(["g"], format="csv")  # type: ignore[arg-type]


class Person(BaseModel):
    """A human being."""

    occupation: str | None = Field(None, description="What they do for a living.")
    age: int | None = None


class Employment(BaseModel):
    """Someone working for an organisation."""

    role: str | None = None


def test_custom_types_become_labels_and_attributes(
    emulator: Emulator, model: ScriptedModel, graph_url: str, embedder: object
) -> None:
    model.on(
        "Ravi",
        [
            entity("Ravi Shah", "Person", age="41", occupation="pilot"),
            entity("SkyAir", summary="An airline."),
            entity("Nowhere", "Person", age="old"),
        ],
        [
            {
                **fact("Ravi Shah", "EMPLOYMENT", "SkyAir", "Ravi Shah flies for SkyAir."),
                "attributes": [{"key": "role", "value": "captain"}, {"key": "bogus", "value": "x"}],
            }
        ],
    )
    with Graph(
        config=azure_config(emulator),
        embedder=embedder,
        store=graph_url,  # type: ignore[arg-type]
        entity_types={"Person": Person},
        relation_types={"EMPLOYMENT": Employment},
    ) as g:
        result = g.add_episode("Ravi is 41 and a pilot at SkyAir.", group_id="g", reference_time=JAN)
        ravi, skyair, nowhere = result.entities_added
        assert (ravi.labels, ravi.attributes) == (["Entity", "Person"], {"age": 41, "occupation": "pilot"})
        assert (skyair.labels, skyair.attributes) == (["Entity"], {})
        assert nowhere.attributes == {}  # "old" is no int: dropped, not guessed
        assert result.facts_added[0].attributes == {"role": "captain"}
        people = g.search("flies", group_ids=["g"], filters={"entity_labels": ["Person"]})
        assert len(people) == 1
        assert g.search_entities("pilot", group_ids=["g"], labels=["Person"])[0].entity.id == ravi.id
        extraction = next(r.json for r in emulator.requests if r.json and "Ravi" in json.dumps(r.json))
        assert "Person: A human being.; attributes: occupation" in extraction["messages"][0]["content"]
    with pytest.raises(InvalidInputError):
        Graph(store=":memory:", entity_types={"Entity": Person})

    class Clash(BaseModel):
        name: str

    with pytest.raises(InvalidInputError, match="reserved"):
        Graph(store=":memory:", entity_types={"Thing": Clash})


def test_search_filters_views_and_rerankers(graph: Graph, model: ScriptedModel, clock: Clock) -> None:
    _jobs(model)
    clock.set(JAN)
    graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=JAN)
    clock.set(MAR)
    graph.add_episode("Dana Kim moved to Globex.", group_id="g", reference_time=MAR)
    graph.add_fact("Dana Kim", "LIKES", "Tea", group_id="g", valid_at=JAN)

    def targets(**kw: object) -> set[str]:
        return {h.fact.target_name for h in graph.search("Dana works", group_ids=["g"], **kw)}  # type: ignore[arg-type]

    assert targets() == {"Globex", "Tea"}
    assert targets(filters={"relations": ["WORKS_AT"]}) == {"Globex"}
    assert targets(filters={"relations": ["WORKS_AT"], "include_invalid": True}) == {"Acme", "Globex"}
    assert targets(as_of=datetime(2024, 2, 1, tzinfo=UTC), filters={"relations": ["WORKS_AT"]}) == {"Acme"}
    before = {"valid_at": [[DateCondition(op="<", date=MAR)]], "include_invalid": True}
    assert targets(filters=before) == {"Acme", "Tea"}
    ended = {"invalid_at": [[{"op": "is_not_null"}]], "include_invalid": True}
    assert targets(filters=ended) == {"Acme"}
    assert targets(filters={"valid_at": [[{"op": "=", "date": JUN}], [{"op": "=", "date": MAR}]]}) == {
        "Globex"
    }
    dana = graph.search_entities("Dana", group_ids=["g"])[0].entity
    by_distance = graph.search("tea", group_ids=["g"], center_entity=dana.id, reranker="distance")
    assert all(h.distance == 0 for h in by_distance)
    assert len(graph.search("Dana works", group_ids=["g"], reranker="mmr", limit=1)) == 1
    with pytest.raises(InvalidInputError):
        graph.search("x", group_ids=["g"], reranker="distance")
    with pytest.raises(InvalidInputError):
        graph.search("x", group_ids=["g"], filters={"valid_at": [[{"op": "<"}]]})
    with pytest.raises(InvalidInputError):
        graph.search("x", group_ids=["g"], filters={"colour": "red"})
    assert graph.search("x", group_ids=["nobody"]) == []


def test_bad_input_is_refused_before_any_call(graph: Graph, emulator: Emulator) -> None:
    for kwargs in (
        {"content": "", "group_id": "g"},
        {"content": "x", "group_id": ""},
        {"content": "x", "group_id": "g", "source": "email"},
        {"content": "not json", "group_id": "g", "source": "json"},
        {"content": "x", "group_id": "g", "reference_time": "2024-01-01"},
        {"content": "x" * 200_000, "group_id": "g"},
    ):
        with pytest.raises(InvalidInputError):
            graph.add_episode(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        graph.search("x", group_ids=["g"], limit=0)
    with pytest.raises(InvalidInputError):
        graph.search("", group_ids=["g"])
    with pytest.raises(GraphItemNotFoundError):
        graph.get_fact("nope")
    with pytest.raises(GraphItemNotFoundError):
        graph.timeline("nope")
    with pytest.raises(GraphItemNotFoundError):
        graph.delete_fact("nope")
    assert not emulator.requests


def test_naive_times_are_utc(graph: Graph, model: ScriptedModel) -> None:
    _jobs(model)
    result = graph.add_episode("Dana Kim joined Acme.", group_id="g", reference_time=datetime(2024, 1, 1))
    assert result.episode.reference_time == JAN


def test_without_a_chat_deployment_only_extraction_is_refused(graph_url: str, embedder: object) -> None:
    with Graph(store=graph_url, embedder=embedder) as g:  # type: ignore[arg-type]
        assert not g.can_extract
        with pytest.raises(ConfigurationError, match="chat deployment"):
            g.add_episode("hello", group_id="g")
        g.add_fact("A", "KNOWS", "B", group_id="g")
        assert len(g.search("A knows", group_ids=["g"])) == 1


def test_an_episode_with_nothing_in_it_is_still_kept(graph: Graph, model: ScriptedModel) -> None:
    result = graph.add_episode("Hello!", group_id="g", reference_time=JAN)  # the model finds nothing
    assert (result.llm_calls, result.entities_added, result.facts_added) == (1, [], [])
    assert [e.content for e in graph.get_episodes(["g"])] == ["Hello!"]
