"""Metrics on literals, each expected value worked out by hand in a comment."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.evaluation.metrics import (
    QuestionOutcome,
    abstention_sweep,
    best_over_golds,
    contains_answer,
    exact_match,
    hit_at_k,
    normalize_answer,
    percentile,
    reciprocal_rank,
    recommended_threshold,
    summarize,
    sweep_point,
    token_f1,
)

BASE = QuestionOutcome(
    id="q",
    question="?",
    answerable=True,
    golds=("gold",),
    top_answer="",
    top_span="",
    best_score=0.5,
    abstained=False,
    cited_doc="d",
    cited_outlet="o",
    cited_date="2020-03-08",
    hits=(),
    source_hits=(),
    exact_match=0.0,
    f1=0.0,
    span_exact_match=0.0,
    span_f1=0.0,
    contains_gold=False,
    citation_ok=False,
    latency_ms=0.0,
)


def test_normalize_answer_drops_case_punctuation_articles_and_spaces() -> None:
    assert normalize_answer("  The Cat,\n sat  on a MAT! ") == "cat sat on mat"
    # "an" and "the" go only as whole words: "theatre" and "Anne" stay.
    assert normalize_answer("Anne at the theatre") == "anne at theatre"


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Beatles.", "beatles") == 1.0
    assert exact_match("Beatles", "Rolling Stones") == 0.0


def test_token_f1_partial_overlap() -> None:
    # "the cat sat" -> [cat, sat]; "cat sat down" -> [cat, sat, down].
    # common 2: precision 2/2 = 1, recall 2/3; F1 = 2*1*(2/3) / (1 + 2/3) = (4/3)/(5/3) = 0.8
    assert token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)


def test_token_f1_counts_repeated_tokens_once_each() -> None:
    # [x, x, y] vs [x, y, y]: common = min(2,1) + min(1,2) = 2;
    # precision 2/3, recall 2/3, F1 = 2/3.
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)


def test_token_f1_empty_strings() -> None:
    # SQuAD v2.0 rule: empty agrees only with empty ("The" normalises to empty).
    assert token_f1("", "The") == 1.0
    assert token_f1("cat", "") == 0.0
    assert token_f1("dog", "cat") == 0.0


def test_best_over_golds() -> None:
    # max(F1("cat sat", "dog") = 0, F1("cat sat", "cat sat down") = 0.8 as above)
    assert best_over_golds(token_f1, "cat sat", ["dog", "cat sat down"]) == pytest.approx(0.8)
    assert best_over_golds(exact_match, "anything", []) == 0.0


def test_contains_answer_ignores_case_and_line_breaks() -> None:
    assert contains_answer("He says it happened around\n4.00AM there", ["5am", "around 4.00am"])
    assert not contains_answer("It happened around 4.00am", ["5am"])
    assert not contains_answer("any text", [""])


def test_hit_at_k_and_reciprocal_rank() -> None:
    ranked = [False, False, True, False]
    assert not hit_at_k(ranked, 2)
    assert hit_at_k(ranked, 3)
    assert reciprocal_rank(ranked) == pytest.approx(1 / 3)
    # The first hit at rank 11 lies outside MRR@10.
    assert reciprocal_rank([False] * 10 + [True]) == 0.0
    with pytest.raises(ValueError, match="k must be >= 1"):
        hit_at_k(ranked, 0)


def test_percentile_interpolates_linearly() -> None:
    values = [50, 15, 40, 35, 20]  # sorted: 15 20 35 40 50
    assert percentile(values, 50) == 35  # position 4*0.5 = 2
    # position 4*0.95 = 3.8: 40 + 0.8*(50 - 40) = 48
    assert percentile(values, 95) == pytest.approx(48)
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)  # position 1.5
    with pytest.raises(ValueError):
        percentile([], 50)


SCORES = [0.9, 0.5, 0.3, 0.2]
ANSWERABLE = [True, True, False, True]


def test_sweep_point_counts_true_and_false_abstentions() -> None:
    # Below 0.35: 0.3 (unanswerable, a true abstention) and 0.2 (answerable, false).
    point = sweep_point(0.35, SCORES, ANSWERABLE)
    assert point.precision == pytest.approx(1 / 2)
    assert point.recall == 1.0
    assert point.false_abstention_rate == pytest.approx(1 / 3)
    # Right decisions: 0.9 and 0.5 answered, 0.3 withheld: 3 of 4.
    assert point.accuracy == 0.75
    # Nothing is below 0.0: precision undefined, recall and false abstention 0.
    nothing = sweep_point(0.0, SCORES, ANSWERABLE)
    assert (nothing.precision, nothing.recall, nothing.false_abstention_rate) == (None, 0.0, 0.0)


def test_recommended_threshold_is_the_middle_of_the_best_accuracy_run() -> None:
    scores, answerable = [0.9, 0.6, 0.3, 0.2], [True, True, False, False]
    # Right decisions out of 4: t <= 0.20: 2 (both unanswerable answered);
    # t in (0.2, 0.3]: 3; t in (0.3, 0.6]: 4, the best; t in (0.6, 0.9]: 3; t > 0.9: 2.
    # "Below t" is strict, so the best grid run is 0.31 .. 0.60 (30 thresholds);
    # its middle, index 30 // 2 = 15, is 0.31 + 0.15 = 0.46.
    assert recommended_threshold(abstention_sweep(scores, answerable)) == 0.46
    # Without unanswerable questions there is nothing to recommend.
    assert recommended_threshold(abstention_sweep([0.9, 0.1], [True, True])) is None


def test_sweep_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 scores for 2 questions"):
        abstention_sweep([0.1, 0.2, 0.3], [True, False])


def test_summarize_by_hand() -> None:
    right = replace(
        BASE,
        hits=(False, True),
        source_hits=(True, True),
        exact_match=1.0,
        f1=1.0,
        contains_gold=True,
        citation_ok=True,
        latency_ms=10.0,
    )
    wrong = replace(
        BASE,
        hits=(False, False, False),
        source_hits=(False, True, False),
        f1=0.5,
        abstained=True,
        latency_ms=30.0,
        contains_gold_at_3=True,
    )
    withheld = replace(BASE, answerable=False, golds=(), abstained=True, latency_ms=20.0)
    summary = summarize([right, wrong, withheld])
    assert (summary.questions, summary.answerable, summary.unanswerable) == (3, 2, 1)
    # Over the two answerable questions only.
    assert summary.hit_at[:3] == (0.0, 0.5, 0.5)
    assert summary.source_hit_at[:2] == (0.5, 1.0)
    assert summary.mrr_at_10 == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert summary.exact_match == 0.5
    assert summary.f1 == 0.75  # (1.0 + 0.5) / 2
    assert summary.contains_gold == 0.5
    assert summary.contains_gold_at_3 == 0.5  # only the second answer of "wrong" holds gold
    assert summary.citation_accuracy == 0.5
    assert summary.abstention_recall == 1.0
    assert summary.false_abstention_rate == 0.5
    # Latencies 10, 30, 20 -> sorted 10 20 30; p95 at position 1.9: 20 + 0.9*10 = 29.
    assert summary.latency_p50_ms == 20.0
    assert summary.latency_p95_ms == pytest.approx(29.0)


def test_passed() -> None:
    assert replace(BASE, contains_gold=True, citation_ok=True).passed
    assert not replace(BASE, contains_gold=True, citation_ok=True, abstained=True).passed
    assert not replace(BASE, contains_gold=True).passed  # miscited
    assert replace(BASE, answerable=False, abstained=True).passed
    assert not replace(BASE, answerable=False).passed


@given(st.text(max_size=40), st.text(max_size=40))
def test_token_f1_is_symmetric_bounded_and_one_on_exact_match(a: str, b: str) -> None:
    assert token_f1(a, b) == pytest.approx(token_f1(b, a))
    assert 0.0 <= token_f1(a, b) <= 1.0
    if exact_match(a, b):
        assert token_f1(a, b) == 1.0


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=20), st.floats(0, 100))
def test_percentile_lies_between_min_and_max(values: list[float], q: float) -> None:
    assert min(values) <= percentile(values, q) <= max(values)


def test_eval_scores_the_first_answer_the_user_is_shown() -> None:
    """The combiner ranks, the reader's confidence filters: the first ranked answer can be withheld."""
    from qa.evaluation.evaluate import EvalQuestion, score_result
    from qa.records import Answer, Citation, Result

    def answer(text: str, confidence: float) -> Answer:
        cite = Citation("d1", "Bay News", "2024-01-02", "t", "", 0, len(text), text, 0, len(text), text)
        return Answer(text, 0.5, (cite,), 0, -1, confidence)

    question = EvalQuestion("q", "When will the ferry stop?", ("March",), ("d1",), True)
    result = Result(
        "q", (answer("It was late.", 0.2), answer("It stops in March.", 0.9)), (), False, 1.0, (), 0.9
    )
    shown = score_result(question, result, {}, threshold=0.5)
    assert shown.top_answer == "It stops in March." and shown.contains_gold and not shown.abstained
    withheld = score_result(question, result, {}, threshold=0.95)
    assert withheld.abstained and withheld.top_answer == "It was late."
