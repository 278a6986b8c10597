"""Azure OpenAI's error bodies, messages and headers, reproduced word for word.

Kept apart from the routes so that every error the emulator can send is visible in one place and
can be compared with docs/azure-openai-protocol.md (and with the service) line by line.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

ErrorBody = dict[str, Any]

SAFE = {"filtered": False, "severity": "safe"}
_HARM_CATEGORIES = ("hate", "self_harm", "sexual", "violence")

MSG_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource."
)
MSG_MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making "
    "requests to an API."
)
MSG_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
MSG_NO_ROLE = "Principal does not have access to API/Operation."
MSG_DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again."
)
MSG_JSON_WORD = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
)
MSG_JSON_SCHEMA_VERSION = (
    "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later"
)
MSG_JSON_SCHEMA_MODEL = (
    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model. Learn "
    "more about supported models at the Structured Outputs guide: "
    "https://platform.openai.com/docs/guides/structured-outputs"
)
MSG_PROMPT_FILTER = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
MSG_SERVER_ERROR = (
    "The server had an error while processing your request. Sorry about that! You can retry your request, "
    "or contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 "
    "if the error persists."
)
MSG_TOO_MANY_INPUTS = (
    "Too many inputs. The max number of inputs is 2048.  We hope to increase the number of inputs per "
    "request soon. Please contact us through an Azure support request at: "
    "https://go.microsoft.com/fwlink/?linkid=2213926 for further questions."
)


def new_request_id() -> str:
    return str(uuid.uuid4())


def error(code: str | None, message: str, **extra: Any) -> ErrorBody:
    """Azure's envelope; `extra` adds `param`, `type`, `status`, `innererror` where Azure has them."""
    inner: dict[str, Any] = {"code": code, "message": message}
    inner.update(extra)
    return {"error": inner}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ErrorBody:
    """The OpenAI-style 400 that Azure passes through from the model service."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def resource_not_found() -> ErrorBody:
    """What Azure answers for a missing or unknown api-version, or a path it does not serve."""
    return error("404", "Resource not found")


def deployment_not_found() -> ErrorBody:
    return error("DeploymentNotFound", MSG_DEPLOYMENT_NOT_FOUND)


def unauthorized(message: str) -> ErrorBody:
    return error("401", message)


def token_rejected() -> ErrorBody:
    """A bad or expired Entra token is refused by the gateway, in its own flat envelope (no "error"
    key), so the SDK's `e.code` is None and `e.body` is this whole dict."""
    return {"statusCode": 401, "message": MSG_BAD_TOKEN}


def permission_denied() -> ErrorBody:
    """A valid token whose principal lacks a data-plane role (e.g. Cognitive Services OpenAI User)."""
    return error("PermissionDenied", MSG_NO_ROLE)


def operation_name(operation: str) -> str:
    return {"embeddings": "Embeddings_Create", "responses": "Responses_Create"}.get(
        operation, "ChatCompletions_Create"
    )


def rate_limited(operation: str, api_version: str | None, seconds: int, *, limit: str = "token") -> ErrorBody:
    """The 429 body; `limit` is "token" (TPM) or "call" (RPM), as in Azure's two variants."""
    version = api_version or "v1"
    return error(
        "429",
        f"Requests to the {operation_name(operation)} Operation under Azure OpenAI API version {version} "
        f"have exceeded {limit} rate limit of your current OpenAI S0 pricing tier. Please retry after "
        f"{seconds} {'second' if seconds == 1 else 'seconds'}. "
        "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the "
        "default rate limit.",
    )


def server_error(status: int) -> ErrorBody:
    if status == 408:
        return error("Timeout", "The operation was timeout.")
    if status == 502:
        return error("BadGateway", "Bad gateway.")
    if status == 503:
        return error(
            "ServiceUnavailable",
            "The service is temporarily unable to process your request. Please try again later.",
        )
    if status == 504:
        return error("GatewayTimeout", "The operation was timeout.")
    if status >= 500:
        return {"error": {"message": MSG_SERVER_ERROR, "type": "server_error", "param": None, "code": None}}
    return error(str(status), f"The request failed with status {status}.")


def context_length_exceeded(window: int, used: int) -> ErrorBody:
    return invalid_request(
        f"This model's maximum context length is {window} tokens. However, your messages resulted in "
        f"{used} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


def embedding_input_too_long(window: int, used: int) -> ErrorBody:
    return invalid_request(
        f"This model's maximum context length is {window} tokens, however you requested {used} tokens "
        f"({used} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
        param=None,
        code=None,
    )


def filter_results(
    categories: dict[str, str] | None = None, *, prompt: bool, jailbreak: bool = False
) -> dict[str, Any]:
    """A `content_filter_results` object: every category safe unless named in `categories`.

    Prompt results carry `jailbreak`; completion results carry the protected-material detectors, as
    Azure's default filter configuration does.
    """
    categories = categories or {}
    out: dict[str, Any] = {}
    for name in _HARM_CATEGORIES:
        if name in categories:
            out[name] = {"filtered": True, "severity": categories[name]}
        else:
            out[name] = dict(SAFE)
    if prompt:
        out["jailbreak"] = {"filtered": jailbreak, "detected": jailbreak}
    else:
        out["protected_material_code"] = {"filtered": False, "detected": False}
        out["protected_material_text"] = {"filtered": False, "detected": False}
    return out


def prompt_filter_results(index: int = 0) -> list[dict[str, Any]]:
    return [{"prompt_index": index, "content_filter_results": filter_results(prompt=True)}]


def prompt_filtered(categories: dict[str, str], *, jailbreak: bool = False) -> ErrorBody:
    result = filter_results(categories, prompt=True, jailbreak=jailbreak)
    return {
        "error": {
            "message": MSG_PROMPT_FILTER,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
        }
    }


def retry_headers(retry_after: float | None, retry_after_ms: float | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(int(retry_after_ms))
    if retry_after is not None:
        headers["retry-after"] = str(math.ceil(retry_after))
    return headers


def trace_headers(request_id: str, region: str, client_request_id: str | None = None) -> dict[str, str]:
    """The tracing headers Azure puts on every answer, errors included."""
    headers = {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": region}
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    return headers
