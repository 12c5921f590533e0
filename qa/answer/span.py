"""Pick the short part of an answer sentence to highlight.

There is no reader model offline, so this is a typed heuristic: the question
word says what kind of span answers it (a name for "who", a time for "when",
a number for "how many", an age for "how old", a distance for "how far"), and
among the spans of that kind in the sentence the one that is not just an echo
of the question and sits nearest the words the question shares with the
sentence wins. When no typed span fits, the whole sentence is the answer:
highlighting nothing specific beats a wrong guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.answer.values import widen_value
from qa.corpus.months import MONTH_PATTERN
from qa.index.entities import LABELS_FOR_KIND

# A named entity of a sentence: (start, end, OntoNotes label), offsets within the sentence.
Entity = tuple[int, int, str]
# Kinds whose capitalised-word patterns are too loose to use beside a tagger's entities.
_ENTITY_ONLY = frozenset({"name", "place"})

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")

_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    "fifty|hundred|hundreds|thousand|thousands|dozen|dozens|several|a few|no|none|zero"
)

_TIME = re.compile(
    rf"\b(?:(?:about|around|at|after|before|by|until)\s+)?"
    rf"(?:\d{{1,2}}(?:[.:]\d{{2}})?\s?(?:am|pm|a\.m\.|p\.m\.)"
    rf"|(?:(?:early|late)\s+)?(?:{_DAYS})(?:\s+(?:morning|afternoon|evening|night))?"
    rf"|\d{{1,2}}\s+(?:{MONTH_PATTERN})(?:\s+\d{{4}})?|(?:{MONTH_PATTERN})(?:\s+\d{{1,2}})?(?:,?\s+\d{{4}})?"
    rf"|(?:in\s+)?(?:19|20)\d{{2}}|(?:this|last|yesterday)\s+(?:morning|afternoon|evening|night|weekend|year)"
    rf"|yesterday|overnight|today|tonight)\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    rf"\b(?:(?:about|around|more than|less than|over|under|nearly|almost|just)\s+)?"
    rf"(?:\d[\d,.]*+(?!\s?(?:am|pm|a\.m\.|p\.m\.))|(?:{_NUMBER_WORDS})(?:\s+or\s+(?:{_NUMBER_WORDS}))?)"
    rf"(?:\s+(?!(?:and|or|the|a|to|of|in)\b)[a-z]+){{0,2}}",
    re.IGNORECASE,
)
# A number as words or digits, with an optional hedge and a second number
# ("five or six", "just a few hundred").
_NUMBER = (
    rf"(?:(?:about|around|more than|less than|over|under|nearly|almost|just|some)\s+)?"
    rf"(?:\d[\d,.]*|(?:a\s+)?(?:{_NUMBER_WORDS}))(?:[\s-]+(?:or|to|and)?\s*(?:\d[\d,.]*|{_NUMBER_WORDS}))*"
)
# An age: "25-year-old", "aged 25", "25 years old", or the news style "Joe Perrone, 25,".
_AGE = re.compile(
    rf"\b{_NUMBER}[\s-]+years?[\s-]+old\b|\baged\s+\d{{1,3}}\b|(?<=,\s)\d{{1,3}}(?=,)|\(\d{{1,3}}\)",
    re.IGNORECASE,
)
_DISTANCE = re.compile(
    rf"\b{_NUMBER}\s*(?:metres?|meters?|kilometres?|kilometers?|km|miles?|feet|foot|yards?|blocks?|m)\b",
    re.IGNORECASE,
)
_DURATION = re.compile(
    rf"\b{_NUMBER}\s+(?:seconds?|minutes?|hours?|days?|nights?|weeks?|months?|years?|decades?|centuries)\b"
    rf"|\b(?:since|for)\s+(?:(?:19|20)\d{{2}}|{_NUMBER}\s+\w+)",
    re.IGNORECASE,
)
_AMOUNT = re.compile(
    r"[$\u00a3\u20ac\u00a5]\s?\d[\d,.]*(?:\s?(?:million|billion|m|bn|k)\b)?"
    rf"|\b{_NUMBER}\s?(?:%|per ?cent\b|dollars\b|pounds\b|euros\b|million\b|billion\b|tonnes?\b|kg\b)",
    re.IGNORECASE,
)
# A run of capitalised words, allowing inner "of"/"de"/"van" particles: names
# of people, places and organisations.
_NAME = re.compile(r"\b[A-Z][\w\u2019'&.-]*(?:\s+(?:(?:of|de|van|von|der)\s+)?[A-Z][\w\u2019'&.-]*)*")
# Capitalised words that are not names: sentence openers, months, days.
_NOT_NAMES = frozenset(
    (
        "a an the in on at of for and but or if as so he she it they we i you his her their our "
        "this that these those there then when while after before following during however "
        "instead meanwhile police mr mrs ms dr " + (MONTH_PATTERN + "|" + _DAYS).replace("|", " ")
    )
    .lower()
    .split()
)
_PLACE = re.compile(
    r"\b(?:at|in|on|near|outside|from|down|by)\s+(?:the\s+)?[A-Z][\w\u2019'&.-]*(?:\s+(?:&\s+)?[A-Z][\w\u2019'&.-]*)*"
)

# First match wins: the specific numeric kinds come before "how many"/"how much".
_KIND_BY_QUESTION = (
    (re.compile(r"\bhow old\b|\b(at )?what age\b", re.I), "age"),
    (re.compile(r"\bhow (far|close|near)\b|\bwhat distance\b", re.I), "distance"),
    (re.compile(r"\bhow long\b", re.I), "duration"),
    (re.compile(r"\bhow much\b", re.I), "amount"),
    (
        re.compile(
            r"^\s*(who|whom|whose)\b|\bwhich (man|woman|person|officer|group)\b"
            r"|\bwhat (is|was|were|are) the names? of\b|\bwhat (is|was) (he|she|it|they) called\b"
            r"|\b(which|what) (company|organi[sz]ation|firm|team|party|newspaper|university|club|band)\b",
            re.I,
        ),
        "name",
    ),
    (re.compile(r"^\s*when\b|\bwhat (time|day|date|year|month)\b|\bwhich (day|year)\b", re.I), "time"),
    (re.compile(r"\bhow many\b|\bwhat (number|percentage)\b", re.I), "quantity"),
    (
        re.compile(
            r"^\s*where\b|\bwhat (street|place|city|shop|restaurant)\b"
            r"|\b(which|what) (country|city|town|state|region|county|river|suburb|village|island)\b",
            re.I,
        ),
        "place",
    ),
)
_PATTERNS = {
    "name": _NAME,
    "time": _TIME,
    "age": _AGE,
    "distance": _DISTANCE,
    "duration": _DURATION,
    # "How much": money, a share or a weight; a bare number is too vague to count.
    "amount": _AMOUNT,
    "quantity": _QUANTITY,
    "place": _PLACE,
}


@dataclass(frozen=True)
class QuestionShape:
    """What a question asks for, worked out once per question, not per candidate sentence."""

    kind: str | None
    words: frozenset[str]


def question_shape(question: str) -> QuestionShape:
    """The answer kind of ``question`` and its lower-cased words."""
    return QuestionShape(answer_kind(question), frozenset(w.lower() for w in _WORD.findall(question)))


def answer_kind(question: str) -> str | None:
    """The kind of span a question asks for, or None for an open question."""
    for pattern, kind in _KIND_BY_QUESTION:
        if pattern.search(question):
            return kind
    return None


def answer_span(
    question: str | QuestionShape, sentence: str, entities: Sequence[Entity] = ()
) -> tuple[int, int]:
    """Offsets (start, end) within ``sentence`` of the part that answers ``question``.

    Returns ``(0, len(sentence))`` when no typed span fits.
    """
    return typed_span(question, sentence, entities) or (0, len(sentence))


def typed_span(
    question: str | QuestionShape, sentence: str, entities: Sequence[Entity] = ()
) -> tuple[int, int] | None:
    """The span of the kind ``question`` asks for, or None if it has none.

    A sentence that holds a span of the asked kind ("who" -> a name not in the
    question, "how old" -> an age) is likelier to answer than one that only
    echoes the question. ``entities`` are the sentence's named entities
    (start, end, label) from the index: an entity of a fitting type is
    preferred to a pattern match, and for names and places, where patterns
    cannot tell a person from a broadcaster, only entities count when given.
    """
    spans = typed_spans(question, sentence, entities)
    return max(spans, key=lambda item: item[0])[1] if spans else None


def typed_spans(
    question: str | QuestionShape, sentence: str, entities: Sequence[Entity] = ()
) -> list[tuple[tuple[float, int, int], tuple[int, int]]]:
    """Every span of the asked kind in ``sentence`` with the key :func:`typed_span` ranks them by.

    The key prefers spans made of words the question lacks, then entities,
    then the span nearest the words the question shares with the sentence.
    """
    shape = question if isinstance(question, QuestionShape) else question_shape(question)
    kind, question_words = shape.kind, shape.words
    if kind is None:
        return []
    shared = [
        m.start()
        for m in _WORD.finditer(sentence)
        if m.group().lower() in question_words and len(m.group()) > 3
    ]
    labels = LABELS_FOR_KIND.get(kind, frozenset())
    spans = [(1, start, end) for start, end, label in entities if label in labels]
    if not (spans and kind in _ENTITY_ONLY):
        spans += [(0, m.start(), m.end()) for m in _PATTERNS[kind].finditer(sentence)]
    found = []
    for from_entity, start, end in spans:
        if kind == "name":
            end = _strip_trailing_punctuation(sentence, start, end)
        words = [w.lower() for w in _WORD.findall(sentence[start:end])]
        ignored = _NOT_NAMES if kind == "name" else frozenset()
        new_words = [w for w in words if w not in question_words and w not in ignored]
        if not new_words or (kind == "name" and len(new_words) < len(words) / 2):
            continue
        distance = min((abs(start - p) for p in shared), default=0)
        # A figure keeps its currency sign and unit: "$43,000", not "43,000"; "48-page", not "48".
        span = (start, end) if kind in _ENTITY_ONLY else widen_value(sentence, start, end)
        found.append(((len(new_words) / len(words), from_entity, -distance), span))
    return found


def _strip_trailing_punctuation(sentence: str, start: int, end: int) -> int:
    """End of a name without a full stop or dash that closes the sentence.

    The name pattern allows "." inside names ("J. Smith"), so "Twitter." at a
    sentence end keeps its stop; an initial ("J.") keeps it.
    """
    while end > start + 1 and sentence[end - 1] in ".-'\u2019":
        if sentence[end - 1] == "." and (end - 2 == start or not sentence[end - 3].isalnum()):
            break
        end -= 1
    return end
