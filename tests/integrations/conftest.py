"""Set-up for the tests that drive the real peers (mem0ai, graphiti-core) against the emulator.

Nothing may leave the machine: both peers send telemetry by default (mem0 reads its switch when
``mem0`` is first imported, so it is set here, before any test module imports it), mem0 writes
to ``~/.mem0`` when imported, and Hugging Face libraries must not look for models.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from peer_helpers import embed_reply

os.environ["MEM0_TELEMETRY"] = "False"
os.environ["GRAPHITI_TELEMETRY_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
if "MEM0_DIR" not in os.environ:
    os.environ["MEM0_DIR"] = tempfile.mkdtemp(prefix="azmem-mem0-dir-")
    atexit.register(shutil.rmtree, os.environ["MEM0_DIR"], ignore_errors=True)


@pytest.fixture
def word_vectors(emulator: Any) -> Callable[..., None]:
    """``word_vectors(deployment)``: that embedding deployment answers with bag-of-words vectors."""

    def script(deployment: str = "text-embedding-3-small") -> None:
        emulator.script(deployment, embed_reply)

    return script


def _loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and the like never leave the machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection from Python code to a non-loopback address fails the test (telemetry, model hubs)."""
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def guarded(sock: socket.socket, address: Any) -> Any:
        if not _loopback(address):
            raise AssertionError(f"a peer tried to reach {address!r}; tests may use loopback only")
        return connect(sock, address)

    def guarded_ex(sock: socket.socket, address: Any) -> Any:
        if not _loopback(address):
            raise AssertionError(f"a peer tried to reach {address!r}; tests may use loopback only")
        return connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_ex)
