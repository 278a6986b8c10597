"""What an emulated Azure OpenAI resource is made of: deployments, faults, and the served config.

`Deployment` and `Fault` are plain dataclasses (positional construction reads well in tests:
`Deployment("gpt-4o")`); `EmulatorConfig` is a pydantic model because it is also read from a
user's YAML/JSON file, where unknown keys must be reported rather than ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DeploymentKind = Literal["chat", "embeddings"]
FaultKind = Literal[
    "status",
    "timeout",
    "drop",
    "malformed",
    "prompt_filter",
    "output_filter",
    "latency",
    "stream_error",
    "stream_drop",
]

# Defaults by model name, so `Deployment("text-embedding-3-large")` behaves like the real one without
# the test having to restate facts about the model.
_EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_CONTEXT_WINDOWS = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-35-turbo-16k", 16_384),
    ("gpt-35-turbo", 16_385),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
)
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def default_embedding_dimension(model: str) -> int:
    return _EMBEDDING_DIMENSIONS.get(model, 1536)


def default_context_window(model: str, kind: DeploymentKind) -> int:
    if kind == "embeddings":
        return 8_192
    for prefix, window in _CONTEXT_WINDOWS:
        if model.startswith(prefix):
            return window
    return 128_000


_MAX_OUTPUT = (
    ("gpt-4.1", 32_768),
    ("gpt-4o", 16_384),
    ("gpt-4-turbo", 4_096),
    ("gpt-4", 8_192),
    ("gpt-35", 4_096),
    ("gpt-5", 128_000),
    ("o1-mini", 65_536),
    ("o1", 100_000),
    ("o3", 100_000),
    ("o4", 100_000),
)


def default_max_output_tokens(model: str) -> int:
    for prefix, limit in _MAX_OUTPUT:
        if model.startswith(prefix):
            return limit
    return 16_384


def is_reasoning_model(model: str) -> bool:
    return model.startswith(_REASONING_PREFIXES) and not model.startswith("gpt-5-chat")


# Older chat models: no strict structured outputs and no image input.
_TEXT_ONLY = ("o1-mini", "o3-mini")
_LEGACY_PREFIXES = ("gpt-35", "gpt-3.5", "gpt-4-32k", "gpt-4-0613", "gpt-4-0314")


def is_legacy_model(model: str) -> bool:
    return model.startswith(_LEGACY_PREFIXES) or model in ("gpt-4", "gpt-4-turbo", "gpt-4-1106-preview")


@dataclass
class _DeploymentFields:
    """A deployment's settings, declared once for its two forms: the `Deployment` the emulator
    runs and the `DeploymentConfig` a file is read into (pydantic takes a model's fields from
    the annotations of all its bases)."""

    name: str
    kind: DeploymentKind | None = None
    model: str | None = None
    context_window: int | None = None
    reasoning: bool | None = None
    dimensions: int | None = None
    tpm: int | None = None
    rpm: int | None = None
    latency: float | tuple[float, float] = 0.0
    region: str = "East US"
    max_output_tokens: int | None = None
    json_schema: bool | None = None
    vision: bool | None = None
    responses_api: bool | None = None


@dataclass
class Deployment(_DeploymentFields):
    """One deployment of the emulated resource.

    `model`, `kind`, `context_window`, `dimensions` and `reasoning` default from the name, like a real
    deployment whose model decides them. `tpm`/`rpm` of `None` mean "not enforced" (headers then
    advertise a generous nominal limit). `latency` is seconds added to every answer, or a
    `(low, high)` range drawn uniformly.
    """

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = self.name
        if self.kind is None:
            self.kind = "embeddings" if "embedding" in self.model else "chat"
        if self.context_window is None:
            self.context_window = default_context_window(self.model, self.kind)
        if self.reasoning is None:
            self.reasoning = self.kind == "chat" and is_reasoning_model(self.model)
        if self.max_output_tokens is None:
            self.max_output_tokens = default_max_output_tokens(self.model)
        if self.json_schema is None:
            self.json_schema = self.kind == "chat" and not is_legacy_model(self.model)
        if self.vision is None:
            self.vision = (
                self.kind == "chat"
                and not is_legacy_model(self.model)
                and not self.model.startswith(_TEXT_ONLY)
            )
        if self.responses_api is None:
            # The Responses API serves the current chat families, not the legacy ones.
            self.responses_api = self.kind == "chat" and not is_legacy_model(self.model)
        if self.dimensions is None and self.kind == "embeddings":
            self.dimensions = default_embedding_dimension(self.model)
        if isinstance(self.latency, list):
            self.latency = (float(self.latency[0]), float(self.latency[1]))

    @property
    def supports_dimensions(self) -> bool:
        return self.model is not None and self.model.startswith("text-embedding-3")


@dataclass
class Fault:
    """A failure the emulator produces instead of (or around) a normal answer.

    `times=None` keeps the fault until `reset()`/`clear_faults()`; `times=N` fires on the next N
    requests to the deployment. The kind is inferred when not given: a `status` makes an HTTP error,
    `latency` alone makes a slow success. Use the class methods for the common shapes.
    """

    status: int | None = None
    kind: FaultKind | None = None
    times: int | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    # Which 429 wording: "token" (TPM: "token rate limit") or "call" (RPM: "call rate limit").
    limit: Literal["token", "call"] = "token"
    latency: float = 0.0
    code: str | None = None
    message: str | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Content filter: category -> severity ("low" | "medium" | "high"), e.g. {"violence": "high"}.
    categories: dict[str, str] = field(default_factory=dict)
    jailbreak: bool = False

    def __post_init__(self) -> None:
        if self.kind is None:
            self.kind = "status" if self.status is not None else "latency"
        if self.kind == "status" and self.status is None:
            raise ValueError("Fault(kind='status') needs a status code")
        if self.kind in ("prompt_filter", "output_filter") and not self.categories and not self.jailbreak:
            self.categories = {"violence": "high"}
        if self.times is not None and self.times < 1:
            raise ValueError("Fault.times must be >= 1, or None for a persistent fault")

    @classmethod
    def rate_limit(
        cls,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        *,
        times: int | None = None,
        kind: Literal["tokens", "requests"] = "tokens",
    ) -> Fault:
        """A 429 as Azure sends it; give either, both or neither Retry-After header."""
        return cls(
            status=429,
            times=times,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            limit="call" if kind == "requests" else "token",
        )

    @classmethod
    def quota_wall(cls, *, times: int | None = None) -> Fault:
        """The "retry after 86400 seconds" 429 of a spent quota."""
        return cls(status=429, times=times, retry_after=86400)

    @classmethod
    def server_error(cls, status: int = 500, *, times: int | None = None) -> Fault:
        return cls(status=status, times=times)

    @classmethod
    def timeout(cls, seconds: float = 30.0, *, times: int | None = None) -> Fault:
        """Hang for `seconds` (longer than the client's timeout), then answer 408."""
        return cls(kind="timeout", latency=seconds, times=times)

    @classmethod
    def drop(cls, *, times: int | None = None) -> Fault:
        """Close the connection without any response."""
        return cls(kind="drop", times=times)

    @classmethod
    def malformed(cls, *, times: int | None = None) -> Fault:
        """HTTP 200 whose JSON body is cut off."""
        return cls(kind="malformed", times=times)

    @classmethod
    def prompt_filter(
        cls, categories: dict[str, str] | None = None, *, jailbreak: bool = False, times: int | None = None
    ) -> Fault:
        return cls(kind="prompt_filter", categories=dict(categories or {}), jailbreak=jailbreak, times=times)

    @classmethod
    def output_filter(cls, categories: dict[str, str] | None = None, *, times: int | None = None) -> Fault:
        return cls(kind="output_filter", categories=dict(categories or {}), times=times)

    @classmethod
    def stream_error(cls, *, times: int | None = None) -> Fault:
        """Streams a few chunks, then a `data: {"error": ...}` event (non-streamed calls: a 500)."""
        return cls(kind="stream_error", times=times)

    @classmethod
    def stream_drop(cls, *, times: int | None = None) -> Fault:
        """Streams a few chunks, then closes the connection mid-stream (non-streamed: a drop)."""
        return cls(kind="stream_drop", times=times)

    @classmethod
    def slow(cls, seconds: float, *, times: int | None = None) -> Fault:
        return cls(kind="latency", latency=seconds, times=times)


def default_deployments() -> list[Deployment]:
    """The deployments a fresh emulator serves, covering each capability azmem's tests need."""
    return [
        Deployment("gpt-4o"),
        Deployment("gpt-4o-mini"),
        Deployment("o3-mini"),
        Deployment("text-embedding-3-small"),
        Deployment("text-embedding-3-large"),
        Deployment("text-embedding-ada-002"),
    ]


class DeploymentConfig(BaseModel, _DeploymentFields):
    """The file form of a `Deployment`."""

    model_config = ConfigDict(extra="forbid")

    def to_deployment(self) -> Deployment:
        return Deployment(**self.model_dump())


class EmulatorConfig(BaseModel):
    """What `azmem emulator` / `python -m azmem.emulator` serves, read from YAML or JSON."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: list[str] = Field(default_factory=lambda: ["test-key"])
    auth_required: bool = True
    region: str = "East US"
    deployments: list[DeploymentConfig] = Field(default_factory=list)

    def build_deployments(self) -> list[Deployment]:
        if not self.deployments:
            return default_deployments()
        return [d.to_deployment() for d in self.deployments]

    @classmethod
    def load(cls, path: str | Path) -> EmulatorConfig:
        text = Path(path).read_text(encoding="utf-8")
        data: Any
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        return cls.model_validate(data)
