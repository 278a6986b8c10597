"""A faithful local Azure OpenAI server for tests, demos and users' CI.

It answers Azure OpenAI's dated and v1 routes with the service's bodies, headers and errors, and
lets a test script replies, inject faults, impose quotas and read what the client sent. It never
imports `azmem.azure`: it emulates the service, not azmem's client.
"""

from .config import Deployment, EmulatorConfig, Fault, default_deployments
from .server import DEFAULT_API_VERSION, Emulator, serve
from .state import ManualClock, RecordedRequest

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
