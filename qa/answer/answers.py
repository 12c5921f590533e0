"""Answer choice: from the fused passages to ranked, grouped, cited answers.

The candidate sentences of the best passages are scored by their evidence
(qa.answer.candidates, qa.answer.scoring); the reader, when there is one,
re-reads the best of them; sentences that say the same thing are grouped so
every outlet that carried an answer is cited; each answer's lead sentence
gets the span to highlight.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.candidates import Question, gather_candidates
from qa.answer.combiner import Combiner, Read, default_combiner_path, load_combiner
from qa.answer.differences import Thresholds, find_differences
from qa.answer.reader import Reader, reader_candidate, reader_question, rerank, sigmoid
from qa.answer.scoring import ScoredSentence, group_same_reports, rank_candidates
from qa.answer.span import answer_span, question_shape
from qa.answer.statement import statement_direction
from qa.index.store import IndexData
from qa.records import Answer, Citation, Difference, RetrievedPassage
from qa.retrieval.question import PreparedQuestion
from qa.settings import Settings


@dataclass(frozen=True)
class AnswerChoice:
    """The answers to one question, best first, and where the answering articles differ."""

    answers: list[Answer]
    differences: tuple[Difference, ...]


def choose_answers(
    data: IndexData,
    question: PreparedQuestion,
    fused: Sequence[tuple[int, float]],
    top_k: int,
    settings: Settings,
    reader: Reader | None,
    outlets: Sequence[str],
    threshold: float = 0.0,
) -> AnswerChoice:
    """At most ``top_k`` answers from the sentences of the best ``fused`` passages, best first.

    Args:
        data: the loaded index.
        question: the prepared question.
        fused: passage ids and fused scores, best first.
        top_k: most answers (groups of the same report).
        settings: how many passages and candidates to read, and the weights.
        reader: reads the best candidates; None ranks by evidence alone.
        outlets: the corpus's outlets, which a question may name.
        threshold: the confidence an answer needs; only such answers are compared for differences.
    """
    shape = question_shape(question.text)
    scored, unread = _rank(data, question, fused, settings, reader, outlets)
    limits = Thresholds(threshold, settings.same_fact_cosine, settings.same_event_cosine)
    # Sentences the reader did not read can still give a value beside the question's focus.
    beyond = [ScoredSentence(s.candidate, s.score, 0.0) for s in unread]
    differences = find_differences(data, question.text, question.terms, [*scored, *beyond], limits)
    groups = group_same_reports(scored, data.sentence_vectors, settings.same_report_cosine, top_k)
    answers = []
    for group in groups:
        citations = tuple(citation(data, s.sentence_id, s.passage_id) for s in group)
        lead = citations[0]
        sid = group[0].sentence_id
        span_start, span_end = answer_span(
            shape, data.sentence_text(sid), data.sentence_entities(sid)
        )
        # Offsets within the sentence, moved to within the extract (a statement starts earlier).
        shift = data.sentence_row(sid).start - lead.start
        span_start, span_end = span_start + shift, (span_end + shift if span_end >= 0 else -1)
        answers.append(
            Answer(
                lead.text,
                round(group[0].score, 4),
                citations,
                span_start,
                span_end,
                round(group[0].confidence, 4),
            )
        )
    return AnswerChoice(answers, differences)


def rank_sentences(
    data: IndexData,
    question: PreparedQuestion,
    fused: Sequence[tuple[int, float]],
    settings: Settings,
    reader: Reader | None,
    outlets: Sequence[str],
) -> list[ScoredSentence]:
    """The candidate sentences best first: by the combiner over what the reader read, else by evidence.

    With a reader, only the ``settings.reader_candidates`` best by evidence are
    read and returned; the combiner fit on that reader ranks them when there is
    one (qa.answer.combiner), else the reader's probability blended with the
    evidence at ``settings.reader_weight``. Either way a read sentence's
    confidence is the reader's probability that it answers.
    """
    return _rank(data, question, fused, settings, reader, outlets)[0]


def _rank(
    data: IndexData,
    question: PreparedQuestion,
    fused: Sequence[tuple[int, float]],
    settings: Settings,
    reader: Reader | None,
    outlets: Sequence[str],
) -> tuple[list[ScoredSentence], list[ScoredSentence]]:
    """:func:`rank_sentences`'s ranking, and the candidates the reader did not read (by evidence)."""
    scored, reads = read_candidates(data, question, fused, settings, reader, outlets)
    if reader is None or not reads:
        return scored, []
    scored, rest = scored[: len(reads)], scored[len(reads) :]
    combiner = combiner_for(reader)
    if combiner is None:
        return rerank(scored, [r.logit for r in reads], settings.reader_weight), rest
    probs = combiner.probabilities(question.text, reads)
    # The confidence abstention reads stays the reader's own probability: on the
    # validation it separates near-miss unanswerables better (docs/evaluation.md).
    confidence = sigmoid(np.array([r.logit for r in reads]))
    ranked = [
        ScoredSentence(s.candidate, float(p), float(c))
        for s, p, c in zip(scored, probs, confidence, strict=True)
    ]
    ranked.sort(key=lambda s: -s.score)
    return ranked, rest


