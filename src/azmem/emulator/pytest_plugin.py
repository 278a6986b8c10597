"""pytest plugin (entry point `azmem_emulator`): one emulator per test session, reset per test.

Fixtures:
- `emulator_session`: the session's running `Emulator` (default deployments, key "test-key").
- `emulator`: the same server, reset before each test (scripts, faults, quotas, log, clock).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import Emulator


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    emu = Emulator()
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    emulator_session.reset()
    yield emulator_session
    emulator_session.reset()
