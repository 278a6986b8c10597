"""Groups are separate graphs: nothing resolves, matches, is found or is removed across them."""

from __future__ import annotations

from datetime import UTC, datetime

from azmem.graph import Graph

from .graph_script import ScriptedModel, entity, fact

JAN = datetime(2024, 1, 1, tzinfo=UTC)


def test_groups_share_nothing(graph: Graph, model: ScriptedModel) -> None:
    model.on(
        "Lexi works",
        [entity("Alexandra Chen", aliases=["Lexi"]), entity("Acme")],
        [fact("Alexandra Chen", "WORKS_AT", "Acme", "Alexandra Chen works at Acme.")],
    )
    model.on(
        "Lexi lives",
        [entity("Lexi"), entity("Oslo")],
        [fact("Lexi", "LIVES_IN", "Oslo", "Lexi lives in Oslo.")],
    )
    a = graph.add_episode("Lexi works at Acme.", group_id="a", reference_time=JAN)
    b = graph.add_episode("Lexi works at Acme.", group_id="b", reference_time=JAN)
    assert {e.id for e in a.entities_added}.isdisjoint({e.id for e in b.entities_added})
    assert b.llm_calls == 1  # group a's identical facts are no candidates in group b

    c = graph.add_episode("Lexi lives in Oslo.", group_id="c", reference_time=JAN)
    assert [e.name for e in c.entities_added] == ["Lexi", "Oslo"]  # a's alias means nothing in c
    assert not c.entities_merged

    for group, mine in (("a", a), ("b", b)):
        hits = graph.search("where does Lexi work", group_ids=[group])
        assert [h.fact.id for h in hits] == [mine.facts_added[0].id]
        entities = graph.search_entities("Lexi", group_ids=[group])
        assert {h.entity.group_id for h in entities} == {group}
        assert [e.id for e in graph.get_episodes([group])] == [mine.episode.id]
    both = graph.search("where does Lexi work", group_ids=["a", "b"])
    assert {h.fact.group_id for h in both} == {"a", "b"}

    graph.delete_episode(a.episode.id)
    graph.clear("c")
    assert graph.store.counts(["a"]).facts == 0
    assert graph.store.counts(["b"]).model_dump() == {"episodes": 1, "entities": 2, "facts": 1}
    assert graph.get_fact(b.facts_added[0].id).episodes == [b.episode.id]
