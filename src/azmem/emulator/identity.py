"""A managed-identity token endpoint, so Entra ID auth can be rehearsed against the emulator.

It speaks App Service's managed identity protocol (``GET {IDENTITY_ENDPOINT}?resource=...
&api-version=2019-08-01`` with an ``X-IDENTITY-HEADER`` secret), which azure-identity's
``ManagedIdentityCredential`` (and so ``DefaultAzureCredential``) uses when ``IDENTITY_ENDPOINT``
and ``IDENTITY_HEADER`` are set: export those two, drop the API key, and an app's real Entra ID
code path (token provider, refresh, ``Authorization: Bearer``) runs against the emulator. The
secret is any of the emulator's API keys. ``azmem emulator token`` reads the same endpoint.
"""

from __future__ import annotations

import json
import time

from fastapi import Request
from fastapi.responses import Response

from .state import EmulatorState, RecordedRequest

__all__ = ["TOKEN_PATH", "token_response"]

TOKEN_PATH = "/msi/token"
DEFAULT_TTL = 3600.0
CLIENT_ID = "00000000-0000-0000-0000-0000000a2e3e"


def _answer(status: int, body: dict[str, object]) -> Response:
    return Response(content=json.dumps(body), status_code=status, media_type="application/json")


def token_response(state: EmulatorState, request: Request) -> Response:
    """A token for ``resource`` (any scope: the emulator checks tokens, not audiences).

    Recorded in the request log like every call (its secret header redacted).
    """
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "x-identity-header" in headers:
        headers["x-identity-header"] = "***"
    record = RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers=headers,
        json=None,
    )
    state.record(record)
    response = _issue(state, request)
    record.status = response.status_code
    return response


def _issue(state: EmulatorState, request: Request) -> Response:
    secret = request.headers.get("x-identity-header")
    if state.auth_required and secret not in state.api_keys:
        return _answer(
            401, {"error": "invalid_request", "error_description": "X-IDENTITY-HEADER is missing or wrong."}
        )
    resource = request.query_params.get("resource")
    if not resource:
        return _answer(400, {"error": "invalid_request", "error_description": "resource is required."})
    try:
        ttl = float(request.query_params.get("ttl_seconds") or DEFAULT_TTL)
    except ValueError:
        return _answer(400, {"error": "invalid_request", "error_description": "ttl_seconds: not a number."})
    authorized = request.query_params.get("authorized", "true").lower() != "false"
    token = state.issue_token(ttl, authorized=authorized)
    return _answer(
        200,
        {
            "access_token": token,
            "expires_on": str(int(time.time() + ttl)),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": CLIENT_ID,
        },
    )
