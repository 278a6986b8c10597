"""One Azure OpenAI deployment in one role, as the user may write it (ours or mem0's shape).

Apart from :mod:`azmem.azure.settings` because a role is complete on its own: the
provider, the embedder and the integrations build from one role, and how azmem gathers
roles from files and the environment is a separate concern.

Unknown keys are errors naming the closest valid key: mem0 silently drops a typo like
``azuer_deployment`` and the user debugs an auth failure instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from azmem.errors import ConfigurationError, register_secret

from .capabilities import Capabilities, CapabilityOverrides, default_capabilities
from .placeholders import is_placeholder_key
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TOKEN_SCOPE",
    "ENV_HINTS",
    "INHERITED",
    "INHERITED_CHAT_ONLY",
    "ROLE_FIELDS",
    "AzureOpenAISettings",
    "Role",
    "join_key",
    "normalise_role",
    "register_real_secret",
    "unknown_key",
]

DEFAULT_API_VERSION = "2024-10-21"
DEFAULT_TOKEN_SCOPE = "https://cognitiveservices.azure.com/.default"
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")

Role = Literal["chat", "small_chat", "embedding"]


# mem0's AzureOpenAIConfig, translated to our names. None = accepted and ignored with reason.
_MEM0_AZURE_KWARGS = {
    "api_key": "api_key",
    "azure_deployment": "deployment",
    "azure_endpoint": "endpoint",
    "api_version": "api_version",
    "default_headers": "default_headers",
    "azure_ad_token_provider": "credential",
}
_MEM0_CONFIG = {
    "model": "model",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "top_p": "top_p",
    "reasoning_effort": "reasoning_effort",
    "http_client_proxies": "proxy",
    "vision_details": "vision_detail",
    "embedding_dims": "dimensions",
    "api_key": "api_key",
}


class AzureOpenAISettings(BaseModel):
    """One Azure OpenAI deployment in one role (chat, small_chat or embedding)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    role: Role = "chat"
    endpoint: str | None = None
    """``https://<resource>.openai.azure.com`` (or ``.services.ai.azure.com``), no path."""
    deployment: str | None = None
    api_mode: Literal["dated", "v1"] = "dated"
    """"dated": ``/openai/deployments/{d}/...?api-version=``; "v1": ``/openai/v1/...``, no version."""
    api_version: str = DEFAULT_API_VERSION
    api_key: SecretStr | None = None
    auth: Literal["auto", "api_key", "entra"] = "auto"
    """"auto": the key when it is a real one, else Entra ID (placeholders count as no key)."""
    token_scope: str = DEFAULT_TOKEN_SCOPE
    use_managed_identity: bool = False
    managed_identity_client_id: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    """With tenant_id and client_id: a service principal (ClientSecretCredential)."""
    credential: Any = Field(default=None, exclude=True, repr=False)
    """A TokenCredential, an AsyncTokenCredential, or a zero-argument callable returning a token str."""
    default_headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | dict[str, str] | None = None
    """One proxy URL, or per scheme: ``{"http://": ..., "https://": ...}`` (mem0's http_client_proxies)."""
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    model: str | None = None
    """The underlying model (e.g. "gpt-4o-mini"): capability defaults and prices; defaults to deployment."""
    capabilities: CapabilityOverrides = Field(default_factory=CapabilityOverrides)
    dimensions: int | None = Field(default=None, gt=0)
    """Embeddings only: sent as ``dimensions`` (text-embedding-3 models)."""
    long_input: Literal["error", "truncate", "chunk"] = "error"
    """Embeddings only: what to do with an input over the model's per-input token limit
    (``capabilities.context_window``, 8,191 for Azure's embedding models): ``error`` names it,
    ``truncate`` embeds the part that fits, ``chunk`` averages the vectors of its pieces."""
    # Generation defaults a caller may set once (mem0 users have them in their config).
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    vision_detail: Literal["auto", "low", "high"] | None = None
    retry: RetryPolicy | None = None
    """This role's retry policy (e.g. fewer attempts for the small model); None: the top-level ``retry``."""

    @model_validator(mode="before")
    @classmethod
    def _accept_mem0_shape(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = normalise_role(data, where="")
            endpoint = data.get("endpoint")
            if isinstance(endpoint, str) and endpoint.rstrip("/").endswith("/openai/v1"):
                # A pasted v1 base URL says which API the user means.
                data.setdefault("api_mode", "v1")
        return data

    @model_validator(mode="after")
    def _check_api_version(self) -> AzureOpenAISettings:
        if self.api_mode == "dated" and not _DATED_VERSION.fullmatch(self.api_version):
            v1_like = self.api_version.lower() in {"v1", "latest", "preview"}
            hint = " Set api_mode='v1' for the v1 API." if v1_like else ""
            raise ValueError(
                "api_version must be a dated version like 2024-10-21 or 2025-04-01-preview when "
                f"api_mode='dated'.{hint}"
            )
        return self

    @field_validator("endpoint")
    @classmethod
    def _clean_endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().rstrip("/")
        if not v:
            return None
        for suffix in ("/openai/v1", "/openai"):
            if v.endswith(suffix):
                v = v[: -len(suffix)]
        if not re.match(r"^https?://", v):
            raise ValueError(
                "endpoint must be a URL starting with https://, e.g. https://<resource>.openai.azure.com"
            )
        return v

    @field_validator("api_key", "client_secret")
    @classmethod
    def _remember_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            register_real_secret(v.get_secret_value())
        return v

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(v, dict):
            fixed = {}
            for scheme, url in v.items():
                key = scheme if scheme.endswith("://") else f"{scheme.rstrip(':/')}://"
                fixed[key] = url
            return fixed
        return v or None

    # -- derived -------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The name capability defaults and prices are looked up by."""
        return self.model or self.deployment or ""

    def resolved_capabilities(self) -> Capabilities:
        """Name-based defaults, overridden field by field by explicit settings."""
        base = default_capabilities(self.model_name, api_mode=self.api_mode, api_version=self.api_version)
        explicit = self.capabilities.model_dump(exclude_none=True)
        return base.model_copy(update=explicit)

    def require(self) -> None:
        """Raise a ConfigurationError naming the variable that sets each missing value."""
        env = ENV_HINTS[self.role]
        if not self.endpoint:
            raise ConfigurationError(
                f"No Azure OpenAI endpoint for the {self.role} role.",
                error_code="missing_endpoint",
                suggestion=f"Set {env['endpoint']}, or pass endpoint='https://<resource>.openai.azure.com'.",
            )
        if not self.deployment:
            raise ConfigurationError(
                f"No deployment name for the {self.role} role.",
                error_code="missing_deployment",
                suggestion=f"Set {env['deployment']}, or pass deployment='<your deployment name>'.",
            )


ENV_HINTS: dict[str, dict[str, str]] = {
    "chat": {
        "endpoint": "LLM_AZURE_ENDPOINT or AZURE_OPENAI_ENDPOINT",
        "deployment": "LLM_AZURE_DEPLOYMENT or AZURE_OPENAI_DEPLOYMENT",
    },
    "small_chat": {
        "endpoint": "AZMEM_SMALL_CHAT__ENDPOINT (or the chat endpoint)",
        "deployment": "AZMEM_SMALL_CHAT__DEPLOYMENT",
    },
    "embedding": {
        "endpoint": "EMBEDDING_AZURE_ENDPOINT or AZURE_OPENAI_ENDPOINT",
        "deployment": "EMBEDDING_AZURE_DEPLOYMENT or AZURE_OPENAI_EMBEDDING_DEPLOYMENT",
    },
}

ROLE_FIELDS = frozenset(AzureOpenAISettings.model_fields)
# What small_chat and embedding take from chat when they do not say.
INHERITED = (
    "endpoint",
    "api_mode",
    "api_key",
    "auth",
    "token_scope",
    "use_managed_identity",
    "managed_identity_client_id",
    "tenant_id",
    "client_id",
    "client_secret",
    "credential",
    "default_headers",
    "proxy",
    "timeout",
    "connect_timeout",
)
INHERITED_CHAT_ONLY = ("api_version",)


def normalise_role(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Turn a role mapping (ours or mem0's) into our field names; reject unknown keys."""
    out: dict[str, Any] = {}
    src = dict(data)
    if "provider" in src or ("config" in src and isinstance(src.get("config"), Mapping)):
        provider = src.pop("provider", "azure_openai")
        if provider not in {"azure_openai", "azure", "azure_openai_structured"}:
            raise ConfigurationError(
                f"Unsupported provider {provider!r} at '{where or 'role'}'.",
                error_code="unknown_provider",
                suggestion="azmem talks to Azure OpenAI only: use provider 'azure_openai'.",
            )
        config = src.pop("config", {}) or {}
        if src:
            unknown_key(next(iter(src)), {"provider", "config"}, where)
        src = dict(config)
        mem0 = True
    else:
        mem0 = False
    azure_kwargs = src.pop("azure_kwargs", None)
    for key, value in src.items():
        if key in ROLE_FIELDS and not (mem0 and key in _MEM0_CONFIG and _MEM0_CONFIG[key] != key):
            out[key] = value
        elif key in _MEM0_CONFIG:
            out[_MEM0_CONFIG[key]] = value
        elif key == "is_reasoning_model":
            out.setdefault("capabilities", {})["reasoning"] = value
        elif key == "enable_vision":
            out.setdefault("capabilities", {})["vision"] = value
        else:
            unknown_key(key, ROLE_FIELDS | set(_MEM0_CONFIG) | {"azure_kwargs"}, where)
    if azure_kwargs:
        if not isinstance(azure_kwargs, Mapping):
            raise ConfigurationError(f"'{join_key(where, 'azure_kwargs')}' must be a mapping.")
        for key, value in azure_kwargs.items():
            if key not in _MEM0_AZURE_KWARGS:
                unknown_key(key, set(_MEM0_AZURE_KWARGS), join_key(where, "azure_kwargs"))
            if value is not None and value != "":
                out[_MEM0_AZURE_KWARGS[key]] = value
    if mem0 and "deployment" not in out and out.get("model"):
        # mem0 sends `model` as the deployment when no azure_deployment is given.
        out["deployment"] = out["model"]
    return out


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def unknown_key(key: str, valid: set[str] | frozenset[str], where: str) -> None:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
    raise ConfigurationError(
        f"Unknown setting '{join_key(where, str(key))}': {hint}",
        error_code="unknown_setting",
        details={"key": join_key(where, str(key)), "closest": close[0] if close else None},
        suggestion=f"Rename '{key}' to '{close[0]}'." if close else "Remove the key.",
    )


def register_real_secret(value: str) -> None:
    """Register a key for redaction, unless it is a placeholder.

    A placeholder is no secret, and registering one would be harmful: "api-key" or
    "AZURE_OPENAI_API_KEY" would then be blanked out of every message that names the
    setting, and "api-key" blanked before the ``api-key=<value>`` pattern could match.
    """

    if not is_placeholder_key(value):
        register_secret(value)
