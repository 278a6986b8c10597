"""Fixtures for the memory-engine tests: the real local embedder (loaded once) and Memory on real SQLite.

Azure-backed memories talk to the session's emulator over HTTP through the real SDK;
retries are kept fast so the failure tests do not wait out production backoff.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.memory import Memory

CHAT = "gpt-4o"


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each backend: the engine's tests hold for both (PostgreSQL is a real server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memory.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def memory(local_embedder: LocalEmbedder, store_url: str) -> Iterator[Memory]:
    """Memory with no Azure: local embeddings, a fresh store (SQLite file or PostgreSQL database)."""
    with Memory(embedder=local_embedder, store_url=store_url) as m:
        yield m


def azure_config(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": CHAT,
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
        "store": {"path": tmp_path / "memory.db"},
    }


@pytest.fixture
def azure_memory(emulator: Emulator, local_embedder: LocalEmbedder, tmp_path: Path) -> Iterator[Memory]:
    """Memory with a chat deployment on the emulator (embeddings stay local)."""
    with Memory(config=azure_config(emulator, tmp_path), embedder=local_embedder) as m:
        yield m


def facts(*texts: str, subject: str = "user") -> str:
    """A scripted `memory.extract` reply."""
    return json.dumps({"facts": [{"text": t, "subject": subject} for t in texts]})


def decisions(*items: tuple[int, str, int | None, str]) -> str:
    """A scripted `memory.reconcile` reply: (fact, event, target, text) per decision."""
    return json.dumps(
        {"decisions": [{"fact": f, "event": e, "target": t, "text": x} for f, e, t, x in items]}
    )


def chat_requests(emulator: Emulator) -> list[dict[str, Any]]:
    return [r.json for r in emulator.requests if r.path.endswith("/chat/completions") and r.json is not None]