def read_candidates(
    data: IndexData,
    question: PreparedQuestion,
    fused: Sequence[tuple[int, float]],
    settings: Settings,
    reader: Reader | None,
    outlets: Sequence[str],
) -> tuple[list[ScoredSentence], list[Read]]:
    """All candidates ranked by evidence and, with a reader, the first of them as it read them.

    Evaluation (qa.training.choice_cv) fits the combiner on exactly these records.
    """
    shaped = Question(question.text, question.vector, question.terms, question_shape(question.text))
    candidates = gather_candidates(data, shaped, fused, settings.answer_passages, outlets)
    scored = rank_candidates(candidates, settings.weights)
    if reader is None or settings.reader_candidates <= 0:
        return scored, []
    read = scored[: settings.reader_candidates]
    context = reader.context_chars
    texts = [data.sentence_text(s.sentence_id) for s in read]
    inputs = [
        reader_candidate(text, data.sentence_before(s.sentence_id), context)
        for s, text in zip(read, texts, strict=True)
    ]
    logits = reader.logits(reader_question(question.text, question.previous), inputs)
    reads = [
        Read(s.candidate, s.score, float(logit), text)
        for s, logit, text in zip(read, logits, texts, strict=True)
    ]
    return scored, reads


@functools.lru_cache(maxsize=4)
def _combiner_file(path: Path, mtime_ns: int) -> Combiner:
    return load_combiner(path)


def combiner_for(reader: Reader) -> Combiner | None:
    """The shipped combiner if it was fit on this reader's scores (same sha256), else None."""
    path = default_combiner_path()
    if not path.is_file() or not reader.sha256:
        return None
    combiner = _combiner_file(path, path.stat().st_mtime_ns)
    return combiner if combiner.reader_sha256 == reader.sha256 else None


def extract_sentences(data: IndexData, sid: int) -> tuple[int, int]:
    """The first and last sentence of ``sid``'s extract: itself, or its statement (qa.answer.statement)."""
    direction = statement_direction(
        data.sentence_text(sid), data.sentence_before(sid), data.sentence_after(sid)
    )
    return (sid - 1, sid) if direction < 0 else (sid, sid + direction)


def citation(data: IndexData, sid: int, pid: int) -> Citation:
    """The citation of sentence ``sid`` read in passage ``pid``: its article and its extract's offsets."""
    first, last = extract_sentences(data, sid)
    sentence, passage = data.sentence_row(sid), data.passage_row(pid)
    start, end = data.sentence_row(first).start, data.sentence_row(last).end
    # The passage shown around the extract widens to hold a statement that crosses its edge.
    around = min(passage.start, start), max(passage.end, end)
    article = data.article(sentence.article)
    return Citation(
        doc_id=article.doc_id,
        outlet=article.outlet,
        date=article.date,
        title=article.title,
        url=article.url,
        start=start,
        end=end,
        text=article.body[start:end],
        passage_start=around[0],
        passage_end=around[1],
        passage=article.body[around[0] : around[1]],
    )


def retrieved_passage(data: IndexData, pid: int, score: float) -> RetrievedPassage:
    """Passage ``pid`` as a source shown beside the answers."""
    row = data.passage_row(pid)
    article = data.article(row.article)
    return RetrievedPassage(
        passage_id=pid,
        doc_id=article.doc_id,
        start=row.start,
        end=row.end,
        text=article.body[row.start : row.end],
        score=round(score, 4),
        outlet=article.outlet,
        date=article.date,
        title=article.title,
        url=article.url,
    )
