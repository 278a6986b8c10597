"""What a route handler is given: the server's `Services` and the request's `Principal`."""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from azmem.errors import AuthRequiredError, InvalidInputError
from azmem.server.gate import principal_of
from azmem.server.principal import Principal
from azmem.server.runtime import Services

__all__ = ["Svc", "Who", "bearer", "json_query", "services_of"]

#: Declares the scheme in the OpenAPI document (and the Authorize button of /docs); the gate checks keys.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An azmem API key (`azmem keys create NAME --user ID`), as 'Authorization: Bearer azm_...'.",
)


# Both dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in its thread pool, two thread round trips per request for a dictionary lookup.


async def _services(request: Request) -> Services:
    return services_of(request)


def services_of(request: Request) -> Services:
    return cast(Services, request.app.state.services)


async def _principal(request: Request) -> Principal:
    found = principal_of(request.scope)
    if found is None:  # the gate admits every non-public path; this guards a route added as public by mistake
        raise AuthRequiredError("This route needs an API key.")
    return found


Svc = Annotated[Services, Depends(_services)]
Who = Annotated[Principal, Depends(_principal)]


def json_query(value: str | None, what: str) -> dict[str, Any] | None:
    """A JSON object passed in a query parameter (``filters={"topic": "food"}``)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid JSON: {exc.msg} at position {exc.pos}",
            suggestion=f'URL-encode a JSON object, e.g. {what}={{"topic": "food"}}',
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"{what} must be a JSON object")
    return parsed
