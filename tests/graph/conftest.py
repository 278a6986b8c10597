"""Fixtures for the graph tests: one suite, both backends, the emulator as the model.

``graph_url`` is parametrised over SQLite and PostgreSQL (a real server from
tests/pg_server.py), so every test that builds a graph from it runs on both. The
emulator serves a chat deployment (extraction) and a small one (resolution), both
answered by a `ScriptedModel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.graph import Graph

from .graph_script import ScriptedModel

CHAT, SMALL = "gpt-4o", "gpt-4o-mini"


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The real MiniLM, loaded once: resolution's similarity rules are about meaning."""
    found = LocalEmbedder()
    found.load()
    return found


class HashEmbedder:
    """Words hashed into 64 dimensions: fast, deterministic, similar texts similar (property tests)."""

    name = "test:hash64"
    dimension = 64

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, sum(map(ord, word)) % self.dimension] += 1.0
            out[i, 0] += 0.01
            out[i] /= np.linalg.norm(out[i])
        return out


@pytest.fixture(params=["sqlite", "postgres"])
def graph_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memory.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@dataclass
class Clock:
    """System time under the test's control."""

    now: datetime = datetime(2023, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime, after: timedelta = timedelta(hours=1)) -> datetime:
        self.now = when + after
        return self.now


def azure_config(emulator: Emulator) -> dict[str, Any]:
    return {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": CHAT,
        "small_chat": SMALL,
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
    }


@pytest.fixture
def model(emulator: Emulator) -> ScriptedModel:
    scripted = ScriptedModel()
    emulator.script(CHAT, scripted)
    emulator.script(SMALL, scripted)
    return scripted


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def graph(
    emulator: Emulator, model: ScriptedModel, embedder: LocalEmbedder, graph_url: str, clock: Clock
) -> Iterator[Graph]:
    with Graph(config=azure_config(emulator), embedder=embedder, store=graph_url, clock=clock) as g:
        yield g


def chat_deployments(emulator: Emulator) -> list[str]:
    return [r.deployment or "" for r in emulator.requests if r.path.endswith("/chat/completions")]
