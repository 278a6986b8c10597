"""``azmem doctor``: check the Azure OpenAI set-up end to end, and say how to fix what fails.

The checks follow the order in which a request can fail, so the first failure is the
one to fix: the settings load, the endpoint answers, the credential is accepted, each
deployment exists, the chat deployment accepts structured outputs (json_schema) with the
configured api-version, and the embedding dimension matches the vectors already in the
store. Each probe is one tiny real request made with the SDK's retries off, so doctor
reports what the service says *now* instead of waiting out backoffs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from azmem.cli.checks import Check, Report
from azmem.cli.options import ConfigOpt, JsonOpt, StoreOpt, state
from azmem.cli.output import ExitCode, out_console, print_json
from azmem.cli.store_checks import check_store

if TYPE_CHECKING:
    from azmem.azure.provider import AzureProvider
    from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
    from azmem.errors import AzmemError

__all__ = ["Check", "doctor", "run_checks"]

_PROBE_TOKENS = 16
_JSON_SCHEMA_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "azmem_doctor",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    },
}


def _load_settings(config: Path | None, store: str | None, report: Report) -> AzmemSettings | None:
    from azmem.azure.settings import AzmemSettings
    from azmem.errors import AzmemError

    overrides: dict[str, Any] = {"store": {"url": store}} if store is not None else {}
    try:
        settings = AzmemSettings.load(config, **overrides)
    except AzmemError as exc:
        report.add(Check("configuration", "fail", exc.message, exc.suggestion))
        return None
    roles = [
        f"{name}={cfg.deployment}"
        for name in ("chat", "small_chat", "embedding")
        if (cfg := getattr(settings, name)) is not None and cfg.deployment
    ]
    if config is not None:
        source = f"config file {config}"
    elif os.environ.get("AZMEM_CONFIG"):
        source = f"config file {os.environ['AZMEM_CONFIG']} (AZMEM_CONFIG) and environment"
    else:
        source = "environment"
    report.add(
        Check(
            "configuration",
            "ok",
            f"loaded from {source}; " + (", ".join(roles) if roles else "no Azure OpenAI deployment"),
        )
    )
    return settings


def _tokens(cfg: AzureOpenAISettings) -> dict[str, int]:
    """Reasoning deployments reject max_tokens: ask for the limit the way the model accepts it."""
    key = "max_completion_tokens" if cfg.resolved_capabilities().reasoning else "max_tokens"
    return {key: _PROBE_TOKENS}


def _probe(provider: AzureProvider, operation: str, call: Any) -> tuple[Any, AzmemError | None]:
    """Run one request, turning whatever the SDK raises into azmem's error (with its fix)."""
    from azmem.azure.errors import map_sdk_error

    try:
        return call(provider.sync_client()), None
    except Exception as exc:
        return None, map_sdk_error(exc, provider.context(operation))


