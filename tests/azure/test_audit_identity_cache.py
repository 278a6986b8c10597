"""Audit of issue 2 §§3, 4 and 9 against peers.md: a user-assigned managed identity end to end,
async that is really async (mem0 ran sync code in threads), cache keys that follow the
parameters the peers forgot, and no secret in the bytes of the cache files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from llm_helpers import FAST_RETRY, Factory, chat_requests, factories, settings

from azmem.azure import auth
from azmem.azure.cache import ResponseCache
from azmem.azure.embedder import AzureEmbedder
from azmem.azure.llm import AsyncLLMClient, LLMClient
from azmem.azure.settings import AzmemSettings
from azmem.emulator import Emulator
from azmem.errors import AuthenticationError


@pytest.fixture(params=["sync", "async"])
def make_llm(request: pytest.FixtureRequest, emulator: Any) -> Iterator[Factory]:
    yield from factories(request, emulator)


@pytest.fixture(autouse=True)
def _forget_entra_notices() -> Iterator[None]:
    """The "using Entra ID" notice is logged once per process and endpoint; the session emulator's
    endpoint is shared with other modules' tests that expect to see it."""
    before = set(auth._logged)
    yield
    with auth._logged_lock:
        auth._logged.intersection_update(before)


# --------------------------------------------------------------------------- managed identity


