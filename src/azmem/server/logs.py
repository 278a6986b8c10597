"""Request ids in every log line, and the server's logging set-up (always on stderr).

The request id lives in a context variable set by the gate for the duration of a
request; a filter on the handler copies it onto every record, whichever logger made
it (uvicorn's, the SDK's, azmem's). Records made outside a request carry ``-``.

Logs go to stderr in both faces: for ``azmem mcp`` stdout is the JSON-RPC channel and
one stray line there breaks the host's session.
"""

from __future__ import annotations

import logging
import random
import re
import sys
from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "RequestIdFilter", "configure_logging", "new_request_id", "request_id_var"]

REQUEST_ID_HEADER = "x-request-id"
request_id_var: ContextVar[str | None] = ContextVar("azmem_request_id", default=None)

#: A caller's own request id is kept when it is short and plain (it ends up in logs and headers).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


#: Request ids need to be unique, not unguessable (they are echoed to the caller and logged):
#: a PRNG seeded once from the OS, so a request costs no ``getrandom`` system call (uuid4's).
_ids = random.Random()


def new_request_id(offered: str | None = None) -> str:
    """The caller's X-Request-ID when it is safe to log, else a fresh random one (32 hex digits)."""
    if offered and _SAFE_ID.match(offered):
        return offered
    return f"{_ids.getrandbits(128):032x}"


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


def configure_logging(level: str = "INFO") -> logging.Handler:
    """One stderr handler on the root logger with the request id in the format; uvicorn's loggers join it.

    Replaces the handlers a library may have installed on the root logger (the MCP SDK
    calls ``logging.basicConfig`` when a server is built), so each line is written once.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return handler
