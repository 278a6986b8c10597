"""The Azure OpenAI layer: settings, auth, the SDK client factory, errors, retries, tracing,
usage, cache, the LLM clients and the Azure embedder.

Names are loaded on first use (PEP 562): layers that only need the exception tree
(``azmem.errors``, the ground floor) or settings must not pay for importing the openai SDK, and
``import azmem.azure`` stays cheap for CLIs that never call the service.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azmem.azure.cache import ResponseCache
    from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder
    from azmem.azure.errors import RequestContext, map_sdk_error
    from azmem.azure.llm import AsyncLLMClient, GenerateParams, LLMClient
    from azmem.azure.messages import (
        AssistantMessage,
        ImagePart,
        Message,
        SystemMessage,
        TextPart,
        ToolCall,
        ToolMessage,
        UserMessage,
        clean_text,
        image_part,
    )
    from azmem.azure.provider import AzureProvider
    from azmem.azure.response import LLMResult
    from azmem.azure.retry import RetryPolicy
    from azmem.azure.settings import (
        AzmemSettings,
        AzureOpenAISettings,
        Capabilities,
        CapabilityOverrides,
    )
    from azmem.azure.tracing import get_tracer, set_tracer
    from azmem.azure.usage import Price, PriceTable, Usage, UsageTracker
    from azmem.config import CacheSettings, StoreSettings
    from azmem.errors import (
        AuthenticationError,
        AzmemError,
        ConfigurationError,
        ConflictError,
        ContentFilterError,
        ContextLengthError,
        DeploymentNotFoundError,
        EmbedderMismatchError,
        EmptyResponseError,
        InvalidInputError,
        InvalidRequestError,
        JsonSchemaUnsupportedError,
        MemoryNotFoundError,
        NetworkError,
        OutputTruncatedError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        RefusalError,
        ServiceError,
        StoreError,
        StructuredOutputError,
        TimeoutError,
    )

__all__ = [
    "AssistantMessage",
    "AsyncAzureEmbedder",
    "AsyncLLMClient",
    "AuthenticationError",
    "AzmemError",
    "AzmemSettings",
    "AzureEmbedder",
    "AzureOpenAISettings",
    "AzureProvider",
    "CacheSettings",
    "Capabilities",
    "CapabilityOverrides",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextLengthError",
    "DeploymentNotFoundError",
    "EmbedderMismatchError",
    "EmptyResponseError",
    "GenerateParams",
    "ImagePart",
    "InvalidInputError",
    "InvalidRequestError",
    "JsonSchemaUnsupportedError",
    "LLMClient",
    "LLMResult",
    "MemoryNotFoundError",
    "Message",
    "NetworkError",
    "OutputTruncatedError",
    "PermissionDeniedError",
    "Price",
    "PriceTable",
    "QuotaExceededError",
    "RateLimitError",
    "RefusalError",
    "RequestContext",
    "ResponseCache",
    "RetryPolicy",
    "ServiceError",
    "StoreError",
    "StoreSettings",
    "StructuredOutputError",
    "SystemMessage",
    "TextPart",
    "TimeoutError",
    "ToolCall",
    "ToolMessage",
    "Usage",
    "UsageTracker",
    "UserMessage",
    "clean_text",
    "get_tracer",
    "image_part",
    "map_sdk_error",
    "set_tracer",
]
# The imports above are the one list of what is exported and from where: ruff holds
# ``__all__`` to them (an import missing from it, or a name in it never imported, fails
# the lint), and the lazy loader below reads them from this file's own source.


@functools.cache
def _where() -> dict[str, str]:
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {
        alias.name: imp.module
        for imp in block.body
        if isinstance(imp, ast.ImportFrom) and imp.module
        for alias in imp.names
    }


def __getattr__(name: str) -> Any:
    module = _where().get(name)
    if module is None:
        raise AttributeError(f"module 'azmem.azure' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
