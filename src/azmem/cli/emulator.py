"""``azmem emulator``: serve the local Azure OpenAI emulator for apps, notebooks and CI.

Before serving it prints what a client needs (endpoint, key, deployment names) as shell
``export`` lines, so pointing an app at it is one paste. With ``--json`` that same
information is one JSON line on stdout, which a script or a test can read with a single
``readline()`` before it starts sending requests.

``azmem emulator token`` asks a running emulator for an Entra-style bearer token (from its
managed-identity endpoint, the one ``DefaultAzureCredential`` uses when ``IDENTITY_ENDPOINT``
and ``IDENTITY_HEADER`` are exported), so Entra ID auth can be rehearsed without Azure.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azmem.cli.output import InputFileError, err_console, out_console

if TYPE_CHECKING:
    from azmem.emulator.config import Deployment, EmulatorConfig

__all__ = ["connection_info", "emulator", "fetch_token"]

DEFAULT_PORT = 8000  # the same as `python -m azmem.emulator`


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_port(host: str, port: int) -> None:
    """Fail early, with our message, when the port is taken (serve would fail the same way, later)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputFileError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", suggestion=_listen_fix(exc)
            ) from None


def _listen_fix(exc: OSError) -> str:
    """The option to change: --host when the address is not this machine's, else --port."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (
            "--host must be an address of this machine: 127.0.0.1 (the default, this machine only) "
            "or 0.0.0.0 (every interface)."
        )
    return "Choose another --port (--port 0 picks a free one)."


def _load_config(path: Path | None) -> EmulatorConfig:
    from pydantic import ValidationError

    from azmem.emulator.config import EmulatorConfig

    if path is None:
        return EmulatorConfig()
    try:
        return EmulatorConfig.load(path)
    except FileNotFoundError:
        raise InputFileError(
            f"Emulator config {path} does not exist.", suggestion="Check the path."
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputFileError(
            f"Emulator config {path}: {where}: {first['msg']}.",
            suggestion=_known_keys(),
        ) from None
    except ValueError as exc:  # JSON / YAML syntax
        raise InputFileError(
            f"Emulator config {path} cannot be parsed: {exc}", suggestion="Fix its syntax."
        ) from None


def _known_keys() -> str:
    """Every key the emulator config accepts, read from its models so the hint never drifts."""
    from azmem.emulator.config import DeploymentConfig, EmulatorConfig

    top = ", ".join(EmulatorConfig.model_fields)
    each = ", ".join(DeploymentConfig.model_fields)
    return f"Known keys: {top} (each deployment: {each})."


def connection_info(endpoint: str, api_keys: list[str], deployments: list[Deployment]) -> dict[str, Any]:
    """What a client needs to use the emulator, including the environment azmem and the SDK read."""
    chat = [d for d in deployments if d.kind == "chat"]
    emb = [d for d in deployments if d.kind == "embeddings"]
    from azmem.emulator.server import DEFAULT_API_VERSION

    env: dict[str, str] = {"AZURE_OPENAI_ENDPOINT": endpoint}
    if api_keys:
        env["AZURE_OPENAI_API_KEY"] = api_keys[0]
    env["OPENAI_API_VERSION"] = DEFAULT_API_VERSION  # what AzureOpenAI() reads when none is passed
    if chat:
        env["AZURE_OPENAI_DEPLOYMENT"] = chat[0].name
    if emb:
        env["AZURE_OPENAI_EMBEDDING_DEPLOYMENT"] = emb[0].name
    from azmem.emulator.identity import TOKEN_PATH

    return {
        "endpoint": endpoint,
        "api_key": api_keys[0] if api_keys else None,
        "api_keys": list(api_keys),
        # Entra ID rehearsal: with these (and no API key) DefaultAzureCredential gets its
        # tokens from the emulator, through App Service's managed identity protocol.
        "entra": {
            "IDENTITY_ENDPOINT": endpoint + TOKEN_PATH,
            "IDENTITY_HEADER": api_keys[0] if api_keys else "any",
        },
        "deployments": [
            {
                "name": d.name,
                "kind": d.kind,
                "model": d.model,
                **(
                    {"dimensions": d.dimensions}
                    if d.kind == "embeddings"
                    else {"context_window": d.context_window}
                ),
            }
            for d in deployments
        ],
        "env": env,
    }


def _print_info(info: dict[str, Any]) -> None:
    """The paste-able part: only ``export`` lines on stdout (``eval "$(azmem emulator ...)"``
    style use); the words around them and the emulator's banner go to stderr."""
    err_console().print(
        "[dim]To use it, paste the export lines into a shell, then run `azmem doctor`. Ctrl-C stops it.[/dim]"
    )
    sys.stderr.flush()
    console = out_console()
    for key, value in info["env"].items():
        console.print(f"export {key}={value}", markup=False, highlight=False)
    sys.stdout.flush()  # a pipe is block-buffered: the lines are wanted now, not at exit
    entra = " ".join(f"{k}={v}" for k, v in info["entra"].items())
    err_console().print(
        "[dim]Entra ID instead of the key: unset AZURE_OPENAI_API_KEY and export "
        f"{entra} (DefaultAzureCredential then gets its tokens here), or print one bearer token "
        f"with `azmem emulator token --endpoint {info['endpoint']}`.[/dim]",
        highlight=False,
    )


