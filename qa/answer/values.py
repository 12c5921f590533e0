"""Typed values in answer spans, read and normalised so two outlets' figures can be compared.

"$43,000" and "43,000 dollars" are one value, "47-page" is 47 pages, "forty-seven"
is 47, and "on Sunday" in an article dated Monday 9 March 2020 is 2020-03-08.
A value that cannot be read (a vague "recently", a currency without a number)
is None: the caller counts that article as not giving the value, never as a
different one. Pure functions; the article's date comes in as an argument.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from qa.corpus.months import MONTH_PATTERN, MONTHS

_SMALL = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2)
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_SUFFIX_SCALES = {"k": 1_000, "m": 1_000_000, "bn": 1_000_000_000}
_NUMBER_WORD = "|".join([*_SMALL, *_TENS, *_SCALES, "dozen", "a", "and"])
_WORD_NUMBER = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*\b", re.I)
_DIGITS = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s?(million|billion|thousand|bn|m|k)\b)?", re.I)
_AGE = re.compile(
    rf"aged\s+(?:\d{{1,3}}|{_WORD_NUMBER.pattern})"
    rf"|(?:\d{{1,3}}|{_WORD_NUMBER.pattern})[\s-]+years?[\s-]+old",
    re.I,
)
_PLAIN_DIGITS = re.compile(r"\d[\d,]*(?:\.\d+)?")
_APPROXIMATE = r"about|around|nearly|almost|roughly|approximately|some|an estimated|estimated"
_AT_LEAST = r"more than|over|at least|just over|upwards of"
_AT_MOST = r"less than|under|up to|at most|just under|fewer than"
_HEDGES = ((_APPROXIMATE, "about"), (_AT_LEAST, "over"), (_AT_MOST, "under"))
_CURRENCIES = (
    ("$", r"(?:[A-Z]{1,2})?\$|dollars?\b"),
    ("£", r"£|pounds?\b"),
    ("€", r"€|euros?\b"),
    ("¥", r"¥|yen\b"),
)
_PERCENT = re.compile(r"%|\bper ?cent\b|\bpercent\b", re.I)
_UNITS = {
    "m": ("m", 1.0),
    "metre": ("m", 1.0),
    "meter": ("m", 1.0),
    "km": ("m", 1000.0),
    "kilometre": ("m", 1000.0),
    "kilometer": ("m", 1000.0),
    "cm": ("m", 0.01),
    "mile": ("mile", 1.0),
    "foot": ("ft", 1.0),
    "feet": ("ft", 1.0),
    "ft": ("ft", 1.0),
    "kg": ("kg", 1.0),
    "kilogram": ("kg", 1.0),
    "kilo": ("kg", 1.0),
    "tonne": ("kg", 1000.0),
    "ton": ("kg", 1000.0),
    "g": ("kg", 0.001),
    "gram": ("kg", 0.001),
    "litre": ("l", 1.0),
    "liter": ("l", 1.0),
    "hectare": ("ha", 1.0),
    "ha": ("ha", 1.0),
}
# A unit right after a number ("3km", "47-page", "5 kilometres"): only units that measure.
_UNIT_AFTER = re.compile(r"^[\s-]?([a-z]+)\b", re.I)
_CLOCK = re.compile(r"\b(\d{1,2})(?:[.:](\d{2}))?\s?(am|pm|a\.m\.|p\.m\.)|\b(\d{1,2}):(\d{2})\b", re.I)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY = re.compile(rf"\b(next\s+|last\s+)?({'|'.join(_DAYS)})\b", re.I)
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({MONTH_PATTERN})\b(?:,?\s+(\d{{4}}))?", re.I
)
_MONTH_DAY = re.compile(rf"\b({MONTH_PATTERN})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?", re.I)
_MONTH_YEAR = re.compile(rf"\b({MONTH_PATTERN})(?:\s+(\d{{4}}))?\b", re.I)
_VAGUE = re.compile(
    r"\b(?:hundreds|thousands|millions|billions|dozens|tens)\b|\b(?:few|several|many)\s+(?:hundred|thousand|million)",
    re.I,
)
_VAGUE_BEFORE = re.compile(r"\b(?:few|several|many|some few)\s*$", re.I)
_MONTH_BEFORE = re.compile(rf"\b(?:{MONTH_PATTERN})\s*$", re.I)
_MONTH_AFTER = re.compile(rf"\s*(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTH_PATTERN})\b", re.I)
_YEAR = re.compile(r"\b((?:19|20)\d{2})\b")
_RELATIVE_DAYS = {"yesterday": -1, "today": 0, "tonight": 0, "last night": -1, "tomorrow": 1}
_TITLES = frozenset(["mr", "mrs", "ms", "miss", "dr", "prof", "sir", "dame", "the", "lord", "lady", "st"])
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# Asked kinds (qa.answer.span) whose values are names rather than figures.
_NAME_KINDS = {"name": "person", "place": "place"}


@dataclass(frozen=True)
class Value:
    """A value read from a span: its kind, a canonical form, and the number behind a figure.

    ``hedge`` is "about" for a rounded figure ("about 2,300" agrees with 2,320 but
    not 2,350), "over" or "under" for a bound ("more than 200" agrees with 240);
    "" for a figure given as exact.
    """

    kind: str
    text: str
    normalized: str
    number: float | None = None
    hedge: str = ""


def parse_number(text: str, money: bool = False) -> float | None:
    """The first number in ``text``: digits ("43,350", "1.4 million") or words ("forty-seven").

    ``money``: read "m", "k" and "bn" after digits as scales ("£2bn"); elsewhere "3m" is three metres.
    """
    found = _first_number(text, _DIGITS)
    if found is None:
        return None
    if found.re is _DIGITS:
        whole, fraction, scale = found.groups()
        value = float(whole.replace(",", "") + (f".{fraction}" if fraction else ""))
        scale = (scale or "").lower()
        if scale in _SCALES:
            value *= _SCALES[scale]
        elif scale and money:
            value *= _SUFFIX_SCALES[scale]
        return value
    return _words_value(found.group())


def _first_number(text: str, digits: re.Pattern[str]) -> re.Match[str] | None:
    """The first number in ``text``: a match of ``digits``, or of number words that make a number.

    Digits win a tie, so "1.4 million" is read as digits with a scale.
    """
    numeral = digits.search(text)
    words = next((m for m in _WORD_NUMBER.finditer(text) if _words_value(m.group()) is not None), None)
    if numeral and (words is None or numeral.start() <= words.start()):
        return numeral
    return words


def _words_value(text: str) -> float | None:
    """ "two hundred and fifty" -> 250, "a dozen" -> 12; None for words that are no number ("a")."""
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", text.lower()):
        if word in _SMALL:
            current += _SMALL[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "dozen":
            current = (current or 1) * 12
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0
        elif word in ("a", "and"):
            continue
        seen = seen or word not in ("a", "and")
    return float(total + current) if seen else None


def _figure(number: float) -> str:
    """43350.0 -> "43350", 1.25 -> "1.25": one spelling for equal numbers."""
    return str(int(number)) if number == int(number) else f"{number:.6g}"


def read_value(
    asked: str, text: str, article_date: str = "", before: str = "", after: str = ""
) -> Value | None:
    """The value in span ``text`` for a question asking for kind ``asked`` (qa.answer.span's kinds).

    Args:
        asked: the question's answer kind ("amount", "quantity", "time", "age", "name", ...).
        text: the span, with its unit or currency sign (see :func:`widen_value`).
        article_date: the article's ISO date, which "on Sunday" and "3 November" are read against.
        before: the sentence text before the span, where a hedge ("about") may stand.
        after: the sentence text after it; a figure beside a month ("August 10") is a date, not a count.
    """
    if asked in _NAME_KINDS:
        return _name_value(_NAME_KINDS[asked], text)
    hedged = _hedge(before, text)
    if asked == "time":
        return _when_value(text, article_date, hedged)
    if asked == "age":
        return _age_value(text, before, hedged)
    if _CLOCK.search(text) or _MONTH_BEFORE.search(before) or _MONTH_AFTER.match(after):
        return None
    # A figure cut from a longer word ("hundred" of "hundreds") or after "a few" is no figure.
    if _VAGUE_BEFORE.search(before) or after[:1].isalpha():
        return None
    return _figure_value(text, hedged)


def _hedge(before: str, text: str) -> str:
    """ "about", "over" or "under" when a hedge stands before the figure or opens the span; else ""."""
    for pattern, hedge in _HEDGES:
        if re.search(rf"\b(?:{pattern})\s*$", before, re.I) or re.match(rf"\s*(?:{pattern})\b", text, re.I):
            return hedge
    return ""


def _age_value(text: str, before: str, hedged: str) -> Value | None:
    """An age: "53-year-old", "aged 52", "52 years old", or a bare number after "aged" or between commas."""
    stated = _AGE.fullmatch(text.strip())
    bare = re.fullmatch(r"\(?\d{1,3}\)?", text.strip()) and re.search(r"(?:,|\(|\baged?)\s*$", before)
    age = parse_number(text) if stated or bare else None
    return Value("age", text, _figure(age), age, hedged) if age is not None and 0 < age < 125 else None


def _figure_value(text: str, hedged: str) -> Value | None:
    currency = next(((s, p) for s, p in _CURRENCIES if re.search(p, text, re.I)), None)
    number = parse_number(text, money=currency is not None)
    # "one" is far more often a pronoun ("one of the largest") than a count; "hundreds" and
    # "a few thousand" name no figure.
    if number is None or re.fullmatch(r"(?:an?\s+)?one", text.strip(), re.I) or _VAGUE.search(text):
        return None
    if currency is not None:
        prefix = re.search(r"\b[A-Z]{1,2}(?=\$)", text) if currency[0] == "$" else None
        sign = (prefix.group() if prefix else "") + currency[0]
        return Value("money", text, f"{sign}{_figure(number)}", number, hedged)
    if _PERCENT.search(text):
        return Value("percent", text, f"{_figure(number)}%", number, hedged)
    unit = _unit(text)
    if unit is not None:
        name, factor = unit
        return Value("quantity", text, f"{_figure(number * factor)} {name}", number * factor, hedged)
    return Value("number", text, _figure(number), number, hedged)


def _unit(text: str) -> tuple[str, float] | None:
    """The measuring unit after a span's number ("3km" -> metres); None for a count."""
    digits = _PLAIN_DIGITS.search(text) or _WORD_NUMBER.search(text)
    if digits is None:
        return None
    match = _UNIT_AFTER.match(text[digits.end() :])
    if match is None:
        return None
    word = match.group(1).lower()
    singular = word[:-1] if word.endswith("s") and word[:-1] in _UNITS else word
    return _UNITS.get(singular)


def _when_value(text: str, article_date: str, hedged: str) -> Value | None:
    clock = _CLOCK.search(text)
    if clock:
        hour, minute, half, hour24, minute24 = clock.groups()
        if hour24 is not None:
            h, m = int(hour24), int(minute24)
        else:
            h, m = int(hour) % 12 + (12 if half.lower().startswith("p") else 0), int(minute or 0)
        if h < 24 and m < 60:
            return Value("time", text, f"{h:02d}:{m:02d}", h * 60.0 + m, hedged)
    day = _date(text, article_date)
    return Value("date", text, day) if day else None


def _date(text: str, article_date: str) -> str | None:
    """An ISO date (or "YYYY-MM", "YYYY", "--MM-DD" when that is all the text and article tell)."""
    try:
        published: dt.date | None = dt.date.fromisoformat(article_date)
    except ValueError:
        published = None
    year = str(published.year) if published else None
    for pattern, order in ((_DAY_MONTH, "dmy"), (_MONTH_DAY, "mdy")):
        match = pattern.search(text)
        if match:
            first, second, given_year = match.groups()
            day, month = (first, second) if order == "dmy" else (second, first)
            month_number = [m.lower() for m in MONTHS].index(month.lower()) + 1
            when = given_year or year
            return f"{when or '-'}-{month_number:02d}-{int(day):02d}"
    lowered = text.lower()
    weekday = _WEEKDAY.search(text)
    if weekday and published:
        wanted = _DAYS.index(weekday.group(2).lower())
        back = (published.weekday() - wanted) % 7
        forward = (wanted - published.weekday()) % 7 or 7
        ahead = (weekday.group(1) or "").lower().startswith("next")
        return (published + dt.timedelta(days=forward if ahead else -back)).isoformat()
    for word, shift in _RELATIVE_DAYS.items():
        if published and re.search(rf"\b{word}\b", lowered):
            return (published + dt.timedelta(days=shift)).isoformat()
    month_year = _MONTH_YEAR.search(text)
    if month_year:
        month_number = [m.lower() for m in MONTHS].index(month_year.group(1).lower()) + 1
        when = month_year.group(2) or year
        return f"{when}-{month_number:02d}" if when else None
    found_year = _YEAR.search(text)
    return found_year.group(1) if found_year else None


def _name_value(kind: str, text: str) -> Value | None:
    words = [w.lower().replace("\u2019", "'") for w in _NAME_WORD.findall(text)]
    words = [w[:-2] if w.endswith("'s") else w for w in words if w.rstrip(".") not in _TITLES]
    return Value(kind, text, " ".join(words)) if words else None


def same_value(a: Value, b: Value) -> bool:
    """Whether two values agree: equal once normalised, or within a hedge, or one name inside the other.

    Values of different kinds, or of different currencies or units, cannot
    disagree: only like is compared with like.
    """
    if a.kind != b.kind or a.normalized == b.normalized:
        return True
    if a.kind in ("person", "place"):
        left, right = set(a.normalized.split()), set(b.normalized.split())
        return left <= right or right <= left
    if a.kind == "date":
        # Only dates told to the same precision can disagree: "1721" (the year a violin was
        # made) and "Sunday" (the day it sold) are answers to different questions.
        x, y = sorted((a.normalized, b.normalized))  # a "--MM-DD" without a year sorts first
        if x.startswith("--") and len(y) == 10:
            return y.endswith(x[1:])
        return len(x) != len(y) or x == y
    if a.kind in ("money", "quantity") and _currency_or_unit(a) != _currency_or_unit(b):
        return True
    if a.number is None or b.number is None:
        return True
    if a.hedge or b.hedge:
        return _within_hedge(a, b) or _within_hedge(b, a)
    return False


def _within_hedge(hedged: Value, other: Value) -> bool:
    """Whether ``other`` fits what hedged figure ``hedged`` says (see Value)."""
    x, y = hedged.number or 0.0, other.number or 0.0
    if hedged.hedge == "over":
        return y >= x
    if hedged.hedge == "under":
        return y <= x
    if hedged.hedge != "about":
        return False
    if hedged.kind == "time":
        return abs(x - y) <= 30.0
    # "about 2,300" stands for 2,250 to 2,350 (exclusive): half a unit of its last non-zero digit.
    unit = 1.0
    while x and x % (unit * 10) == 0:
        unit *= 10
    return abs(x - y) < unit / 2 if x else x == y


def _currency_or_unit(value: Value) -> str:
    if value.kind == "money":
        return re.sub(r"[\d.]", "", value.normalized)
    return value.normalized.split(" ", 1)[-1]


_SIGN_BEFORE = re.compile(r"(?:[A-Z]{1,2})?[$£€¥]\s?$")
_UNIT_SUFFIX = re.compile(
    r"^(?:\s?%|\s?per ?cent\b|\s?percent\b|-[a-z]+(?:-[a-z]+)*|\s?(?:am\b|pm\b|a\.m\.|p\.m\.)"
    r"|(?:km|kg|cm|m|bn|k|ha)\b|\s(?:million|billion|dollars|pounds|euros|metres|meters|kilometres|"
    r"kilometers|miles|feet|tonnes|kilograms|litres|hectares)\b)",
    re.I,
)


def widen_value(sentence: str, start: int, end: int) -> tuple[int, int]:
    """``sentence[start:end]`` widened to take in a currency sign before and a unit after it.

    A tagger's MONEY entity may be "43,000" in "$43,000", and a cardinal "47" in
    "47-page": shown or compared without them the figure misleads.
    """
    sign = _SIGN_BEFORE.search(sentence[:start])
    if sign and start > 0:
        start = sign.start()
    words = sentence[start:end].split()
    if words and (sentence[end - 1].isdigit() or words[-1].lower() in _SCALES):
        unit = _UNIT_SUFFIX.match(sentence[end:])
        if unit:
            end += len(unit.group().rstrip())
    return start, end


def tight_value(sentence: str, start: int, end: int) -> tuple[int, int]:
    """The figure inside ``sentence[start:end]`` with its sign and unit, without the words around it.

    A count pattern takes words after the number ("Twelve night", "47, is alleged"): shown as the
    value an outlet gives, only the figure should be.
    """
    found = _first_number(sentence[start:end], _PLAIN_DIGITS)
    if found is None:
        return start, end
    number_end = start + found.end()
    while number_end > start + found.start() and sentence[number_end - 1] in ",.":
        number_end -= 1
    lo, hi = widen_value(sentence, start + found.start(), number_end)
    return lo, max(hi, number_end)
