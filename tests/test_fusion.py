"""Reciprocal rank fusion, checked against hand-worked sums."""

from __future__ import annotations

import pytest

from qa.answer.scoring import lexical_coverage
from qa.index.lexical import idf
from qa.retrieval.fusion import reciprocal_rank_fusion, score_blend


def test_rrf_scores_are_normalised_sums_of_reciprocal_ranks() -> None:
    # k=1: best possible = 2 / (1 + 1) = 1.
    # id 7: 1/(1+1) + 1/(1+2) = 0.5 + 0.3333 = 0.8333
    # id 3: 1/(1+2) + 1/(1+1) = 0.8333 (tie; 7 was seen first)
    # id 9: 1/(1+3) = 0.25 (in one ranking only)
    fused = reciprocal_rank_fusion([[7, 3, 9], [3, 7]], k=1)
    assert [item for item, _ in fused] == [7, 3, 9]
    assert [round(score, 4) for _, score in fused] == [0.8333, 0.8333, 0.25]


def test_rrf_first_everywhere_scores_one() -> None:
    assert reciprocal_rank_fusion([[5, 1], [5]], k=60)[0] == (5, pytest.approx(1.0))
    assert reciprocal_rank_fusion([], k=60) == []
    with pytest.raises(ValueError, match="k must be >= 0"):
        reciprocal_rank_fusion([[1]], k=-1)


def test_idf_and_coverage() -> None:
    # idf = ln(1 + (N - df + 0.5) / (df + 0.5)); N=9, df=4 -> ln(1 + 5.5/4.5) = ln(2.2222)
    assert idf(4, 9) == pytest.approx(0.7985, abs=1e-4)
    assert idf(9, 9) > 0
    # Weights 3 and 1: the sentence holds the weight-3 term -> 3 / 4.
    assert lexical_coverage({"taxi": 3.0, "polic": 1.0}, {"taxi", "uber"}) == 0.75
    assert lexical_coverage({}, {"taxi"}) == 0.0


def test_blend_scales_each_run_by_its_best_and_weights_them() -> None:
    # dense (weight 0.6): 1 -> 0.8/0.8 = 1.0, 2 -> 0.4/0.8 = 0.5
    # bm25 (weight 0.4):  2 -> 12/12 = 1.0, 3 -> 3/12 = 0.25
    # id 1: 0.6 * 1.0 = 0.6; id 2: 0.6 * 0.5 + 0.4 * 1.0 = 0.7; id 3: 0.4 * 0.25 = 0.1
    fused = score_blend([([(1, 0.8), (2, 0.4)], 0.6), ([(2, 12.0), (3, 3.0)], 0.4)])
    assert [item for item, _ in fused] == [2, 1, 3]
    assert [round(score, 4) for _, score in fused] == [0.7, 0.6, 0.1]


def test_blend_ignores_empty_runs_and_negative_scores() -> None:
    assert score_blend([([], 0.6), ([(4, 2.0)], 0.4)]) == [(4, pytest.approx(0.4))]
    assert score_blend([([(5, -0.2), (6, 0.5)], 1.0)]) == [(6, 1.0), (5, 0.0)]
    assert score_blend([]) == []
