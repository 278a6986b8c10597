"""Properties over random episode sequences (hypothesis), on both backends.

* Invalidation never deletes: every fact ever written is still there after any later
  episode, with its sentence, endpoints, ``valid_at`` and ``created_at`` unchanged; an
  end, once known, is never forgotten and only ever moves earlier; ``invalid_at`` and
  ``expired_at`` are set together.
* Replaying the same episodes (same answers, same clock) gives the same graph.

Each example writes to its own groups of one store, so examples do not see each other.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azmem.emulator import Emulator
from azmem.graph import Fact, Graph
from azmem.graph.store.dump import Dump

from .conftest import CHAT, SMALL, Clock, HashEmbedder, azure_config
from .graph_script import ScriptedModel, entity, fact

BASE = datetime(2023, 1, 1, tzinfo=UTC)
PEOPLE = ["Ann Lee", "Bo Park"]
RELATIONS = {
    "LIVES_IN": ["Lisbon", "Porto", "Oslo"],
    "WORKS_AT": ["Acme", "Globex"],
    "LIKES": ["Tea", "Chess"],
}


@dataclass(frozen=True)
class Said:
    person: str
    relation: str
    target: str
    start: int | None
    """World day the fact began (None: the episode does not say)."""
    length: int | None
    """Days it lasted (None: still true)."""


said = st.builds(
    Said,
    person=st.sampled_from(PEOPLE),
    relation=st.sampled_from(sorted(RELATIONS)),
    target=st.sampled_from([t for ts in RELATIONS.values() for t in ts]),
    start=st.one_of(st.none(), st.integers(0, 700)),
    length=st.one_of(st.none(), st.integers(1, 200)),
)
stories = st.lists(said, min_size=1, max_size=6)
_ids = itertools.count()


def _day(n: int | None) -> str | None:
    return None if n is None else (BASE + timedelta(days=n)).date().isoformat()


def _install(emulator: Emulator, model: ScriptedModel) -> None:
    emulator.script(CHAT, model)
    emulator.script(SMALL, model)


def _play(
    graph: Graph, clock: Clock, model: ScriptedModel, group: str, story: list[Said]
) -> list[dict[str, Fact]]:
    """Add each episode; the facts of the group after each one."""
    seen = []
    for i, s in enumerate(story):
        text = f"[{group}/{i}] {s.person} {s.relation.lower()} {s.target}"
        end = None if s.start is None or s.length is None else s.start + s.length
        model.on(
            text,
            [entity(s.person), entity(s.target)],
            [
                fact(
                    s.person,
                    s.relation,
                    s.target,
                    f"{s.person} {s.relation.lower()} {s.target}.",
                    _day(s.start),
                    _day(end),
                )
            ],
        )
        when = BASE + timedelta(days=30 * i)
        clock.set(when)
        graph.add_episode(text, group_id=group, reference_time=when)
        seen.append({f.id: f for f in graph.store.dump([group]).facts})
    return seen


def _graph(emulator: Emulator, graph_url: str, clock: Clock) -> Graph:
    return Graph(config=azure_config(emulator), embedder=HashEmbedder(), store=graph_url, clock=clock)


PROPERTY = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(story=stories)
def test_invalidation_never_deletes(emulator: Emulator, graph_url: str, story: list[Said]) -> None:
    model, clock = ScriptedModel(), Clock()
    _install(emulator, model)
    with _graph(emulator, graph_url, clock) as graph:
        history = _play(graph, clock, model, f"p{next(_ids)}", story)
    for before, after in itertools.pairwise(history):
        assert before.keys() <= after.keys()
        for key, old in before.items():
            new = after[key]
            assert (new.fact, new.source_id, new.target_id, new.name, new.valid_at, new.created_at) == (
                old.fact,
                old.source_id,
                old.target_id,
                old.name,
                old.valid_at,
                old.created_at,
            )
            if old.invalid_at is not None:
                assert new.invalid_at is not None
                assert new.invalid_at <= old.invalid_at
    for facts in history:
        for f in facts.values():
            assert (f.invalid_at is None) == (f.expired_at is None)


def _canonical(dump: Dump) -> list[Any]:
    names = {e.id: e.name for e in dump.entities}
    return [
        [(e.name, e.aliases, e.labels, e.summary, e.created_at) for e in dump.entities],
        [
            (
                names[f.source_id],
                f.name,
                names[f.target_id],
                f.fact,
                f.valid_at,
                f.invalid_at,
                f.created_at,
                f.expired_at,
                len(f.episodes),
                f.invalidated_by is None,
            )
            for f in dump.facts
        ],
        [
            (e.content.split("] ", 1)[1], e.reference_time, e.created_at, len(e.entity_ids))
            for e in dump.episodes
        ],
    ]


@PROPERTY
@given(story=stories)
def test_replay_gives_the_same_graph(emulator: Emulator, graph_url: str, story: list[Said]) -> None:
    model, clock = ScriptedModel(), Clock()
    _install(emulator, model)
    first, second = f"r{next(_ids)}", f"r{next(_ids)}"
    with _graph(emulator, graph_url, clock) as graph:
        _play(graph, clock, model, first, story)
        _play(graph, clock, model, second, story)
        assert _canonical(graph.store.dump([first])) == _canonical(graph.store.dump([second]))
