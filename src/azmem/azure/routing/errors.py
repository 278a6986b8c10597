"""The one error the router raises itself: no deployment could even be tried.

When attempts were made, the router re-raises the last service error (so ``except
RateLimitError`` keeps working) with the per-deployment summary added to its message and
``details["routing"]``; this class covers the cases where nothing was sent at all.
"""

from __future__ import annotations

from azmem.errors import AzmemError

__all__ = ["NoDeploymentAvailableError"]


class NoDeploymentAvailableError(AzmemError):
    """Every deployment of the logical model (and its fallbacks) was out, unfit or too far from recovering."""

    default_suggestion = (
        "Check each deployment with `azmem doctor`; add deployments to the pool, configure a fallback "
        "model, or raise routing.max_wait / routing.deadline."
    )