def fetch_token(
    endpoint: str, key: str, *, ttl_seconds: float | None = None, authorized: bool = True
) -> dict[str, Any]:
    """A bearer token from a running emulator's managed-identity endpoint (its JSON answer)."""
    from azmem.azure.settings import DEFAULT_TOKEN_SCOPE
    from azmem.emulator.identity import TOKEN_PATH

    query: dict[str, str] = {"api-version": "2019-08-01", "resource": DEFAULT_TOKEN_SCOPE}
    if ttl_seconds is not None:
        query["ttl_seconds"] = str(ttl_seconds)
    if not authorized:
        query["authorized"] = "false"
    url = endpoint.rstrip("/") + TOKEN_PATH + "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data
    except urllib.error.HTTPError as exc:
        with exc:
            detail = exc.read().decode("utf-8", "replace")
        raise InputFileError(
            f"The emulator at {endpoint} refused the token request ({exc.code}): {detail}",
            suggestion="Pass --key with one of the emulator's API keys.",
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputFileError(
            f"No emulator answers at {endpoint}: {reason}.",
            suggestion="Start one with `azmem emulator`, or pass the endpoint it printed with --endpoint.",
        ) from None


def _token(
    endpoint: str | None, key: str | None, ttl: float | None, unauthorized: bool, as_json: bool
) -> None:
    endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or f"http://127.0.0.1:{DEFAULT_PORT}"
    key = key or os.environ.get("AZURE_OPENAI_API_KEY") or "test-key"
    answer = fetch_token(endpoint, key, ttl_seconds=ttl, authorized=not unauthorized)
    if as_json:
        sys.stdout.write(json.dumps(answer) + "\n")
    else:
        sys.stdout.write(str(answer["access_token"]) + "\n")
    sys.stdout.flush()


def emulator(
    action: Annotated[
        str,
        typer.Argument(
            help="serve (the default): run the emulator. token: print an Entra-style bearer token "
            "from a running emulator (--endpoint, --key, --ttl, --no-role).",
            show_default=False,
            metavar="[serve|token]",
        ),
    ] = "serve",
    host: Annotated[str | None, typer.Option(help="Interface to listen on.  [default: 127.0.0.1]")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help=f"Port to listen on (0: any free port).  [default: {DEFAULT_PORT}]"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Emulator config (YAML or JSON): api_keys, deployments, limits.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    json_: Annotated[
        bool,
        typer.Option("--json", help="Print the connection details (or the token) as one JSON line."),
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="token: the running emulator.  [default: $AZURE_OPENAI_ENDPOINT, else http://127.0.0.1:8000]"
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="token: one of its API keys.  [default: $AZURE_OPENAI_API_KEY, else test-key]"),
    ] = None,
    ttl: Annotated[
        float | None, typer.Option(min=1, help="token: seconds until it expires.  [default: 3600]")
    ] = None,
    no_role: Annotated[
        bool,
        typer.Option(
            "--no-role",
            help="token: a principal without a role on the resource (answered 401 PermissionDenied).",
        ),
    ] = False,
) -> None:
    """Serve a local Azure OpenAI-compatible endpoint (chat, Responses, embeddings, errors, limits).

    Without --config it serves gpt-4o, gpt-4o-mini, o3-mini and the text-embedding
    models with the key "test-key". Note: --config here is the emulator's own file, not
    azmem's settings. `azmem emulator token` prints a bearer token for Entra ID rehearsals.
    """
    if action == "token":
        _token(endpoint, key, ttl, no_role, json_)
        return
    if action != "serve":
        raise typer.BadParameter(f"{action!r} is not one of serve, token.", param_hint="ACTION")
    from azmem.emulator import serve

    cfg = _load_config(config)
    deployments = cfg.build_deployments()
    bind_host = host or cfg.host
    bind_port = port if port is not None else (cfg.port or DEFAULT_PORT)

    _check_port(bind_host, bind_port)

    def ready(endpoint: str) -> None:
        if bind_host in ("0.0.0.0", "::"):  # reachable locally through loopback
            endpoint = endpoint.replace(f"//{bind_host}", "//127.0.0.1").replace("//[::]", "//127.0.0.1")
        info = connection_info(endpoint, list(cfg.api_keys), deployments)
        if json_:
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()
        else:
            _print_info(info)

    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; turning it into the
    # same KeyboardInterrupt as Ctrl-C makes `kill` (docker stop, CI teardown) exit 0.
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        # With --json, stdout's JSON line is the whole output: no banner on stderr to filter out.
        serve(host=bind_host, port=bind_port, config=cfg, ready=ready, banner=not json_)
    except KeyboardInterrupt:
        return
    except OSError as exc:  # address in use, permission denied
        raise InputFileError(
            f"Cannot listen on {bind_host}:{bind_port}: {exc.strerror or exc}.", suggestion=_listen_fix(exc)
        ) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
