"""Running the emulator: in a background thread for tests and embedding apps, or in the foreground
for `azmem emulator` / `python -m azmem.emulator`.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from .app import create_app
from .config import Deployment, EmulatorConfig, Fault, default_deployments
from .state import Clock, EmulatorState, ManualClock, OutageMode, RecordedRequest

DEFAULT_API_VERSION = "2024-10-21"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _listening_socket(host: str) -> socket.socket:
    """A TCP socket; the explicit IPPROTO_TCP matters: asyncio only turns Nagle off (TCP_NODELAY)
    for sockets whose protocol says TCP, and with Nagle on every small answer waits ~40 ms for the
    client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _uvicorn_config(app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",  # the connection-drop fault relies on h11's request cycle exposing its transport
        loop="asyncio",
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=5,
    )


class Emulator:
    """A local Azure OpenAI resource with test controls.

    `api_keys` are accepted in the `api-key` header or as `Authorization: Bearer`; tokens from
    `issue_token` are accepted as Bearer until they expire on the emulator's clock.
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        deployments: Iterable[Deployment] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_required: bool = True,
        region: str = "East US",
        clock: Clock | None = None,
        log_level: str = "warning",
    ) -> None:
        self._api_keys = tuple(api_keys)
        self._state = EmulatorState(
            list(deployments) if deployments is not None else default_deployments(),
            self._api_keys,
            auth_required=auth_required,
            region=region,
            clock=clock,
        )
        self._host = host
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._endpoint: str | None = None
        self._error: BaseException | None = None

    # -- lifetime ------------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve in a background thread; returns the endpoint ("http://127.0.0.1:PORT")."""
        if self._thread is not None:
            return self.endpoint
        sock = _listening_socket(self._host)
        try:
            # After a stop(), start() binds the same port again, so stop/start emulates a region
            # that refuses connections for a while and then comes back at the same endpoint.
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        port = sock.getsockname()[1]
        self._port = port
        self._state.stopping.clear()
        server = uvicorn.Server(_uvicorn_config(create_app(self._state), self._log_level))
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start() instead of dying silently in a thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"azmem-emulator-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or self._error is not None or time.monotonic() > deadline:
                error = self._error
                self.stop()
                raise RuntimeError(f"the emulator failed to start: {error!r}")
            time.sleep(0.005)
        shown = f"[{self._host}]" if ":" in self._host else self._host
        self._endpoint = f"http://{shown}:{port}"
        return self._endpoint

    def stop(self) -> None:
        """Stop serving and wait for the thread; hanging fault sleeps end at once."""
        if self._thread is None or self._server is None:
            return
        self._state.stopping.set()
        self._server.should_exit = True
        self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_TIMEOUT)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._thread = None
        self._server = None
        self._endpoint = None

    def __repr__(self) -> str:
        where = self._endpoint or "stopped"
        return f"Emulator({where}, deployments={sorted(self._state.deployments)})"

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def endpoint(self) -> str:
        """The `azure_endpoint` to give a client (the v1 base URL is endpoint + "/openai/v1/")."""
        if self._endpoint is None:
            raise RuntimeError("the emulator is not running: call start() or use it as a context manager")
        return self._endpoint

    @property
    def v1_base_url(self) -> str:
        return self.endpoint + "/openai/v1/"

    @property
    def api_key(self) -> str:
        """The first configured key (what most tests pass)."""
        return self._api_keys[0] if self._api_keys else ""

    @property
    def api_keys(self) -> tuple[str, ...]:
        return self._api_keys

    def client_kwargs(self, api_version: str = DEFAULT_API_VERSION) -> dict[str, Any]:
        """Keyword arguments for `openai.AzureOpenAI(...)` pointed at this emulator, retries off."""
        return {
            "azure_endpoint": self.endpoint,
            "api_key": self.api_key,
            "api_version": api_version,
            "max_retries": 0,
        }

    # -- deployments ---------------------------------------------------------------------------------
    @property
    def deployments(self) -> dict[str, Deployment]:
        return dict(self._state.deployments)

    def add_deployment(self, deployment: Deployment) -> Deployment:
        """Serve one more deployment (until `reset()`, which restores the constructor's list)."""
        self._state.add_deployment(deployment)
        return deployment

    def deployment(self, name: str) -> Deployment:
        """The live Deployment object; changing its fields (tpm, latency, ...) takes effect at once."""
        dep = self._state.get_deployment(name)
        if dep is None:
            raise KeyError(name)
        return dep

    # -- test control --------------------------------------------------------------------------------
    def script(self, deployment: str, replies: Any) -> None:
        """Queue replies for a deployment, or set a function `f(request_json) -> reply`.

        A reply is a str (the text), a dict of message fields (`content`, `finish_reason`,
        `tool_calls`, `refusal`, `filtered`, `usage`), a dict that is a whole response body (has
        `choices` or `object`), a `Fault`, a callable giving one of those, or for embeddings a list
        of vectors. When the queue is empty the deployment answers with a generated reply again.
        """
        self._state.script(deployment, replies)

    def fault(self, deployment: str, fault: Fault) -> None:
        """Inject a fault; faults fire in the order added, each for `fault.times` requests (None: until
        cleared)."""
        self._state.add_fault(deployment, fault)

    def clear_faults(self, deployment: str | None = None) -> None:
        self._state.clear_faults(deployment)

    def set_outage(self, deployment: str, down: bool = True, *, mode: OutageMode = "503") -> None:
        """Take a deployment down ("503": ServiceUnavailable answers; "drop": connections closed)."""
        self._state.set_outage(deployment, down, mode)

    def issue_token(self, ttl_seconds: float = 3600.0, *, authorized: bool = True) -> str:
        """An Entra-style bearer token accepted until `ttl_seconds` pass on the emulator's clock.

        `authorized=False` makes a token of a principal without a role on the resource: it is
        recognised but answered with 401 PermissionDenied, as Azure does before RBAC propagates.
        """
        return self._state.issue_token(ttl_seconds, authorized=authorized)

    @property
    def clock(self) -> Clock:
        return self._state.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._state.clock = clock

    def use_manual_clock(self, start: float = 1_000_000.0) -> ManualClock:
        """Switch quota windows and token expiry to a clock the test moves with `.advance(s)`."""
        clock = ManualClock(start)
        self._state.clock = clock
        return clock

    def window_usage(self, deployment: str) -> tuple[int, int]:
        """(requests, tokens) in the deployment's current one-minute window."""
        return self._state.usage_in_window(deployment)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a snapshot)."""
        return self._state.snapshot_requests()

    def requests_for(self, deployment: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.deployment == deployment]

    @property
    def last_request(self) -> RecordedRequest:
        requests = self.requests
        if not requests:
            raise LookupError("the emulator has received no request")
        return requests[-1]

    def pending_replies(self, deployment: str) -> int:
        return self._state.pending_replies(deployment)

    def reset(self) -> None:
        """Forget scripts, faults, outages, quota windows, tokens, the request log and added
        deployments; the clock goes back to real time."""
        self._state.reset()


def configure_from(config: EmulatorConfig) -> Emulator:
    return Emulator(
        config.api_keys,
        config.build_deployments(),
        host=config.host,
        port=config.port,
        auth_required=config.auth_required,
        region=config.region,
    )


def _banner(endpoint: str, config: EmulatorConfig, deployments: list[Deployment]) -> str:
    keys = ", ".join(config.api_keys) if config.auth_required else "(auth disabled: any key)"
    lines = [
        "azmem Azure OpenAI emulator",
        f"  endpoint        {endpoint}",
        f"  v1 base URL     {endpoint}/openai/v1/",
        f"  api keys        {keys}",
        f"  api-version     {DEFAULT_API_VERSION} (any YYYY-MM-DD[-preview] is accepted)",
        "  deployments:",
    ]
    for dep in deployments:
        detail = (
            f"dimensions={dep.dimensions}" if dep.kind == "embeddings" else f"context={dep.context_window}"
        )
        quota = f" tpm={dep.tpm}" if dep.tpm else ""
        quota += f" rpm={dep.rpm}" if dep.rpm else ""
        reasoning = " reasoning" if dep.reasoning else ""
        lines.append(f"    {dep.name:<28} {dep.kind:<10} model={dep.model} {detail}{reasoning}{quota}")
    first_key = config.api_keys[0] if config.api_keys else "any"
    lines += [
        "  environment:",
        f"    export AZURE_OPENAI_ENDPOINT={endpoint}",
        f"    export AZURE_OPENAI_API_KEY={first_key}",
        f"    export OPENAI_API_VERSION={DEFAULT_API_VERSION}",
    ]
    return "\n".join(lines)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    config_path: str | Path | None = None,
    *,
    config: EmulatorConfig | None = None,
    ready: Callable[[str], None] | None = None,
    banner: bool = True,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C), printing how to connect to stderr.

    `config_path` (YAML or JSON) gives keys and deployments; `host`/`port` arguments win over the
    file's. `ready(endpoint)` is called once the server listens. `banner=False` prints nothing, for
    callers that own their output (`azmem emulator --json`). A port that cannot be bound raises
    `OSError` with nothing left open.
    """
    if config is None:
        config = EmulatorConfig.load(config_path) if config_path else EmulatorConfig()
    config = config.model_copy(update={"host": host, "port": port})
    deployments = config.build_deployments()
    state = EmulatorState(
        deployments, config.api_keys, auth_required=config.auth_required, region=config.region
    )
    sock = _listening_socket(host)
    try:
        sock.bind((host, port))
        sock.listen(128)
        bound_port = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        endpoint = f"http://{shown_host}:{bound_port}"
        if banner:
            print(_banner(endpoint, config, deployments), file=sys.stderr, flush=True)
        logging.getLogger("azmem.emulator").info("serving on %s", endpoint)
        server = uvicorn.Server(_uvicorn_config(create_app(state), "warning"))
        if ready is not None:
            ready(endpoint)
        server.run(sockets=[sock])
    finally:
        state.stopping.set()
        sock.close()
