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
