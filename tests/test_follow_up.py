"""Follow-up detection (issue 15, item 7): a standalone question after an unrelated one is not blended.

Real encoder and real index of the bundled corpus (the ``engine`` fixture);
the numbers behind the rule are in benchmarks/results/follow_up.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from qa.engine import Engine
from qa.retrieval.question import (
    HISTORY_WEIGHT,
    follow_up_threshold,
    is_follow_up,
    prepare_question,
    referring_words,
    shared_rare_idf,
)

BUDGET = "What did the Prime Minister say about the budget?"
DIRECTOR = "Who is the director of Auckland Pride?"
# Standalone questions that the regex used before took for follow-ups ("the
# director", "its", "it", "this", "that"), and one with nothing referring at all.
STANDALONE = (
    DIRECTOR,
    "How much will the scheme cost in its first year?",
    "How much did it cost to rebuild the church?",
    "How many households that switched saved money this year?",
    "What did Ann Lee say about her plan?",
    "How old is Joe Perrone?",
)


def _prepare(engine: Engine, question: str, history: Sequence[str] = ()):
    state = engine.live.current()
    return prepare_question(
        question,
        history,
        engine.encoder,
        state.data.lexical,
        state.passages,
        engine.settings.max_question_chars,
    )


def _decide(engine: Engine, question: str, previous: str) -> bool:
    state = engine.live.current()
    vectors = engine.encoder.encode([question, previous])
    shared = shared_rare_idf(question, previous, state.data.lexical, state.passages)
    return is_follow_up(question, previous, vectors[0], vectors[1], shared)


@pytest.mark.parametrize("question", STANDALONE)
def test_a_standalone_question_after_an_unrelated_one_is_prepared_as_if_alone(
    engine: Engine, question: str
) -> None:
    alone = _prepare(engine, question)
    after = _prepare(engine, question, [BUDGET])
    assert after.previous is None
    assert np.array_equal(after.vector, alone.vector)
    assert after.weighted_terms == alone.weighted_terms
    # And so is its retrieval through the engine.
    assert engine.retrieval(question, [BUDGET]).fused == engine.retrieval(question).fused


def test_a_follow_up_still_borrows_the_previous_question(engine: Engine) -> None:
    question = "What did he say about police training?"
    alone = _prepare(engine, question)
    follow = _prepare(engine, question, ["How many people marched?", DIRECTOR])
    assert follow.previous == DIRECTOR  # the latest earlier question
    director_vector = engine.encoder.encode([DIRECTOR])[0]
    blended = alone.vector + HISTORY_WEIGHT * director_vector
    np.testing.assert_allclose(follow.vector, blended / np.linalg.norm(blended), atol=1e-6)
    assert follow.vector @ director_vector > alone.vector @ director_vector + 0.1
    state = engine.live.current()
    borrowed = {(t, HISTORY_WEIGHT) for t in state.data.lexical.terms(DIRECTOR)}
    assert borrowed <= set(follow.weighted_terms) and not borrowed <= set(alone.weighted_terms)


def test_a_question_with_nothing_to_refer_back_does_not_encode_the_previous_one(engine: Engine) -> None:
    seen: list[str] = []
    real = engine.encoder

    class Recording:
        model_id = real.model_id

        def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
            seen.extend(texts)
            return real.encode(texts, progress)

    state = engine.live.current()
    args = (Recording(), state.data.lexical, state.passages, engine.settings.max_question_chars)
    prepare_question("How old is Joe Perrone?", [BUDGET], *args)
    assert seen == ["How old is Joe Perrone?"]
    prepare_question("What did he say about police training?", [DIRECTOR], *args)
    assert seen[1:] == ["What did he say about police training?", DIRECTOR]


@pytest.mark.parametrize(
    ("question", "previous", "expected"),
    [
        # Refers back, and the previous question is near (cosine above NEAR_COSINE) or not.
        ("Where did the couple go after the parade ended?", "How many people marched in the parade?", True),
        ("Where did the couple go after the parade ended?", BUDGET, False),
        (
            "When will the city council vote on it again?",
            "How much will the new stadium cost the city?",
            True,
        ),
        (
            "When will the city council vote on it again?",
            "How many penguins live on the Otago Peninsula?",
            False,
        ),
        # After a question that asked "who", a "he" refers to its answer.
        ("What did he say about police training?", DIRECTOR, True),
        # Short ("it" and one word of its own), a fragment, "that" as subject: only sense after another.
        ("What did it cost?", BUDGET, True),
        ("For how long?", BUDGET, True),
        ("How did that compare with the year before?", "How many people marched in the parade?", True),
        # No referring word: a follow-up only if it shares a rare term with a near previous question.
        ("What will the grant pay for?", "Which trust gave the hospice a grant?", True),
        ("What will the grant pay for?", BUDGET, False),
        # The question says itself what its "the director" or "its" is.
        (DIRECTOR, BUDGET, False),
        ("How much will the scheme cost in its first year?", DIRECTOR, False),
    ],
)
def test_is_follow_up(engine: Engine, question: str, previous: str, expected: bool) -> None:
    assert _decide(engine, question, previous) is expected


def test_follow_up_threshold_says_when_no_vector_is_needed() -> None:
    assert follow_up_threshold("How old is Joe Perrone?", BUDGET, shared_idf=0.0) == math.inf
    assert follow_up_threshold("For how long?", BUDGET, shared_idf=0.0) == -math.inf
    assert follow_up_threshold("What did he say about police training?", DIRECTOR, 0.0) == -math.inf
    assert 0.0 < follow_up_threshold("Where did the couple go after the parade ended?", BUDGET, 0.0) < 1.0
    # A shared rare term makes a question with no referring word a candidate, unless it names its subject.
    assert 0.0 < follow_up_threshold("What will the grant pay for?", BUDGET, shared_idf=9.0) < 1.0
    assert follow_up_threshold("What will the Hamilton grant pay for?", BUDGET, shared_idf=9.0) == math.inf


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did he say?", ["he"]),
        ("What did the director say about police training?", ["the director"]),
        ("Which airline ran it?", ["it"]),
        ("How did that compare with last year?", ["that"]),
        ("What did her trainer urge her to do?", ["her", "her"]),
        (DIRECTOR, []),
        ("What did the director Ann Lee say?", []),
        ("How much did it cost to rebuild the church?", []),
        ("How many households that switched saved money this year?", []),
        ("How much will the scheme cost in its first year?", []),
        ("What did Ann Lee say about her plan?", []),
        ("How old was the winner when he took the prize?", []),
        ("How much do customers pay compared with those on fixed deals?", []),
    ],
)
def test_referring_words(question: str, expected: list[str]) -> None:
    assert referring_words(question) == expected
