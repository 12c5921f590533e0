"""Normalisation of answer values (qa.answer.values): what counts as the same figure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.answer.values import parse_number, read_value, same_value, widen_value


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("43,350", 43350),
        ("1.4 million", 1_400_000),
        ("forty-seven", 47),
        ("two hundred and fifty", 250),
        ("a dozen", 12),
        ("Twelve", 12),
        ("3,000", 3000),
        ("no figure here", None),
    ],
)
def test_numbers_in_digits_and_words(text, number):
    assert parse_number(text) == number


def test_letter_scales_count_only_for_money():
    assert parse_number("£2bn", money=True) == 2_000_000_000
    assert parse_number("3m") == 3


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("$43,000", "43,000 dollars", True),
        ("$43,350", "$43,000", False),
        ("£1.5m", "£1.5 million", True),
        ("£1.2 million", "£1.5m", False),
        ("$43,000", "£43,000", True),  # another currency: not comparable, so no disagreement
        ("about $40,000", "$43,000", True),  # a hedge allows 10%
        ("about $40,000", "$48,000", False),
        ("12 per cent", "12%", True),
        ("4.99%", "4.5 per cent", False),
    ],
)
def test_money_and_percentages(a, b, same):
    assert same_value(read_value("amount", a), read_value("amount", b)) is same


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("twelve", "12", True),
        ("Twelve", "14", False),
        ("47-page", "48-page", False),
        ("3km", "3,000 metres", True),
        ("3km", "five kilometres", False),
    ],
)
def test_counts_and_quantities(a, b, same):
    assert same_value(read_value("quantity", a), read_value("quantity", b)) is same


def test_dates_read_against_the_article_date():
    # 2020-03-09 was a Monday: "Sunday" is the day before.
    assert read_value("time", "on Sunday", "2020-03-09").normalized == "2020-03-08"
    assert read_value("time", "next Tuesday", "2020-03-09").normalized == "2020-03-10"
    assert read_value("time", "3 November", "2023-10-04").normalized == "2023-11-03"
    assert read_value("time", "yesterday", "2020-03-09").normalized == "2020-03-08"
    sunday = read_value("time", "on Sunday", "2024-03-11")
    assert same_value(sunday, read_value("time", "10 March", "2024-03-12"))
    assert not same_value(
        read_value("time", "on Tuesday", "2024-03-15"), read_value("time", "14 March", "2024-03-16")
    )
    # A year and a day answer different questions: never a disagreement.
    assert same_value(read_value("time", "2019"), sunday)


def test_clock_times():
    assert read_value("time", "4am").normalized == "04:00"
    assert read_value("time", "4.30pm").normalized == "16:30"
    assert same_value(read_value("time", "4am"), read_value("time", "4 a.m."))
    assert not same_value(read_value("time", "4am"), read_value("time", "4.30am"))
    assert same_value(read_value("time", "around 4am"), read_value("time", "4.15am"))


def test_ages():
    assert read_value("age", "53-year-old").normalized == "53"
    assert read_value("age", "aged 52").normalized == "52"
    assert read_value("age", "fifty-two years old").normalized == "52"
    assert read_value("age", "25", before="Joe Perrone, ").normalized == "25"
    # A bare number that is not set off as an age, or a distance, is no age.
    assert read_value("age", "1", before="at ") is None
    assert read_value("age", "a few hundred metres") is None
    # "three years" is how long, not how old.
    assert read_value("age", "three years") is None


def test_names_agree_when_one_is_part_of_the_other():
    assert same_value(read_value("name", "Mr Carver"), read_value("name", "John Carver"))
    assert not same_value(read_value("name", "Maren Holt"), read_value("name", "Desmond Ashby"))


def test_a_value_keeps_its_sign_and_unit():
    sentence = "He paid $43,000 for a 47-page report at 4 am."
    for inner, whole in (("43,000", "$43,000"), ("47", "47-page"), ("4", "4 am")):
        start = sentence.index(inner, sentence.index(whole))
        lo, hi = widen_value(sentence, start, start + len(inner))
        assert sentence[lo:hi] == whole


@given(st.integers(min_value=0, max_value=10**9))
def test_digits_with_thousands_separators_read_back(n):
    assert parse_number(f"{n:,}") == n
    assert same_value(read_value("amount", f"${n:,}"), read_value("amount", f"{n} dollars"))
