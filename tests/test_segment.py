"""Sentence and passage splitting keeps exact offsets, whatever the text."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from qa.index.split import MAX_SENTENCE_CHARS, make_passages, split_sentences

_NEWSY = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Mr Perrone",
                " said",
                ' "I',
                "'m not.",
                '"',
                "“",
                "”",
                "4.00am",
                ". ",
                "! ",
                "? ",
                "\n\n",
                "\n",
                "  ",
                "—",
                "Dr.",
                "U.S.",
                "e.g.",
                "...",
                "é",
                "😀",
                "\t",
                "\r\n",
            ]
        ),
        st.text(min_size=0, max_size=30),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.text(max_size=400), _NEWSY))
def test_every_sentence_and_passage_maps_back_to_the_body(body: str) -> None:
    sentences = split_sentences("doc", body)
    for s in sentences:
        assert body[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert len(s.text) <= MAX_SENTENCE_CHARS
    starts = [s.start for s in sentences]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in itertools.pairwise(sentences))
    passages = make_passages(body, sentences, size=3, stride=2)
    for p in passages:
        assert body[p.start : p.end] == p.text
    covered = {i for p in passages for i in range(p.first_sentence, p.last_sentence)}
    assert covered == set(range(len(sentences)))


@settings(max_examples=100, deadline=None)
@given(body=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=3000))
def test_no_letter_or_digit_is_lost(body: str) -> None:
    sentences = split_sentences("doc", body)
    kept = "".join(s.text for s in sentences)
    assert sum(ch.isalnum() for ch in kept) == sum(ch.isalnum() for ch in body)


def test_abbreviations_times_and_quotes_do_not_split() -> None:
    body = (
        "Mr Perrone says the incident happened around 4.00am on Sunday. "
        '"The police did calm it down. I will give them that. But they were not there to protect us."\n\n'
        "He went home."
    )
    texts = [s.text for s in split_sentences("d", body)]
    assert texts == [
        "Mr Perrone says the incident happened around 4.00am on Sunday.",
        '"The police did calm it down. I will give them that. But they were not there to protect us."',
        "He went home.",
    ]


def test_sentences_never_cross_a_paragraph_break() -> None:
    body = "A headline without a full stop\n\nThe body starts here. It goes on."
    texts = [s.text for s in split_sentences("d", body)]
    assert texts == ["A headline without a full stop", "The body starts here.", "It goes on."]


def test_lone_punctuation_is_not_a_sentence() -> None:
    assert [s.text for s in split_sentences("d", "—\n\nTwo men went home.")] == ["Two men went home."]


def test_passages_overlap_and_end_aligned() -> None:
    body = " ".join(f"Sentence {i}." for i in range(7))
    sentences = split_sentences("d", body)
    assert len(sentences) == 7
    windows = [(p.first_sentence, p.last_sentence) for p in make_passages(body, sentences, 4, 2)]
    # Starts 0 and 2 fit; the last window is pulled back to end at sentence 7.
    assert windows == [(0, 4), (2, 6), (3, 7)]
    short = make_passages(body, sentences[:2], 4, 2)
    assert [(p.first_sentence, p.last_sentence) for p in short] == [(0, 2)]


def test_over_long_sentence_is_cut_at_whitespace() -> None:
    body = "word " * 400
    sentences = split_sentences("d", body)
    assert len(sentences) > 1
    assert all(len(s.text) <= MAX_SENTENCE_CHARS and not s.text.endswith(" ") for s in sentences)
