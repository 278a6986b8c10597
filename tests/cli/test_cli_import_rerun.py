"""Issue 11 §3: ``azmem import`` is safe to re-run.

Each source message gets a stable key (its scope, role, timestamp and text), so a re-run —
after a finished import, or after one killed half-way — adds only what is missing and says how
many messages it skipped, on screen and in ``--json``. With ``--infer``, a chunk of messages
whose memories are already stored is skipped without calling the model.

The kill test is the field report's scenario: a real ``azmem import`` process on a large JSONL,
SIGKILLed after some progress, then run again; afterwards the store holds each distinct text
exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from azmem.emulator import Deployment, Emulator

from .conftest import Invoke, json_out, stored


def _messages(n: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message number {i}: fact {i * 7919 % 10007}",
        }
        for i in range(start, start + n)
    ]


def _jsonl(path: Path, messages: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    return path


def _rows(store: Path) -> tuple[int, int]:
    """(rows, distinct texts) of the SQLite store, read directly."""
    with sqlite3.connect(store) as conn:
        count, distinct = conn.execute("SELECT count(*), count(DISTINCT memory) FROM memories").fetchone()
    return int(count), int(distinct)


def test_rerunning_an_import_skips_what_is_stored(cli: Invoke, store: Path, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", _messages(30))
    first = json_out(cli("import", str(path), "--user", "u", "--no-infer", "--batch-size", "7", "--json"))
    assert first["events"]["ADD"] == 30
    assert first["skipped"] == 0
    again = json_out(cli("import", str(path), "--user", "u", "--no-infer", "--batch-size", "4", "--json"))
    assert again["events"]["ADD"] == 0
    assert again["skipped"] == 30
    assert again["messages"] == 30
    assert _rows(store) == (30, 30)
    # On screen, too.
    result = cli("import", str(path), "--user", "u", "--no-infer")
    assert result.exit_code == 0, result.stderr
    assert "skipped" in result.stdout
    assert "30" in result.stdout


def test_a_grown_file_adds_only_the_new_messages(cli: Invoke, store: Path, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", _messages(10))
    json_out(cli("import", str(path), "--user", "u", "--no-infer", "--json"))
    _jsonl(path, _messages(15))
    stats = json_out(cli("import", str(path), "--user", "u", "--no-infer", "--json"))
    assert (stats["events"]["ADD"], stats["skipped"]) == (5, 10)
    assert _rows(store) == (15, 15)


def test_the_key_includes_the_scope_and_repeats_in_a_file_are_stored_once(
    cli: Invoke, store: Path, tmp_path: Path
) -> None:
    messages = _messages(4)
    path = _jsonl(tmp_path / "c.jsonl", [*messages, messages[0], messages[1]])
    stats = json_out(cli("import", str(path), "--user", "a", "--no-infer", "--json"))
    assert (stats["events"]["ADD"], stats["skipped"]) == (4, 2)
    other = json_out(cli("import", str(path), "--user", "b", "--no-infer", "--json"))
    assert other["events"]["ADD"] == 4, "another user's import is not a re-run"
    assert len(stored(cli, "--user", "a")) == len(stored(cli, "--user", "b")) == 4


def test_an_inferred_import_rerun_skips_its_chunks_without_calling_the_model(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "azmem.yaml"
    config.write_text(
        yaml.safe_dump({"endpoint": emulator.endpoint, "api_key": emulator.api_key, "chat": "gpt-4o"}),
        encoding="utf-8",
    )
    # Chunk 1: extraction (nothing stored yet, no reconciliation); chunk 2: extraction, then
    # reconciliation against chunk 1's fact, which adds the new one.
    emulator.script(
        "gpt-4o",
        [
            json.dumps({"facts": [{"text": "Fact of chunk 0", "subject": "user"}]}),
            json.dumps({"facts": [{"text": "Fact of chunk 1", "subject": "user"}]}),
            json.dumps(
                {"decisions": [{"fact": 0, "event": "ADD", "target": None, "text": "Fact of chunk 1"}]}
            ),
        ],
    )
    path = _jsonl(tmp_path / "c.jsonl", _messages(4))
    args = (
        "import",
        str(path),
        "--user",
        "f",
        "--infer",
        "--batch-size",
        "2",
        "--config",
        str(config),
        "--json",
    )
    first = json_out(cli(*args))
    assert first["events"]["ADD"] == 2
    calls = len(emulator.requests_for("gpt-4o"))
    again = json_out(cli(*args))
    assert again["skipped"] == 4
    assert again["events"]["ADD"] == 0
    assert len(emulator.requests_for("gpt-4o")) == calls, "skipped chunks cost no model call"
    assert sorted(m["memory"] for m in stored(cli, "--user", "f")) == ["Fact of chunk 0", "Fact of chunk 1"]


def test_an_import_killed_half_way_and_rerun_stores_each_text_once(
    emulator: Emulator, store: Path, tmp_path: Path
) -> None:
    total = 2_000
    # A slow embeddings deployment, so the first run is surely killed in the middle.
    emulator.add_deployment(Deployment("slow-embed", model="text-embedding-3-small", latency=0.05))
    config = tmp_path / "azmem.yaml"
    config.write_text(
        yaml.safe_dump(
            {"endpoint": emulator.endpoint, "api_key": emulator.api_key, "embedding": "slow-embed"}
        ),
        encoding="utf-8",
    )
    path = _jsonl(tmp_path / "big.jsonl", _messages(total))
    azmem = str(Path(sys.executable).with_name("azmem"))
    argv = [azmem, "import", str(path), "--user", "k", "--no-infer", "--batch-size", "10"]
    argv += ["--config", str(config), "--store", str(store)]
    env = {**os.environ, "NO_COLOR": "1"}

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while len(emulator.requests_for("slow-embed")) < 30:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    partial, _ = _rows(store)
    assert 0 < partial < total, partial

    emulator.deployment("slow-embed").latency = 0.0
    done = subprocess.run(
        [*argv, "--json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["skipped"] == partial
    assert stats["events"]["ADD"] == total - partial
    assert _rows(store) == (total, total)
