"""Where outlets differ: articles of one event that answer a question with different values.

For a question that asks for a typed value (how much, how many, how far, when,
how old, who, where), the articles that answer it are compared by the value
each gives (qa.answer.values reads and normalises them). A difference is
reported only when two or more articles answer and give values of one kind
that do not agree. Not a difference: values that agree once normalised, an
article that does not give the value, an article that gives two values itself.

The anchor is the best-ranked candidate that gives a value and either stands
in the question's focus (qa.answer.focus) or is passed by the reader
(confidence at or above the abstention threshold). Another article counts when:

- it tells the same event: the mean vectors of the two articles' opening
  sentences have cosine ``same_event_cosine`` or more, and the openings name a
  person, place or organisation in common (two auctions in one archive share
  words, not names);
- and its value is in focus, or the reader passes its sentence and that
  sentence is about the same fact as the anchor's (cosine ``same_fact_cosine``):
  the reader also passes "$7,000 paid to the taxidermist" for a watch's price.

Articles of the event that no read candidate speaks for are read whole for a
value in focus: Compare outlets promises each outlet's own answer, and the
candidates are only the best dozen sentences of the archive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from qa.answer.focus import FOCUS_SHARE, Focus, focus_share, question_focus, sentence_positions
from qa.answer.scoring import ScoredSentence
from qa.answer.span import QuestionShape, question_shape, typed_spans
from qa.answer.values import Value, read_value, same_value, tight_value
from qa.index.store import IndexData
from qa.records import Difference, ReportedValue

# Asked kinds whose whole span is the value ("on Sunday", "Maren Holt"), not a figure inside it.
_WHOLE_SPAN_KINDS = frozenset({"name", "place", "time", "age"})
# Entity labels that name an event's people, places and things (qa.index.entities).
_EVENT_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"})
# Sentences of an article's opening that stand for its event.
LEAD_SENTENCES = 3
# A sentence that says a figure changed: the article then gives two values of its own.
_REVISION = re.compile(
    r"\b(?:initially|originally|at first|first put|earlier|revised|revises|updated|corrected|raised|"
    r"lowered|later put|later said|previously)\b",
    re.I,
)
# A figure that is one end of a range ("between $10 million and $12 million", "10 to 12").
_RANGE_BEFORE = re.compile(
    r"\bbetween\s*$|\bfrom\s*$|\d(?:\s?(?:million|billion|m|bn|k|%))?\s*(?:and|to|-|\u2013)\s*$", re.I
)
# The whole that a part is counted from: the 9 of "6 of its 9 carriages".
_PART_OF = re.compile(r"\d[\d,.]*\s+of\s+(?:its|the|their|his|her|all)?\s*$", re.I)
_RANGE_AFTER = re.compile(r"\s*(?:and|to|-|\u2013)\s*[$£€¥]?\d")
# Kinds whose values recur in a story for other reasons than the asked fact (see _also_says).
_RECURRING = frozenset({"person", "place", "date", "time"})
_ASKS_MEASURE = re.compile(r"\bhow (?:far|high|tall|deep|wide|heavy|fast|big|large|low|close|near)\b", re.I)
_ASKS_CLOCK = re.compile(r"\bwhat time\b|\bwhat hour\b", re.I)
_ASKS_DAY = re.compile(r"\b(?:what|which) (?:day|date)\b|\bwhat day of\b", re.I)
# Questions qa.answer.span leaves open that still ask for a figure.
_MEASURES = (
    (re.compile(r"\bhow (?:high|tall|deep|wide|heavy|fast|big|large|low)\b", re.I), "distance"),
    (re.compile(r"\bwhat (?:share|proportion|percentage|rate|turnout)\b|\bthe turnout\b", re.I), "amount"),
)


@dataclass(frozen=True)
class Thresholds:
    """When a candidate counts: the reader's confidence, and the cosines for same fact and same event."""

    confidence: float
    same_fact_cosine: float
    same_event_cosine: float


