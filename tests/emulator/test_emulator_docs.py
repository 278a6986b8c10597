"""The examples in docs/emulator.md run as written (against a live emulator instead of port 8000)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from azmem.emulator import Emulator, EmulatorConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_yaml_example_is_a_valid_config() -> None:
    (example,) = _blocks("yaml")
    config = EmulatorConfig.model_validate(yaml.safe_load(example))
    assert [d.name for d in config.build_deployments()] == ["chat", "small", "thinker", "old", "embed"]


def test_python_examples_run(emulator: Emulator) -> None:
    for block in _blocks("python"):
        code = block.replace("http://127.0.0.1:8000", emulator.endpoint)
        namespace: dict[str, Any] = {}
        exec(compile(code, str(DOC), "exec"), namespace)
        for name, value in namespace.items():
            if name.startswith("test_") and callable(value):
                emulator.reset()
                value(emulator)
        client = namespace.get("client")
        if client is not None:
            client.close()
