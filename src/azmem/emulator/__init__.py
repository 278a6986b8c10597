"""A faithful local Azure OpenAI server for tests, demos and users' CI.

It answers Azure OpenAI's dated and v1 routes with the service's bodies, headers and errors, and
lets a test script replies, inject faults, impose quotas and read what the client sent. It never
imports `azmem.azure`: it emulates the service, not azmem's client.

The server half (fastapi, uvicorn) loads on first use of `Emulator` or `serve`, so importing the
models here, or loading the pytest plugin, stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Deployment, EmulatorConfig, Fault, default_deployments
from .state import ManualClock, RecordedRequest

if TYPE_CHECKING:
    from .server import DEFAULT_API_VERSION, Emulator, serve

__all__ = [
    "DEFAULT_API_VERSION",
    "Deployment",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "ManualClock",
    "RecordedRequest",
    "default_deployments",
    "serve",
]

_LAZY = {"DEFAULT_API_VERSION", "Emulator", "serve"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
