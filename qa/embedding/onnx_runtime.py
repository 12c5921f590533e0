"""Encode text with an exported model in ONNX Runtime: the tokenizer, batching, the session."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from qa.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Encoding, Tokenizer

# newsqa's dependencies for the ONNX backends (pyproject.toml).
INSTALL_HINT = "pip install onnxruntime onnx onnxscript"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Threads per session until use_one_thread is called; 0 lets ONNX Runtime use
# one per physical core, which is what a build's large batches want.
_threads = 0


def use_one_thread() -> None:
    """Run every later encode on one thread (see qa.embedding.embedder.use_one_thread_per_question)."""
    global _threads
    _threads = 1


class OnnxEncoder:
    """An exported sentence encoder: the model folder's tokenizer feeding an ONNX Runtime session.

    The graph itself pools and normalises (qa.embedding.onnx_export), so its output is
    the sentence embedding.
    """

    def __init__(self, model_file: Path, model_folder: Path) -> None:
        self._model_file = model_file
        self._tokenizer = _tokenizer(model_folder)
        self._sessions: dict[tuple[int, int], onnxruntime.InferenceSession] = {}
        self.dimension = int(self._session().get_outputs()[0].shape[1])

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, in the order given.

        Texts are batched longest first, as sentence-transformers does, so a
        batch pads to lengths close to its own.
        """
        # sentence-transformers strips each text before tokenising; so do we.
        encodings = self._tokenizer.encode_batch([text.strip() for text in texts])
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        session = self._session()
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="Batches", disable=not progress):
            rows = order[start : start + batch_size]
            vectors[rows] = session.run(None, _feeds([encodings[i] for i in rows]))[0]
        return vectors

    def _session(self) -> onnxruntime.InferenceSession:
        # One session per process and thread count: a forked child gets its
        # own, since the parent's thread pool did not survive the fork.
        key = (os.getpid(), _threads)
        if key not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = _threads
            options.inter_op_num_threads = 1
            # Idle pool threads sleep instead of spinning: on cores shared
            # with other work, spinning threads take turns from the ones
            # doing the work (build throughput 0.52x and 0.94x of torch in two
            # runs with spinning on a loaded 2-core machine, 0.96x without).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self._sessions[key] = onnxruntime.InferenceSession(
                    str(self._model_file), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # ONNX Runtime raises its own untyped errors
                raise ModelError(f"ONNX Runtime cannot load {self._model_file}: {exc}") from exc
        return self._sessions[key]


def require_onnxruntime() -> None:
    """Raise ModelError naming the install command when ONNX Runtime is missing."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelError(f"the onnx embedding backends need onnxruntime: {INSTALL_HINT}") from None


def _tokenizer(model_folder: Path) -> Tokenizer:
    """The model's own fast tokenizer, truncating where sentence-transformers does."""
    from tokenizers import Tokenizer

    config = json.loads((model_folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
    tokenizer.enable_truncation(int(config["max_seq_length"]))
    tokenizer.no_padding()
    return tokenizer


def _feeds(encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
    """Right-padded int64 inputs of one batch; padding is masked out of attention and pooling."""
    width = max(len(e.ids) for e in encodings)
    feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in _INPUTS}
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        feeds["input_ids"][row, :n] = encoding.ids
        feeds["attention_mask"][row, :n] = encoding.attention_mask
        feeds["token_type_ids"][row, :n] = encoding.type_ids
    return feeds
