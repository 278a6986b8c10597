"""An embedder's answer of the wrong shape stops the memory engine and the graph before any write.

Both zip the texts they sent with the rows that came back; a missing row would pair a
text with its neighbour's vector. The one check (`embeddings.rows.check_rows`) is what
turns that into an error, here through the real faces on a real SQLite file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from azmem.embeddings.rows import check_rows
from azmem.graph import Graph
from azmem.memory import Memory


class ShortEmbedder:
    """A deterministic embedder that drops the last row of every answer (a broken remote, say)."""

    name = "test:short8"
    dimension = 8

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, len(text) % self.dimension] = 1.0
        return out[:-1]


def test_rows_of_the_right_shape_come_back_as_float32() -> None:
    rows = check_rows([[1, 0], [0, 1]], 2)
    assert rows.dtype == np.float32
    assert rows.tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    ("value", "n", "shape"),
    [
        (np.ones((1, 4)), 2, "(1, 4)"),  # a row short
        (np.ones((3, 4)), 2, "(3, 4)"),  # a row too many
        (np.ones(4), 1, "(4,)"),  # one vector, not a matrix of one row
        (np.ones((1, 1, 4)), 1, "(1, 1, 4)"),
    ],
)
def test_any_other_shape_is_the_embedders_fault(value: object, n: int, shape: str) -> None:
    with pytest.raises(RuntimeError) as caught:
        check_rows(value, n)
    assert str(caught.value) == f"embedder returned shape {shape} for {n} texts"


def test_memory_refuses_a_short_answer_and_writes_nothing(tmp_path: Path) -> None:
    with Memory(embedder=ShortEmbedder(), store_url=f"sqlite:///{tmp_path / 'm.db'}") as memory:
        with pytest.raises(RuntimeError, match=r"embedder returned shape \(1, 8\) for 2 texts"):
            memory.add(
                [{"role": "user", "content": "I live in Oslo."}, {"role": "user", "content": "I like tea."}],
                user_id="u",
                infer=False,
            )
        assert memory.get_all(user_id="u").results == []


def test_graph_refuses_a_short_answer_and_writes_nothing(tmp_path: Path) -> None:
    with Graph(store=f"sqlite:///{tmp_path / 'm.db'}", embedder=ShortEmbedder()) as graph:
        with pytest.raises(RuntimeError, match=r"embedder returned shape \(2, 8\) for 3 texts"):
            graph.add_fact("Ann Lee", "LIVES_IN", "Oslo", group_id="g")
        assert graph.store.counts(["g"]).model_dump() == {"episodes": 0, "entities": 0, "facts": 0}
