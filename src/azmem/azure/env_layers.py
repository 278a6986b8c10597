"""The Azure environment variables as settings layers, and what roles inherit from chat.

Apart from :mod:`azmem.azure.settings` because these rules (which variable names which
role, which values a key may travel with to another role) need nothing of the settings
classes, and reading them alone is how one checks a key never reaches another resource.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .role_settings import INHERITED, INHERITED_CHAT_ONLY

__all__ = ["deep_merge", "env_layers", "inherit"]


def _env(*names: str) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip() != "":
            return name, value
    return None


def env_layers() -> tuple[dict[str, Any], dict[str, Any]]:
    """(generic layer, role-specific layer) from the Azure environment variables.

    Connection values (endpoint, key, api-version, managed identity) of the generic layer
    apply to chat and embedding alike, as their names say; ``LLM_AZURE_*`` ones to chat,
    ``EMBEDDING_AZURE_*`` ones to embedding. Small chat takes its connection from chat (so
    ``LLM_AZURE_*`` too). Deployment names only name their own role's deployment; a role
    left without one is dropped by :func:`inherit`, so these layers never create a role.
    """
    shared: dict[str, Any] = {}
    if hit := _env("AZURE_OPENAI_ENDPOINT"):
        shared["endpoint"] = hit[1]
    if hit := _env("AZURE_OPENAI_API_KEY"):
        shared["api_key"] = hit[1]
    if hit := _env("AZURE_OPENAI_API_VERSION", "OPENAI_API_VERSION"):
        shared["api_version"] = hit[1]
    if hit := _env("AZURE_OPENAI_USE_MANAGED_IDENTITY"):
        shared["use_managed_identity"] = hit[1].strip().lower() in {"1", "true", "yes", "on"}
    generic: dict[str, Any] = {}
    deployments = {  # small_chat takes its connection from chat, LLM_AZURE_* included
        "chat": _env("AZURE_OPENAI_DEPLOYMENT", "AZURE_OPENAI_DEPLOYMENT_NAME"),
        "embedding": _env("AZURE_OPENAI_EMBEDDING_DEPLOYMENT"),
    }
    for role, hit in deployments.items():
        values = dict(shared)
        if hit:
            values["deployment"] = hit[1]
        if values:
            generic[role] = values

    roles: dict[str, Any] = {}
    for role, prefix in (("chat", "LLM_AZURE_"), ("embedding", "EMBEDDING_AZURE_")):
        found: dict[str, Any] = {}
        for field, suffix in (
            ("api_key", "OPENAI_API_KEY"),
            ("deployment", "DEPLOYMENT"),
            ("endpoint", "ENDPOINT"),
            ("api_version", "API_VERSION"),
        ):
            if hit := _env(prefix + suffix):
                found[field] = hit[1]
        if found:
            roles[role] = found
    return generic, roles


def inherit(merged: dict[str, Any], explicit: Mapping[str, Any]) -> None:
    """Fill small_chat/embedding gaps from chat; keep a role only when it has a deployment.

    A role without its own deployment is not configured at all (the generic env layer
    gives every role an endpoint and key). Chat's API key is inherited only by a role on
    the same endpoint: a key is never sent to another resource.
    """
    chat = merged.get("chat")
    if isinstance(chat, dict) and not any(chat.values()):
        merged.pop("chat")
        chat = None
    for role in ("small_chat", "embedding"):
        cfg = merged.get(role)
        if not isinstance(cfg, dict):
            continue
        if not cfg.get("deployment") and role not in explicit:
            merged.pop(role)
            continue
        keys = INHERITED + (INHERITED_CHAT_ONLY if role == "small_chat" else ())
        if isinstance(chat, dict):
            if "endpoint" in chat and "endpoint" not in cfg:
                cfg["endpoint"] = chat["endpoint"]
            # A key only ever goes to the resource it came with.
            same_resource = _endpoint_id(cfg.get("endpoint")) == _endpoint_id(chat.get("endpoint"))
            for key in keys:
                if key in chat and key not in cfg and (key != "api_key" or same_resource):
                    cfg[key] = chat[key]


def _endpoint_id(value: Any) -> Any:
    """An endpoint as compared for key inheritance: case, trailing slash and /openai[/v1] ignored."""
    if not isinstance(value, str):
        return value
    v = value.strip().rstrip("/").lower()
    for suffix in ("/openai/v1", "/openai"):
        v = v.removesuffix(suffix)
    return v


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "default_headers":
            out[key] = deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out
