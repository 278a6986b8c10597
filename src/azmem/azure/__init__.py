"""The Azure OpenAI layer: settings, auth, the SDK client factory, errors, retries, tracing,
usage, cache, the LLM clients and the Azure embedder.

Names are loaded on first use (PEP 562): layers that only need the exception tree
(``azmem.azure.errors``) or settings must not pay for importing the openai SDK, and
``import azmem.azure`` stays cheap for CLIs that never call the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azmem.azure.cache import ResponseCache
    from azmem.azure.embedder import AsyncAzureEmbedder, AzureEmbedder
    from azmem.azure.errors import (
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
        RequestContext,
        ServiceError,
        StoreError,
        StructuredOutputError,
        TimeoutError,
        map_sdk_error,
    )
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
        CacheSettings,
        Capabilities,
        CapabilityOverrides,
    )
    from azmem.azure.tracing import get_tracer, set_tracer
    from azmem.azure.usage import Price, PriceTable, Usage, UsageTracker

_EXPORTS: dict[str, str] = {
    "AssistantMessage": "messages",
    "AsyncAzureEmbedder": "embedder",
    "AsyncLLMClient": "llm",
    "AuthenticationError": "errors",
    "AzmemError": "errors",
    "AzmemSettings": "settings",
    "AzureEmbedder": "embedder",
    "AzureOpenAISettings": "settings",
    "AzureProvider": "provider",
    "CacheSettings": "settings",
    "Capabilities": "settings",
    "CapabilityOverrides": "settings",
    "ConfigurationError": "errors",
    "ConflictError": "errors",
    "ContentFilterError": "errors",
    "ContextLengthError": "errors",
    "DeploymentNotFoundError": "errors",
    "EmbedderMismatchError": "errors",
    "EmptyResponseError": "errors",
    "GenerateParams": "llm",
    "ImagePart": "messages",
    "InvalidInputError": "errors",
    "InvalidRequestError": "errors",
    "JsonSchemaUnsupportedError": "errors",
    "LLMClient": "llm",
    "LLMResult": "response",
    "MemoryNotFoundError": "errors",
    "Message": "messages",
    "NetworkError": "errors",
    "OutputTruncatedError": "errors",
    "PermissionDeniedError": "errors",
    "Price": "usage",
    "PriceTable": "usage",
    "QuotaExceededError": "errors",
    "RateLimitError": "errors",
    "RefusalError": "errors",
    "RequestContext": "errors",
    "ResponseCache": "cache",
    "RetryPolicy": "retry",
    "ServiceError": "errors",
    "StoreError": "errors",
    "StructuredOutputError": "errors",
    "SystemMessage": "messages",
    "TextPart": "messages",
    "TimeoutError": "errors",
    "ToolCall": "messages",
    "ToolMessage": "messages",
    "Usage": "usage",
    "UsageTracker": "usage",
    "UserMessage": "messages",
    "clean_text": "messages",
    "get_tracer": "tracing",
    "image_part": "messages",
    "map_sdk_error": "errors",
    "set_tracer": "tracing",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'azmem.azure' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"azmem.azure.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
