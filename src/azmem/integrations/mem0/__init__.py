"""azmem providers for mem0ai (``pip install 'azmem[mem0]'``).

Keep your mem0 config, call :func:`register` once, and change ``"provider"`` to ``"azmem"``::

    from azmem.integrations.mem0 import register
    register()
    config["llm"]["provider"] = config["embedder"]["provider"] = "azmem"
    memory = Memory.from_config(config)

See docs/integrations.md for what it fixes.
"""

from __future__ import annotations

try:
    import mem0  # noqa: F401  (the peer is an optional extra)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("azmem.integrations.mem0 needs mem0ai: pip install 'azmem[mem0]'") from exc

from .config import AzmemLlmConfig
from .embedder import AzmemEmbedding
from .llm import AzmemLLM
from .registry import PROVIDER, register

__all__ = ["PROVIDER", "AzmemEmbedding", "AzmemLLM", "AzmemLlmConfig", "register"]
