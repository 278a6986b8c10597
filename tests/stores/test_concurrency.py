"""Several processes on one store file: concurrent writers lose nothing, and a long-lived reader
process sees other processes' writes, updates and deletes in its very next search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from azmem.stores import DeleteOp, Scope, UpdateOp

from .store_helpers import add, fake_embed, open_store

WORKER = Path(__file__).with_name("store_worker.py")
PER_WRITER = 150


def test_two_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    open_store(path).close()  # create the schema once, so both writers race only on data
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "writer", str(path), user, str(PER_WRITER), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for user in ("ann", "ben")
    ]
    # Meanwhile this process writes too.
    store = open_store(path)
    go.touch()
    mine = [add(store, f"main item {i}", user_id="main") for i in range(30)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["done\n", "done\n"]
    assert store.count(Scope(user_id="ann")) == PER_WRITER
    assert store.count(Scope(user_id="ben")) == PER_WRITER
    assert store.count() == 2 * PER_WRITER + len(mine)
    texts = {r.memory for batch in store.iter_all() for r in batch}
    assert {f"ann item {i} tokenann{i}" for i in range(PER_WRITER)} <= texts
    assert {f"ben item {i} tokenben{i}" for i in range(PER_WRITER)} <= texts
    # Every write has its history, FTS row and vector.
    assert store.check() == []
    for user in ("ann", "ben"):
        for i in (0, PER_WRITER // 2, PER_WRITER - 1):
            hits = store.search(f"token{user}{i}", fake_embed(f"{user} item {i} token{user}{i}"), Scope())
            assert hits[0].record.memory == f"{user} item {i} token{user}{i}"
            assert (hits[0].dense_rank, hits[0].bm25_rank) == (1, 1)
    store.close()


class Reader:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "reader", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def search(self, words: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"search {words}\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._line())
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        assert self.proc.returncode == 0


def test_reader_process_sees_other_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = open_store(path)
    add(store, "unrelated memory about gardening")
    reader = Reader(path)
    try:
        first = reader.search("walrus")  # builds the reader's in-memory index
        assert "walrus" not in json.dumps(first)
        assert first["count"] == 1

        rec = add(store, "the walrus lives on ice floes")
        seen = reader.search("walrus ice")
        for mode in ("hybrid", "dense", "bm25"):
            assert seen[mode][0] == "the walrus lives on ice floes", mode
        assert seen["count"] == 2

        new_text = "the narwhal has a long tusk"
        store.apply([UpdateOp(rec.id, memory=new_text, vector=fake_embed(new_text))])
        after_update = reader.search("narwhal tusk")
        assert after_update["dense"][0] == new_text
        assert after_update["bm25"] == [new_text]
        assert "walrus" not in json.dumps(reader.search("walrus"))

        store.apply([DeleteOp(rec.id)])
        gone = reader.search("narwhal tusk")
        assert new_text not in json.dumps(gone)
        assert gone["count"] == 1
    finally:
        reader.close()
        store.close()
