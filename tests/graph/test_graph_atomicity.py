"""Each episode applies atomically: a fault at any step leaves the graph exactly as it was.

Faults are injected where they happen in production: the extraction call and the
resolution call fail at the (emulated) service, the embedder fails, and the write
itself fails half-way through its transaction. After each, the graph's full export
(embeddings included) is unchanged, and sending the episode again succeeds. A write
that finds the group changed by another writer is re-planned, not applied stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from azmem.emulator import Emulator, Fault
from azmem.errors import AzmemError, ServiceError, StoreError
from azmem.graph import Graph
from azmem.graph.changes import Changes, NewFact
from azmem.graph.store import GraphStore

from .conftest import CHAT, SMALL, azure_config
from .graph_script import ScriptedModel, entity, fact

JAN, MAR = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
MOVE = "Dana Kim moved to Globex and to Porto."


def _script(model: ScriptedModel) -> None:
    model.on(
        "joined Acme",
        [entity("Dana Kim"), entity("Acme"), entity("Lisbon")],
        [
            fact("Dana Kim", "WORKS_AT", "Acme", "Dana Kim works at Acme."),
            fact("Dana Kim", "LIVES_IN", "Lisbon", "Dana Kim lives in Lisbon."),
        ],
    )
    model.on(
        "moved to Globex",
        [entity("Dana Kim"), entity("Globex"), entity("Porto")],
        [
            fact("Dana Kim", "WORKS_AT", "Globex", "Dana Kim works at Globex."),
            fact("Dana Kim", "LIVES_IN", "Porto", "Dana Kim lives in Porto."),
        ],
    )


def _snapshot(graph: Graph) -> tuple[str, Any]:
    return graph.export(["g"], include_embeddings=True), graph.store.counts(["g"])


@pytest.fixture
def seeded(graph: Graph, model: ScriptedModel) -> Graph:
    _script(model)
    graph.add_episode("Dana Kim joined Acme in Lisbon.", group_id="g", reference_time=JAN)
    return graph


def _moved_correctly(graph: Graph) -> None:
    result = graph.add_episode(MOVE, group_id="g", reference_time=MAR)
    assert {f.target_name for f in result.facts_invalidated} == {"Acme", "Lisbon"}
    assert graph.store.counts(["g"]).model_dump() == {"episodes": 2, "entities": 5, "facts": 4}


@pytest.mark.parametrize(("deployment", "step"), [(CHAT, "extract"), (SMALL, "resolve")])
def test_a_failed_llm_call_changes_nothing(
    seeded: Graph, emulator: Emulator, model: ScriptedModel, deployment: str, step: str
) -> None:
    before = _snapshot(seeded)
    emulator.fault(deployment, Fault(status=500))  # outlives the client's retries
    with pytest.raises(ServiceError):
        seeded.add_episode(MOVE, group_id="g", reference_time=MAR)
    if step == "resolve":
        assert model.calls[-1] == "extract"  # extraction had succeeded: the failure was call 2
    assert _snapshot(seeded) == before
    emulator.clear_faults()
    _moved_correctly(seeded)


class Broken(Exception):
    pass


class FailingEmbedder:
    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any("Globex" in t for t in texts):
            raise Broken("embedder down")
        vectors: npt.NDArray[np.float32] = self.inner.embed(texts)
        return vectors


def test_a_failed_embedding_changes_nothing(
    emulator: Emulator, model: ScriptedModel, embedder: Any, graph_url: str
) -> None:
    _script(model)
    with Graph(config=azure_config(emulator), embedder=FailingEmbedder(embedder), store=graph_url) as g:
        g.add_episode("Dana Kim joined Acme in Lisbon.", group_id="g", reference_time=JAN)
        before = _snapshot(g)
        with pytest.raises(Broken):
            g.add_episode(MOVE, group_id="g", reference_time=MAR)
        assert _snapshot(g) == before


class HalfWayStore:
    """The real store, whose next write fails after the episode, entities and a fact are written."""

    def __init__(self, inner: GraphStore) -> None:
        self.inner = inner
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, changes: Changes) -> None:
        if self.armed and len(changes.new_facts) >= 2:
            self.armed = False
            last = changes.new_facts[-1]
            bad = NewFact(last.fact, np.zeros(3, dtype=np.float32))  # the wrong dimension: refused mid-write
            changes = replace(changes, new_facts=[*changes.new_facts[:-1], bad])
        self.inner.apply(changes)


def test_a_write_failing_half_way_changes_nothing(
    emulator: Emulator, model: ScriptedModel, embedder: Any, graph_url: str
) -> None:
    _script(model)
    with Graph(config=azure_config(emulator), embedder=embedder, store=graph_url) as real:
        real.add_episode("Dana Kim joined Acme in Lisbon.", group_id="g", reference_time=JAN)
        store = HalfWayStore(real.store)
        with Graph(config=azure_config(emulator), embedder=embedder, store=store) as g:  # type: ignore[arg-type]
            before = _snapshot(g)
            with pytest.raises(StoreError):
                g.add_episode(MOVE, group_id="g", reference_time=MAR)
            assert _snapshot(g) == before
            _moved_correctly(g)


class InterruptedStore(HalfWayStore):
    """Before the next write lands, another writer adds a fact to the same group."""

    def __init__(self, inner: GraphStore, other: Graph) -> None:
        super().__init__(inner)
        self.other = other

    def apply(self, changes: Changes) -> None:
        if self.armed and changes.episode is not None:
            self.armed = False
            self.other.add_fact("Dana Kim", "LIKES", "Tea", group_id="g")
        self.inner.apply(changes)


def test_a_concurrent_write_is_replanned_not_overwritten(
    emulator: Emulator, model: ScriptedModel, embedder: Any, graph_url: str
) -> None:
    _script(model)
    with Graph(config=azure_config(emulator), embedder=embedder, store=graph_url) as other:
        other.add_episode("Dana Kim joined Acme in Lisbon.", group_id="g", reference_time=JAN)
        store = InterruptedStore(other.store, other)
        with Graph(config=azure_config(emulator), embedder=embedder, store=store) as g:  # type: ignore[arg-type]
            result = g.add_episode(MOVE, group_id="g", reference_time=MAR)
            assert result.llm_calls == 3  # call 2 asked again on the fresh reads; call 1 never repeated
            assert model.calls.count("extract") == 2  # the first episode's and this one's
            counts = g.store.counts(["g"])
            assert (counts.episodes, counts.facts) == (2, 5)
            assert {f.target_name for f in result.facts_invalidated} == {"Acme", "Lisbon"}


def test_errors_are_typed(seeded: Graph, emulator: Emulator, model: ScriptedModel) -> None:
    model.failing.add("refused")
    with pytest.raises(AzmemError) as caught:
        seeded.add_episode("This one is refused.", group_id="g")
    assert caught.value.status_code == 400
