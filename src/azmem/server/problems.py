"""Every failure as RFC 9457 problem details, from the one error tree (`azmem.errors`).

A problem carries the status the tree gives the exception (`http_status_for`), its
stable ``code`` (also in ``type``, ``urn:azmem:error:<code>``), its ``suggestion``, and
the request id, so a user pasting a problem into an issue hands over everything needed
to find the log lines. ``Retry-After`` is set whenever the error knows when to come back
(Azure throttling, a key over its own rate). Exceptions outside the tree are 500s whose
text stays in the server log: an unexpected message may hold anything.

Request-validation problems list the fields at fault (location, message) but never
the rejected values: those are the caller's memories.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from azmem.errors import AzmemError, http_status_for
from azmem.server.logs import request_id_var

__all__ = [
    "COMMON",
    "PROBLEM_MEDIA_TYPE",
    "FieldProblem",
    "Problem",
    "error_responses",
    "install_problem_handlers",
    "problem_of",
    "problem_response",
    "tool_error_text",
    "tool_errors",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("azmem.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "auth_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}

_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not JSON).",
    401: "No API key, or one that is unknown, revoked or malformed.",
    403: "The key may not reach this scope, is read-only, or is bound where the call needs every scope.",
    404: "No such memory in the scope the key reaches (or no such job).",
    409: "The store holds vectors of another embedder, or a concurrent change conflicted.",
    413: "The body or a text is over its size limit.",
    422: "Invalid arguments (missing scope, bad filter, unknown mode...).",
    429: "Azure OpenAI throttled, or the key exceeded its own rate limit (see Retry-After).",
    500: "Unexpected server error (details in the server log, under the request id).",
    503: "The store or Azure OpenAI is unavailable, or misconfigured.",
}


class FieldProblem(BaseModel):
    """One invalid field of a request (its value is not echoed back)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with azmem's ``code`` and ``suggestion``."""

    type: str = Field(description="urn:azmem:error:<code>")
    title: str
    status: int
    detail: str
    instance: str | None = Field(None, description="The request path.")
    code: str = Field(description="Stable snake_case code, as raised by the library.")
    suggestion: str | None = None
    retryable: bool = False
    retry_after: float | None = Field(None, description="Seconds to wait before retrying, when known.")
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


def _title(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _make(status: int, code: str, detail: str, **extra: Any) -> Problem:
    return Problem(
        type=f"urn:azmem:error:{code}", title=_title(code), status=status, code=code, detail=detail, **extra
    )


def _validation(exc: RequestValidationError) -> Problem:
    errors = [
        FieldProblem(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in exc.errors()
    ]
    if any(e.type == "json_invalid" for e in errors):
        return _make(400, "malformed_body", "The request body is not valid JSON.", errors=errors)
    where = ", ".join(".".join(str(p) for p in e.loc) for e in errors[:5])
    return _make(
        422,
        "invalid_request",
        f"The request does not match the API's schema ({where}).",
        suggestion="See /docs (or /openapi.json) for the request shape.",
        errors=errors,
    )


def problem_of(exc: BaseException, *, instance: str | None = None, request_id: str | None = None) -> Problem:
    """The problem an exception is reported as."""
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, AzmemError):
        exc = exc.__cause__  # e.g. a body over the limit, seen by FastAPI while parsing it
    if isinstance(exc, AzmemError):
        problem = _make(
            http_status_for(exc),
            exc.code,
            exc.message,
            suggestion=exc.suggestion,
            retryable=exc.retryable,
            retry_after=exc.retry_after,
        )
    elif isinstance(exc, RequestValidationError):
        problem = _validation(exc)
    elif isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        problem = _make(exc.status_code, code, str(exc.detail))
    else:
        problem = _make(500, "internal_error", "The server failed unexpectedly; the log has the details.")
    return problem.model_copy(update={"instance": instance, "request_id": request_id or request_id_var.get()})


def tool_error_text(exc: AzmemError) -> str:
    """An error as an MCP tool error's text: what a model needs to correct its next call."""
    text = f"{exc.message} (code {exc.code}, HTTP {http_status_for(exc)})"
    return f"{text}\nSuggestion: {exc.suggestion}" if exc.suggestion else text


_P = ParamSpec("_P")
_T = TypeVar("_T")


def tool_errors(fn: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """An MCP tool whose library errors reach the model as tool errors (`tool_error_text`).

    Put it under ``@server.tool(...)``: the wrapper keeps the tool's name, docstring and
    signature (``__wrapped__``), from which the SDK builds the tool's schema.
    """

    @functools.wraps(fn)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await fn(*args, **kwargs)
        except AzmemError as exc:
            raise ToolError(tool_error_text(exc)) from exc

    return run


def problem_response(problem: Problem) -> Response:
    headers: dict[str, str] = {}
    if problem.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(problem.retry_after)))
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="azmem"'
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("azmem_request_id")
    return rid if isinstance(rid, str) else None


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error a route can raise to one problem response (500s logged with their traceback)."""

    async def handle(request: Request, exc: Exception) -> Response:
        problem = problem_of(exc, instance=request.url.path, request_id=_request_id(request))
        if problem.status >= 500 and not isinstance(exc, AzmemError):
            log.error("unexpected error", exc_info=exc)
        elif problem.status >= 500:
            log.warning("%s: %s", problem.code, problem.detail)
        return problem_response(problem)

    for exc_type in (AzmemError, RequestValidationError, HTTPException):
        app.add_exception_handler(exc_type, handle)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` declaring each status as a problem+json body."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, "Error."),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


#: What every authenticated route can answer, whatever it does.
COMMON = (400, 401, 403, 413, 422, 429, 500, 503)
