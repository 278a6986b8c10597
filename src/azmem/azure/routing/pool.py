"""Deployment pools: which deployments can serve a logical model, and how to choose among them.

A pool maps a logical model name (``chat``, ``chat-small``, ``embedding`` or any name) to one
or more deployments. Connection settings (endpoint, deployment, api_key, auth, api_mode, ...)
are kept as a plain mapping here and validated by :class:`azmem.azure.settings.AzureOpenAISettings`
when providers are built, so this module stays a pure description the router can be tested
with, and every connection option of the settings layer works per deployment without being
repeated here.

Shapes accepted (file, dict or env ``AZMEM_ROUTING`` as JSON):

.. code-block:: yaml

    routing:
      pools:
        chat:
          strategy: quota_aware
          deployments:
            - {name: east, endpoint: https://a.openai.azure.com, deployment: gpt-4o, tpm: 60000}
            - {name: west, endpoint: https://b.openai.azure.com, deployment: gpt-4o, tpm: 30000, priority: 1}
        chat-small: {endpoint: https://a.openai.azure.com, deployment: gpt-4o-mini}   # one deployment
      fallbacks:
        general: {chat: [chat-small]}
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from azmem.errors import ConfigurationError

__all__ = [
    "BreakerPolicy",
    "DeploymentSpec",
    "FallbackSpec",
    "LimiterSpec",
    "PoolSpec",
    "RoutingConfig",
    "Strategy",
]

Strategy = Literal["weighted_random", "least_outstanding", "latency", "quota_aware"]

_ROUTING_KEYS = {
    "name", "region", "weight", "tpm", "rpm", "priority",
    "json_schema", "vision", "context_window", "reasoning",
}  # fmt: skip


class DeploymentSpec(BaseModel):
    """One deployment in a pool.

    The capability fields are overrides; when unset the settings layer's name-based defaults
    for the underlying model decide (resolved when the router is built).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    region: str | None = None
    weight: float | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    rpm: int | None = Field(default=None, gt=0)
    priority: int = 0
    json_schema: bool | None = None
    vision: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    reasoning: bool | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    """Connection settings handed to ``AzureOpenAISettings`` (endpoint, deployment, api_key, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _split_connection(cls, data: Any) -> Any:
        # Users write one flat mapping per deployment; routing keys stay here, the rest is
        # connection settings validated (unknown keys included) by the settings layer.
        if not isinstance(data, Mapping):
            return data
        own = {k: v for k, v in data.items() if k in _ROUTING_KEYS or k == "settings"}
        rest = {k: v for k, v in data.items() if k not in own}
        own["settings"] = {**dict(data.get("settings") or {}), **rest}
        return own

    @model_validator(mode="after")
    def _default_name(self) -> DeploymentSpec:
        if not self.name:
            host = urlparse(str(self.settings.get("endpoint") or "")).hostname or "default"
            label = self.region or host.split(".")[0]
            object.__setattr__(self, "name", f"{label}/{self.settings.get('deployment') or '?'}")
        return self

    @property
    def deployment_name(self) -> str:
        """The Azure deployment's name (our name for it when the settings give none)."""
        return str(self.settings.get("deployment") or self.name)

    @property
    def limiter_key(self) -> str:
        """Quota belongs to the Azure deployment, not to our name for it: key on endpoint+deployment."""
        endpoint = str(self.settings.get("endpoint") or "").rstrip("/")
        return f"{endpoint}|{self.deployment_name}"


class PoolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deployments: list[DeploymentSpec] = Field(min_length=1)
    strategy: Strategy = "quota_aware"

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        # One deployment is the common case and needs no pool syntax.
        if isinstance(data, list):
            return {"deployments": data}
        if isinstance(data, Mapping) and "deployments" not in data:
            strategy = data.get("strategy")
            rest = {k: v for k, v in data.items() if k != "strategy"}
            return {"deployments": [rest], **({"strategy": strategy} if strategy else {})}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> PoolSpec:
        names = [d.name for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"deployment names must be unique in a pool; repeated: {', '.join(dupes)}")
        return self