def _classify_first(
    error: AzmemError | None, provider: AzureProvider, role: str, report: Report, what: str
) -> bool:
    """Report endpoint, auth and deployment from the first request's outcome; True if usable.

    One request answers three questions because the service checks them in that order:
    no answer at all means the endpoint; a 401/403 means the credential; a 404 means the
    deployment.
    """
    from azmem.errors import (
        AuthenticationError,
        DeploymentNotFoundError,
        NetworkError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
    )

    endpoint = provider.endpoint
    auth = "Microsoft Entra ID token" if provider.auth_kind == "entra" else "API key"
    # Two roles with the same endpoint and credential fail or pass together: report once.
    secret = provider.settings.api_key.get_secret_value() if provider.settings.api_key else ""
    credential = (endpoint, str(provider.auth_kind), hashlib.sha256(secret.encode()).hexdigest())
    label = f"{role} deployment"
    if isinstance(error, NetworkError):
        report.add(Check("endpoint", "fail", error.message, error.suggestion, role), key=(endpoint,))
        return False
    if isinstance(error, AuthenticationError) and error.error_code == "entra_token_unavailable":
        # No token, so no request was sent: the endpoint was never asked.
        report.add(Check("endpoint", "skip", f"{endpoint} not contacted (no Entra ID token)", role=role))
        report.add(Check("auth", "fail", error.message, error.suggestion, role), key=credential)
        return False
    report.add(Check("endpoint", "ok", f"{endpoint} answers", role=role))
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        report.add(Check("auth", "fail", error.message, error.suggestion, role), key=credential)
        return False
    report.add(Check("auth", "ok", f"{auth} accepted by {endpoint}", role=role), key=credential)
    if isinstance(error, DeploymentNotFoundError):
        report.add(Check(label, "fail", error.message, error.suggestion, role))
        return False
    if isinstance(error, RateLimitError | QuotaExceededError):
        report.add(
            Check(
                label, "warn", f"'{provider.deployment}' exists but is throttled now", error.suggestion, role
            )
        )
        return False
    if error is not None:
        report.add(Check(label, "fail", error.message, error.suggestion, role))
        return False
    report.add(Check(label, "ok", f"'{provider.deployment}' {what}", role=role))
    return True


def _check_chat(role: str, cfg: AzureOpenAISettings, report: Report) -> None:
    from azmem.azure.provider import AzureProvider

    provider = AzureProvider(cfg)
    try:
        messages = [{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}]
        reply, error = _probe(
            provider,
            "chat",
            lambda c: c.chat.completions.create(
                model=provider.model_arg(), messages=messages, **_tokens(cfg)
            ),
        )
        model = getattr(reply, "model", None)
        if not _classify_first(
            error, provider, role, report, f"answers (model {model})" if model else "answers"
        ):
            return
        _, error = _probe(
            provider,
            "chat",
            lambda c: c.chat.completions.create(
                model=provider.model_arg(),
                messages=messages,
                response_format=_JSON_SCHEMA_FORMAT,
                **_tokens(cfg),
            ),
        )
        version = "the v1 API" if cfg.api_mode == "v1" else f"api-version {cfg.api_version}"
        if error is None:
            report.add(
                Check(
                    "structured outputs",
                    "ok",
                    f"'{cfg.deployment}' accepts json_schema with {version}",
                    role=role,
                )
            )
        else:  # JsonSchemaUnsupportedError carries the api-version fix
            report.add(Check("structured outputs", "fail", error.message, error.suggestion, role))
    finally:
        provider.close()


def _check_embedding(cfg: AzureOpenAISettings, report: Report) -> int | None:
    """Probe the embedding deployment; returns the dimension it produces (None if unusable)."""
    from azmem.azure.provider import AzureProvider

    provider = AzureProvider(cfg)
    try:
        extra: dict[str, Any] = {"dimensions": cfg.dimensions} if cfg.dimensions else {}
        reply, error = _probe(
            provider,
            "embeddings",
            lambda c: c.embeddings.create(model=provider.model_arg(), input=["azmem doctor"], **extra),
        )
        dimension = len(reply.data[0].embedding) if reply is not None and reply.data else None
        if not _classify_first(error, provider, "embedding", report, f"answers ({dimension} dimensions)"):
            return None
        if cfg.dimensions and dimension != cfg.dimensions:
            report.add(
                Check(
                    "embedding dimension",
                    "fail",
                    f"asked for {cfg.dimensions} dimensions, '{cfg.deployment}' returned {dimension}",
                    "Only text-embedding-3 models take `dimensions`: remove it from the settings "
                    "or deploy a text-embedding-3 model.",
                    "embedding",
                )
            )
            return None
        return dimension
    finally:
        provider.close()


