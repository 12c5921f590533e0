"""The highlight picker and the outlet/date mentions: pure functions on literals."""

from __future__ import annotations

import pytest

from qa.answer.mentions import date_matches, named_dates, named_outlets
from qa.answer.span import answer_kind, answer_span


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who is the director of Auckland Pride?", "name"),
        ("What is the name of the takeaway?", "name"),
        ("When did police scrap the training?", "time"),
        ("What time did the fight start?", "time"),
        ("How many people marched?", "quantity"),
        ("How old is Joe Perrone?", "age"),
        ("How close is his home to the takeaway?", "distance"),
        ("How long had they been together?", "duration"),
        ("How much did the parade cost?", "amount"),
        ("Where did the attack happen?", "place"),
        ("What did police offer the couple?", None),
    ],
)
def test_answer_kind(question: str, kind: str | None) -> None:
    assert answer_kind(question) == kind


@pytest.mark.parametrize(
    ("question", "sentence", "span"),
    [
        (
            "Who is the director of Auckland Pride?",
            "Auckland Pride director Max Tweedie says special training is a necessity.",
            "Max Tweedie",
        ),
        (
            "What time did the attack happen?",
            "He says the incident happened around 4.00am and there were five or six people.",
            "around 4.00am",
        ),
        (
            "How many people attacked them?",
            "He says it happened around 4.00am and there were five or six people attacking them.",
            "five or six people attacking",
        ),
        ("When did it happen?", "It happened early on Sunday.", "Sunday"),
        ("Who posted about it?", "Mr Perrone later wrote about it on Twitter.", "Twitter"),
        ("Who signed it?", "It was signed by J. Smith.", "J. Smith"),
        ("How old is Joe Perrone?", "Joe Perrone, 25, and his partner had been out.", "25"),
        ("How old is the officer?", "The 31-year-old officer declined.", "31-year-old"),
        (
            "How close is the partner's home?",
            "His partner lives just a few hundred metres away, he said on Sunday.",
            "just a few hundred metres",
        ),
        ("How long were they together?", "The pair had been together for three years.", "for three years"),
        ("How much did it cost?", "The festival cost $4.5 million, 20 per cent more.", "$4.5 million"),
    ],
)
def test_typed_questions_highlight_the_span_of_their_kind(question: str, sentence: str, span: str) -> None:
    start, end = answer_span(question, sentence)
    assert sentence[start:end] == span


def test_open_questions_and_echoes_highlight_the_whole_sentence() -> None:
    sentence = "Police offered to call the couple an Uber or taxi."
    assert answer_span("What did police offer the couple?", sentence) == (0, len(sentence))
    # The only name is one the question already has: nothing new to point at.
    echo = "Max Tweedie spoke."
    assert answer_span("Who is Max Tweedie?", echo) == (0, len(echo))


def test_a_number_of_another_kind_is_not_an_answer() -> None:
    # A distance does not answer "how old", nor an age "how far": no span, no typed credit.
    distance = "His partner lives a few hundred metres away."
    assert answer_span("How old is his partner?", distance) == (0, len(distance))
    age = "Joe Perrone, 25, and his partner were attacked."
    assert answer_span("How far away does his partner live?", age) == (0, len(age))


def test_named_outlets_match_whole_phrases_case_insensitively() -> None:
    outlets = ("1 NEWS", "NZ Herald", "Star Observer")
    assert named_outlets("According to the star observer, who left?", outlets) == ("Star Observer",)
    assert named_outlets("What did 1 NEWS and NZ Herald say?", outlets) == ("1 NEWS", "NZ Herald")
    assert named_outlets("What did 11 NEWSAGENTS say?", outlets) == ()


def test_named_dates_in_three_spellings() -> None:
    assert named_dates("on 9 March 2020, March 11 and 2020-03-08") == ("2020-03-09", "--03-11", "2020-03-08")
    assert date_matches("2020-03-11", "--03-11")
    assert not date_matches("2021-03-12", "--03-11")
    assert date_matches("2020-03-09", "2020-03-09")
