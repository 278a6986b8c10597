"""Settings for each Azure OpenAI role and for azmem as a whole.

Sources, highest first:

1. explicit arguments (``AzmemSettings.load(config_dict, **overrides)``; a dict ``config``
   counts as explicit, like mem0's config beating its env vars);
2. role-specific env: ``LLM_AZURE_*`` for chat (and small chat), ``EMBEDDING_AZURE_*``;
3. generic env: ``AZMEM_*`` (pydantic-settings, ``__`` nesting: ``AZMEM_CHAT__TIMEOUT=30``), then
   ``AZURE_OPENAI_*`` and ``OPENAI_API_VERSION``;
4. a config file (YAML or TOML; ``config=<path>`` or env ``AZMEM_CONFIG``);
5. defaults.

Unknown keys anywhere are errors naming the closest valid key: mem0 silently drops a
typo like ``azuer_deployment`` and the user debugs an auth failure instead.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from azmem.config import (
    AuditSettings,
    CacheSettings,
    StoreSettings,
    TelemetrySettings,
    default_home,
    read_config_file,
    sqlite_path,
)
from azmem.errors import ConfigurationError, register_secret

from .placeholders import is_placeholder_key
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TOKEN_SCOPE",
    "AzmemSettings",
    "AzureOpenAISettings",
    "Capabilities",
    "CapabilityOverrides",
]

logger = logging.getLogger("azmem.azure.settings")

DEFAULT_API_VERSION = "2024-10-21"
DEFAULT_TOKEN_SCOPE = "https://cognitiveservices.azure.com/.default"
JSON_SCHEMA_MIN_API_VERSION = "2024-08-01-preview"
RESPONSES_MIN_API_VERSION = "2025-03-01-preview"
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")

Role = Literal["chat", "small_chat", "embedding"]


# --------------------------------------------------------------------------- capabilities


class Capabilities(BaseModel):
    """What a deployment can do, fully resolved (overrides applied over name-based defaults)."""

    model_config = ConfigDict(frozen=True)

    reasoning: bool
    json_schema: bool
    vision: bool
    context_window: int
    responses_api: bool = False
    """Send generate/stream through the Responses API (``POST /openai/responses``) instead of chat
    completions: on by default for reasoning families where the API mode serves it."""


class CapabilityOverrides(BaseModel):
    """Explicit capability settings; ``None`` means "derive from the model name"."""

    model_config = ConfigDict(extra="forbid")

    reasoning: bool | None = None
    json_schema: bool | None = None
    vision: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    responses_api: bool | None = None


_REASONING = re.compile(r"(?<![a-z0-9])(o1|o3|o4|gpt-5)(?![0-9])")
_NO_JSON_SCHEMA = re.compile(r"(gpt-35|gpt-3\.5|(?<![a-z0-9])gpt-4(?![o.0-9])|o1-(mini|preview))")
_VISION = re.compile(
    r"(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|(?<![a-z0-9])o1(?!-mini|-preview)|o3(?!-mini)|o4)"
)

# First match wins: the more specific names come first.
_CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    (r"gpt-5[^ ]*-chat", 128_000),
    (r"gpt-5", 400_000),
    (r"gpt-4\.1", 1_047_576),
    (r"gpt-4o", 128_000),
    (r"gpt-4-turbo|gpt-4-1106|gpt-4-0125|gpt-4-vision", 128_000),
    (r"gpt-4-32k", 32_768),
    (r"(?<![a-z0-9])gpt-4(?![o.0-9])", 8_192),
    (r"gpt-35-turbo-16k|gpt-3\.5-turbo-16k", 16_384),
    (r"gpt-35|gpt-3\.5", 16_385),
    (r"o1-(mini|preview)", 128_000),
    (r"(?<![a-z0-9])(o1|o3|o4)", 200_000),
    (r"text-embedding|ada-002", 8_191),
)
_DEFAULT_CONTEXT_WINDOW = 128_000


def _api_version_at_least(version: str, minimum: str) -> bool:
    # Dated versions sort as strings on their date; a preview is later than nothing but
    # earlier than the GA of the same date, which does not matter for our thresholds.
    return version[:10] >= minimum[:10]


def default_capabilities(name: str, *, api_mode: str, api_version: str) -> Capabilities:
    """Name-based guesses, used only where the user did not say."""
    n = name.lower()
    reasoning = bool(_REASONING.search(n)) and "-chat" not in n
    json_schema = not _NO_JSON_SCHEMA.search(n)
    if api_mode == "dated" and not _api_version_at_least(api_version, JSON_SCHEMA_MIN_API_VERSION):
        json_schema = False
    window = next((w for pattern, w in _CONTEXT_WINDOWS if re.search(pattern, n)), _DEFAULT_CONTEXT_WINDOW)
    # Azure documents the Responses API for reasoning families (summaries, reasoning items);
    # a dated api-version before 2025-03-01-preview does not serve it at all.
    responses_api = reasoning and (
        api_mode == "v1" or _api_version_at_least(api_version, RESPONSES_MIN_API_VERSION)
    )
    return Capabilities(
        reasoning=reasoning,
        json_schema=json_schema,
        vision=bool(_VISION.search(n)),
        context_window=window,
        responses_api=responses_api,
    )


# --------------------------------------------------------------------------- one role

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
            data = _normalise_role(data, where="")
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
            _register_real_secret(v.get_secret_value())
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
        env = _ENV_HINTS[self.role]
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


_ENV_HINTS: dict[str, dict[str, str]] = {
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

_ROLE_FIELDS = frozenset(AzureOpenAISettings.model_fields)
# What small_chat and embedding take from chat when they do not say.
_INHERITED = (
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
_INHERITED_CHAT_ONLY = ("api_version",)


def _normalise_role(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
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
            _unknown(next(iter(src)), {"provider", "config"}, where)
        src = dict(config)
        mem0 = True
    else:
        mem0 = False
    azure_kwargs = src.pop("azure_kwargs", None)
    for key, value in src.items():
        if key in _ROLE_FIELDS and not (mem0 and key in _MEM0_CONFIG and _MEM0_CONFIG[key] != key):
            out[key] = value
        elif key in _MEM0_CONFIG:
            out[_MEM0_CONFIG[key]] = value
        elif key == "is_reasoning_model":
            out.setdefault("capabilities", {})["reasoning"] = value
        elif key == "enable_vision":
            out.setdefault("capabilities", {})["vision"] = value
        else:
            _unknown(key, _ROLE_FIELDS | set(_MEM0_CONFIG) | {"azure_kwargs"}, where)
    if azure_kwargs:
        if not isinstance(azure_kwargs, Mapping):
            raise ConfigurationError(f"'{_join(where, 'azure_kwargs')}' must be a mapping.")
        for key, value in azure_kwargs.items():
            if key not in _MEM0_AZURE_KWARGS:
                _unknown(key, set(_MEM0_AZURE_KWARGS), _join(where, "azure_kwargs"))
            if value is not None and value != "":
                out[_MEM0_AZURE_KWARGS[key]] = value
    if mem0 and "deployment" not in out and out.get("model"):
        # mem0 sends `model` as the deployment when no azure_deployment is given.
        out["deployment"] = out["model"]
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _unknown(key: str, valid: set[str] | frozenset[str], where: str) -> None:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
    raise ConfigurationError(
        f"Unknown setting '{_join(where, str(key))}': {hint}",
        error_code="unknown_setting",
        details={"key": _join(where, str(key)), "closest": close[0] if close else None},
        suggestion=f"Rename '{key}' to '{close[0]}'." if close else "Remove the key.",
    )


# --------------------------------------------------------------------------- top level


_TOP_SHORTHANDS = ("endpoint", "api_key", "api_version", "api_mode", "credential", "auth", "token_scope")


class AzmemSettings(BaseSettings):
    """Everything azmem needs; build it with :meth:`load`.

    Direct construction reads only ``AZMEM_*`` variables (pydantic-settings, ``__`` for
    nesting, e.g. ``AZMEM_CACHE__ENABLED=1``); :meth:`load` adds the Azure variables, the
    config file, mem0-shaped dicts and inheritance between roles.
    """

    model_config = SettingsConfigDict(
        env_prefix="AZMEM_",
        env_nested_delimiter="__",
        extra="forbid",
        arbitrary_types_allowed=True,
        validate_assignment=True,
    )

    chat: AzureOpenAISettings | None = None
    small_chat: AzureOpenAISettings | None = None
    """Cheaper deployment for model_size="small"; falls back to chat when unset."""
    embedding: AzureOpenAISettings | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    home: Path = Field(default_factory=default_home)
    embedder: Literal["local", "azure"] | None = None
    """"local" (bundled MiniLM) unless an embedding deployment is configured; then "azure"."""
    routing: dict[str, Any] | None = Field(default=None, repr=False, exclude=True)
    """Deployment pools, kept raw here: validated by ``azmem.azure.routing.RoutingConfig.load``
    (which imports this module, so it cannot be typed here). Lets one config file hold both.
    Raw values may hold keys, so it is kept out of repr and dumps."""

    @field_validator("home")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("routing")
    @classmethod
    def _remember_routing_secrets(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        _register_nested_secrets(v)
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env or secrets-dir magic: every source is one the docs name.
        return (init_settings, _AzmemEnvSource(settings_cls))

    @model_validator(mode="after")
    def _resolve(self) -> AzmemSettings:
        for role in ("chat", "small_chat", "embedding"):
            cfg = getattr(self, role)
            if cfg is not None and cfg.role != role:
                object.__setattr__(cfg, "role", role)
        if self.embedder is None:
            object.__setattr__(self, "embedder", "azure" if self.embedding is not None else "local")
        elif self.embedder == "azure" and self.embedding is None:
            raise ConfigurationError(
                "embedder='azure' needs an embedding deployment.",
                error_code="missing_deployment",
                suggestion="Set EMBEDDING_AZURE_DEPLOYMENT or AZURE_OPENAI_EMBEDDING_DEPLOYMENT, "
                "or pass embedding={'deployment': ...}.",
            )
        return self

    # -- derived -------------------------------------------------------------------

    @property
    def store_url(self) -> str:
        """The store to open (``AZMEM_STORE`` > config file > ``sqlite:///<home>/memory.db``)."""
        return self.store.resolved_url(self.home)

    @property
    def store_path(self) -> Path:
        """The SQLite file of a SQLite store (the default). A PostgreSQL store has none."""
        path = sqlite_path(self.store_url)
        if path is None:
            raise ConfigurationError(
                "The configured store is not a SQLite file.", error_code="not_a_sqlite_store"
            )
        return path

    @property
    def cache_path(self) -> Path:
        return self.cache.path or self.home / "cache.db"

    def role(self, name: Role) -> AzureOpenAISettings:
        """The settings for a role, raising a ConfigurationError that says how to set it."""
        cfg = getattr(self, name)
        if cfg is None and name == "small_chat":
            cfg = self.chat
        if cfg is None:
            env = _ENV_HINTS[name]
            raise ConfigurationError(
                f"No Azure OpenAI {name} deployment is configured.",
                error_code="missing_deployment",
                suggestion=f"Set {env['deployment']} and {env['endpoint']}, or pass "
                f"{name}={{'endpoint': ..., 'deployment': ...}}.",
            )
        cfg.require()
        result: AzureOpenAISettings = cfg
        return result

    # -- loading -------------------------------------------------------------------

    @classmethod
    def load(cls, config: Mapping[str, Any] | str | Path | None = None, **overrides: Any) -> AzmemSettings:
        """Build settings from every source (see the module docstring for precedence).

        ``config`` may be a dict (ours or mem0-shaped; explicit, so it beats env) or a path to
        a YAML/TOML file (below env). Top-level ``endpoint``, ``api_key``, ``api_version``,
        ``api_mode``, ``auth``, ``token_scope`` and ``credential`` apply to every role that
        does not set its own; a role may be given as a bare deployment name
        (``chat="gpt-4o"``).
        """
        file_path: Path | None = None
        explicit_cfg: Mapping[str, Any] = {}
        if isinstance(config, str | Path):
            file_path = Path(config)
        elif isinstance(config, Mapping):
            explicit_cfg = config
        elif config is not None:
            raise ConfigurationError(f"config must be a dict or a file path, not {type(config).__name__}.")
        if file_path is None and os.environ.get("AZMEM_CONFIG"):
            file_path = Path(os.environ["AZMEM_CONFIG"])

        file_layer = _normalise_top(read_config_file(file_path), where="") if file_path else {}
        env_generic, env_roles = _env_layers()
        # AZMEM_* (e.g. AZMEM_SMALL_CHAT__DEPLOYMENT) joins the generic layer here, so roles it
        # creates inherit from chat like any other.
        try:
            env_azmem = _normalise_top(_AzmemEnvSource(cls)(), where="")
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(
                f"Could not read the AZMEM_* environment variables: {exc}", error_code="bad_env"
            ) from None
        explicit = _deep_merge(_normalise_top(explicit_cfg, where=""), _normalise_top(overrides, where=""))

        merged: dict[str, Any] = {}
        for layer in (file_layer, env_generic, env_azmem, env_roles, explicit):
            merged = _deep_merge(merged, _expand_shorthands(layer))
        _inherit(merged, explicit)
        try:
            return cls(**merged)
        except ValidationError as exc:
            raise _config_error(exc) from None


def _register_real_secret(value: str) -> None:
    """Register a key for redaction, unless it is a placeholder.

    A placeholder is no secret, and registering one would be harmful: "api-key" or
    "AZURE_OPENAI_API_KEY" would then be blanked out of every message that names the
    setting, and "api-key" blanked before the ``api-key=<value>`` pattern could match.
    """

    if not is_placeholder_key(value):
        register_secret(value)


def _register_nested_secrets(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in {"api_key", "client_secret"} and isinstance(item, str):
                _register_real_secret(item)
            else:
                _register_nested_secrets(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _register_nested_secrets(item)


class _AzmemEnvSource(EnvSettingsSource):
    """``AZMEM_*`` variables, except those other modules own.

    ``AZMEM_ROUTING`` (JSON or a path) is read by ``RoutingConfig.load``, ``AZMEM_CONFIG`` and
    ``AZMEM_HOME`` by :meth:`AzmemSettings.load` / :func:`default_home`.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "routing":
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if field_name == "store" and isinstance(value, str) and not value.lstrip().startswith("{"):
            return {"url": value.strip()}  # AZMEM_STORE=postgresql://... is a URL, not JSON
        return super().prepare_field_value(field_name, field, value, value_is_complex)


_PROMPT_HINT = "prompts belong to the memory engine: Memory(config=...) or Memory(prompts=...)."
# Keys of a pasted mem0 MemoryConfig that azmem does not take, with what to do instead.
_MEM0_TOP_HINTS = {
    "vector_store": "azmem keeps memories in its own SQLite store: remove 'vector_store' "
    "(set store.path to choose the file).",
    "history_db_path": "azmem keeps history in the same store: remove 'history_db_path' "
    "(set store.path to choose the file).",
    "graph_store": "azmem has no graph store: remove 'graph_store'.",
    "reranker": "remove 'reranker': azmem's search is hybrid (BM25 + vectors) without a separate reranker.",
    "custom_fact_extraction_prompt": _PROMPT_HINT,
    "custom_update_memory_prompt": _PROMPT_HINT,
}

_TOP_KEYS = frozenset(AzmemSettings.model_fields) | set(_TOP_SHORTHANDS) | {"llm", "embedder", "version"}


_SECTION_FIELDS: dict[str, frozenset[str]] = {
    "retry": frozenset(RetryPolicy.model_fields),
    "cache": frozenset(CacheSettings.model_fields),
    "store": frozenset(StoreSettings.model_fields),
    "telemetry": frozenset(TelemetrySettings.model_fields),
    "audit": frozenset(AuditSettings.model_fields),
}


def _normalise_top(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Accept our shape and mem0's (``llm``/``embedder`` with provider+config)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "llm":
            out["chat"] = _normalise_role(value, where="llm")
        elif key == "embedder" and isinstance(value, Mapping):
            out["embedding"] = _normalise_role(value, where="embedder")
        elif key in {"chat", "small_chat", "embedding"}:
            if isinstance(value, str):
                out[key] = {"deployment": value}
            elif isinstance(value, AzureOpenAISettings):
                out[key] = {k: getattr(value, k) for k in value.model_fields_set}
            elif value is None:
                out[key] = None
            elif isinstance(value, Mapping):
                out[key] = _normalise_role(value, where=key)
            else:
                raise ConfigurationError(f"'{key}' must be a mapping or a deployment name.")
        elif key == "version":
            continue  # mem0 configs carry a schema version
        elif key in _MEM0_TOP_HINTS:
            raise ConfigurationError(
                f"The mem0 setting '{_join(where, key)}' has no azmem equivalent.",
                error_code="unsupported_setting",
                details={"key": _join(where, key)},
                suggestion=_MEM0_TOP_HINTS[key],
            )
        elif key in _TOP_KEYS:
            if isinstance(value, BaseModel) and key != "credential":
                value = value.model_dump(exclude_unset=True)
            if key in _SECTION_FIELDS and isinstance(value, Mapping):
                valid = _SECTION_FIELDS[key]
                for sub_key in value:
                    if sub_key not in valid:
                        _unknown(sub_key, valid, key)
            out[key] = value
        else:
            _unknown(key, _TOP_KEYS - {"version", "llm"}, where)
    return out


def _expand_shorthands(layer: dict[str, Any]) -> dict[str, Any]:
    """Push top-level endpoint/api_key/... into each role of the same layer that lacks them."""
    layer = dict(layer)
    shared = {k: layer.pop(k) for k in _TOP_SHORTHANDS if k in layer}
    if not shared:
        return layer
    for role in ("chat", "small_chat", "embedding"):
        if role in layer and not isinstance(layer[role], dict):
            continue  # an explicit None: the role is switched off
        layer[role] = {**shared, **layer.get(role, {})}
    return layer


def _env(*names: str) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip() != "":
            return name, value
    return None


def _env_layers() -> tuple[dict[str, Any], dict[str, Any]]:
    """(generic layer, role-specific layer) from the Azure environment variables.

    Connection values (endpoint, key, api-version, managed identity) of the generic layer
    apply to chat and embedding alike, as their names say; ``LLM_AZURE_*`` ones to chat,
    ``EMBEDDING_AZURE_*`` ones to embedding. Small chat takes its connection from chat (so
    ``LLM_AZURE_*`` too). Deployment names only name their own role's deployment; a role
    left without one is dropped by :func:`_inherit`, so these layers never create a role.
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


def _inherit(merged: dict[str, Any], explicit: Mapping[str, Any]) -> None:
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
        keys = _INHERITED + (_INHERITED_CHAT_ONLY if role == "small_chat" else ())
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


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "default_headers":
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _config_error(exc: ValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        parts = [str(p) for p in first["loc"]]
        valid: set[str] = set(AzmemSettings.model_fields)
        if len(parts) > 1 and parts[0] in {"chat", "small_chat", "embedding"}:
            valid = set(_ROLE_FIELDS)
            if len(parts) > 2 and parts[1] == "capabilities":
                valid = set(CapabilityOverrides.model_fields)
        try:
            _unknown(parts[-1], valid, ".".join(parts[:-1]))
        except ConfigurationError as err:
            return err
    # Never echo the rejected input: it may be a key.
    return ConfigurationError(
        f"Invalid setting '{loc}': {first['msg']}",
        error_code="invalid_setting",
        details={"key": loc, "errors": len(exc.errors())},
        suggestion=f"Fix the value of '{loc}'.",
    )
