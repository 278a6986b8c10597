"""`AsyncGraph` drives the same flows as `Graph`; bulk ingestion keeps each group's order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azmem.emulator import Emulator
from azmem.graph import AddEpisodeResult, AsyncGraph, BulkIngestError, Graph
from azmem.graph.store.dump import Dump

from .conftest import Clock, azure_config
from .graph_script import ScriptedModel, entity, fact

START = datetime(2024, 1, 1, tzinfo=UTC)
LATER = datetime(2025, 1, 1, tzinfo=UTC)
CITIES = ["Lisbon", "Porto", "Faro"]


def _script(model: ScriptedModel) -> list[dict[str, Any]]:
    """Two people moving three times each: order inside a group decides what is current."""
    episodes = []
    for person in ("Ann Lee", "Bo Park"):
        for k, city in enumerate(CITIES):
            text = f"{person} moved to {city}."
            model.on(
                text,
                [entity(person), entity(city)],
                [fact(person, "LIVES_IN", city, f"{person} lives in {city}.")],
            )
            episodes.append(
                {
                    "content": text,
                    "group_id": person.split()[0].lower(),
                    "reference_time": START + timedelta(days=30 * k),
                }
            )
    return episodes


def canonical(dump: Dump) -> list[Any]:
    """A graph without its ids and system times: what replays must reproduce."""
    names = {e.id: e.name for e in dump.entities}
    return [
        sorted((e.name, tuple(e.aliases), tuple(e.labels), e.summary) for e in dump.entities),
        sorted(
            (
                names[f.source_id],
                f.name,
                names[f.target_id],
                f.fact,
                str(f.valid_at),
                str(f.invalid_at),
                f.expired_at is None,
                len(f.episodes),
            )
            for f in dump.facts
        ),
        sorted((str(e.reference_time), e.group_id, e.content) for e in dump.episodes),
    ]


def test_bulk_keeps_group_order_and_reports_progress(
    graph: Graph, model: ScriptedModel, clock: Clock
) -> None:
    clock.set(LATER)
    episodes = _script(model)
    seen: list[tuple[int, int]] = []
    results = graph.add_episodes(episodes, progress=lambda done, total, _r: seen.append((done, total)))
    assert [r.episode.content for r in results] == [e["content"] for e in episodes]
    assert sorted(seen) == [(i, 6) for i in range(1, 7)]
    for group in ("ann", "bo"):
        current = graph.search("lives", group_ids=[group], filters={"relations": ["LIVES_IN"]})
        assert [h.fact.target_name for h in current] == ["Faro"]


async def test_async_graph_gives_the_same_graph(
    emulator: Emulator, model: ScriptedModel, embedder: Any, graph_url: str, clock: Clock
) -> None:
    clock.set(LATER)
    episodes = _script(model)
    async with AsyncGraph(
        config=azure_config(emulator), embedder=embedder, store=graph_url, clock=clock
    ) as ag:
        done: list[AddEpisodeResult] = []
        results = await ag.add_episodes(
            episodes, progress=lambda _d, _t, r: done.append(r), max_concurrency=2
        )
        assert len(results) == len(done) == 6
        hits = await ag.search("lives", group_ids=["ann"], filters={"relations": ["LIVES_IN"]})
        assert [h.fact.target_name for h in hits] == ["Faro"]
        timeline = await ag.timeline(hits[0].fact.source_id)
        assert [f.target_name for f in timeline] == CITIES
        async_dump = ag.store.dump(["ann", "bo"])
        exported = await ag.export(["ann"])
        assert '"Faro"' in exported
        assert (await ag.get_entity(hits[0].fact.source_id)).name == "Ann Lee"
        assert len(await ag.get_episodes(["ann"])) == 3
        assert (await ag.search_entities("Ann", group_ids=["ann"]))[0].entity.name == "Ann Lee"
        fact = await ag.add_fact("Ann Lee", "LIKES", "Tea", group_id="ann")
        await ag.delete_fact(fact.id)
        await ag.delete_episode(results[0].episode.id)
        assert (await ag.clear("bo")).episodes == 3
    with Graph(config=azure_config(emulator), embedder=embedder, store=":memory:", clock=clock) as g:
        g.add_episodes(episodes)
        assert canonical(g.store.dump(["ann", "bo"])) == canonical(async_dump)


def test_a_failing_group_stops_alone(graph: Graph, model: ScriptedModel) -> None:
    episodes = _script(model)
    model.failing.add("Ann Lee moved to Porto")
    with pytest.raises(BulkIngestError) as caught:
        graph.add_episodes(episodes, max_concurrency=2)
    error = caught.value
    assert sorted(error.errors) == [1]
    assert [r is not None for r in error.results] == [True, False, False, True, True, True]
    assert graph.store.counts(["ann"]).episodes == 1
    model.failing.clear()
    graph.add_episodes([e for e, r in zip(episodes, error.results, strict=True) if r is None])
    assert graph.store.counts(["ann"]).episodes == 3
