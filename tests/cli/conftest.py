"""Helpers for the CLI tests: run the real app in-process, each test on its own store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from azmem.cli import app

Invoke = Callable[..., Result]


def no_traceback(result: Result) -> None:
    """The CLI promise: whatever happens, people see a message, never a Python traceback."""
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
def cli(store: Path) -> Invoke:
    """``cli("search", "tea", "--user", "a")``: run azmem on this test's store, return the result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, with_store: bool = True, **kwargs: Any) -> Result:
        argv = [*args, "--store", str(store)] if with_store else list(args)
        result = runner.invoke(app, argv, input=input, **kwargs)
        no_traceback(result)
        return result

    return invoke


def json_out(result: Result) -> Any:
    """stdout parsed as JSON: fails when anything but one JSON document was printed there."""
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def stored(cli: Invoke, *args: str) -> list[Any]:
    """``azmem list ARGS --json``'s results; [] when nothing was ever written (no store yet)."""
    result = cli("list", *args, "--json")
    if result.exit_code == 4 and "No store at" in result.stderr:
        return []
    return list(json_out(result)["results"])
