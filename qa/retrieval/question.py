"""Question preparation: what retrieval needs of a question, worked out once.

The question is cleaned and cut to the settings' limit; a follow-up ("What
did he say?") borrows the earlier question it refers back to, in both its
query vector and its BM25 terms; each of its own index terms gets an idf
weight, which answer choice reuses for term coverage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa.embedding.encoder import Encoder
from qa.errors import InputError
from qa.index.lexical import LexicalIndex, idf

# A follow-up leans on the conversation when it refers back with a pronoun or
# a demonstrative ("What did he say...", "When did that happen?").
_REFERRING = re.compile(
    r"\b(he|him|his|she|her|hers|they|them|their|theirs|it|its|this|that|these|those|"
    r"the (man|woman|couple|pair|director|commissioner|officer|police officer))\b",
    re.IGNORECASE,
)
# Half of a surrogate pair alone is not a character: it reaches a question from
# a command line that was not UTF-8, and the tokenizer and JSON output reject it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# How much the previous question counts in a follow-up's query vector and
# BM25 terms: enough to pull in its subject, less than the question itself.
HISTORY_WEIGHT = 0.6


@dataclass(frozen=True)
class PreparedQuestion:
    """A question ready for retrieval and answer choice.

    ``terms`` are the question's own index terms with their idf;
    ``weighted_terms`` the BM25 query, the earlier question's terms included
    at HISTORY_WEIGHT for a follow-up.
    """

    text: str
    previous: str | None
    vector: np.ndarray
    terms: dict[str, float]
    weighted_terms: tuple[tuple[str, float], ...]
    notices: tuple[str, ...] = ()


def clean_question(question: object, limit: int) -> tuple[str, list[str]]:
    """The question on one line, cut at a word to at most ``limit`` characters, and a notice if cut.

    Raises:
        InputError: the question is not text, or is blank.
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty: type a question about the news archive")
    question = " ".join(_LONE_SURROGATE.sub("\ufffd", question).split())
    if len(question) <= limit:
        return question, []
    cut = question.rfind(" ", 0, limit)
    question = question[: cut if cut > 0 else limit]
    return question, [f"question was longer than {limit} characters and was cut to its first {len(question)}"]


def referred_history(question: str, history: Sequence[object]) -> str | None:
    """The earlier question a follow-up refers back to, if any (the latest one)."""
    earlier = [_LONE_SURROGATE.sub("\ufffd", h).strip() for h in history if isinstance(h, str) and h.strip()]
    if not earlier or not _REFERRING.search(question):
        return None
    return earlier[-1]


def prepare_question(
    question: object,
    history: Sequence[object],
    encoder: Encoder,
    lexical: LexicalIndex,
    num_passages: int,
    max_chars: int,
) -> PreparedQuestion:
    """Clean ``question``, find the earlier question it refers to, and build its query vector and terms.

    Raises:
        InputError: the question is not text, or is blank.
    """
    text, notices = clean_question(question, max_chars)
    previous = referred_history(text, history)
    vectors = encoder.encode([text] + ([previous] if previous else []))
    vector = vectors[0]
    if previous:
        vector = vectors[0] + HISTORY_WEIGHT * vectors[1]
        vector = vector / np.linalg.norm(vector)
    terms = {t: idf(lexical.doc_freq(t), num_passages) for t in lexical.terms(text)}
    weighted = [(t, 1.0) for t in terms]
    if previous:
        weighted += [(t, HISTORY_WEIGHT) for t in lexical.terms(previous)]
    return PreparedQuestion(text, previous, vector, terms, tuple(weighted), tuple(notices))
