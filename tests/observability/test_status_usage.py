"""``azmem status`` and a server's status route show the same usage figures: the usage tracker's.

Clients given the process's tracker record into it; ``usage_status`` is the one function
both faces call, and ``azmem.client.cost`` carries the same cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azmem.azure.llm import LLMClient
from azmem.azure.settings import AzmemSettings
from azmem.azure.usage import UsageTracker, process_tracker, usage_lines, usage_status
from azmem.cli import app
from azmem.emulator import Emulator
from azmem.memory import Memory

from .conftest import Metrics


@pytest.fixture
def fresh_process_usage() -> Iterator[UsageTracker]:
    tracker = process_tracker()
    tracker.reset()
    yield tracker
    tracker.reset()


def test_status_shows_the_usage_trackers_figures(
    emulator: Emulator, tmp_path: Path, metrics: Metrics, fresh_process_usage: UsageTracker
) -> None:
    assert usage_status() is None  # nothing to show before the first call
    config = {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": "gpt-4o",
        "embedding": "text-embedding-3-small",
        "store": {"path": tmp_path / "memory.db"},
    }
    settings = AzmemSettings.load(config)
    with (
        LLMClient(settings, usage=process_tracker()) as llm,
        Memory(settings=settings, llm=llm) as memory,
    ):
        memory.add("I drink green tea every morning", user_id="u1")  # infers: LLM calls
    figures = usage_status()
    assert figures is not None
    assert figures == fresh_process_usage.summary()
    total = figures["total"]
    assert total["calls"] >= 1
    assert total["input_tokens"] > 0
    assert total["cost_usd"] > 0
    assert set(figures["by_deployment"]) == {"gpt-4o"}
    assert set(figures["by_group_id"]) == {"user_id=u1"}
    # The metric carries the same cost as the figures.
    assert metrics.total("azmem.client.cost") == pytest.approx(total["cost_usd"])

    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert shown == {"routing": False, "deployments": [], "usage": figures}
    text = runner.invoke(app, ["status"])
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[-3:] == usage_lines(figures)
    assert lines[-3].startswith(f"usage: {total['calls']} calls (0 cached), {total['input_tokens']} in / ")
    assert lines[-2].startswith("  deployment gpt-4o: ")
    assert lines[-1].startswith("  group user_id=u1: ")


def test_a_servers_own_tracker_gives_the_same_shape(fresh_process_usage: UsageTracker) -> None:
    from azmem.azure.usage import Usage

    server = UsageTracker()
    assert usage_status(server) is None
    server.record(deployment="gpt-4o", model="gpt-4o", usage=Usage(input_tokens=1000, output_tokens=100))
    assert usage_status(server) == server.summary()
    assert usage_status() is None  # the process tracker is another one


def test_a_memorys_own_client_prices_its_calls_for_the_cost_metric(
    emulator: Emulator, tmp_path: Path, metrics: Metrics, fresh_process_usage: UsageTracker
) -> None:
    config = {
        "endpoint": emulator.endpoint,
        "api_key": "test-key",
        "chat": "gpt-4o",
        "store": {"path": tmp_path / "memory.db"},
    }
    with Memory(config=config) as memory:
        memory.add("I drink green tea every morning", user_id="u1")
    (cost,) = metrics.points("azmem.client.cost", azmem__prompt__name="memory.extract")
    assert cost.value > 0
    assert cost.attributes["azmem.group_id"] == "user_id=u1"
    assert usage_status() is None  # its tracker is its own, not the process's
