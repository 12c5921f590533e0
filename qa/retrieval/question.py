"""Question preparation: what retrieval needs of a question, worked out once.

The question is cleaned and cut to the settings' limit, and so is each
earlier question of the history, whose count is bounded too (a client sends
both, and a megabyte "earlier question" cost seconds of encoding); a follow-up
("What did he say?") borrows the earlier question it refers back to, in both
its query vector and its BM25 terms; each of its own index terms gets an idf
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
from qa.settings import MAX_HISTORY_QUESTIONS

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


def _one_line(text: str, limit: int) -> tuple[str, bool]:
    """``text`` on one line (lone surrogates replaced), cut at a word to ``limit`` characters; and if cut."""
    text = " ".join(_LONE_SURROGATE.sub("\ufffd", text).split())
    if len(text) <= limit:
        return text, False
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit], True


def clean_question(question: object, limit: int) -> tuple[str, list[str]]:
    """The question on one line, cut at a word to at most ``limit`` characters, and a notice if cut.

    Raises:
        InputError: the question is not text, or is blank.
    """
    if question is not None and not isinstance(question, str):
        raise InputError(f"the question must be text, got {shown_value(question)}")
    question, cut = _one_line(question or "", limit)
    if not question:
        raise InputError("the question is empty: type a question about the news archive")
    if not cut:
        return question, []
    return question, [f"question was longer than {limit} characters and was cut to its first {len(question)}"]


def clean_history(history: object, limit: int) -> tuple[list[str], list[str]]:
    """The last MAX_HISTORY_QUESTIONS earlier questions, blanks dropped, each cleaned and cut like a question.

    Returns:
        The questions, oldest first, and a notice for each kind of cut made.

    Raises:
        InputError: ``history`` is not a list of texts.
    """
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InputError(f"history must be a list of earlier questions, got {shown_value(history)}")
    wrong = next((h for h in history if not isinstance(h, str)), None)
    if wrong is not None:
        raise InputError(f"history must be a list of earlier questions (texts), got {shown_value(wrong)}")
    notices = []
    if len(history) > MAX_HISTORY_QUESTIONS:
        notices.append(f"history had {len(history)} entries; only the last {MAX_HISTORY_QUESTIONS} were read")
    kept, cut = [], 0
    for entry in history[-MAX_HISTORY_QUESTIONS:]:
        text, was_cut = _one_line(entry, limit)
        cut += was_cut
        if text:
            kept.append(text)
    if cut:
        were = "earlier question in the history was" if cut == 1 else "earlier questions in the history were"
        notices.append(f"{cut} {were} longer than {limit} characters and was cut")
    return kept, notices


def shown_value(value: object) -> str:
    """A value a caller sent, its repr cut to 60 characters, for an error message (it can be a megabyte)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "..." + text[-1]


def referred_history(question: str, history: Sequence[str]) -> str | None:
    """The earlier question a follow-up refers back to, if any (the latest one of a cleaned history)."""
    if not history or not _REFERRING.search(question):
        return None
    return history[-1]


def prepare_question(
    question: object,
    history: Sequence[object],
    encoder: Encoder,
    lexical: LexicalIndex,
    num_passages: int,
    max_chars: int,
) -> PreparedQuestion:
    """Clean ``question`` and ``history``, find the earlier question it refers to, build its vector and terms.

    Raises:
        InputError: the question is not text, or is blank; the history is not a list of texts.
    """
    text, notices = clean_question(question, max_chars)
    earlier, history_notices = clean_history(history, max_chars)
    previous = referred_history(text, earlier)
    vectors = encoder.encode([text] + ([previous] if previous else []))
    vector = vectors[0]
    if previous:
        vector = vectors[0] + HISTORY_WEIGHT * vectors[1]
        vector = vector / np.linalg.norm(vector)
    terms = {t: idf(lexical.doc_freq(t), num_passages) for t in lexical.terms(text)}
    weighted = [(t, 1.0) for t in terms]
    if previous:
        weighted += [(t, HISTORY_WEIGHT) for t in lexical.terms(previous)]
    return PreparedQuestion(text, previous, vector, terms, tuple(weighted), (*notices, *history_notices))
