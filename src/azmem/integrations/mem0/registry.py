"""Teach mem0 the provider name ``"azmem"`` for its ``llm`` and ``embedder`` sections.

mem0ai 2.2.1 has a registry for LLM classes (``LlmFactory.register_provider``) and a mutable map
for embedders (``EmbedderFactory.provider_to_class``), but its config models reject any provider
name not in a list written into their validators (``Unsupported LLM provider: ...``). So
:func:`register` does three things, each as narrow as mem0 allows:

1. registers the classes with the factories (the LLM with :class:`AzmemLlmConfig`, which keeps
   the user's dict as written);
2. has the embedder factory hand the ``"azmem"`` config over as written, because mem0's
   ``BaseEmbedderConfig`` drops unknown ``azure_kwargs`` (typos, a token provider) without a word;
3. wraps the two config validators so that ``"azmem"`` is accepted, and checked for unknown keys
   when ``Memory.from_config`` runs; every other provider name goes through mem0's own check.

It is explicit (nothing happens on import) and idempotent.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from mem0.configs.base import MemoryConfig
from mem0.embeddings.configs import EmbedderConfig
from mem0.llms.configs import LlmConfig
from mem0.utils.factory import EmbedderFactory, LlmFactory

from azmem.errors import ConfigurationError

from .config import AzmemLlmConfig, Role, check_config
from .embedder import AzmemEmbedding

__all__ = ["PROVIDER", "register"]

PROVIDER = "azmem"
"""The ``provider`` name that selects azmem in a mem0 config."""

_LLM_CLASS = "azmem.integrations.mem0.llm.AzmemLLM"
_EMBEDDER_CLASS = "azmem.integrations.mem0.embedder.AzmemEmbedding"
_MARK = "__azmem_provider__"
_lock = threading.Lock()


def register() -> None:
    """Make ``{"provider": "azmem", "config": {...}}`` valid for mem0's ``llm`` and ``embedder``.

    Call it once before ``Memory.from_config`` / ``AsyncMemory.from_config``; calling it again
    does nothing.
    """
    with _lock:
        LlmFactory.register_provider(PROVIDER, _LLM_CLASS, AzmemLlmConfig)
        EmbedderFactory.provider_to_class[PROVIDER] = _EMBEDDER_CLASS
        _hand_over_embedder_config()
        changed = _accept_in(LlmConfig, "chat")
        changed = _accept_in(EmbedderConfig, "embedding") or changed
        if changed:
            MemoryConfig.model_rebuild(force=True)  # it embeds the two models' validators


def _hand_over_embedder_config() -> None:
    original: Callable[..., Any] = EmbedderFactory.create
    if getattr(original, _MARK, False):
        return

    def create(cls: type[Any], provider_name: str, config: Any, vector_config: Any) -> Any:
        if provider_name == PROVIDER:
            return AzmemEmbedding(config)
        return original(provider_name, config, vector_config)

    setattr(create, _MARK, True)
    EmbedderFactory.create = classmethod(create)


def _accept_in(model: type[Any], role: Role) -> bool:
    """Wrap ``model``'s validator of ``config``; True if it was changed now."""
    validators = model.__pydantic_decorators__.field_validators
    found = [(name, d) for name, d in validators.items() if "config" in d.info.fields]
    if len(found) != 1:
        raise ConfigurationError(
            f"mem0's {model.__name__} no longer validates 'config' the way azmem expects.",
            error_code="unsupported_mem0_version",
            suggestion="Install the mem0ai version azmem's [mem0] extra pins.",
        )
    name, decorator = found[0]
    original = decorator.func
    if getattr(original, _MARK, False):
        return False

    def validate(value: Any, info: Any) -> Any:
        if info.data.get("provider") == PROVIDER:
            check_config(value, role)
            return value
        return original(value, info)

    setattr(validate, _MARK, True)
    validators[name] = dataclasses.replace(decorator, func=validate)
    model.model_rebuild(force=True)
    return True