class _IdentityEndpoint:
    """The App Service / Container Apps managed identity endpoint (IDENTITY_ENDPOINT), on loopback."""

    def __init__(self, issue: Callable[[], str]) -> None:
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.queries.append(parse_qs(urlsplit(self.path).query))
                body = json.dumps(
                    {
                        "access_token": issue(),
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": outer.queries[-1].get("resource", [""])[0],
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_user_assigned_managed_identity_end_to_end(
    make_llm: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mem0 had no way to choose a user-assigned identity or a scope; Graphiti never called its helper."""
    emu = make_llm.emu
    identity = _IdentityEndpoint(lambda: emu.issue_token(3600))
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "gpt-4o")
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "a-shared-key-that-must-not-be-used")
        monkeypatch.setenv("AZURE_OPENAI_USE_MANAGED_IDENTITY", "true")
        loaded = AzmemSettings.load(
            chat={"managed_identity_client_id": "client-id-1", "token_scope": "https://ai.azure.com/.default"}
        )
        assert loaded.chat is not None
        llm = make_llm(chat=loaded.chat)
        assert llm.generate("hi").text
        assert llm.generate("again").text
    finally:
        identity.close()
    assert identity.queries, "the managed identity endpoint was asked for a token"
    query = identity.queries[0]
    assert query["client_id"] == ["client-id-1"]
    assert query["resource"] == ["https://ai.azure.com"]
    sent = chat_requests(emu)
    assert [r.status for r in sent] == [200, 200]
    assert all(r.headers["authorization"].startswith("Bearer emu-") for r in sent)
    assert all("api-key" not in r.headers for r in sent)
    assert len(identity.queries) == 1, "the token is cached, not fetched per request"


# --------------------------------------------------------------------------- async is async


class _NoThreads(concurrent.futures.ThreadPoolExecutor):
    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        raise AssertionError(f"async code ran {fn!r} in a thread")


def test_async_client_runs_concurrently_on_the_loop_without_threads(emulator: Emulator) -> None:
    emulator.deployment("gpt-4o").latency = 0.3

    async def main() -> float:
        async with AsyncLLMClient(chat=settings(emulator), retry=FAST_RETRY) as llm:
            await llm.generate("warm-up")  # the SDK looks up its platform headers once, in a thread
            asyncio.get_running_loop().set_default_executor(_NoThreads(max_workers=1))
            start = time.monotonic()
            results = await asyncio.gather(*(llm.generate(f"q{i}") for i in range(8)))
            assert all(r.text for r in results)
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert elapsed < 8 * 0.3 / 2, f"8 calls of 0.3 s took {elapsed:.2f} s: not concurrent"


# --------------------------------------------------------------------------- cache keys


def test_reasoning_parameters_split_the_cache(make_llm: Factory, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    llm = make_llm("o3-mini", cache=cache, cache_sampled=True)  # reasoning models always sample
    variants: list[dict[str, Any]] = [
        {},
        {"reasoning_effort": "low"},
        {"reasoning_effort": "high"},
        {"max_tokens": 2000},
        {"max_tokens": 2000, "reasoning_effort": "low"},
    ]
    for i, variant in enumerate(variants):
        assert not llm.generate("hello", **variant).cached
        assert len(chat_requests(make_llm.emu)) == i + 1, f"{variant} was served another variant's answer"
    for variant in variants:
        assert llm.generate("hello", **variant).cached
    assert len(chat_requests(make_llm.emu)) == len(variants)
    cache.close()


def test_embedding_cache_key_follows_deployment_and_dimensions(emulator: Emulator, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")

    def embed(deployment: str, dimensions: int | None) -> tuple[int, ...]:
        cfg = settings(emulator, deployment, dimensions=dimensions)
        with AzureEmbedder(cfg, cache=cache, retry=FAST_RETRY) as embedder:
            return tuple(embedder.embed(["same text"]).shape)

    shapes = [
        embed("text-embedding-3-small", 256),
        embed("text-embedding-3-small", 512),
        embed("text-embedding-3-small", None),
        embed("text-embedding-3-large", 256),
    ]
    assert shapes == [(1, 256), (1, 512), (1, 1536), (1, 256)]
    assert len([r for r in emulator.requests if r.path.endswith("/embeddings")]) == 4
    assert embed("text-embedding-3-small", 512) == (1, 512)
    assert len([r for r in emulator.requests if r.path.endswith("/embeddings")]) == 4, "a repeat is a hit"
    cache.close()


# --------------------------------------------------------------------------- secrets in the cache files


def test_no_key_or_token_in_the_bytes_of_the_cache_files(tmp_path: Path) -> None:
    key = "azmem-AUDIT-cache-key-0f1e2d3c4b5a"
    cache_path = tmp_path / "cache.db"
    with Emulator(api_keys=(key,)) as emu:
        token = emu.issue_token(3600)
        cache = ResponseCache(cache_path)
        with LLMClient(
            chat=settings(emu, api_key=key), cache=cache, retry=FAST_RETRY, cache_sampled=True
        ) as llm:
            llm.generate("hello")
            llm.generate("hello", json=True)
        entra = settings(emu, api_key=None, credential=lambda: token)
        with LLMClient(chat=entra, cache=cache, retry=FAST_RETRY, cache_sampled=True) as llm:
            llm.generate("via entra")
        with AzureEmbedder(settings(emu, "text-embedding-3-small", api_key=key), cache=cache) as embedder:
            embedder.embed(["a", "b"])
        assert len(cache) == 5
        # Before close: the WAL holds the writes; after close: the main file does.
        files = [p for p in tmp_path.iterdir() if p.name.startswith("cache.db")]
        blobs = [p.read_bytes() for p in files]
        cache.close()
        blobs += [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cache.db")]
    joined = b"".join(blobs)
    assert b"emulated reply" in joined, "the check reads the cached answers"
    for secret in (key, token):
        assert secret.encode() not in joined


# --------------------------------------------------------------------------- placeholder keys

PLACEHOLDERS = [
    "$AZURE_OPENAI_API_KEY",  # docker compose / .env left unexpanded
    "%AZURE_OPENAI_API_KEY%",  # Windows
    "AZURE_OPENAI_API_KEY",  # the variable's name pasted as its value
    "api-key",
    "replace-with-your-key",
    "sk-xxxxxxxx",
    "<your-api-key>",
    "  ",
]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_a_placeholder_key_means_entra_id_through_default_azure_credential(
    make_llm: Factory, monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    """No credential passed and a placeholder key: DefaultAzureCredential's token is what is sent."""
    emu = make_llm.emu
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")  # no developer logins
    identity = _IdentityEndpoint(lambda: emu.issue_token(3600))
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", placeholder)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "gpt-4o")
        loaded = AzmemSettings.load()
        assert loaded.chat is not None
        assert make_llm(chat=loaded.chat).generate("hi").text
    finally:
        identity.close()
    (sent,) = chat_requests(emu)
    assert sent.headers["authorization"].startswith("Bearer emu-")
    assert "api-key" not in sent.headers
    assert identity.queries[0]["resource"] == ["https://cognitiveservices.azure.com"]


class _FailingIdentityEndpoint(_IdentityEndpoint):
    """An identity endpoint that refuses (no identity assigned to this app)."""

    def __init__(self) -> None:
        super().__init__(lambda: "")
        outer = self

        class Refuse(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.queries.append(parse_qs(urlsplit(self.path).query))
                body = b'{"statusCode": 400, "message": "No managed identity found for this client id"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server.RequestHandlerClass = Refuse


@pytest.mark.parametrize("api_key", [None, "$AZURE_OPENAI_API_KEY"], ids=["no-key", "placeholder"])
def test_an_entra_failure_says_why_entra_id_was_used(
    make_llm: Factory, monkeypatch: pytest.MonkeyPatch, api_key: str | None
) -> None:
    """The user who set a placeholder key must learn that, not only that `az login` failed."""
    emu = make_llm.emu
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    identity = _FailingIdentityEndpoint()
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
        llm = make_llm(chat=settings(emu, api_key=api_key))
        with pytest.raises(AuthenticationError) as info:
            llm.generate("hi")
    finally:
        identity.close()
    assert identity.queries, "DefaultAzureCredential asked the managed identity endpoint"
    err = info.value
    suggestion = err.suggestion or ""
    reason = "looks like a placeholder" if api_key else "no API key is set"
    assert reason in suggestion
    assert "AZURE_OPENAI_API_KEY" in suggestion
    assert "az login" in suggestion
    assert err.debug_info["deployment"] == "gpt-4o"
    assert err.debug_info["endpoint"] == emu.endpoint
    assert chat_requests(emu) == [], "nothing is sent without a token"
