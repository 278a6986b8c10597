"""Settings for a caller's own ``AsyncAzureOpenAI`` / ``AsyncOpenAI``, as Graphiti users hold one.

Graphiti's Azure clients take a ready SDK client (``AzureOpenAILLMClient(azure_client=...)``), so
the least a user should have to change is the class name. azmem then needs two facts the
client knows but does not say in public: which API it speaks (dated ``AsyncAzureOpenAI`` or the
v1 ``AsyncOpenAI``) and its api-version, because structured output (json_schema) exists only
from ``2024-08-01-preview`` on and azmem decides between it and its fallback from the version.
"""

from __future__ import annotations

import re
from typing import Literal

import openai

from azmem.azure.settings import DEFAULT_API_VERSION, AzureOpenAISettings

__all__ = ["settings_for_client"]

_DATED = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")


def settings_for_client(
    client: openai.AsyncOpenAI,
    *,
    role: Literal["chat", "small_chat", "embedding"],
    deployment: str | None,
) -> AzureOpenAISettings:
    """The role settings that describe ``client`` (its deployment, API mode and api-version).

    ``deployment`` may be None when the client was built with ``azure_deployment=``: the
    provider then reads the name from the client.
    """
    if isinstance(client, openai.AsyncAzureOpenAI):
        # The SDK keeps the version it sends on every request here; no public accessor exists.
        version = getattr(client, "_api_version", None) or DEFAULT_API_VERSION
        if _DATED.fullmatch(version):
            return AzureOpenAISettings(role=role, deployment=deployment, api_version=version)
    return AzureOpenAISettings(role=role, deployment=deployment, api_mode="v1")
