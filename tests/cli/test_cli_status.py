"""``azmem status`` and doctor's pool checks, on the emulator through the real app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from azmem.emulator import Deployment, Emulator

from .conftest import Invoke, json_out


def _entry(
    emulator: Emulator, name: str, deployment: str | None = None, model: str = "gpt-4o"
) -> dict[str, Any]:
    return {"name": name, "endpoint": emulator.endpoint, "deployment": deployment or name, "model": model}


def _config(tmp_path: Path, emulator: Emulator, routing: dict[str, Any] | None, **roles: Any) -> Path:
    data: dict[str, Any] = {"endpoint": emulator.endpoint, "api_key": emulator.api_key, **roles}
    if routing is not None:
        data["routing"] = {"limiter": {"backend": "memory"}, **routing}
    path = tmp_path / "azmem.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _pools(emulator: Emulator, prefix: str) -> dict[str, Any]:
    for name in (f"{prefix}-east", f"{prefix}-west"):
        emulator.add_deployment(Deployment(name, model="gpt-4o"))
    emulator.add_deployment(Deployment(f"{prefix}-emb", model="text-embedding-3-small"))
    return {
        "pools": {
            "chat": [
                {**_entry(emulator, f"{prefix}-east"), "region": "eastus", "tpm": 60000},
                {**_entry(emulator, f"{prefix}-west"), "region": "westus"},
            ],
            "embedding": [_entry(emulator, f"{prefix}-emb", model="text-embedding-3-small")],
        }
    }


def test_status_prints_one_line_per_pool_deployment(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator, _pools(emulator, "st"), chat="gpt-4o")
    result = cli("status", "--config", str(config), with_store=False)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("chat/st-east [eastus p0] available")
    assert lines[1].startswith("chat/st-west [westus p0] available")
    assert lines[2].startswith("embedding/st-emb ")
    assert not emulator.requests  # status only reports; it sends nothing


def test_status_json_is_the_snapshot(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator, _pools(emulator, "sj"))
    data = json_out(cli("status", "--config", str(config), "--json", with_store=False))
    assert data["routing"] is True
    rows = {(r["model"], r["name"]): r for r in data["deployments"]}
    assert set(rows) == {("chat", "sj-east"), ("chat", "sj-west"), ("embedding", "sj-emb")}
    assert rows[("chat", "sj-east")]["tpm"] == 60000
    assert rows[("chat", "sj-east")]["state"] == "available"
    assert rows[("chat", "sj-west")]["deployment"] == "sj-west"


def test_status_without_routing_lists_the_single_deployments(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    config = _config(tmp_path, emulator, None, chat="gpt-4o", embedding="text-embedding-3-small")
    result = cli("status", "--config", str(config), with_store=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"chat: gpt-4o at {emulator.endpoint} (no routing)",
        f"embedding: text-embedding-3-small at {emulator.endpoint} (no routing)",
    ]
    data = json_out(cli("status", "--config", str(config), "--json", with_store=False))
    assert data == {
        "routing": False,
        "deployments": [
            {"role": "chat", "deployment": "gpt-4o", "endpoint": emulator.endpoint},
            {"role": "embedding", "deployment": "text-embedding-3-small", "endpoint": emulator.endpoint},
        ],
    }


def test_status_with_nothing_configured_says_so(cli: Invoke) -> None:
    result = cli("status", with_store=False)
    assert result.exit_code == 0, result.stderr
    assert "No Azure OpenAI deployment is configured" in result.stdout
    assert json_out(cli("status", "--json", with_store=False)) == {"routing": False, "deployments": []}


def test_status_with_a_bad_routing_config_prints_the_error_not_a_traceback(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    bad = {"pools": {"chat": [_entry(emulator, "x")]}, "max_atempts": 3}
    config = _config(tmp_path, emulator, bad)
    result = cli("status", "--config", str(config), with_store=False)
    assert result.exit_code == 3  # configuration
    assert "Error:" in result.stderr
    assert "max_atempts" in result.stderr
    assert result.stdout == ""


def test_doctor_checks_each_pool_deployment(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    routing = _pools(emulator, "dr")
    routing["pools"]["chat"].append(_entry(emulator, "dr-missing", deployment="no-such-deployment"))
    emulator.add_deployment(Deployment("dr-badkey", model="gpt-4o"))
    routing["pools"]["chat"].append({**_entry(emulator, "dr-badkey"), "api_key": "not-the-key-123"})
    emulator.set_outage("dr-west", True)
    config = _config(tmp_path, emulator, routing, chat="gpt-4o", embedding="text-embedding-3-small")
    result = cli("doctor", "--config", str(config), "--json")
    assert result.exit_code == 1  # a check failed
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    east = checks["pool chat/dr-east"]
    assert east["status"] == "ok"
    assert east["role"] == "chat"
    assert "reachable: yes" in east["detail"]
    assert "auth: ok" in east["detail"]
    assert "capabilities: json_schema, vision" in east["detail"]
    assert "no cooldown" in east["detail"]
    west = checks["pool chat/dr-west"]
    assert west["status"] == "fail"
    assert "auth: unknown" in west["detail"]  # a 503 says nothing about the credential
    assert "503" in west["detail"]
    missing = checks["pool chat/dr-missing"]
    assert missing["status"] == "fail"
    assert "no-such-deployment" in missing["fix"]
    badkey = checks["pool chat/dr-badkey"]
    assert badkey["status"] == "fail"
    assert "auth: failed" in badkey["detail"]
    assert checks["pool embedding/dr-emb"]["status"] == "ok"
    assert emulator.requests_for("dr-emb")[0].path.endswith("/embeddings")
    # the single-deployment checks still run next to the pool ones
    assert checks["chat deployment"]["status"] == "ok"
    # the human output shows the same rows, with the fix under a failing one
    text = cli("doctor", "--config", str(config))
    assert text.exit_code == 1
    assert "pool chat/dr-east" in text.stdout
    assert "Fix:" in text.stdout


def test_doctor_without_routing_has_no_pool_checks(cli: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    config = _config(tmp_path, emulator, None, chat="gpt-4o", embedding="text-embedding-3-small")
    result = cli("doctor", "--config", str(config), "--json")
    assert result.exit_code == 0, result.stdout
    assert not [c for c in json.loads(result.stdout)["checks"] if c["name"].startswith("pool ")]


def test_doctor_reports_a_routing_section_that_does_not_load(
    cli: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    bad = {"pools": {"chat": [_entry(emulator, "x")]}, "max_atempts": 3}
    config = _config(tmp_path, emulator, bad, chat="gpt-4o")
    result = cli("doctor", "--config", str(config), "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["routing"]["status"] == "fail"
    assert "max_atempts" in checks["routing"]["detail"]
