"""Statement extracts: an attribution and its quote shown together, verbatim."""

from __future__ import annotations

from qa.answer.statement import MAX_STATEMENT_CHARS, statement_direction
from qa.engine import Engine

ATTRIBUTION = "Harbour master Lena Voss says the new buoys are overdue."
QUOTE = "\u201cWe have asked for them for six years and every winter a boat runs aground.\u201d"


def test_an_attribution_reaches_forward_to_the_quote_it_introduces() -> None:
    assert statement_direction(ATTRIBUTION, "", QUOTE) == 1
    assert statement_direction("The harbour master said:", "", QUOTE) == 1


def test_a_quote_with_no_speaker_reaches_back_to_its_attribution() -> None:
    assert statement_direction(QUOTE, ATTRIBUTION, "") == -1


def test_plain_sentences_and_self_attributed_quotes_stay_one_sentence() -> None:
    assert statement_direction("The buoys cost $40,000.", "", QUOTE) == 0
    assert statement_direction('"They are overdue," Voss said.', ATTRIBUTION, "") == 0
    assert statement_direction(QUOTE, "The buoys cost $40,000.", "") == 0
    long_quote = "\u201c" + "word " * (MAX_STATEMENT_CHARS // 5) + "\u201d"
    assert statement_direction(ATTRIBUTION, "", long_quote) == 0


def test_every_extract_is_verbatim_and_holds_its_highlight(engine: Engine) -> None:
    for question in (
        "What did Max Tweedie say about police training?",
        "What did the police commissioner say?",
        "Who is the director of Auckland Pride?",
    ):
        for answer in engine.ask(question, top_k=5).answers:
            lead = answer.citations[0]
            body = engine.article(lead.doc_id).body
            assert body[lead.start : lead.end] == lead.text == answer.text
            end = len(answer.text) if answer.span_end < 0 else answer.span_end
            assert 0 <= answer.span_start <= end <= len(answer.text)
            assert answer.span and answer.span in answer.text
