"""ResponseCache: keys over the whole request, TTL, and safety across threads and processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from azmem.azure import cache as cache_module
from azmem.azure.cache import ResponseCache, canonical_json


class Person(BaseModel):
    name: str


class PersonV2(BaseModel):
    name: str
    age: int


BASE: dict[str, Any] = {
    "messages": [{"role": "system", "content": "Extract."}, {"role": "user", "content": "Ann is 41."}],
    "max_tokens": 256,
    "temperature": 0.2,
    "top_p": 1.0,
    "model_size": "medium",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": {"type": "object"}},
    },
    "tools": [{"type": "function", "function": {"name": "lookup"}}],
    "reasoning_effort": None,
    "seed": 7,
}

VARIANTS: dict[str, dict[str, Any]] = {
    "message text": {
        "messages": [{"role": "system", "content": "Extract."}, {"role": "user", "content": "Ann is 42."}]
    },
    "message role": {
        "messages": [{"role": "user", "content": "Extract."}, {"role": "user", "content": "Ann is 41."}]
    },
    "message order": {"messages": list(reversed(BASE["messages"]))},
    "extra message": {"messages": [*BASE["messages"], {"role": "assistant", "content": "ok"}]},
    "max_tokens": {"max_tokens": 257},
    "temperature": {"temperature": 0.3},
    "top_p": {"top_p": 0.9},
    "model_size": {"model_size": "small"},
    "schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Person", "schema": {"type": "array"}},
        }
    },
    "response_format type": {"response_format": {"type": "json_object"}},
    "tools": {"tools": []},
    "reasoning_effort": {"reasoning_effort": "low"},
    "seed": {"seed": 8},
    "new parameter": {"stop": ["\n"]},
    "int vs float": {"max_tokens": 256.0},
}


def test_key_is_stable_and_order_independent() -> None:
    a = ResponseCache.key("chat", "gpt-4o", BASE)
    b = ResponseCache.key("chat", "gpt-4o", dict(reversed(list(BASE.items()))))
    assert a == b
    assert len(a) == 64
    assert int(a, 16) >= 0


@pytest.mark.parametrize("change", list(VARIANTS), ids=list(VARIANTS))
def test_key_differs_for_every_parameter(change: str) -> None:
    """Graphiti's key ignored max_tokens, temperature and model size; ours covers everything."""
    changed = {**BASE, **VARIANTS[change]}
    assert ResponseCache.key("chat", "gpt-4o", changed) != ResponseCache.key("chat", "gpt-4o", BASE)


def test_key_differs_by_namespace_and_deployment() -> None:
    base = ResponseCache.key("chat", "gpt-4o", BASE)
    assert ResponseCache.key("embeddings", "gpt-4o", BASE) != base
    assert ResponseCache.key("chat", "gpt-4o-mini", BASE) != base


def test_pydantic_models_hash_by_schema() -> None:
    assert ResponseCache.key("chat", "d", {"model": Person}) != ResponseCache.key(
        "chat", "d", {"model": PersonV2}
    )
    assert ResponseCache.key("chat", "d", {"img": b"\x00\x01"}) != ResponseCache.key(
        "chat", "d", {"img": b"\x00\x02"}
    )
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def test_round_trip_and_json_values(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.db") as cache:
        key = ResponseCache.key("chat", "d", BASE)
        assert cache.get(key) is None
        value = {"text": "hi", "data": {"a": [1, 2.5, None, True]}, "usage": {"input_tokens": 3}}
        cache.set(key, value)
        assert cache.get(key) == value
        cache.set(key, {"text": "replaced"})
        assert cache.get(key) == {"text": "replaced"}
        assert len(cache) == 1
        cache.delete(key)
        assert cache.get(key) is None


def test_ttl_expiry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(cache_module.time, "time", lambda: now[0])
    with ResponseCache(tmp_path / "c.db", ttl_seconds=60) as cache:
        cache.set("k", 1)
        cache.set("forever", 2, ttl_seconds=10_000)
        now[0] += 59
        assert cache.get("k") == 1
        now[0] += 2
        assert cache.get("k") is None
        assert cache.get("forever") == 2
        assert cache.purge_expired() == 1
        assert len(cache) == 1


def test_no_ttl_means_no_expiry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ResponseCache(tmp_path / "c.db") as cache:
        cache.set("k", "v")
        monkeypatch.setattr(cache_module.time, "time", lambda: 10**12)
        assert cache.get("k") == "v"


def test_embedding_namespace_and_clear(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.db") as cache:
        ek = ResponseCache.key("embeddings", "emb", {"input": "hello", "dimensions": 256})
        ck = ResponseCache.key("chat", "gpt-4o", BASE)
        cache.set(ek, [0.1, 0.2], namespace="embeddings")
        cache.set(ck, {"text": "x"}, namespace="chat")
        cache.clear("embeddings")
        assert cache.get(ek) is None
        assert cache.get(ck) == {"text": "x"}


def test_wal_mode(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.db") as cache:
        mode = cache._connect().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"{n}-{i}", {"n": n, "i": i})
                assert cache.get(f"{n}-{i}") == {"n": n, "i": i}
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) == 400
    cache.close()


def test_processes_share_one_cache(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        f"""
        from azmem.azure.cache import ResponseCache
        c = ResponseCache({str(path)!r})
        for i in range(200):
            c.set(f"child-{{i}}", i)
        c.close()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    with ResponseCache(path) as cache:
        for i in range(200):
            cache.set(f"parent-{i}", i)
        assert child.wait(timeout=60) == 0
        assert cache.get("child-199") == 199
        assert cache.get("parent-0") == 0
        assert len(cache) == 400


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    import os

    cache = ResponseCache(tmp_path / "fork.db")
    cache.set("parent", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork in a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            cache.set("child", 2)
            os._exit(0 if cache.get("parent") == 1 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("child") == 2
    cache.close()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_cache_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "cache.db"
        cache = ResponseCache(path)
        cache.set("k", {"answer": "private"})
        files = [p for p in path.parent.iterdir() if p.name.startswith("cache.db")]
        assert {p.name for p in files} >= {"cache.db", "cache.db-wal"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        cache.close()
    finally:
        os.umask(old)
