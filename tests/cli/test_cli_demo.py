"""``azmem demo``, the README's first command: offline, fast, and untouched by the user's settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azmem.cli.demo import DEMO_QUERIES, DEMO_RUN_ID, load_sample

from .conftest import Invoke, json_out


def _top(search: dict[str, object], n: int = 1) -> str:
    results = search["results"]
    assert isinstance(results, list)
    return " ".join(str(r["memory"]) for r in results[:n])


def test_sample_conversation_ships_with_the_package() -> None:
    sample = load_sample()
    assert sample.user_id == "alex"
    assert 20 <= len(sample.messages) <= 60
    assert all(m.get("timestamp") for m in sample.messages)


def test_demo_json_finds_the_facts_it_was_told(cli: Invoke) -> None:
    data = json_out(cli("demo", "--json", with_store=False))
    assert data["store"] is None  # temporary: nothing left behind
    assert data["embedder"] == "local:all-MiniLM-L6-v2-int8"
    assert data["messages"] == data["memories_added"] == len(load_sample().messages)
    searches = {s["query"]: s for s in data["searches"]}
    assert list(searches) == list(DEMO_QUERIES)
    assert "peanuts" in _top(searches["allergic to anything?"], 2)
    assert "Biscuit" in _top(searches["what is the dog called?"])
    assert "May" in _top(searches["when is the trip to Japan?"], 2)
    assert "Python" in _top(searches["job and programming languages"], 3)
    assert "Maya" in _top(searches["birthday present for the sister"])
    assert "oat milk" in _top(searches["usual coffee order"])
    for search in data["searches"]:
        assert all(r["user_id"] == "alex" and r["run_id"] == DEMO_RUN_ID for r in search["results"])


def test_demo_keeps_its_memories_in_a_given_store_without_duplicating(cli: Invoke, store: Path) -> None:
    for _ in range(2):
        data = json_out(cli("demo", "--json", "--query", "coffee"))
        assert data["store"] == str(store)
    kept = json_out(cli("list", "--run", DEMO_RUN_ID, "--limit", "500", "--json"))["results"]
    assert len(kept) == len(load_sample().messages)
    assert json_out(cli("search", "coffee", "--user", "alex", "--json"))["results"]


def test_demo_prints_tables_and_ignores_the_users_azure_settings(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Broken or remote settings must not break (or send anything from) the first command anyone runs."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "gpt-4o")
    monkeypatch.setenv("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-3-small")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense_key: 1\n")
    monkeypatch.setenv("AZMEM_CONFIG", str(bad))
    result = cli("demo", "--query", "dog", "--limit", "2", with_store=False)
    assert result.exit_code == 0, result.stderr
    assert 'search "dog"' in result.stdout
    assert "Biscuit" in result.stdout
    assert "local:all-MiniLM-L6-v2-int8" in result.stdout
    assert "no Azure" in result.stdout


def _console_script() -> str:
    script = Path(sys.executable).with_name("azmem")
    found = str(script) if script.exists() else shutil.which("azmem")
    assert found, "the azmem console script is not installed in this environment"
    return found


def test_installed_console_script_runs_the_demo(tmp_path: Path) -> None:
    """The real entry point (pyproject's console script), in a fresh process, as the README runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZMEM_"))}
    env["AZMEM_HOME"] = str(tmp_path / "home")
    started = time.perf_counter()
    proc = subprocess.run(
        [_console_script(), "demo", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)  # stdout is exactly one JSON document
    assert data["messages"] == len(load_sample().messages)
    assert elapsed < 30
    assert not (tmp_path / "home").exists()  # the user's data directory is not touched


def test_installed_console_script_reports_a_bad_config_key_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "azmem.toml"
    config.write_text(
        '[chat]\nendpoint = "https://x.openai.azure.com"\ndeploymnet = "gpt-4o"\n', encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZMEM_"))}
    env["AZMEM_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [_console_script(), "--config", str(config), "search", "x", "--user", "a", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "deploymnet" in proc.stderr
    assert "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
