"""One model call in flight, and the ways it ends before a reply is generated.

The pipeline in `app.py` checks a call step by step; any step may end it early with an error answer,
a fault acted out (an error, a malformed body, a timeout, a dropped connection) or a content-filter
reply. Keeping the call object and its early endings here lets the pipeline read as the order of
Azure's checks, and lets scripted faults and injected faults share one way of being acted out.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response

from . import chat, protocol
from .config import Deployment, Fault
from .state import EmulatorState, RecordedRequest, retry_seconds

__all__ = ["TRANSPORT_KEY", "Call", "Dropped", "Operation", "Reply", "apply_fault", "json_response"]

Operation = Literal["chat", "embeddings", "responses"]

TRANSPORT_KEY = "azmem.emulator.transport"
_SLEEP_STEP = 0.02


class Reply(Exception):
    """Ends the pipeline with a finished response (an error, or a fault's answer)."""

    def __init__(self, response: Response | None) -> None:
        super().__init__("reply")
        self.response = response


class Dropped(Exception):
    """The connection was closed on purpose; nothing is to be sent."""


def json_response(status: int, body: Any, headers: dict[str, str]) -> Response:
    return Response(
        content=json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class Call:
    """One model call moving through the pipeline; collects the headers every answer carries."""

    def __init__(self, state: EmulatorState, request: Request, operation: Operation, dated: bool) -> None:
        self.state = state
        self.request = request
        self.operation = operation
        self.dated = dated
        self.request_id = protocol.new_request_id()
        self.api_version: str | None = request.query_params.get("api-version")
        self.deployment: Deployment | None = None
        self.headers: dict[str, str] = protocol.trace_headers(
            self.request_id, state.region, request.headers.get("x-ms-client-request-id")
        )
        self.body: dict[str, Any] = {}
        self.record: RecordedRequest | None = None
        self.stream_fault: str | None = None

    def error(self, status: int, body: protocol.ErrorBody, extra: dict[str, str] | None = None) -> Reply:
        headers = dict(self.headers)
        headers.update(extra or {})
        return Reply(json_response(status, body, headers))

    async def sleep(self, seconds: float) -> None:
        """Sleep in small steps so a stopping server or a departed client ends the wait early."""
        deadline = time.monotonic() + seconds
        transport = self.request.scope.get(TRANSPORT_KEY)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.state.stopping.is_set():
                return
            if transport is not None and transport.is_closing():
                raise Dropped()
            await asyncio.sleep(min(left, _SLEEP_STEP))

    def drop(self) -> Dropped:
        transport = self.request.scope.get(TRANSPORT_KEY)
        if transport is None:
            raise RuntimeError("cannot drop the connection: the server did not expose its transport")
        if self.record is not None:
            self.record.status = 0  # before the abort: the client may look at the log as soon as it fails
        transport.abort()
        return Dropped()


async def apply_fault(call: Call, fault: Fault) -> chat.ChatReply | None:
    """Act out a fault: raise the answer it produces, or return an output-filter reply to send."""
    if fault.latency and fault.kind not in ("timeout",):
        await call.sleep(fault.latency)
    if fault.kind == "latency":
        return None
    if fault.kind in ("stream_error", "stream_drop"):
        if call.body.get("stream"):
            call.stream_fault = fault.kind
            return None
        if fault.kind == "stream_drop":
            raise call.drop()
        raise call.error(500, protocol.server_error(500))
    if fault.kind == "timeout":
        await call.sleep(fault.latency)
        raise call.error(408, protocol.server_error(408))
    if fault.kind == "drop":
        raise call.drop()
    if fault.kind == "malformed":
        text = '{"id": "chatcmpl-emulated", "object": "chat.completion", "choices": [{"index": 0, "mess'
        raise Reply(
            Response(content=text, status_code=200, media_type="application/json", headers=call.headers)
        )
    if fault.kind == "prompt_filter":
        raise call.error(400, protocol.prompt_filtered(fault.categories, jailbreak=fault.jailbreak))
    if fault.kind == "output_filter":
        return chat.ChatReply(content=None, finish_reason="content_filter", filtered=dict(fault.categories))
    status = fault.status or 500
    extra = dict(fault.headers)
    if status == 429:
        extra.update(protocol.retry_headers(fault.retry_after, fault.retry_after_ms))
    if fault.body is not None:
        body = fault.body
    elif status == 429 and fault.message is None:
        wait = retry_seconds(fault.retry_after or ((fault.retry_after_ms or 1000) / 1000))
        body = protocol.rate_limited(call.operation, call.api_version, wait, limit=fault.limit)
    elif fault.code is not None or fault.message is not None:
        body = protocol.error(fault.code or str(status), fault.message or f"Emulated error {status}.")
    else:
        body = protocol.server_error(status)
    raise call.error(status, body, extra)
