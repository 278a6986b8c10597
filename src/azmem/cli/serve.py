"""``azmem serve`` (REST + MCP over HTTP) and ``azmem mcp`` (MCP over stdio, for desktop hosts).

``serve`` checks the bind before anything else: without keys (``--no-auth``) only a
loopback address is accepted. It runs uvicorn, whose SIGTERM / Ctrl-C handling stops
accepting connections and lets in-flight requests finish; the app's lifespan then
closes the store. ``mcp`` writes nothing but JSON-RPC on stdout (its logs go to
stderr), as stdio hosts require.
"""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from azmem.cli.options import ConfigOpt, StoreOpt, state
from azmem.cli.output import InputFileError, err_console
from azmem.cli.runtime import load_settings

__all__ = ["mcp", "serve"]

Users = Annotated[
    list[str] | None,
    typer.Option(
        "--user", "-u", help="Serve (and default to) this user id only; repeatable. Keyless use only."
    ),
]
Agents = Annotated[list[str] | None, typer.Option("--agent", "-a", help="The same for agent ids.")]
Runs = Annotated[list[str] | None, typer.Option("--run", "-r", help="The same for run ids.")]
ReadOnly = Annotated[bool, typer.Option("--read-only", help="Refuse every write (keyless use).")]
LogLevel = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning or error (logs go to stderr).")
]
# The local model's batching under load (docs/server.md, "Embedding under load"). Unset, each
# falls back to its environment variable, then to the default; an Azure embedder ignores them.
_TUNING = "Embedding under load"
EmbedBatch = Annotated[
    int | None,
    typer.Option(
        "--embedding-batch",
        min=0,
        max=4096,
        help="Texts of concurrent requests embedded in one local-model call, at most; 0 turns batching "
        "off. [default: AZMEM_EMBEDDING_BATCH, else 64]",
        rich_help_panel=_TUNING,
        show_default=False,
    ),
]
EmbedWait = Annotated[
    float | None,
    typer.Option(
        "--embedding-batch-wait-ms",
        min=0,
        max=1000,
        help="How long an idle model holds a first text for others to join. "
        "[default: AZMEM_EMBEDDING_BATCH_WAIT_MS, else 2]",
        rich_help_panel=_TUNING,
        show_default=False,
    ),
]
EmbedWorkers = Annotated[
    int | None,
    typer.Option(
        "--embedding-workers",
        min=1,
        max=64,
        help="Batches embedded at a time. [default: AZMEM_EMBEDDING_WORKERS, else one per two cores]",
        rich_help_panel=_TUNING,
        show_default=False,
    ),
]
EmbedThreads = Annotated[
    int | None,
    typer.Option(
        "--embedding-threads",
        min=1,
        max=256,
        help="onnxruntime threads per model call. [default: AZMEM_EMBEDDING_THREADS, else 1 when "
        "batching, onnxruntime's choice when not]",
        rich_help_panel=_TUNING,
        show_default=False,
    ),
]


def _check_port(host: str, port: int) -> None:
    """Fail early with our message when the address cannot be bound (uvicorn would exit less clearly)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fix = (
                "--host must be an address of this machine (127.0.0.1 or 0.0.0.0)."
                if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
                else "Choose another --port."
            )
            raise InputFileError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", suggestion=fix
            ) from None


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")] = 8765,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Run without API keys (refused unless --host is loopback).")
    ] = False,
    user: Users = None,
    agent: Agents = None,
    run: Runs = None,
    read_only: ReadOnly = False,
    log_level: LogLevel = "info",
    embedding_batch: EmbedBatch = None,
    embedding_batch_wait_ms: EmbedWait = None,
    embedding_workers: EmbedWorkers = None,
    embedding_threads: EmbedThreads = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Serve the REST API, the mem0-compatible routes and MCP (at /mcp) over HTTP.

    Clients send `Authorization: Bearer <key>` (`azmem keys create NAME --user ID`).
    OpenAPI at /openapi.json, docs at /docs, probes at /healthz and /readyz.
    """
    import uvicorn

    from azmem.server import ServerConfig, check_bind, create_app
    from azmem.server.logs import configure_logging

    check_bind(host, auth=not no_auth)
    if (user or agent or run or read_only) and not no_auth:
        raise InputFileError(
            "--user / --agent / --run / --read-only bind a keyless server; with keys, each key has its own.",
            suggestion="Bind keys instead (azmem keys create NAME --user ID), or add --no-auth on loopback.",
        )
    _check_port(host, port)
    configure_logging(log_level)
    settings = load_settings(state(ctx, config, store))
    server_config = ServerConfig(
        auth=not no_auth,
        user_ids=tuple(user or ()),
        agent_ids=tuple(agent or ()),
        run_ids=tuple(run or ()),
        read_only=read_only,
        embedding_batch_size=embedding_batch,
        embedding_batch_wait_ms=embedding_batch_wait_ms,
        embedding_workers=embedding_workers,
        embedding_threads=embedding_threads,
    )
    app = create_app(settings=settings, config=server_config)
    if no_auth:
        err_console().print(
            "[yellow]No API keys:[/yellow] any program on this machine can read and change "
            + ("every user's memories." if not user else "these users' memories.")
        )
    err_console().print(f"azmem serving on http://{host}:{port} (docs at /docs, MCP at /mcp)")
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,  # the gate logs each request, without query strings
            timeout_graceful_shutdown=10,
            lifespan="on",
        )
    ).run()


def mcp(
    ctx: typer.Context,
    user: Users = None,
    agent: Agents = None,
    run: Runs = None,
    read_only: ReadOnly = False,
    log_level: LogLevel = "warning",
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Serve the MCP tools over stdio, for hosts that start a command (VS Code, Claude Desktop...).

    `--user alex` makes alex the default scope and the only one reachable: the agent
    cannot read or change another user's memories. See docs/server.md for host set-up.
    """
    import anyio

    from azmem.server import ServerConfig, build_mcp
    from azmem.server.logs import configure_logging
    from azmem.server.runtime import build_services

    configure_logging(log_level)
    settings = load_settings(state(ctx, config, store))
    services = build_services(
        None,
        settings=settings,
        config=ServerConfig(
            auth=False,
            user_ids=tuple(user or ()),
            agent_ids=tuple(agent or ()),
            run_ids=tuple(run or ()),
            read_only=read_only,
        ),
        keys=None,
        usage=None,
    )
    server = build_mcp(services)

    async def run_stdio() -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(services.warm_up)  # the model loads while the host initialises
                await server.run_stdio_async()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await services.aclose()

    anyio.run(run_stdio)
