"""`azmem doctor` for pools: is each deployment reachable, does its auth work, what can it do.

A one-token request per deployment answers what the configuration cannot: a typo in a
deployment name, a key for the wrong resource, a region that is down. A 429 counts as
reachable (the deployment exists and accepted the credential; it is merely busy).
Results are plain dicts merged with :meth:`Router.snapshot`, for the CLI to print.
"""

from __future__ import annotations

import time
from typing import Any

from azmem.azure.errors import map_sdk_error
from azmem.azure.routing.pool import DeploymentSpec
from azmem.azure.routing.providers import DeploymentProviders
from azmem.azure.routing.router import Router
from azmem.azure.settings import AzureOpenAISettings
from azmem.errors import (
    AuthenticationError,
    AzmemError,
    DeploymentNotFoundError,
    NetworkError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
)

__all__ = ["check_deployments"]


def _verdict(error: AzmemError) -> str:
    if isinstance(error, RateLimitError | QuotaExceededError):
        return "throttled"
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return "auth_failed"
    if isinstance(error, DeploymentNotFoundError):
        return "not_found"
    if isinstance(error, NetworkError):
        return "unreachable"
    return "error"


def _ping(providers: DeploymentProviders, spec: DeploymentSpec, *, embeddings: bool) -> dict[str, Any]:
    provider = providers.provider(spec)
    started = time.monotonic()
    try:
        sdk = provider.sync_client()
        if embeddings:
            sdk.embeddings.create(model=provider.model_arg(), input=["azmem doctor"])
        else:
            messages: Any = [{"role": "user", "content": "ping"}]
            if providers.target(spec).reasoning:  # reasoning models reject max_tokens
                sdk.chat.completions.create(
                    model=provider.model_arg(), messages=messages, max_completion_tokens=16
                )
            else:
                sdk.chat.completions.create(model=provider.model_arg(), messages=messages, max_tokens=1)
    except Exception as exc:
        error = map_sdk_error(exc, provider.context("embeddings" if embeddings else "chat"))
        return {
            "check": _verdict(error),
            "reachable": _verdict(error) in ("throttled", "auth_failed", "not_found", "error"),
            "auth_ok": _verdict(error) in ("throttled", "not_found"),
            "error": f"{type(error).__name__}: {error.message}",
            "suggestion": error.suggestion,
            "check_ms": round((time.monotonic() - started) * 1000, 1),
        }
    return {
        "check": "ok",
        "reachable": True,
        "auth_ok": True,
        "error": None,
        "suggestion": None,
        "check_ms": round((time.monotonic() - started) * 1000, 1),
    }


def check_deployments(router: Router, base: AzureOpenAISettings | None = None) -> list[dict[str, Any]]:
    """One row per deployment of each pool: :meth:`Router.snapshot` plus a live check.

    Each Azure deployment is pinged once even when several pools list it. A pool whose
    name contains "embed" (or whose model is an embedding model) is checked with an
    embeddings request, every other one with a one-token chat completion.
    """
    providers = DeploymentProviders(base)
    checked: dict[str, dict[str, Any]] = {}
    rows = []
    try:
        for row in router.snapshot():
            spec = next(d for d in router.deployments(row["model"]) if d.name == row["name"])
            if spec.limiter_key not in checked:
                model = str(spec.settings.get("model") or spec.settings.get("deployment") or "")
                embeddings = "embed" in row["model"].lower() or "embedding" in model.lower()
                checked[spec.limiter_key] = _ping(providers, spec, embeddings=embeddings)
            rows.append({**row, **checked[spec.limiter_key]})
    finally:
        providers.close()
    return rows
