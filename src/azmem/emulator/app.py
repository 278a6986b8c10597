"""The HTTP face of the emulator: Azure OpenAI's routes, answered in the order the service checks.

Order of checks for a model call: api-version (dated routes) -> auth -> deployment -> operation fits
the deployment's model -> outage -> injected fault -> request validation -> quota -> latency ->
scripted or generated reply. Every answer carries Azure's tracing and rate-limit headers. The call
object and the ways a call ends early (error answers, faults acted out, dropped connections) are in
`call.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from . import chat, embeddings, identity, protocol, responses
from .call import TRANSPORT_KEY, Call, Dropped, Operation, Reply, apply_fault, json_response
from .config import Deployment, Fault
from .state import EmulatorState, RecordedRequest, retry_seconds

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("azmem.emulator")


def _check_auth(state: EmulatorState, request: Request) -> protocol.ErrorBody | None:
    """None when authorised, else the 401 body Azure would give for what was sent."""
    if not state.auth_required:
        return None
    key = request.headers.get("api-key")
    if key is not None:
        return None if key in state.api_keys else protocol.unauthorized(protocol.MSG_BAD_KEY)
    authorization = request.headers.get("authorization")
    if authorization is None:
        return protocol.unauthorized(protocol.MSG_MISSING_KEY)
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer":
        return protocol.token_rejected()
    if credential in state.api_keys:
        return None
    status = state.token_status(credential)
    if status == "valid":
        return None
    return protocol.permission_denied() if status == "forbidden" else protocol.token_rejected()


async def _pipeline(call: Call, dep_name: str | None) -> Response:
    state = call.state
    request = call.request
    raw = await request.body()
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
        raw_invalid = True
    else:
        raw_invalid = False
    if dep_name is None and isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
        dep_name = parsed["model"]
    call.record = RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        json=parsed,
        deployment=dep_name,
    )
    state.record(call.record)

    if call.dated and (call.api_version is None or chat.api_version_date(call.api_version) is None):
        raise call.error(404, protocol.resource_not_found())
    auth_problem = _check_auth(state, request)
    if auth_problem is not None:
        raise call.error(401, auth_problem)
    if raw_invalid or not isinstance(parsed, dict):
        raise call.error(
            400,
            protocol.invalid_request(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                "was not valid JSON.)"
            ),
        )
    call.body = parsed
    if dep_name is None:
        raise call.error(400, protocol.invalid_request("you must provide a model parameter", param="model"))
    dep = state.get_deployment(dep_name)
    if dep is None:
        raise call.error(404, protocol.deployment_not_found())
    call.deployment = dep
    call.headers["x-ms-region"] = dep.region
    kind = "embeddings" if call.operation == "embeddings" else "chat"
    if dep.kind != kind or (call.operation == "responses" and not dep.responses_api):
        op = {"chat": "chatCompletion", "embeddings": "embeddings", "responses": "responses"}[call.operation]
        raise call.error(
            400,
            protocol.error(
                "OperationNotSupported",
                f"The {op} operation does not work with the specified model, {dep.model}. Please choose "
                "different model and try again. You can learn more about which models can be used with each "
                "operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
            ),
        )
    outage = state.outage(dep.name)
    if outage == "drop":
        raise call.drop()
    if outage is not None:
        raise call.error(503, protocol.server_error(503))

    filtered: chat.ChatReply | None = None
    fault = state.take_fault(dep.name)
    if fault is not None:
        filtered = await apply_fault(call, fault)

    if call.operation == "chat":
        return await _chat(call, dep, filtered)
    if call.operation == "responses":
        return await _responses(call, dep, filtered)
    return await _embeddings(call, dep)


async def _admit(call: Call, dep: Deployment, tokens: int) -> None:
    decision = call.state.admit(dep, tokens)
    call.headers.update(decision.headers)
    if not decision.allowed:
        seconds = retry_seconds(decision.retry_after)
        extra = protocol.retry_headers(seconds, max(decision.retry_after, 0.001) * 1000)
        raise call.error(
            429,
            protocol.rate_limited(call.operation, call.api_version, seconds, limit=decision.limit or "token"),
            extra,
        )
    latency = dep.latency
    if isinstance(latency, tuple):
        latency = random.uniform(latency[0], latency[1])
    if latency > 0:
        await call.sleep(latency)


async def _scripted(call: Call, dep: Deployment) -> tuple[bool, Any]:
    found, reply = call.state.next_reply(dep.name)
    if found and callable(reply) and not isinstance(reply, Fault):
        reply = reply(call.body)
        if asyncio.iscoroutine(reply):
            reply = await reply
    if found and isinstance(reply, Fault):
        out = await apply_fault(call, reply)
        return out is not None, out
    return found, reply


async def _reply(
    call: Call, dep: Deployment, filtered: chat.ChatReply | None, view: dict[str, Any]
) -> chat.ChatReply | Response:
    """The chat reply (filtered, scripted or generated) within the deployment's limits, or a
    scripted raw body already sent back as it is."""
    if filtered is not None:
        reply: chat.ChatReply | dict[str, Any] = filtered
    else:
        found, scripted = await _scripted(call, dep)
        reply = chat.coerce_reply(scripted, view) if found else chat.default_reply(view, dep)
    if isinstance(reply, dict):
        return json_response(200, reply, call.headers)
    return chat.apply_limits(reply, view, dep)


async def _chat(call: Call, dep: Deployment, filtered: chat.ChatReply | None) -> Response:
    body = call.body
    try:
        prompt_tokens = chat.validate(body, dep, call.api_version)
    except chat.RequestRejected as exc:
        raise call.error(exc.status, exc.body) from None
    await _admit(call, dep, chat.quota_tokens(body, prompt_tokens))
    reply = await _reply(call, dep, filtered, body)
    if isinstance(reply, Response):
        return reply
    if body.get("stream"):
        return _stream(call, reply, prompt_tokens, dep)
    n = body.get("n") or 1
    replies = [reply] * (n if isinstance(n, int) and n > 0 else 1)
    return json_response(200, chat.completion_body(replies, prompt_tokens, dep, body), call.headers)


_STREAM_FAULT_AFTER = 3  # chunks sent before a mid-stream fault: the filter chunk, role, one delta


def _stream(call: Call, reply: chat.ChatReply, prompt_tokens: int, dep: Deployment) -> Response:
    chunks = map(chat.sse, chat.stream_chunks(reply, prompt_tokens, dep, call.body))
    error = lambda _: chat.sse(protocol.server_error(500))  # noqa: E731
    return _event_stream(call, chunks, _STREAM_FAULT_AFTER, error, done=chat.sse("[DONE]"))


def _event_stream(
    call: Call,
    events: Iterable[str],
    fault_after: int,
    error: Callable[[int], str],
    *,
    done: str | None = None,
) -> Response:
    """``events``, then ``done``; a scripted mid-stream fault cuts them after ``fault_after``:
    ``error(sent)`` as the last event, or the connection dropped."""

    async def sending() -> AsyncIterator[str]:
        for sent, event in enumerate(events):
            if call.stream_fault and sent == fault_after:
                if call.stream_fault == "stream_error":
                    yield error(sent)
                    return
                transport = call.request.scope.get(TRANSPORT_KEY)
                if transport is not None:
                    transport.abort()
                return
            yield event
            await asyncio.sleep(0)
        if done is not None:
            yield done

    headers = dict(call.headers)
    headers["cache-control"] = "no-cache"
    return StreamingResponse(sending(), media_type="text/event-stream; charset=utf-8", headers=headers)


async def _responses(call: Call, dep: Deployment, filtered: chat.ChatReply | None) -> Response:
    """The Responses API: the chat pipeline's reply (scripted, generated, filtered), its own rendering."""
    body = call.body
    try:
        input_tokens = responses.validate(body, dep, call.api_version)
    except chat.RequestRejected as exc:
        raise call.error(exc.status, exc.body) from None
    await _admit(call, dep, responses.quota_tokens(body, input_tokens))
    reply = await _reply(call, dep, filtered, responses.chat_view(body))
    if isinstance(reply, Response):
        return reply
    if body.get("stream"):
        events = map(responses.sse, responses.stream_events(reply, input_tokens, dep, body))
        return _event_stream(
            call, events, _EVENT_FAULT_AFTER, lambda n: responses.sse(responses.error_event(n))
        )
    return json_response(200, responses.response_body(reply, input_tokens, dep, body), call.headers)


