"""Crash consistency and concurrent writers *through the Memory API* (issue 3, sections 4 and 7).

tests/stores covers the same guarantees with store operations and fake vectors; these
drive `Memory.add(infer=False)` with the real local embedder in subprocesses, so the
whole path (normalisation, embedding, OpenStore, one transaction per add) is under test:

* a writer adding 20 messages per call is SIGKILLed at a random moment, twice on the same
  file; reopened through `Memory`, every memory is searchable (keyword and vector), each
  add is all-or-nothing, every committed add is there, history agrees with the rows and
  `SQLiteStore.check()` finds nothing wrong;
* two processes adding to the same scope of a fresh file at once lose nothing.
"""

from __future__ import annotations

import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.memory import Memory, MemoryItem
from azmem.stores import SQLiteStore

from .memory_worker import BATCH, USERS, token

WORKER = Path(__file__).with_name("memory_worker.py")


def _all_items(m: Memory, prefix: str) -> list[MemoryItem]:
    items: list[MemoryItem] = []
    for u in range(USERS):
        cursor: str | None = None
        while True:
            page = m.get_all(user_id=f"{prefix}{u}", limit=500, cursor=cursor)
            items.extend(page.results)
            cursor = page.next_cursor
            if cursor is None:
                break
    return items


def _token_of(item: MemoryItem) -> str:
    return item.memory.split()[0]


def assert_consistent_through_memory(
    path: Path, embedder: LocalEmbedder, prefix: str, committed: int, *, sample: int = 25
) -> list[MemoryItem]:
    """Reopen the file with `Memory` and check what a user of the API would rely on."""
    with SQLiteStore(path) as store:
        assert store.check() == []
    with Memory(embedder=embedder, store_path=path) as m:
        items = _all_items(m, prefix)
        batches = Counter(int(i.metadata["batch"]) for i in items)
        # all-or-nothing: an add's 20 messages are all there or none is
        assert set(batches.values()) <= {BATCH}, batches
        # every add that returned before the kill is there; at most the one in flight besides
        assert set(range(1, committed + 1)) <= set(batches) <= set(range(1, committed + 2))
        assert len({i.id for i in items}) == len(items)
        for item in items:
            assert item.user_id == f"{prefix}{int(item.metadata['batch']) % USERS}"
            assert item.metadata["role"] in ("user", "assistant")
        # history agrees with the rows: one ADD per memory, carrying its text
        for item in random.Random(len(items)).sample(items, min(len(items), sample)):
            history = m.history(item.id)
            assert [(h.event, h.new_memory) for h in history] == [("ADD", item.memory)]
        # searchable: by its unique keyword (BM25) and by meaning (its own text, dense)
        for item in random.Random(committed).sample(items, min(len(items), sample)):
            scope = item.user_id
            assert scope is not None
            hits = m.search(_token_of(item), user_id=scope, mode="bm25", limit=3).results
            assert hits
            assert hits[0].id == item.id
            dense = m.search(item.memory, user_id=scope, mode="dense", limit=1).results
            assert dense[0].id == item.id
            assert dense[0].similarity == pytest.approx(1.0, abs=1e-4)
    # no history row survived for a memory whose add was rolled back (raw: history() of an
    # unknown id is just [], so orphan events are only visible in the table)
    raw = sqlite3.connect(path)
    try:
        alive = {r[0] for r in raw.execute("SELECT id FROM memories")}
        logged = Counter(r[0] for r in raw.execute("SELECT memory_id FROM history WHERE event = 'ADD'"))
    finally:
        raw.close()
    assert set(logged) == alive
    assert set(logged.values()) == {1}
    return items


def _partial_adds(path: Path) -> dict[str, int]:
    """What a concurrent reader sees: adds present with fewer than all their memories."""
    if not path.exists():
        return {}
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = raw.execute(
            "SELECT json_extract(metadata, '$.prefix') || json_extract(metadata, '$.batch'), count(*) "
            "FROM memories GROUP BY 1"
        ).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return {}
    finally:
        raw.close()
    return {str(b): n for b, n in rows if n != BATCH}


def _run_and_kill(path: Path, seed: int, rng: random.Random) -> int:
    """Start a writer, watch the file while it commits, SIGKILL it at a random moment.

    The watcher is a second process's view (a read-only connection polled every 5 ms):
    it must never see an add half-written, which catches a non-atomic add even when the
    kill itself happens to land between two adds.
    """
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "crash", str(path), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout or ()], daemon=True)
    reader.start()
    committed = 0
    seen_partial: dict[str, int] = {}
    try:
        wanted = rng.randint(2, 5)
        kill_at: float | None = None
        deadline = time.monotonic() + 30
        while kill_at is None or time.monotonic() < kill_at:
            assert time.monotonic() < deadline, f"worker stalled: {proc.poll()}"
            assert proc.poll() is None, f"worker died: {proc.stderr.read()}"
            while not lines.empty():
                committed = int(lines.get().split()[1])
            if kill_at is None and committed >= wanted:
                kill_at = time.monotonic() + rng.uniform(0.0, 0.12)  # inside a later add
            seen_partial.update(_partial_adds(path))
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=5)
        while not lines.empty():  # printed between the last poll and the kill: commits too
            committed = int(lines.get().split()[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert seen_partial == {}, f"a reader saw adds half-written (batch: memories): {seen_partial}"
    return committed


def test_memory_add_killed_at_random_moments_leaves_a_consistent_searchable_store(
    tmp_path: Path, local_embedder: LocalEmbedder
) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(20261124)
    for seed in (1, 2):  # twice on the same file: recovery after a crash is itself crash-safe
        committed = _run_and_kill(path, seed, rng)
        assert_consistent_through_memory(path, local_embedder, f"c{seed}x", committed)
    # and the store takes new writes through Memory after the crashes
    with Memory(embedder=local_embedder, store_path=path) as m:
        added = m.add("after the crashes, tea again", user_id="c1x0", infer=False).results
        assert m.search("crashes", user_id="c1x0", mode="bm25").results[0].id == added[0].id
    with SQLiteStore(path) as store:
        assert store.check() == []


def test_two_processes_adding_through_memory_at_once_lose_nothing(
    tmp_path: Path, local_embedder: LocalEmbedder
) -> None:
    path = tmp_path / "shared.db"  # fresh: both processes bind the embedder to it concurrently
    batches = 12
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "write", str(path), prefix, str(batches)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("p", "q")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for prefix in ("p", "q"):
        items = assert_consistent_through_memory(path, local_embedder, prefix, batches, sample=15)
        assert len(items) == batches * BATCH
        expected = {token(prefix, b, i) for b in range(1, batches + 1) for i in range(BATCH)}
        assert {_token_of(i) for i in items} == expected
