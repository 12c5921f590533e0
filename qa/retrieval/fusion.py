"""Rank fusion: combine the dense and BM25 rankings of passages."""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse rankings of ids by reciprocal rank, best first.

    Each id scores ``sum(1 / (k + rank))`` over the rankings it appears in
    (rank counts from 1). The score is divided by the best possible score,
    ``len(rankings) / (k + 1)``, so it lies in [0, 1] and 1 means "first in
    every ranking". Ties keep the order of first appearance.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not rankings:
        return []
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return sorted(((item, s / best) for item, s in scores.items()), key=lambda p: -p[1])


def score_blend(runs: Sequence[tuple[Sequence[tuple[int, float]], float]]) -> list[tuple[int, float]]:
    """Fuse scored runs by a weighted sum of scores scaled to [0, 1], best first.

    Each run is ``([(id, score), ...], weight)``; its scores are divided by its
    best score, so BM25's unbounded scores and cosines meet on one scale. An
    id missing from a run scores 0 there. The sum is divided by the total
    weight, so the result lies in [0, 1].
    """
    total = sum(weight for _, weight in runs)
    if total <= 0:
        return []
    scores: dict[int, float] = {}
    for hits, weight in runs:
        best = max((score for _, score in hits), default=0.0)
        if best <= 0:
            continue
        for item, score in hits:
            scores[item] = scores.get(item, 0.0) + weight * max(0.0, score) / best
    return sorted(((item, s / total) for item, s in scores.items()), key=lambda p: -p[1])
