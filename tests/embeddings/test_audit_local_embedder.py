"""Audit of the local embedder (issue 3, section 3): no telemetry footprint, no silent truncation."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azmem.embeddings import LocalEmbedder
from azmem.embeddings.local import ORT_TELEMETRY_ENV


def test_embedding_leaves_no_onnxruntime_device_id_in_the_home_directory(tmp_path: Path) -> None:
    """onnxruntime writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid on import
    unless told not to; azmem must not leave that behind on a user's machine."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (ORT_TELEMETRY_ENV, "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    code = (
        "import os\n"
        "from azmem.embeddings import LocalEmbedder\n"
        "assert LocalEmbedder(threads=1).embed(['hello']).shape == (1, 384)\n"
        f"print(os.environ.get({ORT_TELEMETRY_ENV!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert left == [], f"files written under HOME: {left}"
    assert result.stdout.strip() == "1"  # children (e.g. a CLI's subprocesses) inherit the setting


def test_truncation_is_logged_once_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    embedder = LocalEmbedder()  # a fresh instance (the loaded model is shared)
    exactly_256 = " ".join(["word"] * 254)  # [CLS] + 254 + [SEP]: fits, nothing is cut
    with caplog.at_level(logging.DEBUG, logger="azmem.embeddings"):
        embedder.embed(["short", exactly_256])
        assert embedder.truncated == 0
        assert caplog.records == []
        embedder.embed(["memory " * 600, "short", "cats " * 300])
        embedder.embed(["memory " * 600])
    assert embedder.truncated == 3
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1  # once, then DEBUG
    assert "2 input(s)" in infos[0].getMessage()
    assert "256 tokens" in infos[0].getMessage()
    debugs = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debugs) == 1
    assert "3 so far" in debugs[0].getMessage()