@dataclass(frozen=True)
class _Found:
    """A value one sentence gives, where it is, and whether it stands in the question's focus."""

    value: Value
    reported: ReportedValue
    in_focus: bool
    sid: int


@dataclass(frozen=True)
class _Asked:
    """What one question asks, worked out once."""

    shape: QuestionShape
    focus: Focus
    wanted: frozenset[str]


def find_differences(
    data: IndexData,
    question: str,
    terms: Mapping[str, float],
    ranked: Sequence[ScoredSentence],
    thresholds: Thresholds,
) -> tuple[Difference, ...]:
    """The differences among the articles that answer ``question``, one per kind of value.

    Args:
        data: the index.
        question: the question as asked.
        terms: its index terms with their idf (qa.retrieval.question).
        ranked: the candidate sentences, best first; ``confidence`` is the reader's (0 if unread).
        thresholds: the reader's threshold and the cosines for same fact and same event.
    """
    shape = question_shape(question)
    kind = shape.kind or next((k for pattern, k in _MEASURES if pattern.search(question)), None)
    if kind is None:
        return ()
    used = {t for c in ranked for t in data.lexical.terms(data.sentence_text(c.sentence_id))}
    asked = _Asked(
        QuestionShape(kind, shape.words),
        question_focus(data.lexical, question, terms, used),
        _wanted(question),
    )
    event = _Event(data)
    anchor: _Found | None = None
    by_article: dict[str, list[_Found]] = {}
    for candidate in ranked:
        found = _sentence_value(data, asked, candidate.sentence_id)
        if found is None:
            continue
        passed = candidate.confidence >= thresholds.confidence
        if anchor is None:
            if not (found.in_focus or passed):
                continue
            anchor = found
        elif not event.same(found.sid, anchor.sid, thresholds.same_event_cosine) or not (
            found.in_focus or (passed and _same_fact(data, found, anchor, thresholds))
        ):
            continue
        by_article.setdefault(found.reported.doc_id, []).append(found)
    if anchor is None:
        return ()
    for sid in _unheard(data, ranked, by_article):
        if event.same(sid, anchor.sid, thresholds.same_event_cosine):
            found = _article_value(data, asked, sid)
            if found is not None:
                by_article[found.reported.doc_id] = [found]
    kept = [
        found[0]
        for found in by_article.values()
        if _consistent(found) and _consistent(_revisions(data, asked, found[0]))
    ]
    said = {f.reported.doc_id: _all_values(data, asked, f.sid) for f in kept if f.value.kind in _RECURRING}
    kept = [f for f in kept if not _also_says(f, kept, said.get(f.reported.doc_id, []))]
    return group_values([(f.value, f.reported) for f in kept])


def _wanted(question: str) -> frozenset[str]:
    """The kinds of value a question accepts when it says: a clock time for "what time", a day for
    "what day", a measure with its unit for "how far", "how high", "how fast"."""
    if _ASKS_CLOCK.search(question):
        return frozenset({"time"})
    if _ASKS_DAY.search(question):
        return frozenset({"date"})
    if _ASKS_MEASURE.search(question):
        return frozenset({"quantity"})
    return frozenset()


def _same_fact(data: IndexData, found: _Found, anchor: _Found, thresholds: Thresholds) -> bool:
    vectors = np.asarray(data.sentence_vectors[np.array([found.sid, anchor.sid])], dtype=np.float32)
    return float(vectors[0] @ vectors[1]) >= thresholds.same_fact_cosine


