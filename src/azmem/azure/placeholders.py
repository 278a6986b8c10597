"""Keys that are not keys: the sample-config placeholders people leave in place of a real one.

Settings warn about them when they load and auth falls back to Entra ID when it sees
one, so both need the test; it lives apart so neither imports the other.
"""

from __future__ import annotations

import re

from pydantic import SecretStr

__all__ = ["PLACEHOLDER_PATTERNS", "is_placeholder_key", "placeholder_shape"]

#: Values (case-insensitive, whole string after trimming) that mean "no key was set".
PLACEHOLDER_PATTERNS: tuple[str, ...] = (
    r"",  # empty or whitespace only
    r"<.*>",  # <your-api-key>, <API_KEY>
    r"\{\{?.*\}?\}",  # {api_key}, {{ key }}
    r"\$\{.*\}",  # ${AZURE_OPENAI_API_KEY} left unexpanded
    r"\$[a-z_][a-z0-9_]*",  # $AZURE_OPENAI_API_KEY left unexpanded (compose, .env)
    r"%[a-z_][a-z0-9_]*%",  # %AZURE_OPENAI_API_KEY% (Windows) left unexpanded
    r"((azure|llm|embedding)[-_ ]?)?(azure[-_ ]?)?(openai[-_ ]?)?api[-_ ]?key",  # the variable's name
    r"replace[-_ ]?with[-_ ]?.*",  # replace-with-your-key
    r"sk-(x{3,}|\.{3,}|\*{3,}|<.*>)",  # sk-xxxx, sk-..., the OpenAI sample shape
    r"x{3,}[x\-_.]*",  # xxx, XXXX-XXXX
    r"\*{3,}",  # ****
    r"\.{3,}",  # ...
    # your-api-key, your_key_here, my-azure-openai-key
    r"(your|my)[-_ ]?(azure[-_ ]?)?(openai[-_ ]?)?(api[-_ ]?)?key([-_ ]?here)?",
    r"(insert|enter|put|add)[-_ ]?(your[-_ ]?)?(api[-_ ]?)?key([-_ ]?here)?",
    r"(api[-_ ]?)?key[-_ ]?here",
    r"change[-_ ]?me",
    r"replace[-_ ]?me",
    r"placeholder",
    r"todo",
    r"none|null|nil|undefined",
    r"(example|sample)[-_ ]?(api[-_ ]?)?key",
)
# Deliberately absent: "test-key", "dummy", "fake". Emulator setups use such keys for real.
_PLACEHOLDER_RE = re.compile("|".join(f"(?:{p})" for p in PLACEHOLDER_PATTERNS), re.IGNORECASE)


def is_placeholder_key(value: str | SecretStr | None) -> bool:
    """True when ``value`` is missing or a sample-config placeholder rather than a key."""
    if value is None:
        return True
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return _PLACEHOLDER_RE.fullmatch(raw.strip()) is not None


# One label per PLACEHOLDER_PATTERNS entry: what a message says instead of the value.
_PLACEHOLDER_SHAPES = (
    "empty",
    "<your-api-key>",
    "{api_key}",
    "${AZURE_OPENAI_API_KEY}",
    "$AZURE_OPENAI_API_KEY",
    "%AZURE_OPENAI_API_KEY%",
    "AZURE_OPENAI_API_KEY",
    "replace-with-your-key",
    "sk-xxxx",
    "xxxx",
    "****",
    "...",
    "your-api-key",
    "insert-your-key-here",
    "key-here",
    "changeme",
    "replaceme",
    "placeholder",
    "todo",
    "none",
    "example-key",
)
assert len(_PLACEHOLDER_SHAPES) == len(PLACEHOLDER_PATTERNS)


def placeholder_shape(value: str | SecretStr | None) -> str | None:
    """Which placeholder ``value`` looks like ("<your-api-key>", "xxxx", ...), without quoting it."""
    if value is None:
        return None
    raw = (value.get_secret_value() if isinstance(value, SecretStr) else value).strip()
    for pattern, shape in zip(PLACEHOLDER_PATTERNS, _PLACEHOLDER_SHAPES, strict=True):
        if re.fullmatch(pattern, raw, re.IGNORECASE):
            return shape
    return None
