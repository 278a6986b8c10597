"""``azmem graph ...`` end to end: the real app in-process, the emulator as the model, a SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from azmem.cli import app
from azmem.emulator import Emulator

from .conftest import azure_config
from .graph_script import ScriptedModel, entity, fact


@pytest.fixture
def run(emulator: Emulator, model: ScriptedModel, tmp_path: Path) -> Any:
    config = tmp_path / "azmem.yaml"
    config.write_text(yaml.safe_dump(azure_config(emulator)), encoding="utf-8")
    store = tmp_path / "memory.db"
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(app, ["graph", *args, "--config", str(config), "--store", str(store)])
        assert "Traceback" not in result.stdout + result.stderr
        return result

    return invoke


def _ok(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_graph_commands(run: Any, model: ScriptedModel, tmp_path: Path) -> None:
    model.on("Berlin", [entity("Alexandra Chen", aliases=["Lexi"]), entity("Berlin")],
             [fact("Alexandra Chen", "LIVES_IN", "Berlin", "Alexandra Chen lives in Berlin.")])  # fmt: skip
    model.on("Lisbon", [entity("Lexi"), entity("Lisbon")],
             [fact("Lexi", "LIVES_IN", "Lisbon", "Alexandra Chen lives in Lisbon.")])  # fmt: skip
    first = _ok(
        run("add", "I'm Alexandra (Lexi), I live in Berlin.", "-g", "alex", "--time", "2023-01-01", "--json")
    )
    assert first["llm_calls"] == 1
    second = run("add", "Lexi moved to Lisbon.", "-g", "alex", "--time", "2023-06-01")
    assert second.exit_code == 0, second.stderr
    assert "Ended:" in second.stdout
    assert "LIVES_IN-> Berlin" in second.stdout.split("Ended:")[1]

    def homes(*args: str) -> list[str]:
        return [
            h["fact"]["target_name"]
            for h in _ok(run("search", "where does she live", "-g", "alex", *args, "--json"))
        ]

    assert homes() == ["Lisbon"]
    assert homes("--as-of", "2023-03-01") == ["Berlin"]
    assert sorted(homes("--history")) == ["Berlin", "Lisbon"]
    assert len(_ok(run("facts", "-g", "alex", "--history", "--json"))) == 2
    assert _ok(run("entities", "Lexi", "-g", "alex", "--json"))[0]["entity"]["name"] == "Alexandra Chen"
    story = _ok(run("timeline", "lexi", "-g", "alex", "--json"))
    assert [f["target_name"] for f in story["facts"]] == ["Berlin", "Lisbon"]
    table = run("timeline", "Alexandra Chen", "-g", "alex")
    assert "2023-01-01 → 2023-06-01" in table.stdout
    out = tmp_path / "alex.graphml"
    assert run("export", "-g", "alex", "--format", "graphml", "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("<?xml")
    assert len(_ok(run("export", "-g", "alex"))["facts"]) == 2


def test_graph_command_errors(run: Any) -> None:
    bad_time = run("search", "x", "-g", "alex", "--as-of", "last tuesday")
    assert bad_time.exit_code == 4
    assert "ISO 8601" in bad_time.stderr
    missing = run("timeline", "nobody", "-g", "alex")
    assert missing.exit_code != 0
    assert "no entity" in missing.stderr
