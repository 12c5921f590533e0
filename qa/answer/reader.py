"""The reader: a cross-encoder that reads the question and each candidate together.

The bi-encoder ranks sentences by how much they resemble the question, so a
sentence that restates the question beats the one that answers it. A
cross-encoder sees both texts at once and was trained (``qa train-reader``)
to score the answering sentence highest, with the sentence before it as
context so "he" or "the outgoing commissioner" can be resolved.

The shipped reader (``qa/models/reader``) is a 4-layer MiniLM cross-encoder
fine-tuned from the packaged all-MiniLM-L6-v2. Its folder holds only what
differs from that package (the transformer layers, pooler and head, in
float16); the word, position and type embeddings stay frozen in training and
are taken from the installed package at load time, which keeps the file in
git small. ``reader.json`` records the weight file's sha256, checked on load.
Any other sentence-transformers ``CrossEncoder`` (a local folder, or a hub
name already in the user's cache) loads as it is.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.answer.scoring import ScoredSentence
from qa.checksum import file_sha256
from qa.embedding.packaged import PACKAGED_MODEL, model_id, quiet_transformers, resolve_model_location
from qa.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

DEFAULT_READER = "newsqa-reader"
NO_READER = "none"
# Written by ``qa train-reader`` beside the delta weights.
READER_META = "reader.json"
WEIGHTS_FILE = "model.safetensors"
# Word pieces a (question, candidate) pair is cut to. A news sentence with
# the sentence before it rarely passes 90; cost grows with the length.
MAX_LENGTH = 96
# The default for ``context_chars``: how much of the sentence before the
# candidate the reader sees, enough for the name a pronoun refers to. A
# trained reader records its own value in reader.json; 0 means none.
CONTEXT_CHARS = 240
# Embedding tensors the shipped reader takes from the packaged model (frozen
# in training, so not saved with it).
SHARED_PREFIX = "bert.embeddings."


def default_reader_dir() -> Path:
    """Where the shipped reader lives inside the installed package."""
    return Path(__file__).resolve().parents[1] / "models" / "reader"


def reader_question(question: str, previous: str | None = None) -> str:
    """The question as the reader sees it: a follow-up carries the question it refers to."""
    return f"{previous} {question}" if previous else question


def reader_candidate(sentence: str, before: str = "", context_chars: int = CONTEXT_CHARS) -> str:
    """A candidate sentence, then (up to ``context_chars`` of) the sentence before it.

    The candidate comes first so that truncation cuts the context, never the
    sentence being judged.
    """
    before = before.strip()[:context_chars]
    if not before:
        return sentence
    return f"{sentence} [SEP] {before}"


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Logits to probabilities in (0, 1), stable for large magnitudes."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, dtype=np.float64)))


def no_reader(name_or_path: str | None) -> bool:
    """Whether ``--reader`` asked for no reader at all ("none")."""
    return name_or_path is not None and name_or_path.lower() == NO_READER


def reader_identity(name_or_path: str | None) -> dict[str, str] | None:
    """The id and recorded sha256 of a reader, read without loading it; None for "none"."""
    if no_reader(name_or_path):
        return None
    rid = model_id(name_or_path, DEFAULT_READER)
    folder = default_reader_dir() if rid == DEFAULT_READER else Path(rid)
    try:
        sha = str(json.loads((folder / READER_META).read_text(encoding="utf-8"))["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        sha = ""
    return {"id": rid, "sha256": sha}


class Reader:
    """Scores (question, candidate) pairs; the model loads on first use.

    Args:
        name_or_path: ``None`` or ``"newsqa-reader"`` for the shipped reader,
            else a sentence-transformers CrossEncoder folder or cached name.
        int8: quantise the linear layers to int8 after loading (about 2x
            faster on CPU; the benchmark gives the figures).
    """

    def __init__(self, name_or_path: str | None = None, int8: bool = True) -> None:
        self.reader_id = model_id(name_or_path, DEFAULT_READER)
        self.int8 = int8
        self._model: CrossEncoder | None = None
        self.sha256 = ""
        # A plain CrossEncoder was not trained on our context format: it reads the sentence alone.
        self._context_chars = 0

    @property
    def context_chars(self) -> int:
        """How much of the sentence before a candidate this reader was trained to see."""
        self.model  # noqa: B018 - the shipped reader's value comes with its weights
        return self._context_chars

    @property
    def model(self) -> CrossEncoder:
        if self._model is None:
            self._model = self._load()
        return self._model

    def logits(self, question: str, candidates: Sequence[str]) -> np.ndarray:
        """One raw score per candidate: above 0, the reader thinks it answers."""
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        import torch

        pairs = [(question, c) for c in candidates]
        scores = self.model.predict(
            pairs,
            batch_size=32,
            show_progress_bar=False,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(candidates), -1)[:, -1]

    def _load(self) -> CrossEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if self.reader_id == DEFAULT_READER:
            model = _load_shipped(default_reader_dir(), self)
        else:
            path = Path(self.reader_id)
            if (path / READER_META).is_file():
                model = _load_shipped(path, self)
            else:
                model = _load_plain(self.reader_id)
        model.eval()
        if self.int8:
            model = _quantize(model)
        return model


def open_reader(name_or_path: str | None, note: Callable[[str], None]) -> Reader | None:
    """The reader named, loaded now so a bad file is reported at start, not on the first question.

    Returns None for ``"none"``. The shipped reader, if missing or corrupt,
    is skipped with a note so the engine still answers (by evidence alone);
    a reader the user named that cannot load raises ModelError.
    """
    if no_reader(name_or_path):
        return None
    reader = Reader(name_or_path)
    try:
        reader.model  # noqa: B018 - loads and checks the weights
    except ModelError as exc:
        if reader.reader_id != DEFAULT_READER:
            raise
        note(f"{exc}; answers are ranked without the reader")
        return None
    return reader


def _load_plain(name_or_path: str) -> CrossEncoder:
    from sentence_transformers import CrossEncoder

    quiet_transformers()
    try:
        return CrossEncoder(name_or_path, device="cpu", max_length=MAX_LENGTH)
    except Exception as exc:  # any loader failure is one message to the user
        raise ModelError(
            f"cannot load reader {name_or_path!r}: {exc}. Give --reader a local "
            "sentence-transformers CrossEncoder folder or a cached model name; "
            "no model hub is reachable."
        ) from exc


def _load_shipped(folder: Path, reader: Reader) -> CrossEncoder:
    """Load a reader saved as a delta over the packaged MiniLM, checking its sha256."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import CrossEncoder

    meta_path, weights = folder / READER_META, folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        missing = meta_path if not meta_path.is_file() else weights
        raise ModelError(
            f"reader file missing: {missing}. Reinstall newsqa, run `qa train-reader`, "
            "or pass --reader none to rank without the reader"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = str(meta["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"reader file {meta_path} is unreadable: {exc}") from None
    actual = file_sha256(weights)
    if actual != expected:
        raise ModelError(
            f"reader weights {weights} are corrupt: sha256 {actual[:12]}… does not match "
            f"{expected[:12]}… recorded in {meta_path}. Reinstall newsqa or run `qa train-reader`"
        )
    reader.sha256 = actual
    reader._context_chars = int(meta.get("config", {}).get("context_chars", CONTEXT_CHARS))
    quiet_transformers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CrossEncoder(
            str(folder),
            device="cpu",
            max_length=MAX_LENGTH,
            model_kwargs={"dtype": torch.float32},
        )
    try:
        delta = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ModelError(f"reader weights {weights} are unreadable: {exc}") from None
    base = shared_embeddings(meta.get("base", PACKAGED_MODEL))
    state = {k: v.float() for k, v in delta.items()}
    state.update(base)
    missing, unexpected = model.model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelError(
            f"reader weights {weights} do not fit its config: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model


def shared_embeddings(base: str) -> dict[str, object]:
    """The embedding tensors of the packaged model, named as in a BERT cross-encoder."""
    from safetensors.torch import load_file

    location = Path(resolve_model_location(base)) / WEIGHTS_FILE
    if not location.is_file():
        raise ModelError(f"the reader's base model weights are missing: {location}")
    tensors = load_file(str(location))
    return {
        f"bert.{name}": tensor.float()
        for name, tensor in tensors.items()
        if f"bert.{name}".startswith(SHARED_PREFIX) and not name.endswith("position_ids")
    }


def _quantize(model: CrossEncoder) -> CrossEncoder:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(
            model.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    return model


def rerank(
    scored: Sequence[ScoredSentence], logits: Sequence[float], reader_weight: float
) -> list[ScoredSentence]:
    """Candidates re-scored by the reader, best first.

    The ranking score blends the reader's probability that the sentence
    answers (the sigmoid of its score: above 0, "answers", as trained) with
    the evidence score: ``reader_weight`` 1 ranks by the reader alone, 0 by the
    evidence alone. The confidence, which abstention reads, is the reader's
    probability alone (docs/evaluation.md, "How an answer is scored").
    """
    probs = sigmoid(np.asarray(logits, dtype=np.float64))
    rescored = [
        ScoredSentence(s.candidate, reader_weight * float(p) + (1.0 - reader_weight) * s.score, float(p))
        for s, p in zip(scored, probs, strict=True)
    ]
    rescored.sort(key=lambda s: -s.score)
    return rescored
