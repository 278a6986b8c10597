"""``/v1/status`` without routing lists the configured deployments as ``azmem status --json`` does."""

from __future__ import annotations

from pathlib import Path

from azmem.azure.settings import AzmemSettings, single_deployments
from azmem.emulator import Emulator

from .conftest import harness_for


async def test_status_without_routing_lists_the_single_deployments(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = AzmemSettings.load(
        {
            "endpoint": emulator.endpoint,
            "api_key": "test-key",
            "chat": "gpt-4o",
            "small_chat": "gpt-4o-mini",
            "store": {"url": str(tmp_path / "m.db")},
        }
    )
    expected = [
        {"role": "chat", "deployment": "gpt-4o", "endpoint": emulator.endpoint},
        {"role": "small_chat", "deployment": "gpt-4o-mini", "endpoint": emulator.endpoint},
    ]
    assert single_deployments(settings) == expected  # the rows the CLI prints too
    async with harness_for(tmp_path / "m.db", settings=settings) as hs:
        status = (await hs.client.get("/v1/status", headers=hs.auth("admin"))).json()
    assert status["routing"] is False
    assert status["deployments"] == expected
    assert not emulator.requests  # the status only reports what is configured
