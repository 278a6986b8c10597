"""`azmem serve` as a process: httpx2 over a loopback socket, the bind rule, logs, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx2

from azmem.stores import Scope, SQLiteStore

from .conftest import AZMEM, ServeProcess


def _key(store: Path, **binding: Any) -> str:
    with SQLiteStore(store) as s:
        return s.keys.create(f"k{len(s.keys.list())}", **binding).secret


def test_serve_answers_over_loopback_with_keys_and_logs_without_secrets(
    tmp_path: Path, serve_factory: Any
) -> None:
    store = tmp_path / "memory.db"
    secret = _key(store, user_ids=["alice"])
    server: ServeProcess = serve_factory(store=store)
    h = {"Authorization": f"Bearer {secret}", "X-Request-ID": "req-123"}
    with httpx2.Client(base_url=server.url, timeout=10) as c:
        r = c.post(
            "/v1/memories",
            json={"text": "my passport number is in the blue drawer", "infer": False},
            headers=h,
        )
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "req-123"
        r = c.get("/v1/memories", params={"filters": '{"role": "user"}'}, headers=h)
        assert [m["user_id"] for m in r.json()["results"]] == ["alice"]
        assert c.get("/v1/memories").status_code == 401
        assert c.get("/openapi.json").json()["info"]["title"] == "azmem"
    log = server.stderr()
    access = [line for line in log.splitlines() if "azmem.server.access" in line]
    assert any("[req-123] POST /v1/memories 200" in line and "key=k0" in line for line in access), log
    assert any(" 401 " in line and "key=-" in line for line in access)
    assert "passport" not in log
    assert secret not in log
    assert "filters" not in log


def test_serve_refuses_a_public_bind_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [AZMEM, "serve", "--host", "0.0.0.0", "--no-auth", "--store", str(tmp_path / "m.db")],
        capture_output=True,
        timeout=60,
        env={**os.environ, "AZMEM_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 3
    err = result.stderr.decode()
    assert "Refusing to serve on 0.0.0.0 without API keys" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.db").exists()  # refused before anything was opened


def test_no_auth_on_loopback_serves_the_configured_user(tmp_path: Path, serve_factory: Any) -> None:
    server: ServeProcess = serve_factory("--no-auth", "--user", "alex")
    with httpx2.Client(base_url=server.url, timeout=10) as c:
        assert c.post("/v1/memories", json={"text": "alex likes jazz", "infer": False}).status_code == 200
        assert c.get("/v1/memories", params={"user_id": "bob"}).status_code == 403
    assert "No API keys" in server.stderr()


async def test_sigterm_mid_burst_keeps_every_acknowledged_add(tmp_path: Path, serve_factory: Any) -> None:
    """A burst of adds, SIGTERM in the middle: every 2xx is in the store; the rest failed or got no answer."""
    store = tmp_path / "memory.db"
    secret = _key(store, user_ids=["burst"])
    server: ServeProcess = serve_factory(store=store)
    acknowledged: list[str] = []
    failed = 0
    done = asyncio.Event()

    async def one(client: httpx2.AsyncClient, i: int) -> None:
        nonlocal failed
        try:
            r = await client.post("/v1/memories", json={"text": f"burst fact number {i}", "infer": False})
        except httpx2.HTTPError:
            failed += 1
            return
        if r.status_code == 200:
            acknowledged.append(r.json()["results"][0]["id"])
            if len(acknowledged) == 20:
                done.set()
        else:
            failed += 1

    limits = httpx2.Limits(max_connections=16)
    async with httpx2.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=20, limits=limits
    ) as client:
        tasks = [asyncio.create_task(one(client, i)) for i in range(200)]
        await asyncio.wait_for(done.wait(), timeout=60)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*tasks)
    # uvicorn shuts down gracefully, then re-raises the signal so a supervisor sees why it stopped.
    assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert len(acknowledged) + failed == 200
    assert 20 <= len(acknowledged) < 200, "SIGTERM came after the burst: nothing was in flight"
    with SQLiteStore(store) as s:
        missing = [mid for mid in acknowledged if s.get(mid, Scope(user_id="burst")) is None]
        assert missing == []
        assert s.count(Scope(user_id="burst")) >= len(acknowledged)
        assert s.check() == []
    assert "store closed" in server.stderr()


def test_embedding_flags_set_up_the_batching_over_the_environment(tmp_path: Path, serve_factory: Any) -> None:
    env = {"AZMEM_EMBEDDING_BATCH": "32", "AZMEM_EMBEDDING_WORKERS": "3"}  # the flags win over these
    server: ServeProcess = serve_factory(
        "--no-auth",
        "--embedding-batch",
        "8",
        "--embedding-batch-wait-ms",
        "0",
        "--embedding-workers",
        "2",
        "--embedding-threads",
        "1",
        env=env,
    )
    with httpx2.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/v1/memories", json={"text": "alex likes jazz", "user_id": "alex", "infer": False})
        assert r.status_code == 200
        batching = c.get("/v1/status").json()["embedding_batching"]
    assert (batching["max_batch"], batching["max_wait_ms"], batching["workers"]) == (8, 0, 2)
    assert batching["texts"] == 1
    assert "batches of <= 8 texts, wait 0 ms, 2 worker(s), onnxruntime threads 1" in server.stderr()


def test_embedding_flags_turn_batching_off_and_refuse_bad_values(tmp_path: Path, serve_factory: Any) -> None:
    bad = subprocess.run(
        [AZMEM, "serve", "--no-auth", "--embedding-workers", "0", "--store", str(tmp_path / "m.db")],
        capture_output=True,
        timeout=60,
        env={**os.environ, "AZMEM_HOME": str(tmp_path / "home")},
    )
    assert bad.returncode == 2
    assert "--embedding-workers" in bad.stderr.decode()
    assert not (tmp_path / "m.db").exists()
    server: ServeProcess = serve_factory("--no-auth", "--embedding-batch", "0")
    with httpx2.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/v1/memories", json={"text": "alex likes tea", "user_id": "alex", "infer": False})
        assert r.status_code == 200
        assert c.get("/v1/status").json()["embedding_batching"] is None
    assert "batching off" in server.stderr()
