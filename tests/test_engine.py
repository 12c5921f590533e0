"""The engine end to end on the bundled corpus, with the real model and indexes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.engine import Engine
from qa.errors import InputError
from qa.web.result_json import result_json

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"


def _assert_verbatim(engine: Engine, result) -> None:
    for answer in result.answers:
        assert answer.citations
        assert answer.text == answer.citations[0].text
        assert 0.0 <= answer.score <= 1.0
        assert answer.span and answer.span in answer.text
        for c in answer.citations:
            body = engine.article(c.doc_id).body
            assert body[c.start : c.end] == c.text
            assert body[c.passage_start : c.passage_end] == c.passage
            assert c.passage_start <= c.start and c.end <= c.passage_end
    for p in result.passages:
        assert engine.article(p.doc_id).body[p.start : p.end] == p.text
    for answer in result_json(result)["answers"]:
        span, lead = answer["span"], answer["citations"][0]
        assert engine.article(lead["doc_id"]).body[span["start"] : span["end"]] == span["text"]


def test_answer_is_a_verbatim_span_cited_to_outlet_and_date(engine: Engine, sources) -> None:
    result = engine.ask("Who is the director of Auckland Pride?")
    assert not result.abstained
    top = result.answers[0]
    assert "Max Tweedie" in top.text
    citation = top.citations[0]
    assert citation.doc_id == "003_2b5d70423e18adf0"
    assert (citation.outlet, citation.date) == ("1 NEWS", "2020-03-09")
    assert citation.url == sources[citation.doc_id]["url"]
    _assert_verbatim(engine, result)


def test_unanswerable_question_abstains(engine: Engine) -> None:
    result = engine.ask("Who won the 2019 Rugby World Cup?")
    assert result.abstained and result.answers == ()
    assert result.passages, "the closest passages are still offered"


def test_same_sentence_in_two_outlets_is_one_answer_with_both_citations(engine: Engine) -> None:
    result = engine.ask("What are police absolutely committed to promoting?")
    top = result.answers[0]
    assert "promoting inclusion, diversity, and dialogue" in top.text
    outlets = {c.outlet for c in top.citations}
    assert {"NZ Herald", "Star Observer"} <= outlets
    assert len({c.doc_id for c in top.citations}) == len(top.citations)
    _assert_verbatim(engine, result)


def test_filters_restrict_outlet_and_date(engine: Engine) -> None:
    result = engine.ask("Did police refuse to escort the couple?", outlets=["star observer"])
    assert result.passages and {p.outlet for p in result.passages} == {"Star Observer"}
    assert all(c.outlet == "Star Observer" for a in result.answers for c in a.citations)
    dated = engine.ask("Did police refuse to escort the couple?", since="2020-03-09", until="2020-03-10")
    assert {p.date for p in dated.passages} == {"2020-03-09"}
    nothing = engine.ask("Did police refuse to escort the couple?", since="2021-01-01")
    assert nothing.abstained and nothing.passages == ()
    assert "no article matches the outlet and date filters" in nothing.notices


def test_follow_up_uses_the_conversation(engine: Engine) -> None:
    result = engine.ask(
        "What did he say about police training?", history=["Who is the director of Auckland Pride?"]
    )
    assert not result.abstained
    assert "training" in result.answers[0].text
    assert result.answers[0].citations[0].doc_id == "003_2b5d70423e18adf0"


def test_bad_input_gets_a_clear_error(engine: Engine) -> None:
    with pytest.raises(InputError, match="question is empty"):
        engine.ask("   ")
    with pytest.raises(InputError, match="top_k must be >= 1, got 0"):
        engine.ask("Who?", top_k=0)
    with pytest.raises(InputError, match="unknown outlet 'The Times'; this corpus has: 1 NEWS"):
        engine.ask("Who?", outlets=["The Times"])
    with pytest.raises(InputError, match="since must be a date YYYY-MM-DD, got 'March'"):
        engine.ask("Who?", since="March")
    with pytest.raises(InputError, match="is after until"):
        engine.ask("Who?", since="2020-03-10", until="2020-03-01")


def test_over_long_question_is_cut_with_a_notice(engine: Engine) -> None:
    result = engine.ask("What time did the attack happen? " + "very " * 200)
    assert len(result.question) <= engine.settings.max_question_chars
    assert result.notices and "was cut" in result.notices[0]


def test_top_k_bounds_the_answers(engine: Engine) -> None:
    assert len(engine.ask("What did police offer the couple?", top_k=1).answers) <= 1


# Words of the bundled articles, so generated questions reach real passages.
_CORPUS_WORDS = sorted(
    {word.strip(".,;:!?()\"'") for path in CORPUS.glob("*.txt") for word in path.read_text("utf-8").split()}
    - {""}
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(_CORPUS_WORDS), min_size=1, max_size=12),
    wh=st.sampled_from(["Who", "What", "When", "Where", "How many", "How old", "Why", ""]),
)
def test_every_answer_and_span_offset_maps_back_to_its_article(
    engine: Engine, words: list[str], wh: str
) -> None:
    """Whatever is asked, every quoted text, passage and highlighted span is the article's own text."""
    result = engine.with_settings(abstain_threshold=0.0).ask(f"{wh} {' '.join(words)}?")
    _assert_verbatim(engine, result)
