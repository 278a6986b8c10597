"""``POST /v1/import`` is safe to re-post, and shares its import with ``azmem import``.

The route runs the library's idempotent import (`azmem.memory.imports`): every message
has a stable id in its scope, so a re-posted upload adds only what is missing and
reports the rest as ``skipped``; an inferred chunk already imported is skipped without
calling the model. What ``azmem import`` stored is recognised by the server, and the
other way round.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from azmem.embeddings import LocalEmbedder
from azmem.emulator import Emulator
from azmem.memory import Memory
from azmem.memory.imports import ImportConversation, import_conversations
from azmem.server import ServerConfig

from .conftest import CHAT, chat_config, harness_for, settings_for


def _jsonl(*lines: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(x) for x in lines).encode()


MESSAGES = [
    {"role": "user", "content": "I play the cello", "timestamp": "2026-01-02T10:00:00Z"},
    {"role": "assistant", "content": "Nice!", "timestamp": "2026-01-02T10:00:05Z"},
    {"role": "user", "content": "I am allergic to peanuts", "timestamp": "2026-01-02T10:01:00Z"},
]


async def _wait_for(c: Any, location: str, h: dict[str, str]) -> dict[str, Any]:
    for _ in range(500):
        job: dict[str, Any] = (await c.get(location, headers=h)).json()
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError("the job never finished")


async def test_a_reposted_upload_adds_only_what_is_missing(tmp_path: Path) -> None:
    config = ServerConfig(inline_import_conversations=2, key_cache_seconds=0)
    async with harness_for(tmp_path / "m.db", config) as hs:
        c, h = hs.client, hs.auth("alice")
        body = _jsonl(*MESSAGES)
        first = (await c.post("/v1/import", content=body, params={"infer": "false"}, headers=h)).json()
        assert (first["events"]["ADD"], first["skipped"]) == (3, 0)
        again = await c.post("/v1/import", content=body, params={"infer": "false"}, headers=h)
        assert again.status_code == 200, again.text
        assert (again.json()["events"]["ADD"], again.json()["skipped"], again.json()["messages"]) == (0, 3, 3)
        grown = body + b"\n" + _jsonl({"role": "user", "content": "I moved to Lisbon"})
        third = (await c.post("/v1/import", content=grown, params={"infer": "false"}, headers=h)).json()
        assert (third["events"]["ADD"], third["skipped"]) == (1, 3)
        # A line repeated inside one upload is stored once too.
        dup = _jsonl({"messages": [{"role": "user", "content": "tea at five"}] * 2})
        fourth = (await c.post("/v1/import", content=dup, params={"infer": "false"}, headers=h)).json()
        assert (fourth["events"]["ADD"], fourth["skipped"]) == (1, 1)
        texts = [m["memory"] for m in (await c.get("/v1/memories", headers=h)).json()["results"]]
        assert sorted(texts) == sorted(
            ["I play the cello", "Nice!", "I am allergic to peanuts", "I moved to Lisbon", "tea at five"]
        )
        # A job (more conversations than the inline limit) skips the same way, and says so.
        many = _jsonl(*({"messages": [{"role": "user", "content": f"fact {i}"}]} for i in range(4)))
        for expected in ((4, 0), (0, 4)):
            r = await c.post("/v1/import", content=many, params={"infer": "false"}, headers=h)
            assert r.status_code == 202
            job = await _wait_for(c, r.headers["location"], h)
            assert job["status"] == "done"
            assert (job["report"]["events"]["ADD"], job["report"]["skipped"]) == expected
            assert job["done"] == job["report"]["conversations"] == 4
        # Another user's import of the same text is not a re-run.
        other = await c.post(
            "/v1/import", content=body, params={"infer": "false", "user_id": "carol"}, headers=hs.auth("team")
        )
        assert (other.json()["events"]["ADD"], other.json()["skipped"]) == (3, 0)


async def test_the_server_recognises_what_azmem_import_stored(tmp_path: Path) -> None:
    store = tmp_path / "m.db"
    with Memory(settings_for(store), embedder=LocalEmbedder()) as memory:
        tally = import_conversations(
            memory, [ImportConversation(MESSAGES[:2], {"user_id": "alice"})], infer=False
        )
    assert (tally.events["ADD"], tally.skipped) == (2, 0)
    async with harness_for(store) as hs:
        r = await hs.client.post(
            "/v1/import", content=_jsonl(*MESSAGES), params={"infer": "false"}, headers=hs.auth("alice")
        )
        assert (r.json()["events"]["ADD"], r.json()["skipped"]) == (1, 2)
    with Memory(settings_for(store), embedder=LocalEmbedder()) as memory:
        tally = import_conversations(
            memory, [ImportConversation(MESSAGES, {"user_id": "alice"})], infer=False
        )
        assert (tally.events["ADD"], tally.skipped) == (0, 3)
        assert len(memory.get_all(user_id="alice").results) == 3


async def test_an_inferred_repost_skips_its_chunks_without_calling_the_model(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.script(
        CHAT,
        [
            json.dumps({"facts": [{"text": "Alice plays the cello", "subject": "user"}]}),
            json.dumps({"facts": [{"text": "Alice is allergic to peanuts", "subject": "user"}]}),
            json.dumps(
                {
                    "decisions": [
                        {"fact": 0, "event": "ADD", "target": None, "text": "Alice is allergic to peanuts"}
                    ]
                }
            ),
        ],
    )
    settings = settings_for(tmp_path / "m.db", **chat_config(emulator))
    async with harness_for(tmp_path / "m.db", settings=settings) as hs:
        c, h = hs.client, hs.auth("alice")
        params = {"infer": "true", "batch_size": "2"}
        first = await c.post("/v1/import", content=_jsonl(*MESSAGES), params=params, headers=h)
        assert first.status_code == 200, first.text
        assert first.json()["events"]["ADD"] == 2
        calls = len(emulator.requests_for(CHAT))
        again = (await c.post("/v1/import", content=_jsonl(*MESSAGES), params=params, headers=h)).json()
        assert (again["events"]["ADD"], again["skipped"]) == (0, 3)
        assert len(emulator.requests_for(CHAT)) == calls, "skipped chunks cost no model call"
        texts = sorted(m["memory"] for m in (await c.get("/v1/memories", headers=h)).json()["results"])
        assert texts == ["Alice is allergic to peanuts", "Alice plays the cello"]
