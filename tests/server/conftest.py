"""Server test harness: the real app (real store, real local embedder) driven through real clients.

In-process tests talk to the app with httpx2 over its ASGI transport, the lifespan run
for real (MCP session manager, embedder warm-up, closing the store). Process tests
start ``azmem serve`` / ``azmem mcp`` and talk over a loopback socket or stdio.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from azmem.azure.settings import AzmemSettings
from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.graph import Graph
from azmem.server import ServerConfig, create_app
from azmem.stores.keys import KeyRing

#: The keys every harness has: name -> binding.
KEYS: dict[str, dict[str, Any]] = {
    "alice": {"user_ids": ["alice"]},
    "alice-ro": {"user_ids": ["alice"], "read_only": True},
    "team": {"user_ids": ["alice", "carol"]},
    "bot": {"agent_ids": ["bot"]},
    "admin": {},
}
AZMEM = str(Path(sys.executable).with_name("azmem"))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan, entered and exited in one task (anyio's cancel scopes require it)."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the start-up error
    try:
        yield
    finally:
        stop.set()
        await task


@dataclass
class Harness:
    app: FastAPI
    client: httpx2.AsyncClient
    ring: KeyRing
    secrets: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}

    async def add(self, text: str, key: str = "admin", **body: Any) -> str:
        """Add one verbatim memory, return its id."""
        r = await self.client.post(
            "/v1/memories", json={"text": text, "infer": False, **body}, headers=self.auth(key)
        )
        assert r.status_code == 200, r.text
        return str(r.json()["results"][0]["id"])


def settings_for(path: Path, **extra: Any) -> AzmemSettings:
    return AzmemSettings.load(None, store={"url": str(path)}, **extra)


@asynccontextmanager
async def harness_for(
    path: Path, config: ServerConfig | None = None, settings: AzmemSettings | None = None
) -> AsyncIterator[Harness]:
    settings = settings or settings_for(path)
    app = create_app(settings=settings, config=config or ServerConfig(key_cache_seconds=0))
    services = app.state.services
    ring = services.keys.ring if services.keys is not None else None
    secrets = {name: ring.create(name, **kw).secret for name, kw in KEYS.items()} if ring is not None else {}
    async with (
        running(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1") as client,
    ):
        yield Harness(app, client, ring, secrets)  # type: ignore[arg-type]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with harness_for(tmp_path / "memory.db") as h:
        yield h


#: The emulator's deployments the graph tests use: extraction on the chat one, resolution on the small one.
CHAT, SMALL = "gpt-4o", "gpt-4o-mini"


def chat_config(emulator: Emulator) -> dict[str, Any]:
    """Settings overrides for a chat deployment (and a small one) on the emulator."""
    return {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": CHAT,
        "small_chat": SMALL,
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
    }


def seed_graph(store: Path, emulator: Emulator, group: str) -> dict[str, str]:
    """One episode (through the emulator, scripted) and one triplet in ``group``'s graph; their ids.

    Written with the library straight into the store file, so a chatless server under test
    still has an episode of someone else's to refuse.
    """
    from graph.graph_script import ScriptedModel, entity, fact

    model = ScriptedModel()
    model.on(
        "joined Initech",
        [entity(f"{group} Doe"), entity("Initech")],
        [fact(f"{group} Doe", "WORKS_AT", "Initech", f"{group} Doe works at Initech.")],
    )
    emulator.script(CHAT, model)
    emulator.script(SMALL, model)
    try:
        with Graph(config=chat_config(emulator), embedder=LocalEmbedder(), store=str(store)) as g:
            episode = g.add_episode(f"{group} Doe joined Initech.", group_id=group)
            triplet = g.add_fact(f"{group} Doe", "LIVES_IN", "Oslo", group_id=group)
    finally:
        emulator.reset()
    return {"episode_id": episode.episode.id, "fact_id": triplet.id, "entity_id": triplet.source_id}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_serve(
    tmp_path: Path, *args: str, store: Path | None = None, env: dict[str, str] | None = None
) -> ServeProcess:
    """``azmem serve`` on a free loopback port, once /healthz answers."""
    port = free_port()
    err = tmp_path / f"serve-{port}.err"
    with err.open("wb") as stderr:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [AZMEM, "serve", "--port", str(port), "--store", str(store or tmp_path / "memory.db"), *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"azmem serve exited {proc.returncode}: {err.read_text()}")
        try:
            if httpx2.get(f"{url}/readyz", timeout=1).status_code == 200:
                return ServeProcess(proc, url, err)
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"azmem serve did not become ready: {err.read_text()}")


def stop(process: ServeProcess) -> None:
    if process.proc.poll() is None:
        process.proc.terminate()
        try:
            process.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def make(*args: str, **kwargs: Any) -> ServeProcess:
        process = start_serve(tmp_path, *args, **kwargs)
        started.append(process)
        return process

    yield make
    for process in started:
        stop(process)
