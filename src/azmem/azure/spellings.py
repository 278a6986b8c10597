"""The openai SDK's spellings of ``generate()`` arguments, read as azmem's.

People arrive from ``client.chat.completions.create(model=..., response_format=...,
max_completion_tokens=...)`` and type what they know. Where the meaning is clear the
argument is translated; where azmem decides differently (a raw JSON schema, a deployment
the client was not built for) the error names azmem's spelling, so one message fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from azmem.errors import InvalidInputError

__all__ = ["SDK_NAMES", "translate_sdk_params"]

SDK_NAMES = frozenset({"model", "response_format", "max_completion_tokens"})


def _model_size(model: Any, deployments: Mapping[str, str], current: Any) -> str:
    size = deployments.get(model) if isinstance(model, str) else None
    known = ", ".join(f"'{name}' (model_size='{s}')" for name, s in deployments.items())
    if size is None:
        raise InvalidInputError(
            f"model={model!r} is not a deployment of this client, which sends to {known}",
            suggestion="azmem picks the deployment from its settings: pass model_size='small' or "
            "'medium' instead of model=, or build a client whose chat settings name that deployment.",
        )
    if current is not None and current != size:
        raise InvalidInputError(
            f"model={model!r} is the {size} deployment, but model_size={current!r} was passed too",
            suggestion="Pass only model_size=.",
        )
    return size


def _response_format(value: Any, params: dict[str, Any], response_model: Any) -> Any:
    if isinstance(value, type) and issubclass(value, BaseModel):
        if response_model is not None and response_model is not value:
            raise InvalidInputError(
                "response_format= and response_model= name different models",
                suggestion="Pass only response_model=.",
            )
        return value
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "json_object":
        params["json"] = True
    elif kind == "json_schema":
        raise InvalidInputError(
            "response_format json_schema dicts are not taken: azmem validates the answer against a model",
            suggestion="Pass response_model=<a pydantic model class>; azmem sends it as a strict json_schema "
            "(with a fallback where the deployment lacks one) and re-asks when the answer does not validate.",
        )
    elif kind != "text":
        raise InvalidInputError(
            f"unsupported response_format {value!r}",
            suggestion="Pass response_model=<a pydantic model> for structured output, or json=True for JSON.",
        )
    return response_model


def translate_sdk_params(
    params: Mapping[str, Any], response_model: Any, *, deployments: Mapping[str, str]
) -> tuple[dict[str, Any], Any]:
    """``params`` with the SDK's names turned into azmem's, and the response model they imply.

    ``deployments`` maps each deployment (or routed pool) name the client sends to onto its
    ``model_size``, which is how azmem chooses between them.
    """
    out = {k: v for k, v in params.items() if k not in SDK_NAMES}
    if "max_completion_tokens" in params:
        value = params["max_completion_tokens"]
        if out.get("max_tokens") is not None and out["max_tokens"] != value:
            raise InvalidInputError(
                "max_tokens and max_completion_tokens disagree",
                suggestion="Pass only max_tokens: azmem sends it as max_completion_tokens to reasoning "
                "deployments and as max_output_tokens on the Responses API.",
            )
        out["max_tokens"] = value
    if params.get("model") is not None:
        out["model_size"] = _model_size(params["model"], deployments, params.get("model_size"))
    if params.get("response_format") is not None:
        response_model = _response_format(params["response_format"], out, response_model)
    return out, response_model
