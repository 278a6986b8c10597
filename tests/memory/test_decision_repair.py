"""Reconciliation answers whose event contradicts their target are repaired, not re-asked.

Strict decoding constrains fields one by one, so a deployment can return ADD with a
target or UPDATE without one; re-asking reproduced the same answer and every second
inferred ``add`` in a scope failed (found by running the CLI against the emulator).
"""

from __future__ import annotations

import pytest

from azmem.emulator import Emulator
from azmem.memory import Memory
from azmem.memory.schemas import Decision

from .conftest import CHAT, decisions, facts


@pytest.mark.parametrize(
    ("event", "target", "expected_event", "expected_target"),
    [
        ("ADD", 0, "ADD", None),
        ("UPDATE", None, "ADD", None),
        ("DELETE", None, "NONE", None),
        ("UPDATE", 1, "UPDATE", 1),
        ("DELETE", 1, "DELETE", 1),
        ("NONE", 1, "NONE", 1),
    ],
)
def test_event_and_target_are_made_consistent(
    event: str, target: int | None, expected_event: str, expected_target: int | None
) -> None:
    d = Decision.model_validate({"fact": 0, "event": event, "target": target, "text": "x"})
    assert (d.event, d.target) == (expected_event, expected_target)


def test_add_with_a_target_still_adds_and_touches_nothing_else(
    azure_memory: Memory, emulator: Emulator
) -> None:
    azure_memory.add("The user likes tea", user_id="bo", infer=False)
    before = azure_memory.get_all(user_id="bo").results
    emulator.script(
        CHAT,
        [facts("The user likes green tea"), decisions((0, "ADD", 0, "The user likes green tea"))],
    )
    result = azure_memory.add("I like green tea", user_id="bo")
    assert [(e.event, e.memory) for e in result.results] == [("ADD", "The user likes green tea")]
    after = {i.id: i.memory for i in azure_memory.get_all(user_id="bo").results}
    assert after[before[0].id] == "The user likes tea"
    assert len(after) == 2


def test_unscripted_emulator_accepts_a_second_inferred_add(azure_memory: Memory) -> None:
    for text in ("first fact", "second fact", "third fact"):
        azure_memory.add(text, user_id="cy")
    assert len(azure_memory.get_all(user_id="cy").results) == 3
