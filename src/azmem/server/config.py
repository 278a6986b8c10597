"""How a server is set up: auth or not, the default scope, size limits; and which binds are safe.

The one rule about binding: without API keys, only a loopback address is allowed.
Anything that can reach a non-loopback port could otherwise read and rewrite every
user's memories, so :func:`check_bind` refuses it at start, before a socket is opened.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from azmem.errors import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOOPBACK_NAMES",
    "EmbeddingPlan",
    "ServerConfig",
    "check_bind",
    "is_loopback",
]

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
    embedding_batch_size: int | None = None
    """Concurrent requests' texts embedded in one local-model call, at most; 0 turns batching off.
    None: ``AZMEM_EMBEDDING_BATCH``, else 64. The server's own local embedder only (an Azure
    embedder is never wrapped)."""
    embedding_batch_wait_ms: float | None = None
    """How long an idle embedder holds a first text for others to join (under load batches
    form while the previous one runs, without waiting). None: ``AZMEM_EMBEDDING_BATCH_WAIT_MS``,
    else 2."""
    embedding_workers: int | None = None
    """Batches embedded at a time. None: ``AZMEM_EMBEDDING_WORKERS``, else one per two cores
    (1 on 2 cores): the other core of each pair serves HTTP and the store."""
    embedding_threads: int | None = None
    """onnxruntime intra-op threads of the server's local model. None: ``AZMEM_EMBEDDING_THREADS``,
    else 1 when batching (each batch on one core; onnxruntime's default of a spinning thread
    per core fights the event loop for the CPU), onnxruntime's default when not."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024 or self.max_import_bytes < self.max_body_bytes:
            raise ConfigurationError("max_body_bytes must be >= 1 KiB and max_import_bytes >= max_body_bytes")
        if self.key_cache_seconds < 0:
            raise ConfigurationError("key_cache_seconds must be >= 0")
        for name, low, high in _EMBEDDING_BOUNDS:
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ConfigurationError(f"{name} must be within {low}..{high}, got {value!r}")

    def embedding_plan(self) -> EmbeddingPlan:
        """How the server embeds locally: the fields, else the environment, else the defaults.

        The environment is read here, when a server is built, so an operator of ``azmem serve``
        can tune batching without a flag for each knob.
        """
        size = self.embedding_batch_size
        wait = self.embedding_batch_wait_ms
        workers = self.embedding_workers
        threads = self.embedding_threads
        size = size if size is not None else int(_env_number(BATCH_ENV, 64, 0, 4096))
        wait = wait if wait is not None else _env_number(BATCH_WAIT_ENV, 2.0, 0, 1000)
        workers = workers if workers is not None else int(_env_number(WORKERS_ENV, _pairs_of_cores(), 1, 64))
        if threads is None and not os.environ.get(THREADS_ENV, "").strip():
            threads = 1 if size else None
        # threads None here: the LocalEmbedder reads THREADS_ENV itself (and checks it).
        return EmbeddingPlan(batch_size=size, wait=wait / 1000, workers=workers, threads=threads)


@dataclass(frozen=True)
class EmbeddingPlan:
    """The server's local embedding set-up (see the ``embedding_*`` fields of `ServerConfig`)."""

    batch_size: int
    """0: no batching (each request embeds on its own, in a worker thread)."""
    wait: float
    """Seconds."""
    workers: int
    threads: int | None
    """None: ``AZMEM_EMBEDDING_THREADS``, else onnxruntime's default."""

    def describe(self) -> str:
        threads = self.threads if self.threads is not None else os.environ.get(THREADS_ENV) or "default"
        if not self.batch_size:
            return f"batching off, onnxruntime threads {threads}"
        return (
            f"batches of <= {self.batch_size} texts, wait {self.wait * 1000:g} ms, "
            f"{self.workers} worker(s), onnxruntime threads {threads}"
        )


def _pairs_of_cores() -> int:
    """One embedding worker per two cores this process may run on (at least one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, cores // 2)


BATCH_ENV = "AZMEM_EMBEDDING_BATCH"
BATCH_WAIT_ENV = "AZMEM_EMBEDDING_BATCH_WAIT_MS"
WORKERS_ENV = "AZMEM_EMBEDDING_WORKERS"
THREADS_ENV = "AZMEM_EMBEDDING_THREADS"  # azmem.embeddings.local's; not imported: config stays light
_EMBEDDING_BOUNDS = (
    ("embedding_batch_size", 0, 4096),
    ("embedding_batch_wait_ms", 0, 1000),
    ("embedding_workers", 1, 64),
    ("embedding_threads", 1, 256),
)


def _env_number(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number.", suggestion=f"Unset {name}.") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be within {low:g}..{high:g}, got {raw}.")
    return value
