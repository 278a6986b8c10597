"""``azmem status`` and doctor's per-deployment pool checks.

With a ``routing:`` section, ``status`` prints one line per deployment of each pool
(:meth:`Router.status_lines`; ``--json`` gives :meth:`Router.snapshot`). Without one it
lists the single configured deployments (:func:`azmem.azure.settings.single_deployments`,
shared with the server's ``/v1/status`` so both answer alike). The usage figures
(:func:`azmem.azure.usage.usage_status`) follow once this process made LLM calls. The router
is the process-wide one for the settings, so what the status shows is what this process
(and, through the SQLite limiter, every process on the machine) knows about each deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from azmem.cli.checks import Check
from azmem.cli.options import ConfigOpt, JsonOpt, state
from azmem.cli.output import out_console, print_json

if TYPE_CHECKING:
    from azmem.azure.settings import AzmemSettings

__all__ = ["pool_checks", "status"]

#: check_deployments' verdict -> doctor's status.
_STATUS = {
    "ok": "ok",
    "throttled": "warn",
    "auth_failed": "fail",
    "not_found": "fail",
    "unreachable": "fail",
    "error": "fail",
}


def _capabilities(caps: dict[str, Any]) -> str:
    flags = [name for name in ("json_schema", "vision", "reasoning") if caps.get(name)]
    window = caps.get("context_window")
    if window:
        flags.append(f"context {window}")
    return ", ".join(flags) or "none"


def _auth(row: dict[str, Any]) -> str:
    """Only a 401/403 says the credential is wrong; a 5xx or no answer says nothing about it."""
    if row["auth_ok"]:
        return "ok"
    return "failed" if row["check"] == "auth_failed" else "unknown"


def _detail(row: dict[str, Any]) -> str:
    cooldown = (
        f"cooling {row['cooldown_remaining']:.1f}s ({row['reason']})"
        if row["cooldown_remaining"]
        else f"no cooldown ({row['state']})"
    )
    parts = [
        f"'{row['deployment']}' at {row['endpoint']}",
        f"reachable: {'yes' if row['reachable'] else 'no'}",
        f"auth: {_auth(row)}",
        f"capabilities: {_capabilities(row['capabilities'])}",
        cooldown,
    ]
    text = "; ".join(parts)
    if row["error"]:
        text += f"; {row['error']}"
    return text


def pool_checks(settings: AzmemSettings) -> list[Check]:
    """One doctor check per deployment of each routing pool; [] without a routing config."""
    from azmem.azure.routing.doctor import check_deployments
    from azmem.azure.routing.router import Router
    from azmem.errors import AzmemError

    try:
        router = Router.from_settings(settings)
    except AzmemError as exc:
        return [Check("routing", "fail", exc.message, exc.suggestion)]
    if router is None:
        return []
    base = settings.chat if settings.chat is not None else settings.embedding
    checks = []
    for row in check_deployments(router, base):
        status: Any = _STATUS.get(row["check"], "fail")
        checks.append(
            Check(
                f"pool {row['model']}/{row['name']}",
                status,
                _detail(row),
                row["suggestion"],
                role=row["model"],
            )
        )
    return checks


def status(
    ctx: typer.Context,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """One line per deployment of each routing pool (state, cooldown, latency, quota use).

    Without a routing config, the single configured deployments. Makes no requests. After
    LLM calls in this process, the usage tracker's figures follow (tokens, cost per
    deployment and group), as a server's status route shows them.
    """
    from azmem.azure.routing.router import Router
    from azmem.azure.settings import AzmemSettings, single_deployments
    from azmem.azure.usage import usage_lines, usage_status

    st = state(ctx, config)
    settings = AzmemSettings.load(st.config)
    router = Router.from_settings(settings)
    # The process's usage tracker (the figures a server's /v1/status shows): only after calls.
    usage = usage_status()
    extra = {"usage": usage} if usage is not None else {}
    console = out_console()
    if router is not None:
        if json_:
            print_json({"routing": True, "deployments": router.snapshot(), **extra})
        else:
            for line in [*router.status_lines(), *(usage_lines(usage) if usage else [])]:
                console.print(escape(line), soft_wrap=True)
        return
    rows = single_deployments(settings)
    if json_:
        print_json({"routing": False, "deployments": rows, **extra})
        return
    if not rows:
        console.print(
            "No Azure OpenAI deployment is configured (local embeddings, memories stored verbatim). "
            "Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT, or chat: / routing: in the config file.",
            soft_wrap=True,
        )
    for row in rows:
        console.print(
            escape(f"{row['role']}: {row['deployment']} at {row['endpoint']} (no routing)"), soft_wrap=True
        )
    for line in usage_lines(usage) if usage else []:
        console.print(escape(line), soft_wrap=True)
