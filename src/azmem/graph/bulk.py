"""Bulk ingestion's rules, shared by both faces: episodes of a group in order, groups side by side.

Within a group, order is meaning (a move after a job change is resolved against the
graph the job change left), so a group's episodes run one after the other and the
first failure stops that group; other groups go on. The LLM client's routing layer
bounds how hard the groups together hit each deployment (RPM/TPM, 429 handling).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from azmem.errors import AzmemError, InvalidInputError
from azmem.graph.model import EpisodeSource
from azmem.graph.results import AddEpisodeResult

__all__ = ["BulkIngestError", "EpisodeInput", "Progress", "group_batches"]

Progress = Callable[[int, int, AddEpisodeResult], None]
"""``progress(done, total, result)`` after each episode (from worker threads in `Graph`)."""


class EpisodeInput(BaseModel):
    """One episode for ``add_episodes``: the arguments of ``add_episode``."""

    model_config = ConfigDict(extra="forbid")

    content: str
    group_id: str
    reference_time: datetime | None = None
    source: EpisodeSource = "message"
    name: str | None = None
    source_description: str = ""


class BulkIngestError(AzmemError):
    """Some episodes failed; ``results`` holds what was added (None where not), ``errors`` why.

    Each episode is atomic and the failed group stopped at its first failure, so
    resending the episodes whose result is None, in order, completes the batch.
    """

    default_code = "bulk_ingest_failed"

    def __init__(self, results: list[AddEpisodeResult | None], errors: dict[int, BaseException]) -> None:
        first = min(errors)
        super().__init__(
            f"{len(errors)} group(s) stopped; {sum(r is not None for r in results)} of {len(results)} "
            f"episodes were added. First failure, episode {first}: {errors[first]}",
            details={"failed": sorted(errors), "added": sum(r is not None for r in results)},
            suggestion="resend the episodes whose result is None, in order",
        )
        self.results = results
        self.errors = errors


@dataclass
class Batches:
    items: list[EpisodeInput]
    by_group: dict[str, list[int]] = field(default_factory=dict)


def group_batches(episodes: Iterable[EpisodeInput | Mapping[str, Any]]) -> Batches:
    items: list[EpisodeInput] = []
    for i, item in enumerate(episodes):
        try:
            items.append(item if isinstance(item, EpisodeInput) else EpisodeInput.model_validate(dict(item)))
        except (ValidationError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"episode {i}: {exc}") from None
    batches = Batches(items)
    for i, item in enumerate(items):
        batches.by_group.setdefault(item.group_id, []).append(i)
    return batches
