"""The PostgreSQL cache: one cache for every app instance using the database (real server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from azmem.azure.cache import ResponseCache
from azmem.azure.cache_factory import open_cache
from azmem.azure.pg_cache import PostgresCache
from azmem.azure.settings import AzmemSettings
from azmem.errors import ConfigurationError, StoreUnavailableError


def test_two_instances_share_entries(pg_url: str) -> None:
    a, b = PostgresCache(pg_url), PostgresCache(pg_url)
    key = a.key("chat", "gpt-4o", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert key == ResponseCache.key(
        "chat", "gpt-4o", {"max_tokens": 5, "messages": [{"content": "hi", "role": "user"}]}
    )
    assert b.get(key) is None
    a.set(key, {"text": "hello", "n": [1, 2]}, namespace="chat")
    assert b.get(key) == {"text": "hello", "n": [1, 2]}
    b.set(key, {"text": "again"}, namespace="chat")
    assert a.get(key) == {"text": "again"}
    assert len(a) == 1
    a.clear("other")
    assert len(b) == 1
    b.delete(key)
    assert a.get(key) is None
    a.close()
    b.close()


def test_entries_expire(pg_url: str) -> None:
    cache = PostgresCache(pg_url, ttl_seconds=0.3)
    cache.set("k", 1)
    cache.set("forever", 2, ttl_seconds=3600)
    assert cache.get("k") == 1
    time.sleep(0.5)
    assert cache.get("k") is None
    assert cache.purge_expired() == 1
    assert cache.get("forever") == 2
    cache.close()


def test_open_cache_follows_the_settings(pg_url: str, tmp_path: Path) -> None:
    shared = open_cache(
        AzmemSettings.load({"store": {"url": pg_url}, "cache": {"enabled": True, "url": "store"}})
    )
    assert isinstance(shared, PostgresCache)
    assert "password" not in repr(shared).lower()
    assert pg_url.split("@")[0].split(":")[-1] not in repr(shared)  # no password in repr
    shared.close()
    local = open_cache(AzmemSettings.load({"cache": {"enabled": True, "path": str(tmp_path / "c.db")}}))
    assert isinstance(local, ResponseCache)
    local.close()
    assert open_cache(AzmemSettings.load({})) is None
    with pytest.raises(ConfigurationError, match="PostgreSQL store"):
        open_cache(AzmemSettings.load({"cache": {"enabled": True, "url": "store"}}))


def test_a_lost_database_is_a_typed_error(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    cache = PostgresCache(pg_url)
    cache.set("k", "v")
    pg_server.kill()
    try:
        with pytest.raises(StoreUnavailableError, match="cache's database"):
            cache.get("k")
    finally:
        pg_server.restart()
    assert cache.get("k") == "v"
    cache.close()
