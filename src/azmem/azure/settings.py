"""Settings for each Azure OpenAI role and for azmem as a whole.

Sources, highest first:

1. explicit arguments (``AzmemSettings.load(config_dict, **overrides)``; a dict ``config``
   counts as explicit, like mem0's config beating its env vars);
2. role-specific env: ``LLM_AZURE_*`` for chat (and small chat), ``EMBEDDING_AZURE_*``;
3. generic env: ``AZMEM_*`` (pydantic-settings, ``__`` nesting: ``AZMEM_CHAT__TIMEOUT=30``), then
   ``AZURE_OPENAI_*`` and ``OPENAI_API_VERSION``;
4. a config file (YAML or TOML; ``config=<path>`` or env ``AZMEM_CONFIG``);
5. defaults.

Unknown keys anywhere are errors naming the closest valid key. One role's settings live in
:mod:`azmem.azure.role_settings`, capability guesses in :mod:`azmem.azure.capabilities`
and the Azure variables' layers in :mod:`azmem.azure.env_layers`; their public names are
importable from here as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
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
from azmem.errors import ConfigurationError

from .capabilities import (
    JSON_SCHEMA_MIN_API_VERSION,
    RESPONSES_MIN_API_VERSION,
    Capabilities,
    CapabilityOverrides,
    default_capabilities,
)
from .env_layers import deep_merge, env_layers, inherit
from .retry import RetryPolicy
from .role_settings import (
    DEFAULT_API_VERSION,
    DEFAULT_TOKEN_SCOPE,
    ENV_HINTS,
    ROLE_FIELDS,
    AzureOpenAISettings,
    Role,
    join_key,
    normalise_role,
    register_real_secret,
    unknown_key,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TOKEN_SCOPE",
    "JSON_SCHEMA_MIN_API_VERSION",
    "RESPONSES_MIN_API_VERSION",
    "AzmemSettings",
    "AzureOpenAISettings",
    "Capabilities",
    "CapabilityOverrides",
    "Role",
    "default_capabilities",
    "single_deployments",
]

logger = logging.getLogger("azmem.azure.settings")

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
            env = ENV_HINTS[name]
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
        env_generic, env_roles = env_layers()
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
        explicit = deep_merge(_normalise_top(explicit_cfg, where=""), _normalise_top(overrides, where=""))

        merged: dict[str, Any] = {}
        for layer in (file_layer, env_generic, env_azmem, env_roles, explicit):
            merged = deep_merge(merged, _expand_shorthands(layer))
        inherit(merged, explicit)
        try:
            return cls(**merged)
        except ValidationError as exc:
            raise _config_error(exc) from None


def single_deployments(settings: AzmemSettings) -> list[dict[str, Any]]:
    """The roles with a deployment configured: what is used when there is no routing.

    ``azmem status`` and the server's ``/v1/status`` both list these; one source keeps the
    CLI and REST answers the same.
    """
    return [
        {"role": role, "deployment": cfg.deployment, "endpoint": cfg.endpoint}
        for role in ("chat", "small_chat", "embedding")
        if (cfg := getattr(settings, role)) is not None and cfg.deployment
    ]


def _register_nested_secrets(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in {"api_key", "client_secret"} and isinstance(item, str):
                register_real_secret(item)
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
            out["chat"] = normalise_role(value, where="llm")
        elif key == "embedder" and isinstance(value, Mapping):
            out["embedding"] = normalise_role(value, where="embedder")
        elif key in {"chat", "small_chat", "embedding"}:
            if isinstance(value, str):
                out[key] = {"deployment": value}
            elif isinstance(value, AzureOpenAISettings):
                out[key] = {k: getattr(value, k) for k in value.model_fields_set}
            elif value is None:
                out[key] = None
            elif isinstance(value, Mapping):
                out[key] = normalise_role(value, where=key)
            else:
                raise ConfigurationError(f"'{key}' must be a mapping or a deployment name.")
        elif key == "version":
            continue  # mem0 configs carry a schema version
        elif key in _MEM0_TOP_HINTS:
            raise ConfigurationError(
                f"The mem0 setting '{join_key(where, key)}' has no azmem equivalent.",
                error_code="unsupported_setting",
                details={"key": join_key(where, key)},
                suggestion=_MEM0_TOP_HINTS[key],
            )
        elif key in _TOP_KEYS:
            if isinstance(value, BaseModel) and key != "credential":
                value = value.model_dump(exclude_unset=True)
            if key in _SECTION_FIELDS and isinstance(value, Mapping):
                valid = _SECTION_FIELDS[key]
                for sub_key in value:
                    if sub_key not in valid:
                        unknown_key(sub_key, valid, key)
            out[key] = value
        else:
            unknown_key(key, _TOP_KEYS - {"version", "llm"}, where)
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


def _config_error(exc: ValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        parts = [str(p) for p in first["loc"]]
        valid: set[str] = set(AzmemSettings.model_fields)
        if len(parts) > 1 and parts[0] in {"chat", "small_chat", "embedding"}:
            valid = set(ROLE_FIELDS)
            if len(parts) > 2 and parts[1] == "capabilities":
                valid = set(CapabilityOverrides.model_fields)
        try:
            unknown_key(parts[-1], valid, ".".join(parts[:-1]))
        except ConfigurationError as err:
            return err
    # Never echo the rejected input: it may be a key.
    return ConfigurationError(
        f"Invalid setting '{loc}': {first['msg']}",
        error_code="invalid_setting",
        details={"key": loc, "errors": len(exc.errors())},
        suggestion=f"Fix the value of '{loc}'.",
    )