class _Event:
    """Whether two sentences' articles tell the same event; each article's opening is read once."""

    def __init__(self, data: IndexData) -> None:
        self.data = data
        self._openings: dict[int, tuple[np.ndarray, frozenset[str]]] = {}

    def same(self, sid: int, other: int, cosine: float) -> bool:
        (a, names_a), (b, names_b) = self._opening(sid), self._opening(other)
        return float(a @ b) >= cosine and bool(names_a & names_b)

    def _opening(self, sid: int) -> tuple[np.ndarray, frozenset[str]]:
        """The mean vector of an article's first sentences, and the names its first paragraphs use."""
        data = self.data
        first, end = _article_sentences(data, sid)
        if first not in self._openings:
            lead = np.arange(first, min(end, first + LEAD_SENTENCES))
            mean = np.asarray(data.sentence_vectors[lead], dtype=np.float32).mean(axis=0)
            names = {
                data.sentence_text(s)[a:b].lower()
                for s in range(first, min(end, first + 2 * LEAD_SENTENCES))
                for a, b, label in data.sentence_entities(s)
                if label in _EVENT_LABELS
            }
            self._openings[first] = (mean / max(float(np.linalg.norm(mean)), 1e-12), frozenset(names))
        return self._openings[first]


def _article_sentences(data: IndexData, sid: int) -> tuple[int, int]:
    """The first sentence id of ``sid``'s article and one past its last."""
    sids = data.article_sentences(sid)
    return sids.start, sids.stop


def _unheard(
    data: IndexData, ranked: Sequence[ScoredSentence], by_article: Mapping[str, list[_Found]]
) -> list[int]:
    """A sentence of each candidate article that gave no counted value, in rank order."""
    seen: set[int] = set()
    heard = {found.reported.doc_id for values in by_article.values() for found in values}
    sids = []
    for candidate in ranked:
        article = data.sentence_row(candidate.sentence_id).article
        if article not in seen and data.article(article).doc_id not in heard:
            sids.append(candidate.sentence_id)
        seen.add(article)
    return sids


def _article_value(data: IndexData, asked: _Asked, sid: int) -> _Found | None:
    """The value in focus that ``sid``'s article gives, read from all its sentences: its most focused one."""
    first, end = _article_sentences(data, sid)
    best: tuple[float, _Found] | None = None
    for other in range(first, end):
        for share, found in _focused(data, asked, other):
            if best is None or share > best[0]:
                best = (share, found)
    return best[1] if best else None


def _sentence_value(data: IndexData, asked: _Asked, sid: int) -> _Found | None:
    """The value sentence ``sid`` gives: the one with most of the question around it (in focus or not)."""
    shared = _shares(data, asked, sid)
    return max(shared, key=lambda item: item[0])[1] if shared else None


def _spans(data: IndexData, asked: _Asked, sid: int, sentence: str) -> list[tuple[int, int]]:
    """The spans of the asked kind in sentence ``sid``, best first; for names and places only the
    tagger's entities (a pattern takes "by Ilse Varnholt" for a place)."""
    spans = typed_spans(asked.shape, sentence, data.sentence_entities(sid))
    if asked.shape.kind in ("name", "place"):
        spans = [item for item in spans if item[0][1] == 1]
    return [span for _, span in sorted(spans, key=lambda item: item[0], reverse=True)]


def _focused(data: IndexData, asked: _Asked, sid: int, every: bool = False) -> list[tuple[float, _Found]]:
    """The values of sentence ``sid`` in the question's focus, with the share of it around each.

    ``every``: take all the sentence's values if any is in focus (a revision: "initially said
    900,000 card numbers had been exposed, but later revised that figure to 1.1 million").
    """
    shared = _shares(data, asked, sid)
    if every and any(found.in_focus for _, found in shared):
        return [(share, replace(found, in_focus=True)) for share, found in shared]
    return [(share, found) for share, found in shared if found.in_focus]


