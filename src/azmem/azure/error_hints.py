"""The advice (``suggestion``) text for Azure OpenAI errors, apart from the mapping that picks the class.

Each hint must be true of the error it answers, and getting that right is a matter of
reading the service's message and the deployment's settings, not of status codes: kept
here so :mod:`azmem.azure.errors` stays about which error a response is. The builders take
plain values, not a ``RequestContext``, so this module imports nothing of azmem's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["EMBEDDING_INPUT_TOO_LONG_HINT", "auth_hint", "invalid_request_hint", "not_found_hint"]

_NAMED_PARAM = re.compile(r"(?:parameter|argument supplied|value):?\s*'?(\w+)'?", re.I)
_REASONING_REFUSED = frozenset({"max_tokens", "temperature", "top_p"})
"""What a reasoning model refuses: sent when azmem took the deployment for a chat model."""
_CHAT_REFUSED = frozenset({"reasoning_effort", "max_completion_tokens"})
"""What a chat model (or an old api-version) refuses: sent when azmem took it for a reasoning model."""

EMBEDDING_INPUT_TOO_LONG_HINT = (
    "One input is over the embedding model's per-input token limit (8,191 for Azure's embedding "
    "models). Shorten it, or set long_input on the embedding role: 'truncate' embeds the part that "
    "fits, 'chunk' embeds it in pieces and averages the vectors."
)


def auth_hint(auth: str | None, endpoint: str, message: str) -> str:
    """Which credential to fix after a 401: ``endpoint`` is already stripped of its query."""
    if auth == "entra" or "token" in message.lower() or "principal" in message.lower():
        return (
            "The Entra ID token was rejected: check that the token scope is "
            "https://cognitiveservices.azure.com/.default (token_scope), that the identity has the "
            "'Cognitive Services OpenAI User' role on this resource, and that a token provider (not a "
            "fixed token) is used so tokens refresh."
        )
    return (
        f"The API key was rejected by {endpoint}: copy key 1 or key 2 from Azure portal "
        "> your resource > Keys and Endpoint for THIS resource (set AZURE_OPENAI_API_KEY or api_key), or "
        "remove the key to use Microsoft Entra ID."
    )


def not_found_hint(code: str | None, deployment: str, endpoint: str, api_version: str | None) -> str:
    """A missing deployment and a wrong URL both answer 404: only the service's code tells them apart."""
    if code == "DeploymentNotFound":
        return (
            f"No deployment named '{deployment}' exists on {endpoint}. Check the "
            "deployment name (Azure AI Foundry > Deployments; it is the name you chose, not the model "
            "name) and that the endpoint is the right resource. A deployment created in the last "
            "5 minutes may not be ready yet."
        )
    return (
        f"{endpoint} answered 404 for deployment '{deployment}'. Check the "
        "endpoint (https://<resource>.openai.azure.com), the api_version "
        f"({api_version or 'v1'}) and the api_mode ('dated' or 'v1')."
    )


def _refused_param(body: Mapping[str, Any], message: str) -> str | None:
    """The request parameter the service refused: ``param`` when it says, else the one the message names."""
    param = body.get("param")
    if isinstance(param, str) and param:
        return param
    named = _NAMED_PARAM.search(message)
    return named.group(1) if named else None


def invalid_request_hint(
    body: Mapping[str, Any],
    message: str,
    *,
    deployment: str,
    api_version: str | None,
    output_limit: int | None,
) -> str:
    """Advice for a 400 that is not a content filter, context length or json_schema refusal.

    Each hint must be true of the error it answers: a budget over the model's output limit is
    not a sign of a reasoning model (the old catch-all on "max_tokens" said it was), and a
    refused ``reasoning_effort`` means the opposite of a refused ``max_tokens``. The caller
    has already read ``output_limit`` out of ``message`` for the error's details, so the
    hint and the details cannot disagree.
    """
    param = _refused_param(body, message)
    code = body.get("code")
    if "json" in message.lower() and "json_object" in message:
        return "With JSON mode, mention the word 'json' in the messages (azmem does this for you)."
    if output_limit is not None:
        return (
            f"Deployment '{deployment}' accepts at most {output_limit:,} output tokens per call: "
            f"lower max_tokens (the max_tokens= argument, or the role's max_tokens setting) to "
            f"{output_limit:,} or less."
        )
    unsupported = code in {"unsupported_parameter", "unsupported_value"} or bool(
        re.search(r"unsupported|unrecognized|not supported|does not support", message, re.I)
    )
    if unsupported and param in _CHAT_REFUSED:
        return (
            f"Deployment '{deployment}' refused {param}, which only reasoning models take: if it is "
            "not a reasoning model, set capabilities.reasoning=false for it (or model: to its real model "
            "name) so azmem sends max_tokens and temperature; if it is one, use an api_version of "
            f"2024-12-01-preview or later (now {api_version or 'v1'})."
        )
    if unsupported and param in _REASONING_REFUSED:
        return (
            "This looks like a reasoning model: set capabilities.reasoning=true for the deployment so "
            "azmem sends max_completion_tokens and no temperature."
        )
    if body.get("param"):
        return f"Check the '{body['param']}' parameter of the request."
    return "Check the request parameters against the deployment's model and api_version."
