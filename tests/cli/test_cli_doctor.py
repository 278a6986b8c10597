"""``azmem doctor`` on the emulator: a good set-up passes; each broken piece is named with its fix."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from azmem.cli.doctor import run_checks
from azmem.emulator import Emulator

from .conftest import Invoke, json_out


def _config(tmp_path: Path, emulator: Emulator, **settings: Any) -> Path:
    data: dict[str, Any] = {
        "endpoint": emulator.endpoint,
        "api_key": emulator.api_key,
        "chat": "gpt-4o",
        "small_chat": "gpt-4o-mini",
        "embedding": "text-embedding-3-small",
    }
    data.update(settings)
    path = tmp_path / "azmem.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}), encoding="utf-8")
    return path


def _doctor(cli: Invoke, config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    result = cli("doctor", "--config", str(config), "--json")
    checks = {f"{c['name']}/{c['role']}": c for c in __import__("json").loads(result.stdout)["checks"]}
    return result.exit_code, checks


def _failed(checks: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, c in checks.items() if c["status"] == "fail"]


def test_a_good_setup_passes_every_check(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator)
    code, checks = _doctor(cli, config)
    assert code == 0, checks
    assert _failed(checks) == []
    for name in (
        "endpoint/chat",
        "auth/chat",
        "chat deployment/chat",
        "structured outputs/chat",
        "small_chat deployment/small_chat",
        "structured outputs/small_chat",
        "embedding deployment/embedding",
    ):
        assert checks[name]["status"] == "ok", name
    assert "1536 dimensions" in checks["embedding deployment/embedding"]["detail"]
    # the probes really went to the service: a chat, a json_schema chat per chat role, one embedding
    paths = [r.path for r in emulator.requests]
    assert sum(p.endswith("/chat/completions") for p in paths) == 4
    assert sum(p.endswith("/embeddings") for p in paths) == 1
    human = cli("doctor", "--config", str(config))
    assert human.exit_code == 0
    assert "All checks passed" in human.stdout


def test_a_reasoning_deployment_is_probed_the_way_it_accepts(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    code, checks = _doctor(cli, _config(tmp_path, emulator, chat="o3-mini", small_chat=None, embedding=None))
    assert code == 0, checks
    sent = [r.json for r in emulator.requests if r.path.endswith("/chat/completions")]
    assert all("max_completion_tokens" in body and "max_tokens" not in body for body in sent)


def test_a_wrong_deployment_is_named_with_its_fix(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    code, checks = _doctor(cli, _config(tmp_path, emulator, chat="gpt-4o-typo"))
    assert code == 1
    assert _failed(checks) == ["chat deployment/chat"]
    assert checks["auth/chat"]["status"] == "ok"
    assert "gpt-4o-typo" in checks["chat deployment/chat"]["fix"]
    human = cli("doctor", "--config", str(_config(tmp_path, emulator, chat="gpt-4o-typo")))
    assert "Fix:" in human.stdout
    assert "1 check failed" in human.stdout


def test_a_bad_key_is_reported_once_as_an_auth_failure(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    code, checks = _doctor(cli, _config(tmp_path, emulator, api_key="not-the-key"))
    assert code == 1
    assert checks["endpoint/chat"]["status"] == "ok"
    assert _failed(checks) == ["auth/chat"]  # chat, small_chat and embedding share the credential
    assert "API key" in checks["auth/chat"]["fix"]
    assert "not-the-key" not in str(checks)


def test_an_old_api_version_fails_structured_outputs(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    code, checks = _doctor(cli, _config(tmp_path, emulator, api_version="2024-06-01", small_chat=None))
    assert code == 1
    assert _failed(checks) == ["structured outputs/chat"]
    assert checks["chat deployment/chat"]["status"] == "ok"
    assert "2024-08-01-preview" in checks["structured outputs/chat"]["fix"]


def test_an_unreachable_endpoint(cli: Invoke, tmp_path: Path, emulator: Emulator) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    config = _config(tmp_path, emulator, endpoint=f"http://127.0.0.1:{port}", small_chat=None, embedding=None)
    code, checks = _doctor(cli, config)
    assert code == 1
    assert _failed(checks) == ["endpoint/chat"]
    assert "endpoint" in checks["endpoint/chat"]["fix"].lower()


def test_embedding_dimension_must_match_the_store_until_reindexed(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    added = cli("add", "I like tea", "--user", "u", "--no-infer")  # local 384-d vectors
    assert added.exit_code == 0, added.stderr
    config = _config(tmp_path, emulator, chat=None, small_chat=None)
    code, checks = _doctor(cli, config)
    assert code == 1
    mismatch = checks["embedding dimension/None"]
    assert mismatch["status"] == "fail"
    assert "384" in mismatch["detail"]
    assert "1536" in mismatch["detail"]
    assert "azmem reindex" in mismatch["fix"]

    searched = cli("search", "tea", "--user", "u", "--config", str(config))
    assert searched.exit_code == 3  # EmbedderMismatchError: a configuration problem
    assert "reindex" in searched.stderr

    reindexed = json_out(cli("reindex", "--config", str(config), "--json"))
    assert reindexed["embedder"] == "azure:text-embedding-3-small"
    assert reindexed["dimension"] == 1536
    code, checks = _doctor(cli, config)
    assert _failed(checks) == [], checks
    assert code == 0
    assert checks["embedding dimension/None"]["status"] == "ok"


def test_without_azure_everything_is_local_and_passes(cli: Invoke) -> None:
    result = cli("doctor", "--json")
    data = json_out(result)
    assert data["ok"] is True
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses["chat deployment"] == "skip"
    assert statuses["local embedding model"] == "ok"  # loaded and hash-checked
    assert statuses["store"] == "ok"


def test_a_bad_config_key_is_a_failed_check_with_the_fix(cli: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "azmem.yaml"
    config.write_text("chat:\n  deploymnet: gpt-4o\n", encoding="utf-8")
    result = cli("doctor", "--config", str(config))
    assert result.exit_code == 1
    assert "deploymnet" in result.stdout
    assert "Fix:" in result.stdout
    assert [c.name for c in run_checks(config)] == ["configuration"]


@pytest.mark.parametrize("where", ["home-is-a-file", "store-is-a-directory", "under-proc"])
def test_a_store_that_cannot_be_created_fails_the_store_check(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "home-is-a-file":
        home = tmp_path / "home-file"
        home.write_text("not a directory", encoding="utf-8")
        monkeypatch.setenv("AZMEM_HOME", str(home))
        result = cli("doctor", "--json", with_store=False)
    elif where == "store-is-a-directory":
        (tmp_path / "memory.db").mkdir()
        monkeypatch.setenv("AZMEM_HOME", str(tmp_path))
        result = cli("doctor", "--json", with_store=False)
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        result = cli("doctor", "--json", "--store", "/proc/nope/x.db", with_store=False)
    assert result.exit_code == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["store"]["status"] == "fail"
    assert "cannot be created or written" in checks["store"]["detail"]
    assert "writable directory" in checks["store"]["fix"]
    assert not (tmp_path / "home-file").is_dir()
