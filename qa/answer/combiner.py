"""The learned combination: one probability per candidate from all its evidence and the reader.

The reader's score and the evidence (cosine, term coverage, passage score,
answer type, named source) each miss answers the other catches; a weight
between them set by hand on 45 questions was the old ranking. Here a logistic
regression, fit by cross-validation on held-out training questions
(qa.training.choice_cv, ``benchmarks/answer_choice.py``), weighs a fixed set
of features of each read candidate. Its output is both the ranking score and
the confidence abstention reads.

``combiner.json`` holds the weights, the feature names they apply to, the
sha256 of the reader whose scores they were fit on, and how they were fit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.reader import sigmoid
from qa.answer.scoring import Candidate
from qa.answer.statement import QUOTE
from qa.errors import ModelError

COMBINER_FILE = "combiner.json"
# "What did X say / want / think / call ...": the answer is usually the quote
# after the attribution, not the attribution that repeats the question's words.
_ASKS_SPEECH = re.compile(
    r"\b(say|said|says|saying|think|thinks|thought|want|wants|wanted|describe|described|call|called|"
    r"warn|warned|tell|told|explain|explained|add|added|argue|argued|react|reacted|admit|admitted)\b",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"^\s*(is|are|was|were|did|does|do|has|have|had|will|would|can|could|should)\b", re.I)
_NEGATION = re.compile(r"\b(no|not|never|none|nobody|without|n't)\b|n't\b", re.IGNORECASE)

FEATURES: tuple[str, ...] = (
    "reader",
    "reader_gap",
    "dense",
    "dense_gap",
    "lexical",
    "passage",
    "typed_yes",
    "typed_no",
    "source",
    "evidence_gap",
    "quote",
    "speech_quote",
    "yesno_negation",
    "length",
)


@dataclass(frozen=True)
class Read:
    """One read candidate: its evidence, the reader's logit and its sentence text."""

    candidate: Candidate
    evidence: float
    logit: float
    text: str


def features(question: str, reads: Sequence[Read]) -> np.ndarray:
    """The feature matrix of one question's read candidates (rows in ``reads`` order, columns FEATURES).

    The ``_gap`` columns are each candidate's distance below the question's
    best, so the model compares candidates within a question, not across
    questions. Every column moves smoothly with the scores behind it: a rank
    would jump when two near-equal scores swap, and an index updated in place
    (whose BM25 statistics differ from a rebuild's in the last digits) would
    then answer differently from the rebuilt one.
    """
    if not reads:
        return np.zeros((0, len(FEATURES)), dtype=np.float64)
    logits = np.array([r.logit for r in reads], dtype=np.float64)
    dense = np.array([r.candidate.dense for r in reads], dtype=np.float64)
    evidence = np.array([r.evidence for r in reads], dtype=np.float64)
    speech = bool(_ASKS_SPEECH.search(question))
    yesno = bool(_YES_NO.search(question))
    rows = []
    for i, r in enumerate(reads):
        quoted = bool(QUOTE.search(r.text))
        rows.append(
            (
                logits[i],
                logits[i] - logits.max(),
                dense[i],
                dense[i] - dense.max(),
                r.candidate.lexical,
                r.candidate.passage,
                float(r.candidate.typed > 0),
                float(r.candidate.typed < 0),
                r.candidate.source,
                evidence[i] - evidence.max(),
                float(quoted),
                float(quoted and speech),
                float(yesno and bool(_NEGATION.search(r.text))),
                min(len(r.text), 400) / 200.0,
            )
        )
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True)
class Combiner:
    """A fitted logistic regression over FEATURES."""

    weights: np.ndarray
    bias: float
    reader_sha256: str | None
    meta: dict

    def probabilities(self, question: str, reads: Sequence[Read]) -> np.ndarray:
        """The probability that each read candidate answers ``question``."""
        if not reads:
            return np.zeros(0)
        return sigmoid(features(question, reads) @ self.weights + self.bias)

    def to_json(self) -> dict:
        return {
            "features": list(FEATURES),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(float(self.bias), 6),
            "reader_sha256": self.reader_sha256,
            **self.meta,
        }


def default_combiner_path() -> Path:
    """Where the shipped combiner lives inside the installed package."""
    return Path(__file__).resolve().parents[1] / "models" / COMBINER_FILE


def load_combiner(path: Path) -> Combiner:
    """Read a combiner file; ModelError if it is unreadable or fits other features."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(raw["features"])
        weights = np.array(raw["weights"], dtype=np.float64)
        bias = float(raw["bias"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"combiner file {path} is unreadable: {exc}") from None
    if names != FEATURES or weights.shape != (len(FEATURES),):
        raise ModelError(f"combiner file {path} was fit on other features: {list(names)}")
    meta = {k: v for k, v in raw.items() if k not in ("features", "weights", "bias", "reader_sha256")}
    return Combiner(weights, bias, raw.get("reader_sha256"), meta)
