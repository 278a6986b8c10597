"""Erasure: `azmem forget` / `Memory.forget` leave no trace of the scope's text in the store or the cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from azmem.cli import app
from azmem.emulator import Emulator
from azmem.memory import AsyncMemory, Memory
from azmem.stores.audit_log import AuditQuery

from .conftest import FakeEmbedder, azure_config, facts, file_bytes

ALICE = ["Alice hides her xylophone in Zanzibar", "Alice's passport is QX7741902", "Alice drinks yerbamate"]
MOVED = "Alice moved the xylophone to Quorvath"
SECRETS = [
    "xylophone",
    "xylophon",
    "Zanzibar",
    "zanzibar",
    "QX7741902",
    "qx7741902",
    "Quorvath",
    "quorvath",
    "yerbamate",
]
BOB = "Bob collects quokkamugs"


def _write_alice_and_bob(memory: Memory) -> None:
    ids = [
        r.id
        for r in memory.add(
            [{"role": "user", "content": t} for t in ALICE], user_id="alice", infer=False
        ).results
    ]
    memory.update(ids[0], MOVED)  # history keeps the old and the new text
    memory.delete(ids[1])  # history keeps the deleted text
    memory.add(BOB, user_id="bob", infer=False)
    assert memory.search("xylophone Quorvath", user_id="alice").results  # both mirrors built
    assert memory.search("yerbamate", user_id="alice", mode="bm25").results


def test_azmem_forget_leaves_no_byte_of_the_user_in_the_store_file(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    path = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        _write_alice_and_bob(memory)
        assert b"Zanzibar" in file_bytes(path)
        result = CliRunner().invoke(
            app, ["forget", "--user", "alice", "--yes", "--json", "--store", str(path)]
        )
        assert result.exit_code == 0, result.stderr
        data = file_bytes(path)
        leaks = [s for s in SECRETS if s.encode() in data]
        assert leaks == []
        assert b"quokkamugs" in data  # the scan does see text: Bob's is still there
        # This process's mirrors (built before the erasure) no longer know Alice either.
        assert memory.search("xylophone Quorvath yerbamate", user_id="alice").results == []
        assert memory.search("xylophone", user_id="alice", mode="bm25").results == []
        assert [m.memory for m in memory.get_all(user_id="bob").results] == [BOB]
        records = list(memory._store.audit_log.records(AuditQuery(operation="forget")))
    assert '"memories": 2' in result.stdout
    assert '"history": 5' in result.stdout
    [erasure] = records
    assert (erasure.user_id, erasure.details) == ("alice", {"memories": 2, "history": 5, "audit_content": 0})
    assert erasure.principal.startswith("os:")


def test_forget_on_postgres_leaves_no_row_with_the_text(pg_url: str, embedder: FakeEmbedder) -> None:
    import psycopg

    with Memory(embedder=embedder, store_url=pg_url) as memory:
        _write_alice_and_bob(memory)
        result = memory.forget(user_id="alice")
        assert (result.memories, result.history, result.compacted) == (2, 5, True)
        assert memory.search("xylophone", user_id="alice").results == []
        assert memory._store.audit_log.verify().ok
    with psycopg.connect(pg_url) as pg:
        tables = [r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'azmem%'")]
        assert "azmem_memories" in tables
        assert "azmem_audit" in tables
        for secret in [*SECRETS, "quokkamugs"]:
            found = sum(
                pg.execute(
                    f"SELECT count(*) FROM {t} AS r WHERE r::text ILIKE %s", [f"%{secret}%"]
                ).fetchone()[0]
                for t in tables
            )
            # Bob: his row and its ADD event (and his word's posting, where BM25 keeps postings)
            bob = 3 if "azmem_postings" in tables else 2
            assert found == (bob if secret == "quokkamugs" else 0), secret


def test_forget_with_kept_audit_content_blanks_it(
    tmp_path: Path, embedder: FakeEmbedder, monkeypatch: Any
) -> None:
    monkeypatch.setenv("AZMEM_AUDIT__INCLUDE_CONTENT", "true")
    path = tmp_path / "memory.db"
    with Memory(embedder=embedder, store_path=path) as memory:
        _write_alice_and_bob(memory)
        kept = [r.content for r in memory._store.audit_log.records(AuditQuery(user_id="alice")) if r.content]
        assert any("Zanzibar" in str(c) for c in kept)
        result = memory.forget(user_id="alice")
        assert result.audit_content == 2  # the add and the update carried text
        assert memory._store.audit_log.verify().ok
    data = file_bytes(path)
    assert [s for s in SECRETS if s.encode() in data] == []
    assert b"quokkamugs" in data


def test_forget_scrubs_the_response_and_embedding_cache(emulator: Emulator, tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    with Memory(config=azure_config(emulator, tmp_path)) as memory:
        emulator.script("gpt-4o", [facts("Alice hides her xylophone in Zanzibar")])
        memory.add("I hide my xylophone in Zanzibar", user_id="alice")
        emulator.script("gpt-4o", [facts("Bob collects quokkamugs")])
        memory.add("I collect quokkamugs", user_id="bob")
        assert b"Zanzibar" in file_bytes(cache)
        result = memory.forget(user_id="alice")
        assert result.memories == 1
        assert result.cache_entries == 2  # the extraction's answer and the fact's embedding
        audit = list(memory._store.audit_log.records())
    data = file_bytes(cache)
    assert [s for s in ("Zanzibar", "xylophone") if s.encode() in data] == []
    assert b"quokkamugs" in data
    assert [r.operation for r in audit if r.user_id == "alice"] == [
        "llm.chat",
        "llm.embed",
        "add",
        "forget",
        "forget.cache",
    ]
    assert audit[-1].details["cache_entries"] == 2


def test_async_forget(tmp_path: Path, embedder: FakeEmbedder) -> None:
    async def run() -> Any:
        async with AsyncMemory(embedder=embedder, store_path=tmp_path / "m.db") as memory:
            await memory.add("Alice hides her xylophone in Zanzibar", user_id="alice", infer=False)
            return await memory.forget(user_id="alice", compact=False)

    result = asyncio.run(run())
    assert (result.memories, result.history, result.compacted) == (1, 1, False)