def _shares(data: IndexData, asked: _Asked, sid: int) -> list[tuple[float, _Found]]:
    """Every value of sentence ``sid`` with the share of the question's focus around it, best span first."""
    sentence = data.sentence_text(sid)
    spans = _spans(data, asked, sid, sentence)
    if not spans:
        return []
    positions = sentence_positions(data.lexical, sentence, asked.focus)
    names = asked.shape.kind in ("name", "place")
    named = [place for places in positions.values() for place in places] if names else []
    found = []
    for span in spans:
        # A name that holds what the question names ("Kestrel Vale General Hospital" for a
        # question about the Kestrel Vale strike) is not the name it asks for.
        if any(a < span[1] and span[0] < b for a, b in named):
            continue
        share = focus_share(sentence, span, asked.focus, positions)
        value = _read(data, asked, sid, sentence, span, share >= FOCUS_SHARE)
        if value is not None:
            found.append((share, value))
    return found


def _read(
    data: IndexData, asked: _Asked, sid: int, sentence: str, span: tuple[int, int], in_focus: bool
) -> _Found | None:
    """The value at ``span`` of sentence ``sid``, or None when it is no value of a wanted kind."""
    kind = asked.shape.kind
    start, end = span
    if kind is None:
        return None
    if kind not in _WHOLE_SPAN_KINDS:
        start, end = tight_value(sentence, start, end)
        before = sentence[:start]
        if _RANGE_BEFORE.search(before) or _RANGE_AFTER.match(sentence[end:]) or _PART_OF.search(before):
            return None
    row = data.sentence_row(sid)
    article = data.article(row.article)
    value = read_value(kind, sentence[start:end], article.date, sentence[:start], sentence[end:])
    if value is None or (asked.wanted and value.kind not in asked.wanted):
        return None
    reported = ReportedValue(
        text=sentence[start:end],
        normalized=value.normalized,
        doc_id=article.doc_id,
        outlet=article.outlet,
        date=article.date,
        start=row.start + start,
        end=row.start + end,
        sentence=sentence,
        sentence_start=row.start,
    )
    return _Found(value, reported, in_focus, sid)


def _consistent(found: Sequence[_Found]) -> bool:
    """Whether one article gives one value: its other values in focus agree with its best one.

    An article that itself reports two values ("first put at 40, later 45") counts for neither
    side; a value out of focus (an arrival time beside the derailment time) does not count.
    """
    first = found[0].value
    return all(same_value(first, other.value) for other in found[1:] if other.in_focus)


def _revisions(data: IndexData, asked: _Asked, chosen: _Found) -> list[_Found]:
    """``chosen`` and the values in focus of its article's sentences that say a figure changed.

    Only such sentences are read: an article names many figures near "people" or
    "passengers", and all but the revisions are other facts.
    """
    first, end = _article_sentences(data, chosen.sid)
    found = [chosen]
    for sid in range(first, end):
        if _REVISION.search(data.sentence_text(sid)):
            found.extend(value for _, value in _focused(data, asked, sid, every=True))
    return found


def _all_values(data: IndexData, asked: _Asked, sid: int) -> list[Value]:
    """Every value of the asked kind anywhere in ``sid``'s article, in focus or not."""
    first, end = _article_sentences(data, sid)
    values = []
    for other in range(first, end):
        sentence = data.sentence_text(other)
        for span in _spans(data, asked, other, sentence):
            found = _read(data, asked, other, sentence, span, False)
            if found is not None:
                values.append(found.value)
    return values


def _also_says(found: _Found, kept: Sequence[_Found], said: Sequence[Value]) -> bool:
    """Whether ``found``'s article also names a person, place or day that another article gives.

    Names and days recur in a story for other reasons than the asked fact, and a
    mention means the outlet knows of it. Figures are left out of this rule: a
    count or price recurs by chance too often (six carriages, 6 per cent).
    """
    others = [g.value for g in kept if g is not found and not same_value(found.value, g.value)]
    return any(v.kind == o.kind and same_value(v, o) for o in others for v in said)


def group_values(values: Sequence[tuple[Value, ReportedValue]]) -> tuple[Difference, ...]:
    """One Difference per kind whose articles' values split into two or more groups that disagree."""
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
