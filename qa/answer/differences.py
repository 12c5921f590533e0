"""Where outlets differ: articles that answer the same question with different values.

For a question that asks for a typed value (how much, how many, when, how old,
who, where), the answering candidates from different articles are compared by
the value each gives (qa.answer.values). A difference is reported only when
two or more articles answer and give values of the same kind that do not
agree; an article that gives no value, or two values of its own, says nothing
either way.

A candidate answers the same question as the anchor (the best-ranked one that
gives a value) when its article tells the same event (the mean vectors of the
two articles' opening sentences are within ``same_event_cosine``) and either:

- its value stands in the same clause as the question's focus, the rarest
  question term the candidates use ("a $43,350 gold-plated men's Rolex watch"
  for "How much did the Rolex watch cost?"); a sentence listing many purchases
  answers for the one beside "Rolex", whatever the reader thinks of the whole; or
- the reader passes it (confidence at or above the abstention threshold) and it
  is about the same fact as the anchor (sentence cosine ``same_fact_cosine``):
  the reader also passes "$7,000 paid to the taxidermist" for the watch's price.

Values are taken from the focus clause when there is one, so a list sentence
gives the watch's price and not the furniture's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qa.answer.scoring import ScoredSentence
from qa.answer.span import QuestionShape, question_shape, typed_span, typed_spans
from qa.answer.values import Value, read_value, same_value, tight_value
from qa.index.entities import sentence_entities
from qa.index.store import IndexData
from qa.records import Difference, ReportedValue

# Where a clause ends: ", " (not the comma inside "43,350"), ";", a dash, a
# bracket, or a conjunction that starts another item of a list.
_CLAUSE_BREAK = re.compile(r",\s|;\s*|\s[\u2013\u2014-]+\s|[()]|\s(?:and|but|while|whereas|which)\s")
# Asked kinds whose whole span is the value ("on Sunday", "Maren Holt"), not a figure inside it.
_WHOLE_SPAN_KINDS = frozenset({"name", "place", "time", "age"})
# How near the focus a value must stand, in words; a clause break between them counts as CLAUSE_WORDS.
FOCUS_WORDS = 12
CLAUSE_WORDS = 5
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
# Entity labels that name an event's people, places and things (qa.index.entities), which its accounts share.
_EVENT_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"})
# A capitalised name of one or more words ("Best Buy", "Rolex").
_NAME = re.compile(r"\b[A-Z][\w'\u2019.-]*(?:\s+[A-Z][\w'\u2019.-]*)*")
# Sentences of an article's opening that stand for its event.
LEAD_SENTENCES = 3


@dataclass(frozen=True)
class Thresholds:
    """When a candidate counts: the reader's confidence, and the cosines for same fact and same event."""

    confidence: float
    same_fact_cosine: float
    same_event_cosine: float


@dataclass(frozen=True)
class _Found:
    value: Value
    reported: ReportedValue
    in_focus: bool
    vector: np.ndarray
    lead: np.ndarray
    names: frozenset[str]


def find_differences(
    data: IndexData,
    question: str,
    terms: Mapping[str, float],
    ranked: Sequence[ScoredSentence],
    thresholds: Thresholds,
) -> tuple[Difference, ...]:
    """The differences among the candidates ``ranked`` (best first), one per kind of value.

    ``terms`` are the question's index terms with their idf, which name its focus.
    """
    shape = question_shape(question)
    if shape.kind is None:
        return ()
    focus = _focus(data, question, terms, ranked)
    anchor: _Found | None = None
    by_article: dict[str, list[tuple[Value, ReportedValue]]] = {}
    for candidate in ranked:
        found = _sentence_value(data, shape, focus, candidate.sentence_id)
        if found is None:
            continue
        passed = candidate.confidence >= thresholds.confidence
        if anchor is None:
            if not (found.in_focus or passed):
                continue
            anchor = found
        elif not _same_question(found, anchor, passed, thresholds):
            continue
        by_article.setdefault(found.reported.doc_id, []).append((found.value, found.reported))
    return _differences([values[0] for values in by_article.values() if _consistent(values)])


def _same_question(found: _Found, anchor: _Found, passed: bool, thresholds: Thresholds) -> bool:
    """Whether ``found`` answers what the anchor answers: same event, and the focus or the reader says so."""
    same_event = float(found.lead @ anchor.lead) >= thresholds.same_event_cosine and bool(
        found.names & anchor.names
    )
    if not same_event:
        return False
    return found.in_focus or (passed and float(found.vector @ anchor.vector) >= thresholds.same_fact_cosine)


def _focus(
    data: IndexData, question: str, terms: Mapping[str, float], ranked: Sequence[ScoredSentence]
) -> tuple[str, ...]:
    """The question's rarest term that any candidate uses: what the question is most specifically about.

    A term of a name the question capitalises stands for the whole name: the
    focus of "How much did Jackson spend at Best Buy?" is "best buy", not the
    "buy" of "used campaign money to buy items".
    """
    used = set()
    for candidate in ranked:
        used.update(data.lexical.terms(data.sentence_text(candidate.sentence_id)))
    present = [(idf, term) for term, idf in terms.items() if term in used]
    if not present:
        return ()
    term = max(present)[1]
    for name in _NAME.findall(question.split(" ", 1)[-1]):
        named = tuple(data.lexical.terms(name))
        if term in named:
            return named
    return (term,)