_EVENT_FAULT_AFTER = 5  # events before a mid-stream fault: created, in_progress, an item, a part, a delta


async def _embeddings(call: Call, dep: Deployment) -> Response:
    body = call.body
    try:
        items, dimensions = embeddings.parse_inputs(body, dep)
    except chat.RequestRejected as exc:
        raise call.error(exc.status, exc.body) from None
    await _admit(call, dep, embeddings.prompt_tokens(items))
    found, scripted = await _scripted(call, dep)
    encoding = body.get("encoding_format") or "float"
    if found and isinstance(scripted, dict):
        return json_response(200, scripted, call.headers)
    vectors = scripted if found and isinstance(scripted, list) else None
    if vectors is not None and len(vectors) != len(items):
        raise RuntimeError(f"scripted embeddings have {len(vectors)} vectors for {len(items)} inputs")
    result = await asyncio.to_thread(embeddings.response_body, items, dep, dimensions, encoding, vectors)
    return json_response(200, result, call.headers)


def create_app(state: EmulatorState) -> ASGIApp:
    """The ASGI app; the outer wrapper exposes the socket transport so faults can drop a connection."""
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def run(request: Request, operation: Operation, dep: str | None, dated: bool) -> Response:
        call = Call(state, request, operation, dated)
        try:
            response = await _pipeline(call, dep)
        except Reply as reply:
            if reply.response is None:
                raise
            response = reply.response
        except Dropped:
            if call.record is not None:
                call.record.status = 0
            return Response(status_code=599)  # never written: the transport is closed
        except Exception as exc:
            # A bad script entry or an emulator bug: say so in the answer, where the test sees it.
            logger.exception("azmem emulator failed to answer %s %s", request.method, request.url.path)
            response = json_response(
                500,
                protocol.error("EmulatorError", f"azmem emulator could not answer: {exc!r}"),
                call.headers,
            )
        if call.record is not None:
            call.record.status = response.status_code
        return response

    @api.post("/openai/deployments/{deployment}/chat/completions")
    async def dated_chat(deployment: str, request: Request) -> Response:
        return await run(request, "chat", deployment, True)

    @api.post("/openai/deployments/{deployment}/embeddings")
    async def dated_embeddings(deployment: str, request: Request) -> Response:
        return await run(request, "embeddings", deployment, True)

    @api.post("/openai/responses")
    async def dated_responses(request: Request) -> Response:
        return await run(request, "responses", None, True)

    @api.post("/openai/v1/responses")
    async def v1_responses(request: Request) -> Response:
        return await run(request, "responses", None, False)

    @api.post("/openai/v1/chat/completions")
    async def v1_chat(request: Request) -> Response:
        return await run(request, "chat", None, False)

    @api.post("/openai/v1/embeddings")
    async def v1_embeddings(request: Request) -> Response:
        return await run(request, "embeddings", None, False)

    @api.get(identity.TOKEN_PATH)
    async def managed_identity_token(request: Request) -> Response:
        return identity.token_response(state, request)

    @api.get("/openai/v1/models")
    async def v1_models(request: Request) -> Response:
        return _models(state, request, dated=False)

    @api.get("/openai/models")
    async def dated_models(request: Request) -> Response:
        return _models(state, request, dated=True)

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def not_found(path: str, request: Request) -> Response:
        # Recorded like any other request: a wrong base URL is what a test most needs to see.
        raw = await request.body()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        state.record(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=parsed,
                status=404,
            )
        )
        rid = protocol.new_request_id()
        return json_response(404, protocol.resource_not_found(), protocol.trace_headers(rid, state.region))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # uvicorn's `send` is a bound method of its request cycle, which holds the socket transport.
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                scope[TRANSPORT_KEY] = transport
        await api(scope, receive, send)

    return app


def _models(state: EmulatorState, request: Request, *, dated: bool) -> Response:
    rid = protocol.new_request_id()
    headers = protocol.trace_headers(rid, state.region)
    record = RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        json=None,
    )
    state.record(record)
    if dated and chat.api_version_date(request.query_params.get("api-version") or "") is None:
        record.status = 404
        return json_response(404, protocol.resource_not_found(), headers)
    problem = _check_auth(state, request)
    if problem is not None:
        record.status = 401
        return json_response(401, problem, headers)
    record.status = 200
    created = int(time.time())
    data = [
        {
            "id": dep.name,
            "object": "model",
            "created": created,
            "owned_by": "system",
            "model": dep.model,
            "capabilities": {
                "chat_completion": dep.kind == "chat",
                "embeddings": dep.kind == "embeddings",
            },
        }
        for dep in list(state.deployments.values())
    ]
    return json_response(200, {"object": "list", "data": data}, headers)
