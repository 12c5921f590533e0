"""Answer extraction: score candidate sentences and group repeated reports.

Pure functions over arrays computed at index time; the engine feeds them the
question's vector and terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa.settings import Weights


@dataclass(frozen=True)
class Candidate:
    """A candidate answer sentence and the evidence for it, each part in [0, 1] or {-1, 0, 1}.

    ``typed`` is +1 when the sentence holds a span of the kind the question
    asks for (a name for "who"), -1 when the question asks for a kind the
    sentence lacks, 0 for open questions. ``source`` is the share of the
    outlet and date the question names that the sentence's article matches.
    """

    sentence_id: int
    passage_id: int
    dense: float
    lexical: float
    passage: float
    typed: int
    source: float


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate with its ranking score and the confidence abstention reads, both in [0, 1].

    Ranked by evidence alone the two are the same number; after the reader
    (qa.answer.reader.rerank) the score blends reader and evidence and the
    confidence is the reader's probability that the sentence answers.
    """

    candidate: Candidate
    score: float
    confidence: float

    @property
    def sentence_id(self) -> int:
        return self.candidate.sentence_id

    @property
    def passage_id(self) -> int:
        return self.candidate.passage_id


def lexical_coverage(question_terms: dict[str, float], sentence_terms: set[str]) -> float:
    """Share of the question's idf weight whose terms the sentence contains, in [0, 1]."""
    total = sum(question_terms.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in question_terms.items() if t in sentence_terms) / total


def combine(candidate: Candidate, weights: Weights) -> float:
    """The weighted sum of a candidate's evidence, clipped to [0, 1]."""
    score = (
        weights.dense * max(0.0, candidate.dense)
        + weights.lexical * candidate.lexical
        + weights.passage * candidate.passage
        + weights.typed * candidate.typed
        + weights.source * candidate.source
    )
    return min(1.0, max(0.0, score))


def rank_candidates(candidates: Sequence[Candidate], weights: Weights) -> list[ScoredSentence]:
    """Score candidates and sort them best first (ties keep input order)."""
    scores = [combine(c, weights) for c in candidates]
    scored = [ScoredSentence(c, score, score) for c, score in zip(candidates, scores, strict=True)]
    scored.sort(key=lambda s: -s.score)
    return scored


def group_same_reports(
    scored: Sequence[ScoredSentence],
    sentence_vectors: np.ndarray,
    same_cosine: float,
    max_groups: int,
) -> list[list[ScoredSentence]]:
    """Group sentences that say the same thing, best group first.

    Walks candidates best first: a sentence whose embedding is within
    ``same_cosine`` of a group's lead joins that group (another outlet
    carrying the same sentence); otherwise it leads a new group while fewer
    than ``max_groups`` exist. Later candidates still join existing groups, so
    every outlet that carried the answer is cited.
    """
    groups: list[list[ScoredSentence]] = []
    leads: list[np.ndarray] = []
    for candidate in scored:
        vector = np.asarray(sentence_vectors[candidate.sentence_id], dtype=np.float32)
        sims = [float(vector @ lead) for lead in leads]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= same_cosine:
            groups[best].append(candidate)
        elif len(groups) < max_groups:
            groups.append([candidate])
            leads.append(vector)
    return groups
