"""Plain, frozen records that cross module boundaries.

Every span carries its article's ``doc_id`` and character offsets into that
article's ``body`` so any text shown to a user can be checked against its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN_OUTLET = "Unknown outlet"
UNDATED = "undated"


@dataclass(frozen=True)
class Article:
    """One news article: its body text and where it came from."""

    doc_id: str
    body: str
    outlet: str = UNKNOWN_OUTLET
    date: str = UNDATED  # ISO YYYY-MM-DD, or UNDATED
    title: str = ""
    url: str = ""


@dataclass(frozen=True)
class Sentence:
    """A sentence of an article: ``article.body[start:end] == text``."""

    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A window of whole sentences; the unit that is embedded and indexed.

    ``first_sentence``/``last_sentence`` are global sentence ids (inclusive,
    exclusive) so answer extraction can look at the sentences of a passage
    without re-splitting it.
    """

    doc_id: str
    start: int
    end: int
    text: str
    first_sentence: int
    last_sentence: int


@dataclass(frozen=True)
class Citation:
    """Where an answer was found: one article, with the exact span in it."""

    doc_id: str
    outlet: str
    date: str
    title: str
    url: str
    start: int
    end: int
    text: str
    passage_start: int
    passage_end: int
    passage: str


@dataclass(frozen=True)
class Answer:
    """A verbatim extract that answers the question, with all its sources.

    ``text`` is the answering sentence; ``span_start``/``span_end`` locate the
    shortest part of it that carries the answer (offsets within ``text``), so
    the UI can highlight it. ``score`` ranks answers; ``confidence`` (the
    reader's probability that the sentence answers, or the score itself when
    no reader ran) decides whether it is shown at all.
    """

    text: str
    score: float
    citations: tuple[Citation, ...]
    span_start: int = 0
    span_end: int = -1
    confidence: float = 0.0

    @property
    def span(self) -> str:
        """The highlighted part of the answer."""
        end = len(self.text) if self.span_end < 0 else self.span_end
        return self.text[self.span_start : end]


@dataclass(frozen=True)
class ReportedValue:
    """The value one article gives for the asked fact: ``article.body[start:end] == text``.

    ``sentence`` is the sentence that gives it, from ``sentence_start`` in the body, so a
    view can show the value in context.
    """

    text: str
    normalized: str
    doc_id: str
    outlet: str
    date: str
    start: int
    end: int
    sentence: str = ""
    sentence_start: int = 0


@dataclass(frozen=True)
class Difference:
    """Articles that answer the same question with different values of one kind ("money", "date", ...).

    ``values`` holds one value per article, grouped so that agreeing articles sit together.
    """

    kind: str
    values: tuple[ReportedValue, ...]


@dataclass(frozen=True)
class RetrievedPassage:
    """A passage as retrieval ranked it, with its fused score in [0, 1]."""

    passage_id: int
    doc_id: str
    start: int
    end: int
    text: str
    score: float
    outlet: str
    date: str
    title: str
    url: str


@dataclass(frozen=True)
class Result:
    """Everything ``Engine.ask`` knows about one question."""

    question: str
    answers: tuple[Answer, ...]
    passages: tuple[RetrievedPassage, ...]
    abstained: bool
    latency_ms: float
    notices: tuple[str, ...] = field(default=())
    best_score: float = 0.0
    differences: tuple[Difference, ...] = field(default=())