def _focus_positions(data: IndexData, sentence: str, focus: tuple[str, ...]) -> list[int]:
    """Character offsets in ``sentence`` where the focus run of terms starts."""
    flat = [(m.start(), term) for m in _WORD.finditer(sentence) for term in data.lexical.terms(m.group())]
    width = len(focus)
    return [
        flat[i][0] for i in range(len(flat) - width + 1) if tuple(t for _, t in flat[i : i + width]) == focus
    ]


def _gap(sentence: str, a: int, b: int) -> int:
    """Words between offsets ``a`` and ``b``, a clause break counting as CLAUSE_WORDS words."""
    between = sentence[min(a, b) : max(a, b)]
    return len(_WORD.findall(between)) + CLAUSE_WORDS * len(_CLAUSE_BREAK.findall(between))


def _sentence_value(data: IndexData, shape: QuestionShape, focus: tuple[str, ...], sid: int) -> _Found | None:
    """The value sentence ``sid`` gives for the asked kind: the one nearest the focus, if near enough."""
    sentence = data.sentence_text(sid)
    spans = [span for _, span in typed_spans(shape, sentence, sentence_entities(data.entities, sid))]
    if not spans or shape.kind is None:
        return None
    positions = _focus_positions(data, sentence, focus) if focus else []
    near = sorted(
        (min(_gap(sentence, p, start if p < start else end) for p in positions), start, end)
        for start, end in spans
        if positions
    )
    in_focus = bool(near) and near[0][0] <= FOCUS_WORDS
    if in_focus:
        start, end = near[0][1], near[0][2]
    else:
        best = typed_span(shape, sentence, sentence_entities(data.entities, sid))
        if best is None:
            return None
        start, end = best
    if shape.kind not in _WHOLE_SPAN_KINDS:
        start, end = tight_value(sentence, start, end)
    row = data.sentence_row(sid)
    article = data.article(row.article)
    value = read_value(shape.kind, sentence[start:end], article.date, sentence[:start])
    if value is None:
        return None
    reported = ReportedValue(
        text=sentence[start:end],
        normalized=value.normalized,
        doc_id=article.doc_id,
        outlet=article.outlet,
        date=article.date,
        start=row.start + start,
        end=row.start + end,
    )
    vector = np.asarray(data.sentence_vectors[sid], dtype=np.float32)
    return _Found(value, reported, in_focus, vector, _lead_vector(data, sid), _names(data, sid))


def _first_sentence(data: IndexData, sid: int) -> int:
    article = data.sentence_row(sid).article
    while sid > 0 and data.sentence_row(sid - 1).article == article:
        sid -= 1
    return sid


def _names(data: IndexData, sid: int) -> frozenset[str]:
    """The people, places and things the opening of ``sid``'s article names, lower-cased."""
    first = _first_sentence(data, sid)
    article = data.sentence_row(first).article
    names = set()
    for lead in range(first, min(len(data.sentences), first + 2 * LEAD_SENTENCES)):
        if data.sentence_row(lead).article != article:
            break
        text = data.sentence_text(lead)
        names.update(
            text[s:e].lower()
            for s, e, label in sentence_entities(data.entities, lead)
            if label in _EVENT_LABELS
        )
    return frozenset(names)


def _lead_vector(data: IndexData, sid: int) -> np.ndarray:
    """The normalised mean vector of the opening sentences of ``sid``'s article."""
    article = data.sentence_row(sid).article
    first = _first_sentence(data, sid)
    last = first
    while last + 1 < min(len(data.sentences), first + LEAD_SENTENCES) and (
        data.sentence_row(last + 1).article == article
    ):
        last += 1
    mean = np.asarray(data.sentence_vectors[np.arange(first, last + 1)], dtype=np.float32).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _consistent(values: Sequence[tuple[Value, ReportedValue]]) -> bool:
    """Whether one article's answering sentences agree with each other; if not, it counts for neither side."""
    first = values[0][0]
    return all(same_value(first, other) for other, _ in values[1:])


def _differences(values: Sequence[tuple[Value, ReportedValue]]) -> tuple[Difference, ...]:
    """One Difference per kind whose articles split into two or more groups of agreeing values."""
    found = []
    for kind in dict.fromkeys(v.kind for v, _ in values):
        groups: list[list[tuple[Value, ReportedValue]]] = []
        for item in (pair for pair in values if pair[0].kind == kind):
            home = next((g for g in groups if all(same_value(item[0], v) for v, _ in g)), None)
            if home is None:
                groups.append([item])
            else:
                home.append(item)
        if len(groups) > 1:
            found.append(Difference(kind, tuple(reported for group in groups for _, reported in group)))
    return tuple(found)
