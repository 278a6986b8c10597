"""pytest plugin (entry point `azmem_emulator`): one emulator per test session, reset per test.

Fixtures:
- `emulator`: the session's server, reset before and after each test (scripts, faults, outages,
  quota windows, tokens, request log, added deployments; the clock back to real time). Default
  deployments: gpt-4o, gpt-4o-mini, o3-mini (reasoning), text-embedding-3-small/-large,
  text-embedding-ada-002; key "test-key".
- `emulator_session`: the same server without the per-test reset.
- `emulator_factory`: `emulator_factory(api_keys=..., deployments=[...], **kw)` starts a private
  emulator (e.g. one per emulated region) and stops it when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import Emulator

# The server (fastapi, uvicorn) is imported inside the fixtures: this module is loaded by every
# pytest run in an environment where azmem is installed, and most never ask for an emulator.


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    from .server import Emulator

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


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    from .server import Emulator

    started: list[Emulator] = []

    def make(*args: Any, **kwargs: Any) -> Emulator:
        emu = Emulator(*args, **kwargs)
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
