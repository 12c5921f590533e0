"""Evaluation metrics as pure functions over plain values, plus their records.

Answer normalisation follows the official SQuAD v1.1 script (lower case, drop
punctuation and the articles a/an/the, collapse whitespace) so exact match and
token F1 are comparable with published SQuAD figures.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)

# Retrieval is scored down to rank 10: MRR@10 and the hit@k curve.
MAX_RANK = 10
# The sweep tries every threshold from 0.00 to 1.00 in steps of 0.01: answer
# scores lie in [0, 1] and a finer grid changes nothing a user could tune.
SWEEP_THRESHOLDS = tuple(round(i / 100, 2) for i in range(101))


@dataclass(frozen=True)
class QuestionOutcome:
    """How the engine did on one question (one retrieval mode).

    ``hits``/``source_hits`` hold one flag per retrieved passage, best first:
    a hit comes from a gold source and contains a gold answer; a source hit
    only needs the gold source (SQuAD's "paragraph hit").
    """

    id: str
    question: str
    answerable: bool
    golds: tuple[str, ...]
    top_answer: str
    top_span: str
    best_score: float
    abstained: bool
    cited_doc: str
    cited_outlet: str
    cited_date: str
    hits: tuple[bool, ...]
    source_hits: tuple[bool, ...]
    exact_match: float
    f1: float
    span_exact_match: float
    span_f1: float
    contains_gold: bool
    citation_ok: bool
    latency_ms: float
    # Whether any of the first three answers contains a gold answer.
    contains_gold_at_3: bool = False

    @property
    def passed(self) -> bool:
        """Unanswerable: the engine abstained. Answerable: it answered, with gold, correctly cited."""
        if not self.answerable:
            return self.abstained
        return not self.abstained and self.contains_gold and self.citation_ok


@dataclass(frozen=True)
class SweepPoint:
    """Abstention quality if answers scoring below ``threshold`` were withheld.

    ``precision``/``recall`` treat unanswerable questions as the positives;
    they are None where undefined (nothing abstained, or no unanswerable
    question). ``accuracy`` is the share of questions where the decision was
    right: answerable ones answered, unanswerable ones withheld.
    """

    threshold: float
    precision: float | None
    recall: float | None
    false_abstention_rate: float | None
    accuracy: float


@dataclass(frozen=True)
class Summary:
    """The figures of one evaluation run; rates are fractions in [0, 1]."""

    questions: int
    answerable: int
    unanswerable: int
    hit_at: tuple[float, ...]  # hit@1 .. hit@MAX_RANK
    source_hit_at: tuple[float, ...]
    mrr_at_10: float
    exact_match: float
    f1: float
    span_exact_match: float
    span_f1: float
    contains_gold: float
    contains_gold_at_3: float
    citation_accuracy: float
    abstention_recall: float | None
    false_abstention_rate: float | None
    latency_p50_ms: float
    latency_p95_ms: float


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation.

    Two empty strings agree (1.0); one empty string agrees with nothing (0.0),
    as in the SQuAD v2.0 script.
    """
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Sequence[str]) -> float:
    """The best ``metric(prediction, gold)`` over the gold answers; 0.0 without golds."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether ``text`` contains a gold answer, ignoring case and runs of whitespace.

    Gold answers are verbatim extracts, so this is a plain substring test; only
    line breaks and case may differ between the gold and a passage window.
    """
    haystack = " ".join(text.split()).lower()
    return any(needle and needle in haystack for needle in (" ".join(g.split()).lower() for g in golds))


