"""mem0's Azure OpenAI config shape, read into azmem's settings.

A mem0 user keeps the ``config`` they have (``model``, ``temperature``, ``max_tokens``,
``azure_kwargs={api_key, azure_deployment, azure_endpoint, api_version, default_headers}``,
...) and changes only ``provider``. Where mem0 misreads that config, azmem reads it as meant:

* unknown keys (``azuer_deployment``, ``temprature``) are errors naming the closest valid key,
  where mem0's ``AzureConfig`` drops them and the user debugs an auth failure instead;
* a top-level ``api_key`` is used (mem0 reads only ``azure_kwargs.api_key``);
* placeholder keys of any shape (``<your-api-key>``, ``xxxx``, ``${AZURE_OPENAI_API_KEY}``) mean
  Entra ID, not a key to send; ``azure_kwargs.azure_ad_token_provider`` (any callable returning a
  token) is honoured, and the ``azmem`` key takes azmem's own role settings (``credential``,
  ``token_scope`` for sovereign clouds, ``managed_identity_client_id``, ``retry``, ...).

Precedence is mem0's: the config's values, then mem0's env vars (``LLM_AZURE_*``,
``EMBEDDING_AZURE_*``), then azmem's (``AZURE_OPENAI_*``, ``AZMEM_*``, the config file).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any, Literal

from mem0.configs.llms.azure import AzureOpenAIConfig
from mem0.configs.llms.base import BaseLlmConfig

from azmem.azure.settings import AzmemSettings, AzureOpenAISettings
from azmem.errors import ConfigurationError

__all__ = ["EMBEDDER_KEYS", "LLM_KEYS", "AzmemLlmConfig", "check_config", "load_settings", "role_settings"]

Role = Literal["chat", "embedding"]

# The keys of mem0's AzureOpenAIConfig / BaseEmbedderConfig that mean something for Azure OpenAI,
# plus ``azmem`` for azmem's own role settings.
LLM_KEYS = frozenset(
    {
        "model",
        "temperature",
        "api_key",
        "max_tokens",
        "top_p",
        "top_k",
        "enable_vision",
        "vision_details",
        "reasoning_effort",
        "http_client_proxies",
        "is_reasoning_model",
        "azure_kwargs",
        "azmem",
    }
)
EMBEDDER_KEYS = frozenset(
    {"model", "api_key", "embedding_dims", "azure_kwargs", "http_client_proxies", "azmem"}
)
_AZURE_KWARGS = frozenset(
    {
        "api_key",
        "azure_deployment",
        "azure_endpoint",
        "api_version",
        "default_headers",
        "azure_ad_token_provider",
    }
)
_AZMEM_FIELDS = frozenset(AzureOpenAISettings.model_fields) - {"role"}
# Same-meaning keys, mem0's name -> azmem's role field.
_RENAMES = {"http_client_proxies": "proxy", "vision_details": "vision_detail"}


def _unknown(key: str, valid: frozenset[str], where: str) -> ConfigurationError:
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
    return ConfigurationError(
        f"Unknown mem0 setting '{where}{key}' for the azmem provider: {hint}",
        error_code="unknown_setting",
        details={"key": f"{where}{key}", "closest": close[0] if close else None},
        suggestion=f"Rename '{key}' to '{close[0]}'." if close else "Remove the key.",
    )


def check_config(raw: Mapping[str, Any] | None, role: Role) -> None:
    """Reject keys azmem would not use, with the closest valid one (run when mem0 validates its config)."""
    if not raw:
        return
    for key in raw:
        if key not in (LLM_KEYS if role == "chat" else EMBEDDER_KEYS):
            raise _unknown(str(key), LLM_KEYS if role == "chat" else EMBEDDER_KEYS, "")
    for section, valid in (("azure_kwargs", _AZURE_KWARGS), ("azmem", _AZMEM_FIELDS)):
        value = raw.get(section)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"'{section}' must be a mapping, not {type(value).__name__}.")
        for key in value:
            if key not in valid:
                raise _unknown(str(key), valid, f"{section}.")


def role_settings(raw: Mapping[str, Any] | None, role: Role) -> dict[str, Any]:
    """One azmem role's explicit settings (keys azmem's settings accept) from a mem0 config dict."""
    raw = raw or {}
    check_config(raw, role)
    out: dict[str, Any] = {}
    capabilities: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or key in {"azure_kwargs", "azmem", "top_k", "embedding_dims"}:
            continue  # top_k: chat completions has no such parameter; embedding_dims: see load_settings
        if key == "enable_vision":
            if value:  # False is mem0's default ("mem0 sends no images"), not "the model has no vision"
                capabilities["vision"] = True
        elif key == "is_reasoning_model":
            capabilities["reasoning"] = bool(value)
        else:
            out[_RENAMES.get(key, key)] = value
    if capabilities:
        out["capabilities"] = capabilities
    azure_kwargs = raw.get("azure_kwargs")
    if azure_kwargs:
        # azmem's settings read mem0's azure_kwargs themselves (azure_deployment -> deployment, ...).
        out["azure_kwargs"] = dict(azure_kwargs)
    azmem = dict(raw.get("azmem") or {})
    if "capabilities" in azmem and capabilities:
        azmem["capabilities"] = {**capabilities, **azmem["capabilities"]}
    out.update(azmem)
    return out


def _mem0_defaults() -> dict[str, Any]:
    """mem0's own generation defaults (temperature 0.1, top_p 0.1, max_tokens 2000 in 2.2.1)."""
    params = inspect.signature(BaseLlmConfig.__init__).parameters
    return {name: params[name].default for name in ("temperature", "top_p", "max_tokens") if name in params}


def load_settings(raw: Mapping[str, Any] | None, role: Role) -> AzmemSettings:
    """azmem's settings with this mem0 config as the role's explicit values.

    As in mem0, a role with no deployment named anywhere sends ``model`` as the deployment, and
    chat calls keep mem0's generation defaults unless the config or azmem's settings set them
    (so switching provider does not change how extraction samples).
    """
    settings = AzmemSettings.load(**{role: role_settings(raw, role)})
    cfg = settings.chat if role == "chat" else settings.embedding
    if cfg is not None and not cfg.deployment and cfg.model:
        cfg.deployment = cfg.model
    if cfg is not None and role == "chat":
        for name, value in _mem0_defaults().items():
            if getattr(cfg, name) is None:
                setattr(cfg, name, value)
    return settings


class AzmemLlmConfig(AzureOpenAIConfig):  # type: ignore[misc]  # mem0 ships no type information
    """mem0's ``AzureOpenAIConfig``, keeping the config exactly as the user wrote it.

    mem0's factory builds the provider's config class from the user's dict; its ``AzureConfig``
    drops unknown and extra ``azure_kwargs`` (a typo, a token provider), so the raw dict is kept
    for azmem to read. ``azmem`` holds azmem's own role settings.
    """

    def __init__(self, **kwargs: Any) -> None:
        check_config(kwargs, "chat")
        self.raw: dict[str, Any] = dict(kwargs)
        base = {k: v for k, v in kwargs.items() if k != "azmem"}
        azure_kwargs = base.get("azure_kwargs")
        if isinstance(azure_kwargs, Mapping):
            base["azure_kwargs"] = {k: v for k, v in azure_kwargs.items() if k != "azure_ad_token_provider"}
        super().__init__(**base)
