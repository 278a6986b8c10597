"""What a deployment can do, guessed from its model name where the user did not say.

Kept apart from the settings so the provider and the router can ask about capabilities
without the role and loading machinery, and so the name tables live in one place.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "JSON_SCHEMA_MIN_API_VERSION",
    "RESPONSES_MIN_API_VERSION",
    "Capabilities",
    "CapabilityOverrides",
    "default_capabilities",
]

JSON_SCHEMA_MIN_API_VERSION = "2024-08-01-preview"
RESPONSES_MIN_API_VERSION = "2025-03-01-preview"


class Capabilities(BaseModel):
    """What a deployment can do, fully resolved (overrides applied over name-based defaults)."""

    model_config = ConfigDict(frozen=True)

    reasoning: bool
    json_schema: bool
    vision: bool
    context_window: int
    responses_api: bool = False
    """Send generate/stream through the Responses API (``POST /openai/responses``) instead of chat
    completions: on by default for reasoning families where the API mode serves it."""


class CapabilityOverrides(BaseModel):
    """Explicit capability settings; ``None`` means "derive from the model name"."""

    model_config = ConfigDict(extra="forbid")

    reasoning: bool | None = None
    json_schema: bool | None = None
    vision: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    responses_api: bool | None = None


_REASONING = re.compile(r"(?<![a-z0-9])(o1|o3|o4|gpt-5)(?![0-9])")
_NO_JSON_SCHEMA = re.compile(r"(gpt-35|gpt-3\.5|(?<![a-z0-9])gpt-4(?![o.0-9])|o1-(mini|preview))")
_VISION = re.compile(
    r"(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|(?<![a-z0-9])o1(?!-mini|-preview)|o3(?!-mini)|o4)"
)

# First match wins: the more specific names come first.
_CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    (r"gpt-5[^ ]*-chat", 128_000),
    (r"gpt-5", 400_000),
    (r"gpt-4\.1", 1_047_576),
    (r"gpt-4o", 128_000),
    (r"gpt-4-turbo|gpt-4-1106|gpt-4-0125|gpt-4-vision", 128_000),
    (r"gpt-4-32k", 32_768),
    (r"(?<![a-z0-9])gpt-4(?![o.0-9])", 8_192),
    (r"gpt-35-turbo-16k|gpt-3\.5-turbo-16k", 16_384),
    (r"gpt-35|gpt-3\.5", 16_385),
    (r"o1-(mini|preview)", 128_000),
    (r"(?<![a-z0-9])(o1|o3|o4)", 200_000),
    (r"text-embedding|ada-002", 8_191),
)
_DEFAULT_CONTEXT_WINDOW = 128_000


def _api_version_at_least(version: str, minimum: str) -> bool:
    # Dated versions sort as strings on their date; a preview is later than nothing but
    # earlier than the GA of the same date, which does not matter for our thresholds.
    return version[:10] >= minimum[:10]


def default_capabilities(name: str, *, api_mode: str, api_version: str) -> Capabilities:
    """Name-based guesses, used only where the user did not say."""
    n = name.lower()
    reasoning = bool(_REASONING.search(n)) and "-chat" not in n
    json_schema = not _NO_JSON_SCHEMA.search(n)
    if api_mode == "dated" and not _api_version_at_least(api_version, JSON_SCHEMA_MIN_API_VERSION):
        json_schema = False
    window = next((w for pattern, w in _CONTEXT_WINDOWS if re.search(pattern, n)), _DEFAULT_CONTEXT_WINDOW)
    # Azure documents the Responses API for reasoning families (summaries, reasoning items);
    # a dated api-version before 2025-03-01-preview does not serve it at all.
    responses_api = reasoning and (
        api_mode == "v1" or _api_version_at_least(api_version, RESPONSES_MIN_API_VERSION)
    )
    return Capabilities(
        reasoning=reasoning,
        json_schema=json_schema,
        vision=bool(_VISION.search(n)),
        context_window=window,
        responses_api=responses_api,
    )
