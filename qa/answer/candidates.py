"""Candidate sentences: the sentences of the best passages with the evidence for each.

Retrieval ranks passages; answers are sentences. This module reads the
sentences of the top fused passages and measures, for each, what the index
already knows without a model call: cosine to the question, idf-weighted term
coverage, the passage's retrieval score, whether it holds a span of the asked
kind, and whether its article is the outlet or date the question names. The
reader then reads only the best of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa.answer.mentions import date_matches, named_dates, named_outlets
from qa.answer.scoring import Candidate, lexical_coverage
from qa.answer.span import QuestionShape, typed_span
from qa.index.store import IndexData


@dataclass(frozen=True)
class Question:
    """What candidate scoring needs of a question, worked out once."""

    text: str
    vector: np.ndarray
    terms: dict[str, float]
    shape: QuestionShape


def gather_candidates(
    data: IndexData,
    question: Question,
    fused: Sequence[tuple[int, float]],
    answer_passages: int,
    outlets: Sequence[str],
) -> list[Candidate]:
    """Every sentence of the top ``answer_passages`` fused passages, with its evidence.

    A sentence in two retrieved passages takes the better passage's score.
    """
    sentence_passage: dict[int, tuple[int, float]] = {}
    for pid, score in fused[:answer_passages]:
        row = data.passage_row(pid)
        for sid in range(row.first_sentence, row.last_sentence):
            if sid not in sentence_passage or sentence_passage[sid][1] < score:
                sentence_passage[sid] = (pid, score)
    named_outlet_set = set(named_outlets(question.text, outlets))
    dates = named_dates(question.text)
    ids = np.fromiter(sentence_passage, dtype=np.int64, count=len(sentence_passage))
    cosines = (np.asarray(data.sentence_vectors[ids], dtype=np.float32) @ question.vector).tolist()
    shape = question.shape
    candidates = []
    for sid, cosine in zip(ids.tolist(), cosines, strict=True):
        text = data.sentence_text(sid)
        article = data.article(data.sentence_row(sid).article)
        typed = 0
        if shape.kind is not None:
            typed = 1 if typed_span(shape, text, data.sentence_entities(sid)) else -1
        # Share of the named constraints (outlet, date) this article meets.
        met = [article.outlet in named_outlet_set] if named_outlet_set else []
        if dates:
            met.append(any(date_matches(article.date, d) for d in dates))
        named = sum(met) / len(met) if met else 0.0
        pid, passage_score = sentence_passage[sid]
        candidates.append(
            Candidate(
                sentence_id=sid,
                passage_id=pid,
                dense=cosine,
                lexical=lexical_coverage(question.terms, set(data.lexical.terms(text))),
                passage=passage_score,
                typed=typed,
                source=named,
            )
        )
    return candidates