def hit_at_k(hits: Sequence[bool], k: int) -> bool:
    """Whether any of the first ``k`` ranked items is a hit."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return any(hits[:k])


def reciprocal_rank(hits: Sequence[bool], k: int = MAX_RANK) -> float:
    """1/rank of the first hit within the first ``k`` items, else 0.0."""
    for rank, hit in enumerate(hits[:k], start=1):
        if hit:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between order statistics.

    Same definition as numpy's default ("linear"): position (n-1)*q/100 in the
    sorted values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def sweep_point(threshold: float, scores: Sequence[float], answerable: Sequence[bool]) -> SweepPoint:
    """Abstention figures if every question scoring below ``threshold`` were withheld."""
    abstained = [score < threshold for score in scores]
    true_abstentions = sum(a and not ok for a, ok in zip(abstained, answerable, strict=True))
    false_abstentions = sum(a and ok for a, ok in zip(abstained, answerable, strict=True))
    unanswerable = sum(not ok for ok in answerable)
    return SweepPoint(
        threshold=threshold,
        precision=_rate(true_abstentions, true_abstentions + false_abstentions),
        recall=_rate(true_abstentions, unanswerable),
        false_abstention_rate=_rate(false_abstentions, len(answerable) - unanswerable),
        accuracy=(true_abstentions + len(answerable) - unanswerable - false_abstentions) / len(answerable),
    )


def abstention_sweep(
    scores: Sequence[float], answerable: Sequence[bool], thresholds: Sequence[float] = SWEEP_THRESHOLDS
) -> tuple[SweepPoint, ...]:
    """One SweepPoint per threshold, for best answer ``scores`` of questions."""
    if len(scores) != len(answerable):
        raise ValueError(f"{len(scores)} scores for {len(answerable)} questions")
    if not scores:
        raise ValueError("no questions to sweep")
    return tuple(sweep_point(t, scores, answerable) for t in thresholds)


def recommended_threshold(sweep: Sequence[SweepPoint]) -> float | None:
    """The middle of the first run of thresholds with the best decision accuracy.

    Accuracy, not abstention F1: where answerable and unanswerable scores
    overlap, F1 is maximised by withholding nearly everything (precision
    cannot fall below the share of unanswerable questions), which no user
    wants. The middle of the best run, rather than its edge, keeps the
    threshold away from the scores of the questions that decided it.
    None when no question of the set is unanswerable (recall is undefined),
    since then the sweep can only ever say "never abstain".
    """
    if not sweep or all(point.recall is None for point in sweep):
        return None
    best = max(point.accuracy for point in sweep)
    first = next(i for i, point in enumerate(sweep) if point.accuracy == best)
    last = first
    while last + 1 < len(sweep) and sweep[last + 1].accuracy == best:
        last += 1
    return sweep[(first + last + 1) // 2].threshold


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(outcomes: Sequence[QuestionOutcome]) -> Summary:
    """Aggregate per-question outcomes.

    Retrieval, answer and citation figures are over answerable questions;
    abstention recall over unanswerable ones; latency over all.
    """
    if not outcomes:
        raise ValueError("no outcomes to summarize")
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    return Summary(
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        hit_at=tuple(_mean([hit_at_k(o.hits, k) for o in answerable]) for k in range(1, MAX_RANK + 1)),
        source_hit_at=tuple(
            _mean([hit_at_k(o.source_hits, k) for o in answerable]) for k in range(1, MAX_RANK + 1)
        ),
        mrr_at_10=_mean([reciprocal_rank(o.hits) for o in answerable]),
        exact_match=_mean([o.exact_match for o in answerable]),
        f1=_mean([o.f1 for o in answerable]),
        span_exact_match=_mean([o.span_exact_match for o in answerable]),
        span_f1=_mean([o.span_f1 for o in answerable]),
        contains_gold=_mean([o.contains_gold for o in answerable]),
        contains_gold_at_3=_mean([o.contains_gold_at_3 for o in answerable]),
        citation_accuracy=_mean([o.citation_ok for o in answerable]),
        abstention_recall=_rate(sum(o.abstained for o in unanswerable), len(unanswerable)),
        false_abstention_rate=_rate(sum(o.abstained for o in answerable), len(answerable)),
        latency_p50_ms=percentile([o.latency_ms for o in outcomes], 50),
        latency_p95_ms=percentile([o.latency_ms for o in outcomes], 95),
    )