def _check_local_model(report: Report) -> tuple[str, int] | None:
    """Load the bundled model once (files located and sha256-checked): what every add and search needs."""
    from azmem.embeddings.local import DIMENSION, LOCAL_EMBEDDER_NAME, EmbeddingModelError, LocalEmbedder

    try:
        LocalEmbedder().load()
    except EmbeddingModelError as exc:
        report.add(Check("local embedding model", "fail", exc.message, exc.suggestion))
        return None
    report.add(Check("local embedding model", "ok", f"{LOCAL_EMBEDDER_NAME} loads ({DIMENSION} dimensions)"))
    return LOCAL_EMBEDDER_NAME, DIMENSION


def run_checks(config: Path | None = None, store: str | None = None) -> list[Check]:
    """Every check, in the order a request would fail; the core of ``azmem doctor``, without rendering."""
    from azmem.errors import AzmemError

    report = Report()
    settings = _load_settings(config, store, report)
    if settings is None:
        return report.checks
    # A role with an endpoint but no deployment (top-level endpoint/api_key fill every role)
    # is "not configured", as it is for Memory.
    chat = settings.chat if settings.chat is not None and settings.chat.deployment else None
    chat_roles = [("chat", chat)]
    if settings.small_chat is not None and settings.small_chat.deployment and settings.chat is not None:
        same = (settings.small_chat.endpoint, settings.small_chat.deployment) == (
            settings.chat.endpoint,
            settings.chat.deployment,
        )
        if not same:
            chat_roles.append(("small_chat", settings.small_chat))
    for role, cfg in chat_roles:
        if cfg is None:
            report.add(
                Check(
                    "chat deployment",
                    "skip",
                    "none configured: memories are stored verbatim (no fact extraction, no `query` answers)",
                    "To extract facts with Azure OpenAI, set AZURE_OPENAI_ENDPOINT and "
                    "AZURE_OPENAI_DEPLOYMENT (or chat: in the config file).",
                    role,
                )
            )
            continue
        try:
            _check_chat(role, cfg, report)
        except AzmemError as exc:  # settings that cannot even build a client
            report.add(Check(f"{role} deployment", "fail", exc.message, exc.suggestion, role))

    embedder: tuple[str, int] | None
    if settings.embedder == "azure" and settings.embedding is not None:
        try:
            dimension = _check_embedding(settings.embedding, report)
        except AzmemError as exc:
            report.add(Check("embedding deployment", "fail", exc.message, exc.suggestion, "embedding"))
            dimension = None
        embedder = None if dimension is None else (f"azure:{settings.embedding.deployment}", dimension)
    else:
        embedder = _check_local_model(report)
    check_store(settings, embedder, report)
    from azmem.cli.status import pool_checks

    for check in pool_checks(settings):  # each deployment of each routing pool
        report.add(check)
    return report.checks


_ICONS = {
    "ok": "[green]✓[/green]",
    "warn": "[yellow]![/yellow]",
    "fail": "[red]✗[/red]",
    "skip": "[dim]–[/dim]",
}


def doctor(
    ctx: typer.Context,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Check the Azure OpenAI set-up end to end and print the fix for each problem.

    Makes a few tiny requests (a handful of tokens) to each configured deployment.
    Exits with 1 when a check fails.
    """
    st = state(ctx, config, store)
    checks = run_checks(st.config, st.store)
    failed = any(c.status == "fail" for c in checks)
    if json_:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        console = out_console()
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for check in checks:
            detail = escape(check.detail)
            if check.fix and check.status in ("fail", "warn"):
                detail += f"\n[yellow]Fix:[/yellow] {escape(check.fix)}"
            elif check.fix and check.status == "skip":
                detail += f"\n[dim]{escape(check.fix)}[/dim]"
            table.add_row(_ICONS[check.status], escape(check.name), detail)
        console.print(table)
        n_failed = sum(c.status == "fail" for c in checks)
        if failed:
            console.print(f"[red]{n_failed} check{'s' if n_failed > 1 else ''} failed.[/red]")
        else:
            console.print("[green]All checks passed.[/green]")
    if failed:
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))
