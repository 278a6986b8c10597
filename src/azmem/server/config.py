"""How a server is set up: auth or not, the default scope, size limits; and which binds are safe.

The one rule about binding: without API keys, only a loopback address is allowed.
Anything that can reach a non-loopback port could otherwise read and rewrite every
user's memories, so :func:`check_bind` refuses it at start, before a socket is opened.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from azmem.errors import ConfigurationError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LOOPBACK_NAMES", "ServerConfig", "check_bind", "is_loopback"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Host names that always mean this machine (the Host header check of a keyless server uses them too).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

MiB = 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1; False for 0.0.0.0, ``::`` and any other address."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth: bool) -> None:
    """Refuse to serve without API keys anywhere but on loopback."""
    if not auth and not is_loopback(host):
        raise ConfigurationError(
            f"Refusing to serve on {host} without API keys: anyone who can reach that address "
            "could read and change every user's memories.",
            error_code="unsafe_bind",
            suggestion="Drop --no-auth and give each client a key (`azmem keys create NAME --user ID`), "
            "or bind to 127.0.0.1 (the default) to run without keys on this machine only.",
        )


@dataclass(frozen=True)
class ServerConfig:
    """Everything `create_app` needs besides the memory.

    ``user_ids`` / ``agent_ids`` / ``run_ids`` bind the server's own principal: the one
    that serves requests when there are no keys (``--no-auth``, and ``azmem mcp`` over
    stdio). Like a key's binding they are both the default scope and the only scopes
    reachable, so ``azmem mcp --user alex`` cannot be talked into reading someone else's
    memories.
    """

    auth: bool = True
    user_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    read_only: bool = False
    """Serve reads only (the server's own principal; keys carry their own flag)."""
    max_body_bytes: int = 2 * MiB
    """The largest request body, /v1/import excepted (one add is at most 512 KiB of text)."""
    max_import_bytes: int = 64 * MiB
    inline_import_conversations: int = 20
    """Imports with more conversations run as a job (202 + /v1/jobs/{id}) rather than in the request."""
    key_cache_seconds: float = 10.0
    """How long a checked key is trusted before it is read again: a revocation takes effect within this."""
    allowed_hosts: frozenset[str] = field(default_factory=lambda: LOOPBACK_NAMES)
    """Host headers a keyless server answers (a DNS-rebinding page gets 403). Unused with auth."""
    title: str = "azmem"

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024 or self.max_import_bytes < self.max_body_bytes:
            raise ConfigurationError("max_body_bytes must be >= 1 KiB and max_import_bytes >= max_body_bytes")
        if self.key_cache_seconds < 0:
            raise ConfigurationError("key_cache_seconds must be >= 0")