class FallbackSpec(BaseModel):
    """Opt-in fallbacks, each mapping a logical model to the models to try next, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    general: dict[str, list[str]] = Field(default_factory=dict)
    """When no deployment of the model can take the request (all cooling, out or full)."""
    context_window: dict[str, list[str]] = Field(default_factory=dict)
    """When the prompt is too long for every deployment of the model."""
    content_filter: dict[str, list[str]] = Field(default_factory=dict)
    """When the content filter rejected the request (a deployment with another filter policy)."""
    general_after: float = Field(default=1.0, ge=0)
    """Seconds of expected waiting that justify a general fallback; shorter waits are waited out."""


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive server/network failures that open the breaker."""
    open_seconds: float = Field(default=2.0, gt=0)
    max_open_seconds: float = Field(default=5.0, gt=0)
    cooldown_base: float = Field(default=0.5, ge=0)
    """First adaptive cooldown after a failure without Retry-After; doubles per consecutive failure."""
    cooldown_max: float = Field(default=30.0, gt=0)


class LimiterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["sqlite", "memory", "off", "postgres"] = "sqlite"
    """"sqlite": shared by the processes of one machine; "postgres": by every instance using
    the same database (N app instances, one TPM/RPM budget); "memory": this process only."""
    path: str | None = None
    """SQLite file; default ``$AZMEM_HOME/limiter.sqlite3`` (or the platform data dir)."""
    url: str | None = Field(default=None, repr=False)
    """PostgreSQL URL for backend "postgres"; default: the store's, when the store is PostgreSQL."""
    window: float = Field(default=60.0, gt=0)
    margin: float = Field(default=1.0, ge=0)
    """Extra seconds a grant is kept, covering the delay between our send and the service's count."""
    completion_tokens: int = Field(default=256, ge=0)
    """Output tokens assumed for a request without max_tokens (the service counts them too)."""


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: dict[str, PoolSpec] = Field(default_factory=dict)
    fallbacks: FallbackSpec = Field(default_factory=FallbackSpec)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    limiter: LimiterSpec = Field(default_factory=LimiterSpec)
    max_attempts: int | None = Field(default=None, ge=1)
    """Attempts per call across all deployments; default 2 per deployment in reach, at least 4."""
    deadline: float | None = Field(default=None, gt=0)
    """Seconds a call may take in total, waits included; None means no deadline."""
    max_wait: float = Field(default=90.0, ge=0)
    """Longest single wait for a deployment to recover; a longer one ends the call at once."""
    latency_alpha: float = Field(default=0.3, gt=0, le=1)

    @field_validator("pools")
    @classmethod
    def _pool_names(cls, pools: dict[str, PoolSpec]) -> dict[str, PoolSpec]:
        for name in pools:
            if not name.strip():
                raise ValueError("a pool needs a non-empty name")
        return pools

    @model_validator(mode="after")
    def _fallback_targets(self) -> RoutingConfig:
        for kind in ("general", "context_window", "content_filter"):
            table: dict[str, list[str]] = getattr(self.fallbacks, kind)
            for source, targets in table.items():
                for name in [source, *targets]:
                    if name not in self.pools:
                        raise ValueError(
                            f"fallbacks.{kind} names pool '{name}', which is not configured"
                            + _closest(name, self.pools)
                        )
        return self

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, source: RoutingConfig | Mapping[str, Any] | str | Path | None = None) -> RoutingConfig:
        """From code (a mapping), a YAML/TOML/JSON file, or env ``AZMEM_ROUTING`` (JSON or a path).

        A file may hold the routing section at top level or under a ``routing`` key, so the
        same file can carry the rest of azmem's settings.
        """
        if isinstance(source, RoutingConfig):
            return source
        if source is None:
            raw = os.environ.get("AZMEM_ROUTING", "").strip()
            if not raw:
                return cls()
            source = json.loads(raw) if raw.startswith("{") else Path(raw)
        data: Any = _read_file(Path(source)) if isinstance(source, str | Path) else source
        if isinstance(data, Mapping) and "routing" in data:
            data = data["routing"]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc) from None


def _read_file(path: Path) -> Any:
    if not path.exists():
        raise ConfigurationError(f"Routing config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def _closest(name: str, options: Mapping[str, Any] | set[str] | list[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _config_error(exc: ValidationError) -> ConfigurationError:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            lines.append(f"unknown key '{where}'{_closest(key, _known_keys())}")
        else:
            lines.append(f"{where}: {err['msg']}")
    return ConfigurationError(
        "Invalid routing configuration: " + "; ".join(lines),
        suggestion="See docs/routing.md for the pool, fallback, breaker and limiter keys.",
    )


def _known_keys() -> set[str]:
    keys: set[str] = set(_ROUTING_KEYS)
    for model in (PoolSpec, FallbackSpec, BreakerPolicy, LimiterSpec, RoutingConfig):
        keys.update(model.model_fields)
    return keys
