"""Crash consistency: a writer process is SIGKILLed at random moments, again and again; the
store must reopen consistent every time (every transaction all-or-nothing)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from azmem.stores import Scope

from .store_helpers import add, fake_embed, open_store

WORKER = Path(__file__).with_name("store_worker.py")
CYCLES = 4


def run_and_kill(path: Path, seed: int, rng: random.Random) -> int:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "crash-writer", str(path), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    commits = 0
    wanted = rng.randint(2, 6)
    while commits < wanted:
        line = proc.stdout.readline()
        assert line.startswith("commit"), f"worker died early: {line!r} rc={proc.poll()}"
        commits += 1
    time.sleep(rng.uniform(0, 0.05))  # land somewhere inside the next batches
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return commits


def assert_consistent(path: Path) -> int:
    store = open_store(path)
    assert store.check() == []
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = raw.execute("SELECT id, memory, json_extract(metadata, '$.batch') FROM memories").fetchall()
    # Memories are found by their unique token through FTS5 and by their own vector through the
    # index (a sample: FTS5's integrity-check in store.check() already covered every row).
    for memory_id, text, _ in random.Random(len(rows)).sample(rows, min(len(rows), 60)):
        tok = text.split()[0]
        hits = store.search(tok, None, Scope(), mode="bm25")
        assert [h.record.id for h in hits] == [memory_id]
        dense = store.search(None, fake_embed(text), Scope(), mode="dense", limit=1)
        assert dense[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert dense[0].record.memory == text
    # History agrees with the rows: the last event of every id tells whether it is alive and its text.
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for mid, event, new in raw.execute("SELECT memory_id, event, new_memory FROM history ORDER BY seq"):
        events[mid].append((event, new))
    alive = {mid: evs[-1][1] for mid, evs in events.items() if evs[-1][0] != "DELETE"}
    assert alive == {memory_id: text for memory_id, text, _ in rows}
    assert all(evs[0][0] == "ADD" and [e for e, _ in evs].count("ADD") == 1 for evs in events.values())
    # Batches are all-or-nothing: a batch's ADD events exist for all of its memories or none.
    adds = Counter(
        r[0] for r in raw.execute("SELECT json_extract(metadata, '$.batch') FROM history WHERE event = 'ADD'")
    )
    assert set(adds.values()) <= {40}
    assert store.count() == len(rows)
    raw.close()
    store.close()
    return len(rows)


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(1234)
    total_commits = 0
    for cycle in range(1, CYCLES + 1):
        total_commits += run_and_kill(path, cycle, rng)
        assert_consistent(path)
    assert total_commits >= CYCLES * 2
    # The store still accepts writes after all those crashes.
    store = open_store(path)
    before = store.count()
    add(store, "after the crashes")
    assert store.count() == before + 1
    assert store.check() == []
    store.close()


def test_kill_inside_reindex_keeps_the_old_vectors(tmp_path: Path) -> None:
    path = tmp_path / "reindex.db"
    with open_store(path) as store:
        records = [add(store, f"memory number {i} about topic {i % 7}") for i in range(200)]
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "reindex-and-hang", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "halfway"  # 100 rows rewritten, uncommitted
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        assert stream is not None
        stream.close()
    with open_store(path) as store:  # same (old) embedder: no mismatch
        assert store.check() == []
        assert store.count() == 200
        for rec in records[::20]:
            hit = store.search(None, fake_embed(rec.memory), Scope(), mode="dense", limit=1)[0]
            assert hit.record.id == rec.id
            assert hit.similarity == pytest.approx(1.0, abs=1e-5)
    raw = sqlite3.connect(path)
    assert {len(r[0]) for r in raw.execute("SELECT vector FROM memories")} == {4 * 32}
    raw.close()
