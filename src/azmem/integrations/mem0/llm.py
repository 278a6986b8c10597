"""mem0's LLM provider on azmem's :class:`~azmem.azure.LLMClient` (``"provider": "azmem"``).

mem0ai 2.2.1's ``AzureOpenAILLM`` sends a placeholder key such as ``"<your-api-key>"`` to Azure
(401) instead of switching to Entra ID, decides reasoning parameters from the model *name*,
rewrites "assistant" to "ai" in the user's text, and has no retries of its own. azmem's client
decides auth, parameters (from the deployment's capabilities), retries, usage and cache, and
raises typed errors; this class only speaks mem0's ``generate_response`` contract: a string, or
``{"content", "tool_calls": [{"name", "arguments": dict}]}`` when tools are passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mem0.configs.llms.base import BaseLlmConfig
from mem0.llms.base import LLMBase
from mem0.memory.utils import extract_json
from pydantic import BaseModel

from azmem.azure.llm import GenerateParams, LLMClient
from azmem.azure.response import LLMResult
from azmem.errors import InvalidInputError

from .config import AzmemLlmConfig, load_settings

__all__ = ["AzmemLLM"]

_PASSED_THROUGH = ("temperature", "max_tokens", "top_p")
_CONFIG_FIELDS = (
    "model",
    "temperature",
    "api_key",
    "max_tokens",
    "top_p",
    "enable_vision",
    "vision_details",
    "reasoning_effort",
    "http_client_proxies",
    "is_reasoning_model",
)


class AzmemLLM(LLMBase):  # type: ignore[misc]  # mem0 ships no type information
    """mem0's LLM provider interface over azmem; built by mem0's ``LlmFactory`` from the config."""

    def __init__(self, config: AzmemLlmConfig | BaseLlmConfig | Mapping[str, Any] | None = None) -> None:
        raw = _raw_config(config)
        if not isinstance(config, AzmemLlmConfig):
            config = AzmemLlmConfig(**raw)
        super().__init__(config)
        self.client = LLMClient(load_settings(raw, "chat"))

    def generate_response(
        self,
        messages: list[dict[str, Any]],
        response_format: Any = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
        **kwargs: Any,
    ) -> str | dict[str, Any]:
        """mem0's contract: the answer's text (JSON text when a JSON format is asked for).

        ``response_format`` may be ``{"type": "json_object"}`` (what mem0's memory pipeline
        sends), ``{"type": "json_schema", ...}`` or a pydantic model, which gets azmem's strict
        structured output. The caller's messages are never rewritten.
        """
        params: GenerateParams = {"prompt_name": "mem0"}
        for name in _PASSED_THROUGH:
            if name in kwargs:
                params[name] = kwargs.pop(name)  # type: ignore[literal-required]
        if kwargs:
            raise InvalidInputError(f"unsupported generate_response argument(s): {', '.join(sorted(kwargs))}")
        response_model, json_mode, schema_note = _output(response_format)
        wire: list[Any] = list(messages)
        if schema_note is not None:
            wire = [{"role": "system", "content": schema_note}, *wire]
        if tools:
            params["tools"] = tools
            params["tool_choice"] = tool_choice  # type: ignore[typeddict-item]  # mem0 passes "auto"/"none"/"required"
        if response_model is not None:
            result: LLMResult[Any] = self.client.generate(wire, response_model=response_model, **params)
        else:
            params["json"] = json_mode
            result = self.client.generate(wire, **params)
        if tools:
            return {
                "content": result.text,
                "tool_calls": [
                    {"name": call.name, "arguments": json.loads(extract_json(call.arguments))}
                    for call in result.tool_calls
                ],
            }
        if result.text is None and result.data is not None:
            return json.dumps(result.data)
        return result.text or ""

    def close(self) -> None:
        """Close azmem's client (its HTTP connections and the settings' cache)."""
        self.client.close()


def _raw_config(config: AzmemLlmConfig | BaseLlmConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, AzmemLlmConfig):
        return dict(config.raw)
    if isinstance(config, Mapping):
        return dict(config)
    # A plain BaseLlmConfig (mem0's own objects): its values, minus mem0's unset defaults.
    return {name: getattr(config, name) for name in _CONFIG_FIELDS if getattr(config, name, None) is not None}


def _output(response_format: Any) -> tuple[type[BaseModel] | None, bool, str | None]:
    """(response_model, json mode, schema instruction) for mem0's ``response_format``."""
    if response_format is None:
        return None, False, None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        return response_format, False, None
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "text":
            return None, False, None
        if kind == "json_object":
            return None, True, None
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            note = "Respond with a JSON object that conforms to this JSON schema: " + json.dumps(
                schema if schema is not None else spec, separators=(",", ":")
            )
            return None, True, note
    raise InvalidInputError(
        f"unsupported response_format {_describe(response_format)}",
        suggestion='Pass {"type": "json_object"}, {"type": "json_schema", ...} or a pydantic model class.',
    )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str):
        return repr(value)[:200]
    return type(value).__name__
