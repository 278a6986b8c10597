"""Erasure, the memory engine's part: what `forget` reports, and scrubbing the caches.

The store erases a scope in one transaction (`MemoryStore.forget`) and hands back the erased
texts once; the caches live elsewhere (a SQLite file, a PostgreSQL table), so they are
scrubbed after it: every entry tagged with the scope, and every entry quoting an erased text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from azmem.azure.cache import scope_tags
from azmem.memory.audit import Engine
from azmem.stores.audit import ForgetReport
from azmem.stores.models import Scope

__all__ = ["ForgetResult", "forget_result", "scrub_caches"]


class ForgetResult(BaseModel):
    """What `Memory.forget` erased (counts only: the erased text is gone)."""

    model_config = ConfigDict(frozen=True)

    scope: dict[str, str]
    memories: int
    history: int
    audit_content: int
    """Audit records whose kept content was blanked (only when audit.include_content is on)."""
    cache_entries: int
    """Cached LLM answers and embeddings of the scope, or quoting its text, removed."""
    compacted: bool
    """The store's freed space was rewritten (SQLite: VACUUM) so that no old bytes remain."""


def scrub_caches(memory: Engine, scope: Scope, texts: Sequence[str]) -> int:
    """Remove the scope's cached answers and embeddings (tagged, or quoting an erased text) from
    every cache this Memory may have written: its LLM client's, and the configured one."""
    from azmem.azure.cache import ResponseCache

    tags = scope_tags(scope.as_dict())
    seen: set[str] = set()
    removed = 0
    caches: list[tuple[Any, bool]] = []
    client_cache = getattr(memory._llm, "cache", None) if memory._llm is not None else None
    if client_cache is not None and hasattr(client_cache, "forget"):
        caches.append((client_cache, False))
    settings = memory.settings
    if settings.cache.enabled:
        from azmem.azure.cache_factory import open_cache

        opened = open_cache(settings)
        if opened is not None:
            caches.append((opened, True))
    elif settings.cache_path.is_file():  # written while the cache was on
        caches.append((ResponseCache(settings.cache_path), True))
    for cache, own in caches:
        where = str(getattr(cache, "path", None) or getattr(cache, "url", id(cache)))
        try:
            if where not in seen:
                seen.add(where)
                removed += int(cache.forget(tags, texts))
        finally:
            if own:
                cache.close()
    return removed


def forget_result(report: ForgetReport, cache_entries: int) -> ForgetResult:
    return ForgetResult(
        scope=report.scope,
        memories=report.memories,
        history=report.history,
        audit_content=report.audit_content,
        cache_entries=cache_entries,
        compacted=report.compacted,
    )
