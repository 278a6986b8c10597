"""The scripted story (tests/graph/story.py) through a real graph, on SQLite and on PostgreSQL.

Twenty episodes go in through the emulator; then the graph must know which facts
ended and when (world time), when it learned so (system time), answer ``as_of`` and
``known_at`` questions at several dates, and hold one entity for one person however
she was named.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from azmem.emulator import Emulator
from azmem.graph import Entity, Fact, Graph
from azmem.graph.names import normalize

from .conftest import SMALL, Clock, chat_deployments
from .graph_script import ScriptedModel
from .story import ALEX, CHAPTERS, LAG_DAYS, d, script

GROUP = "story"


def _ingest(graph: Graph, model: ScriptedModel, clock: Clock) -> tuple[list[int], list[datetime]]:
    script(model)
    calls, learned = [], []
    for chapter in CHAPTERS:
        learned.append(clock.set(chapter.when, timedelta(days=LAG_DAYS)))
        result = graph.add_episode(
            chapter.text,
            group_id=GROUP,
            reference_time=chapter.when,
            source=chapter.source,  # type: ignore[arg-type]
        )
        calls.append(result.llm_calls)
    return calls, learned


def _entity(graph: Graph, name: str) -> Entity:
    dump = graph.store.dump([GROUP])
    found = [e for e in dump.entities if normalize(e.name) == normalize(name)]
    assert len(found) == 1, [e.name for e in dump.entities]
    return found[0]


def _where(graph: Graph, person: Entity, relations: list[str], **view: datetime) -> set[str]:
    hits = graph.search(
        f"{person.name} {' '.join(relations).lower()}",
        group_ids=[GROUP],
        filters={"relations": relations},
        center_entity=person.id,
        limit=20,
        **view,  # type: ignore[arg-type]
    )
    return {f"{h.fact.name}:{h.fact.target_name}" for h in hits if h.fact.source_id == person.id}


def _fact(facts: list[Fact], relation: str, target: str, valid_at: datetime | None = None) -> Fact:
    found = [
        f
        for f in facts
        if f.name == relation and f.target_name == target and (valid_at is None or f.valid_at == valid_at)
    ]
    assert len(found) == 1, [(f.name, f.target_name, f.valid_at) for f in facts]
    return found[0]


def test_the_story(graph: Graph, model: ScriptedModel, clock: Clock, emulator: Emulator) -> None:
    calls, learned = _ingest(graph, model, clock)

    # -- cost: never more than two calls, one when nothing was ambiguous -----------------
    assert max(calls) <= 2
    for chapter, spent in zip(CHAPTERS, calls, strict=True):
        if chapter.calls is not None:
            assert spent == chapter.calls, chapter.text
    assert sum(calls) == len(model.calls)
    # Resolution goes to the small deployment, extraction to the chat one.
    assert chat_deployments(emulator).count(SMALL) == model.calls.count("resolve")

    # -- one person, however named ----------------------------------------------------------
    alex = _entity(graph, ALEX)
    assert {"lexi", "alex"} <= {normalize(a) for a in alex.aliases}
    sam = _entity(graph, "Sam Rivera")
    assert graph.get_entity(alex.id).name == ALEX
    assert graph.store.counts([GROUP]).episodes == len(CHAPTERS)

    # -- what ended, and when (world time), and when we learned (system time) --------------
    timeline = graph.timeline(alex.id)
    berlin = _fact(timeline, "LIVES_IN", "Berlin")
    assert (berlin.valid_at, berlin.invalid_at, berlin.expired_at) == (
        d("2023-01-10"),
        d("2023-06-13"),
        learned[4],
    )
    lisbon_1 = _fact(timeline, "LIVES_IN", "Lisbon", d("2023-06-13"))
    assert (lisbon_1.invalid_at, lisbon_1.expired_at) == (d("2024-04-01"), learned[11])
    porto = _fact(timeline, "LIVES_IN", "Porto")
    assert (porto.valid_at, porto.invalid_at) == (d("2024-04-01"), d("2024-11-01"))
    toronto = _fact(timeline, "LIVES_IN", "Toronto")  # news about the past ends where Berlin began
    assert (toronto.valid_at, toronto.invalid_at, toronto.expired_at) == (
        d("2019-01-01"),
        d("2023-01-10"),
        learned[14],
    )
    lisbon_2 = _fact(timeline, "LIVES_IN", "Lisbon", d("2024-11-01"))
    assert lisbon_2.invalid_at is None
    assert lisbon_2.expired_at is None
    acme = _fact(timeline, "WORKS_AT", "Acme Corp")
    assert (acme.invalid_at, acme.expired_at) == (d("2023-10-31"), learned[6])
    assert len(acme.episodes) == 3  # stated in episodes 1, 4 and 7: one fact, three sources
    globex = _fact(timeline, "WORKS_AT", "Globex")
    assert globex.invalid_at is None
    assert len(globex.episodes) == 2
    assert _fact(timeline, "DATING", "Sam Rivera").invalid_at == d("2023-09-01")
    assert _fact(timeline, "ENGAGED_TO", "Sam Rivera").invalid_at == d("2024-02-14")
    assert _fact(timeline, "MARRIED_TO", "Sam Rivera").invalid_at is None
    assert [f.target_name for f in timeline if f.name == "OWNS"] == ["Miso", "Tofu"]  # two cats, no conflict
    assert timeline[0] == toronto  # world-time order
    sam_jobs = [f for f in graph.timeline(sam.id) if f.name == "WORKS_AT"]
    assert [(f.target_name, f.invalid_at) for f in sam_jobs] == [
        ("Porto General Hospital", d("2024-09-01")),
        ("Clinica Lumen", None),
    ]

    # -- "as of": true in the world then ---------------------------------------------------------
    home = ["LIVES_IN"]
    assert _where(graph, alex, home, as_of=d("2020-06-01")) == {"LIVES_IN:Toronto"}
    assert _where(graph, alex, home, as_of=d("2023-03-01")) == {"LIVES_IN:Berlin"}
    assert _where(graph, alex, home, as_of=d("2023-08-01")) == {"LIVES_IN:Lisbon"}
    assert _where(graph, alex, home, as_of=d("2024-05-01")) == {"LIVES_IN:Porto"}
    assert _where(graph, alex, home) == {"LIVES_IN:Lisbon"}  # now
    job = ["WORKS_AT"]
    assert _where(graph, alex, job, as_of=d("2023-05-15")) == {"WORKS_AT:Acme Corp"}
    assert _where(graph, alex, job, as_of=d("2023-11-15")) == set()  # between jobs
    assert _where(graph, alex, job, as_of=d("2024-07-01")) == {"WORKS_AT:Globex"}
    love = ["DATING", "ENGAGED_TO", "MARRIED_TO"]
    assert _where(graph, alex, love, as_of=d("2023-06-01")) == {"DATING:Sam Rivera"}
    assert _where(graph, alex, love, as_of=d("2023-12-01")) == {"ENGAGED_TO:Sam Rivera"}
    assert _where(graph, alex, love, as_of=d("2024-03-01")) == {"MARRIED_TO:Sam Rivera"}

    # -- "known at": as the system believed then ---------------------------------------------------
    before_move_news, after_move_news = learned[4] - timedelta(hours=1), learned[4] + timedelta(hours=1)
    assert _where(graph, alex, home, known_at=before_move_news) == {"LIVES_IN:Berlin"}
    assert _where(graph, alex, home, known_at=after_move_news) == {"LIVES_IN:Lisbon"}
    july = d("2023-07-01")
    assert _where(graph, alex, home, as_of=july, known_at=before_move_news) == {"LIVES_IN:Berlin"}
    assert _where(graph, alex, home, as_of=july) == {"LIVES_IN:Lisbon"}
    # Before episode 7 was learned, she still worked at Acme as far as the system knew.
    assert _where(graph, alex, job, as_of=d("2023-11-10"), known_at=learned[6] - timedelta(hours=1)) == {
        "WORKS_AT:Acme Corp"
    }
    # Toronto was learned in mid-2024: in 2023 the system knew nothing of it.
    assert _where(graph, alex, home, as_of=d("2020-06-01"), known_at=learned[13]) == set()
    assert _where(graph, alex, home, known_at=d("2023-01-01")) == set()  # before anything
    # The unranked listing sees what search sees.
    for view in ({"as_of": d("2023-03-01")}, {"known_at": before_move_news}, {}):
        listed = graph.list_facts([GROUP], **view)  # type: ignore[arg-type]
        homes = {
            f"LIVES_IN:{f.target_name}" for f in listed if f.source_id == alex.id and f.name == "LIVES_IN"
        }
        assert homes == _where(graph, alex, home, **view)
    assert graph.find_entity("lexi", group_id=GROUP) == alex
    past = graph.timeline(alex.id, known_at=before_move_news)
    assert _fact(past, "LIVES_IN", "Berlin").invalid_at is None  # not yet known to have ended

    # -- invalidation never deleted anything: the history is all there -----------------------------
    history = graph.search(
        "Alexandra lives", group_ids=[GROUP], filters={"relations": home, "include_invalid": True}, limit=20
    )
    assert {h.fact.target_name for h in history if h.fact.source_id == alex.id} == {
        "Toronto",
        "Berlin",
        "Lisbon",
        "Porto",
    }


def test_plain_search_finds_current_facts_through_a_nickname(
    graph: Graph, model: ScriptedModel, clock: Clock
) -> None:
    _ingest(graph, model, clock)
    hits = graph.search("Where does Lexi live?", group_ids=[GROUP], limit=5)
    alex = _entity(graph, ALEX)
    assert all(h.fact.invalid_at is None for h in hits)
    lives = [h for h in hits if h.fact.name == "LIVES_IN" and h.fact.source_id == alex.id]
    assert [h.fact.target_name for h in lives] == ["Lisbon"]
    assert lives[0].distance == 0  # "Lexi" named her: the walk started from her
    found = graph.search_entities("Lexi", group_ids=[GROUP])
    assert found[0].entity.id == alex.id
    recent = graph.get_episodes([GROUP], limit=3)
    assert [e.content for e in recent] == [c.text for c in CHAPTERS[-3:]]
